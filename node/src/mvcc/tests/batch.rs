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

/// Same keys with history, same leases, same watch events seen by each store's watcher.
fn assert_same_store(
    a: (&mut Store, WatchId, &mut WatchFeed),
    b: (&mut Store, WatchId, &mut WatchFeed),
) {
    assert_eq!(a.0.hash_kv(0), b.0.hash_kv(0));
    assert_eq!(a.0.lease_ids(), b.0.lease_ids());
    assert_eq!(drain(a.0, a.1, a.2), drain(b.0, b.1, b.2));
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
    assert_same_store(
        (&mut batched, id2, &mut feed2),
        (&mut one_by_one, id1, &mut feed1),
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

#[test]
fn a_forwarded_batch_nested_in_the_leaders_applies_like_the_flat_sequence() {
    // The leader's batch: two of its own commands, a follower's forwarded batch, then its own again.
    let cmds = mixed_commands();
    let (own_before, rest) = cmds.split_at(3);
    let (forwarded, own_after) = rest.split_at(6);
    let mut nested_cmds = own_before.to_vec();
    nested_cmds.push(Command::Batch(forwarded.to_vec()));
    nested_cmds.extend_from_slice(own_after);

    let mut flat = Store::new();
    let (id1, mut feed1) = watch_all(&mut flat);
    let separate: Vec<CommandResponse> = cmds.iter().map(|c| flat.apply(c)).collect();

    let mut nested = Store::new();
    let (id2, mut feed2) = watch_all(&mut nested);
    let out = nested.apply(&Command::Batch(nested_cmds));

    // The outer batch answers per item; the forwarded item answers per command of its own batch,
    // which is what the follower hands back to each of its callers.
    assert_eq!(out.batch.len(), own_before.len() + 1 + own_after.len());
    let inner = &out.batch[own_before.len()];
    assert_eq!(inner.batch.len(), forwarded.len());
    let mut unnested: Vec<CommandResponse> = out.batch[..own_before.len()].to_vec();
    unnested.extend(inner.batch.iter().cloned());
    unnested.extend(out.batch[own_before.len() + 1..].iter().cloned());
    assert_eq!(unnested, separate, "responses and revisions");
    assert_eq!(
        inner.revision,
        separate[own_before.len() + forwarded.len() - 1].revision,
        "the forwarded batch's own revision is that of its last command"
    );
    assert_eq!(out.revision, flat.revision());
    assert_same_store((&mut nested, id2, &mut feed2), (&mut flat, id1, &mut feed1));
}
