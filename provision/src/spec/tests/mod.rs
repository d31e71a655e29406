//! Every validation message: where it points (line:column and field) and the fix it gives.

mod rules;

use std::path::Path;

use super::*;

const OK: &str = "cluster:\n  name: c1\nnodes:\n  - { name: a, address: 10.0.0.1 }\n  - { name: b, address: 10.0.0.2 }\n  - { name: c, address: 10.0.0.3 }\n";

fn problems_in(dir: &Path, yaml: &str) -> Vec<Problem> {
    match parse("cluster.yaml", dir, yaml) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems().to_vec(),
    }
}

fn problems(yaml: &str) -> Vec<Problem> {
    problems_in(Path::new("."), yaml)
}

/// Assert a problem at `field` whose message contains `msg` and whose fix contains `fix`.
fn expect(yaml: &str, field: &str, msg: &str, fix: &str) -> Problem {
    let p = problems(yaml);
    p.iter()
        .find(|p| p.field == field && p.message.contains(msg) && p.fix.contains(fix))
        .cloned()
        .unwrap_or_else(|| panic!("want {field}: {msg} / fix {fix}; got {p:#?}"))
}

fn ok(yaml: &str) -> Spec {
    parse("cluster.yaml", Path::new("."), yaml)
        .unwrap_or_else(|e| panic!("want a valid file, got:\n{e}\n---\n{yaml}"))
}

#[test]
fn valid_file_has_no_problems_and_defaults_apply() {
    let s = ok(OK);
    assert_eq!(s.nodes[0].client_port, 2379);
    assert_eq!(s.token, "c1");
    assert!(s.warnings.is_empty());
}

#[test]
fn unknown_field_gives_line_column_and_did_you_mean() {
    let p = expect(
        "cluster:\n  name: c1\n  bootstrapp: dns\nnodes: []\n",
        "cluster.bootstrapp",
        "unknown field `bootstrapp`",
        "did you mean `bootstrap`",
    );
    assert_eq!((p.pos.line, p.pos.column), (3, 3));
}

#[test]
fn unknown_value_suggests_the_closest() {
    let p = expect(
        &format!("{OK}firewall: {{ backend: nftable }}\n"),
        "firewall.backend",
        "unknown value `nftable`",
        "did you mean `nftables`",
    );
    assert_eq!((p.pos.line, p.pos.column), (7, 22));
}

#[test]
fn duplicate_names_and_addresses_are_errors() {
    let y = OK
        .replace("name: b", "name: a")
        .replace("10.0.0.3", "10.0.0.1");
    expect(&y, "nodes[1].name", "also used by nodes[0]", "unique name");
    expect(
        &y,
        "nodes[2].address",
        "also used by nodes[0]",
        "its own host address",
    );
}

#[test]
fn even_member_count_is_a_warning() {
    let y = OK.replace("  - { name: c, address: 10.0.0.3 }\n", "");
    let s = ok(&y);
    assert!(s
        .warnings
        .iter()
        .any(|w| w.field == "nodes" && w.message.contains("even count")));
}

#[test]
fn same_address_and_port_on_one_host_clash() {
    let y = "cluster:\n  name: c1\n  transport: local\nnodes:\n  - { name: a, address: 127.0.0.1 }\n  - { name: b, address: 127.0.0.1, client_port: 2380, peer_port: 2381 }\n  - { name: c, address: 127.0.0.1, client_port: 3379, peer_port: 3379 }\n";
    expect(
        y,
        "nodes[1].client_port",
        "127.0.0.1 port 2380 is already used by nodes[0].peer_port",
        "distinct",
    );
    expect(
        y,
        "nodes[2].peer_port",
        "for both client and peer",
        "different client_port",
    );
}

#[test]
fn dns_mode_needs_hostnames_in_the_domain() {
    let y = OK
        .replace(
            "name: c1\n",
            "name: c1\n  bootstrap: dns\n  dns: { domain: example.com }\n",
        )
        .replace("10.0.0.1 }", "10.0.0.1, hostname: a.example.org }");
    expect(
        &y,
        "nodes[0].hostname",
        "outside the discovery domain",
        "under example.com",
    );
    expect(&y, "nodes[1].hostname", "has no hostname", "hostname:");
}

#[test]
fn problems_display_file_line_column_field_and_fix() {
    let p = problems(&OK.replace("10.0.0.1", "10.0.0.300"));
    let text = p[0].to_string();
    assert!(
        text.starts_with("cluster.yaml:4:25: nodes[0].address: "),
        "{text}"
    );
    assert!(text.contains("\n    fix: "), "{text}");
}

#[test]
fn key_algorithms_use_the_documented_spelling() {
    for (text, want) in [
        ("ecdsa-p256", KeyAlgorithm::EcdsaP256),
        ("rsa-2048", KeyAlgorithm::Rsa2048),
        ("rsa-3072", KeyAlgorithm::Rsa3072),
        ("rsa-4096", KeyAlgorithm::Rsa4096),
    ] {
        let s = ok(&format!("{OK}tls: {{ key_algorithm: {text} }}\n"));
        assert_eq!(s.tls.expect("tls on").key_algorithm, want);
        assert_eq!(want.to_string(), text);
    }
}

#[test]
fn transport_defaults_to_ssh_and_local_is_taken_from_the_cluster() {
    let s = ok(OK);
    assert_eq!(s.nodes[0].transport, TransportKind::Ssh);
    let local = OK.replace("name: c1\n", "name: c1\n  transport: local\n");
    let s = parse("cluster.yaml", Path::new("/base"), &local).expect("valid");
    assert!(s.nodes.iter().all(|n| n.transport == TransportKind::Local));
    assert_eq!(s.apply.max_clock_skew_seconds, 10);
    assert_eq!(s.apply.health_timeout_seconds, 120);
}

// Issue 19, item 3: ports and addresses no member can use.

#[test]
fn port_zero_and_privileged_ports_are_refused() {
    expect(
        &OK.replace("name: c1\n", "name: c1\n  client_port: 0\n"),
        "cluster.client_port",
        "expected a port between 1 and 65535, got \"0\"",
        "2379",
    );
    expect(
        &OK.replace("10.0.0.2 }", "10.0.0.2, client_port: 443 }"),
        "nodes[1].client_port",
        "port 443 is privileged (below 1024): cairn runs as the unprivileged user cairn without capabilities",
        "from 1024 to 65535",
    );
}

#[test]
fn unspecified_loopback_multicast_broadcast_and_mapped_member_addresses_are_refused() {
    for (addr, why) in [
        ("0.0.0.0", "the unspecified address"),
        ("\"::\"", "the unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("255.255.255.255", "the broadcast address"),
        ("\"::ffff:10.0.0.1\"", "an IPv4-mapped IPv6 address"),
        ("\"fe80::1\"", "an IPv6 link-local address"),
    ] {
        expect(
            &OK.replace("10.0.0.1", addr),
            "nodes[0].address",
            &format!("cannot be a member's address: it is {why}"),
            "network interface",
        );
    }
    expect(
        &OK.replace("10.0.0.1", "127.0.0.1"),
        "nodes[0].address",
        "127.0.0.1 is a loopback address, but member a is reached over ssh",
        "transport: local",
    );
    let local = OK
        .replace("name: c1\n", "name: c1\n  transport: local\n")
        .replace("10.0.0.1", "127.0.0.1");
    ok(&local);
}

// Issue 19, item 4: relative paths on ssh members.

#[test]
fn relative_data_and_config_dirs_are_refused_for_ssh_members() {
    expect(
        &OK.replace("name: c1\n", "name: c1\n  data_dir: ./data/{name}\n"),
        "cluster.data_dir",
        "data_dir \"./data/{name}\" is relative, but member a is reached over ssh",
        "absolute path such as /var/lib/cairn",
    );
    expect(
        &OK.replace("name: c1\n", "name: c1\n  config_dir: etc/cairn\n"),
        "cluster.config_dir",
        "config_dir \"etc/cairn\" is relative",
        "absolute path such as /etc/cairn",
    );
    let p = problems(&OK.replace("name: c1\n", "name: c1\n  data_dir: data\n"));
    assert_eq!(
        p.iter()
            .filter(|p| p.rule == Rule::RelativePathOverSsh)
            .count(),
        1,
        "one problem for the one field: {p:#?}"
    );
}

// Issue 19, item 5: placeholder typos and a missing admin identity.

#[test]
fn a_placeholder_typo_is_refused_with_the_right_spelling() {
    expect(
        &OK.replace(
            "name: c1\n",
            "name: c1\n  data_dir: /var/lib/cairn/{nmae}\n",
        ),
        "cluster.data_dir",
        "\"{nmae}\" in \"/var/lib/cairn/{nmae}\" is not a placeholder provision knows",
        "did you mean `name`?",
    );
    expect(
        &OK.replace("name: c1\n", "name: c1\n  config_dir: /etc/cairn/{name\n"),
        "cluster.config_dir",
        "is not a placeholder provision knows",
        "`{name}` is replaced by the member name",
    );
}

#[test]
fn clients_without_admin_are_refused_at_check() {
    expect(
        &format!("{OK}tls: {{ clients: [prometheus, backup] }}\n"),
        "tls.clients",
        "no `admin` identity: provision apply, status and backup talk to the cluster with the admin client certificate",
        "add admin to tls.clients",
    );
    ok(&format!("{OK}tls: {{ enabled: true }}\n"));
}

// Issue 19, item 6: every problem at once, locations, plain messages.

#[test]
fn five_problems_two_of_them_schema_errors_are_all_reported() {
    let y = "cluster:\n  name: c1\n  client_port: abc\n  bootstrapp: dns\nnodes:\n  - { name: a, address: 10.0.0.1 }\n  - { name: a, address: 10.10.0.300 }\n  - { name: c, address: 10.0.0.3, hostname: \"-x-\" }\n";
    let p = problems(y);
    let got: Vec<(usize, &str, Rule)> = p
        .iter()
        .map(|p| (p.pos.line, p.field.as_str(), p.rule))
        .collect();
    assert_eq!(
        got,
        [
            (3, "cluster.client_port", Rule::BadPort),
            (4, "cluster.bootstrapp", Rule::UnknownField),
            (7, "nodes[1].name", Rule::DuplicateMemberName),
            (7, "nodes[1].address", Rule::BadAddress),
            (8, "nodes[2].hostname", Rule::BadHostname),
        ],
        "{p:#?}"
    );
}

#[test]
fn two_documents_point_at_the_second_one() {
    let p = problems(&format!("{OK}---\ncluster: {{ name: c2 }}\n"));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!((p[0].pos.line, p[0].rule), (7, Rule::SecondDocument));
    assert!(
        p[0].to_string()
            .starts_with("cluster.yaml:7:1: a second YAML document starts here"),
        "{}",
        p[0]
    );
}

#[test]
fn a_bad_ipv4_address_is_not_called_a_hostname() {
    let p = expect(
        &OK.replace("10.0.0.1", "10.10.0.300"),
        "nodes[0].address",
        "\"10.10.0.300\" is not a valid IPv4 address: \"300\" is not a number from 0 to 255",
        "0-255",
    );
    assert!(!p.message.contains("hostname"), "{p}");
    expect(
        &OK.replace("10.0.0.1", "infra0.example.com"),
        "nodes[0].address",
        "expected an IP to bind and advertise, got the host name \"infra0.example.com\"",
        "`hostname:`",
    );
}

#[test]
fn an_empty_file_says_so() {
    for text in ["", "\n", "# a comment\n", "---\n"] {
        let p = problems(text);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!(
            p[0].to_string(),
            "cluster.yaml:1:1: the file is empty (or only comments): there is no cluster in it\n    \
             fix: start from one of examples/*.yaml (static3.yaml shows every section)"
        );
    }
}

#[test]
fn a_bad_port_says_what_a_port_is() {
    let p = expect(
        &OK.replace("10.0.0.2 }", "10.0.0.2, peer_port: 70000 }"),
        "nodes[1].peer_port",
        "expected a port between 1 and 65535, got \"70000\"",
        "2380",
    );
    assert!(!p.message.contains("u16"), "{p}");
}

#[test]
fn missing_cluster_and_nodes_are_named_at_the_top() {
    let p = problems("tls: { enabled: true }\n");
    let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["cluster", "nodes"], "{p:#?}");
    assert!(p[0].message.contains("`cluster` is required"), "{p:#?}");
}

// Issue 19, item 7: dual stack.

#[test]
fn a_dual_stack_member_lists_both_addresses_and_peers_use_the_shared_family() {
    let y = OK
        .replace("10.0.0.1 }", "[\"fd00::1\", 10.0.0.1] }")
        .replace("10.0.0.2 }", "[\"fd00::2\", 10.0.0.2] }")
        .replace("10.0.0.3 }", "\"fd00::3\" }");
    let s = ok(&y);
    assert_eq!(s.nodes[0].addresses.len(), 2);
    assert!(s.nodes.iter().all(|n| n.address.is_ipv6()), "peers on IPv6");
    assert!(s.warnings.is_empty(), "{:#?}", s.warnings);
    assert_eq!(s.peer_url(&s.nodes[0]), "http://[fd00::1]:2380");
    assert_eq!(
        s.client_urls(&s.nodes[0]),
        ["http://[fd00::1]:2379", "http://10.0.0.1:2379"]
    );
}

#[test]
fn members_without_a_common_family_are_refused() {
    let y = OK.replace("10.0.0.3 }", "\"fd00::3\" }");
    let p = expect(
        &y,
        "nodes[2].address",
        "member c has only IPv6 addresses and member a (nodes[0]) only IPv4: they share no address family, so they can never reach each other",
        "give a an IPv6 address or c an IPv4 one",
    );
    assert_eq!(p.rule, Rule::NoCommonFamily);
}

#[test]
fn a_peer_url_off_the_first_address_is_a_warning() {
    let y = OK
        .replace("10.0.0.1 }", "[10.0.0.1, \"fd00::1\"] }")
        .replace("10.0.0.2 }", "\"fd00::2\" }")
        .replace("10.0.0.3 }", "\"fd00::3\" }");
    let s = ok(&y);
    assert_eq!(s.nodes[0].address.to_string(), "fd00::1");
    assert!(
        s.warnings.iter().any(|w| w.rule == Rule::PeerFamilyNotFirst
            && w.message
                .contains("member a's peer URL uses fd00::1, not its first address 10.0.0.1")),
        "{:#?}",
        s.warnings
    );
}

// Issue 19, item 9: the zone's name servers.

#[test]
fn name_servers_inside_the_zone_need_an_address_unless_they_are_members() {
    let base = OK.replace(
        "name: c1\n",
        "name: c1\n  dns: { domain: example.com, name_servers: NS }\n",
    );
    expect(
        &base.replace("NS", "[ns1.example.com]"),
        "cluster.dns.name_servers[0]",
        "name server ns1.example.com is inside example.com but is no member's hostname",
        "{ name: ns1.example.com, address: <its IP> }",
    );
    let s = ok(&base.replace(
        "NS",
        "[ns0.example.net, { name: ns1.example.com, address: 10.0.0.53 }]",
    ));
    let d = s.dns.expect("dns");
    assert_eq!(d.name_servers.len(), 2);
    assert_eq!(
        d.name_servers[1].address.map(|a| a.to_string()).as_deref(),
        Some("10.0.0.53")
    );
}
