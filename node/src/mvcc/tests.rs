//! Unit tests of the store: revisions, history, compaction, txn compares, leases, watch replay.

use etcd_client::proto::{
    PbCompactionRequest, PbCompare, PbDeleteRequest, PbDeleteResponse, PbPutRequest, PbPutResponse,
    PbRangeRequest, PbTargetUnion, PbTxnOpRequest, PbTxnOpResponse, PbTxnRequest, PbTxnRequestOp,
    PbTxnResponse,
};
use prost::Message;

use super::*;

fn put_cmd(k: &str, v: &str) -> Command {
    Command::Put(
        PbPutRequest {
            key: k.into(),
            value: v.into(),
            prev_kv: true,
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

fn put(s: &mut Store, k: &str, v: &str) -> PbPutResponse {
    let r = s.apply(&put_cmd(k, v));
    assert_eq!(r.error, None);
    PbPutResponse::decode(r.body.as_slice()).expect("put response")
}

fn del(s: &mut Store, k: &str, end: &str) -> (PbDeleteResponse, i64) {
    let r = s.apply(&Command::DeleteRange(
        PbDeleteRequest {
            key: k.into(),
            range_end: end.into(),
            prev_kv: true,
        }
        .encode_to_vec(),
    ));
    (
        PbDeleteResponse::decode(r.body.as_slice()).expect("delete response"),
        r.revision,
    )
}

fn get(s: &Store, req: PbRangeRequest) -> Result<Vec<(String, String)>, MvccError> {
    Ok(s.range(&req)?
        .kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into(),
                String::from_utf8_lossy(&kv.value).into(),
            )
        })
        .collect())
}

fn key(k: &str) -> PbRangeRequest {
    PbRangeRequest {
        key: k.into(),
        ..Default::default()
    }
}

fn prefix(p: &str) -> PbRangeRequest {
    let mut end = p.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    PbRangeRequest {
        key: p.into(),
        range_end: end,
        ..Default::default()
    }
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.into(), v.into())
}

#[test]
fn revisions_versions_and_create_revision_follow_etcd() {
    let mut s = Store::new();
    assert_eq!(s.revision(), 1);
    put(&mut s, "a", "1");
    put(&mut s, "a", "2");
    put(&mut s, "b", "1");
    assert_eq!(s.revision(), 4);
    let a = &s.range(&key("a")).expect("range").kvs[0];
    assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 3, 2));
    let (d, rev) = del(&mut s, "a", "");
    assert_eq!((d.deleted, rev), (1, 5));
    put(&mut s, "a", "3");
    let a = &s.range(&key("a")).expect("range").kvs[0];
    assert_eq!(
        (a.create_revision, a.mod_revision, a.version),
        (6, 6, 1),
        "version resets after delete"
    );
}

#[test]
fn deleting_nothing_does_not_bump_the_revision() {
    let mut s = Store::new();
    put(&mut s, "a", "1");
    let (d, rev) = del(&mut s, "zzz", "");
    assert_eq!((d.deleted, rev), (0, 2));
}

#[test]
fn historical_reads_see_old_values_until_compacted() {
    let mut s = Store::new();
    put(&mut s, "k", "v1"); // rev 2
    put(&mut s, "k", "v2"); // rev 3
    del(&mut s, "k", ""); // rev 4
    let at = |rev| PbRangeRequest {
        revision: rev,
        ..key("k")
    };
    assert_eq!(get(&s, at(2)), Ok(vec![kv("k", "v1")]));
    assert_eq!(get(&s, at(3)), Ok(vec![kv("k", "v2")]));
    assert_eq!(get(&s, at(4)), Ok(vec![]));
    assert_eq!(get(&s, at(9)), Err(MvccError::FutureRevision));
    let r = s.apply(&Command::Compact(
        PbCompactionRequest {
            revision: 3,
            physical: false,
        }
        .encode_to_vec(),
    ));
    assert_eq!(r.error, None);
    assert_eq!(get(&s, at(2)), Err(MvccError::Compacted));
    assert_eq!(
        get(&s, at(3)),
        Ok(vec![kv("k", "v2")]),
        "the compaction revision itself stays readable"
    );
    let again = s.apply(&Command::Compact(
        PbCompactionRequest {
            revision: 3,
            physical: false,
        }
        .encode_to_vec(),
    ));
    assert_eq!(again.error, Some(MvccError::Compacted));
    let future = s.apply(&Command::Compact(
        PbCompactionRequest {
            revision: 99,
            physical: false,
        }
        .encode_to_vec(),
    ));
    assert_eq!(future.error, Some(MvccError::FutureRevision));
}

#[test]
fn range_prefix_limit_sort_and_count() {
    let mut s = Store::new();
    for (k, v) in [("p/b", "2"), ("p/a", "3"), ("p/c", "1"), ("q", "0")] {
        put(&mut s, k, v);
    }
    assert_eq!(get(&s, prefix("p/")).expect("range").len(), 3);
    let limited = s
        .range(&PbRangeRequest {
            limit: 2,
            ..prefix("p/")
        })
        .expect("range");
    assert_eq!(
        (limited.kvs.len(), limited.more, limited.count),
        (2, true, 3)
    );
    // A limit met exactly: nothing more, and the count is still the whole range's.
    let exact = s
        .range(&PbRangeRequest {
            limit: 3,
            ..prefix("p/")
        })
        .expect("range");
    assert_eq!((exact.kvs.len(), exact.more, exact.count), (3, false, 3));
    // Sorted and limited: the limit applies after the sort, over every key.
    let last_two = s
        .range(&PbRangeRequest {
            limit: 2,
            sort_target: 0,
            sort_order: 2,
            ..prefix("p/")
        })
        .expect("range");
    let keys: Vec<&[u8]> = last_two.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, [b"p/c".as_slice(), b"p/b"]);
    assert_eq!((last_two.more, last_two.count), (true, 3));
    let by_value = PbRangeRequest {
        sort_target: 4,
        sort_order: 2,
        ..prefix("p/")
    };
    assert_eq!(
        get(&s, by_value),
        Ok(vec![kv("p/a", "3"), kv("p/b", "2"), kv("p/c", "1")])
    );
    let all = PbRangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    };
    assert_eq!(get(&s, all).expect("range").len(), 4);
    let count = s
        .range(&PbRangeRequest {
            count_only: true,
            ..prefix("p/")
        })
        .expect("range");
    assert_eq!((count.kvs.len(), count.count), (0, 3));
    let keys = s
        .range(&PbRangeRequest {
            keys_only: true,
            ..prefix("p/")
        })
        .expect("range");
    assert!(keys.kvs.iter().all(|kv| kv.value.is_empty()));
}

fn txn(cmp: Vec<PbCompare>, ok: Vec<PbTxnRequestOp>, fail: Vec<PbTxnRequestOp>) -> Command {
    Command::Txn(
        PbTxnRequest {
            compare: cmp,
            success: ok,
            failure: fail,
        }
        .encode_to_vec(),
    )
}

fn op_put(k: &str, v: &str) -> PbTxnRequestOp {
    PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        })),
    }
}

fn cmp(k: &str, result: i32, target: i32, u: PbTargetUnion) -> PbCompare {
    PbCompare {
        result,
        target,
        key: k.into(),
        range_end: vec![],
        target_union: Some(u),
    }
}

#[test]
fn txn_compares_choose_the_branch_and_share_one_revision() {
    let mut s = Store::new();
    put(&mut s, "k", "v"); // rev 2
    let c = txn(
        vec![
            cmp("k", 0, 3, PbTargetUnion::Value(b"v".to_vec())),
            cmp("k", 0, 0, PbTargetUnion::Version(1)),
        ],
        vec![op_put("x", "1"), op_put("y", "2")],
        vec![op_put("z", "3")],
    );
    let r = s.apply(&c);
    let t = PbTxnResponse::decode(r.body.as_slice()).expect("txn");
    assert!(t.succeeded);
    assert_eq!(r.revision, 3, "both puts share revision 3");
    assert_eq!(s.range(&key("y")).expect("range").kvs[0].mod_revision, 3);
    // Missing key: version compares as 0, value compares always fail.
    let c = txn(
        vec![cmp("nope", 0, 0, PbTargetUnion::Version(0))],
        vec![op_put("m", "1")],
        vec![],
    );
    assert!(
        PbTxnResponse::decode(s.apply(&c).body.as_slice())
            .expect("txn")
            .succeeded
    );
    let c = txn(
        vec![cmp("nope", 3, 3, PbTargetUnion::Value(b"x".to_vec()))],
        vec![],
        vec![op_put("f", "1")],
    );
    assert!(
        !PbTxnResponse::decode(s.apply(&c).body.as_slice())
            .expect("txn")
            .succeeded
    );
    // Greater/less on mod revision.
    let c = txn(
        vec![cmp("k", 2, 2, PbTargetUnion::ModRevision(3))],
        vec![],
        vec![],
    );
    assert!(
        PbTxnResponse::decode(s.apply(&c).body.as_slice())
            .expect("txn")
            .succeeded
    );
}

#[test]
fn txn_reads_see_earlier_writes_and_nested_txns_run() {
    let mut s = Store::new();
    let read = PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestRange(key("a"))),
    };
    let nested = PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestTxn(PbTxnRequest {
            compare: vec![],
            success: vec![op_put("b", "2")],
            failure: vec![],
        })),
    };
    let r = s.apply(&txn(vec![], vec![op_put("a", "1"), read, nested], vec![]));
    let t = PbTxnResponse::decode(r.body.as_slice()).expect("txn");
    match &t.responses[1].response {
        Some(PbTxnOpResponse::ResponseRange(rr)) => assert_eq!(rr.kvs[0].value, b"1"),
        other => panic!("expected a range response, got {other:?}"),
    }
    assert_eq!(get(&s, key("b")), Ok(vec![kv("b", "2")]));
    assert_eq!(s.revision(), 2);
    // Like etcd, every inner response (nested ones too) carries the txn's revision in its header.
    let inner_revs: Vec<i64> = t
        .responses
        .iter()
        .map(|op| match &op.response {
            Some(PbTxnOpResponse::ResponsePut(r)) => r.header.as_ref().map_or(0, |h| h.revision),
            Some(PbTxnOpResponse::ResponseRange(r)) => r.header.as_ref().map_or(0, |h| h.revision),
            Some(PbTxnOpResponse::ResponseTxn(r)) => match r.responses[0].response.as_ref() {
                Some(PbTxnOpResponse::ResponsePut(p)) => {
                    p.header.as_ref().map_or(0, |h| h.revision)
                }
                _ => 0,
            },
            _ => 0,
        })
        .collect();
    assert_eq!(inner_revs, vec![2, 2, 2]);
    // A read-only txn stamps the current revision.
    let ro = PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestRange(key("a"))),
    };
    let t = PbTxnResponse::decode(s.apply(&txn(vec![], vec![ro], vec![])).body.as_slice())
        .expect("txn");
    match &t.responses[0].response {
        Some(PbTxnOpResponse::ResponseRange(rr)) => {
            assert_eq!(rr.header.as_ref().map(|h| h.revision), Some(2))
        }
        other => panic!("expected a range response, got {other:?}"),
    }
}

#[test]
fn txn_with_a_missing_lease_writes_nothing() {
    let mut s = Store::new();
    let bad = PbTxnRequestOp {
        request: Some(PbTxnOpRequest::RequestPut(PbPutRequest {
            key: "b".into(),
            lease: 42,
            ..Default::default()
        })),
    };
    let r = s.apply(&txn(vec![], vec![op_put("a", "1"), bad], vec![]));
    assert_eq!(r.error, Some(MvccError::LeaseNotFound));
    assert_eq!(s.revision(), 1);
    assert_eq!(get(&s, key("a")), Ok(vec![]));
}

#[test]
fn ignore_value_needs_an_existing_key() {
    let mut s = Store::new();
    let c = Command::Put(
        PbPutRequest {
            key: "k".into(),
            ignore_value: true,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    assert_eq!(s.apply(&c).error, Some(MvccError::KeyNotFound));
    put(&mut s, "k", "keep");
    assert_eq!(s.apply(&c).error, None);
    assert_eq!(get(&s, key("k")), Ok(vec![kv("k", "keep")]));
}

#[test]
fn revoking_a_lease_deletes_its_keys_in_one_revision() {
    let mut s = Store::new();
    assert_eq!(s.apply(&Command::LeaseGrant { id: 7, ttl: 10 }).error, None);
    assert_eq!(
        s.apply(&Command::LeaseGrant { id: 7, ttl: 10 }).error,
        Some(MvccError::LeaseExists)
    );
    for k in ["a", "b"] {
        let c = Command::Put(
            PbPutRequest {
                key: k.into(),
                lease: 7,
                ..Default::default()
            }
            .encode_to_vec(),
        );
        assert_eq!(s.apply(&c).error, None);
    }
    let info = s.lease_info(7).expect("lease");
    assert_eq!((info.granted_ttl, info.keys.len()), (10, 2));
    let r = s.apply(&Command::LeaseRevoke { id: 7 });
    assert_eq!((r.error, r.revision), (None, 4));
    assert_eq!(get(&s, prefix("")).map(|v| v.len()), Ok(0));
    assert_eq!(
        s.apply(&Command::LeaseRevoke { id: 7 }).error,
        Some(MvccError::LeaseNotFound)
    );
}

#[test]
fn watch_replays_history_then_streams_live_events_without_gaps() {
    let mut s = Store::new();
    put(&mut s, "w/a", "1"); // 2
    put(&mut s, "other", "x"); // 3
    put(&mut s, "w/a", "2"); // 4
    let spec = WatchSpec {
        key: b"w/".to_vec(),
        range_end: b"w0".to_vec(),
        prev_kv: true,
        ..Default::default()
    };
    let WatchStart::Watching(id, mut feed) = s.watch(spec, 2) else {
        panic!("watch refused")
    };
    del(&mut s, "w/a", ""); // 5
    put(&mut s, "w/b", "3"); // 6
    let mut seen = Vec::new();
    for b in drain(&mut s, id, &mut feed) {
        for e in b.events {
            let kv = e.kv.expect("kv");
            seen.push((
                b.revision,
                e.r#type,
                kv.mod_revision,
                e.prev_kv.map(|p| p.value),
            ));
        }
    }
    assert_eq!(
        seen,
        vec![
            (2, 0, 2, None),
            (4, 0, 4, Some(b"1".to_vec())),
            (5, 1, 5, Some(b"2".to_vec())),
            (6, 0, 6, None),
        ]
    );
}

/// What a watch stream does: take the queued live batches, then whatever catching up yields.
fn drain(s: &mut Store, id: WatchId, feed: &mut WatchFeed) -> Vec<WatchBatch> {
    let mut out = Vec::new();
    while let Ok(b) = feed.rx.try_recv() {
        out.push(b);
    }
    match s.catch_up(id) {
        CatchUp::Batches(b) => out.extend(b),
        CatchUp::Compacted(rev) => panic!("compacted at {rev}"),
        CatchUp::Failed(e) => panic!("history unreadable: {e}"),
    }
    out
}

#[test]
fn a_watch_from_a_future_revision_gets_nothing_below_it() {
    // A member behind the cluster applies old revisions after a client (resuming from what another
    // member showed it) asked to start above them.
    let mut s = Store::new();
    put(&mut s, "k", "0"); // 2
    let spec = WatchSpec {
        key: b"k".to_vec(),
        ..Default::default()
    };
    let WatchStart::Watching(id, mut feed) = s.watch(spec, 5) else {
        panic!("watch refused")
    };
    for i in 0..5 {
        put(&mut s, "k", &i.to_string()); // 3..=7
    }
    let revs: Vec<i64> = drain(&mut s, id, &mut feed)
        .iter()
        .map(|b| b.revision)
        .collect();
    assert_eq!(revs, vec![5, 6, 7]);
}

#[test]
fn a_snapshot_replacing_the_state_hands_watchers_what_they_missed_or_cancels_them() {
    // A member far behind installs the leader's snapshot instead of applying the entries one by one:
    // its watchers must still see every revision from where they were, or be told it was compacted.
    let spec = || WatchSpec {
        key: b"k".to_vec(),
        ..Default::default()
    };
    let mut leader = Store::new();
    for i in 0..6 {
        put(&mut leader, "k", &i.to_string()); // 2..=7
    }
    let mut member = Store::new();
    put(&mut member, "k", "0"); // 2, as on the leader
    let WatchStart::Watching(live, mut live_feed) = member.watch(spec(), 0) else {
        panic!("watch refused")
    };
    let WatchStart::Watching(ahead, mut ahead_feed) = member.watch(spec(), 5) else {
        panic!("watch refused")
    };
    leader.copy_into(&mut member).expect("restore");
    let revs = |b: Vec<WatchBatch>| b.iter().map(|b| b.revision).collect::<Vec<i64>>();
    assert_eq!(
        revs(drain(&mut member, live, &mut live_feed)),
        vec![3, 4, 5, 6, 7]
    );
    assert_eq!(
        revs(drain(&mut member, ahead, &mut ahead_feed)),
        vec![5, 6, 7]
    );
    put(&mut member, "k", "live"); // 8
    assert_eq!(revs(drain(&mut member, live, &mut live_feed)), vec![8]);

    // The same when the leader compacted what the watcher had not seen yet: canceled, not skipped.
    let WatchStart::Watching(old, _old_feed) = member.watch(spec(), 0) else {
        panic!("watch refused")
    };
    for i in 0..3 {
        put(&mut leader, "k", &i.to_string()); // 8..=10
    }
    leader.apply(&Command::Compact(
        PbCompactionRequest {
            revision: 10,
            physical: false,
        }
        .encode_to_vec(),
    ));
    leader.copy_into(&mut member).expect("restore");
    assert!(matches!(member.catch_up(old), CatchUp::Compacted(10)));
}

#[test]
fn a_slow_watcher_falls_back_to_history_without_gaps_or_duplicates() {
    let mut s = Store::new();
    let spec = WatchSpec {
        key: b"k".to_vec(),
        ..Default::default()
    };
    let WatchStart::Watching(id, mut feed) = s.watch(spec, 0) else {
        panic!("watch refused")
    };
    // Far more revisions than the buffer holds, with nobody reading: apply must not block.
    for i in 0..1000 {
        put(&mut s, "k", &i.to_string());
    }
    assert!(feed.rx.len() < 1000, "the buffer is bounded");
    let mut revs: Vec<i64> = drain(&mut s, id, &mut feed)
        .iter()
        .map(|b| b.revision)
        .collect();
    // Caught up: the next change arrives live again.
    put(&mut s, "k", "live");
    revs.extend(drain(&mut s, id, &mut feed).iter().map(|b| b.revision));
    assert_eq!(revs, (2..=1002).collect::<Vec<i64>>());
}

/// A store with a watcher on "k" from now, then 400 puts of "k": more revisions than the watcher's
/// buffer, as one long apply would hand it.
fn watched_through_400_revisions() -> (Store, WatchId, WatchFeed) {
    let mut s = Store::new();
    let WatchStart::Watching(id, feed) = s.watch(
        WatchSpec {
            key: b"k".to_vec(),
            ..Default::default()
        },
        0,
    ) else {
        panic!("watch refused")
    };
    for i in 0..400 {
        put(&mut s, "k", &i.to_string());
    }
    (s, id, feed)
}

fn compact_to(revision: i64) -> Command {
    Command::Compact(
        PbCompactionRequest {
            revision,
            physical: false,
        }
        .encode_to_vec(),
    )
}

#[test]
fn a_lagging_watcher_whose_history_was_compacted_is_canceled() {
    let (mut s, id, _feed) = watched_through_400_revisions();
    s.apply(&compact_to(400));
    assert!(matches!(s.catch_up(id), CatchUp::Compacted(400)));
    assert_eq!(s.watcher_count(), 0);
}

#[test]
fn a_compaction_says_which_watchers_it_would_strand_until_they_catch_up() {
    let (mut s, id, mut feed) = watched_through_400_revisions();
    let compact = compact_to;
    let in_batch = Command::Batch(vec![put_cmd("other", "v"), compact(400)]);
    let before = s
        .stranded_by(&compact(400))
        .expect("the watcher is behind 400");
    assert!(
        s.stranded_by(&in_batch).is_some(),
        "a compaction inside a batch"
    );
    assert!(
        s.stranded_by(&put_cmd("k", "v")).is_none(),
        "a put strands nobody"
    );
    // Draining the buffer is progress the state machine can see.
    feed.rx.try_recv().expect("a queued batch");
    assert_ne!(s.stranded_by(&compact(400)), Some(before));
    let got = drain(&mut s, id, &mut feed);
    assert_eq!(got.len(), 399, "every revision but the one taken above");
    assert!(s.stranded_by(&compact(400)).is_none());
    s.apply(&compact(400));
    assert_eq!(s.watcher_count(), 1, "the caught-up watcher stays");
}

#[test]
fn watch_from_compacted_revision_is_refused() {
    let mut s = Store::new();
    put(&mut s, "a", "1");
    put(&mut s, "a", "2");
    s.apply(&Command::Compact(
        PbCompactionRequest {
            revision: 3,
            physical: false,
        }
        .encode_to_vec(),
    ));
    assert!(matches!(
        s.watch(
            WatchSpec {
                key: b"a".to_vec(),
                ..Default::default()
            },
            2
        ),
        WatchStart::Compacted(3)
    ));
}

#[test]
fn values_read_back_through_the_value_file_a_compaction_rewrite_and_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Store::in_dir(dir.path().to_path_buf());
    // 4 KiB values: the file takes most of them, the in-memory tail the last few.
    let value = |k: usize, round: usize| format!("{k:03}-{round}-{}", "x".repeat(4096));
    for round in 0..5 {
        for k in 0..100 {
            put(&mut s, &format!("k{k:03}"), &value(k, round));
        }
    }
    // Revision 2 is the first put (k000, round 0); each round is 100 revisions.
    let at = |rev: i64| PbRangeRequest {
        revision: rev,
        ..key("k042")
    };
    assert_eq!(get(&s, at(2 + 42)), Ok(vec![kv("k042", &value(42, 0))]));
    assert_eq!(get(&s, at(2 + 342)), Ok(vec![kv("k042", &value(42, 3))]));
    let sorted = get(
        &s,
        PbRangeRequest {
            sort_target: 4,
            sort_order: 2,
            limit: 2,
            ..prefix("k")
        },
    );
    assert_eq!(
        sorted,
        Ok(vec![kv("k099", &value(99, 4)), kv("k098", &value(98, 4))])
    );
    let hash = s.hash_kv(0).expect("hash");
    assert!(s.value_bytes() > 5 * 100 * 4096);
    // Keep only the last round: four fifths of the file is garbage, so it is rewritten.
    let compact = PbCompactionRequest {
        revision: 2 + 400,
        ..Default::default()
    };
    s.apply(&Command::Compact(compact.encode_to_vec()));
    // The rewrite copies off the apply path; writes and reads go on meanwhile, from the old file.
    put(&mut s, "k100", "written during the rewrite");
    assert_eq!(get(&s, key("k042")), Ok(vec![kv("k042", &value(42, 4))]));
    s.finish_value_rewrite();
    assert_eq!(
        get(&s, key("k100")),
        Ok(vec![kv("k100", "written during the rewrite")])
    );
    assert!(
        s.value_bytes() < 2 * 100 * 4096,
        "rewritten to the live values"
    );
    assert_eq!(get(&s, key("k042")), Ok(vec![kv("k042", &value(42, 4))]));
    assert_eq!(get(&s, at(2 + 342)), Err(MvccError::Compacted));
    let mut t = Store::in_dir(dir.path().to_path_buf());
    s.copy_into(&mut t).expect("restore");
    assert_eq!(t.hash_kv(0), s.hash_kv(0));
    assert_ne!(t.hash_kv(0), Ok(hash));
    assert_eq!(get(&t, key("k007")), Ok(vec![kv("k007", &value(7, 4))]));
    assert_eq!(s.failure(), None);
}

#[test]
fn snapshot_round_trip_keeps_history_leases_and_hash() {
    let mut s = Store::new();
    s.apply(&Command::LeaseGrant { id: 9, ttl: 30 });
    put(&mut s, "a", "1");
    put(&mut s, "a", "2");
    let mut t = Store::new();
    s.copy_into(&mut t).expect("restore");
    assert_eq!(t.revision(), s.revision());
    assert_eq!(
        get(
            &t,
            PbRangeRequest {
                revision: 2,
                ..key("a")
            }
        ),
        Ok(vec![kv("a", "1")])
    );
    assert_eq!(t.lease_ids(), vec![9]);
    assert_eq!(t.hash_kv(0), s.hash_kv(0));
    put(&mut t, "a", "3");
    assert_ne!(t.hash_kv(0).map(|h| h.0), s.hash_kv(0).map(|h| h.0));
    let garbage = Sections {
        values_len: 0,
        index_len: 14,
        index_crc: crc32fast::hash(b"not a snapshot"),
        values_crc: 0,
    };
    let mut f = tempfile::tempfile().expect("temp file");
    std::io::Write::write_all(&mut f, b"not a snapshot").expect("write");
    assert!(t
        .restore_from(Arc::new(f), std::path::Path::new("garbage"), &garbage)
        .is_err());
}

#[test]
fn snapshot_round_trip_keeps_users_roles_and_the_auth_flag() {
    use auth::{AuthCommand as A, ROOT};
    let mut s = Store::new();
    for c in [
        A::UserAdd {
            name: ROOT.into(),
            password_hash: Some("$2b$10$hash".into()),
        },
        A::UserGrantRole {
            user: ROOT.into(),
            role: ROOT.into(),
        },
        A::RoleAdd { name: "r".into() },
        A::Enable,
    ] {
        let r = s.apply(&Command::Auth(c));
        assert_eq!(r.error, None);
    }
    // Auth changes are not key-value writes: the revision stays.
    assert_eq!(s.revision(), 1);
    let mut t = Store::new();
    s.copy_into(&mut t).expect("restore");
    assert_eq!(t.auth(), s.auth());
    assert!(t.auth().enabled && t.auth().is_root(ROOT));
}

mod authorize;
mod batch;

/// A retained version as (key, revision, version, value, tombstone).
type Flat = (Vec<u8>, i64, i64, Vec<u8>, bool);

/// Every retained version as etcd's backend would list it.
fn records(s: &Store) -> Vec<Flat> {
    let mut out = Vec::new();
    s.for_each_record::<MvccError>(|r| {
        out.push((
            r.key.to_vec(),
            r.main,
            r.version,
            r.value.to_vec(),
            r.tombstone,
        ));
        Ok(())
    })
    .expect("records");
    out
}

/// `a` and `b` report the same replicated state: hashes, records, reads, and a snapshot of each.
fn assert_same_state(a: &Store, b: &Store) {
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.hash_kv(0), b.hash_kv(0));
    assert_eq!(records(a), records(b));
    assert_eq!(get(a, prefix("k")), get(b, prefix("k")));
    assert_eq!(a.key_count(), b.key_count());
    let (mut ca, mut cb) = (Store::new(), Store::new());
    a.copy_into(&mut ca).expect("snapshot of a");
    b.copy_into(&mut cb).expect("snapshot of b");
    assert!(!ca.compacting(), "a snapshot holds a finished compaction");
    assert_eq!(records(&ca), records(b));
    assert_eq!(ca.hash(), cb.hash());
}

/// Apply `cmd` to every store.
fn apply_all(stores: &mut [&mut Store], cmd: &Command) {
    for s in stores.iter_mut() {
        s.apply(cmd);
    }
}

#[test]
fn a_compaction_carried_out_in_slices_reports_the_state_of_one_done_at_once() {
    let (mut sliced, mut at_once) = (Store::new(), Store::new());
    let mut both = [&mut sliced, &mut at_once];
    for round in 0..3 {
        for k in 0..1000 {
            apply_all(
                &mut both,
                &put_cmd(&format!("k{k:04}"), &format!("{round}")),
            );
        }
    }
    let delete = |k: &str, end: &str| {
        Command::DeleteRange(
            PbDeleteRequest {
                key: k.into(),
                range_end: end.into(),
                prev_kv: false,
            }
            .encode_to_vec(),
        )
    };
    apply_all(&mut both, &delete("k0100", "k0200"));
    let middle = 2 + 1500;
    apply_all(&mut both, &compact_to(middle));
    at_once.finish_walk();
    let step = sliced.walk_step(std::time::Duration::ZERO);
    assert!(!step.done && step.keys > 0 && step.keys < 1000, "{step:?}");
    assert!(sliced.compacting());
    assert_same_state(&sliced, &at_once);
    assert_eq!(
        get(
            &sliced,
            PbRangeRequest {
                revision: middle - 1,
                ..key("k0001")
            }
        ),
        Err(MvccError::Compacted)
    );
    let at = |rev| PbRangeRequest {
        revision: rev,
        ..prefix("k")
    };
    assert_eq!(get(&sliced, at(middle)), get(&at_once, at(middle)));
    // Writes between slices, to keys a slice has passed and keys it has not reached, and a second
    // compaction before the first is done (it starts over at its own revision).
    let mut both = [&mut sliced, &mut at_once];
    apply_all(&mut both, &put_cmd("k0000", "after"));
    apply_all(&mut both, &put_cmd("k0999", "after"));
    apply_all(&mut both, &delete("k0500", ""));
    assert_same_state(&sliced, &at_once);
    let later = middle + 1000;
    let mut both = [&mut sliced, &mut at_once];
    apply_all(&mut both, &compact_to(later));
    at_once.finish_walk();
    let mut slices = 0;
    while !sliced.walk_step(std::time::Duration::ZERO).done {
        slices += 1;
        assert_same_state(&sliced, &at_once);
    }
    assert!(slices >= 3, "{slices} slices");
    assert!(!sliced.compacting());
    assert_same_state(&sliced, &at_once);
    assert_eq!(get(&sliced, key("k0150")), Ok(vec![]));
    assert_eq!(get(&sliced, key("k0999")), Ok(vec![kv("k0999", "after")]));
}

/// The value of key `k` written in `round`, 1 KiB and more.
fn value(k: usize, round: usize) -> String {
    format!("{k:04}-{round}-{}", "x".repeat(1024))
}

/// A store in `dir` whose keys k0000..k0599 were each put four times ([`value`]): 2.4 MB of values,
/// a quarter of them live at the current revision.
fn four_rounds_of_600_keys(dir: &std::path::Path) -> Store {
    let mut s = Store::in_dir(dir.to_path_buf());
    for round in 0..4 {
        for k in 0..600 {
            put(&mut s, &format!("k{k:04}"), &value(k, round));
        }
    }
    s
}

#[test]
fn the_value_file_rewrite_after_a_sliced_compaction_keeps_the_values_written_between_slices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = four_rounds_of_600_keys(dir.path());
    let before = s.value_bytes();
    // Keep only the last round.
    s.apply(&compact_to(s.revision()));
    let mut slices = 0;
    while !s.walk_step(std::time::Duration::ZERO).done {
        slices += 1;
        // One key the slices have passed, one they have not reached yet.
        put(&mut s, "k0000", &value(0, 10 + slices));
        put(&mut s, "k0599", &value(599, 10 + slices));
    }
    assert!(slices >= 2, "{slices} slices");
    assert!(
        s.value_rewrite_running(),
        "three quarters of the file is garbage: {} live of {}",
        s.live_value_bytes(),
        s.value_bytes()
    );
    put(&mut s, "k0300", &value(300, 99));
    s.finish_value_rewrite();
    assert!(!s.value_rewrite_running());
    assert!(
        s.value_bytes() < before / 2,
        "rewritten: {} of {before} bytes",
        s.value_bytes()
    );
    assert_eq!(
        get(&s, key("k0000")),
        Ok(vec![kv("k0000", &value(0, 10 + slices))])
    );
    assert_eq!(
        get(&s, key("k0599")),
        Ok(vec![kv("k0599", &value(599, 10 + slices))])
    );
    assert_eq!(
        get(&s, key("k0300")),
        Ok(vec![kv("k0300", &value(300, 99))])
    );
    assert_eq!(get(&s, key("k0042")), Ok(vec![kv("k0042", &value(42, 3))]));
    let mut t = Store::in_dir(dir.path().to_path_buf());
    s.copy_into(&mut t).expect("restore");
    assert_eq!(t.hash_kv(0), s.hash_kv(0));
    assert_eq!(s.failure(), None);
}

#[test]
fn references_are_repointed_into_a_rewritten_value_file_a_slice_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = four_rounds_of_600_keys(dir.path());
    s.apply(&compact_to(s.revision()));
    s.finish_walk();
    assert!(s.value_rewrite_running());
    let (hash, records_before) = (s.hash(), records(&s));
    let waited = std::time::Instant::now();
    while !s.walk_pending() {
        assert!(waited.elapsed().as_secs() < 30, "the rewrite's copy ends");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // The first step swaps the file in and repoints a slice; the rest still point into the old
    // file's offsets and are translated when read, by reads, hashes and snapshots alike.
    let step = s.walk_step(std::time::Duration::ZERO);
    assert!(!step.done, "{step:?}");
    assert!(!s.value_rewrite_running());
    assert_eq!(s.hash(), hash);
    assert_eq!(records(&s), records_before);
    let mut t = Store::in_dir(dir.path().to_path_buf());
    s.copy_into(&mut t).expect("a snapshot while repointing");
    assert_eq!(records(&t), records_before);
    put(&mut s, "k0599", "written while repointing");
    // A compaction before the repointing is done takes it over.
    s.apply(&compact_to(s.revision()));
    let mut slices = 0;
    while !s.walk_step(std::time::Duration::ZERO).done {
        slices += 1;
        assert_eq!(
            get(&s, key("k0599")),
            Ok(vec![kv("k0599", "written while repointing")])
        );
    }
    assert!(slices >= 1, "{slices} slices");
    assert!(!s.walk_pending());
    assert_eq!(get(&s, key("k0001")), Ok(vec![kv("k0001", &value(1, 3))]));
    assert_eq!(get(&s, key("k0598")), Ok(vec![kv("k0598", &value(598, 3))]));
    assert_eq!(s.failure(), None);
}
