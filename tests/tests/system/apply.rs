//! `provision apply`: the local transport (the README's first command) and, over real SSH, host containers
//! running systemd (tests/src/hosts.rs).

use std::path::Path;

use anyhow::{Context, Result};
use cairn_tests::apply::provision;
use cairn_tests::etcdctl::Etcdctl;
use cairn_tests::ports::free_ports;
use cairn_tests::workspace;

/// examples/local.yaml with free ports instead of 2379/2380, 22379/22380, 32379/32380.
fn local_spec(dir: &Path) -> Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(workspace::root().join("examples/local.yaml"))?;
    let p = free_ports(6)?;
    let mut text = text;
    for (i, (c, pe)) in [(2379, 2380), (22379, 22380), (32379, 32380)]
        .iter()
        .enumerate()
    {
        text = text.replace(
            &format!("client_port: {c}, peer_port: {pe}"),
            &format!("client_port: {}, peer_port: {}", p[2 * i], p[2 * i + 1]),
        );
    }
    let path = dir.join("local.yaml");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn etcdctl_for(dir: &Path, endpoints: String) -> Etcdctl {
    let out = dir.join("out/local");
    Etcdctl {
        endpoints,
        cacert: Some(out.join("pki/ca.crt")),
        cert: Some((
            out.join("pki/clients/admin.crt"),
            out.join("pki/clients/admin.key"),
        )),
    }
}

/// Pids of the members a local apply started (from their pid files).
fn member_pids(dir: &Path) -> Vec<u32> {
    ["infra0", "infra1", "infra2"]
        .iter()
        .filter_map(|n| std::fs::read_to_string(dir.join("data").join(n).join("cairn.pid")).ok())
        .filter_map(|t| t.split_whitespace().next().and_then(|p| p.parse().ok()))
        .collect()
}

/// A process that runs (a zombie keeps its /proc entry but has an empty cmdline).
fn alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

/// Kills members left behind by a failed test (their pid files name them).
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for pid in member_pids(self.0) {
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(pid.to_string())
                .status();
        }
    }
}

#[test]
fn local_apply_gives_a_healthy_cluster_a_second_apply_changes_nothing_and_reset_removes_it(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let _cleanup = Cleanup(dir.path());
    let spec = local_spec(dir.path())?;
    let spec = spec.to_str().context("utf-8 path")?;

    let first = provision(dir.path(), &["apply", spec])?.ok()?;
    assert!(first.text.contains("healthy 3/3"), "{}", first.text);
    assert!(
        first.text.contains("bootstrap a new cluster of 3"),
        "{}",
        first.text
    );
    eprintln!("local apply: healthy after {:.1} s", first.secs);

    let text = std::fs::read_to_string(spec)?;
    let ports: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split("client_port: ").nth(1))
        .filter_map(|r| r.split(',').next())
        .collect();
    let eps: Vec<String> = ports
        .iter()
        .map(|p| format!("https://127.0.0.1:{p}"))
        .collect();
    let ctl = etcdctl_for(dir.path(), eps.join(","));
    ctl.ok(&["put", "greeting", "hello"])?;
    assert_eq!(
        ctl.ok(&["get", "greeting", "--print-value-only"])?.trim(),
        "hello"
    );
    // etcdctl 3.4 prints endpoint health on stderr.
    let h = ctl.run(&["endpoint", "health"])?;
    let health = format!("{}{}", h.stdout, h.stderr);
    assert!(h.success(), "{health}");
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");

    let second = provision(dir.path(), &["apply", spec])?.ok()?;
    assert!(second.text.contains("no changes"), "{}", second.text);
    let pids = member_pids(dir.path());
    assert_eq!(pids.len(), 3, "one pid file per member");

    // A member that died is started again; nothing else changes, and its data is still there.
    std::process::Command::new("kill")
        .arg(pids[1].to_string())
        .status()?;
    cairn_tests::wait::wait_for(
        "member 1 to exit",
        std::time::Duration::from_secs(15),
        std::time::Duration::from_millis(100),
        || {
            if alive(pids[1]) {
                Err("still running".into())
            } else {
                Ok(())
            }
        },
    )?;
    let third = provision(dir.path(), &["apply", spec])?.ok()?;
    assert!(third.text.contains("step: start infra1"), "{}", third.text);
    assert!(third.text.contains("healthy 3/3"), "{}", third.text);
    assert_eq!(
        ctl.ok(&["get", "greeting", "--print-value-only"])?.trim(),
        "hello"
    );

    let reset = provision(dir.path(), &["reset", spec, "--yes"])?.ok()?;
    assert!(
        reset.text.contains("stop cairn, delete data dir"),
        "{}",
        reset.text
    );
    for p in pids.iter().chain(&member_pids(dir.path())) {
        assert!(!alive(*p), "member pid {p} still runs after reset");
    }
    assert!(
        !dir.path().join("data/infra0").exists(),
        "data dir left after reset"
    );
    assert!(
        ctl.run(&["get", "greeting"])?.code != Some(0),
        "cluster still answers after reset"
    );
    Ok(())
}
