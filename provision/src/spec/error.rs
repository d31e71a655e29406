//! Errors and warnings about a cluster file: each names the file, line:column, the field, and the fix.

use std::fmt;

pub use super::rules::Rule;
pub use super::yaml::Pos;

/// One problem found in cluster.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The cluster file as given on the command line.
    pub file: String,
    /// Line and column of the value (or of the mapping a missing field belongs in).
    pub pos: Pos,
    /// The field path (`nodes[1].address`); empty when the problem is about the whole file.
    pub field: String,
    /// Which rule of the refusal table.
    pub rule: Rule,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.pos.line, self.pos.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        if !self.fix.is_empty() {
            write!(f, "\n    fix: {}", self.fix)?;
        }
        Ok(())
    }
}

/// Every error found in one pass (validation does not stop at the first one).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("{file}: cannot read cluster file: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is invalid; every problem is listed.
    #[error("{}", render_list(.0))]
    Invalid(Vec<Problem>),
}

impl SpecError {
    /// The problems, if the file was read but is invalid.
    pub fn problems(&self) -> &[Problem] {
        match self {
            SpecError::Invalid(p) => p,
            SpecError::Read { .. } => &[],
        }
    }
}

fn render_list(problems: &[Problem]) -> String {
    let mut out = format!("{} error(s) in cluster file:", problems.len());
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string().replace('\n', "\n  "));
    }
    out
}
