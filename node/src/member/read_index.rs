//! Read-index batching: every linearizable read waiting at one moment shares ONE read-index round
//! (on the leader a heartbeat round to a quorum, on a follower one ReadIndex call to the leader), as
//! etcd's linearizable read loop does. openraft 0.9 runs a full heartbeat round per
//! `get_read_log_id` call, so without this each read costs an RPC to every follower.
//!
//! Safety: a read joins only a round that starts after it was queued, so the index it gets covers
//! every write committed before the read arrived.
//!
//! A leader answers a read index only once an entry of its own term is committed at or below it
//! (Raft §6.4): before that it cannot know the commit index. openraft 0.9 ensures this for a leader it
//! elects (the read log id is at least the blank entry the new leader appends), but a member that
//! restarts with a committed vote for itself resumes leading the same term at once, and its blank
//! entry is then an old one; its committed id is the one persisted last, which may be behind writes
//! already acknowledged (see store/log.rs). Such a leader's read index is therefore also held at or
//! above the last entry its log had when it resumed ([`ReadFloor`]): every entry committed in that term
//! before the restart is at or below it, and the read waits until it is committed and applied.

use std::sync::Weak;

use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::storage::RaftLogStorage;
use tokio::sync::{mpsc, oneshot};

use crate::member::{App, Inner, MemberError, REQUEST_TIMEOUT};
use crate::raft::types::{NodeId, PeerNode, Raft};
use crate::storage::log::LogStore;

/// The least read index of a leader that resumed its term at start (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadFloor {
    /// The term of the vote found on disk at start (0: none).
    term: u64,
    /// The last log index found on disk at start.
    index: u64,
}

impl ReadFloor {
    /// Read the stored vote and last log index of member `me`, before Raft starts from them.
    pub async fn at_start(log: &LogStore, me: NodeId) -> anyhow::Result<ReadFloor> {
        let mut log = log.clone();
        let vote = log.read_vote().await?;
        let last = log.get_log_state().await?.last_log_id;
        let floor = ReadFloor {
            term: vote.map(|v| v.leader_id().term).unwrap_or(0),
            index: last.map(|l| l.index).unwrap_or(0),
        };
        if vote.is_some_and(|v| v.is_committed() && v.leader_id().voted_for() == Some(me)) {
            tracing::info!(
                "resuming as leader of term {} from the stored vote; linearizable reads wait until \
                 index {} (the log's end) is committed",
                floor.term,
                floor.index
            );
        }
        Ok(floor)
    }
}

/// The read index for a linearizable read, confirmed with a quorum by this member, which must lead.
pub async fn leader_read_index(
    raft: &Raft,
    floor: ReadFloor,
) -> Result<Option<u64>, RaftError<NodeId, CheckIsLeaderError<NodeId, PeerNode>>> {
    let term = raft.metrics().borrow().current_term;
    let (read, _applied) = raft.get_read_log_id().await?;
    let read = read.map(|l| l.index);
    // A later term was won by an election, whose blank entry bounds the read index already.
    if term == floor.term && floor.term > 0 {
        return Ok(read.max(Some(floor.index)));
    }
    Ok(read)
}

/// The read index (None: nothing committed yet), or why none could be obtained.
type Outcome = Result<Option<u64>, MemberError>;

/// Handle of a member's read-index queue.
pub(super) type Queue = mpsc::Sender<oneshot::Sender<Outcome>>;

/// Reads queued before submitters wait.
const QUEUE: usize = 8192;

/// Start the read-index loop; it ends when every [`Queue`] handle is gone.
pub(super) fn spawn(app: Weak<Inner>) -> Queue {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(app, rx));
    tx
}

async fn run(app: Weak<Inner>, mut rx: mpsc::Receiver<oneshot::Sender<Outcome>>) {
    let mut waiting = Vec::new();
    while let Some(first) = rx.recv().await {
        waiting.push(first);
        while let Ok(w) = rx.try_recv() {
            waiting.push(w);
        }
        let Some(inner) = app.upgrade() else {
            return;
        };
        let app = App { inner };
        let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, app.read_index_round()).await {
            Ok(r) => r,
            Err(_) => Err(MemberError::Timeout),
        };
        for w in waiting.drain(..) {
            let _ = w.send(outcome.clone());
        }
    }
}

impl App {
    /// Join the next read-index round and return its index.
    pub(super) async fn read_index(&self) -> Outcome {
        let (tx, rx) = oneshot::channel();
        let gone = || MemberError::Stopped;
        self.inner.reads.send(tx).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// One round: confirm leadership with a quorum here, or ask the leader.
    async fn read_index_round(&self) -> Outcome {
        let leader = self.wait_for_leader().await?;
        if leader != self.inner.id {
            return self.forward_read_index(leader).await;
        }
        match leader_read_index(&self.inner.raft, self.inner.read_floor).await {
            Ok(read) => Ok(read),
            Err(RaftError::APIError(_)) => Err(MemberError::NotLeader),
            Err(e) => Err(MemberError::raft(e)),
        }
    }
}
