//! `provision apply` with the local transport: the README's first command (apply_ssh.rs covers ssh hosts).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use cairn_tests::apply::{admin_etcdctl, provision};
use cairn_tests::ports::unused_ports;
use cairn_tests::workspace;

/// examples/local.yaml with free ports instead of 2379/2380, 22379/22380, 32379/32380.
fn local_spec(dir: &Path) -> Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(workspace::root().join("examples/local.yaml"))?;
    let p = unused_ports(6)?;
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

/// The changes a run announced through its gate (`[host] would X` in a dry run, `[host] X` otherwise),
/// as `[host] X`, sorted (hosts run in parallel).
fn gated(text: &str, dry_run: bool) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let (host, rest) = l.strip_prefix('[')?.split_once("] ")?;
            let what = if dry_run {
                rest.strip_prefix("would ")?
            } else {
                rest
            };
            // Apply's own progress lines are not changes.
            let change = [
                "issue ",
                "start ",
                "upload ",
                "move ",
                "remove ",
                "member ",
                "restart ",
                "stop ",
                "create ",
                "save ",
                "systemctl ",
                "load ",
            ]
            .iter()
            .any(|p| what.starts_with(p));
            change.then(|| format!("[{host}] {what}"))
        })
        .collect();
    v.sort();
    v
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

    // Issue 19, item 11: plan on a fresh directory predicts apply's changes exactly, one for one, and
    // writes nothing under the output directory (not even a log).
    let plan = provision(dir.path(), &["plan", spec])?.ok()?;
    assert!(
        !dir.path().join("out").exists(),
        "plan wrote into the output directory"
    );
    let first = provision(dir.path(), &["apply", spec])?.ok()?;
    let (predicted, made) = (gated(&plan.text, true), gated(&first.text, false));
    assert_eq!(
        predicted, made,
        "plan:\n{}\napply:\n{}",
        plan.text, first.text
    );
    assert!(
        plan.text
            .contains(&format!("{} change(s) would be made", predicted.len()))
            && first
                .text
                .contains(&format!("applied: {} change(s)", made.len())),
        "plan:\n{}\napply:\n{}",
        plan.text,
        first.text
    );
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
    let ctl = admin_etcdctl(&dir.path().join("out/local"), eps.join(","));
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

    // plan with another binary says what would restart and changes nothing.
    let changed = dir.path().join("cairn-changed");
    std::fs::copy(workspace::binary("cairn")?, &changed)?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&changed)?
        .write_all(b"\nanother build\n")?;
    let changed_s = changed.display().to_string();
    let plan = provision(dir.path(), &["plan", spec, "--binary", &changed_s])?.ok()?;
    assert!(
        plan.text.contains("[infra0] would restart cairn"),
        "{}",
        plan.text
    );
    assert!(plan.text.contains("would be made"), "{}", plan.text);
    let unchanged = provision(dir.path(), &["apply", spec])?.ok()?;
    assert!(
        unchanged.text.contains("no changes"),
        "plan changed something: {}",
        unchanged.text
    );

    // status and a verified backup.
    let status = provision(dir.path(), &["status", spec])?.ok()?;
    assert_eq!(
        status.text.matches(" healthy").count(),
        3,
        "{}",
        status.text
    );
    assert!(
        status.text.contains("server certificate expires"),
        "{}",
        status.text
    );
    let snap = dir.path().join("snap.db");
    let backup = provision(
        dir.path(),
        &["backup", spec, "-f", &snap.display().to_string()],
    )?
    .ok()?;
    assert!(backup.text.contains("verified"), "{}", backup.text);
    assert!(std::fs::metadata(&snap)?.len() > 32, "snapshot is empty");

    // A member whose data dir vanished is removed and added again, never started as a new cluster.
    let pid2 = member_pids(dir.path())[2];
    std::process::Command::new("kill")
        .arg(pid2.to_string())
        .status()?;
    cairn_tests::wait::wait_for(
        "member 2 to exit",
        std::time::Duration::from_secs(15),
        std::time::Duration::from_millis(100),
        || {
            if alive(pid2) {
                Err("still running".into())
            } else {
                Ok(())
            }
        },
    )?;
    std::fs::remove_dir_all(dir.path().join("data/infra2"))?;
    let replaced = provision(dir.path(), &["apply", spec])?.ok()?;
    assert!(
        replaced.text.contains("step: replace infra2"),
        "{}",
        replaced.text
    );
    assert!(replaced.text.contains("healthy 3/3"), "{}", replaced.text);
    let members = ctl.ok(&["member", "list"])?;
    assert_eq!(members.lines().count(), 3, "{members}");
    let only_infra2 = ctl.with_endpoints(eps[2].clone());
    assert_eq!(
        only_infra2
            .ok(&["get", "greeting", "--print-value-only"])?
            .trim(),
        "hello",
        "the re-added member caught up"
    );

    let reset = provision(dir.path(), &["reset", spec, "--yes"])?.ok()?;
    assert!(
        reset.text.contains("stop cairn, delete data dir"),
        "{}",
        reset.text
    );
    for p in pids.iter().chain(&[pid2]).chain(&member_pids(dir.path())) {
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

/// `certs --rotate-ca` then apply: the trust bundle rolls first, the new certificates in a second pass, the
/// cluster stays healthy with its data, and afterwards clients of the new CA work and every member presents a
/// certificate of the new CA. Members get their own config dirs (not the render dir), as on real hosts, so
/// the rotation's files reach them only through apply.
#[test]
fn local_ca_rotation_rolls_the_trust_bundle_then_the_new_certificates() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let _cleanup = Cleanup(dir.path());
    let spec = local_spec(dir.path())?;
    let text = std::fs::read_to_string(&spec)?.replace(
        "config_dir: ./out/local/nodes/{name}",
        "config_dir: ./etc/{name}",
    );
    assert!(text.contains("./etc/{name}"), "examples/local.yaml changed");
    std::fs::write(&spec, text)?;
    let spec = spec.to_str().context("utf-8 path")?;
    let out = dir.path().join("out/local");
    let out_s = out.to_str().context("utf-8 path")?;

    provision(dir.path(), &["apply", spec, "-o", out_s])?.ok()?;
    let eps: Vec<String> = std::fs::read_to_string(spec)?
        .lines()
        .filter_map(|l| l.split("client_port: ").nth(1))
        .filter_map(|r| r.split(',').next())
        .map(|p| format!("https://127.0.0.1:{p}"))
        .collect();
    admin_etcdctl(&out, eps.join(",")).ok(&["put", "before-rotation", "kept"])?;

    provision(dir.path(), &["certs", spec, "-o", out_s, "--rotate-ca"])?.ok()?;
    let rotated = provision(dir.path(), &["apply", spec, "-o", out_s])?.ok()?;
    assert!(
        rotated.text.contains("trust bundle first"),
        "{}",
        rotated.text
    );
    assert!(rotated.text.contains("second pass"), "{}", rotated.text);
    assert_eq!(
        rotated.text.matches("healthy 3/3").count(),
        2,
        "both passes end healthy: {}",
        rotated.text
    );
    eprintln!("CA rotation (two rolling passes): {:.1} s", rotated.secs);

    // A client of the new CA only (new admin certificate, new CA as its trust) reads what was written before.
    let new_ca_only = cairn_tests::etcdctl::Etcdctl {
        endpoints: eps.join(","),
        cacert: Some(out.join("pki/ca.crt")),
        cert: Some((
            out.join("pki/clients/admin.crt"),
            out.join("pki/clients/admin.key"),
        )),
    };
    assert_eq!(
        new_ca_only
            .ok(&["get", "before-rotation", "--print-value-only"])?
            .trim(),
        "kept"
    );
    let h = new_ca_only.run(&["endpoint", "health"])?;
    assert_eq!(
        format!("{}{}", h.stdout, h.stderr)
            .matches("is healthy")
            .count(),
        3
    );
    for name in ["infra0", "infra1", "infra2"] {
        let cert = dir.path().join("etc").join(name).join("pki/server.crt");
        cairn_tests::tools::openssl_verify(&out.join("pki/ca.crt"), &cert, None)?;
    }
    let again = provision(dir.path(), &["apply", spec, "-o", out_s])?.ok()?;
    assert!(again.text.contains("no changes"), "{}", again.text);
    provision(dir.path(), &["reset", spec, "-o", out_s, "--yes"])?.ok()?;
    Ok(())
}
