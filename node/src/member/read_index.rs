//! Read-index batching: every linearizable read waiting at one moment shares ONE read-index round
//! (on the leader a heartbeat round to a quorum, on a follower one ReadIndex call to the leader), as
//! etcd's linearizable read loop does. openraft 0.9 runs a full heartbeat round per
//! `get_read_log_id` call, so without this each read costs an RPC to every follower.
//!
//! Safety: a read joins only a round that starts after it was queued, so the index it gets covers
//! every write committed before the read arrived.
//!
//! A leader answers a read index only once an entry of its own term is committed at or below it
//! (Raft §6.4): openraft 0.9 ensures this for a leader it elects (the read log id is at least the blank
//! entry the new leader appends). A member never resumes leading a term after a restart, which would
//! skip that entry: its vote is read back uncommitted (storage/log.rs, `read_vote`), so leading again
//! takes an election.

use std::sync::Weak;

use openraft::error::{CheckIsLeaderError, RaftError};
use tokio::sync::{mpsc, oneshot};

use crate::member::{App, Inner, MemberError, REQUEST_TIMEOUT};
use crate::raft::types::{NodeId, PeerNode, Raft};

/// The read index for a linearizable read, confirmed with a quorum by this member, which must lead.
pub async fn leader_read_index(
    raft: &Raft,
) -> Result<Option<u64>, RaftError<NodeId, CheckIsLeaderError<NodeId, PeerNode>>> {
    let (read, _applied) = raft.get_read_log_id().await?;
    Ok(read.map(|l| l.index))
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
        match leader_read_index(&self.inner.raft).await {
            Ok(read) => Ok(read),
            Err(RaftError::APIError(_)) => Err(MemberError::NotLeader),
            Err(e) => Err(MemberError::raft(e)),
        }
    }
}
