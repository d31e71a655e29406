//! Runtime membership changes (etcd's MemberAdd / MemberPromote / MemberRemove / MemberUpdate), run on
//! the leader with etcd's safety checks; a follower forwards them over the peer channel.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use crate::bootstrap::ids;
use crate::member::{App, MemberError};
use crate::raft::frames::Method;
use crate::raft::types::{NodeId, PeerNode, Raft};
use crate::storage::state_machine::Shared;

/// One membership change request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// Add a member by its peer URLs, as a voter or a learner.
    Add {
        peer_urls: Vec<String>,
        learner: bool,
    },
    /// Make a learner a voter.
    Promote { id: NodeId },
    /// Remove a member.
    Remove { id: NodeId },
    /// Replace a member's peer URLs.
    Update { id: NodeId, peer_urls: Vec<String> },
}

/// Reply to a forwarded change: the new member's ID (for Add) and the log index of the change.
pub type ChangeReply = Result<(Option<NodeId>, u64), MemberError>;

fn write_err(e: RaftError<NodeId, ClientWriteError<NodeId, PeerNode>>) -> MemberError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => MemberError::NotLeader,
        other => MemberError::raft(other),
    }
}

/// Run `change` on this member, which must be the leader.
pub async fn change_on_leader(raft: &Raft, shared: &Shared, change: MemberChange) -> ChangeReply {
    let m = raft.metrics().borrow().clone();
    if m.current_leader != Some(m.id) {
        return Err(MemberError::NotLeader);
    }
    let membership = m.membership_config.membership().clone();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
    let published: BTreeSet<NodeId> = shared.members.read().keys().copied().collect();
    let started = |set: &BTreeSet<NodeId>| set.iter().filter(|id| published.contains(id)).count();
    let quorum = |n: usize| n / 2 + 1;
    match change {
        MemberChange::Add { peer_urls, learner } => {
            if membership
                .nodes()
                .any(|(_, n)| n.peer_urls.iter().any(|u| peer_urls.contains(u)))
            {
                return Err(MemberError::PeerUrlExists);
            }
            // etcd (strict reconfig check, its default) refuses a voter unless every voter is up: a
            // voter added earlier that has not started yet would otherwise let the started members fall
            // short of the quorum one more addition needs.
            if !learner && started(&voters) < voters.len() {
                return Err(MemberError::Unhealthy);
            }
            let nonce = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let id = ids::member_id(&peer_urls, &format!("{:x}{nonce}", m.id));
            let node = PeerNode {
                name: String::new(),
                peer_urls,
            };
            let r = raft.add_learner(id, node, false).await.map_err(write_err)?;
            if learner {
                return Ok((Some(id), r.log_id.index));
            }
            let add = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
            // etcd commits an addition in the old configuration; openraft's joint consensus needs a
            // quorum of the new one too. When the started voters are short of that (etcd's exception
            // to its check above: a second member for a single-member cluster), the change can only
            // commit once the new member runs, so answer as soon as it is appended, as etcd answers.
            if started(&voters) < quorum(voters.len() + 1) {
                return add_unstarted_voter(raft, id, add, r.log_id.index).await;
            }
            let r = raft
                .change_membership(add, false)
                .await
                .map_err(write_err)?;
            Ok((Some(id), r.log_id.index))
        }
        MemberChange::Promote { id } => {
            if !learners.contains(&id) {
                return Err(MemberError::MemberNotLearner);
            }
            // etcd: a learner is ready when its match index is at least 90% of the leader's.
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).cloned().flatten());
            let last = m.last_log_index.unwrap_or(0);
            if matched.map(|l| l.index * 10 < last * 9).unwrap_or(true) {
                return Err(MemberError::LearnerNotReady);
            }
            let ch = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
            let r = raft.change_membership(ch, false).await.map_err(write_err)?;
            Ok((None, r.log_id.index))
        }
        MemberChange::Remove { id } => {
            if !voters.contains(&id) && !learners.contains(&id) {
                return Err(MemberError::MemberNotFound);
            }
            let ch = if voters.contains(&id) {
                let rest: BTreeSet<NodeId> = voters.iter().copied().filter(|v| *v != id).collect();
                if rest.is_empty() || started(&rest) < quorum(rest.len()) {
                    return Err(MemberError::NotEnoughStartedMembers);
                }
                ChangeMembers::RemoveVoters(BTreeSet::from([id]))
            } else {
                ChangeMembers::RemoveNodes(BTreeSet::from([id]))
            };
            let r = raft.change_membership(ch, false).await.map_err(write_err)?;
            Ok((None, r.log_id.index))
        }
        MemberChange::Update { id, peer_urls } => {
            let Some(node) = membership.get_node(&id) else {
                return Err(MemberError::MemberNotFound);
            };
            let node = PeerNode {
                name: node.name.clone(),
                peer_urls,
            };
            let ch = ChangeMembers::SetNodes(BTreeMap::from([(id, node)]));
            let r = raft.change_membership(ch, false).await.map_err(write_err)?;
            Ok((None, r.log_id.index))
        }
    }
}

/// How long the leader waits to see its own joint configuration appended.
const APPEND_WAIT: Duration = Duration::from_secs(5);

/// Make learner `id` (added at log `index`) a voter in the background, and answer once the joint
/// configuration is appended here (so the member list shows it as a voter, unstarted). The change then
/// commits when the new member starts and acknowledges it.
async fn add_unstarted_voter(
    raft: &Raft,
    id: NodeId,
    add: ChangeMembers<NodeId, PeerNode>,
    index: u64,
) -> ChangeReply {
    let background = raft.clone();
    tokio::spawn(async move {
        match background.change_membership(add, false).await {
            Ok(_) => tracing::info!("member {id:x} started; it is a voter"),
            Err(e) => tracing::warn!("adding member {id:x} as a voter did not complete: {e}"),
        }
    });
    let mut rx = raft.metrics();
    let appended = rx.wait_for(|m| {
        m.membership_config
            .membership()
            .voter_ids()
            .any(|v| v == id)
    });
    let outcome = match tokio::time::timeout(APPEND_WAIT, appended).await {
        Ok(Ok(_)) => Ok((Some(id), index)),
        Ok(Err(_)) => Err(MemberError::Stopped),
        Err(_) => Err(MemberError::Timeout),
    };
    outcome
}

impl App {
    /// Add a member (etcd MemberAdd); returns its new ID. Started later with
    /// `--initial-cluster-state existing`, it finds its ID by its peer URLs.
    pub async fn add_member(
        &self,
        peer_urls: Vec<String>,
        learner: bool,
    ) -> Result<NodeId, MemberError> {
        let (id, _) = self
            .change_members(MemberChange::Add { peer_urls, learner })
            .await?;
        id.ok_or_else(|| MemberError::Other("member add returned no ID".into()))
    }

    /// Promote a learner to voter (etcd MemberPromote).
    pub async fn promote_member(&self, id: NodeId) -> Result<(), MemberError> {
        self.change_members(MemberChange::Promote { id })
            .await
            .map(|_| ())
    }

    /// Remove a member (etcd MemberRemove); removing the leader works, leadership moves after commit.
    pub async fn remove_member(&self, id: NodeId) -> Result<(), MemberError> {
        self.change_members(MemberChange::Remove { id })
            .await
            .map(|_| ())
    }

    /// Replace a member's peer URLs (etcd MemberUpdate).
    pub async fn update_member(
        &self,
        id: NodeId,
        peer_urls: Vec<String>,
    ) -> Result<(), MemberError> {
        self.change_members(MemberChange::Update { id, peer_urls })
            .await
            .map(|_| ())
    }

    /// Run a change on the leader (forwarding if needed), then wait until this member has applied it,
    /// so a `members()` that follows shows it. Rejections read like etcd's ("etcdserver: …").
    async fn change_members(
        &self,
        change: MemberChange,
    ) -> Result<(Option<NodeId>, u64), MemberError> {
        let leader = self.wait_for_leader().await?;
        let reply: ChangeReply = if leader == self.inner.id {
            change_on_leader(&self.inner.raft, &self.inner.shared, change).await
        } else {
            self.call_leader(leader, Method::ChangeMembers, &change)
                .await?
        };
        // "Not leader" here means leadership moved mid-change: report it as etcd does.
        let (id, index) = reply.map_err(|e| match e {
            MemberError::NotLeader => MemberError::NoLeader,
            other => other,
        })?;
        self.wait_applied(Some(index)).await?;
        Ok((id, index))
    }
}

/// How often a member without a leader asks the others whether it is still in the cluster.
const ASK_IF_REMOVED_EVERY: Duration = Duration::from_secs(1);

impl App {
    /// Resolves once this member has been removed from the cluster (etcd then exits); never while it
    /// is (or has not yet become) a member.
    ///
    /// A leader that removes itself sees the new membership as soon as it is appended, but stays until
    /// that change is applied (so committed): stopping earlier would fail the change, and the client's
    /// `member remove`, with "raft stopped". A removed follower usually never sees the change at all
    /// (the leader stops replicating to it once the new membership is appended), so a member without a
    /// leader asks the others whether they still list it, as etcd's peers answer a removed member's
    /// messages with "the member has been permanently removed".
    pub async fn removed(&self) {
        let me = self.inner.id;
        // The server metrics change with the vote, role, leader or membership only; the full metrics
        // are sent at every turn of openraft's loop, several times per write, and each woke this.
        // The applied index is watched only while a removed leader waits to apply its removal.
        let mut server = self.inner.raft.server_metrics();
        let mut data = self.inner.raft.data_metrics();
        let mut was_member = false;
        let mut apply_before_leaving: Option<u64> = None;
        let mut last_asked: Option<tokio::time::Instant> = None;
        loop {
            let (member, leader, change, others) = {
                let m = server.borrow_and_update();
                let cfg = m.membership_config.membership();
                let others: Vec<(NodeId, PeerNode)> = cfg
                    .nodes()
                    .filter(|(id, _)| **id != me)
                    .map(|(id, n)| (*id, n.clone()))
                    .collect();
                (
                    cfg.get_node(&me).is_some(),
                    m.current_leader,
                    m.membership_config
                        .log_id()
                        .map(|l| l.index)
                        .unwrap_or_default(),
                    others,
                )
            };
            if member {
                was_member = true;
                apply_before_leaving = None;
                let due = last_asked.is_none_or(|t| t.elapsed() >= ASK_IF_REMOVED_EVERY);
                if leader.is_none() && due {
                    last_asked = Some(tokio::time::Instant::now());
                    if self.listed_by_none_of(&others).await {
                        tracing::info!("the other members no longer list this member");
                        return;
                    }
                }
            } else if was_member {
                if leader == Some(me) && apply_before_leaving.is_none() {
                    apply_before_leaving = Some(change);
                }
                let applied = data.borrow_and_update().last_applied.map(|l| l.index);
                match apply_before_leaving {
                    Some(index) if applied < Some(index) => {}
                    _ => return,
                }
            }
            // Set only once this member is out of the membership (it is reset while a member).
            let waiting_to_apply = apply_before_leaving.is_some();
            tokio::select! {
                changed = server.changed() => {
                    if changed.is_err() {
                        return std::future::pending().await;
                    }
                }
                changed = data.changed(), if waiting_to_apply => {
                    if changed.is_err() {
                        return std::future::pending().await;
                    }
                }
                // Re-ask while leaderless even if nothing changes locally.
                _ = tokio::time::sleep(ASK_IF_REMOVED_EVERY), if leader.is_none() && was_member => {}
            }
        }
    }

    /// True when at least one of `others` answers and none of those that answer list this member.
    async fn listed_by_none_of(&self, others: &[(NodeId, PeerNode)]) -> bool {
        let mut answered = false;
        for (id, node) in others {
            let timeout = Duration::from_millis(500);
            if let Ok(info) = super::join::ask_members(&self.inner.peers, *id, node, timeout).await
            {
                if info.members.iter().any(|(m, _)| *m == self.inner.id) {
                    return false;
                }
                answered = true;
            }
        }
        answered
    }
}
