//! Every validation message: where it points and the fix it gives.

use std::path::Path;

use super::*;

const OK: &str = "cluster:\n  name: c1\nnodes:\n  - { name: a, address: 10.0.0.1 }\n  - { name: b, address: 10.0.0.2 }\n  - { name: c, address: 10.0.0.3 }\n";

fn problems(yaml: &str) -> Vec<Problem> {
    match parse("cluster.yaml", Path::new("."), yaml) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems().to_vec(),
    }
}

/// Assert exactly one problem at `at` whose message contains `msg` and whose fix contains `fix`.
fn expect(yaml: &str, at: &str, msg: &str, fix: &str) {
    let p = problems(yaml);
    assert!(
        p.iter()
            .any(|p| p.at == at && p.message.contains(msg) && p.fix.contains(fix)),
        "want {at}: {msg} / fix {fix}; got {p:#?}"
    );
}

#[test]
fn valid_file_has_no_problems_and_defaults_apply() {
    let s = parse("cluster.yaml", Path::new("."), OK).expect("valid");
    assert_eq!(s.nodes[0].client_port, 2379);
    assert_eq!(s.token, "c1");
    assert!(s.warnings.is_empty());
}

#[test]
fn unknown_field_gives_line_column_and_did_you_mean() {
    expect(
        "cluster:\n  name: c1\n  bootstrapp: dns\nnodes: []\n",
        "3:3",
        "unknown field `bootstrapp`",
        "did you mean `bootstrap`",
    );
}

#[test]
fn unknown_value_suggests_the_closest() {
    expect(
        "cluster:\n  name: c1\nfirewall: { backend: nftable }\nnodes: []\n",
        "3:22",
        "unknown variant `nftable`",
        "did you mean `nftables`",
    );
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
fn hostname_where_an_ip_is_required() {
    expect(
        &OK.replace("10.0.0.1", "infra0.example.com"),
        "nodes[0].address",
        "expected IP for binding",
        "",
    );
}

#[test]
fn even_member_count_is_a_warning() {
    let y = OK.replace("  - { name: c, address: 10.0.0.3 }\n", "");
    let s = parse("cluster.yaml", Path::new("."), &y).expect("valid with warning");
    assert!(s
        .warnings
        .iter()
        .any(|w| w.at == "nodes" && w.message.contains("even count")));
}

#[test]
fn same_address_and_port_on_one_host_clash() {
    let y = "cluster:\n  name: c1\nnodes:\n  - { name: a, address: 127.0.0.1 }\n  - { name: b, address: 127.0.0.1, client_port: 2380, peer_port: 2381 }\n  - { name: c, address: 127.0.0.1, client_port: 3379, peer_port: 3379 }\n";
    expect(
        y,
        "nodes[1].client_port",
        "127.0.0.1:2380 is already used by nodes[0].peer_port",
        "distinct",
    );
    expect(
        y,
        "nodes[2]",
        "for both client and peer",
        "different client_port",
    );
}

#[test]
fn dns_mode_without_domain() {
    expect(
        &OK.replace("name: c1\n", "name: c1\n  bootstrap: dns\n"),
        "cluster.dns.domain",
        "needs a DNS domain",
        "dns: { domain: example.com }",
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
fn invalid_cidr_in_client_sources() {
    expect(
        &format!("{OK}firewall: {{ client_sources: [10.0.0.0/33] }}\n"),
        "firewall.client_sources[0]",
        "not a CIDR network",
        "10.0.0.0/8",
    );
}

#[test]
fn imported_ca_missing_or_expired() {
    expect(
        &format!(
            "{OK}tls: {{ import_ca: {{ cert: /nonexistent/ca.crt, key: /nonexistent/ca.key }} }}\n"
        ),
        "tls.import_ca.cert",
        "cannot read /nonexistent/ca.crt",
        "relative to the cluster file",
    );
    // An expired CA, made with rcgen for the test.
    let dir = std::env::temp_dir().join(format!("provision-expired-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(20);
    p.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(10);
    let cert = p.self_signed(&key).expect("cert");
    std::fs::write(dir.join("ca.crt"), cert.pem()).expect("write");
    std::fs::write(dir.join("ca.key"), key.serialize_pem()).expect("write");
    let y = format!("{OK}tls: {{ import_ca: {{ cert: ca.crt, key: ca.key }} }}\n");
    let p = match parse("cluster.yaml", &dir, &y) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems().to_vec(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        p.iter().any(|p| p.at == "tls.import_ca.cert"
            && p.message.contains("expired on")
            && p.fix.contains("renew the CA")),
        "{p:#?}"
    );
}

#[test]
fn problems_display_file_location_and_fix() {
    let p = problems(&OK.replace("10.0.0.1", "10.0.0.300"));
    let text = p[0].to_string();
    assert!(
        text.starts_with("cluster.yaml:nodes[0].address: "),
        "{text}"
    );
    assert!(text.contains("\n    fix: "), "{text}");
}

#[test]
fn key_algorithms_use_the_documented_spelling() {
    for (text, want) in [
        ("ecdsa-p256", KeyAlgorithm::EcdsaP256),
        ("rsa-2048", KeyAlgorithm::Rsa2048),
        ("rsa-4096", KeyAlgorithm::Rsa4096),
    ] {
        let s = parse(
            "cluster.yaml",
            Path::new("."),
            &format!("{OK}tls: {{ key_algorithm: {text} }}\n"),
        )
        .expect("valid");
        assert_eq!(s.tls.expect("tls on").key_algorithm, want);
    }
}

#[test]
fn transport_defaults_to_ssh_and_local_is_taken_from_the_cluster() {
    let s = parse("cluster.yaml", Path::new("."), OK).expect("valid");
    assert_eq!(s.nodes[0].transport, TransportKind::Ssh);
    let local = OK.replace("name: c1\n", "name: c1\n  transport: local\n");
    let s = parse("cluster.yaml", Path::new("/base"), &local).expect("valid");
    assert!(s.nodes.iter().all(|n| n.transport == TransportKind::Local));
    assert_eq!(s.apply.max_clock_skew_seconds, 10);
    assert_eq!(s.apply.health_timeout_seconds, 120);
}

#[test]
fn ssh_settings_on_a_local_member_are_an_error() {
    let yaml = "cluster:\n  name: c1\n  transport: local\nnodes:\n  - { name: a, address: 127.0.0.1, ssh: { user: root } }\n";
    expect(yaml, "nodes[0].ssh", "transport local", "remove `ssh:`");
}

#[test]
fn misspelt_transport_gets_did_you_mean() {
    let yaml = "cluster:\n  name: c1\n  transport: locl\nnodes: []\n";
    expect(
        yaml,
        "3:14",
        "unknown variant `locl`",
        "did you mean `local`",
    );
}

#[test]
fn zero_health_timeout_is_refused() {
    let yaml = format!("{OK}apply: {{ health_timeout_seconds: 0 }}\n");
    expect(
        &yaml,
        "apply.health_timeout_seconds",
        "can never be met",
        "120",
    );
}
