//! Regression tests for the safety defects of issue 14: each reproduces a fault (kill -9, corrupted
//! WAL, full disk, paused followers, …) against real processes and asserts what a client must see.
//! `CAIRN_TEST_FLAVOR=etcd` runs them against etcd 3.4, which is how the expectations were checked.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cairn_tests::base64::decode_str;
use cairn_tests::cluster::{Cluster, Flavor, START_TIMEOUT};
use cairn_tests::fixture::{must, three_members as cluster};
use cairn_tests::pause::Paused;
use cairn_tests::slow_disk::SlowDisk;
use cairn_tests::wait::wait_for;
use cairn_tests::{grpc, https, tmpfs};

/// The index of the member that leads now (asking every member).
fn leader_index(c: &Cluster) -> usize {
    let all: Vec<usize> = (0..c.members.len()).collect();
    must(wait_for(
        "a leader",
        START_TIMEOUT,
        Duration::from_millis(100),
        || c.leader(&all).map_err(|e| format!("{e:#}")),
    ))
    .1
}

/// Which members a stale-read try kills and restarts at once.
#[derive(Debug, Clone, Copy)]
enum Restart {
    Leader,
    All,
}

/// Linearizable reads of `key` through `endpoint` as fast as they go, from the moment the member is
/// restarted until `want` of them succeeded; returns every read that saw a state older than the write
/// acknowledged at `acked_rev` (value `acked_value`).
async fn reads_after_restart(
    pki: cairn_tests::pki::Pki,
    endpoint: String,
    key: &'static str,
    acked_rev: i64,
    acked_value: String,
    want: usize,
) -> Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stale = Vec::new();
    let mut ok = 0;
    let mut last_err = String::new();
    while ok < want {
        if Instant::now() > deadline {
            bail!("{endpoint}: only {ok} of {want} linearizable reads succeeded in 30 s; last error: {last_err}");
        }
        let mut client = match grpc::connect(&pki, &endpoint).await {
            Ok(c) => c,
            Err(e) => {
                last_err = format!("{e:#}");
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
        };
        while ok < want {
            let r = match client.get(key, None).await {
                Ok(r) => r,
                Err(e) => {
                    last_err = e.to_string();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    break;
                }
            };
            ok += 1;
            let header = r.header().map(|h| h.revision()).unwrap_or(0);
            let (value, mod_rev) = r
                .kvs()
                .first()
                .map(|kv| (kv.value_str().unwrap_or("?").to_string(), kv.mod_revision()))
                .unwrap_or_default();
            if header < acked_rev
                || mod_rev < acked_rev
                || (mod_rev == acked_rev && value != acked_value)
            {
                stale.push(format!(
                    "{endpoint}: read {value:?} (mod_revision {mod_rev}, header revision {header}) after {acked_value:?} was acknowledged at revision {acked_rev}"
                ));
            }
        }
    }
    Ok(stale)
}

/// Put `value` through any member until one acknowledges it; returns the revision it was acked at.
async fn put_acked(c: &Cluster, key: &str, value: &str) -> Result<i64> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        for m in &c.members {
            let Ok(mut client) = grpc::connect(&c.pki, &m.client_url).await else {
                continue;
            };
            match client.put(key, value, None).await {
                Ok(r) => {
                    return r
                        .header()
                        .map(|h| h.revision())
                        .context("put without a header")
                }
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no member acknowledged the put of {key}={value} within {START_TIMEOUT:?}: {last}")
}

/// kill -9 and restart at once, `tries` times, each right after an acknowledged put; the first reads
/// on every member must all see that put.
fn no_stale_read_after_restarts(restart: Restart, tries: usize) {
    let mut c = cluster();
    let rt = must(grpc::runtime());
    let mut stale = Vec::new();
    for i in 0..tries {
        let value = format!("v{i}");
        let acked_rev = must(rt.block_on(put_acked(&c, "k", &value)));
        let doomed: Vec<usize> = match restart {
            Restart::Leader => vec![leader_index(&c)],
            Restart::All => (0..c.members.len()).collect(),
        };
        for &m in &doomed {
            must(c.kill_member(m));
        }
        for &m in &doomed {
            must(c.start_member(m));
        }
        // Several clients on each restarted member: the stale window is the moment it starts serving.
        let readers: Vec<_> = (0..c.members.len())
            .flat_map(|m| std::iter::repeat_n(m, if doomed.contains(&m) { 4 } else { 1 }))
            .map(|m| {
                rt.spawn(reads_after_restart(
                    c.pki.clone(),
                    c.members[m].client_url.clone(),
                    "k",
                    acked_rev,
                    value.clone(),
                    10,
                ))
            })
            .collect();
        for r in readers {
            match rt.block_on(r) {
                Ok(Ok(s)) => stale.extend(s),
                Ok(Err(e)) => panic!("try {i}: {e:#}\n{}", c.logs()),
                Err(e) => panic!("try {i}: reader task: {e}"),
            }
        }
    }
    assert!(
        stale.is_empty(),
        "{:?}, {restart:?} restarted {tries} times: {} stale linearizable reads:\n{}",
        c.flavor,
        stale.len(),
        stale.join("\n")
    );
}

#[test]
fn a_leader_killed_and_restarted_at_once_never_serves_a_read_older_than_an_acked_write() {
    no_stale_read_after_restarts(Restart::Leader, 30);
}

#[test]
fn members_all_killed_and_restarted_never_serve_a_read_older_than_an_acked_write() {
    no_stale_read_after_restarts(Restart::All, 20);
}

/// `n` puts of `PREFIX000001`… (value = key) through member `via`, one after the other; returns the
/// keys acknowledged.
async fn put_sequence(c: &Cluster, via: usize, prefix: &str, n: usize) -> Result<Vec<String>> {
    let mut client = grpc::connect(&c.pki, &c.members[via].client_url).await?;
    let mut acked = Vec::with_capacity(n);
    for i in 1..=n {
        let key = format!("{prefix}{i:06}");
        client
            .put(key.as_str(), key.as_str(), None)
            .await
            .with_context(|| format!("put {key}"))?;
        acked.push(key);
    }
    Ok(acked)
}

/// The acknowledged keys (each written with a value that starts with the key) that a linearizable
/// read of `prefix` through the `which` members does not return with their value.
fn lost_writes(c: &Cluster, which: &[usize], prefix: &str, acked: &[String]) -> Vec<String> {
    let urls: Vec<&str> = which
        .iter()
        .map(|&i| c.members[i].client_url.as_str())
        .collect();
    let ctl = c.etcdctl().with_endpoints(urls.join(","));
    let got = must(ctl.json(&["get", "--prefix", prefix, "-w", "json"]));
    let stored: std::collections::BTreeSet<String> = got["kvs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| {
            let key = decode_str(kv["key"].as_str()?).ok()?;
            let value = decode_str(kv["value"].as_str()?).ok()?;
            value.starts_with(&key).then_some(key)
        })
        .collect();
    acked
        .iter()
        .filter(|k| !stored.contains(*k))
        .cloned()
        .collect()
}

/// The member's WAL segment written last (cairn and etcd both keep them in `member/wal/*.wal`).
fn last_wal_segment(c: &Cluster, i: usize) -> std::path::PathBuf {
    let dir = c.members[i].data_dir.join("member").join("wal");
    let mut segments: Vec<_> =
        must(std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display())))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wal"))
            .collect();
    segments.sort();
    segments
        .pop()
        .unwrap_or_else(|| panic!("no WAL segment in {}", dir.display()))
}

/// Flip 16 bytes in the middle of what `path` holds (its preallocated zeros not counted); returns the
/// offset flipped.
fn flip_16_bytes_mid_file(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut data = must(std::fs::read(path).with_context(|| format!("reading {}", path.display())));
    let written = data.iter().rposition(|&b| b != 0).unwrap_or(0);
    let mid = written / 2;
    data[mid..mid + 16].iter_mut().for_each(|b| *b ^= 0xff);
    let file = must(
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display())),
    );
    must(
        file.write_all_at(&data[mid..mid + 16], mid as u64)
            .and_then(|()| file.sync_all())
            .context("writing the flipped bytes"),
    );
    mid as u64
}

#[test]
fn a_member_whose_last_wal_segment_is_corrupt_refuses_to_start_and_no_acked_write_is_lost() {
    let mut c = cluster();
    let rt = must(grpc::runtime());
    let li = leader_index(&c);
    let acked = must(rt.block_on(put_sequence(&c, li, "wal/", 600)));
    must(c.kill_all());
    let segment = last_wal_segment(&c, li);
    let at = flip_16_bytes_mid_file(&segment);
    eprintln!("flipped 16 bytes at offset {at} of {}", segment.display());
    must(c.start_all());

    match exit_within_30s(&mut c, li, "the member with the corrupt WAL") {
        Ok(status) => assert!(
            !status.success(),
            "{:?} exited with {status} on a corrupt WAL",
            c.flavor
        ),
        // etcd 3.4 refused in 18 of 19 runs; once, with the other safety tests running beside it, it
        // was still running after 30 s (why was not established). Its other members kept every write.
        Err(e) if c.flavor == Flavor::Etcd => {
            eprintln!("etcd started on the corrupt WAL: {e:#}");
            must(c.kill_member(li));
        }
        Err(e) => panic!("{e:#}\n{}", c.logs()),
    }
    if c.flavor == Flavor::Cairn {
        let log = must(std::fs::read_to_string(&c.members[li].log).context("reading the log"));
        let said = format!("{}: corrupt WAL record at offset", segment.display());
        assert!(
            log.contains(&said) && log.contains("remove the member and add it back"),
            "the log must name the file, the offset and the recovery:\n{}",
            c.logs()
        );
        let status = c.members[li].exit_status();
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", c.logs());
    }

    let others: Vec<usize> = (0..3).filter(|&i| i != li).collect();
    must(c.wait_members_healthy(&others, START_TIMEOUT));
    let lost = lost_writes(&c, &others, "wal/", &acked);
    assert!(
        lost.is_empty(),
        "{:?}: {} of {} acknowledged writes lost: {:?}",
        c.flavor,
        lost.len(),
        acked.len(),
        lost
    );
    assert!(
        !c.members[li].is_running(),
        "the member with the corrupt WAL must stay down"
    );
}

#[test]
fn a_member_whose_snapshot_values_are_corrupt_stops_saying_so_and_no_acked_write_is_lost() {
    // cairn's own file: a restart reads the snapshot's key index (checked before use) and checks its
    // values against their checksum on a thread, since they are served from the file itself.
    let flavor = must(Flavor::from_env());
    if flavor != Flavor::Cairn {
        eprintln!("cairn's snapshot file only; nothing to check on {flavor:?}");
        return;
    }
    let mut c = must(
        Cluster::builder(flavor, 3)
            .extra_args(["--snapshot-count=50"])
            .start(),
    );
    let rt = must(grpc::runtime());
    let li = leader_index(&c);
    let acked = must(rt.block_on(put_sequence(&c, li, "snap/", 300)));
    let f = (li + 1) % 3;
    must(c.kill_member(f));
    let snap = c.members[f].data_dir.join("member/snap/current.snap");
    let at = flip_16_bytes_at(&snap, 32);
    eprintln!("flipped 16 bytes at offset {at} of {}", snap.display());
    must(c.start_member(f));
    // Writes to apply: the member stops at its first apply after the check found the damage.
    let more = rt.block_on(put_sequence(&c, li, "more/", 50));
    let more = must(more);
    let status = match exit_within_30s(&mut c, f, "the member with the corrupt snapshot") {
        Ok(s) => s,
        Err(e) => panic!("{e:#}\n{}", c.logs()),
    };
    assert_eq!(status.code(), Some(1), "{}", c.logs());
    let log = must(std::fs::read_to_string(&c.members[f].log).context("reading the log"));
    let said = format!("snapshot file {}: its", snap.display());
    assert!(
        log.contains(&said) && log.contains("the file is corrupt"),
        "the log must name the file and the damage:\n{}",
        c.logs()
    );
    let others: Vec<usize> = (0..3).filter(|&i| i != f).collect();
    for (prefix, keys) in [("snap/", &acked), ("more/", &more)] {
        let lost = lost_writes(&c, &others, prefix, keys);
        assert!(
            lost.is_empty(),
            "{} acknowledged writes lost: {lost:?}",
            lost.len()
        );
    }
}

/// How member `i` (`who`) exited, if it did within 30 s.
fn exit_within_30s(c: &mut Cluster, i: usize, who: &str) -> Result<std::process::ExitStatus> {
    wait_for(
        &format!("{who} to exit"),
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            c.members[i]
                .exit_status()
                .ok_or("still running".to_string())
        },
    )
}

/// Flip 16 bytes of `path` at `at` (durably); returns `at`.
fn flip_16_bytes_at(path: &std::path::Path, at: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let file = must(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display())),
    );
    let mut b = [0u8; 16];
    must(
        file.read_exact_at(&mut b, at)
            .context("reading the bytes to flip"),
    );
    b.iter_mut().for_each(|x| *x ^= 0xff);
    must(
        file.write_all_at(&b, at)
            .and_then(|()| file.sync_all())
            .context("writing the flipped bytes"),
    );
    at
}

/// A watch of `prefix` whose client sends its one create request and then closes its send side, as
/// grpcurl and Python's `iter([request])` do; returns the events it received for `n` puts made
/// afterwards through another connection.
async fn events_after_half_close(c: &Cluster, prefix: &str, n: usize) -> Result<usize> {
    let mut watcher = grpc::connect(&c.pki, &c.members[0].client_url).await?;
    let opts = etcd_client::WatchOptions::new().with_prefix();
    let (sender, mut events) = watcher.watch(prefix, Some(opts)).await?.split();
    drop(sender);
    let created = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .context("no created response within 10 s")??
        .context("the watch stream ended before the created response")?;
    if !created.created() {
        bail!("the first response is not `created`: {created:?}");
    }
    put_sequence(c, 1, prefix, n).await?;
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(Duration::from_secs(10), events.message()).await {
            Ok(Ok(Some(r))) => got += r.events().len(),
            Ok(Ok(None)) => bail!("the watch stream ended (OK) after {got} of {n} events"),
            Ok(Err(e)) => bail!("the watch stream failed after {got} of {n} events: {e}"),
            Err(_) => bail!("no event for 10 s after {got} of {n}"),
        }
    }
    Ok(got)
}

#[test]
fn a_watch_stream_keeps_streaming_after_the_client_half_closes_its_send_side() {
    let c = cluster();
    let rt = must(grpc::runtime());
    let got = must(rt.block_on(events_after_half_close(&c, "half/", 500)));
    assert_eq!(got, 500);
}

/// What MemberAdd answers for these peer URLs (as a voter): the gRPC code and message of its refusal.
async fn member_add_refusal(c: &Cluster, urls: &[&str]) -> Result<(String, String)> {
    let mut client = grpc::connect(&c.pki, &c.members[0].client_url).await?;
    let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
    match client.member_add(urls.clone(), None).await {
        Ok(r) => bail!("MemberAdd {urls:?} was accepted: {:?}", r.member()),
        Err(e) => Ok(grpc::status_of(&e)),
    }
}

#[test]
fn member_add_and_update_refuse_peer_urls_that_are_not_urls() {
    let c = cluster();
    let rt = must(grpc::runtime());
    let invalid = (
        "InvalidArgument".to_string(),
        "etcdserver: given member URLs are invalid".to_string(),
    );
    for urls in [
        vec!["not a url"],
        vec![],
        vec!["https://127.0.0.1"],
        vec!["ftp://127.0.0.1:2380"],
        vec!["https://127.0.0.1:2380/peer"],
        vec!["https://127.0.0.1:23801", "not a url"],
    ] {
        let got = must(rt.block_on(member_add_refusal(&c, &urls)));
        assert_eq!(got, invalid, "{:?}: MemberAdd {urls:?}", c.flavor);
    }
    let members = must(rt.block_on(async {
        let mut client = grpc::connect(&c.pki, &c.members[1].client_url).await?;
        anyhow::Ok(client.member_list().await?.members().to_vec())
    }));
    assert_eq!(members.len(), 3, "nothing was added: {members:?}");

    // etcd 3.4 stores any MemberUpdate URLs (the member then becomes unreachable); cairn refuses them
    // like MemberAdd's.
    if c.flavor == Flavor::Cairn {
        let id = members[0].id();
        let got = must(rt.block_on(async {
            let mut client = grpc::connect(&c.pki, &c.members[1].client_url).await?;
            match client
                .member_update(id, vec!["not a url".to_string()])
                .await
            {
                Ok(_) => bail!("MemberUpdate to \"not a url\" was accepted"),
                Err(e) => Ok(grpc::status_of(&e)),
            }
        }));
        assert_eq!(got, invalid, "MemberUpdate");
        let after = must(rt.block_on(async {
            let mut client = grpc::connect(&c.pki, &c.members[1].client_url).await?;
            anyhow::Ok(client.member_list().await?.members().to_vec())
        }));
        assert_eq!(after[0].peer_urls(), members[0].peer_urls());
    }
}

/// Puts of 4 KiB values through member `via` until it exits (or `deadline`); returns the keys
/// acknowledged and how many puts failed.
async fn put_until_exit(
    c: &mut Cluster,
    via: usize,
    prefix: &str,
    deadline: Duration,
) -> Result<(Vec<String>, usize)> {
    let mut client = grpc::connect(&c.pki, &c.members[via].client_url).await?;
    let (mut acked, mut failed) = (Vec::new(), 0);
    let end = Instant::now() + deadline;
    for i in 1.. {
        if c.members[via].exit_status().is_some() {
            return Ok((acked, failed));
        }
        if Instant::now() > end {
            bail!(
                "member {} still runs {deadline:?} after its disk filled ({} puts acknowledged, {failed} failed)",
                c.members[via].name,
                acked.len()
            );
        }
        let key = format!("{prefix}{i:06}");
        let value = format!("{key:x<4096}");
        let put = client.put(key.as_str(), value, None);
        match tokio::time::timeout(Duration::from_secs(10), put).await {
            Ok(Ok(_)) => acked.push(key),
            Ok(Err(_)) | Err(_) => {
                failed += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    unreachable!("the loop above only returns")
}

#[test]
fn a_leader_whose_disk_fills_exits_non_zero_and_after_space_is_freed_restarts_with_no_acked_write_lost(
) {
    let flavor = must(Flavor::from_env());
    let mut c = must(Cluster::create(flavor, 3));
    // etcd preallocates 64 MiB WAL segments, cairn 16 MiB.
    let size = if flavor == Flavor::Etcd {
        "160m"
    } else {
        "64m"
    };
    let disks: Vec<_> = (0..3).map(|_| must(tmpfs::Tmpfs::mount(size))).collect();
    for (m, d) in c.members.iter_mut().zip(&disks) {
        m.data_dir = d.path.join(&m.name);
    }
    must(c.start_all());
    must(c.wait_healthy(START_TIMEOUT));
    let rt = must(grpc::runtime());
    let li = leader_index(&c);
    let before = must(rt.block_on(put_sequence(&c, li, "disk/before/", 50)));

    let filler = must(disks[li].fill());
    let (acked, failed) = must(rt.block_on(put_until_exit(
        &mut c,
        li,
        "disk/full/",
        Duration::from_secs(60),
    )));
    let status = c.members[li].exit_status().expect("exited");
    eprintln!(
        "{flavor:?}: disk full: {} puts acknowledged, {failed} failed, then the member exited with {status}",
        acked.len()
    );
    assert!(!status.success(), "exit status {status}");
    assert!(
        failed >= 1,
        "some put must have failed before the member exited"
    );
    if flavor == Flavor::Cairn {
        assert_eq!(status.code(), Some(1), "{}", c.logs());
        let log = must(std::fs::read_to_string(&c.members[li].log).context("reading the log"));
        let said = log.lines().find(|l| l.contains("raft stopped: "));
        eprintln!("{}: {said:?}", c.members[li].name);
        assert!(said.is_some(), "{}", c.logs());
    }

    // What a supervisor does once the disk has space again: start it, with nobody's help otherwise.
    must(std::fs::remove_file(&filler).context("freeing the disk"));
    must(c.start_member(li));
    must(c.wait_healthy(START_TIMEOUT));
    let all: Vec<String> = before.into_iter().chain(acked).collect();
    for i in 0..3 {
        let lost = lost_writes(&c, &[i], "disk/", &all);
        assert!(
            lost.is_empty(),
            "{flavor:?}: member {i} misses {} of {} acknowledged writes: {lost:?}",
            lost.len(),
            all.len()
        );
    }
    drop(c);
}

/// What member `i` tells clients and probes about the leader: Status's leader (0: none), /health's
/// HTTP status and `etcd_server_has_leader` from /metrics.
pub(crate) fn leader_view(c: &Cluster, i: usize) -> Result<(u64, u16, String)> {
    let status = c
        .etcdctl_for(i)
        .json(&["endpoint", "status", "-w", "json"])?;
    // etcdctl's JSON leaves a zero leader out.
    let leader = status[0]["Status"]["leader"].as_u64().unwrap_or(0);
    let url = &c.members[i].client_url;
    let (health, _) = https::get(&c.pki, &format!("{url}/health"))?;
    let (_, metrics) = https::get(&c.pki, &format!("{url}/metrics"))?;
    let has_leader = metrics
        .lines()
        .find_map(|l| l.strip_prefix("etcd_server_has_leader "))
        .unwrap_or("missing")
        .to_string();
    Ok((leader, health, has_leader))
}

#[test]
fn a_leader_cut_off_from_its_quorum_steps_down_in_status_health_and_metrics_and_recovers() {
    let c = cluster();
    let li = leader_index(&c);
    let paused = Paused::all_but(&c, li);
    let stopped = Instant::now();
    must(wait_for(
        "the cut-off leader to report no leader",
        Duration::from_secs(8),
        Duration::from_millis(100),
        || match leader_view(&c, li).map_err(|e| format!("{e:#}"))? {
            (0, 503, h) if h == "0" => Ok(()),
            other => Err(format!("Status leader, /health, has_leader: {other:?}")),
        },
    ));
    let stepped_down = stopped.elapsed();
    // etcd leaves the put unanswered until the client gives up; cairn answers with etcd's text.
    let out = must(
        c.etcdctl_for(li)
            .run(&["--command-timeout=10s", "put", "cut-off", "x"]),
    );
    assert!(!out.success(), "a put through the cut-off leader: {out:?}");
    if c.flavor == Flavor::Cairn {
        assert!(
            out.stderr.contains("etcdserver: no leader")
                || out.stderr.contains("etcdserver: request timed out"),
            "{out:?}"
        );
    }

    drop(paused);
    let resumed = Instant::now();
    must(wait_for(
        "a leader again once the followers run",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || match leader_view(&c, li).map_err(|e| format!("{e:#}"))? {
            (l, 200, h) if l != 0 && h == "1" => Ok(()),
            other => Err(format!("Status leader, /health, has_leader: {other:?}")),
        },
    ));
    eprintln!(
        "{:?}: followers stopped: the leader reported no leader after {stepped_down:?}; \
         continued: a leader again after {:?}",
        c.flavor,
        resumed.elapsed()
    );
    must(c.etcdctl_for(li).ok(&["put", "after", "x"]));
}

/// The answer to one keep-alive: renewed (TTL > 0), or the gRPC code and message it failed with.
type KeepAlive = std::result::Result<(), (String, String)>;

/// The next answer on an open keep-alive stream.
async fn next_answer(stream: &mut etcd_client::LeaseKeepAliveStream) -> KeepAlive {
    match tokio::time::timeout(Duration::from_secs(30), stream.message()).await {
        Err(_) => Err(("none".into(), "no answer within 30 s".into())),
        Ok(Ok(Some(r))) if r.ttl() > 0 => Ok(()),
        Ok(Ok(Some(r))) => Err(("OK".into(), format!("TTL {}", r.ttl()))),
        Ok(Ok(None)) => Err(("OK".into(), "the stream ended without an answer".into())),
        Ok(Err(e)) => Err(grpc::status_of(&e)),
    }
}

/// Opens a keep-alive stream for lease `id` on member `via`; etcd-client sends the first keep-alive
/// with it and checks its answer.
async fn fresh_keep_alive(c: &Cluster, via: usize, id: i64) -> Result<KeepAlive> {
    let mut client = grpc::connect(&c.pki, &c.members[via].client_url).await?;
    let opened = tokio::time::timeout(Duration::from_secs(30), client.lease_keep_alive(id)).await;
    Ok(match opened {
        Err(_) => Err(("none".into(), "no answer within 30 s".into())),
        Ok(Err(e)) => Err(grpc::status_of(&e)),
        Ok(Ok(_)) => Ok(()),
    })
}

/// Whether a keep-alive answer is one etcd gives: renewed, or Unavailable with "no leader" or
/// "request timed out".
fn etcd_answer(a: &KeepAlive) -> bool {
    match a {
        Ok(()) => true,
        Err((code, msg)) => {
            code == "Unavailable"
                && (msg == "etcdserver: no leader" || msg == "etcdserver: request timed out")
        }
    }
}

#[test]
fn keep_alives_through_a_follower_while_the_leader_is_down_get_etcds_answers() {
    let mut c = cluster();
    let rt = must(grpc::runtime());
    let li = leader_index(&c);
    let (f, o) = match li {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let id = must(rt.block_on(async {
        let mut client = grpc::connect(&c.pki, &c.members[f].client_url).await?;
        anyhow::Ok(client.lease_grant(60, None).await?.id())
    }));
    // The client lives as long as its stream: dropping it would close the connection.
    let mut client = must(rt.block_on(grpc::connect(&c.pki, &c.members[f].client_url)));
    let (mut keeper, mut stream) =
        must(rt.block_on(async { anyhow::Ok(client.lease_keep_alive(id).await?) }));

    must(c.kill_member(li));
    let on_open_stream = rt.block_on(async {
        // A stream the server has ended refuses the send; its end status is read below.
        let _ = keeper.keep_alive().await;
        next_answer(&mut stream).await
    });
    let on_new_stream = must(rt.block_on(fresh_keep_alive(&c, f, id)));
    eprintln!(
        "{:?}: leader killed: keep-alive on the open stream {on_open_stream:?}, on a new one {on_new_stream:?}",
        c.flavor
    );
    assert!(etcd_answer(&on_open_stream), "{on_open_stream:?}");
    assert!(etcd_answer(&on_new_stream), "{on_new_stream:?}");

    // With the other follower gone too no leader can be elected: only etcd's errors remain.
    must(c.kill_member(o));
    must(wait_for(
        "the last member to know it has no leader",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || match leader_view(&c, f).map_err(|e| format!("{e:#}"))? {
            (0, ..) => Ok(()),
            (l, ..) => Err(format!("leader {l:x}")),
        },
    ));
    let alone = must(rt.block_on(fresh_keep_alive(&c, f, id)));
    eprintln!("{:?}: no quorum: keep-alive {alone:?}", c.flavor);
    assert!(alone.is_err() && etcd_answer(&alone), "{alone:?}");
}

/// Puts through member `via` from `clients` clients at once, each one after the other for `span`,
/// each given `each` to be answered: the time each acknowledged one took, and what the others failed
/// with.
async fn timed_puts(
    c: &Cluster,
    via: usize,
    clients: usize,
    span: Duration,
    each: Duration,
) -> Result<(Vec<Duration>, Vec<String>)> {
    let end = Instant::now() + span;
    let mut tasks = Vec::new();
    for n in 0..clients {
        let mut client = grpc::connect(&c.pki, &c.members[via].client_url).await?;
        tasks.push(tokio::spawn(async move {
            let (mut took, mut failed) = (Vec::new(), Vec::new());
            let mut i = 0;
            while Instant::now() < end {
                let key = format!("slow-follower/{n}/{i:05}");
                i += 1;
                let t = Instant::now();
                match tokio::time::timeout(each, client.put(key.as_str(), "v", None)).await {
                    Ok(Ok(_)) => took.push(t.elapsed()),
                    Ok(Err(e)) => failed.push(format!("{key}: {e}")),
                    Err(_) => failed.push(format!("{key}: no answer within {each:?}")),
                }
            }
            (took, failed)
        }));
    }
    let (mut took, mut failed) = (Vec::new(), Vec::new());
    for t in tasks {
        let (a, b) = t.await?;
        took.extend(a);
        failed.extend(b);
    }
    Ok((took, failed))
}

/// The Raft term member `i` reports.
fn raft_term(c: &Cluster, i: usize) -> Result<u64> {
    let status = c
        .etcdctl_for(i)
        .json(&["endpoint", "status", "-w", "json"])?;
    status[0]["Status"]["raftTerm"]
        .as_u64()
        .with_context(|| format!("no raftTerm in {status}"))
}

#[test]
fn followers_whose_fsync_outlasts_the_heartbeat_interval_slow_writes_down_without_losing_the_leader(
) {
    let c = cluster();
    let li = leader_index(&c);
    let term = must(raft_term(&c, li));
    let followers: Vec<u32> = (0..c.members.len())
        .filter(|&i| i != li)
        .filter_map(|i| c.members[i].pid())
        .collect();
    // A WAL append and its fdatasync (a few writes) then take a few hundred ms: longer than the
    // 100 ms heartbeat interval, shorter than the 1 s election timeout.
    const IOPS: u32 = 20;
    let slow: Vec<SlowDisk> = followers
        .iter()
        .map(|&p| must(SlowDisk::throttle(&[p], &c.members[li].data_dir, IOPS)))
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    // Several clients, so that new entries keep coming: each resend of unanswered entries then
    // carries more, which the follower answers only after another slow fsync.
    let (took, failed) = must(rt.block_on(timed_puts(
        &c,
        li,
        32,
        Duration::from_secs(8),
        Duration::from_secs(5),
    )));
    drop(slow);
    let mut sorted = took.clone();
    sorted.sort();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    eprintln!(
        "{:?}: {} puts acknowledged, median {median:?}, slowest {:?}; {} failed: {:?}",
        c.flavor,
        took.len(),
        sorted.last(),
        failed.len(),
        failed.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        failed.is_empty(),
        "{} puts failed while the followers' disk was slow, first: {:?}\n{}",
        failed.len(),
        failed.first(),
        c.logs()
    );
    // Otherwise the throttle did not bite and this test proved nothing.
    assert!(
        median > Duration::from_millis(100),
        "median put {median:?}: the followers' fsyncs were not slower than the heartbeat interval"
    );
    let now = must(raft_term(&c, li));
    assert_eq!(
        (term, li),
        (now, leader_index(&c)),
        "the leader changed (term, member) while its followers were slow\n{}",
        c.logs()
    );
}

/// `n` puts through member `via`, each followed at once by a serializable read and a lease's
/// time-to-live on the same member; returns every read that did not see the write just acknowledged.
async fn reads_behind_own_writes(c: &Cluster, via: usize, n: usize) -> Result<Vec<String>> {
    let mut client = grpc::connect(&c.pki, &c.members[via].client_url).await?;
    let mut behind = Vec::new();
    for i in 0..n {
        let key = format!("ryw/{i:04}");
        let put = client.put(key.as_str(), key.as_str(), None).await?;
        let rev = put.header().map(|h| h.revision()).unwrap_or(0);
        let opts = etcd_client::GetOptions::new().with_serializable();
        let got = client.get(key.as_str(), Some(opts)).await?;
        let seen = got.kvs().first().map(|kv| kv.mod_revision()).unwrap_or(0);
        if seen != rev {
            behind.push(format!(
                "{key}: put acked at revision {rev}, serializable read saw {seen}"
            ));
        }
        if i % 10 == 0 {
            let lease = client.lease_grant(60, None).await?.id();
            let ttl = client.lease_time_to_live(lease, None).await?.ttl();
            if ttl <= 0 {
                behind.push(format!(
                    "lease {lease:x} granted, time-to-live {ttl} (not found)"
                ));
            }
        }
    }
    Ok(behind)
}

/// A follower answers a write only once it applied it itself (as etcd does), so a client's next
/// read there, however cheap, sees it; the commit it learns from the leader's answer
/// (member/forward.rs `learn_commit`) must keep that true.
#[test]
fn a_write_through_a_follower_is_seen_by_the_next_serializable_read_there() {
    let c = cluster();
    let rt = must(grpc::runtime());
    let leader = leader_index(&c);
    let follower = (leader + 1) % c.members.len();
    let behind = must(rt.block_on(reads_behind_own_writes(&c, follower, 1000)));
    assert!(
        behind.is_empty(),
        "{} of 1000 reads on the follower missed the write just acknowledged there:\n{}",
        behind.len(),
        behind.join("\n")
    );
}
