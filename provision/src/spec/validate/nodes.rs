//! Members: names, addresses (dual stack, the family peers use), ports, data dirs, hostnames.

use std::collections::HashMap;
use std::net::IpAddr;

use super::super::raw::*;
use super::super::*;
use super::{check_dir, check_privileged, is_dns_name, is_simple_name, Collector};

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
pub(super) fn unusable(ip: IpAddr) -> Option<&'static str> {
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

/// Cluster-level defaults of every member.
pub(super) struct NodeDefaults<'a> {
    pub(super) client_port: u16,
    pub(super) peer_port: u16,
    pub(super) data_dir: &'a str,
    pub(super) transport: Option<TransportKind>,
    pub(super) cluster_data_dir_given: bool,
}

pub(super) fn check_nodes(c: &mut Collector, raw: Vec<RawNode>, d: NodeDefaults) -> Vec<Node> {
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

pub(super) fn check_members(
    c: &mut Collector,
    nodes: &[Node],
    bootstrap: Bootstrap,
    dns: Option<&Dns>,
) {
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
