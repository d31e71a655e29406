//! Leadership transfer (etcd MoveLeader). openraft 0.9 has no transfer API, so the leader stops its
//! heartbeats, asks the target to campaign once the voters' leader lease has run out, and waits for it
//! to win; the target is chosen only when its log is caught up, so it wins the vote.

use std::time::Duration;

use crate::member::{App, MemberError};
use crate::raft::types::NodeId;

impl App {
    /// Hand leadership to voter `target` (etcd: "etcdserver: not leader" unless called on the leader).
    pub async fn move_leader(&self, target: NodeId) -> Result<(), MemberError> {
        if !self.is_leader() {
            return Err(MemberError::NotLeader);
        }
        if target == self.inner.id {
            return Ok(());
        }
        let raft = &self.inner.raft;
        let is_voter = {
            let m = raft.metrics();
            let m = m.borrow();
            let voter = m
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == target);
            voter
        };
        let node = self.node(target).filter(|_| is_voter);
        let node = node.ok_or(MemberError::BadLeaderTransferee)?;
        // The target must hold every entry, or the other voters will not vote for it.
        let caught_up = raft
            .wait(Some(Duration::from_secs(2)))
            .metrics(
                |m| {
                    let matched = m
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(&target).cloned().flatten());
                    matched.map(|l| Some(l.index)) == Some(m.last_log_index)
                },
                "transferee caught up",
            )
            .await;
        if caught_up.is_err() {
            return Err(MemberError::Timeout);
        }
        let lease = raft.config().election_timeout_max + raft.config().heartbeat_interval;
        raft.runtime_config().heartbeat(false);
        let asked = async {
            let mut c = self
                .inner
                .peers
                .client(target, &node)
                .map_err(MemberError::other)?;
            let req = self
                .inner
                .peers
                .request(&lease)
                .map_err(MemberError::other)?;
            c.campaign(req)
                .await
                .map_err(|s| MemberError::Other(s.message().to_string()))
        };
        let res = match asked.await {
            Ok(_) => raft
                .wait(Some(Duration::from_millis(lease * 4 + 1000)))
                .metrics(|m| m.current_leader == Some(target), "transferee elected")
                .await
                .map(|_| ())
                .map_err(|_| MemberError::Timeout),
            Err(e) => Err(e),
        };
        // Whatever happened, a member that is (still or again) leader must keep its followers.
        raft.runtime_config().heartbeat(true);
        res
    }
}
