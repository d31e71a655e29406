//! Growing and shrinking a running cluster: member add + join with `existing`, learner promote, and
//! removing the leader, with writes continuing.

use std::time::Duration;

use crate::{listeners, put, start, until, Member};
use cairn_node::member::MemberError;

/// Wait until `m` sees `n` members that have published their names (i.e. started).
async fn until_published(m: &Member, n: usize) {
    until("members published", Duration::from_secs(5), || {
        let named = m
            .app
            .members()
            .iter()
            .filter(|x| !x.name.is_empty())
            .count();
        (named == n).then_some(())
    })
    .await;
}

fn revision(m: &Member) -> i64 {
    m.app.store().read().revision()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_join_promote_and_remove_the_leader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut listeners, urls, initial) = listeners("http", "g", 5).await;
    let mut members = Vec::new();
    let mut rest = listeners.split_off(3);
    for (i, l) in listeners.into_iter().enumerate() {
        members.push(start(&format!("g{i}"), &initial, &urls[i], dir.path(), l, &[]).await);
    }
    until("a leader", Duration::from_secs(5), || {
        members[0].app.status().leader
    })
    .await;
    until_published(&members[0], 3).await;
    for i in 0..30 {
        members[1]
            .app
            .propose(put(&format!("a{i}")))
            .await
            .expect("write");
    }

    // Add g3 as a voter through a follower, then start it with `existing`.
    let follower = members
        .iter()
        .find(|m| !m.app.is_leader())
        .expect("follower");
    let g3 = follower
        .app
        .add_member(vec![urls[3].clone()], false)
        .await
        .expect("member add");
    assert!(follower
        .app
        .members()
        .iter()
        .any(|m| m.id == g3 && !m.is_learner));
    let dup = follower.app.add_member(vec![urls[3].clone()], false).await;
    // Refused on the leader, the reason reaches the follower typed.
    assert_eq!(dup, Err(MemberError::PeerUrlExists));
    let grown = format!("{initial},g3={}", urls[3]);
    let existing = ["--initial-cluster-state=existing".to_string()];
    let l3 = rest.remove(0);
    members.push(start("g3", &grown, &urls[3], dir.path(), l3, &existing).await);
    assert_eq!(
        members[3].app.member_id(),
        g3,
        "the joiner found the ID the leader gave it"
    );
    let want = revision(&members[0]);
    until(
        "g3 catches up (via snapshot: log purged)",
        Duration::from_secs(10),
        || (revision(&members[3]) >= want).then_some(()),
    )
    .await;

    // Add g4 as a learner; promote it once in sync.
    let g4 = members[0]
        .app
        .add_member(vec![urls[4].clone()], true)
        .await
        .expect("learner add");
    let l4 = rest.remove(0);
    let full = format!("{grown},g4={}", urls[4]);
    members.push(start("g4", &full, &urls[4], dir.path(), l4, &existing).await);
    let mut promoted = Err(MemberError::NoLeader);
    for _ in 0..100 {
        promoted = members[0].app.promote_member(g4).await;
        if promoted.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    promoted.expect("learner promoted once in sync");

    // Hand leadership to another voter, as `etcdctl move-leader` does.
    let from = members[0].app.status().leader.expect("leader");
    let to = members
        .iter()
        .map(|m| m.app.member_id())
        .find(|id| *id != from && *id != g4)
        .expect("to");
    let current = members
        .iter()
        .find(|m| m.app.member_id() == from)
        .expect("current leader");
    let not_leader = members
        .iter()
        .find(|m| m.app.member_id() == to)
        .expect("target");
    assert!(matches!(
        not_leader.app.move_leader(from).await,
        Err(MemberError::NotLeader)
    ));
    current.app.move_leader(to).await.expect("leadership moved");
    assert_eq!(not_leader.app.status().leader, Some(to));
    members[1]
        .app
        .propose(put("after-move"))
        .await
        .expect("write after the move");

    // Remove the leader once every member has started (etcd refuses while that would risk quorum).
    until_published(&members[0], 5).await;
    let leader = members[0].app.status().leader.expect("leader");
    let doomed = members
        .iter()
        .find(|m| m.app.member_id() == leader)
        .expect("leader")
        .app
        .clone();
    let watch_removed = tokio::spawn(async move { doomed.removed().await });
    // Let the watcher see the member in the membership before it is removed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let other = members
        .iter()
        .find(|m| m.app.member_id() != leader)
        .expect("other");
    other
        .app
        .remove_member(leader)
        .await
        .expect("remove leader");
    tokio::time::timeout(Duration::from_secs(5), watch_removed)
        .await
        .expect("the removed member learns it was removed (and would exit)")
        .expect("watcher task");
    let survivor = members
        .iter()
        .find(|m| m.app.member_id() != leader)
        .expect("survivor");
    until("a new leader", Duration::from_secs(5), || {
        survivor.app.status().leader.filter(|l| *l != leader)
    })
    .await;
    survivor
        .app
        .propose(put("after-remove"))
        .await
        .expect("write after removing the leader");
    assert_eq!(survivor.app.members().len(), 4);
    for m in &members {
        let _ = m.stop.send(true);
        m.app.shutdown().await;
    }
}
