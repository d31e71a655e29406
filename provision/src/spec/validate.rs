//! Raw cluster file → checked `Spec`. Collects every problem in one pass; each names the field and the fix.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use super::raw::*;
use super::*;

struct Collector<'a> {
    file: &'a str,
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Collector<'_> {
    fn problem(&self, at: &str, message: String, fix: &str) -> Problem {
        Problem {
            file: self.file.into(),
            at: at.into(),
            message,
            fix: fix.into(),
        }
    }
    fn error(&mut self, at: &str, message: String, fix: &str) {
        let p = self.problem(at, message, fix);
        self.errors.push(p);
    }
    fn warn(&mut self, at: &str, message: String, fix: &str) {
        let p = self.problem(at, message, fix);
        self.warnings.push(p);
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

/// A syntactically valid DNS name (labels of letters, digits, hyphens).
fn is_dns_name(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

pub(super) fn validate(file: &str, base_dir: &Path, raw: RawSpec) -> Result<Spec, SpecError> {
    let mut c = Collector {
        file,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let rc = raw.cluster;
    if !is_simple_name(&rc.name) {
        c.error(
            "cluster.name",
            format!("cluster name {:?} is not a simple name", rc.name),
            "use letters, digits, '-' and '_' only (it is used in file names and labels)",
        );
    }
    let bootstrap = rc.bootstrap.unwrap_or(Bootstrap::Static);
    let dns = match rc.dns {
        Some(d) => match d.domain {
            Some(domain) if is_dns_name(&domain) => Some(Dns {
                domain: domain.trim_end_matches('.').to_string(),
                srv_name: d.srv_name,
            }),
            Some(domain) => {
                c.error(
                    "cluster.dns.domain",
                    format!("{domain:?} is not a valid DNS domain"),
                    "write a domain such as example.com",
                );
                None
            }
            None => None,
        },
        None => None,
    };
    if let Some(d) = &dns {
        if !d.srv_name.is_empty() && !is_simple_name(&d.srv_name) {
            c.error(
                "cluster.dns.srv_name",
                format!("srv_name {:?} is not a simple name", d.srv_name),
                "use letters, digits and '-' (it becomes _etcd-server-ssl-<srv_name>._tcp)",
            );
        }
    }
    if bootstrap == Bootstrap::Dns && dns.is_none() {
        c.error(
            "cluster.dns.domain",
            "bootstrap: dns needs a DNS domain to look up SRV records in (--discovery-srv)".into(),
            "add `dns: { domain: example.com }` under `cluster:`, or use `bootstrap: static`",
        );
    }
    let client_port = rc.client_port.unwrap_or(2379);
    let peer_port = rc.peer_port.unwrap_or(2380);
    let data_dir = rc.data_dir.unwrap_or_else(|| "/var/lib/cairn".into());
    let config_dir = rc.config_dir.unwrap_or_else(|| "/etc/cairn".into());

    let tls = raw
        .tls
        .filter(|t| t.enabled != Some(false))
        .map(|t| check_tls(&mut c, base_dir, t));

    let firewall = check_firewall(&mut c, raw.firewall);
    let log_file = raw
        .logging
        .and_then(|l| l.file)
        .unwrap_or_else(|| "/var/log/cairn/cairn.log".into());
    if !log_file.starts_with('/') {
        c.error(
            "logging.file",
            format!("log file {log_file:?} is not an absolute path"),
            "rsyslog needs an absolute path, e.g. /var/log/cairn/cairn.log",
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

    let mut nodes = Vec::new();
    for (i, n) in raw.nodes.into_iter().enumerate() {
        let at = format!("nodes[{i}]");
        if !is_simple_name(&n.name) {
            c.error(
                &format!("{at}.name"),
                format!("member name {:?} is not a simple name", n.name),
                "use letters, digits, '-' and '_' (etcd --name; also a directory name)",
            );
        }
        let address = match n.address.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) if is_dns_name(&n.address) => {
                c.error(
                    &format!("{at}.address"),
                    format!(
                        "expected IP for binding, got hostname {:?} (etcd: \"expected IP in URL for binding\")",
                        n.address
                    ),
                    "put the IP in `address:` and the name in `hostname:`",
                );
                None
            }
            Err(_) => {
                c.error(
                    &format!("{at}.address"),
                    format!("{:?} is not an IPv4 or IPv6 address", n.address),
                    "write the member's IP, e.g. 10.0.1.10 or fd00::10",
                );
                None
            }
        };
        if let Some(h) = &n.hostname {
            if !is_dns_name(h) || h.parse::<IpAddr>().is_ok() {
                c.error(
                    &format!("{at}.hostname"),
                    format!("{h:?} is not a DNS name"),
                    "write a fully qualified name such as infra0.example.com, or drop `hostname:`",
                );
            }
        }
        let Some(address) = address else { continue };
        nodes.push(Node {
            name: n.name,
            address,
            hostname: n.hostname.map(|h| h.trim_end_matches('.').to_string()),
            client_port: n.client_port.unwrap_or(client_port),
            peer_port: n.peer_port.unwrap_or(peer_port),
            data_dir: n.data_dir.unwrap_or_else(|| data_dir.clone()),
            transport: n.transport.or(rc.transport).unwrap_or(TransportKind::Ssh),
            ssh: n.ssh,
        });
    }
    check_members(&mut c, &nodes, bootstrap, dns.as_ref());
    check_transports(&mut c, &nodes);
    let apply = check_apply(&mut c, base_dir, raw.apply);
    if let Some(t) = &tls {
        for (i, name) in t.clients.iter().enumerate() {
            if !is_simple_name(name) {
                c.error(
                    &format!("tls.clients[{i}]"),
                    format!("client identity {name:?} is not a simple name"),
                    "use letters, digits, '-' and '_' (it becomes the CN and a file name)",
                );
            }
            if t.clients[..i].contains(name) {
                c.error(
                    &format!("tls.clients[{i}]"),
                    format!("client identity {name:?} is listed twice"),
                    "remove the duplicate",
                );
            }
        }
    }

    if !c.errors.is_empty() {
        return Err(SpecError::Invalid(c.errors));
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
        token: rc.token.unwrap_or_else(|| rc.name.clone()),
        name: rc.name,
        bootstrap,
        dns,
        config_dir,
        tls,
        firewall,
        log_file,
        monitoring,
        apply,
        nodes,
        warnings: c.warnings,
    })
}

/// `transport: local` members share this machine: their ports and data dirs must differ, and `ssh:` is
/// meaningless for them.
fn check_transports(c: &mut Collector, nodes: &[Node]) {
    for (i, n) in nodes.iter().enumerate() {
        if n.transport == TransportKind::Local && n.ssh.is_some() {
            c.error(
                &format!("nodes[{i}].ssh"),
                format!(
                    "member {} uses transport local, so its ssh settings would be ignored",
                    n.name
                ),
                "remove `ssh:` or set `transport: ssh` for this member",
            );
        }
    }
}

fn check_apply(c: &mut Collector, base_dir: &Path, raw: Option<RawApply>) -> Apply {
    let raw = raw.unwrap_or(RawApply {
        known_hosts: None,
        max_clock_skew_seconds: None,
        health_timeout_seconds: None,
    });
    let health_timeout_seconds = raw.health_timeout_seconds.unwrap_or(120);
    if health_timeout_seconds == 0 {
        c.error(
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

fn check_tls(c: &mut Collector, base_dir: &Path, t: RawTls) -> Tls {
    let tls = Tls {
        key_algorithm: t.key_algorithm.unwrap_or(KeyAlgorithm::EcdsaP256),
        ca_validity_days: t.ca_validity_days.unwrap_or(3650),
        validity_days: t.validity_days.unwrap_or(825),
        renew_before_days: t.renew_before_days.unwrap_or(30),
        ca: t.ca.unwrap_or(CaMode::Shared),
        import_ca: t.import_ca.map(|i| ImportCa {
            cert: base_dir.join(i.cert),
            key: base_dir.join(i.key),
        }),
        clients: t
            .clients
            .unwrap_or_else(|| vec!["admin".into(), "prometheus".into()]),
    };
    if tls.validity_days == 0 || tls.ca_validity_days == 0 {
        c.error(
            "tls.validity_days",
            "certificate validity must be at least one day".into(),
            "set validity_days (default 825) and ca_validity_days (default 3650) above 0",
        );
    }
    if tls.renew_before_days >= tls.validity_days {
        c.error(
            "tls.renew_before_days",
            format!(
                "renew_before_days ({}) is not below validity_days ({}): every render would reissue every certificate",
                tls.renew_before_days, tls.validity_days
            ),
            "make renew_before_days smaller than validity_days (default 30 of 825)",
        );
    }
    if let Some(imp) = &tls.import_ca {
        if tls.ca == CaMode::Separate {
            c.error(
                "tls.import_ca",
                "import_ca gives one CA, but `ca: separate` asks for two".into(),
                "use `ca: shared` with import_ca",
            );
        }
        match std::fs::read_to_string(&imp.cert) {
            Err(e) => c.error(
                "tls.import_ca.cert",
                format!("cannot read {}: {e}", imp.cert.display()),
                "paths are relative to the cluster file; point it at the CA certificate (PEM)",
            ),
            Ok(pem) => match crate::pki::inspect_pem(&pem) {
                Err(e) => c.error(
                    "tls.import_ca.cert",
                    format!("{}: {e}", imp.cert.display()),
                    "give a PEM CA certificate",
                ),
                Ok(info) => {
                    let now = time::OffsetDateTime::now_utc();
                    if info.not_after < now {
                        c.error(
                            "tls.import_ca.cert",
                            format!(
                                "imported CA {} expired on {} (etcd: \"certificate has expired or is not yet valid\")",
                                imp.cert.display(),
                                info.not_after.date()
                            ),
                            "renew the CA, or drop import_ca to let provision create one",
                        );
                    } else if info.not_before > now {
                        c.error(
                            "tls.import_ca.cert",
                            format!(
                                "imported CA {} is not valid before {} (clock skew?)",
                                imp.cert.display(),
                                info.not_before
                            ),
                            "check this machine's clock, or reissue the CA with a past start date",
                        );
                    }
                    if !info.is_ca {
                        c.error(
                            "tls.import_ca.cert",
                            format!(
                                "{} is not a CA certificate (no basicConstraints CA:TRUE)",
                                imp.cert.display()
                            ),
                            "point import_ca.cert at the CA, not at a leaf certificate",
                        );
                    }
                }
            },
        }
        if let Err(e) = std::fs::read_to_string(&imp.key) {
            c.error(
                "tls.import_ca.key",
                format!("cannot read {}: {e}", imp.key.display()),
                "paths are relative to the cluster file; point it at the CA private key (PEM)",
            );
        }
    }
    tls
}

fn check_firewall(c: &mut Collector, f: Option<RawFirewall>) -> Firewall {
    let Some(f) = f else {
        return Firewall {
            backend: FirewallBackend::None,
            client_sources: Vec::new(),
        };
    };
    let mut client_sources = Vec::new();
    for (i, s) in f.client_sources.unwrap_or_default().iter().enumerate() {
        let parsed = s
            .parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(n) => client_sources.push(n.trunc()),
            Err(_) => c.error(
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

fn check_members(c: &mut Collector, nodes: &[Node], bootstrap: Bootstrap, dns: Option<&Dns>) {
    if nodes.is_empty() {
        c.error(
            "nodes",
            "the cluster has no members".into(),
            "list at least one node (3 or 5 for fault tolerance)",
        );
        return;
    }
    if nodes.len().is_multiple_of(2) {
        c.warn(
            "nodes",
            format!(
                "{} members: an even count adds no fault tolerance over {} (quorum is {})",
                nodes.len(),
                nodes.len() - 1,
                nodes.len() / 2 + 1
            ),
            "use an odd number of members (3 or 5)",
        );
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut hostnames: HashMap<&str, usize> = HashMap::new();
    let mut sockets: HashMap<(IpAddr, u16), (usize, &str)> = HashMap::new();
    let mut addresses: HashMap<IpAddr, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if let Some(j) = names.insert(&n.name, i) {
            c.error(
                &format!("nodes[{i}].name"),
                format!("member name {:?} is also used by nodes[{j}]", n.name),
                "give every member a unique name",
            );
        }
        if let Some(h) = &n.hostname {
            if let Some(j) = hostnames.insert(h, i) {
                c.error(
                    &format!("nodes[{i}].hostname"),
                    format!("hostname {h:?} is also used by nodes[{j}]"),
                    "give every member its own hostname",
                );
            }
        }
        if n.client_port == n.peer_port {
            c.error(
                &format!("nodes[{i}]"),
                format!(
                    "member {} uses port {} for both client and peer traffic",
                    n.name, n.client_port
                ),
                "use different client_port and peer_port (default 2379 and 2380)",
            );
        }
        for (port, kind) in [(n.client_port, "client_port"), (n.peer_port, "peer_port")] {
            if let Some((j, other)) = sockets.insert((n.address, port), (i, kind)) {
                if j != i {
                    c.error(
                        &format!("nodes[{i}].{kind}"),
                        format!(
                            "{}:{} is already used by nodes[{j}].{other} (same address and port)",
                            n.address, port
                        ),
                        "members sharing one address need distinct client_port/peer_port overrides",
                    );
                }
            }
        }
        if let Some(j) = addresses.insert(n.address, i) {
            if !n.address.is_loopback() {
                c.error(
                    &format!("nodes[{i}].address"),
                    format!(
                        "address {} is also used by nodes[{j}]: two members on one host share its failures",
                        n.address
                    ),
                    "give every member its own host address (only a loopback test cluster may share one)",
                );
            }
        }
        if bootstrap == Bootstrap::Dns {
            match (&n.hostname, dns) {
                (None, _) => c.error(
                    &format!("nodes[{i}].hostname"),
                    format!("member {} has no hostname, but DNS discovery needs SRV targets that are names", n.name),
                    "add `hostname: <name>.<domain>` to the node",
                ),
                (Some(h), Some(d)) if !h.ends_with(&format!(".{}", d.domain)) => c.error(
                    &format!("nodes[{i}].hostname"),
                    format!("hostname {h} is outside the discovery domain {}: its A record cannot be in that zone", d.domain),
                    &format!("use a hostname under {}", d.domain),
                ),
                _ => {}
            }
        }
    }
}
