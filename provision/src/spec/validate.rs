//! Raw cluster file → checked `Spec`. Collects every problem in one pass; each names the field, its
//! line:column (from the reader's positions) and the fix. The rules are listed in spec/rules.rs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use super::raw::*;
use super::read::{did_you_mean, Positions};
use super::*;

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
pub(super) fn is_dns_name(s: &str) -> bool {
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

/// Why an address text is not an IP, for the message.
fn not_an_ip(s: &str) -> (Rule, String, &'static str) {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        let bad = parts
            .iter()
            .find(|p| p.parse::<u8>().is_err() || (p.len() > 1 && p.starts_with('0')))
            .copied()
            .unwrap_or("");
        return (
            Rule::BadAddress,
            format!("{s:?} is not a valid IPv4 address: {bad:?} is not a number from 0 to 255"),
            "each of the four numbers of an IPv4 address is 0-255, without leading zeros",
        );
    }
    if is_dns_name(s) && s.chars().any(|c| c.is_ascii_alphabetic()) {
        return (
            Rule::AddressIsHostname,
            format!(
                "expected an IP to bind and advertise, got the host name {s:?} (etcd: \"expected IP in URL for binding\")"
            ),
            "put the IP in `address:` and the name in `hostname:`",
        );
    }
    (
        Rule::BadAddress,
        format!("{s:?} is not an IPv4 or IPv6 address"),
        "write the member's IP, e.g. 10.0.1.10 or fd00::10 (a list for dual stack: [10.0.1.10, \"fd00::10\"])",
    )
}

/// Why an IP cannot be a member's address, if it cannot.
fn unusable(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("the unspecified address: members must advertise an address others can dial");
    }
    if ip.is_multicast() {
        return Some("a multicast address");
    }
    match ip {
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            Some("an IPv4-mapped IPv6 address: write the IPv4 address itself")
        }
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Some(
            "an IPv6 link-local address, which needs an interface (%zone) no URL here can carry",
        ),
        _ => None,
    }
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

    let tls = raw
        .tls
        .filter(|t| t.enabled != Some(false))
        .map(|t| check_tls(&mut c, base_dir, t));
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

    let nodes = check_nodes(
        &mut c,
        raw.nodes,
        NodeDefaults {
            client_port,
            peer_port,
            data_dir: &data_dir,
            transport: rc.transport,
            cluster_data_dir_given: rc.data_dir.is_some(),
        },
    );
    let dns = check_dns(&mut c, rc.dns, bootstrap, &nodes);
    check_members(&mut c, &nodes, bootstrap, dns.as_ref());
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

/// Cluster-level defaults of every member.
struct NodeDefaults<'a> {
    client_port: u16,
    peer_port: u16,
    data_dir: &'a str,
    transport: Option<TransportKind>,
    cluster_data_dir_given: bool,
}

fn check_nodes(c: &mut Collector, raw: Vec<RawNode>, d: NodeDefaults) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut relative_default_reported = false;
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, n) in raw.into_iter().enumerate() {
        let at = format!("nodes[{i}]");
        let name = n.name.clone().unwrap_or_default();
        if n.name.is_some() && !is_simple_name(&name) {
            c.error(
                Rule::BadMemberName,
                &format!("{at}.name"),
                format!("member name {name:?} is not a simple name"),
                "use letters, digits, '-' and '_', at most 63 (etcd --name; also a directory name)",
            );
        }
        if let Some(j) = n.name.as_ref().and_then(|_| names.insert(name.clone(), i)) {
            c.error(
                Rule::DuplicateMemberName,
                &format!("{at}.name"),
                format!("member name {name:?} is also used by nodes[{j}]"),
                "give every member a unique name",
            );
        }
        let transport = n.transport.or(d.transport).unwrap_or(TransportKind::Ssh);
        let mut addresses: Vec<IpAddr> = Vec::new();
        let mut ok = true;
        if n.addresses.is_empty() && c.positions.contains_key(&format!("{at}.address")) {
            c.error(
                Rule::BadAddress,
                &format!("{at}.address"),
                "the address list is empty".into(),
                "give the member's IP, or a list of its IPs for dual stack",
            );
        }
        for (field, text) in &n.addresses {
            let ip = match text.trim().parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => {
                    let (rule, message, fix) = not_an_ip(text);
                    c.error(rule, field, message, fix);
                    ok = false;
                    continue;
                }
            };
            if let Some(why) = unusable(ip) {
                c.error(
                    Rule::UnusableAddress,
                    field,
                    format!("{ip} cannot be a member's address: it is {why}"),
                    "write the address of the member's network interface",
                );
                ok = false;
            } else if ip.is_loopback() && transport == TransportKind::Ssh {
                c.error(
                    Rule::LoopbackOverSsh,
                    field,
                    format!(
                        "{ip} is a loopback address, but member {name} is reached over ssh: other \
                         members could never dial it"
                    ),
                    "write the host's network address, or set `transport: local` for a one-machine cluster",
                );
                ok = false;
            } else if addresses.contains(&ip) {
                c.error(
                    Rule::DuplicateAddress,
                    field,
                    format!("{ip} is listed twice for member {name}"),
                    "list each address once",
                );
            } else {
                addresses.push(ip);
            }
        }
        if let Some(h) = &n.hostname {
            if !is_dns_name(h) || h.parse::<IpAddr>().is_ok() {
                c.error(
                    Rule::BadHostname,
                    &format!("{at}.hostname"),
                    format!("{h:?} is not a DNS name"),
                    "write a fully qualified name such as infra0.example.com, or drop `hostname:`",
                );
            }
        }
        for (port, field) in [(n.client_port, "client_port"), (n.peer_port, "peer_port")] {
            check_privileged(c, port, &format!("{at}.{field}"));
        }
        let data_dir = n.data_dir.clone().unwrap_or_else(|| d.data_dir.to_string());
        if let Some(dd) = &n.data_dir {
            check_dir(c, dd, &format!("{at}.data_dir"));
        }
        if transport == TransportKind::Ssh
            && !data_dir.starts_with('/')
            && !data_dir.trim().is_empty()
        {
            let (field, once) = match &n.data_dir {
                Some(_) => (format!("{at}.data_dir"), false),
                None if d.cluster_data_dir_given => ("cluster.data_dir".to_string(), true),
                None => (format!("{at}.data_dir"), false),
            };
            if !(once && relative_default_reported) {
                c.error(
                    Rule::RelativePathOverSsh,
                    &field,
                    format!(
                        "data_dir {data_dir:?} is relative, but member {name} is reached over ssh: \
                         a relative path would mean the working directory of this machine"
                    ),
                    "use an absolute path such as /var/lib/cairn (relative paths are for `transport: local` members)",
                );
                relative_default_reported |= once;
            }
        }
        if transport == TransportKind::Local && n.ssh.is_some() {
            c.error(
                Rule::SshOnLocalMember,
                &format!("{at}.ssh"),
                format!("member {name} uses transport local, so its ssh settings would be ignored"),
                "remove `ssh:` or set `transport: ssh` for this member",
            );
        }
        let (Some(first), true, Some(_)) = (addresses.first().copied(), ok, n.name.as_ref()) else {
            continue;
        };
        nodes.push(Node {
            name,
            address: first,
            addresses,
            hostname: n.hostname.map(|h| h.trim_end_matches('.').to_string()),
            client_port: n.client_port.unwrap_or(d.client_port),
            peer_port: n.peer_port.unwrap_or(d.peer_port),
            data_dir,
            transport,
            ssh: n.ssh,
        });
    }
    choose_peer_addresses(c, &mut nodes);
    nodes
}

/// Every member dials every other at its one peer URL, so that URL must be in a family all members
/// have. A member advertises its first address when that family is shared by all, else its first
/// address of a shared family; with no shared family some pair can never talk, which is refused.
fn choose_peer_addresses(c: &mut Collector, nodes: &mut [Node]) {
    let all_have = |v6: bool| {
        nodes
            .iter()
            .all(|n| n.addresses.iter().any(|a| a.is_ipv6() == v6))
    };
    let (v4, v6) = (all_have(false), all_have(true));
    if !v4 && !v6 {
        let only = |fam6: bool| {
            nodes
                .iter()
                .position(|n| n.addresses.iter().all(|a| a.is_ipv6() == fam6))
        };
        if let (Some(a), Some(b)) = (only(false), only(true)) {
            let (na, nb) = (&nodes[a].name, &nodes[b].name);
            c.error(
                Rule::NoCommonFamily,
                &format!("nodes[{b}].address"),
                format!(
                    "member {nb} has only IPv6 addresses and member {na} (nodes[{a}]) only IPv4: they share \
                     no address family, so they can never reach each other"
                ),
                &format!(
                    "give {na} an IPv6 address or {nb} an IPv4 one (dual stack: `address: [10.0.0.1, \"fd00::1\"]`)"
                ),
            );
        }
        return;
    }
    for (i, n) in nodes.iter_mut().enumerate() {
        let shared = |a: &IpAddr| if a.is_ipv6() { v6 } else { v4 };
        if let Some(peer) = n.addresses.iter().copied().find(shared) {
            if peer != n.addresses[0] {
                c.error(
                    Rule::PeerFamilyNotFirst,
                    &format!("nodes[{i}].address"),
                    format!(
                        "member {}'s peer URL uses {peer}, not its first address {}: not every member has an {} address",
                        n.name,
                        n.addresses[0],
                        if n.addresses[0].is_ipv6() { "IPv6" } else { "IPv4" }
                    ),
                    "nothing to do if that is intended; give every member an address of both families to use either",
                );
            }
            n.address = peer;
        }
    }
}

fn check_dns(
    c: &mut Collector,
    raw: Option<RawDns>,
    bootstrap: Bootstrap,
    nodes: &[Node],
) -> Option<Dns> {
    let d = raw.unwrap_or_default();
    let domain = match d.domain {
        Some(domain) if is_dns_name(&domain) => domain.trim_end_matches('.').to_string(),
        Some(domain) => {
            c.error(
                Rule::BadDomain,
                "cluster.dns.domain",
                format!("{domain:?} is not a valid DNS domain"),
                "write a domain such as example.com",
            );
            return None;
        }
        None => {
            if bootstrap == Bootstrap::Dns {
                c.error(
                    Rule::DnsWithoutDomain,
                    "cluster.dns.domain",
                    "bootstrap: dns needs a DNS domain to look up SRV records in (--discovery-srv)".into(),
                    "add `dns: { domain: example.com }` under `cluster:`, or use `bootstrap: static`",
                );
            }
            return None;
        }
    };
    let srv_name = d.srv_name.unwrap_or_default();
    if !srv_name.is_empty() && !is_simple_name(&srv_name) {
        c.error(
            Rule::BadSrvName,
            "cluster.dns.srv_name",
            format!("srv_name {srv_name:?} is not a simple name"),
            "use letters, digits and '-' (it becomes _etcd-server-ssl-<srv_name>._tcp)",
        );
    }
    let mut name_servers = Vec::new();
    for (i, ns) in d.name_servers.into_iter().enumerate() {
        let field = format!("cluster.dns.name_servers[{i}]");
        let Some(name) = ns.name else { continue };
        let name = name.trim_end_matches('.').to_string();
        if !is_dns_name(&name) {
            c.error(
                Rule::BadNameServer,
                &field,
                format!("name server {name:?} is not a DNS name"),
                "write the name server's host name, e.g. ns1.example.net",
            );
            continue;
        }
        let address = match ns
            .address
            .map(|a| a.trim().parse::<IpAddr>().map_err(|_| a))
        {
            Some(Ok(ip)) if unusable(ip).is_none() => Some(ip),
            Some(Ok(ip)) => {
                c.error(
                    Rule::BadNameServer,
                    &format!("{field}.address"),
                    format!("{ip} cannot be a name server's address"),
                    "write the name server's IP",
                );
                continue;
            }
            Some(Err(a)) => {
                c.error(
                    Rule::BadNameServer,
                    &format!("{field}.address"),
                    format!("{a:?} is not an IPv4 or IPv6 address"),
                    "write the name server's IP",
                );
                continue;
            }
            None => None,
        };
        let in_zone = name == domain || name.ends_with(&format!(".{domain}"));
        let is_member = nodes
            .iter()
            .any(|n| n.hostname.as_deref() == Some(name.as_str()));
        if in_zone && address.is_none() && !is_member {
            c.error(
                Rule::NameServerWithoutAddress,
                &field,
                format!(
                    "name server {name} is inside {domain} but is no member's hostname, so the zone has no address \
                     for it (secondaries could not reach it)"
                ),
                &format!("write it as `{{ name: {name}, address: <its IP> }}`, or name a server outside {domain}"),
            );
            continue;
        }
        name_servers.push(NameServer { name, address });
    }
    // Without name_servers the zone names the first member inside it as its server; with none there, the
    // zone would have an NS record without an address (named refuses to load it).
    let member_inside = nodes.iter().any(|n| {
        n.hostname
            .as_deref()
            .is_some_and(|h| h.ends_with(&format!(".{domain}")))
    });
    if name_servers.is_empty()
        && !member_inside
        && c.errors.iter().all(|p| !p.field.starts_with("cluster.dns"))
    {
        c.error(
            Rule::ZoneWithoutNameServer,
            "cluster.dns",
            format!(
                "the zone {domain} would have no name server with an address: no member's hostname is inside it \
                 and name_servers is empty"
            ),
            &format!("give the members hostnames under {domain}, or list the zone's servers in `name_servers`"),
        );
    }
    Some(Dns {
        domain,
        srv_name,
        name_servers,
    })
}

fn check_members(c: &mut Collector, nodes: &[Node], bootstrap: Bootstrap, dns: Option<&Dns>) {
    if nodes.len() > 1 && nodes.len().is_multiple_of(2) {
        c.error(
            Rule::EvenMembers,
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
    let mut hostnames: HashMap<&str, usize> = HashMap::new();
    let mut sockets: HashMap<(IpAddr, u16), (usize, &str)> = HashMap::new();
    let mut addresses: HashMap<IpAddr, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if let Some(h) = &n.hostname {
            if let Some(j) = hostnames.insert(h, i) {
                c.error(
                    Rule::DuplicateHostname,
                    &format!("nodes[{i}].hostname"),
                    format!("hostname {h:?} is also used by nodes[{j}]"),
                    "give every member its own hostname",
                );
            }
        }
        if n.client_port == n.peer_port {
            c.error(
                Rule::SamePortTwice,
                &format!("nodes[{i}].peer_port"),
                format!(
                    "member {} uses port {} for both client and peer traffic",
                    n.name, n.client_port
                ),
                "use different client_port and peer_port (default 2379 and 2380)",
            );
        }
        for &ip in &n.addresses {
            for (port, kind) in [(n.client_port, "client_port"), (n.peer_port, "peer_port")] {
                if let Some((j, other)) = sockets.insert((ip, port), (i, kind)) {
                    if j != i {
                        c.error(
                            Rule::SocketClash,
                            &format!("nodes[{i}].{kind}"),
                            format!(
                                "{ip} port {port} is already used by nodes[{j}].{other} (same address and port)"
                            ),
                            "members sharing one address need distinct client_port/peer_port overrides",
                        );
                    }
                }
            }
            if let Some(j) = addresses.insert(ip, i) {
                if !ip.is_loopback() && j != i {
                    c.error(
                        Rule::DuplicateAddress,
                        &format!("nodes[{i}].address"),
                        format!(
                            "address {ip} is also used by nodes[{j}]: two members on one host share its failures"
                        ),
                        "give every member its own host address (only a loopback test cluster may share one)",
                    );
                }
            }
        }
        if bootstrap == Bootstrap::Dns {
            match (&n.hostname, dns) {
                (None, _) => c.error(
                    Rule::HostnameMissingForDns,
                    &format!("nodes[{i}].hostname"),
                    format!("member {} has no hostname, but DNS discovery needs SRV targets that are names", n.name),
                    "add `hostname: <name>.<domain>` to the node",
                ),
                (Some(h), Some(d)) if !h.ends_with(&format!(".{}", d.domain)) => c.error(
                    Rule::HostnameOutsideDomain,
                    &format!("nodes[{i}].hostname"),
                    format!("hostname {h} is outside the discovery domain {}: its address records cannot be in that zone", d.domain),
                    &format!("use a hostname under {}", d.domain),
                ),
                _ => {}
            }
        }
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

fn check_tls(c: &mut Collector, base_dir: &Path, t: RawTls) -> Tls {
    let given_clients = t.clients.is_some();
    let tls = Tls {
        key_algorithm: t.key_algorithm.unwrap_or(KeyAlgorithm::EcdsaP256),
        ca_validity_days: t.ca_validity_days.unwrap_or(3650),
        validity_days: t.validity_days.unwrap_or(825),
        renew_before_days: t.renew_before_days.unwrap_or(30),
        ca: t.ca.unwrap_or(CaMode::Shared),
        import_ca: t.import_ca.and_then(|i| {
            Some(ImportCa {
                cert: base_dir.join(i.cert?),
                key: base_dir.join(i.key?),
            })
        }),
        clients: t
            .clients
            .unwrap_or_else(|| vec!["admin".into(), "prometheus".into()]),
    };
    for (days, field) in [
        (tls.validity_days, "tls.validity_days"),
        (tls.ca_validity_days, "tls.ca_validity_days"),
    ] {
        if days == 0 {
            c.error(
                Rule::ZeroValidity,
                field,
                "a certificate valid for 0 days is expired when it is made".into(),
                "set validity_days (default 825) and ca_validity_days (default 3650) above 0",
            );
        }
    }
    if tls.validity_days > 0 && tls.renew_before_days >= tls.validity_days {
        c.error(
            Rule::RenewNotBelowValidity,
            "tls.renew_before_days",
            format!(
                "renew_before_days ({}) is not below validity_days ({}): every render would reissue every certificate",
                tls.renew_before_days, tls.validity_days
            ),
            "make renew_before_days smaller than validity_days (default 30 of 825)",
        );
    }
    if tls.import_ca.is_none()
        && tls.ca_validity_days > 0
        && tls.ca_validity_days < tls.validity_days
    {
        c.error(
            Rule::CaShorterThanLeaves,
            "tls.ca_validity_days",
            format!(
                "the CA would be valid for {} days but the certificates it signs for {}: they would outlive it \
                 and fail verification once it expires",
                tls.ca_validity_days, tls.validity_days
            ),
            "make ca_validity_days at least validity_days (defaults 3650 and 825)",
        );
    }
    if let Some(imp) = &tls.import_ca {
        check_import_ca(c, &tls, imp);
    }
    for (i, name) in tls.clients.iter().enumerate() {
        if !is_simple_name(name) {
            c.error(
                Rule::BadClientName,
                &format!("tls.clients[{i}]"),
                format!("client identity {name:?} is not a simple name"),
                "use letters, digits, '-' and '_' (it becomes the CN and a file name)",
            );
        }
        if tls.clients[..i].contains(name) {
            c.error(
                Rule::DuplicateClient,
                &format!("tls.clients[{i}]"),
                format!("client identity {name:?} is listed twice"),
                "remove the duplicate",
            );
        }
    }
    if given_clients && !tls.clients.iter().any(|n| n == "admin") {
        c.error(
            Rule::NoAdminClient,
            "tls.clients",
            "no `admin` identity: provision apply, status and backup talk to the cluster with the admin \
             client certificate"
                .into(),
            "add admin to tls.clients (e.g. `clients: [admin, prometheus]`)",
        );
    }
    tls
}

fn check_import_ca(c: &mut Collector, tls: &Tls, imp: &ImportCa) {
    if tls.ca == CaMode::Separate {
        c.error(
            Rule::ImportCaWithSeparate,
            "tls.import_ca",
            "import_ca gives one CA, but `ca: separate` asks for two".into(),
            "use `ca: shared` with import_ca",
        );
    }
    let info = match std::fs::read_to_string(&imp.cert) {
        Err(e) => {
            c.error(
                Rule::ImportCaUnreadable,
                "tls.import_ca.cert",
                format!("cannot read {}: {e}", imp.cert.display()),
                "paths are relative to the cluster file; point it at the CA certificate (PEM)",
            );
            None
        }
        Ok(pem) => match crate::pki::inspect_pem(&pem) {
            Err(e) => {
                c.error(
                    Rule::ImportCaNotPem,
                    "tls.import_ca.cert",
                    format!("{}: {e}", imp.cert.display()),
                    "give a PEM CA certificate (-----BEGIN CERTIFICATE-----)",
                );
                None
            }
            Ok(info) => Some(info),
        },
    };
    if let Some(info) = &info {
        let now = time::OffsetDateTime::now_utc();
        let renew = time::Duration::days(tls.renew_before_days.into());
        if info.not_after < now {
            c.error(
                Rule::ImportCaExpired,
                "tls.import_ca.cert",
                format!(
                    "imported CA {} expired on {}: every certificate it signs fails verification (\"certificate has expired or is not yet valid\")",
                    imp.cert.display(),
                    info.not_after.date()
                ),
                "renew the CA, or drop import_ca to let provision create one",
            );
        } else if info.not_after - renew <= now {
            c.error(
                Rule::ImportCaExpired,
                "tls.import_ca.cert",
                format!(
                    "imported CA {} expires on {}, within renew_before_days ({}): certificates signed now would be \
                     due for renewal at once",
                    imp.cert.display(),
                    info.not_after.date(),
                    tls.renew_before_days
                ),
                "renew the CA, or drop import_ca to let provision create one",
            );
        } else if info.not_before > now {
            c.error(
                Rule::ImportCaNotYetValid,
                "tls.import_ca.cert",
                format!(
                    "imported CA {} is not valid before {} (clock skew?)",
                    imp.cert.display(),
                    info.not_before.date()
                ),
                "check this machine's clock, or reissue the CA with a past start date",
            );
        }
        if !info.is_ca {
            c.error(
                Rule::ImportCaNotCa,
                "tls.import_ca.cert",
                format!(
                    "{} is not a CA certificate (no basicConstraints CA:TRUE)",
                    imp.cert.display()
                ),
                "point import_ca.cert at the CA, not at a leaf certificate",
            );
        }
    }
    let key = match std::fs::read_to_string(&imp.key) {
        Ok(k) => k,
        Err(e) => {
            c.error(
                Rule::ImportCaUnreadable,
                "tls.import_ca.key",
                format!("cannot read {}: {e}", imp.key.display()),
                "paths are relative to the cluster file; point it at the CA private key (PEM)",
            );
            return;
        }
    };
    let Some(info) = info else { return };
    match crate::pki::key_matches(&info, &key) {
        Ok(true) => {}
        Ok(false) => c.error(
            Rule::ImportCaKeyMismatch,
            "tls.import_ca.key",
            format!(
                "{} is not the private key of {}: every certificate signed with it would fail verification \
                 (\"certificate signature failure\")",
                imp.key.display(),
                imp.cert.display()
            ),
            "point import_ca.key at the key the CA certificate was made with",
        ),
        Err(e) => c.error(
            Rule::ImportCaNotPem,
            "tls.import_ca.key",
            format!("{}: {e}", imp.key.display()),
            "give the CA's private key in PEM (PKCS#8, -----BEGIN PRIVATE KEY-----)",
        ),
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
