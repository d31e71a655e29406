//! DNS SRV discovery as an operator runs it: examples/dns3.yaml rendered by `provision render`, its zone
//! served by a real BIND `named`, each member in a network namespace of its own holding the address the
//! zone gives it and started from its rendered env file only (`--discovery-srv example.com`, no
//! `--initial-cluster`), and the real etcdctl 3.4 finding the members through `--discovery-srv` with the
//! system resolver. `CAIRN_TEST_FLAVOR=etcd` runs the same tests against etcd 3.4.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;
use cairn_tests::cluster::Flavor;
use cairn_tests::srv_cluster::SrvCluster;
use cairn_tests::srv_etcdctl::SrvEtcdctl;
use cairn_tests::tools::{require, run_ok};
use cairn_tests::wait::wait_for;
use serde_json::Value;

/// Unwraps with the whole error chain in the panic message.
fn must<T>(r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e:#}"),
    }
}

fn srv_cluster(tag: &str) -> SrvCluster {
    let flavor = must(Flavor::from_env());
    must(SrvCluster::create(flavor, tag))
}

/// Waits until `endpoint health --cluster` (members from the SRV records, then from member list) reports
/// `n` healthy members and nothing unhealthy.
fn wait_cluster_healthy(ctl: &SrvEtcdctl, n: usize, timeout: Duration) {
    must(wait_for(
        "every member healthy through --discovery-srv",
        timeout,
        Duration::from_millis(200),
        || {
            let out = ctl
                .run(&["endpoint", "health", "--cluster"])
                .map_err(|e| format!("{e:#}"))?;
            // etcdctl 3.4 prints the per-endpoint results on stderr.
            let text = format!("{}{}", out.stdout, out.stderr);
            let healthy = text.lines().filter(|l| l.contains(" is healthy")).count();
            if out.success() && healthy == n {
                Ok(())
            } else {
                Err(format!("{healthy} healthy: {text}"))
            }
        },
    ));
}

fn json(ctl: &SrvEtcdctl, args: &[&str]) -> Value {
    let out = must(ctl.ok(args));
    match serde_json::from_str(&out) {
        Ok(v) => v,
        Err(e) => panic!("{args:?} printed no JSON ({e}): {out}"),
    }
}

#[test]
fn three_members_bootstrap_from_the_rendered_srv_records_and_etcdctl_finds_them_by_srv() {
    let mut c = srv_cluster("boot");
    let ctl = c.etcdctl();
    let started = Instant::now();
    for i in 0..c.members.len() {
        must(c.start(i));
    }
    wait_cluster_healthy(&ctl, 3, Duration::from_secs(30));
    eprintln!(
        "{:?}: 3 members healthy {:?} after starting them with only --discovery-srv {}",
        c.flavor,
        started.elapsed(),
        c.domain
    );

    // The members named themselves after the records: names from the env files, peer URLs the SRV
    // targets, client URLs published.
    let list = json(&ctl, &["member", "list", "-w", "json"]);
    let mut seen = BTreeSet::new();
    for m in list["members"].as_array().cloned().unwrap_or_default() {
        let name = m["name"].as_str().unwrap_or_default().to_string();
        assert_eq!(
            m["peerURLs"],
            serde_json::json!([format!("https://{name}.{}:2380", c.domain)]),
            "{list}"
        );
        assert_eq!(
            m["clientURLs"],
            serde_json::json!([format!("https://{name}.{}:2379", c.domain)]),
            "{list}"
        );
        seen.insert(name);
    }
    let names: BTreeSet<String> = c.members.iter().map(|m| m.name.clone()).collect();
    assert_eq!(seen, names, "{list}");

    // One leader, every member agreeing on it, every status reached through the SRV-found endpoints.
    let status = json(&ctl, &["endpoint", "status", "--cluster", "-w", "json"]);
    let entries = status.as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 3, "{status}");
    let leaders: BTreeSet<u64> = entries
        .iter()
        .filter_map(|e| e["Status"]["leader"].as_u64())
        .collect();
    assert_eq!(leaders.len(), 1, "members disagree on the leader: {status}");
    let is_leader = entries
        .iter()
        .filter(|e| e["Status"]["header"]["member_id"].as_u64() == leaders.first().copied())
        .count();
    assert_eq!(is_leader, 1, "{status}");

    assert_eq!(must(ctl.ok(&["put", "found/by", "srv"])), "OK\n");
    assert_eq!(must(ctl.ok(&["get", "found/by"])), "found/by\nsrv\n");
    // A member reached by its SRV target name answers a linearizable read of it too.
    assert_eq!(
        must(
            c.etcdctl_for(&[2])
                .ok(&["get", "found/by", "--print-value-only"])
        ),
        "srv\n"
    );

    // kill -9 and a restart with the same env file (still --discovery-srv): it rejoins from its data
    // dir instead of bootstrapping again.
    must(c.kill(1));
    must(c.start(1));
    wait_cluster_healthy(&ctl, 3, Duration::from_secs(30));
    assert_eq!(
        must(
            c.etcdctl_for(&[1])
                .ok(&["get", "found/by", "--print-value-only"])
        ),
        "srv\n"
    );
    if c.flavor == Flavor::Cairn {
        let log = c.log(1);
        assert!(
            log.contains("discovery ignored since a cluster has already been initialized"),
            "{log}"
        );
    }
}

#[test]
fn members_and_etcdctl_find_each_other_under_an_srv_name_suffix() {
    // examples/dns3.yaml with `srv_name: prod`: records _etcd-server-ssl-prod._tcp / _etcd-client-ssl-prod._tcp,
    // members started with --discovery-srv-name prod from their env files.
    let spec_dir = must(tempfile::tempdir().map_err(anyhow::Error::from));
    let spec = spec_dir.path().join("dns3-prod.yaml");
    let text = must(
        std::fs::read_to_string(cairn_tests::provision::example("dns3"))
            .map_err(anyhow::Error::from),
    );
    assert!(
        text.contains("srv_name: \"\""),
        "examples/dns3.yaml changed shape:\n{text}"
    );
    must(
        std::fs::write(&spec, text.replace("srv_name: \"\"", "srv_name: prod"))
            .map_err(anyhow::Error::from),
    );
    let flavor = must(Flavor::from_env());
    let mut c = must(SrvCluster::create_from(flavor, "name", &spec));
    let zone = must(
        std::fs::read_to_string(c.rendered.join("dns/example.com.zone"))
            .map_err(anyhow::Error::from),
    );
    assert!(
        zone.contains("_etcd-server-ssl-prod._tcp.example.com."),
        "{zone}"
    );
    assert_eq!(
        c.members[0]
            .env
            .get("CAIRN_DISCOVERY_SRV_NAME")
            .map(String::as_str),
        Some("prod")
    );
    for i in 0..c.members.len() {
        must(c.start(i));
    }
    let ctl = c.etcdctl();
    wait_cluster_healthy(&ctl, 3, Duration::from_secs(30));
    assert_eq!(must(ctl.ok(&["put", "suffix", "prod"])), "OK\n");
    // Without the suffix there is nothing to find.
    let mut unsuffixed = ctl.clone();
    unsuffixed.srv_name = None;
    let out = must(unsuffixed.run(&["get", "suffix"]));
    assert!(
        !out.success() && out.stderr.contains("_etcd-client"),
        "found members without the suffix: {}{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn a_member_missing_from_the_srv_records_refuses_to_start_naming_the_domain_and_its_url() {
    let mut c = srv_cluster("stray");
    // A fourth host set up like infra0 but at an address the zone does not list: the records were not
    // updated for it.
    let mut env = c.members[0].env.clone();
    let (old, new) = (c.members[0].address.clone(), "10.0.1.13");
    let url = format!("https://{new}:2380");
    for v in env.values_mut() {
        *v = v.replace(&old, new);
    }
    env.insert("CAIRN_NAME".into(), "infra3".into());
    env.insert("CAIRN_INITIAL_ADVERTISE_PEER_URLS".into(), url.clone());
    env.insert(
        "CAIRN_ADVERTISE_CLIENT_URLS".into(),
        format!("https://{new}:2379"),
    );
    let i = must(c.add_member("infra3", new, env));
    must(c.start(i));
    let code = must(c.wait_exit(i, Duration::from_secs(30)));
    let log = c.log(i);
    assert!(matches!(code, Some(n) if n != 0), "exit {code:?}:\n{log}");
    // etcd's own words, so an operator's search finds the same explanation for both.
    assert!(
        log.contains("cannot find local etcd member \"infra3\" in SRV records"),
        "{log}"
    );
    if c.flavor == Flavor::Cairn {
        assert_eq!(code, Some(2), "a configuration refusal exits 2:\n{log}");
        assert!(
            log.contains(&format!("its advertised peer URL {url}"))
                && log.contains("SRV targets of example.com"),
            "the refusal names the domain and the advertised peer URL:\n{log}"
        );
    }
}

/// A peer certificate signed by the cluster's peer CA whose only SAN is `ip`: neither the SRV target
/// name nor the domain. Made with openssl from the rendered CA key.
fn peer_cert_without_names(rendered: &Path, cn: &str, ip: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let openssl = must(require("openssl", "openssl"));
    let (key, csr, crt, ext) = (
        dir.join("peer.key"),
        dir.join("peer.csr"),
        dir.join("peer.crt"),
        dir.join("peer.ext"),
    );
    must(run_ok(
        Command::new(&openssl)
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
            ])
            .arg(format!("/O=test/CN={cn}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    ));
    must(std::fs::write(
        &ext,
        format!("subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature\n"),
    )
    .map_err(anyhow::Error::from));
    must(run_ok(
        Command::new(&openssl)
            .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(rendered.join("pki/peer-ca.crt"))
            .arg("-CAkey")
            .arg(rendered.join("pki/peer-ca.key"))
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&crt),
    ));
    (crt, key)
}

#[test]
fn a_peer_certificate_without_the_srv_names_is_refused_and_the_log_names_the_missing_name() {
    let mut c = srv_cluster("san");
    let bad = c.dir().join("bad-peer");
    must(std::fs::create_dir_all(&bad).map_err(anyhow::Error::from));
    let (crt, key) = peer_cert_without_names(&c.rendered, "infra2", &c.members[2].address, &bad);
    c.members[2]
        .env
        .insert("CAIRN_PEER_CERT_FILE".into(), crt.display().to_string());
    c.members[2]
        .env
        .insert("CAIRN_PEER_KEY_FILE".into(), key.display().to_string());

    // Two good members make a quorum and a leader first, so the leader is the one dialling infra2.
    must(c.start(0));
    must(c.start(1));
    let good = c.etcdctl_for(&[0, 1]);
    must(wait_for(
        "infra0 and infra1 healthy",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            good.ok(&["endpoint", "health"])
                .map_err(|e| format!("{e:#}"))
        },
    ));
    must(c.start(2));

    // The dialling side names the name the certificate lacks: the SRV target name (etcd 3.4.23 checks
    // the same one).
    let target = format!("infra2.{}", c.domain);
    let names_it = |log: String| {
        log.lines()
            .any(|l| l.contains("not valid for") && l.contains(&target))
    };
    must(wait_for(
        "a member to log the refused certificate",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            if (0..2).any(|i| names_it(c.log(i))) {
                Ok(())
            } else {
                Err(format!(
                    "no log line says the certificate is not valid for {target}"
                ))
            }
        },
    ));
    // infra2 sees its handshakes refused.
    let refused = match c.flavor {
        Flavor::Cairn => "TLS handshake failed: received fatal alert: BadCertificate",
        Flavor::Etcd => "bad certificate",
    };
    assert!(c.log(2).contains(refused), "{}", c.log(2));
    // The two good members keep serving.
    assert_eq!(must(good.ok(&["put", "still", "writable"])), "OK\n");
    // cairn's leader cannot reach infra2, so infra2 never joins. (etcd's infra2 still does: etcd carries
    // a member's messages on the streams that member dialled itself, and its client side is not checked.)
    if c.flavor == Flavor::Cairn {
        let out = must(
            c.etcdctl_for(&[2])
                .run(&["endpoint", "health", "--command-timeout=2s"]),
        );
        assert!(
            !out.success(),
            "infra2 must not be healthy: {}{}",
            out.stdout,
            out.stderr
        );
    }
}
