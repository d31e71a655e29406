//! The located YAML tree → `RawSpec`, field by field. A field of the wrong kind, an unknown field or a
//! missing one is a problem at its line:column, and reading goes on: every problem of the file is
//! reported at once. The position of every field read is kept, so validation's problems have one too.

use std::collections::BTreeMap;

use super::error::{Problem, Rule};
use super::raw::*;
use super::yaml::{Kind, Node, Pos};

/// The sections of a cluster file with their fields, and the fields of a member (`nodes[]`): what the
/// reader knows (the property test draws field names from here too).
pub const SECTIONS: &[(&str, &[&str])] = &[
    (
        "cluster",
        &[
            "name",
            "token",
            "bootstrap",
            "dns",
            "discovery",
            "client_port",
            "peer_port",
            "data_dir",
            "config_dir",
            "transport",
            "heartbeat_interval_ms",
            "election_timeout_ms",
        ],
    ),
    (
        "tls",
        &[
            "enabled",
            "key_algorithm",
            "ca_validity_days",
            "validity_days",
            "renew_before_days",
            "ca",
            "import_ca",
            "clients",
        ],
    ),
    ("firewall", &["backend", "client_sources"]),
    ("auth", &["roles"]),
    ("logging", &["file"]),
    ("monitoring", &["prometheus", "kubernetes", "namespace"]),
    (
        "apply",
        &[
            "known_hosts",
            "max_clock_skew_seconds",
            "health_timeout_seconds",
        ],
    ),
];

/// The fields of one member.
pub const NODE_FIELDS: &[&str] = &[
    "name",
    "address",
    "hostname",
    "client_port",
    "peer_port",
    "data_dir",
    "transport",
    "ssh",
];

fn fields_of(section: &str) -> &'static [&'static str] {
    SECTIONS
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, f)| *f)
        .unwrap_or(&[])
}

/// Positions of the fields read, by field path (`nodes[1].address`).
pub type Positions = BTreeMap<String, Pos>;

/// The fields of a mapping that hold a value (`key:` with nothing after it counts as absent).
struct Fields<'n> {
    path: String,
    pos: Pos,
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, v)| *k == name && !v.is_null())
            .map(|(_, v)| *v)
    }

    fn path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }
}

fn texts(v: Vec<(String, String)>) -> Vec<String> {
    v.into_iter().map(|(_, t)| t).collect()
}

/// Reads one file's tree, collecting problems.
pub(super) struct Reader<'f> {
    file: &'f str,
    pub problems: Vec<Problem>,
    pub positions: Positions,
}

/// For a word that is not one of `expected`, the closest of them (or the list).
pub(super) fn did_you_mean(given: &str, expected: &[&str], kind: &str) -> String {
    let best = expected
        .iter()
        .map(|c| (strsim::jaro_winkler(given, c), *c))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let list = expected
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match best {
        Some((score, cand)) if score >= 0.8 => {
            format!("did you mean `{cand}`? (allowed {kind}s: {list})")
        }
        _ => format!("remove `{given}`; allowed {kind}s here: {list}"),
    }
}

impl<'f> Reader<'f> {
    pub(super) fn new(file: &'f str) -> Self {
        Reader {
            file,
            problems: Vec::new(),
            positions: Positions::new(),
        }
    }

    fn problem(&mut self, rule: Rule, pos: Pos, field: &str, message: String, fix: &str) {
        self.problems.push(Problem {
            file: self.file.into(),
            pos,
            field: field.into(),
            rule,
            message,
            fix: fix.into(),
        });
    }

    fn wrong(&mut self, node: &Node, field: &str, want: &str, fix: &str) {
        self.problem(
            Rule::WrongType,
            node.pos,
            field,
            format!("expected {want}, got {}", node.describe()),
            fix,
        );
    }

    /// A mapping with only the `known` fields; `required` ones missing are problems.
    fn mapping<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&str],
        required: &[&str],
    ) -> Option<Fields<'n>> {
        self.positions.insert(path.to_string(), node.pos);
        let Kind::Map(entries) = &node.kind else {
            let want = if path.is_empty() {
                "a mapping with `cluster:` and `nodes:` at the top"
            } else {
                "a mapping (`field: value` lines, or `{ field: value }`)"
            };
            self.wrong(
                node,
                path,
                want,
                "compare with the examples in examples/ (provision/README.md lists every field)",
            );
            return None;
        };
        let fields = Fields {
            path: path.to_string(),
            pos: node.pos,
            entries: entries.iter().map(|(k, v)| (k.text.as_str(), v)).collect(),
        };
        for (k, _) in entries {
            if !known.contains(&k.text.as_str()) {
                let fix = did_you_mean(&k.text, known, "field");
                self.problem(
                    Rule::UnknownField,
                    k.pos,
                    &fields.path(&k.text),
                    format!("unknown field `{}`", k.text),
                    &fix,
                );
            }
        }
        for r in required {
            if fields.get(r).is_none() {
                self.problem(
                    Rule::MissingField,
                    fields.pos,
                    &fields.path(r),
                    format!("`{}` is required here and has no value", fields.path(r)),
                    "add it (examples/static3.yaml shows every section)",
                );
            }
        }
        Some(fields)
    }

    /// A scalar's text.
    fn text(&mut self, node: &Node, path: &str) -> Option<String> {
        self.positions.insert(path.to_string(), node.pos);
        match &node.kind {
            Kind::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.wrong(
                    node,
                    path,
                    "a single value",
                    "write one value after the colon",
                );
                None
            }
        }
    }

    fn field_text(&mut self, f: &Fields, name: &str) -> Option<String> {
        let node = f.get(name)?;
        self.text(node, &f.path(name))
    }

    fn field_bool(&mut self, f: &Fields, name: &str) -> Option<bool> {
        let node = f.get(name)?;
        let path = f.path(name);
        self.positions.insert(path.clone(), node.pos);
        match &node.kind {
            Kind::Scalar { text, plain: true }
                if matches!(text.as_str(), "true" | "True" | "TRUE") =>
            {
                Some(true)
            }
            Kind::Scalar { text, plain: true }
                if matches!(text.as_str(), "false" | "False" | "FALSE") =>
            {
                Some(false)
            }
            Kind::Scalar { text, .. } => {
                self.problem(
                    Rule::WrongType,
                    node.pos,
                    &path,
                    format!("expected true or false, got {text:?}"),
                    "write true or false, without quotes",
                );
                None
            }
            _ => {
                self.wrong(node, &path, "true or false", "write true or false");
                None
            }
        }
    }

    /// A whole number in `lo..=hi`; `what` and `fix` describe the field for the message.
    fn field_number(
        &mut self,
        f: &Fields,
        name: &str,
        (lo, hi): (u64, u64),
        rule: Rule,
        what: &str,
        fix: &str,
    ) -> Option<u64> {
        let node = f.get(name)?;
        let path = f.path(name);
        let text = self.text(node, &path)?;
        match text.trim().parse::<u64>() {
            Ok(n) if (lo..=hi).contains(&n) => Some(n),
            _ => {
                self.problem(
                    rule,
                    node.pos,
                    &path,
                    format!("expected {what}, got {text:?}"),
                    fix,
                );
                None
            }
        }
    }

    fn field_port(&mut self, f: &Fields, name: &str) -> Option<u16> {
        self.field_number(
            f,
            name,
            (1, 65535),
            Rule::BadPort,
            "a port between 1 and 65535",
            "write a port number such as 2379 (client) or 2380 (peer)",
        )
        .and_then(|n| u16::try_from(n).ok())
    }

    fn field_count(&mut self, f: &Fields, name: &str, unit: &str) -> Option<u32> {
        self.field_number(
            f,
            name,
            (0, u64::from(u32::MAX)),
            Rule::BadNumber,
            &format!("a whole number of {unit}"),
            &format!("write a number of {unit} without a unit, e.g. 30"),
        )
        .and_then(|n| u32::try_from(n).ok())
    }

    fn field_choice<T: Choice>(&mut self, f: &Fields, name: &str) -> Option<T> {
        let node = f.get(name)?;
        let path = f.path(name);
        let text = self.text(node, &path)?;
        if let Some((_, v)) = T::ALL.iter().find(|(n, _)| *n == text) {
            return Some(*v);
        }
        let names: Vec<&str> = T::ALL.iter().map(|(n, _)| *n).collect();
        let fix = did_you_mean(&text, &names, "value");
        self.problem(
            Rule::UnknownValue,
            node.pos,
            &path,
            format!("unknown value `{text}`"),
            &fix,
        );
        None
    }

    /// A list (each element with its index); one value where a list is expected is a list of one when
    /// `one_is_list`.
    fn field_list<'n>(
        &mut self,
        f: &Fields<'n>,
        name: &str,
        one_is_list: bool,
    ) -> Vec<(String, &'n Node)> {
        let Some(node) = f.get(name) else {
            return Vec::new();
        };
        let path = f.path(name);
        self.positions.insert(path.clone(), node.pos);
        match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("{path}[{i}]"), n))
                .collect(),
            Kind::Scalar { .. } if one_is_list => vec![(path, node)],
            _ => {
                self.wrong(
                    node,
                    &path,
                    "a list (`[a, b]` or `- a` lines)",
                    "write the values as a list",
                );
                Vec::new()
            }
        }
    }

    /// The texts of a list, each with its field path.
    fn field_texts(&mut self, f: &Fields, name: &str, one_is_list: bool) -> Vec<(String, String)> {
        self.field_list(f, name, one_is_list)
            .into_iter()
            .filter_map(|(path, n)| self.text(n, &path).map(|t| (path, t)))
            .collect()
    }

    /// The whole file. Required sections missing are problems; what can be read is returned either way.
    pub(super) fn spec(&mut self, root: &Node) -> RawSpec {
        let mut raw = RawSpec::default();
        let Some(top) = self.mapping(
            root,
            "",
            &[
                "cluster",
                "tls",
                "firewall",
                "logging",
                "monitoring",
                "apply",
                "auth",
                "nodes",
            ],
            &["cluster", "nodes"],
        ) else {
            return raw;
        };
        if let Some(n) = top.get("cluster") {
            raw.cluster = self.cluster(n);
        }
        raw.tls = top.get("tls").and_then(|n| self.tls(n));
        raw.firewall = top.get("firewall").and_then(|n| {
            let f = self.mapping(n, "firewall", fields_of("firewall"), &[])?;
            Some(RawFirewall {
                backend: self.field_choice(&f, "backend"),
                client_sources: texts(self.field_texts(&f, "client_sources", false)),
            })
        });
        raw.logging = top.get("logging").and_then(|n| {
            let f = self.mapping(n, "logging", fields_of("logging"), &[])?;
            Some(RawLogging {
                file: self.field_text(&f, "file"),
            })
        });
        raw.monitoring = top.get("monitoring").and_then(|n| {
            let f = self.mapping(
                n,
                "monitoring",
                &["prometheus", "kubernetes", "namespace"],
                &[],
            )?;
            Some(RawMonitoring {
                prometheus: self.field_bool(&f, "prometheus"),
                kubernetes: self.field_bool(&f, "kubernetes"),
                namespace: self.field_text(&f, "namespace"),
            })
        });
        raw.apply = top.get("apply").and_then(|n| {
            let f = self.mapping(
                n,
                "apply",
                &[
                    "known_hosts",
                    "max_clock_skew_seconds",
                    "health_timeout_seconds",
                ],
                &[],
            )?;
            Some(RawApply {
                known_hosts: self.field_text(&f, "known_hosts"),
                max_clock_skew_seconds: self.field_count(&f, "max_clock_skew_seconds", "seconds"),
                health_timeout_seconds: self.field_count(&f, "health_timeout_seconds", "seconds"),
            })
        });
        raw.auth = top.get("auth").and_then(|n| self.auth(n));
        for (path, n) in self.field_list(&top, "nodes", false) {
            if let Some(node) = self.node(n, &path) {
                raw.nodes.push(node);
            }
        }
        raw
    }

    fn cluster(&mut self, node: &Node) -> RawCluster {
        let Some(f) = self.mapping(node, "cluster", fields_of("cluster"), &["name"]) else {
            return RawCluster::default();
        };
        RawCluster {
            name: self.field_text(&f, "name"),
            token: self.field_text(&f, "token"),
            bootstrap: self.field_choice(&f, "bootstrap"),
            dns: f.get("dns").and_then(|n| self.dns(n)),
            discovery: f.get("discovery").and_then(|n| self.discovery(n)),
            client_port: self.field_port(&f, "client_port"),
            peer_port: self.field_port(&f, "peer_port"),
            data_dir: self.field_text(&f, "data_dir"),
            config_dir: self.field_text(&f, "config_dir"),
            transport: self.field_choice(&f, "transport"),
            heartbeat_interval_ms: self.field_count(&f, "heartbeat_interval_ms", "milliseconds"),
            election_timeout_ms: self.field_count(&f, "election_timeout_ms", "milliseconds"),
        }
    }

    fn dns(&mut self, node: &Node) -> Option<RawDns> {
        let f = self.mapping(
            node,
            "cluster.dns",
            &["domain", "srv_name", "name_servers"],
            &[],
        )?;
        let mut name_servers = Vec::new();
        for (path, n) in self.field_list(&f, "name_servers", false) {
            match &n.kind {
                Kind::Map(_) => {
                    if let Some(ns) =
                        self.mapping(n, &path, &["name", "address"], &["name", "address"])
                    {
                        name_servers.push(RawNameServer {
                            name: self.field_text(&ns, "name"),
                            address: self.field_text(&ns, "address"),
                        });
                    }
                }
                _ => name_servers.push(RawNameServer {
                    name: self.text(n, &path),
                    address: None,
                }),
            }
        }
        Some(RawDns {
            domain: self.field_text(&f, "domain"),
            srv_name: self.field_text(&f, "srv_name"),
            name_servers,
        })
    }

    fn discovery(&mut self, node: &Node) -> Option<RawDiscovery> {
        let f = self.mapping(
            node,
            "cluster.discovery",
            &["endpoints", "token", "ca", "cert", "key"],
            &["endpoints", "token"],
        )?;
        Some(RawDiscovery {
            endpoints: self.field_texts(&f, "endpoints", true),
            token: self.field_text(&f, "token"),
            ca: self.field_text(&f, "ca"),
            cert: self.field_text(&f, "cert"),
            key: self.field_text(&f, "key"),
        })
    }

    fn tls(&mut self, node: &Node) -> Option<RawTls> {
        let f = self.mapping(node, "tls", fields_of("tls"), &[])?;
        let import_ca = f.get("import_ca").and_then(|n| {
            let i = self.mapping(n, "tls.import_ca", &["cert", "key"], &["cert", "key"])?;
            Some(RawImportCa {
                cert: self.field_text(&i, "cert"),
                key: self.field_text(&i, "key"),
            })
        });
        Some(RawTls {
            enabled: self.field_bool(&f, "enabled"),
            key_algorithm: self.field_choice(&f, "key_algorithm"),
            ca_validity_days: self.field_count(&f, "ca_validity_days", "days"),
            validity_days: self.field_count(&f, "validity_days", "days"),
            renew_before_days: self.field_count(&f, "renew_before_days", "days"),
            ca: self.field_choice(&f, "ca"),
            import_ca,
            clients: f
                .get("clients")
                .map(|_| texts(self.field_texts(&f, "clients", false))),
        })
    }

    fn auth(&mut self, node: &Node) -> Option<RawAuth> {
        let f = self.mapping(node, "auth", fields_of("auth"), &[])?;
        let mut roles = Vec::new();
        for (path, n) in self.field_list(&f, "roles", false) {
            let Some(r) = self.mapping(n, &path, &["name", "clients", "permissions"], &["name"])
            else {
                continue;
            };
            let mut permissions = Vec::new();
            for (path, n) in self.field_list(&r, "permissions", false) {
                let Some(p) = self.mapping(
                    n,
                    &path,
                    &["access", "key", "prefix", "from", "to"],
                    &["access"],
                ) else {
                    continue;
                };
                permissions.push(RawPermission {
                    path,
                    access: self.field_choice(&p, "access"),
                    key: self.field_text(&p, "key"),
                    prefix: self.field_text(&p, "prefix"),
                    from: self.field_text(&p, "from"),
                    to: self.field_text(&p, "to"),
                });
            }
            roles.push(RawRole {
                path,
                name: self.field_text(&r, "name"),
                clients: self.field_texts(&r, "clients", true),
                permissions,
            });
        }
        Some(RawAuth { roles })
    }

    fn node(&mut self, node: &Node, path: &str) -> Option<RawNode> {
        let f = self.mapping(node, path, NODE_FIELDS, &["name", "address"])?;
        let ssh = f.get("ssh").and_then(|n| {
            let s = self.mapping(n, &f.path("ssh"), &["user", "port", "key", "host"], &[])?;
            Some(RawSsh {
                user: self.field_text(&s, "user"),
                port: self.field_port(&s, "port"),
                key: self.field_text(&s, "key"),
                host: self.field_text(&s, "host"),
            })
        });
        Some(RawNode {
            name: self.field_text(&f, "name"),
            addresses: self.field_texts(&f, "address", true),
            hostname: self.field_text(&f, "hostname"),
            client_port: self.field_port(&f, "client_port"),
            peer_port: self.field_port(&f, "peer_port"),
            data_dir: self.field_text(&f, "data_dir"),
            transport: self.field_choice(&f, "transport"),
            ssh,
        })
    }
}
