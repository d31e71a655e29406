//! A CA in the output directory that cannot sign is refused at render (issue 19, item 2), and a leaf
//! never outlives its CA.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use time::{Duration, OffsetDateTime};

use super::*;

const SPEC: &str =
    "cluster:\n  name: c1\ntls: { enabled: true }\nnodes:\n  - { name: a, address: 10.0.0.1 }\n";

fn spec(extra_tls: &str, base: &Path) -> Spec {
    let yaml = SPEC.replace("enabled: true", &format!("enabled: true{extra_tls}"));
    crate::spec::parse("cluster.yaml", base, &yaml).expect("valid")
}

/// A CA valid from `from` to `to` (relative to now), written as `dir/name.crt` + `.key`.
fn ca(dir: &Path, name: &str, from: i64, to: i64) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let now = OffsetDateTime::now_utc();
    p.not_before = now + Duration::days(from);
    p.not_after = now + Duration::days(to);
    let c = p.self_signed(&key).expect("cert");
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join(format!("{name}.crt")), c.pem()).expect("write");
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write");
}

#[test]
fn render_refuses_an_expired_ca_in_the_output_and_says_how_to_rotate() {
    let out = tempfile::tempdir().expect("tmp");
    ca(&out.path().join("pki"), "ca", -20, -10);
    let e = ensure(&spec("", out.path()), out.path()).expect_err("an expired CA must be refused");
    let text = e.to_string();
    assert!(
        text.contains("pki/ca.crt: the CA expired on")
            && text.contains("no certificate it signed verifies any more")
            && text.contains("--rotate-ca"),
        "{text}"
    );
    let found = stale(&spec("", out.path()), out.path()).expect("stale");
    assert!(
        found
            .iter()
            .any(|(p, why)| p.ends_with("pki/ca.crt") && why.contains("expired on")),
        "check -o reports it too: {found:?}"
    );
}

#[test]
fn render_refuses_a_ca_expiring_within_renew_before_days() {
    let out = tempfile::tempdir().expect("tmp");
    ca(&out.path().join("pki"), "ca", -20, 10);
    let e = ensure(&spec("", out.path()), out.path()).expect_err("must be refused");
    assert!(
        e.to_string().contains("within renew_before_days (30)"),
        "{e}"
    );
}

#[test]
fn render_refuses_a_ca_key_that_is_not_the_certificates() {
    let out = tempfile::tempdir().expect("tmp");
    let pki = out.path().join("pki");
    ca(&pki, "ca", -1, 3650);
    ca(&pki, "other", -1, 3650);
    std::fs::copy(pki.join("other.key"), pki.join("ca.key")).expect("copy");
    let e = ensure(&spec("", out.path()), out.path()).expect_err("must be refused");
    assert!(
        e.to_string().contains("is not this CA's private key"),
        "{e}"
    );
}

#[test]
fn leaves_signed_by_an_imported_ca_end_when_it_ends() {
    let base = tempfile::tempdir().expect("tmp");
    ca(base.path(), "imported", -1, 100);
    let out = tempfile::tempdir().expect("tmp");
    let s = spec(
        ", import_ca: { cert: imported.crt, key: imported.key }",
        base.path(),
    );
    ensure(&s, out.path()).expect("renders");
    let read = |p: &str| {
        inspect_pem(&std::fs::read_to_string(out.path().join(p)).expect("read")).expect("pem")
    };
    let ca = read("pki/ca.crt");
    let leaf = read("nodes/a/pki/server.crt");
    assert_eq!(
        leaf.not_after, ca.not_after,
        "capped at the CA's end, not 825 days"
    );
    assert!(signed_by(&leaf, &ca));
}
