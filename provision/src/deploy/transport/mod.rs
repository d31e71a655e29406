//! How `provision apply` reaches a host: a shell on it. Both transports run `sh -c SCRIPT` (locally or
//! through the system `ssh`), so every operation below is one shell script, the same for both.

pub mod local;
pub mod ssh;

use std::process::Output;

/// A transport could not run a command, or the command failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The program (sh, ssh) could not be started.
    #[error("{what}: cannot start {program}: {source}")]
    Spawn {
        /// Which host or action.
        what: String,
        /// The program.
        program: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The connection itself failed (ssh exit 255).
    #[error("{host}: cannot connect: {stderr}")]
    Connect {
        /// The host.
        host: String,
        /// What ssh said.
        stderr: String,
    },
    /// The remote command exited non-zero.
    #[error("{host}: `{action}` failed (exit {code}): {stderr}")]
    Failed {
        /// The host.
        host: String,
        /// What was attempted.
        action: String,
        /// Exit code (-1 when killed by a signal).
        code: i32,
        /// Its standard error (last lines).
        stderr: String,
    },
}

/// A shell on one host.
pub trait Transport: Send + Sync {
    /// For messages: `local` or `ssh operator@10.0.0.2:22`.
    fn describe(&self) -> String;
    /// Run `sh -c script` as the login user, feeding `stdin`; returns the raw output, whatever the exit code.
    fn exec(&self, script: &str, stdin: Option<&[u8]>) -> Result<Output, TransportError>;
    /// Close any shared connection (ssh ControlMaster). Called once at the end.
    fn close(&self) {}
}

/// Write `stdin` from a thread while collecting output, so a script that prints before it reads cannot
/// deadlock on full pipes.
pub(crate) fn feed_and_wait(
    mut child: std::process::Child,
    stdin: Option<&[u8]>,
) -> std::io::Result<Output> {
    let pipe = child.stdin.take();
    std::thread::scope(|s| {
        if let (Some(data), Some(mut pipe)) = (stdin, pipe) {
            s.spawn(move || {
                use std::io::Write;
                // A script that exits early closes the pipe; its exit code tells what went wrong.
                let _ = pipe.write_all(data);
            });
        }
        child.wait_with_output()
    })
}

/// Quote `s` for a POSIX shell (single quotes; embedded quotes closed and escaped).
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,@+%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The last lines of a command's stderr (or stdout when stderr is empty), for error messages.
pub fn tail(out: &Output) -> String {
    let text = if out.stderr.is_empty() {
        String::from_utf8_lossy(&out.stdout).to_string()
    } else {
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let lines: Vec<&str> = text.trim().lines().collect();
    let start = lines.len().saturating_sub(6);
    lines[start..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quote_leaves_plain_words_and_escapes_single_quotes() {
        assert_eq!(quote("/etc/cairn/pki"), "/etc/cairn/pki");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
