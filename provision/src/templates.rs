//! Tera templates: built in from templates/ at compile time; `--templates DIR` replaces any of them by name.
//! Rendering is strict: an undefined variable is an error, never an empty string.

use std::path::Path;

/// Every built-in template: (name, text). Names are paths under templates/.
const BUILTIN: &[(&str, &str)] = &[
    (
        "env/cairn.env",
        include_str!("../../templates/env/cairn.env"),
    ),
    (
        "systemd/cairn.service",
        include_str!("../../templates/systemd/cairn.service"),
    ),
    (
        "rsyslog/30-cairn.conf",
        include_str!("../../templates/rsyslog/30-cairn.conf"),
    ),
    (
        "logrotate/cairn",
        include_str!("../../templates/logrotate/cairn"),
    ),
    (
        "firewall/cairn.nft",
        include_str!("../../templates/firewall/cairn.nft"),
    ),
    (
        "firewall/cairn.iptables",
        include_str!("../../templates/firewall/cairn.iptables"),
    ),
    (
        "firewall/cairn-firewalld.sh",
        include_str!("../../templates/firewall/cairn-firewalld.sh"),
    ),
    ("dns/zone", include_str!("../../templates/dns/zone")),
    (
        "dns/nsupdate.txt",
        include_str!("../../templates/dns/nsupdate.txt"),
    ),
    (
        "monitoring/prometheus.yml",
        include_str!("../../templates/monitoring/prometheus.yml"),
    ),
    (
        "monitoring/servicemonitor.yaml",
        include_str!("../../templates/monitoring/servicemonitor.yaml"),
    ),
    (
        "ansible/inventory.yml",
        include_str!("../../templates/ansible/inventory.yml"),
    ),
];

/// A template failed to load or render.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// An override file could not be read.
    #[error("{path}: cannot read template override: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Tera rejected a template (syntax, or an undefined variable while rendering).
    #[error("template {name}: {detail}")]
    Tera {
        /// Template name.
        name: String,
        /// Tera's message, with its causes.
        detail: String,
    },
}

fn tera_err(name: &str, e: tera::Error) -> TemplateError {
    // Tera's top-level message is terse; its sources carry the line and the undefined name.
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        detail.push_str(&format!(": {s}"));
        src = s.source();
    }
    TemplateError::Tera {
        name: name.into(),
        detail,
    }
}

/// The loaded template set.
pub struct Templates {
    tera: tera::Tera,
}

impl Templates {
    /// Built-in templates, each replaced by `dir/<name>` when that file exists.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut tera = tera::Tera::new();
        // Nothing here is HTML; escaping would corrupt XML zone files and scripts.
        tera.autoescape_on(Vec::<&str>::new());
        for (name, builtin) in BUILTIN {
            let text = match dir.map(|d| d.join(name)) {
                Some(p) if p.exists() => {
                    std::fs::read_to_string(&p).map_err(|source| TemplateError::Read {
                        path: p.display().to_string(),
                        source,
                    })?
                }
                _ => (*builtin).to_string(),
            };
            tera.add_raw_template(name, &text)
                .map_err(|e| tera_err(name, e))?;
        }
        Ok(Self { tera })
    }

    /// Render template `name` with `ctx` (any serializable object); undefined variables are errors.
    pub fn render(&self, name: &str, ctx: &serde_json::Value) -> Result<String, TemplateError> {
        let ctx = tera::Context::from_serialize(ctx).map_err(|e| tera_err(name, e))?;
        self.tera.render(name, &ctx).map_err(|e| tera_err(name, e))
    }

    /// Names of every built-in template.
    pub fn names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }
}
