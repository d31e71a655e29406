//! System tests of a running cairn cluster driven by the real etcdctl 3.4.
//!
//! Every test starts its own 3-member TLS cluster with client-cert-auth (free ports, temp dirs), so they
//! run in parallel. `CAIRN_TEST_FLAVOR=etcd` runs the very same assertions against the real etcd 3.4,
//! which is how each expectation here was checked against what etcd really prints.

use anyhow::Context;
use cairn_tests::base64::decode_str;
use cairn_tests::cluster::START_TIMEOUT;
use cairn_tests::etcdctl::Etcdctl;
use cairn_tests::fixture::{must, three_members as cluster};
use cairn_tests::pki::{Pki, PkiMember};
use cairn_tests::tls_probe::{connect, handshake};
use cairn_tests::wait::wait_for;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn header_revision(v: &Value) -> i64 {
    v["header"]["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no header.revision in {v}"))
}

/// `(key, value)` pairs of a `get -w json` answer, decoded from base64.
fn kvs(v: &Value) -> Vec<(String, String)> {
    v["kvs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|kv| {
                    (
                        must(decode_str(kv["key"].as_str().unwrap_or_default())),
                        must(decode_str(kv["value"].as_str().unwrap_or_default())),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn etcdctl_put_get_del_and_txn_behave_like_etcd() {
    let c = cluster();
    let ctl = c.etcdctl();
    if c.flavor == cairn_tests::cluster::Flavor::Cairn {
        // provision tells an initialised member from a fresh one by this file, over SSH.
        for m in &c.members {
            let marker = m
                .data_dir
                .join(provision::deploy::facts::MEMBER_DATA_MARKER);
            assert!(marker.is_file(), "{} missing", marker.display());
        }
    }
    assert_eq!(must(ctl.ok(&["put", "fruit/apple", "red"])), "OK\n");
    assert_eq!(must(ctl.ok(&["put", "fruit/banana", "yellow"])), "OK\n");
    assert_eq!(must(ctl.ok(&["put", "fruit/cherry", "dark"])), "OK\n");
    assert_eq!(must(ctl.ok(&["put", "veg/leek", "green"])), "OK\n");

    assert_eq!(must(ctl.ok(&["get", "fruit/apple"])), "fruit/apple\nred\n");
    assert_eq!(
        must(ctl.ok(&["get", "fruit/none"])),
        "",
        "a missing key prints nothing"
    );
    assert_eq!(
        must(ctl.ok(&["get", "--prefix", "fruit/"])),
        "fruit/apple\nred\nfruit/banana\nyellow\nfruit/cherry\ndark\n"
    );
    assert_eq!(
        must(ctl.ok(&["get", "--prefix", "fruit/", "--limit=2"])),
        "fruit/apple\nred\nfruit/banana\nyellow\n"
    );
    assert_eq!(
        must(ctl.ok(&[
            "get",
            "--prefix",
            "fruit/",
            "--sort-by=KEY",
            "--order=DESCEND"
        ])),
        "fruit/cherry\ndark\nfruit/banana\nyellow\nfruit/apple\nred\n"
    );
    assert_eq!(
        must(ctl.ok(&[
            "get",
            "--prefix",
            "fruit/",
            "--sort-by=VALUE",
            "--order=ASCEND",
            "--keys-only"
        ])),
        "fruit/cherry\n\nfruit/apple\n\nfruit/banana\n\n"
    );

    // -w json: header with the cluster-wide revision, per-key revisions and versions, count.
    let j = must(ctl.json(&["get", "--prefix", "fruit/", "-w", "json"]));
    let rev = header_revision(&j);
    assert!(
        rev >= 5,
        "4 puts after the initial revision 1 give revision >= 5, got {rev}: {j}"
    );
    for field in ["cluster_id", "member_id", "raft_term"] {
        assert!(
            j["header"][field].as_u64().is_some_and(|v| v > 0),
            "header.{field} missing in {j}"
        );
    }
    assert_eq!(j["count"].as_i64(), Some(3), "{j}");
    assert_eq!(
        kvs(&j),
        vec![
            ("fruit/apple".into(), "red".into()),
            ("fruit/banana".into(), "yellow".into()),
            ("fruit/cherry".into(), "dark".into())
        ]
    );
    let apple = &j["kvs"][0];
    let apple_rev = apple["mod_revision"].as_i64().expect("mod_revision");
    assert_eq!(apple["create_revision"].as_i64(), Some(apple_rev));
    assert_eq!(apple["version"].as_i64(), Some(1));

    // An overwrite bumps version and mod_revision; --rev reads the past.
    assert_eq!(must(ctl.ok(&["put", "fruit/apple", "green"])), "OK\n");
    let j = must(ctl.json(&["get", "fruit/apple", "-w", "json"]));
    assert_eq!(j["kvs"][0]["version"].as_i64(), Some(2), "{j}");
    assert_eq!(
        j["kvs"][0]["create_revision"].as_i64(),
        Some(apple_rev),
        "{j}"
    );
    assert_eq!(
        j["kvs"][0]["mod_revision"].as_i64(),
        Some(header_revision(&j)),
        "{j}"
    );
    let rev_arg = format!("--rev={apple_rev}");
    assert_eq!(
        must(ctl.ok(&["get", "fruit/apple", &rev_arg])),
        "fruit/apple\nred\n"
    );
    assert_eq!(
        must(ctl.ok(&["get", "fruit/apple"])),
        "fruit/apple\ngreen\n"
    );

    // del prints how many keys it deleted.
    assert_eq!(must(ctl.ok(&["del", "veg/leek"])), "1\n");
    assert_eq!(must(ctl.ok(&["del", "veg/leek"])), "0\n");
    assert_eq!(must(ctl.ok(&["get", "veg/leek"])), "");
    assert_eq!(
        must(ctl.ok(&["del", "--prefix", "--prev-kv", "fruit/b"])),
        "1\nfruit/banana\nyellow\n"
    );

    // txn from stdin: compares, blank line, success ops, blank line, failure ops.
    let txn = "value(\"fruit/apple\") = \"green\"\n\nput fruit/result yes\nget fruit/apple\n\nput fruit/result no\n\n";
    assert_eq!(
        must(ctl.ok_with_stdin(&["txn"], Some(txn))),
        "SUCCESS\n\nOK\n\nfruit/apple\ngreen\n"
    );
    assert_eq!(
        must(ctl.ok(&["get", "fruit/result", "--print-value-only"])),
        "yes\n"
    );
    let txn = "mod(\"fruit/apple\") < \"1\"\n\nput fruit/result yes\n\nput fruit/result no\n\n";
    assert_eq!(
        must(ctl.ok_with_stdin(&["txn"], Some(txn))),
        "FAILURE\n\nOK\n"
    );
    assert_eq!(
        must(ctl.ok(&["get", "fruit/result", "--print-value-only"])),
        "no\n"
    );
    let out = must(ctl.ok_with_stdin(
        &["txn", "-w", "json"],
        Some("version(\"fruit/apple\") = \"2\"\n\nget fruit/apple\n\n\n"),
    ));
    let j: Value = must(serde_json::from_str(&out).context("txn -w json"));
    assert_eq!(j["succeeded"].as_bool(), Some(true), "{j}");
}

#[test]
fn etcdctl_watch_streams_new_events_and_replays_history_with_rev() {
    let c = cluster();
    let ctl = c.etcdctl();
    let start = header_revision(&must(ctl.json(&["get", "w/", "-w", "json"])));
    must(ctl.ok(&["put", "w/a", "1"]));
    must(ctl.ok(&["put", "w/b", "2"]));
    must(ctl.ok(&["del", "w/a"]));

    // Replay from the revision of the first put: all three events, in order, nothing else.
    let rev = format!("--rev={}", start + 1);
    let replay = must(ctl.spawn(&["watch", "--prefix", "w/", &rev]));
    let expected = "PUT\nw/a\n1\nPUT\nw/b\n2\nDELETE\nw/a\n\n";
    must(wait_for(
        "watch --rev replay",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let out = replay.stdout();
            if out == expected {
                Ok(())
            } else {
                Err(format!(
                    "stdout so far {out:?}, stderr {:?}",
                    replay.stderr()
                ))
            }
        },
    ));

    // A live watch on one member sees writes made through another member, with prev_kv.
    let live = must(c.etcdctl_for(2).spawn(&["watch", "--prev-kv", "w/live"]));
    // The watch is registered once etcdctl has connected; a put before that would be missed, so write
    // until the first event shows up and then check the following ones exactly.
    let writer = c.etcdctl_for(0);
    must(wait_for(
        "live watch to start receiving",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            writer
                .ok(&["put", "w/live", "first"])
                .map_err(|e| format!("{e:#}"))?;
            let out = live.stdout();
            if out.contains("PUT\nw/live\nfirst\n") {
                Ok(())
            } else {
                Err(format!("stdout {out:?} stderr {:?}", live.stderr()))
            }
        },
    ));
    let before = live.stdout();
    must(writer.ok(&["put", "w/live", "second"]));
    must(wait_for(
        "second event",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let out = live.stdout();
            let new = &out[before.len()..];
            // The event of a "first" put still in flight when the loop above stopped may precede it;
            // the "second" event must come last, once, carrying "first" as its previous value.
            let second = "PUT\nw/live\nfirst\nw/live\nsecond\n";
            let only_firsts = new.strip_suffix(second).is_some_and(|head| {
                head.replace("PUT\nw/live\nfirst\nw/live\nfirst\n", "")
                    .is_empty()
            });
            if only_firsts {
                Ok(())
            } else {
                Err(format!("new output {new:?}"))
            }
        },
    ));
}

/// The lease ID (hex) from "lease 694d7b6f0d1c2a0b granted with TTL(60s)".
fn lease_id(granted: &str) -> String {
    let mut words = granted.split_whitespace();
    assert_eq!(
        words.next(),
        Some("lease"),
        "unexpected lease grant output {granted:?}"
    );
    let id = words.next().unwrap_or_default().to_string();
    assert!(
        granted.trim_end().ends_with("granted with TTL(60s)"),
        "{granted:?}"
    );
    assert!(
        u64::from_str_radix(&id, 16).is_ok(),
        "lease id {id:?} is not hex"
    );
    id
}

#[test]
fn etcdctl_lease_grant_keepalive_timetolive_and_revoke_deletes_attached_keys() {
    let c = cluster();
    let ctl = c.etcdctl();
    let id = lease_id(&must(ctl.ok(&["lease", "grant", "60"])));
    let lease = format!("--lease={id}");
    assert_eq!(must(ctl.ok(&["put", "leased/a", "x", &lease])), "OK\n");
    assert_eq!(must(ctl.ok(&["put", "leased/b", "y", &lease])), "OK\n");

    let ka = must(ctl.ok(&["lease", "keep-alive", "--once", &id]));
    assert_eq!(ka, format!("lease {id} keepalived with TTL(60)\n"));

    let ttl = must(ctl.ok(&["lease", "timetolive", &id, "--keys"]));
    let prefix = format!("lease {id} granted with TTL(60s), remaining(");
    assert!(ttl.starts_with(&prefix), "{ttl:?}");
    // etcd lists attached keys in no particular order.
    let keys_at =
        ttl.find("s), attached keys([").expect("attached keys") + "s), attached keys([".len();
    let mut keys: Vec<&str> = ttl[keys_at..]
        .trim_end()
        .trim_end_matches("])")
        .split(' ')
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["leased/a", "leased/b"], "{ttl:?}");
    let remaining: i64 = ttl[prefix.len()..]
        .split('s')
        .next()
        .unwrap_or("")
        .parse()
        .expect("remaining seconds");
    assert!((55..=60).contains(&remaining), "{ttl:?}");

    let list = must(ctl.ok(&["lease", "list"]));
    assert!(list.contains(&id), "lease list {list:?} lacks {id}");

    assert_eq!(
        must(ctl.ok(&["lease", "revoke", &id])),
        format!("lease {id} revoked\n")
    );
    assert_eq!(
        must(ctl.ok(&["get", "--prefix", "leased/"])),
        "",
        "keys of a revoked lease are deleted"
    );
    let gone = must(ctl.ok(&["lease", "timetolive", &id]));
    assert_eq!(gone, format!("lease {id} already expired\n"));
}

#[test]
fn compaction_makes_revisions_below_it_unreadable() {
    let c = cluster();
    let ctl = c.etcdctl();
    must(ctl.ok(&["put", "c", "1"]));
    let old = header_revision(&must(ctl.json(&["get", "c", "-w", "json"])));
    must(ctl.ok(&["put", "c", "2"]));
    must(ctl.ok(&["put", "c", "3"]));
    let now = header_revision(&must(ctl.json(&["get", "c", "-w", "json"])));
    assert_eq!(
        must(ctl.ok(&["get", "c", &format!("--rev={old}")])),
        "c\n1\n"
    );
    assert_eq!(
        must(ctl.ok(&["compaction", &now.to_string()])),
        format!("compacted revision {now}\n")
    );
    let out = must(ctl.run(&["get", "c", &format!("--rev={old}")]));
    assert!(
        !out.success(),
        "reading below the compaction succeeded: {out:?}"
    );
    assert!(
        out.stderr
            .contains("etcdserver: mvcc: required revision has been compacted"),
        "{out:?}"
    );
    assert_eq!(
        must(ctl.ok(&["get", "c", &format!("--rev={now}")])),
        "c\n3\n"
    );
    // Compacting again at the same revision is itself an error, as in etcd.
    let again = must(ctl.run(&["compaction", &now.to_string()]));
    assert!(
        !again.success()
            && again
                .stderr
                .contains("required revision has been compacted"),
        "{again:?}"
    );
}

#[test]
fn etcdctl_member_list_endpoint_health_status_hashkv_and_snapshot() {
    let c = cluster();
    let ctl = c.etcdctl();
    must(ctl.ok(&["put", "m", "v"]));

    // member list: "id, started, name, peer URLs, client URLs, is learner".
    let list = must(ctl.ok(&["member", "list"]));
    let mut seen = BTreeMap::new();
    for line in list.lines() {
        let f: Vec<&str> = line.split(", ").collect();
        assert_eq!(f.len(), 6, "member list line {line:?}");
        assert!(u64::from_str_radix(f[0], 16).is_ok(), "{line:?}");
        assert_eq!(f[1], "started", "{line:?}");
        assert_eq!(f[5], "false", "{line:?}");
        seen.insert(f[2].to_string(), (f[3].to_string(), f[4].to_string()));
    }
    let want: BTreeMap<String, (String, String)> = c
        .members
        .iter()
        .map(|m| (m.name.clone(), (m.peer_url.clone(), m.client_url.clone())))
        .collect();
    assert_eq!(seen, want, "member list:\n{list}");

    // endpoint health --cluster: one "is healthy" line per member (etcdctl 3.4 prints them on stderr).
    let health = must(ctl.with_endpoints(c.members[0].client_url.clone()).run(&[
        "endpoint",
        "health",
        "--cluster",
    ]));
    assert!(health.success(), "{health:?}");
    let text = format!("{}{}", health.stdout, health.stderr);
    for m in &c.members {
        let line = format!(
            "{} is healthy: successfully committed proposal",
            m.client_url
        );
        assert!(text.contains(&line), "no {line:?} in {text:?}");
    }

    // endpoint status --cluster -w table: a header and one row per member, exactly one leader.
    let table = must(ctl.with_endpoints(c.members[1].client_url.clone()).ok(&[
        "endpoint",
        "status",
        "--cluster",
        "-w",
        "table",
    ]));
    assert!(
        table.contains("ENDPOINT") && table.contains("IS LEADER") && table.contains("RAFT INDEX"),
        "{table}"
    );
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("https://127.0.0.1:"))
        .collect();
    assert_eq!(rows.len(), 3, "{table}");
    // Columns: ENDPOINT | ID | VERSION | DB SIZE | IS LEADER | ...
    let leaders = rows
        .iter()
        .filter(|r| r.split('|').nth(5).map(str::trim) == Some("true"))
        .count();
    assert_eq!(leaders, 1, "one leader in {table}");
    for m in &c.members {
        assert!(
            rows.iter().any(|r| r.contains(&m.client_url)),
            "{} missing from {table}",
            m.client_url
        );
    }
    let status = must(ctl.json(&["endpoint", "status", "-w", "json"]));
    for e in status.as_array().expect("array") {
        assert!(
            e["Status"]["version"]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{e}"
        );
        assert!(e["Status"]["dbSize"].as_i64().is_some_and(|v| v > 0), "{e}");
        assert!(
            e["Status"]["raftIndex"].as_u64().is_some_and(|v| v > 0),
            "{e}"
        );
    }

    // endpoint hashkv --cluster: every member has the same hash once all applied the last write.
    let hashes = must(wait_for(
        "equal hashkv",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let out = ctl
                .with_endpoints(c.members[2].client_url.clone())
                .ok(&["endpoint", "hashkv", "--cluster"])
                .map_err(|e| format!("{e:#}"))?;
            let hashes: Vec<String> = out
                .lines()
                .map(|l| l.rsplit(", ").next().unwrap_or_default().to_string())
                .collect();
            if hashes.len() == 3
                && hashes.iter().all(|h| h == &hashes[0])
                && hashes[0].parse::<u32>().is_ok()
            {
                Ok(out)
            } else {
                Err(out)
            }
        },
    ));
    for m in &c.members {
        assert!(hashes.contains(&format!("{}, ", m.client_url)), "{hashes}");
    }

    // snapshot save writes a file etcdctl accepts (it verifies the trailing SHA-256 itself).
    let file = c.dir().join("backup.db");
    let file_arg = file.display().to_string();
    let out = must(c.etcdctl_for(0).run(&["snapshot", "save", &file_arg]));
    assert!(out.success(), "{out:?}");
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains(&format!("Snapshot saved at {file_arg}")),
        "{out:?}"
    );
    let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    assert!(len > 32 && len % 512 == 32, "snapshot size {len}");
}

#[test]
fn clients_without_a_certificate_or_with_another_cas_certificate_are_refused_at_the_handshake() {
    let c = cluster();
    let good = c.etcdctl();
    must(good.ok(&["put", "secret", "v"]));

    let anonymous = Etcdctl {
        cert: None,
        ..good.clone()
    };
    let out = must(anonymous.run(&["--command-timeout=5s", "get", "secret"]));
    assert!(
        !out.success(),
        "a client without a certificate was served: {out:?}"
    );
    // etcdctl 3.4 reports a refused handshake only as its dial giving up (the same text against etcd).
    assert!(out.stderr.contains("context deadline exceeded"), "{out:?}");
    assert!(!out.stdout.contains('v'), "{out:?}");

    let other_dir = c.dir().join("other-ca");
    let other = must(Pki::create(
        &other_dir,
        "other-cluster",
        // Never started: the ports only have to be ones provision accepts (1024 and up).
        &[PkiMember {
            name: "x0".into(),
            address: "127.0.0.1".into(),
            client_port: 10001,
            peer_port: 10002,
        }],
    ));
    let foreign = Etcdctl {
        cert: Some((other.admin.crt.clone(), other.admin.key.clone())),
        ..good.clone()
    };
    let out = must(foreign.run(&["--command-timeout=5s", "get", "secret"]));
    assert!(
        !out.success(),
        "a client with another CA's certificate was served: {out:?}"
    );
    assert!(out.stderr.contains("context deadline exceeded"), "{out:?}");
    assert!(!out.stdout.contains("secret"), "{out:?}");

    // The refusal happens in the TLS handshake: the server answers with an alert, while the same probe
    // with the admin certificate gets an HTTP/2 answer.
    let addr = c.members[0]
        .client_url
        .trim_start_matches("https://")
        .to_string();
    let admin = (c.pki.admin.crt.as_path(), c.pki.admin.key.as_path());
    assert_eq!(must(handshake(&addr, &c.pki.ca, Some(admin))), Ok(()));
    for (who, cert) in [
        ("no certificate", None),
        (
            "another CA's certificate",
            Some((other.admin.crt.as_path(), other.admin.key.as_path())),
        ),
    ] {
        match must(handshake(&addr, &c.pki.ca, cert)) {
            Ok(()) => panic!("a TLS client with {who} was accepted"),
            Err(reason) => assert!(
                reason.contains("received fatal alert"),
                "a client with {who} failed without a TLS alert: {reason}"
            ),
        }
    }

    // And the right certificate still works, so the refusals above were about the certificates.
    assert_eq!(
        must(good.ok(&["get", "secret", "--print-value-only"])),
        "v\n"
    );
}

/// Writes `w<writer>-<n>` keys through etcdctl until stopped; records each key etcdctl acknowledged (exit 0).
fn start_writers(
    ctl: &Etcdctl,
    count: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    (0..count)
        .map(|w| {
            let ctl = ctl.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("inflight/w{w}-{n:05}");
                    if let Ok(out) = ctl.run(&["--command-timeout=3s", "put", &key, &key]) {
                        if out.success() && out.stdout == "OK\n" {
                            acked.push(key);
                        }
                    }
                    n += 1;
                }
                acked
            })
        })
        .collect()
}

fn assert_all_readable(ctl: &Etcdctl, acked: &[String]) {
    let stored: Vec<(String, String)> = kvs(&must(ctl.json(&[
        "get",
        "--prefix",
        "inflight/",
        "-w",
        "json",
    ])));
    let stored: BTreeMap<String, String> = stored.into_iter().collect();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|k| stored.get(*k) != Some(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        missing.len(),
        acked.len(),
        missing
    );
}

#[test]
fn killing_the_leader_elects_a_new_one_within_3s_and_loses_no_acknowledged_write() {
    let mut c = cluster();
    let ctl = c.etcdctl();
    let all = [0, 1, 2];
    let (old_leader, li) = must(wait_for(
        "a leader",
        START_TIMEOUT,
        Duration::from_millis(100),
        || c.leader(&all).map_err(|e| format!("{e:#}")),
    ));
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != li).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let writers = start_writers(&ctl, 2, &stop);
    // Let some writes land before the fault, then kill -9 the leader while they are in flight.
    wait_for_writes(&ctl, "writes in flight", 10);
    let killed_at = Instant::now();
    must(c.kill_member(li));
    let (new_leader, _) = must(wait_for(
        "a new leader",
        Duration::from_secs(3),
        Duration::from_millis(50),
        || {
            let (l, i) = c.leader(&survivors).map_err(|e| format!("{e:#}"))?;
            if l != old_leader {
                Ok((l, i))
            } else {
                Err(format!("leader is still the killed {l:x}"))
            }
        },
    ));
    let elected_after = killed_at.elapsed();
    eprintln!(
        "{:?}: new leader {new_leader:x} {elected_after:?} after kill -9 of {old_leader:x}",
        c.flavor
    );

    // Keep writing under the new leader for a moment, then stop and check every acknowledged key.
    let surv_ctl = ctl.with_endpoints(
        survivors
            .iter()
            .map(|&i| c.members[i].client_url.clone())
            .collect::<Vec<_>>()
            .join(","),
    );
    let target = header_revision(&must(surv_ctl.json(&["get", "x", "-w", "json"]))) + 10;
    must(wait_for(
        "writes under the new leader",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let r = header_revision(
                &surv_ctl
                    .json(&["get", "x", "-w", "json"])
                    .map_err(|e| format!("{e:#}"))?,
            );
            if r >= target {
                Ok(())
            } else {
                Err(format!("revision {r}"))
            }
        },
    ));
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<String> = writers
        .into_iter()
        .flat_map(|h| h.join().unwrap_or_default())
        .collect();
    assert!(
        acked.len() >= 10,
        "too few acknowledged writes: {}",
        acked.len()
    );
    assert_all_readable(&surv_ctl, &acked);

    // The killed member restarts from its data dir and catches up: its own serializable read sees the
    // latest value.
    must(surv_ctl.ok(&["put", "after-restart", "latest"]));
    must(c.start_member(li));
    let own = c.etcdctl_for(li);
    must(wait_for(
        "restarted member catches up",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let out = own
                .ok(&[
                    "get",
                    "after-restart",
                    "--consistency=s",
                    "--print-value-only",
                ])
                .map_err(|e| format!("{e:#}"))?;
            if out == "latest\n" {
                Ok(())
            } else {
                Err(out)
            }
        },
    ));
    assert_all_readable(&own, &acked);
}

#[test]
fn restarting_every_member_keeps_every_acknowledged_write() {
    let mut c = cluster();
    let ctl = c.etcdctl();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = start_writers(&ctl, 2, &stop);
    wait_for_writes(&ctl, "some writes", 20);
    // kill -9 all members with writes in flight; whatever etcdctl acknowledged must survive.
    must(c.kill_all());
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<String> = writers
        .into_iter()
        .flat_map(|h| h.join().unwrap_or_default())
        .collect();
    must(c.start_all());
    must(c.wait_healthy(START_TIMEOUT));
    assert_all_readable(&ctl, &acked);
    for i in 0..3 {
        must(wait_for(
            "member caught up",
            Duration::from_secs(20),
            Duration::from_millis(200),
            || {
                let n = c
                    .etcdctl_for(i)
                    .json(&[
                        "get",
                        "--prefix",
                        "inflight/",
                        "--limit=1",
                        "--consistency=s",
                        "-w",
                        "json",
                    ])
                    .map_err(|e| format!("{e:#}"))?;
                let n = n["count"].as_i64().unwrap_or(0) as usize;
                if n >= acked.len() {
                    Ok(())
                } else {
                    Err(format!("{n} < {}", acked.len()))
                }
            },
        ));
    }
}

/// Wait until the writers have landed at least `n` keys under `inflight/`.
fn wait_for_writes(ctl: &Etcdctl, what: &str, n: i64) {
    must(wait_for(
        what,
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let got = ctl
                .json(&["get", "--prefix", "inflight/", "--limit=1", "-w", "json"])
                .map_err(|e| format!("{e:#}"))?;
            if got["count"].as_i64().unwrap_or(0) >= n {
                Ok(())
            } else {
                Err(got.to_string())
            }
        },
    ));
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// One HTTP/2 frame on stream 1 with a payload of `len` bytes of 0x82 (HPACK ":method: GET").
fn h2_frame(kind: u8, len: usize) -> Vec<u8> {
    let mut f = vec![
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        kind,
        0,
        0,
        0,
        0,
        1,
    ];
    f.resize(9 + len, 0x82);
    f
}

/// True when the server's frames in `got` (read from the start of the connection) hold a GOAWAY.
fn goaway_in(got: &[u8]) -> bool {
    let mut at = 0;
    while let Some(head) = got.get(at..at + 9) {
        if head[3] == 0x7 {
            return true;
        }
        at += 9 + (usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]));
    }
    false
}

#[test]
fn a_header_block_without_end_is_refused_and_the_member_does_not_grow() {
    let c = cluster();
    let pid = c.members[0].pid().expect("member 0 runs");
    let addr = c.members[0]
        .client_url
        .trim_start_matches("https://")
        .to_string();
    let admin = (c.pki.admin.crt.as_path(), c.pki.admin.key.as_path());
    let mut tls = must(connect(&addr, &c.pki.ca, Some(admin)));
    must(
        tls.sock
            .set_write_timeout(Some(Duration::from_secs(10)))
            .context("timeout"),
    );
    let before = rss(pid);
    // The preface and an empty SETTINGS, then a HEADERS frame that never ends: 64 MiB of CONTINUATION.
    let mut start = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    start.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    start.extend(h2_frame(0x1, 16_384));
    let continuation = h2_frame(0x9, 16_384);
    let mut refused = tls.write_all(&start).err();
    let mut sent = 0usize;
    while refused.is_none() && sent < 64 << 20 {
        match tls.write_all(&continuation) {
            Ok(()) => sent += continuation.len(),
            Err(e) => refused = Some(e),
        }
    }
    // Writes into a closing connection can still succeed (socket buffers): then the server's GOAWAY
    // or the end of the stream is what is read.
    let answered = refused.is_some() || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tls.read(&mut buf) {
                // No answer within the read timeout: the server is still waiting for more.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break false
                }
                Ok(0) | Err(_) => break true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if goaway_in(&got) {
                break true;
            }
        }
    };
    let after = rss(pid);
    assert!(
        answered,
        "the server kept reading a header block of {sent} bytes"
    );
    assert!(
        sent < 32 << 20,
        "{sent} bytes of one header block were accepted before the refusal"
    );
    let grown = after.saturating_sub(before);
    assert!(
        grown < 16 << 20,
        "member RSS grew by {} MiB ({} -> {} MiB) after {} MiB of CONTINUATION",
        grown >> 20,
        before >> 20,
        after >> 20,
        sent >> 20
    );
    eprintln!(
        "{:?}: refused after {} KiB of one header block; member RSS {} -> {} MiB",
        c.flavor,
        sent >> 10,
        before >> 20,
        after >> 20
    );
    // The member still serves.
    assert_eq!(
        must(c.etcdctl_for(0).ok(&["put", "after-flood", "v"])),
        "OK\n"
    );
}
