//! Raw cluster file → checked `Spec`. Collects every problem in one pass; each names the field, its
//! line:column (from the reader's positions) and the fix. The rules are listed in spec/rules.rs; the
//! members, the zone and TLS are checked in their own files.

mod auth;
mod discovery;
mod dns;
mod nodes;
mod tls;

use std::path::Path;

use super::raw::*;
use super::read::{did_you_mean, Positions};
use super::*;

/// Problems found so far, and where each field of the file is.
struct Collector<'a> {
    file: &'a str,
    positions: &'a Positions,
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Collector<'_> {
    /// The position of `field`, else of the nearest enclosing field that was read (a defaulted field
    /// points at the mapping it would go in).
    fn pos(&self, field: &str) -> Pos {
        let mut f = field;
        loop {
            if let Some(p) = self.positions.get(f) {
                return *p;
            }
            match f.rfind(['.', '[']) {
                Some(i) => f = &f[..i],
                None => {
                    return self
                        .positions
                        .get("")
                        .copied()
                        .unwrap_or(Pos { line: 1, column: 1 })
                }
            }
        }
    }
    fn problem(&self, rule: Rule, field: &str, message: String, fix: &str) -> Problem {
        Problem {
            file: self.file.into(),
            pos: self.pos(field),
            field: field.into(),
            rule,
            message,
            fix: fix.into(),
        }
    }
    fn error(&mut self, rule: Rule, field: &str, message: String, fix: &str) {
        let p = self.problem(rule, field, message, fix);
        if rule.is_warning() {
            self.warnings.push(p);
        } else {
            self.errors.push(p);
        }
    }
}

/// A name usable as a DNS label and a file name.
fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !s.starts_with('-')
}

/// A syntactically valid DNS name: labels of letters, digits and hyphens, the last one not all digits
/// (RFC 3696: a name whose top label is numeric would read as an IPv4 address).
fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(label_ok)
        && !s
            .rsplit('.')
            .next()
            .is_some_and(|top| top.chars().all(|c| c.is_ascii_digit()))
}

/// A Kubernetes object/namespace name (RFC 1123 label).
fn is_k8s_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `{name}` is the only placeholder of data_dir and config_dir; anything else in braces is a typo.
fn unknown_placeholder(s: &str) -> Option<String> {
    let rest = s.replace("{name}", "");
    let start = rest.find(['{', '}'])?;
    let end = rest[start..]
        .find('}')
        .map(|e| start + e + 1)
        .unwrap_or(rest.len());
    Some(rest[start..end].to_string())
}

pub(super) fn validate(
    file: &str,
    base_dir: &Path,
    raw: RawSpec,
    read_problems: Vec<Problem>,
    positions: &Positions,
) -> Result<Spec, SpecError> {
    let mut c = Collector {
        file,
        positions,
        errors: read_problems,
        warnings: Vec::new(),
    };
    let rc = raw.cluster;
    let name = rc.name.clone().unwrap_or_default();
    if rc.name.is_some() && !is_simple_name(&name) {
        c.error(
            Rule::BadClusterName,
            "cluster.name",
            format!("cluster name {name:?} is not a simple name"),
            "use letters, digits, '-' and '_' only, at most 63 (it is used in file names and labels)",
        );
    }
    let bootstrap = rc.bootstrap.unwrap_or(Bootstrap::Static);
    let client_port = rc.client_port.unwrap_or(2379);
    let peer_port = rc.peer_port.unwrap_or(2380);
    for (port, field) in [
        (rc.client_port, "cluster.client_port"),
        (rc.peer_port, "cluster.peer_port"),
    ] {
        check_privileged(&mut c, port, field);
    }
    let data_dir = rc
        .data_dir
        .clone()
        .unwrap_or_else(|| "/var/lib/cairn".into());
    let config_dir = rc.config_dir.clone().unwrap_or_else(|| "/etc/cairn".into());
    check_dir(&mut c, &data_dir, "cluster.data_dir");
    check_dir(&mut c, &config_dir, "cluster.config_dir");
    let raft_timing = check_raft_timing(&mut c, rc.heartbeat_interval_ms, rc.election_timeout_ms);

    let tls = raw
        .tls
        .filter(|t| t.enabled != Some(false))
        .map(|t| tls::check_tls(&mut c, base_dir, t));
    let firewall = check_firewall(&mut c, raw.firewall);
    let log_file = raw
        .logging
        .and_then(|l| l.file)
        .unwrap_or_else(|| "/var/log/cairn/cairn.log".into());
    if !log_file.starts_with('/') || log_file.contains(['{', '}']) {
        c.error(
            Rule::LogFileNotAbsolute,
            "logging.file",
            format!("log file {log_file:?} is not an absolute path without placeholders"),
            "rsyslog needs one absolute path per host, e.g. /var/log/cairn/cairn.log",
        );
    }
    let monitoring = match raw.monitoring {
        Some(m) => Monitoring {
            prometheus: m.prometheus.unwrap_or(true),
            kubernetes: m.kubernetes.unwrap_or(false),
            namespace: m.namespace.unwrap_or_else(|| "monitoring".into()),
        },
        None => Monitoring {
            prometheus: true,
            kubernetes: false,
            namespace: "monitoring".into(),
        },
    };
    if !is_k8s_label(&monitoring.namespace) {
        c.error(
            Rule::BadNamespace,
            "monitoring.namespace",
            format!(
                "{:?} is not a Kubernetes namespace name",
                monitoring.namespace
            ),
            "use lowercase letters, digits and '-', at most 63 (e.g. monitoring)",
        );
    }

    let auth_clients = tls.as_ref().map(|t| {
        let mut names = t.clients.clone();
        if monitoring.prometheus || monitoring.kubernetes {
            names.push("prometheus".into());
        }
        names
    });
    let auth = auth::check_auth(&mut c, raw.auth, auth_clients.as_deref());
    let nodes = nodes::check_nodes(
        &mut c,
        raw.nodes,
        nodes::NodeDefaults {
            client_port,
            peer_port,
            data_dir: &data_dir,
            transport: rc.transport,
            cluster_data_dir_given: rc.data_dir.is_some(),
        },
    );
    let discovery =
        discovery::check_discovery(&mut c, base_dir, rc.discovery, bootstrap, rc.dns.is_some());
    let dns = dns::check_dns(&mut c, rc.dns, bootstrap, &nodes);
    nodes::check_members(&mut c, &nodes, bootstrap, dns.as_ref());
    if nodes.iter().any(|n| n.transport == TransportKind::Ssh)
        && !config_dir.starts_with('/')
        && !config_dir.is_empty()
    {
        c.error(
            Rule::RelativePathOverSsh,
            "cluster.config_dir",
            format!("config_dir {config_dir:?} is relative, but members reached over ssh need a path on their own host"),
            "use an absolute path such as /etc/cairn (relative paths are for `transport: local` members)",
        );
    }
    let apply = check_apply(&mut c, base_dir, raw.apply);
    if c.positions.contains_key("nodes")
        && nodes.is_empty()
        && !c.errors.iter().any(|p| p.field.starts_with("nodes["))
    {
        c.error(
            Rule::NoMembers,
            "nodes",
            "the cluster has no members".into(),
            "list at least one node (3 or 5 for fault tolerance)",
        );
    }

    if !c.errors.is_empty() {
        let mut errors = c.errors;
        errors.sort_by_key(|p| p.pos);
        return Err(SpecError::Invalid(errors));
    }
    let mut tls = tls;
    if let Some(t) = &mut tls {
        // The scrape configs authenticate as `prometheus`; make sure that identity gets a certificate.
        if (monitoring.prometheus || monitoring.kubernetes)
            && !t.clients.iter().any(|n| n == "prometheus")
        {
            t.clients.push("prometheus".into());
        }
    }
    Ok(Spec {
        file: file.into(),
        base_dir: base_dir.to_path_buf(),
        token: rc.token.unwrap_or_else(|| name.clone()),
        name,
        bootstrap,
        dns,
        discovery,
        config_dir,
        raft_timing,
        tls,
        firewall,
        log_file,
        monitoring,
        apply,
        auth,
        nodes,
        warnings: c.warnings,
    })
}

/// Either field alone takes cairn's default for the other; the pair must pass etcd's checks (election
/// timeout at least 5 heartbeats, which cairn refuses to start without too, and at most 50 s).
fn check_raft_timing(
    c: &mut Collector,
    heartbeat: Option<u32>,
    election: Option<u32>,
) -> Option<RaftTiming> {
    if heartbeat.is_none() && election.is_none() {
        return None;
    }
    let t = RaftTiming {
        heartbeat_interval_ms: heartbeat.unwrap_or(100),
        election_timeout_ms: election.unwrap_or(1000),
    };
    let (h, e) = (t.heartbeat_interval_ms, t.election_timeout_ms);
    if h == 0 || u64::from(e) < 5 * u64::from(h) || e > 50_000 {
        let field = if election.is_some() {
            "cluster.election_timeout_ms"
        } else {
            "cluster.heartbeat_interval_ms"
        };
        c.error(
            Rule::BadRaftTiming,
            field,
            format!("an election timeout of {e} ms with a heartbeat of {h} ms is outside what etcd accepts"),
            "make the election timeout at least 5 heartbeats and at most 50000 ms, with a heartbeat above 0 \
             (e.g. 100 and 1000, the defaults; slow hosts: 1000 and 10000)",
        );
    }
    Some(t)
}

fn check_privileged(c: &mut Collector, port: Option<u16>, field: &str) {
    if let Some(p) = port.filter(|p| *p < 1024) {
        c.error(
            Rule::PrivilegedPort,
            field,
            format!(
                "port {p} is privileged (below 1024): cairn runs as the unprivileged user cairn without \
                 capabilities (CapabilityBoundingSet= in cairn.service) and cannot bind it"
            ),
            "use a port from 1024 to 65535 (etcd's are 2379 for clients and 2380 for peers)",
        );
    }
}

fn check_dir(c: &mut Collector, dir: &str, field: &str) {
    if dir.trim().is_empty() {
        c.error(
            Rule::EmptyPath,
            field,
            "the directory is empty".into(),
            "give a directory, e.g. /var/lib/cairn (data) or /etc/cairn (config)",
        );
    } else if let Some(bad) = unknown_placeholder(dir) {
        let given = bad.trim_matches(['{', '}']);
        let hint = did_you_mean(given, &["name"], "placeholder");
        c.error(
            Rule::UnknownPlaceholder,
            field,
            format!("{bad:?} in {dir:?} is not a placeholder provision knows"),
            &format!("{hint}; `{{name}}` is replaced by the member name"),
        );
    }
}

fn check_apply(c: &mut Collector, base_dir: &Path, raw: Option<RawApply>) -> Apply {
    let raw = raw.unwrap_or_default();
    let health_timeout_seconds = raw.health_timeout_seconds.unwrap_or(120);
    if health_timeout_seconds == 0 {
        c.error(
            Rule::ZeroHealthTimeout,
            "apply.health_timeout_seconds",
            "a health timeout of 0 s can never be met".into(),
            "use a number of seconds such as 120 (the default)",
        );
    }
    Apply {
        known_hosts: raw.known_hosts.map(|k| base_dir.join(k)),
        max_clock_skew_seconds: raw.max_clock_skew_seconds.unwrap_or(10),
        health_timeout_seconds,
    }
}

fn check_firewall(c: &mut Collector, f: Option<RawFirewall>) -> Firewall {
    let Some(f) = f else {
        return Firewall {
            backend: FirewallBackend::None,
            client_sources: Vec::new(),
        };
    };
    let mut client_sources = Vec::new();
    for (i, s) in f.client_sources.iter().enumerate() {
        let parsed = s
            .parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(n) => client_sources.push(n.trunc()),
            Err(_) => c.error(
                Rule::BadClientSource,
                &format!("firewall.client_sources[{i}]"),
                format!("{s:?} is not a CIDR network or an IP address"),
                "write a network such as 10.0.0.0/8 or 192.168.1.0/24 (prefix length 0-32 for IPv4, 0-128 for IPv6)",
            ),
        }
    }
    Firewall {
        backend: f.backend.unwrap_or(FirewallBackend::Nftables),
        client_sources,
    }
}
