//! In-process members over loopback: concurrent writes share Raft entries yet each gets its own
//! revision and response; auto compaction drops history on its own.

use std::time::Duration;

use etcd_client::proto::{PbPutResponse, PbRangeRequest};
use prost::Message;
use tokio::net::TcpListener;

use crate::{put, start, until, Member};
use cairn_node::mvcc::Command;
use cairn_node::mvcc::MvccError;

async fn cluster(n: usize, dir: &std::path::Path, extra: &[String]) -> Vec<Member> {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let urls: Vec<String> = listeners
        .iter()
        .map(|l| format!("http://{}", l.local_addr().expect("addr")))
        .collect();
    let initial: Vec<String> = (0..n).map(|i| format!("m{i}={}", urls[i])).collect();
    let mut members = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let name = format!("m{i}");
        members.push(start(&name, &initial.join(","), &urls[i], dir, l, extra).await);
    }
    members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_entries_but_keep_their_own_revisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let members = cluster(3, dir.path(), &[]).await;
    let leader = until("a leader", Duration::from_secs(5), || {
        members[0].app.status().leader
    })
    .await;
    until("attributes published", Duration::from_secs(5), || {
        members[0]
            .app
            .members()
            .iter()
            .all(|m| !m.name.is_empty())
            .then_some(())
    })
    .await;
    let batches = cairn_node::metrics::PROPOSAL_BATCHES.get();
    let batched = cairn_node::metrics::PROPOSAL_BATCHED.get();
    let entries_before = members[0].app.status().raft_index;

    // 300 writers at once, through the leader and both followers.
    let mut tasks = Vec::new();
    for i in 0..300 {
        let app = members[i % 3].app.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("k{i}");
            let r = app.propose(put(&key)).await.expect("put commits");
            assert_eq!(r.error, None);
            PbPutResponse::decode(r.body.as_slice()).expect("a put response");
            (key, r.revision, app)
        }));
    }
    let mut revisions = Vec::new();
    for t in tasks {
        let (key, rev, app) = t.await.expect("task");
        // Applied on the member that answered: its own read sees the write at that revision.
        let store = app.store().read();
        let got = store
            .range(&PbRangeRequest {
                key: key.into_bytes(),
                ..Default::default()
            })
            .expect("range");
        assert_eq!(got.kvs.len(), 1);
        assert_eq!(got.kvs[0].mod_revision, rev);
        revisions.push(rev);
    }
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(
        revisions.len(),
        300,
        "every write has a revision of its own"
    );
    let entries = members[0].app.status().raft_index - entries_before;
    assert!(
        entries < 300,
        "300 writes took {entries} Raft entries: nothing was batched"
    );
    // Process-wide counters (other tests may add to both): the surplus of commands over entries
    // comes from batching.
    let b = cairn_node::metrics::PROPOSAL_BATCHES.get() - batches;
    let c = cairn_node::metrics::PROPOSAL_BATCHED.get() - batched;
    assert!(c > b, "batcher counted {b} entries for {c} commands");
    assert!(members.iter().any(|m| m.app.member_id() == leader));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn periodic_auto_compaction_drops_old_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = ["--auto-compaction-retention=1s".to_string()];
    let members = cluster(1, dir.path(), &extra).await;
    let app = members[0].app.clone();
    until("a leader", Duration::from_secs(5), || app.status().leader).await;
    // Keep writing; one second after start the revision of about then is compacted, and again
    // every second after.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let compacted = loop {
        app.propose(put("busy")).await.expect("put commits");
        let c = app.store().read().compact_revision();
        if c > 1 {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no automatic compaction within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let old = app.store().read().range(&PbRangeRequest {
        key: b"busy".to_vec(),
        revision: compacted - 1,
        ..Default::default()
    });
    assert_eq!(old.err(), Some(MvccError::Compacted));
    // A client compaction to an older revision is now refused, as in etcd.
    let r = app
        .propose(Command::Compact(
            etcd_client::proto::PbCompactionRequest {
                revision: 1,
                physical: false,
            }
            .encode_to_vec(),
        ))
        .await
        .expect("committed");
    assert_eq!(r.error, Some(MvccError::Compacted));
}
