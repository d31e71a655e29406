//! A batch of commands (one Raft entry) must be indistinguishable from the same commands as entries of
//! their own: same revisions, same responses and errors, same state, same watch events.

use super::*;

fn put_with_lease(k: &str, lease: i64) -> Command {
    Command::Put(
        PbPutRequest {
            key: k.into(),
            value: b"leased".to_vec(),
            lease,
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

/// Puts, a put refused for a missing lease, txns whose compares depend on the writes before them in the
/// same batch, a delete, a compaction and lease grant/revoke.
fn mixed_commands() -> Vec<Command> {
    vec![
        put_cmd("a", "1"),
        put_with_lease("b", 42), // refused: lease 42 does not exist yet
        Command::LeaseGrant { id: 42, ttl: 10 },
        put_with_lease("b", 42),
        put_cmd("a", "2"),
        // a was written at revision 2, then again: a compare on its version sees the batch's writes.
        txn(
            vec![cmp("a", 0, 0, PbTargetUnion::Version(2))],
            vec![op_put("c", "yes")],
            vec![op_put("c", "no")],
        ),
        txn(
            vec![cmp("a", 0, 2, PbTargetUnion::ModRevision(2))],
            vec![op_put("d", "stale")],
            vec![op_put("d", "fresh")],
        ),
        Command::DeleteRange(
            PbDeleteRequest {
                key: "c".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        Command::Compact(
            PbCompactionRequest {
                revision: 3,
                physical: false,
            }
            .encode_to_vec(),
        ),
        Command::Compact(
            PbCompactionRequest {
                revision: 2,
                physical: false,
            }
            .encode_to_vec(),
        ),
        Command::LeaseRevoke { id: 42 },
        Command::LeaseRevoke { id: 42 }, // refused: already revoked
    ]
}

fn watch_all(s: &mut Store) -> (WatchId, WatchFeed) {
    let spec = WatchSpec {
        key: vec![0],
        range_end: vec![0],
        prev_kv: true,
        ..Default::default()
    };
    match s.watch(spec, 0) {
        WatchStart::Watching(id, feed) => (id, feed),
        _ => panic!("watch refused"),
    }
}

#[test]
fn a_batch_applies_exactly_like_separate_entries() {
    let cmds = mixed_commands();
    let mut one_by_one = Store::new();
    let (id1, mut feed1) = watch_all(&mut one_by_one);
    let separate: Vec<CommandResponse> = cmds.iter().map(|c| one_by_one.apply(c)).collect();

    let mut batched = Store::new();
    let (id2, mut feed2) = watch_all(&mut batched);
    let out = batched.apply(&Command::Batch(cmds.clone()));

    assert_eq!(out.batch, separate);
    assert_eq!(out.revision, one_by_one.revision());
    assert_eq!(batched.hash_kv(0), one_by_one.hash_kv(0));
    assert_eq!(batched.lease_ids(), one_by_one.lease_ids());
    assert_eq!(
        drain(&mut batched, id2, &mut feed2),
        drain(&mut one_by_one, id1, &mut feed1)
    );

    // Each write got a revision of its own; the refusals are reported per command.
    let revisions: Vec<i64> = out.batch.iter().map(|r| r.revision).collect();
    assert_eq!(revisions, vec![2, 2, 2, 3, 4, 5, 6, 7, 7, 7, 8, 8]);
    assert_eq!(out.batch[1].error, Some(MvccError::LeaseNotFound));
    assert_eq!(out.batch[9].error, Some(MvccError::Compacted));
    assert_eq!(out.batch[11].error, Some(MvccError::LeaseNotFound));
    let d = PbTxnResponse::decode(out.batch[6].body.as_slice()).expect("txn response");
    assert!(
        !d.succeeded,
        "the compare saw a's second write from the same batch"
    );
    assert_eq!(get(&batched, key("d")), Ok(vec![kv("d", "fresh")]));
    assert_eq!(
        get(&batched, key("b")),
        Ok(vec![]),
        "revoking the lease deleted b"
    );
}
