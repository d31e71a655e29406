//! `provision apply`: the local transport (the README's first command) and, over real SSH, host containers
//! running systemd (tests/src/hosts.rs).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use cairn_tests::apply::provision;
use cairn_tests::etcdctl::Etcdctl;
use cairn_tests::hosts::{HostSet, OPERATOR};
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

fn etcdctl_for(out: &Path, endpoints: String) -> Etcdctl {
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
    let ctl = etcdctl_for(&dir.path().join("out/local"), eps.join(","));
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

/// cluster.yaml for host containers `hosts`, reached as `operator` (sudo) with the host set's key.
fn ssh_spec(set: &HostSet, hosts: &[&str]) -> Result<String> {
    let first = set.host(hosts[0])?.address.octets();
    // This machine reaches the containers from the network's gateway (.1): the only client source.
    let gateway = format!("{}.{}.{}.1", first[0], first[1], first[2]);
    let mut text = format!(
        "cluster:\n  name: e2e\n  transport: ssh\ntls:\n  enabled: true\nfirewall:\n  backend: nftables\n  \
         client_sources: [{gateway}/32]\nlogging: {{ file: /var/log/cairn/cairn.log }}\n\
         apply: {{ known_hosts: {kh}, health_timeout_seconds: 90 }}\nnodes:\n",
        kh = set.scratch().join("known_hosts").display()
    );
    for h in hosts {
        let host = set.host(h)?;
        text.push_str(&format!(
            "  - {{ name: {h}, address: {}, ssh: {{ user: {OPERATOR}, key: {} }} }}\n",
            host.address,
            set.ssh_key().display()
        ));
    }
    Ok(text)
}

fn write_spec(set: &HostSet, hosts: &[&str]) -> Result<String> {
    let path = set.scratch().join("cluster.yaml");
    std::fs::write(&path, ssh_spec(set, hosts)?)?;
    Ok(path.display().to_string())
}

fn ssh_etcdctl(set: &HostSet, hosts: &[&str]) -> Result<Etcdctl> {
    let eps: Vec<String> = hosts
        .iter()
        .map(|h| Ok(format!("https://{}:2379", set.host(h)?.address)))
        .collect::<Result<_>>()?;
    Ok(etcdctl_for(&set.scratch().join("out"), eps.join(",")))
}

/// Member names as `etcdctl member list` reports them.
fn member_names(ctl: &Etcdctl) -> Result<Vec<String>> {
    let v = ctl.json(&["member", "list", "-w", "json"])?;
    let mut names: Vec<String> = v["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    Ok(names)
}

/// Whether `from` can open a TCP connection to `to`:`port` (nc inside the container).
fn reaches(set: &HostSet, from: &str, to: &str, port: u16) -> Result<bool> {
    let to = set.host(to)?.address;
    let out = set.exec(
        set.host(from)?,
        &format!("nc -z -w 3 {to} {port} && echo open || echo closed"),
    )?;
    Ok(out.trim() == "open")
}

/// Over real SSH as a sudo user into systemd host containers: a healthy TLS cluster with active units,
/// rsyslog routing, nftables rules; no-change re-apply; grow to 4; shrink to 3; a binary change rolled
/// through with a writer running and no acknowledged write lost.
#[test]
fn ssh_apply_installs_grows_shrinks_and_rolls_a_cluster_of_systemd_hosts() -> Result<()> {
    let mut set = HostSet::start("apply-e2e", &["h1", "h2", "h3", "h4", "h5"])?;
    let scratch = set.scratch().to_path_buf();
    let out = scratch.join("out");
    let out_s = out.display().to_string();
    let three = ["h1", "h2", "h3"];
    let spec = write_spec(&set, &three)?;
    // The debug build is ~200 MB, mostly debug info; a stripped copy uploads ~6x faster.
    let stripped = scratch.join("cairn");
    cairn_tests::tools::run_ok(
        std::process::Command::new(cairn_tests::tools::require("strip", "binutils")?)
            .arg("-o")
            .arg(&stripped)
            .arg(workspace::binary("cairn")?),
    )?;
    let bin = stripped.display().to_string();
    let apply = |spec: &str| provision(&scratch, &["apply", spec, "-o", &out_s, "--binary", &bin]);

    let first = apply(&spec)?.ok()?;
    eprintln!("{}", first.text);
    eprintln!("ssh apply of 3 hosts: healthy after {:.1} s", first.secs);
    assert!(first.text.contains("healthy 3/3"), "{}", first.text);
    assert!(
        first.text.contains("(sudo)"),
        "apply logs in as operator: {}",
        first.text
    );

    let ctl = ssh_etcdctl(&set, &three)?;
    ctl.ok(&["put", "k0", "v0"])?;
    assert_eq!(ctl.ok(&["get", "k0", "--print-value-only"])?.trim(), "v0");
    assert_eq!(member_names(&ctl)?, ["h1", "h2", "h3"]);
    for h in three {
        let host = set.host(h)?;
        let active = set.exec(
            host,
            "systemctl is-active cairn.service cairn-firewall.service || true",
        )?;
        assert_eq!(
            active.split_whitespace().collect::<Vec<_>>(),
            ["active", "active"],
            "{h}: {active}"
        );
        let perms = set.exec(host, "stat -c '%U %a' /etc/cairn/pki/server.key")?;
        assert_eq!(perms.trim(), "cairn 600", "{h}: server key owner and mode");
    }
    // rsyslog routes cairn's lines (SyslogIdentifier=cairn) to the configured file.
    let h1 = set.host("h1")?.clone();
    cairn_tests::wait::wait_for(
        "a cairn line in /var/log/cairn/cairn.log",
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(500),
        || match set.exec(&h1, "grep -c 'cairn' /var/log/cairn/cairn.log || true") {
            Ok(n) if n.trim().parse::<u32>().unwrap_or(0) > 0 => Ok(()),
            Ok(n) => Err(format!("{} lines", n.trim())),
            Err(e) => Err(format!("{e:#}")),
        },
    )?;
    // nftables: the peer port answers members only; h4 is not a member yet.
    assert!(
        reaches(&set, "h2", "h1", 2380)?,
        "a member reaches h1's peer port"
    );
    assert!(
        !reaches(&set, "h4", "h1", 2380)?,
        "a non-member must not reach h1's peer port"
    );
    assert!(
        !reaches(&set, "h4", "h1", 2379)?,
        "a non-member must not reach h1's client port"
    );

    let again = apply(&spec)?.ok()?;
    assert!(again.text.contains("no changes"), "{}", again.text);

    // Grow 3 → 5: h4, then h5, each joins as a learner and is promoted before the next.
    let five = ["h1", "h2", "h3", "h4", "h5"];
    let spec = write_spec(&set, &five)?;
    let grow = apply(&spec)?.ok()?;
    eprintln!("{}", grow.text);
    assert!(grow.text.contains("add h4 as learner"), "{}", grow.text);
    assert!(grow.text.contains("add h5 as learner"), "{}", grow.text);
    assert!(grow.text.contains("healthy 5/5"), "{}", grow.text);
    assert!(
        !grow.text.contains("restart h1"),
        "growing restarts nobody: {}",
        grow.text
    );
    assert_eq!(member_names(&ctl)?, ["h1", "h2", "h3", "h4", "h5"]);
    assert!(
        reaches(&set, "h4", "h1", 2380)?,
        "after the grow h4 is a member and reaches h1's peer port"
    );

    // Shrink 5 → 3: h1 and h5 leave; each is removed, stopped and disabled, its data kept.
    let rest = ["h2", "h3", "h4"];
    let spec = write_spec(&set, &rest)?;
    let shrink = apply(&spec)?.ok()?;
    eprintln!("{}", shrink.text);
    assert!(shrink.text.contains("remove h1"), "{}", shrink.text);
    assert!(shrink.text.contains("remove h5"), "{}", shrink.text);
    let ctl = ssh_etcdctl(&set, &rest)?;
    assert_eq!(member_names(&ctl)?, ["h2", "h3", "h4"]);
    let h1_state = set.exec(&h1, "systemctl is-active cairn.service || true; systemctl is-enabled cairn.service || true; test -f /var/lib/cairn/member/raft.redb && echo data")?;
    assert_eq!(
        h1_state.split_whitespace().collect::<Vec<_>>(),
        ["inactive", "disabled", "data"]
    );
    set.remove("h1")?;
    set.remove("h5")?;

    // A new binary rolls through one member at a time while a writer keeps writing.
    let changed = scratch.join("cairn-changed");
    std::fs::copy(&stripped, &changed)?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&changed)?
        .write_all(b"\nanother build\n")?;
    let writer = Writer::start(ctl.clone());
    let roll = provision(
        &scratch,
        &[
            "apply",
            &spec,
            "-o",
            &out_s,
            "--binary",
            &changed.display().to_string(),
        ],
    )?
    .ok()?;
    let acked = writer.stop()?;
    eprintln!("{}", roll.text);
    eprintln!(
        "rolling binary change: {:.1} s, {} writes acknowledged during it",
        roll.secs,
        acked.len()
    );
    for h in rest {
        assert!(
            roll.text.contains(&format!("[{h}] restart cairn")),
            "{h} restarted: {}",
            roll.text
        );
    }
    assert!(
        acked.len() > 5,
        "the writer got writes through during the roll: {}",
        acked.len()
    );
    for k in &acked {
        assert_eq!(
            ctl.ok(&["get", k, "--print-value-only"])?.trim(),
            k.as_str(),
            "acknowledged {k} lost"
        );
    }
    let final_apply = provision(
        &scratch,
        &[
            "apply",
            &spec,
            "-o",
            &out_s,
            "--binary",
            &changed.display().to_string(),
        ],
    )?
    .ok()?;
    assert!(
        final_apply.text.contains("no changes"),
        "{}",
        final_apply.text
    );

    // reset leaves no unit, config, firewall table, binary or data behind.
    provision(
        &scratch,
        &["reset", &spec, "-o", &out_s, "--yes", "--binary", &bin],
    )?
    .ok()?;
    for h in rest {
        let left = set.exec(
            set.host(h)?,
            "systemctl is-active cairn.service || true; \
             for f in /etc/cairn /etc/systemd/system/cairn.service /usr/local/bin/cairn /var/lib/cairn \
             /etc/rsyslog.d/30-cairn.conf; do [ -e $f ] && echo left $f; done; \
             nft list table inet cairn >/dev/null 2>&1 && echo left table; true",
        )?;
        assert_eq!(left.trim(), "inactive", "{h} after reset: {left}");
    }
    Ok(())
}

/// Writes key i = value i in a loop through etcdctl; remembers the keys whose put was acknowledged.
struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Vec<String>>,
}

impl Writer {
    fn start(ctl: Etcdctl) -> Writer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut i = 0u32;
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let k = format!("w{i:05}");
                if ctl.ok(&["put", &k, &k]).is_ok() {
                    acked.push(k);
                }
                i += 1;
            }
            acked
        });
        Writer { stop, handle }
    }

    fn stop(self) -> Result<Vec<String>> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("writer thread panicked"))
    }
}
