//! Disaster recovery and migration through snapshots in etcd's format, with the real tools on both
//! sides: a cairn cluster's `etcdctl snapshot save` read by etcdutl 3.5 and etcdctl 3.4 and restored
//! into a real etcd 3.4 cluster; an etcd 3.4 cluster's snapshot restored into cairn members. Each side
//! must serve every key with the same create/mod revisions, versions, values and lease, refuse reads
//! below the compaction, and continue from the next revision.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use cairn_tests::cluster::{Cluster, Flavor, START_TIMEOUT};
use cairn_tests::etcdctl::Etcdctl;
use cairn_tests::tools::{output, run_ok};
use cairn_tests::workspace;
use serde_json::Value;

/// Unwraps with the whole error chain in the panic message.
fn must<T>(r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e:#}"),
    }
}

/// The directory of etcd 3.5's binaries (etcd, etcdctl, etcdutl), fetched by scripts/etcd35.sh.
fn etcd35() -> Result<PathBuf> {
    let script = workspace::root().join("scripts/etcd35.sh");
    Ok(PathBuf::from(
        stdout_of(Command::new("bash").arg(&script))?.trim(),
    ))
}

/// What a cluster serves after [`make_history`]: every live key, an older revision of the `k`
/// prefix, the revision, the lease with its keys.
#[derive(Debug, PartialEq)]
struct Served {
    kvs: Value,
    history: Value,
    revision: i64,
    lease: String,
}

/// Puts over six keys, a lease with a key, two deletions, a compaction, later puts. Returns the lease
/// ID (hex), the compaction revision and a revision after it.
fn make_history(ctl: &Etcdctl) -> Result<(String, i64, i64)> {
    for i in 0..30 {
        ctl.ok(&["put", &format!("k{}", i % 6), &format!("v{i}")])?;
    }
    let granted = ctl.ok(&["lease", "grant", "600"])?;
    let lease = granted
        .split_whitespace()
        .nth(1)
        .context("lease grant output")?
        .to_string();
    ctl.ok(&["put", "leased", "x", &format!("--lease={lease}")])?;
    ctl.ok(&["del", "k3"])?;
    ctl.ok(&["del", "k4"])?;
    let compact_at = 20;
    ctl.ok(&["compact", &compact_at.to_string()])?;
    let middle = revision(ctl)?;
    ctl.ok(&["put", "k0", "after"])?;
    ctl.ok(&["put", "k5", "after"])?;
    ctl.ok(&["put", "k6", "new"])?;
    Ok((lease, compact_at, middle))
}

fn revision(ctl: &Etcdctl) -> Result<i64> {
    let v = ctl.json(&["get", "none", "-w", "json"])?;
    v["header"]["revision"]
        .as_i64()
        .context("header.revision in get -w json")
}

fn served(ctl: &Etcdctl, lease: &str, at: i64) -> Result<Served> {
    let all = ctl.json(&["get", "", "--prefix", "-w", "json"])?;
    let history = ctl.json(&["get", "k", "--prefix", &format!("--rev={at}"), "-w", "json"])?;
    let ttl = ctl.ok(&["lease", "timetolive", lease, "--keys"])?;
    // "lease X granted with TTL(600s), remaining(597s), attached keys([leased])": the remaining time moves.
    let lease_line = ttl
        .split(", remaining")
        .next()
        .unwrap_or_default()
        .to_string()
        + ttl.rsplit_once(',').map(|(_, k)| k).unwrap_or_default();
    Ok(Served {
        kvs: all["kvs"].clone(),
        history: history["kvs"].clone(),
        revision: all["header"]["revision"].as_i64().context("revision")?,
        lease: lease_line.trim().to_string(),
    })
}

/// The checks both directions share: same data, compaction kept, writes continue at the next revision.
fn assert_same_and_writable(
    ctl: &Etcdctl,
    before: &Served,
    lease: &str,
    compacted: i64,
    middle: i64,
) {
    let after = must(served(ctl, lease, middle));
    assert_eq!(&after, before, "restored cluster serves something else");
    assert!(
        after.lease.ends_with("attached keys([leased])"),
        "{}",
        after.lease
    );
    let old = must(ctl.run(&["get", "k0", &format!("--rev={}", compacted - 1)]));
    assert!(
        old.stderr.contains("required revision has been compacted"),
        "read below the compaction: {old:?}"
    );
    let put = must(ctl.json(&["put", "fresh", "1", "-w", "json"]));
    assert_eq!(
        put["header"]["revision"].as_i64(),
        Some(before.revision + 1)
    );
}

fn status_json(program: &Path, file: &Path) -> Result<Value> {
    let out = stdout_of(
        Command::new(program)
            .args(["snapshot", "status", "-w", "json"])
            .arg(file),
    )?;
    serde_json::from_str(out.trim()).with_context(|| format!("status JSON: {out}"))
}

/// Standard output of a command that must succeed (the tools log on stderr).
fn stdout_of(cmd: &mut Command) -> Result<String> {
    let o = output(cmd)?;
    if !o.status.success() {
        anyhow::bail!(
            "{cmd:?} failed ({}):\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn a_cairn_snapshot_restores_into_a_real_etcd_cluster_with_every_revision() {
    let src = must(Cluster::start(Flavor::Cairn, 3));
    let ctl = src.etcdctl();
    let (lease, compacted, middle) = must(make_history(&ctl));
    let before = must(served(&ctl, &lease, middle));
    let file = src.dir().join("cairn.db");
    must(
        src.etcdctl_for(1)
            .ok(&["snapshot", "save", &file.display().to_string()]),
    );

    // etcd's own tools accept the file and agree on what it holds.
    let v35 = must(etcd35());
    let s35 = must(status_json(&v35.join("etcdutl"), &file));
    let s34 = must(status_json(Path::new("etcdctl"), &file));
    assert_eq!(s35, s34, "etcdutl 3.5 and etcdctl 3.4 disagree");
    assert_eq!(s35["revision"].as_i64(), Some(before.revision));
    let scratch = src.dir().join("etcdutl-restore");
    must(run_ok(
        Command::new(v35.join("etcdutl"))
            .args(["snapshot", "restore"])
            .arg(&file)
            .args(["--name=r0", "--initial-cluster=r0=http://127.0.0.1:2380"])
            .args(["--initial-advertise-peer-urls=http://127.0.0.1:2380"])
            .arg(format!("--data-dir={}", scratch.display())),
    ));
    assert!(scratch.join("member/snap/db").is_file());

    // A real etcd 3.4 cluster restored with etcdctl 3.4, one data dir per member.
    let mut dst = must(Cluster::create(Flavor::Etcd, 3));
    for m in &dst.members {
        must(ctl.ok(&[
            "snapshot",
            "restore",
            &file.display().to_string(),
            &format!("--name={}", m.name),
            &format!("--initial-cluster={}", dst.initial_cluster()),
            &format!("--initial-cluster-token={}", dst.token),
            &format!("--initial-advertise-peer-urls={}", m.peer_url),
            &format!("--data-dir={}", m.data_dir.display()),
        ]));
    }
    must(dst.start_all());
    must(dst.wait_healthy(START_TIMEOUT));
    assert_same_and_writable(&dst.etcdctl(), &before, &lease, compacted, middle);
}

#[test]
fn an_etcd_snapshot_restores_into_cairn_members_and_writes_continue() {
    let src = must(Cluster::start(Flavor::Etcd, 3));
    let ctl = src.etcdctl();
    let (lease, compacted, middle) = must(make_history(&ctl));
    let before = must(served(&ctl, &lease, middle));
    let file = src.dir().join("etcd.db");
    must(
        src.etcdctl_for(0)
            .ok(&["snapshot", "save", &file.display().to_string()]),
    );

    let cairn = must(workspace::binary("cairn"));
    // `cairn snapshot status` prints etcdctl's figures for etcd's own file.
    assert_eq!(
        must(status_json(&cairn, &file)),
        must(status_json(Path::new("etcdctl"), &file))
    );

    let mut dst = must(Cluster::create(Flavor::Cairn, 3));
    for m in &dst.members {
        must(run_ok(
            Command::new(&cairn)
                .args(["snapshot", "restore"])
                .arg(&file)
                .arg(format!("--name={}", m.name))
                .arg(format!("--initial-cluster={}", dst.initial_cluster()))
                .arg(format!("--initial-cluster-token={}", dst.token))
                .arg(format!("--initial-advertise-peer-urls={}", m.peer_url))
                .arg(format!("--data-dir={}", m.data_dir.display())),
        ));
    }
    // etcdctl's refusals, word for word.
    let again = must(output(
        Command::new(&cairn)
            .args(["snapshot", "restore"])
            .arg(&file)
            .arg(format!("--data-dir={}", dst.members[0].data_dir.display())),
    ));
    let text = String::from_utf8_lossy(&again.stderr);
    assert!(text.contains("not empty or could not be read"), "{text}");

    must(dst.start_all());
    must(dst.wait_healthy(START_TIMEOUT));
    let dctl = dst.etcdctl();
    assert_same_and_writable(&dctl, &before, &lease, compacted, middle);
    // Every member holds the same history.
    let hashes = must(dctl.json(&["endpoint", "hashkv", "-w", "json"]));
    let hashes: Vec<&Value> = hashes
        .as_array()
        .map(|a| a.iter().map(|h| &h["HashKV"]["hash"]).collect())
        .unwrap_or_default();
    assert_eq!(hashes.len(), 3);
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
}

/// Client endpoints of a local cluster file (its `client_port`s on 127.0.0.1).
fn local_endpoints(spec: &Path) -> Result<String> {
    let text = std::fs::read_to_string(spec)?;
    let eps: Vec<String> = text
        .lines()
        .filter_map(|l| l.split("client_port: ").nth(1))
        .filter_map(|r| r.split(',').next())
        .map(|p| format!("https://127.0.0.1:{p}"))
        .collect();
    Ok(eps.join(","))
}

#[test]
fn provision_backup_then_restore_brings_back_a_wiped_local_cluster() -> Result<()> {
    use cairn_tests::apply::{admin_etcdctl, provision};
    let dir = tempfile::tempdir()?;
    let _cleanup = super::apply::Cleanup(dir.path());
    let spec = super::apply::local_spec(dir.path())?;
    let spec_arg = spec.to_str().context("utf-8 path")?;
    provision(dir.path(), &["apply", spec_arg])?.ok()?;
    let ctl = admin_etcdctl(&dir.path().join("out/local"), local_endpoints(&spec)?);
    for i in 0..40 {
        ctl.ok(&["put", &format!("dr/{i:02}"), &format!("value {i}")])?;
    }
    ctl.ok(&["del", "dr/07"])?;
    let before = ctl.json(&["get", "dr/", "--prefix", "-w", "json"])?;

    // The backup path: a new file in an existing directory; no folder created, no silent overwrite.
    let missing = provision(dir.path(), &["backup", spec_arg, "-f", "nowhere/snap.db"])?;
    assert_eq!(missing.code, Some(2), "{}", missing.text);
    assert!(
        missing.text.contains("directory nowhere does not exist"),
        "{}",
        missing.text
    );
    assert!(!dir.path().join("nowhere").exists());
    provision(dir.path(), &["backup", spec_arg, "-f", "snap.db"])?.ok()?;
    let again = provision(dir.path(), &["backup", spec_arg, "-f", "snap.db"])?;
    assert_eq!(again.code, Some(2), "{}", again.text);
    assert!(
        again.text.contains("file exists; pass --force"),
        "{}",
        again.text
    );
    provision(
        dir.path(),
        &["backup", spec_arg, "-f", "snap.db", "--force"],
    )?
    .ok()?;

    // Disaster: every member killed and its data dir wiped.
    for pid in super::apply::member_pids(dir.path()) {
        Command::new("kill")
            .arg("-9")
            .arg(pid.to_string())
            .status()?;
    }
    for m in ["infra0", "infra1", "infra2"] {
        let data = dir.path().join("data").join(m);
        cairn_tests::wait::wait_for(
            "the killed member's data dir to go",
            std::time::Duration::from_secs(10),
            std::time::Duration::from_millis(100),
            || std::fs::remove_dir_all(&data).map_err(|e| e.to_string()),
        )?;
    }
    let restored = provision(dir.path(), &["restore", spec_arg, "-f", "snap.db", "--yes"])?.ok()?;
    assert!(
        restored
            .text
            .contains("restored: 3 members agree at revision"),
        "{}",
        restored.text
    );
    assert!(restored.text.contains("healthy 3/3"), "{}", restored.text);
    let after = ctl.json(&["get", "dr/", "--prefix", "-w", "json"])?;
    assert_eq!(after["kvs"], before["kvs"], "keys after the restore");
    assert_eq!(after["kvs"].as_array().map(Vec::len), Some(39));
    ctl.ok(&["put", "dr/after", "1"])?;

    // A restore over running members keeps their data dirs aside, and apply then has nothing to do.
    provision(dir.path(), &["restore", spec_arg, "-f", "snap.db", "--yes"])?.ok()?;
    let kept: Vec<String> = std::fs::read_dir(dir.path().join("data"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".before-restore-"))
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(
        ctl.ok(&["get", "dr/after"])?.is_empty(),
        "the snapshot predates dr/after"
    );
    let apply = provision(dir.path(), &["apply", spec_arg])?.ok()?;
    assert!(apply.text.contains("no changes"), "{}", apply.text);
    provision(dir.path(), &["reset", spec_arg, "--yes"])?.ok()?;
    Ok(())
}

/// Plain-http cairn members started by a test with their own flags, killed (by PID) when dropped.
struct Members {
    dir: tempfile::TempDir,
    children: Vec<(String, std::process::Child)>,
}

impl Members {
    fn new() -> Result<Members> {
        Ok(Members {
            dir: tempfile::Builder::new().prefix("cd-disc-").tempdir()?,
            children: Vec::new(),
        })
    }

    /// Start `name` on fresh loopback ports with `args`; returns its client and peer URLs.
    fn start(&mut self, name: &str, args: &[String]) -> Result<(String, String)> {
        let p = cairn_tests::ports::unused_ports(2)?;
        let (client, peer) = (
            format!("http://127.0.0.1:{}", p[0]),
            format!("http://127.0.0.1:{}", p[1]),
        );
        self.start_at(name, &client, &peer, args)?;
        Ok((client, peer))
    }

    fn start_at(&mut self, name: &str, client: &str, peer: &str, args: &[String]) -> Result<()> {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.log(name))?;
        let child = Command::new(workspace::binary("cairn")?)
            .arg(format!("--name={name}"))
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join(name).display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .args(args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// Wait for `name` to exit; its exit code and log.
    fn exit_of(&mut self, name: &str) -> Result<(Option<i32>, String)> {
        let i = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .context("no such member")?;
        let code = cairn_tests::wait::wait_for(
            "the member to exit",
            std::time::Duration::from_secs(20),
            std::time::Duration::from_millis(100),
            || match self.children[i].1.try_wait() {
                Ok(Some(s)) => Ok(s.code()),
                _ => Err("still running".into()),
            },
        )?;
        Ok((code, std::fs::read_to_string(self.log(name))?))
    }

    fn kill(&mut self, name: &str) {
        for (n, c) in &mut self.children {
            if n == name {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn plain_etcdctl(endpoints: &str) -> Etcdctl {
    Etcdctl {
        endpoints: endpoints.to_string(),
        cacert: None,
        cert: None,
    }
}

fn wait_healthy(ctl: &Etcdctl, n: usize) -> Result<()> {
    cairn_tests::wait::wait_for(
        "every discovered member healthy",
        START_TIMEOUT,
        std::time::Duration::from_millis(200),
        || {
            let out = ctl
                .run(&["endpoint", "health"])
                .map_err(|e| e.to_string())?;
            let text = format!("{}{}", out.stdout, out.stderr);
            if out.success() && text.matches("is healthy").count() == n {
                Ok(())
            } else {
                Err(text)
            }
        },
    )
}

/// The members' names once every member has published its own (a member publishes its name through
/// Raft after it starts, as etcd's do, so a healthy member may still be listed without one).
fn member_names(ctl: &Etcdctl, n: usize) -> Result<Vec<String>> {
    cairn_tests::wait::wait_for(
        "every member's name published",
        START_TIMEOUT,
        std::time::Duration::from_millis(200),
        || {
            let names = listed_names(ctl).map_err(|e| e.to_string())?;
            if names.len() == n {
                Ok(names)
            } else {
                Err(format!("{names:?}"))
            }
        },
    )
}

fn listed_names(ctl: &Etcdctl) -> Result<Vec<String>> {
    let v = ctl.json(&["member", "list", "-w", "json"])?;
    let mut names: Vec<String> = v["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    m["name"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    Ok(names)
}

/// A discovery service as etcd's clustering guide runs one: a real etcd 3.4 with the v2 API, the size
/// of `token` set with etcdctl's v2 API. Returns the process holder and the service's URL.
fn v2_discovery_service(token: &str, size: usize) -> Result<(Members, String)> {
    let mut svc = Members::new()?;
    let p = cairn_tests::ports::unused_ports(2)?;
    let url = format!("http://127.0.0.1:{}", p[0]);
    let log = std::fs::File::create(svc.log("discovery-etcd"))?;
    let etcd = Command::new(Flavor::Etcd.binary()?)
        .args(["--name=disc", "--enable-v2"])
        .arg(format!(
            "--data-dir={}",
            svc.dir.path().join("disc").display()
        ))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{}", p[1]))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{}",
            p[1]
        ))
        .arg(format!("--initial-cluster=disc=http://127.0.0.1:{}", p[1]))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    svc.children.push(("discovery-etcd".into(), etcd));
    let key = format!("/discovery/{token}/_config/size");
    cairn_tests::wait::wait_for(
        "the discovery etcd",
        START_TIMEOUT,
        std::time::Duration::from_millis(200),
        || v2_ctl(&url, &["set", &key, &size.to_string()]).map_err(|e| e.to_string()),
    )?;
    Ok((svc, url))
}

/// etcdctl 3.4 speaking the v2 API to `url`.
fn v2_ctl(url: &str, args: &[&str]) -> Result<String> {
    let out = output(
        Command::new("etcdctl")
            .env("ETCDCTL_API", "2")
            .arg(format!("--endpoints={url}"))
            .args(args),
    )?;
    anyhow::ensure!(out.status.success(), "etcdctl v2 {args:?}: {out:?}");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The members registered under a v2 discovery directory (its entries other than `_config`).
fn registrations(url: &str, dir: &str) -> Result<Vec<String>> {
    let listed = v2_ctl(url, &["ls", dir])?;
    Ok(listed
        .lines()
        .filter(|l| !l.ends_with("_config"))
        .map(String::from)
        .collect())
}

/// A forward HTTP proxy on loopback (absolute-form requests, one per connection) that records each
/// request line it forwards.
fn start_proxy() -> Result<(String, std::sync::Arc<std::sync::Mutex<Vec<String>>>)> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut client = conn;
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut b)? == 0 {
                        return Ok(());
                    }
                    head.push(b[0]);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let line = text.lines().next().unwrap_or_default().to_string();
                let mut parts = line.split_whitespace();
                let target = parts.nth(1).unwrap_or("");
                let rest = target.strip_prefix("http://").unwrap_or(target);
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                if let Ok(mut l) = log.lock() {
                    l.push(line.clone());
                }
                let mut upstream = std::net::TcpStream::connect(authority)?;
                let rewritten = text.replacen(target, if path.is_empty() { "/" } else { path }, 1);
                upstream.write_all(rewritten.as_bytes())?;
                let mut up_read = upstream.try_clone()?;
                let mut client_write = client.try_clone()?;
                let back =
                    std::thread::spawn(move || std::io::copy(&mut up_read, &mut client_write));
                let _ = std::io::copy(&mut client, &mut upstream);
                let _ = upstream.shutdown(std::net::Shutdown::Write);
                let _ = back.join();
                Ok(())
            });
        }
    });
    Ok((url, seen))
}

#[test]
fn v2_discovery_goes_through_the_discovery_proxy() -> Result<()> {
    let (_svc, svc_url) = v2_discovery_service("proxied", 1)?;
    let (proxy, seen) = start_proxy()?;
    let url = format!("{svc_url}/v2/keys/discovery/proxied");
    let mut m = Members::new()?;
    let (client, _) = m.start(
        "p0",
        &[
            format!("--discovery={url}"),
            format!("--discovery-proxy={proxy}"),
        ],
    )?;
    wait_healthy(&plain_etcdctl(&client), 1)?;
    let lines = seen.lock().map(|l| l.clone()).unwrap_or_default();
    // The size, the token's members, the registration: all as absolute URLs to the proxy.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("GET {url}/_config/size "))),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("PUT {url}/"))),
        "{lines:?}"
    );
    Ok(())
}

#[test]
fn three_members_bootstrap_through_v2_discovery_on_etcd_and_errors_read_as_etcds() -> Result<()> {
    let (_svc, svc_url) = v2_discovery_service("tok", 3)?;
    let url = format!("{svc_url}/v2/keys/discovery/tok");

    let mut m = Members::new()?;
    let mut urls = Vec::new();
    for i in 0..3 {
        urls.push(m.start(&format!("m{i}"), &[format!("--discovery={url}")])?);
    }
    let clients: Vec<&str> = urls.iter().map(|u| u.0.as_str()).collect();
    let ctl = plain_etcdctl(&clients.join(","));
    wait_healthy(&ctl, 3)?;
    assert_eq!(member_names(&ctl, 3)?, ["m0", "m1", "m2"]);
    ctl.ok(&["put", "k", "v"])?;

    // A fourth member finds the cluster full; a token without a size is refused with etcd's words.
    m.start("m3", &[format!("--discovery={url}")])?;
    let (code, log) = m.exit_of("m3")?;
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("discovery: cluster is full"), "{log}");
    let nosize = format!("{svc_url}/v2/keys/discovery/nosize");
    m.start("m4", &[format!("--discovery={nosize}")])?;
    let (_, log) = m.exit_of("m4")?;
    assert!(
        log.contains(&format!(
            "the cluster doesn't have a size configuration value in {nosize}/_config"
        )),
        "{log}"
    );
    // Bootstrap flags that contradict each other are refused before anything starts.
    m.start(
        "m5",
        &[
            format!("--discovery={url}"),
            "--initial-cluster=m5=http://127.0.0.1:1".into(),
        ],
    )?;
    let (code, log) = m.exit_of("m5")?;
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("multiple discovery or bootstrap flags are set"),
        "{log}"
    );

    // A restarted member does not ask the service again.
    let registered = registrations(&svc_url, "/discovery/tok")?;
    assert_eq!(registered.len(), 3, "{registered:?}");
    m.kill("m0");
    let (client0, peer0) = urls[0].clone();
    m.start_at("m0", &client0, &peer0, &[format!("--discovery={url}")])?;
    wait_healthy(&ctl, 3)?;
    let log0 = std::fs::read_to_string(m.log("m0"))?;
    assert!(
        log0.contains("discovery token ignored since a cluster has already been initialized"),
        "{log0}"
    );
    assert_eq!(ctl.ok(&["get", "k", "--print-value-only"])?.trim(), "v");
    Ok(())
}

/// The body of a plain HTTP/1.0 GET (the server closes the connection after it).
fn http_get(url: &str) -> Result<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").context("an http:// URL")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").context("an HTTP answer")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "GET {url}: {head}"
    );
    Ok(body.to_string())
}

/// Debian's etcd-discovery (the discovery.etcd.io service) issues a token for three; three cairn members
/// bootstrap with `--discovery` against it, offline: its etcd is a local etcd 3.4 with the v2 API.
#[test]
fn three_members_bootstrap_through_debians_etcd_discovery_service() -> Result<()> {
    let service = cairn_tests::tools::require("discovery.etcd.io", "etcd-discovery")?;
    let (mut svc, etcd_url) = v2_discovery_service("warm-up", 1)?;
    let port = cairn_tests::ports::unused_ports(1)?[0];
    let base = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(svc.log("discovery.etcd.io"))?;
    let child = Command::new(service)
        .arg(format!("--addr=127.0.0.1:{port}"))
        .arg(format!("--etcd={etcd_url}"))
        .arg(format!("--host={base}"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    svc.children.push(("discovery.etcd.io".into(), child));
    let url = cairn_tests::wait::wait_for(
        "a token from /new?size=3",
        START_TIMEOUT,
        std::time::Duration::from_millis(200),
        || http_get(&format!("{base}/new?size=3")).map_err(|e| format!("{e:#}")),
    )?;
    let url = url.trim().to_string();
    assert!(url.starts_with(&format!("{base}/")), "{url}");

    let mut m = Members::new()?;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(
            m.start(&format!("e{i}"), &[format!("--discovery={url}")])?
                .0,
        );
    }
    let ctl = plain_etcdctl(&clients.join(","));
    wait_healthy(&ctl, 3)?;
    assert_eq!(member_names(&ctl, 3)?, ["e0", "e1", "e2"]);
    // The service keeps the registrations under etcd's registry, next to the size it set.
    let token = url.rsplit('/').next().unwrap_or_default();
    let registered = registrations(&etcd_url, &format!("/_etcd/registry/{token}"))?;
    assert_eq!(registered.len(), 3, "{registered:?}");
    // A fourth member finds the cluster full, as with etcd's own discovery service.
    m.start("e3", &[format!("--discovery={url}")])?;
    let (code, log) = m.exit_of("e3")?;
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("discovery: cluster is full"), "{log}");
    Ok(())
}

#[test]
fn three_members_bootstrap_through_v3_discovery_on_a_cairn_cluster() -> Result<()> {
    let svc = Cluster::start(Flavor::Cairn, 3)?;
    let sctl = svc.etcdctl();
    sctl.ok(&["put", "/_etcd/registry/tok3/_config/size", "3"])?;
    let args = vec![
        "--discovery-token=tok3".to_string(),
        format!("--discovery-endpoints={}", svc.endpoints()),
        "--discovery-insecure-transport=false".into(),
        format!("--discovery-cacert={}", svc.pki.ca.display()),
        format!("--discovery-cert={}", svc.pki.admin.crt.display()),
        format!("--discovery-key={}", svc.pki.admin.key.display()),
    ];
    let mut m = Members::new()?;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(m.start(&format!("n{i}"), &args)?.0);
    }
    let ctl = plain_etcdctl(&clients.join(","));
    wait_healthy(&ctl, 3)?;
    assert_eq!(member_names(&ctl, 3)?, ["n0", "n1", "n2"]);
    let registered = sctl.ok(&[
        "get",
        "/_etcd/registry/tok3/members/",
        "--prefix",
        "--keys-only",
    ])?;
    assert_eq!(
        registered.lines().filter(|l| !l.is_empty()).count(),
        3,
        "{registered}"
    );

    m.start("n3", &args)?;
    let (code, log) = m.exit_of("n3")?;
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("discovery: cluster is full"), "{log}");
    m.start("n4", &["--discovery-token=tok3".to_string()])?;
    let (code, log) = m.exit_of("n4")?;
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("both --discovery-token and --discovery-endpoints must be set"),
        "{log}"
    );
    Ok(())
}

/// examples/discovery.yaml with free member ports, pointed at the test's discovery cluster `svc` and its
/// TLS files (its CA, and its admin certificate as the client identity).
fn discovery_spec(dir: &Path, svc: &Cluster) -> Result<PathBuf> {
    let mut text = std::fs::read_to_string(workspace::root().join("examples/discovery.yaml"))?;
    let p = cairn_tests::ports::unused_ports(6)?;
    for (i, (c, pe)) in [(2479, 2480), (22479, 22480), (32479, 32480)]
        .iter()
        .enumerate()
    {
        text = text.replace(
            &format!("client_port: {c}, peer_port: {pe}"),
            &format!("client_port: {}, peer_port: {}", p[2 * i], p[2 * i + 1]),
        );
    }
    let tls = format!(
        "    ca: {}\n    cert: {}\n    key: {}\n",
        svc.pki.ca.display(),
        svc.pki.admin.crt.display(),
        svc.pki.admin.key.display()
    );
    let commented = "    # ca: discovery/ca.crt\n    # cert: discovery/client.crt\n    # key: discovery/client.key\n";
    anyhow::ensure!(
        text.contains(commented) && text.contains("[http://127.0.0.1:12379]"),
        "examples/discovery.yaml changed"
    );
    text = text.replace(commented, &tls).replace(
        "[http://127.0.0.1:12379]",
        &format!("[{}]", svc.endpoints()),
    );
    let path = dir.join("discovery.yaml");
    std::fs::write(&path, text)?;
    Ok(path)
}

#[test]
fn provision_apply_bootstraps_three_local_members_through_a_discovery_cluster() -> Result<()> {
    use cairn_tests::apply::{admin_etcdctl, provision};
    let svc = Cluster::start(Flavor::Cairn, 1)?;
    let sctl = svc.etcdctl();
    let size_key = "/_etcd/registry/disco-7f3c2a/_config/size";
    let dir = tempfile::tempdir()?;
    let _cleanup = super::apply::Cleanup(dir.path());
    let spec = discovery_spec(dir.path(), &svc)?;
    let spec_arg = spec.to_str().context("utf-8 path")?;

    // A token that already expects another size is refused, naming it, before any member starts.
    sctl.ok(&["put", size_key, "5"])?;
    let refused = provision(dir.path(), &["apply", spec_arg])?;
    assert_ne!(refused.code, Some(0), "{}", refused.text);
    assert!(
        refused
            .text
            .contains("discovery token \"disco-7f3c2a\" already expects 5 members")
            && refused.text.contains("cluster.yaml lists 3"),
        "{}",
        refused.text
    );
    assert!(super::apply::member_pids(dir.path()).is_empty());
    sctl.ok(&["del", size_key])?;

    let first = provision(dir.path(), &["apply", spec_arg])?.ok()?;
    assert!(
        first.text.contains(&format!("set {size_key} = 3")),
        "{}",
        first.text
    );
    assert_eq!(
        sctl.ok(&["get", size_key, "--print-value-only"])?.trim(),
        "3"
    );
    let registered = sctl.ok(&[
        "get",
        "/_etcd/registry/disco-7f3c2a/members/",
        "--prefix",
        "--keys-only",
    ])?;
    assert_eq!(
        registered.lines().filter(|l| !l.is_empty()).count(),
        3,
        "{registered}"
    );
    let env = std::fs::read_to_string(dir.path().join("out/disco/nodes/infra0/cairn.env"))?;
    assert!(
        env.contains("CAIRN_DISCOVERY_TOKEN=") && !env.contains("CAIRN_INITIAL_CLUSTER="),
        "{env}"
    );
    let ctl = admin_etcdctl(&dir.path().join("out/disco"), local_endpoints(&spec)?);
    wait_healthy(&ctl, 3)?;
    assert_eq!(member_names(&ctl, 3)?, ["infra0", "infra1", "infra2"]);
    ctl.ok(&["put", "k", "v"])?;

    let second = provision(dir.path(), &["apply", spec_arg])?.ok()?;
    assert!(
        second.text.contains("no changes") && second.text.contains("size 3 already set"),
        "{}",
        second.text
    );

    // A member added later joins with --initial-cluster: the used-up token would answer "cluster is full".
    let p = cairn_tests::ports::unused_ports(2)?;
    let grown = std::fs::read_to_string(&spec)?
        + &format!(
            "  - {{ name: infra3, address: 127.0.0.1, client_port: {}, peer_port: {} }}\n",
            p[0], p[1]
        );
    std::fs::write(&spec, grown)?;
    let _infra3 = KillPidFile(dir.path().join("data/infra3/cairn.pid"));
    let third = provision(dir.path(), &["apply", spec_arg])?.ok()?;
    assert!(
        third.text.contains("was used at bootstrap with size 3"),
        "{}",
        third.text
    );
    let ctl = admin_etcdctl(&dir.path().join("out/disco"), local_endpoints(&spec)?);
    wait_healthy(&ctl, 4)?;
    assert_eq!(
        member_names(&ctl, 4)?,
        ["infra0", "infra1", "infra2", "infra3"]
    );
    provision(dir.path(), &["reset", spec_arg, "--yes"])?.ok()?;
    Ok(())
}

/// Kills the process a member's pid file names when dropped (a member the shared cleanup does not know).
struct KillPidFile(PathBuf);

impl Drop for KillPidFile {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|t| t.split_whitespace().next().map(String::from));
        if let Some(pid) = pid {
            let _ = Command::new("kill").arg("-9").arg(pid).status();
        }
    }
}

#[test]
fn provision_restore_brings_back_wiped_systemd_hosts_over_ssh() -> Result<()> {
    use cairn_tests::apply::provision;
    use cairn_tests::hosts::HostSet;
    let hosts = ["r1", "r2", "r3"];
    let set = HostSet::start("cd-restore", &hosts)?;
    let scratch = set.scratch().to_path_buf();
    let out = scratch.join("out").display().to_string();
    let spec = super::apply_ssh::write_spec(&set, &hosts)?;
    // The debug build is mostly debug info; a stripped copy uploads much faster.
    let bin = scratch.join("cairn");
    run_ok(
        Command::new(cairn_tests::tools::require("strip", "binutils")?)
            .arg("-o")
            .arg(&bin)
            .arg(workspace::binary("cairn")?),
    )?;
    let bin = bin.display().to_string();
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["-o", &out, "--binary", &bin]);
        provision(&scratch, &a)
    };
    run(&["apply", &spec])?.ok()?;
    let ctl = super::apply_ssh::ssh_etcdctl(&set, &hosts)?;
    for i in 0..25 {
        ctl.ok(&["put", &format!("ssh/{i:02}"), &format!("v{i}")])?;
    }
    let before = ctl.json(&["get", "ssh/", "--prefix", "-w", "json"])?;
    run(&["backup", &spec, "-f", "snap.db"])?.ok()?;

    for h in hosts {
        set.exec(
            set.host(h)?,
            "systemctl stop cairn.service && rm -rf /var/lib/cairn",
        )?;
    }
    let restored = run(&["restore", &spec, "-f", "snap.db", "--yes"])?.ok()?;
    eprintln!("{}", restored.text);
    assert!(
        restored
            .text
            .contains("restored: 3 members agree at revision"),
        "{}",
        restored.text
    );
    let after = ctl.json(&["get", "ssh/", "--prefix", "-w", "json"])?;
    assert_eq!(after["kvs"], before["kvs"]);
    for h in hosts {
        let owner = set.exec(set.host(h)?, "stat -c %U /var/lib/cairn/member/raft.redb")?;
        assert_eq!(owner.trim(), "cairn", "{h}");
    }
    let again = run(&["apply", &spec])?.ok()?;
    assert!(again.text.contains("no changes"), "{}", again.text);
    Ok(())
}
