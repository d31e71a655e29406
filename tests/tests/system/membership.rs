//! Runtime membership driven by the real etcdctl 3.4, as an operator does it: `member add` then start the
//! new member with `--initial-cluster-state existing` and the printed `ETCD_INITIAL_CLUSTER`, learners
//! promoted, `member remove` of followers and of the leader, all while a client keeps writing; and a
//! member that joins after the log was purged catching up by snapshot. `CAIRN_TEST_FLAVOR=etcd` runs the
//! same tests against etcd 3.4.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_tests::cluster::{Cluster, Flavor, START_TIMEOUT};
use cairn_tests::etcdctl::Etcdctl;
use cairn_tests::wait::wait_for;
use cairn_tests::writer::{missing, SeqWriter};

/// Unwraps with the whole error chain in the panic message.
fn must<T>(r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e:#}"),
    }
}

/// A `members`-member cluster (certificates for all of them) of which only the first `started` are
/// started, bootstrapped among themselves.
fn partly_started(members: usize, started: usize, extra_args: &[&str]) -> Cluster {
    let flavor = must(Flavor::from_env());
    let mut c = must(Cluster::create(flavor, members));
    c.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
    let first: Vec<usize> = (0..started).collect();
    let initial = c.initial_cluster_of(&first);
    for &i in &first {
        must(c.start_member_with(i, &initial, "new"));
    }
    must(c.wait_members_healthy(&first, START_TIMEOUT));
    c
}

/// etcdctl talking to the given members only.
fn ctl_for(c: &Cluster, which: &[usize]) -> Etcdctl {
    let urls: Vec<&str> = which
        .iter()
        .map(|&i| c.members[i].client_url.as_str())
        .collect();
    c.etcdctl().with_endpoints(urls.join(","))
}

/// Runs a membership change, retrying while etcd refuses it as "unhealthy cluster" (it wants every
/// member connected for 5 s first; the refusal changes nothing, so retrying it is what an operator
/// does). Any other failure is final.
fn ok_once_healthy(ctl: &Etcdctl, args: &[&str]) -> Result<String> {
    wait_for(
        &format!("{args:?} accepted"),
        Duration::from_secs(20),
        Duration::from_millis(500),
        || match ctl.run(args) {
            Ok(o) if o.success() => Ok(Ok(o.stdout)),
            Ok(o) if o.stderr.contains("unhealthy cluster") => Err(o.stderr),
            Ok(o) => Ok(Err(anyhow::anyhow!(
                "`{}` failed: {}{}",
                ctl.command_line(args),
                o.stdout,
                o.stderr
            ))),
            Err(e) => Ok(Err(e)),
        },
    )?
}

/// `ctl.ok(args)` for an idempotent command (a read, or a put of a fixed value), retried while it fails:
/// on a loaded 2-core CI machine a member starved of CPU can miss heartbeats and cause an election, and
/// a request caught in it fails although nothing is wrong. Wrong answers are never retried.
fn ok_retrying(ctl: &Etcdctl, args: &[&str]) -> String {
    must(wait_for(
        &format!("{args:?} to succeed"),
        Duration::from_secs(20),
        Duration::from_millis(200),
        || ctl.ok(args).map_err(|e| format!("{e:#}")),
    ))
}

/// `etcdctl member add NAME --peer-urls=URL [--learner]` of member `i` through the `live` members: the
/// new member's ID (hex) and the `ETCD_INITIAL_CLUSTER` it prints for the new member's start.
fn member_add(c: &Cluster, live: &[usize], i: usize, learner: bool) -> Result<(String, String)> {
    let ctl = ctl_for(c, live);
    let name = c.members[i].name.as_str();
    let peer = format!("--peer-urls={}", c.members[i].peer_url);
    let mut args = vec!["member", "add", name, peer.as_str()];
    if learner {
        args.push("--learner");
    }
    let out = ok_once_healthy(&ctl, &args)?;
    let id = out
        .split_whitespace()
        .skip_while(|w| *w != "Member")
        .nth(1)
        .with_context(|| format!("no member ID in: {out}"))?
        .to_string();
    let initial = out
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER="))
        .map(|v| v.trim_matches('"').to_string())
        .with_context(|| format!("no ETCD_INITIAL_CLUSTER in: {out}"))?;
    if !out.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\"") {
        anyhow::bail!("member add did not ask for state existing: {out}");
    }
    Ok((id, initial))
}

/// Waits until `endpoint status --cluster` and `member list` show exactly the members `which` (by name
/// and client URL) and all of them agree on one leader among them; returns the leader's index.
fn expect_members(c: &Cluster, which: &[usize], step: &str) -> usize {
    let ctl = ctl_for(c, which);
    let want_urls: BTreeSet<String> = which
        .iter()
        .map(|&i| c.members[i].client_url.clone())
        .collect();
    let want_names: BTreeSet<String> = which.iter().map(|&i| c.members[i].name.clone()).collect();
    must(wait_for(
        &format!("{step}: status of exactly {want_names:?} with one leader"),
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let list = ctl
                .json(&["member", "list", "-w", "json"])
                .map_err(|e| format!("{e:#}"))?;
            let names: BTreeSet<String> = list["members"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|m| m["name"].as_str().unwrap_or_default().to_string())
                .collect();
            if names != want_names {
                return Err(format!("member list names {names:?}"));
            }
            let status = ctl
                .json(&["endpoint", "status", "--cluster", "-w", "json"])
                .map_err(|e| format!("{e:#}"))?;
            let entries = status.as_array().cloned().unwrap_or_default();
            let urls: BTreeSet<String> = entries
                .iter()
                .map(|e| e["Endpoint"].as_str().unwrap_or_default().to_string())
                .collect();
            let leaders: BTreeSet<u64> = entries
                .iter()
                .map(|e| e["Status"]["leader"].as_u64().unwrap_or(0))
                .collect();
            let leader_at = entries.iter().find(|e| {
                Some(e["Status"]["header"]["member_id"].as_u64().unwrap_or(0))
                    == leaders.first().copied()
            });
            match (urls == want_urls, leaders.len(), leader_at) {
                (true, 1, Some(e)) => {
                    let url = e["Endpoint"].as_str().unwrap_or_default();
                    c.members
                        .iter()
                        .position(|m| m.client_url == url)
                        .ok_or_else(|| format!("leader at unknown {url}"))
                }
                _ => Err(format!("endpoint status: {status}")),
            }
        },
    ))
}

/// Member `i`'s ID in hex, from member list.
fn member_id(c: &Cluster, ctl: &Etcdctl, i: usize) -> String {
    let out = ok_retrying(ctl, &["member", "list", "-w", "json"]);
    let list: serde_json::Value = must(serde_json::from_str(&out).map_err(anyhow::Error::from));
    let id = list["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .find(|m| m["name"].as_str() == Some(c.members[i].name.as_str()))
        .and_then(|m| m["ID"].as_u64())
        .unwrap_or_else(|| panic!("{} not in {list}", c.members[i].name));
    format!("{id:x}")
}

/// Waits until the writer has `n` more acknowledged puts than now: the cluster is taking writes.
fn wait_writes(w: &SeqWriter, n: usize, step: &str) {
    let target = w.acked() + n;
    must(wait_for(
        &format!("{step}: {n} more acknowledged writes"),
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let a = w.acked();
            if a >= target {
                Ok(())
            } else {
                Err(format!("{a} acknowledged"))
            }
        },
    ));
}

/// Removes member `i` with `member remove` through the other `live` members and waits for its process to
/// exit (a removed member stops itself); returns how long `member remove` took and how long until the
/// process had exited.
fn remove(c: &mut Cluster, live: &mut Vec<usize>, i: usize, w: &SeqWriter) -> (Duration, Duration) {
    let rest: Vec<usize> = live.iter().copied().filter(|&m| m != i).collect();
    let ctl = ctl_for(c, &rest);
    // The writer leaves the member first, as a client behind a load balancer would.
    w.set_endpoints(&ctl.endpoints);
    let id = member_id(c, &ctl, i);
    let t = Instant::now();
    must(ok_once_healthy(&ctl, &["member", "remove", &id]));
    let took = t.elapsed();
    let name = c.members[i].name.clone();
    must(wait_for(
        &format!("removed {name} to exit"),
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            if c.members[i].is_running() {
                Err("still running".into())
            } else {
                Ok(())
            }
        },
    ));
    let log = std::fs::read_to_string(&c.members[i].log).unwrap_or_default();
    assert!(
        log.contains("the member has been permanently removed from the cluster"),
        "{name} says why it stopped:\n{log}"
    );
    *live = rest;
    (took, t.elapsed())
}

#[test]
fn grow_3_to_5_and_shrink_back_removing_the_leader_while_writing_loses_no_acknowledged_write() {
    let mut c = partly_started(5, 3, &[]);
    let mut live = vec![0, 1, 2];
    expect_members(&c, &live, "3 started");
    let w = SeqWriter::start(ctl_for(&c, &live), "seq/");
    wait_writes(&w, 5, "before growing");
    let mut timings = Vec::new();

    // 3 → 4: a voter, added then started with what `member add` printed.
    let t = Instant::now();
    let (_, initial) = must(member_add(&c, &live, 3, false));
    must(c.start_member_with(3, &initial, "existing"));
    must(c.wait_members_healthy(&[3], START_TIMEOUT));
    live.push(3);
    expect_members(&c, &live, "voter m3 added");
    timings.push(("voter m3 added, started, healthy", t.elapsed()));
    w.set_endpoints(&ctl_for(&c, &live).endpoints);
    wait_writes(&w, 5, "with 4 members");

    // 4 → 5: a learner, started, then promoted once in sync (etcd refuses before).
    let t = Instant::now();
    let (id, initial) = must(member_add(&c, &live, 4, true));
    must(c.start_member_with(4, &initial, "existing"));
    let ctl = ctl_for(&c, &live);
    must(wait_for(
        "learner m4 promoted",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            ctl.ok(&["member", "promote", &id])
                .map_err(|e| format!("{e:#}"))
        },
    ));
    must(c.wait_members_healthy(&[4], START_TIMEOUT));
    live.push(4);
    let leader = expect_members(&c, &live, "learner m4 promoted");
    timings.push(("learner m4 added, started, promoted, healthy", t.elapsed()));
    let list = must(ctl_for(&c, &live).json(&["member", "list", "-w", "json"]));
    assert!(
        !list.to_string().contains("\"isLearner\":true"),
        "no learner left: {list}"
    );
    w.set_endpoints(&ctl_for(&c, &live).endpoints);
    wait_writes(&w, 5, "with 5 members");

    // 5 → 4: remove the leader; the rest elect another and keep taking writes.
    let (took, exited) = remove(&mut c, &mut live, leader, &w);
    timings.push(("member remove of the leader", took));
    timings.push(("removed leader exited", exited));
    let new_leader = expect_members(&c, &live, "leader removed");
    assert_ne!(new_leader, leader);
    wait_writes(&w, 5, "after removing the leader");

    // 4 → 3: remove a follower.
    let follower = live
        .iter()
        .copied()
        .find(|&i| i != new_leader)
        .unwrap_or(new_leader);
    let (took, exited) = remove(&mut c, &mut live, follower, &w);
    timings.push(("member remove of a follower", took));
    timings.push(("removed follower exited", exited));
    expect_members(&c, &live, "follower removed");
    wait_writes(&w, 5, "back at 3 members");

    let acked = w.finish();
    // Retried only when the read itself fails (see ok_retrying); a lost key is never retried away.
    let reader = ctl_for(&c, &live);
    let lost = must(wait_for(
        "reading every acknowledged key back",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || missing(&reader, "seq/", &acked).map_err(|e| format!("{e:#}")),
    ));
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {lost:?}",
        lost.len(),
        acked.len()
    );
    eprintln!(
        "{:?}: {} acknowledged writes, none lost; {timings:?}",
        c.flavor,
        acked.len()
    );
}

/// Put keys `old/000`, `old/001`, … (`n` of them), each holding its own name.
fn put_old_keys(ctl: &Etcdctl, n: usize) {
    for k in 0..n {
        let key = format!("old/{k:03}");
        ok_retrying(ctl, &["put", &key, &key]);
    }
}

/// `etcdctl get --prefix PREFIX --keys-only -w json` through `ctl`, parsed.
fn listing(ctl: &Etcdctl, prefix: &str) -> serde_json::Value {
    let out = ok_retrying(
        ctl,
        &["get", "--prefix", prefix, "--keys-only", "-w", "json"],
    );
    must(serde_json::from_str(&out).map_err(anyhow::Error::from))
}

#[test]
fn a_member_added_after_the_log_was_purged_catches_up_by_snapshot_and_serves_linearizable_reads() {
    // Snapshot every 20 entries (cairn then keeps only 20 behind it), so the log before the join is gone.
    let mut c = partly_started(4, 3, &["--snapshot-count=20"]);
    let live = [0, 1, 2];
    let ctl = ctl_for(&c, &live);
    put_old_keys(&ctl, 60);
    let t = Instant::now();
    let (_, initial) = must(member_add(&c, &live, 3, false));
    must(c.start_member_with(3, &initial, "existing"));
    must(c.wait_members_healthy(&[3], START_TIMEOUT));
    let joined = t.elapsed();
    ok_retrying(&ctl, &["put", "new/after-join", "yes"]);

    // Linearizable reads (etcdctl's default) served by the new member alone see the history it only got
    // through the snapshot and the write made after it joined.
    let own = c.etcdctl_for(3);
    let old = listing(&own, "old/");
    assert_eq!(old["count"].as_i64(), Some(60), "{old}");
    assert_eq!(
        ok_retrying(&own, &["get", "new/after-join", "--print-value-only"]),
        "yes\n"
    );
    assert_eq!(
        ok_retrying(&own, &["get", "old/000", "--print-value-only"]),
        "old/000\n"
    );

    // etcd keeps 5000 entries behind a snapshot whatever --snapshot-count says, so only cairn's joiner
    // has to take the snapshot here.
    let log = std::fs::read_to_string(&c.members[3].log).unwrap_or_default();
    if c.flavor == Flavor::Cairn {
        assert!(
            log.contains("finished applying incoming snapshot at index"),
            "{log}"
        );
    }
    eprintln!("{:?}: m3 joined and served in {joined:?}", c.flavor);
}

#[test]
fn a_member_added_after_much_log_since_the_last_snapshot_is_sent_the_current_state() {
    // Snapshots at about entries 50 and 100, the log kept from 50 on: a joiner needs a snapshot. The
    // 160 KiB written after the last one outweigh its values, so the leader streams its current state
    // rather than that snapshot and the log after it (storage/state_machine.rs `worth_streaming`).
    let mut c = partly_started(4, 3, &["--snapshot-count=50"]);
    let live = [0, 1, 2];
    let ctl = ctl_for(&c, &live);
    put_old_keys(&ctl, 110);
    let big = "b".repeat(16 << 10);
    for n in 0..10 {
        ok_retrying(&ctl, &["put", &format!("big/{n}"), &big]);
    }
    let (_, initial) = must(member_add(&c, &live, 3, false));
    must(c.start_member_with(3, &initial, "existing"));
    must(c.wait_members_healthy(&[3], START_TIMEOUT));
    ok_retrying(&ctl, &["put", "new/after-join", "yes"]);

    let own = c.etcdctl_for(3);
    let (old, big_keys) = (listing(&own, "old/"), listing(&own, "big/"));
    assert_eq!(old["count"].as_i64(), Some(110), "{old}");
    assert_eq!(big_keys["count"].as_i64(), Some(10), "{big_keys}");
    assert_eq!(
        ok_retrying(&own, &["get", "big/9", "--print-value-only"]),
        format!("{big}\n")
    );
    assert_eq!(
        ok_retrying(&own, &["get", "new/after-join", "--print-value-only"]),
        "yes\n"
    );
    if c.flavor == Flavor::Cairn {
        let logs: Vec<String> = live
            .iter()
            .map(|&i| std::fs::read_to_string(&c.members[i].log).unwrap_or_default())
            .collect();
        assert!(
            logs.iter()
                .any(|l| l.contains("sending the current state rather than the saved snapshot")),
            "no member streamed its current state"
        );
        let joiner = std::fs::read_to_string(&c.members[3].log).unwrap_or_default();
        assert!(
            joiner.contains("finished applying incoming snapshot at index"),
            "{joiner}"
        );
    }
}

#[test]
fn a_voter_is_refused_while_a_previously_added_one_has_not_started() {
    let c = partly_started(5, 3, &[]);
    let live = [0, 1, 2];
    let ctl = ctl_for(&c, &live);
    let (m3, _) = must(member_add(&c, &live, 3, false));
    // m3 never starts: another voter could leave the started members short of a quorum.
    let m4 = format!("--peer-urls={}", c.members[4].peer_url);
    let out = must(ctl.run(&["member", "add", "m4", &m4]));
    assert!(
        !out.success() && out.stderr.contains("etcdserver: unhealthy cluster"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    // Removing the member that never started is allowed, and then a voter can be added again.
    must(ok_once_healthy(&ctl, &["member", "remove", &m3]));
    must(member_add(&c, &live, 4, false));
    assert_eq!(ok_retrying(&ctl, &["put", "still", "writable"]), "OK\n");
}

/// The gRPC status code (a number) that `method` answers to the protobuf `body`, sent to member `i` by
/// curl, a real HTTP/2 client: etcdctl 3.4 prints only the text, and clients retry on the code.
fn grpc_code(c: &Cluster, i: usize, method: &str, body: &[u8]) -> String {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(body);
    let file = c.dir().join("grpc-request.bin");
    must(std::fs::write(&file, framed).context("writing the request"));
    let url = format!("{}/{method}", c.members[i].client_url);
    let out = must(
        std::process::Command::new("curl")
            .args([
                "-sS",
                "-v",
                "--http2",
                "-o",
                "/dev/null",
                "--max-time",
                "10",
            ])
            .arg("--cacert")
            .arg(&c.pki.ca)
            .arg("--cert")
            .arg(&c.pki.admin.crt)
            .arg("--key")
            .arg(&c.pki.admin.key)
            .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(&url)
            .output()
            .context("running curl"),
    );
    let verbose = String::from_utf8_lossy(&out.stderr);
    verbose
        .lines()
        .find_map(|l| l.strip_prefix("< grpc-status: "))
        .map(|code| code.trim().to_string())
        .unwrap_or_else(|| panic!("no grpc-status from {url}: {verbose}"))
}

/// Protobuf of a message whose field 1 is the uint64 `v` (MemberPromoteRequest, MoveLeaderRequest).
fn field_1(mut v: u64) -> Vec<u8> {
    let mut out = vec![0x08];
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

#[test]
fn promoting_a_lagging_learner_and_moving_leadership_to_it_fail_with_etcds_precondition_errors() {
    let c = partly_started(4, 3, &[]);
    let live = [0, 1, 2];
    let ctl = ctl_for(&c, &live);
    // m3 is added as a learner and never started, so it never catches up.
    let (learner, _) = must(member_add(&c, &live, 3, true));
    let out = must(ctl.run(&["member", "promote", &learner]));
    let why = "etcdserver: can only promote a learner member which is in sync with leader";
    assert!(!out.success() && out.stderr.contains(why), "{out:?}");
    // A learner is no voter, so it cannot take leadership.
    let out = must(ctl.run(&["move-leader", &learner]));
    let why = "etcdserver: bad leader transferee";
    assert!(!out.success() && out.stderr.contains(why), "{out:?}");
    // Both are FailedPrecondition (9), as etcd answers: clients must not retry them as Unavailable.
    let id = must(u64::from_str_radix(&learner, 16).context("learner ID"));
    let (_, leader) = must(c.leader(&live));
    let promote = grpc_code(
        &c,
        leader,
        "etcdserverpb.Cluster/MemberPromote",
        &field_1(id),
    );
    let transfer = grpc_code(
        &c,
        leader,
        "etcdserverpb.Maintenance/MoveLeader",
        &field_1(id),
    );
    assert_eq!((promote.as_str(), transfer.as_str()), ("9", "9"));
}

#[test]
fn a_voter_added_to_a_one_member_cluster_is_listed_unstarted_at_once_and_joins_when_started() {
    let mut c = partly_started(2, 1, &[]);
    let live = [0];
    let ctl = ctl_for(&c, &live);
    let t = Instant::now();
    let (id, initial) = must(member_add(&c, &live, 1, false));
    let took = t.elapsed();
    eprintln!(
        "{:?}: member add of a voter not running took {took:?}",
        c.flavor
    );
    // etcd commits the addition with the one started member and answers at once.
    assert!(took < Duration::from_secs(5), "member add took {took:?}");
    // Listed as a voter that has not started: no name, no client URLs, not a learner.
    let list = must(ctl.ok(&["member", "list"]));
    let line = list
        .lines()
        .find(|l| l.starts_with(&format!("{id},")))
        .unwrap_or_else(|| panic!("{id} not in {list}"));
    assert_eq!(
        line,
        format!("{id}, unstarted, , {}, , false", c.members[1].peer_url)
    );
    // Started with what member add printed, it joins and the two members take writes.
    must(c.start_member_with(1, &initial, "existing"));
    expect_members(&c, &[0, 1], "m1 started");
    assert_eq!(
        ok_retrying(&ctl_for(&c, &[0, 1]), &["put", "two", "members"]),
        "OK\n"
    );
}

/// A learner that joins after writes of 1 MiB values catches up from the log (they are within the
/// entries kept after a snapshot) and is promoted. Replication sends it at most about 1 MiB per
/// message, as etcd does (`MaxSizePerMsg`): 32 such entries per message never made it within the
/// heartbeat interval openraft allows, and the learner was sent the same message forever.
#[test]
fn a_learner_joining_after_1_mib_values_catches_up_from_the_log_and_is_promoted() {
    let c = partly_started(4, 3, &[]);
    let live = vec![0, 1, 2];
    let ctl = ctl_for(&c, &live);
    let value = "v".repeat(1 << 20);
    for i in 0..40 {
        let key = format!("big/{i:02}");
        let out = must(ctl.run_with_stdin(&["put", &key], Some(&value)));
        assert!(out.success(), "put {key}: {out:?}");
    }
    let (id, initial) = must(member_add(&c, &live, 3, true));
    let mut c = c;
    must(c.start_member_with(3, &initial, "existing"));
    must(wait_for(
        "learner m3 promoted",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || {
            ctl.ok(&["member", "promote", &id])
                .map_err(|e| format!("{e:#}"))
        },
    ));
    must(c.wait_members_healthy(&[3], START_TIMEOUT));
    let on_m3 = ctl_for(&c, &[3]);
    let got = must(on_m3.ok(&["get", "big/39", "--consistency=s", "--print-value-only"]));
    assert_eq!(got.trim_end().len(), 1 << 20, "big/39 on the new member");
}
