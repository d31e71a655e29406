//! `provision apply` of examples/auth.yaml (issue 17): roles and client-certificate users from cluster.yaml,
//! checked with the real etcdctl 3.4 presenting the rendered client certificates, no password. provision
//! starts cairn members (the local transport runs the workspace's `cairn`), so there is no etcd run of
//! this test; tests/tests/system/auth.rs holds cairn's auth to etcd 3.4 with the same etcdctl.

use std::path::Path;

use anyhow::{Context, Result};
use cairn_tests::apply::{admin_etcdctl, provision};
use cairn_tests::etcdctl::Etcdctl;
use cairn_tests::ports::unused_ports;
use cairn_tests::workspace;

use crate::apply::Cleanup;

/// examples/auth.yaml with free ports; returns its path and the client URLs.
fn auth_spec(dir: &Path) -> Result<(String, Vec<String>)> {
    let mut text = std::fs::read_to_string(workspace::root().join("examples/auth.yaml"))?;
    let p = unused_ports(6)?;
    let mut eps = Vec::new();
    for (i, (c, pe)) in [(2479, 2480), (22479, 22480), (32479, 32480)]
        .iter()
        .enumerate()
    {
        let from = format!("client_port: {c}, peer_port: {pe}");
        anyhow::ensure!(
            text.contains(&from),
            "examples/auth.yaml changed: no {from}"
        );
        text = text.replace(
            &from,
            &format!("client_port: {}, peer_port: {}", p[2 * i], p[2 * i + 1]),
        );
        eps.push(format!("https://127.0.0.1:{}", p[2 * i]));
    }
    let path = dir.join("auth.yaml");
    std::fs::write(&path, text)?;
    Ok((path.to_str().context("utf-8 path")?.to_string(), eps))
}

/// The auth changes a run announced (`[auth] would X` in a plan, `[auth] X` in an apply), in order.
fn auth_changes(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("[auth] "))
        .map(|l| l.strip_prefix("would ").unwrap_or(l).to_string())
        .collect()
}

/// etcdctl presenting client certificate `name` of the rendered directory `out`.
fn client(out: &Path, name: &str, eps: &[String]) -> Etcdctl {
    Etcdctl {
        endpoints: eps.join(","),
        cacert: Some(out.join("pki/ca.crt")),
        cert: Some((
            out.join(format!("pki/clients/{name}.crt")),
            out.join(format!("pki/clients/{name}.key")),
        )),
    }
}

/// `args` fails with etcd's "permission denied".
fn denied(ctl: &Etcdctl, args: &[&str]) -> Result<()> {
    let o = ctl.run(args)?;
    anyhow::ensure!(
        !o.success() && o.stderr.contains("etcdserver: permission denied"),
        "etcdctl {args:?}: want permission denied, got exit {:?}: {}{}",
        o.code,
        o.stdout,
        o.stderr
    );
    Ok(())
}

#[test]
fn apply_of_the_auth_example_gives_each_client_certificate_its_role_and_takes_removed_rights_back(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let _cleanup = Cleanup(dir.path());
    let (spec, eps) = auth_spec(dir.path())?;
    let out = dir.path().join("out/auth");

    // plan before anything runs announces the auth changes apply then makes, in the same order.
    let plan = provision(dir.path(), &["plan", &spec])?.ok()?;
    let first = provision(dir.path(), &["apply", &spec])?.ok()?;
    let made = auth_changes(&first.text);
    assert_eq!(
        auth_changes(&plan.text),
        made,
        "plan:\n{}\napply:\n{}",
        plan.text,
        first.text
    );
    assert_eq!(
        made,
        [
            "create role apiserver",
            "grant role apiserver readwrite on prefix \"/registry/\"",
            "create role backup",
            "grant role backup read on every key",
            "create user root (no password)",
            "grant role root to user root",
            "create user admin (no password)",
            "grant role root to user admin",
            "create user apiserver (no password)",
            "grant role apiserver to user apiserver",
            "create user backup (no password)",
            "grant role backup to user backup",
            "enable authentication",
        ],
        "{}",
        first.text
    );
    assert!(first.text.contains("healthy 3/3"), "{}", first.text);

    let admin = admin_etcdctl(&out, eps.join(","));
    let apiserver = client(&out, "apiserver", &eps);
    let backup = client(&out, "backup", &eps);
    // apiserver: its prefix, read and write; nothing else.
    apiserver.ok(&["put", "/registry/pods/a", "pod-a"])?;
    assert_eq!(
        apiserver
            .ok(&["get", "/registry/pods/a", "--print-value-only"])?
            .trim(),
        "pod-a"
    );
    apiserver.ok(&["del", "/registry/pods/a"])?;
    apiserver.ok(&["put", "/registry/pods/b", "pod-b"])?;
    denied(&apiserver, &["put", "/other", "x"])?;
    denied(&apiserver, &["get", "/other"])?;
    denied(&apiserver, &["get", "", "--prefix"])?;
    denied(&apiserver, &["put", "/registry", "just outside the prefix"])?;
    // admin (provision's own certificate) holds root: writes anywhere, manages users.
    admin.ok(&["put", "/other", "o"])?;
    admin.ok(&["put", "top", "t"])?;
    let users = admin.ok(&["user", "list"])?;
    let mut users: Vec<&str> = users.lines().collect();
    users.sort();
    assert_eq!(users, ["admin", "apiserver", "backup", "root"]);
    // backup: reads every key, writes none.
    let all = backup.ok(&["get", "", "--prefix", "--keys-only"])?;
    let mut keys: Vec<&str> = all.lines().filter(|l| !l.is_empty()).collect();
    keys.sort();
    assert_eq!(keys, ["/other", "/registry/pods/b", "top"]);
    assert_eq!(
        backup.ok(&["get", "top", "--print-value-only"])?.trim(),
        "t"
    );
    denied(&backup, &["put", "/registry/pods/c", "x"])?;
    denied(&backup, &["put", "/backup", "x"])?;
    denied(&backup, &["del", "top"])?;
    denied(&backup, &["user", "list"])?;

    // A second apply changes nothing; status and backup still work with the admin certificate.
    let second = provision(dir.path(), &["apply", &spec])?.ok()?;
    assert!(second.text.contains("no changes"), "{}", second.text);
    assert_eq!(auth_changes(&second.text), Vec::<String>::new());
    provision(dir.path(), &["status", &spec])?.ok()?;

    // Take rights away in the file: apiserver loses its role, backup's read narrows to /registry/.
    let text = std::fs::read_to_string(&spec)?;
    let narrowed = text.replace("clients: [apiserver]", "clients: []").replace(
        "{ access: read, prefix: \"\" }",
        "{ access: read, prefix: /registry/ }",
    );
    assert_ne!(text, narrowed, "examples/auth.yaml changed");
    std::fs::write(&spec, narrowed)?;
    let plan = provision(dir.path(), &["plan", &spec])?.ok()?;
    let third = provision(dir.path(), &["apply", &spec])?.ok()?;
    let made = auth_changes(&third.text);
    assert_eq!(auth_changes(&plan.text), made, "{}", plan.text);
    assert_eq!(
        made,
        [
            "grant role backup read on prefix \"/registry/\"",
            "revoke from role backup read on every key",
            "delete user apiserver (no longer in cluster.yaml)",
        ],
        "{}",
        third.text
    );
    denied(&apiserver, &["put", "/registry/pods/c", "x"])?;
    denied(&apiserver, &["get", "/registry/pods/b"])?;
    denied(&backup, &["get", "top"])?;
    assert_eq!(
        backup
            .ok(&["get", "/registry/pods/b", "--print-value-only"])?
            .trim(),
        "pod-b"
    );
    let again = provision(dir.path(), &["apply", &spec])?.ok()?;
    assert!(again.text.contains("no changes"), "{}", again.text);

    // A snapshot in etcd's format carries no users: restore makes them again, so the rights hold after it.
    provision(dir.path(), &["backup", &spec, "-f", "snap.db"])?.ok()?;
    let restored = provision(dir.path(), &["restore", &spec, "-f", "snap.db", "--yes"])?.ok()?;
    assert!(restored.text.contains("healthy 3/3"), "{}", restored.text);
    let remade = auth_changes(&restored.text);
    assert!(
        remade.contains(&"create user backup (no password)".to_string())
            && remade.last().map(String::as_str) == Some("enable authentication"),
        "{}",
        restored.text
    );
    assert_eq!(
        backup
            .ok(&["get", "/registry/pods/b", "--print-value-only"])?
            .trim(),
        "pod-b"
    );
    denied(&backup, &["get", "top"])?;
    denied(&apiserver, &["get", "/registry/pods/b"])?;

    provision(dir.path(), &["reset", &spec, "--yes"])?.ok()?;
    Ok(())
}
