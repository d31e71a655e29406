//! Proposal batching: client writes that arrive while earlier ones are being committed travel together
//! as ONE Raft entry ([`Command::Batch`]), so one log append (one fsync on every member) and one
//! replication round carry all of them.
//!
//! Why here and not in the log store: openraft 0.9's core awaits each log flush before it appends the
//! next client write, one entry per write, so nothing below Raft can merge writes (see storage/log.rs).
//!
//! A task per member owns the queue: it takes the first waiting command at once (a lone client pays no
//! extra latency), adds whatever else is already queued up to [`MAX_BATCH_COMMANDS`] /
//! [`MAX_BATCH_BYTES`], and proposes that — through `client_write` on the leader, forwarded to the
//! leader's peer listener on a follower. Up to [`MAX_IN_FLIGHT`] batches are in flight; the next batch
//! grows while they are.
//!
//! When nothing is queued and a slot is free, the caller proposes its command itself, without the
//! queue: a lone client's put then skips two task hand-offs (each a possible thread wake-up).
//!
//! The state machine applies a batch command by command (own revision, own response or error for
//! each), so callers see exactly what separate entries would give them.

use std::sync::{Arc, Weak};

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::member::{App, Inner, MemberError};
use crate::mvcc::{Command, CommandResponse};

/// At most this many client commands in one Raft entry.
pub const MAX_BATCH_COMMANDS: usize = 1024;
/// Stop adding commands once a batch holds this many payload bytes (a single larger command still goes).
/// With `MAX_PAYLOAD_ENTRIES` in start.rs this keeps an AppendEntries message under the peer limit.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Batches proposed and not yet answered, per member. Two let the leader append the next batch while
/// the previous one is being replicated (openraft appends and replicates one after the other); 1, 2
/// and 4 measured alike within this machine's noise at 16–1024 clients, 4 worse at 128.
pub const MAX_IN_FLIGHT: usize = 2;
/// Commands queued for the batcher before submitters wait (back-pressure instead of unbounded memory).
const QUEUE: usize = 8192;

/// A command waiting to be proposed, and where its outcome goes.
pub(super) struct Pending {
    cmd: Command,
    reply: oneshot::Sender<Outcome>,
}

/// The command's response, plus the log index this member must have applied before answering (set when
/// the batch was committed through another member, so a read here right after sees the write).
type Outcome = Result<(Option<u64>, CommandResponse), MemberError>;

/// Handle of a member's batcher: its queue and the in-flight slots shared with direct proposals.
pub(super) struct Queue {
    tx: mpsc::Sender<Pending>,
    slots: Arc<Semaphore>,
}

/// Start the batcher; it ends when the [`Queue`] is gone.
pub(super) fn spawn(app: Weak<Inner>) -> Queue {
    let (tx, rx) = mpsc::channel(QUEUE);
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    tokio::spawn(run(app, rx, slots.clone()));
    Queue { tx, slots }
}

async fn run(app: Weak<Inner>, mut rx: mpsc::Receiver<Pending>, slots: Arc<Semaphore>) {
    while let Some(first) = rx.recv().await {
        // Wait for a free slot BEFORE collecting: what arrives meanwhile joins this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = first.cmd.approx_size();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_COMMANDS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.cmd.approx_size();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let Some(inner) = app.upgrade() else {
            return;
        };
        let app = App { inner };
        tokio::spawn(async move {
            app.commit_batch(batch).await;
            drop(slot);
        });
    }
}

impl App {
    /// Queue `cmd` for the next batch and wait for its outcome.
    pub(super) async fn submit(&self, cmd: Command) -> Result<CommandResponse, MemberError> {
        let queue = &self.inner.proposals;
        let idle = queue.tx.capacity() == queue.tx.max_capacity();
        let direct = idle
            .then(|| queue.slots.clone().try_acquire_owned().ok())
            .flatten();
        let (wait_for, resp) = match direct {
            Some(slot) => {
                let out = self.propose_here_or_forward(cmd).await;
                drop(slot);
                out?
            }
            None => {
                let (reply, rx) = oneshot::channel();
                let gone = || MemberError::Stopped;
                queue
                    .tx
                    .send(Pending { cmd, reply })
                    .await
                    .map_err(|_| gone())?;
                rx.await.map_err(|_| gone())??
            }
        };
        if wait_for.is_some() {
            self.wait_applied(wait_for).await?;
        }
        Ok(resp)
    }

    /// Propose one batch and hand every caller its own response (or the batch's failure).
    async fn commit_batch(&self, batch: Vec<Pending>) {
        let (mut cmds, replies): (Vec<Command>, Vec<oneshot::Sender<Outcome>>) =
            batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
        let n = cmds.len();
        // A lone command travels as itself: the log then holds what it held before batching.
        let cmd = match cmds.pop() {
            Some(only) if n == 1 => only,
            Some(last) => {
                cmds.push(last);
                Command::Batch(cmds)
            }
            None => return,
        };
        let outcome = self.propose_here_or_forward(cmd).await;
        match outcome {
            Ok((wait_for, resp)) if n == 1 => {
                if let Some(r) = replies.into_iter().next() {
                    let _ = r.send(Ok((wait_for, resp)));
                }
            }
            Ok((wait_for, resp)) if resp.batch.len() == n => {
                for (r, one) in replies.into_iter().zip(resp.batch) {
                    let _ = r.send(Ok((wait_for, one)));
                }
            }
            Ok((_, resp)) => {
                let e = MemberError::Other(format!(
                    "a batch of {n} commands came back with {} responses",
                    resp.batch.len()
                ));
                replies
                    .into_iter()
                    .for_each(|r| drop(r.send(Err(e.clone()))));
            }
            Err(e) => replies
                .into_iter()
                .for_each(|r| drop(r.send(Err(e.clone())))),
        }
    }

    /// Replicate `cmd` through this member if it leads, else through the leader it knows.
    async fn propose_here_or_forward(
        &self,
        cmd: Command,
    ) -> Result<(Option<u64>, CommandResponse), MemberError> {
        crate::metrics::PROPOSAL_BATCHES.add(1);
        let n = match &cmd {
            Command::Batch(cmds) => cmds.len(),
            _ => 1,
        };
        crate::metrics::PROPOSAL_BATCHED.add(n as u64);
        let leader = self.wait_for_leader().await?;
        if leader != self.inner.id {
            let (index, resp) = self.forward_propose(leader, cmd).await?;
            return Ok((Some(index), resp));
        }
        // client_write answers once the entry is applied here.
        match self.inner.raft.client_write(cmd).await {
            Ok(r) => Ok((None, r.data)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(MemberError::NotLeader)
            }
            Err(e) => Err(MemberError::raft(e)),
        }
    }
}
