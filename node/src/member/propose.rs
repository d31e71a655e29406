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
//! A batch a follower forwarded joins the leader's queue as one command ([`App::propose_forwarded`]),
//! nested inside the leader's next batch: one entry and one fsync carry both. openraft 0.9 flushes
//! every `client_write` entry on its own, so proposing it apart would cost the leader a second fsync.
//! A forwarded command is only ever proposed here while this member leads; otherwise it goes back as
//! "not leader" (never appended), and the follower retries with the leader it learns next.
//!
//! The state machine applies a batch command by command (own revision, own response or error for
//! each), so callers see exactly what separate entries would give them.

use std::sync::{Arc, Weak};

use openraft::error::{ClientWriteError, RaftError};
use openraft::LogId;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::member::{App, Inner, MemberError};
use crate::mvcc::{Command, CommandResponse};
use crate::raft::types::NodeId;

/// At most this many client commands in one Raft entry (a forwarded batch counts its commands).
pub const MAX_BATCH_COMMANDS: usize = 1024;
/// Stop adding commands before a batch would hold more than this many payload bytes (a single larger
/// command still goes alone). With the log store's cut of an AppendEntries at 4 MiB of commands
/// (storage/log.rs) this keeps a message under the peer limit.
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
    /// Forwarded by a follower: propose it only while this member leads, never forward it again.
    forwarded: bool,
    reply: oneshot::Sender<Outcome>,
}

/// Where a command was committed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Committed {
    /// The log id of the entry that carried it.
    log_id: LogId<NodeId>,
    /// Proposed through this member as leader: `client_write` answered once it was applied here.
    applied_here: bool,
}

/// The command's response and where it was committed.
type Outcome = Result<(Committed, CommandResponse), MemberError>;

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

/// Client commands in `cmd` (a batch counts each of its own, a nested forwarded batch too).
fn commands_in(cmd: &Command) -> usize {
    match cmd {
        Command::Batch(cmds) => cmds.iter().map(commands_in).sum(),
        _ => 1,
    }
}

async fn run(app: Weak<Inner>, mut rx: mpsc::Receiver<Pending>, slots: Arc<Semaphore>) {
    // A command taken off the queue that did not fit the last batch: it starts the next one.
    let mut held: Option<Pending> = None;
    loop {
        let first = match held.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        // Wait for a free slot BEFORE collecting: what arrives meanwhile joins this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = first.cmd.approx_size();
        let mut count = commands_in(&first.cmd);
        let mut batch = vec![first];
        while let Ok(p) = rx.try_recv() {
            let (b, c) = (p.cmd.approx_size(), commands_in(&p.cmd));
            if bytes + b > MAX_BATCH_BYTES || count + c > MAX_BATCH_COMMANDS {
                held = Some(p);
                break;
            }
            bytes += b;
            count += c;
            batch.push(p);
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
    /// Queue `cmd` for the next batch and wait for its outcome, applied on this member.
    pub(super) async fn submit(&self, cmd: Command) -> Result<CommandResponse, MemberError> {
        let (at, resp) = self.enqueue(cmd, false).await?;
        if !at.applied_here {
            self.learn_commit(at.log_id).await;
            self.wait_applied(Some(at.log_id.index)).await?;
        }
        Ok(resp)
    }

    /// Propose a command (usually a batch) a follower forwarded, with the leader's own queued
    /// proposals; returns the log id of the entry it was committed in and its response. "Not
    /// leader" when this member does not lead: nothing was appended then.
    pub(super) async fn propose_forwarded(
        &self,
        cmd: Command,
    ) -> Result<(LogId<NodeId>, CommandResponse), MemberError> {
        if self.leader_of(&self.inner.raft.metrics().borrow()) != Some(self.inner.id) {
            return Err(MemberError::NotLeader);
        }
        let (at, resp) = self.enqueue(cmd, true).await?;
        Ok((at.log_id, resp))
    }

    /// Propose `cmd` at once when nothing is queued and a slot is free, else through the batcher.
    async fn enqueue(&self, cmd: Command, forwarded: bool) -> Outcome {
        let queue = &self.inner.proposals;
        let idle = queue.tx.capacity() == queue.tx.max_capacity();
        let direct = idle
            .then(|| queue.slots.clone().try_acquire_owned().ok())
            .flatten();
        if let Some(slot) = direct {
            let out = if forwarded {
                self.propose_here(cmd).await
            } else {
                self.propose_here_or_forward(cmd).await
            };
            drop(slot);
            return out;
        }
        let (reply, rx) = oneshot::channel();
        let gone = || MemberError::Stopped;
        queue
            .tx
            .send(Pending {
                cmd,
                forwarded,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Propose one batch and hand every caller its own response (or the batch's failure).
    async fn commit_batch(&self, mut batch: Vec<Pending>) {
        if batch.iter().any(|p| p.forwarded) && !self.is_leader() {
            // Forwarded commands go back to their follower, which retries with the new leader;
            // the rest is forwarded as usual.
            let (forwarded, rest) = batch.into_iter().partition(|p| p.forwarded);
            let forwarded: Vec<Pending> = forwarded;
            for p in forwarded {
                let _ = p.reply.send(Err(MemberError::NotLeader));
            }
            batch = rest;
        }
        let forwarded = batch.iter().any(|p| p.forwarded);
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
        let outcome = if forwarded {
            self.propose_here(cmd).await
        } else {
            self.propose_here_or_forward(cmd).await
        };
        match outcome {
            Ok((at, resp)) if n == 1 => {
                if let Some(r) = replies.into_iter().next() {
                    let _ = r.send(Ok((at, resp)));
                }
            }
            Ok((at, resp)) if resp.batch.len() == n => {
                for (r, one) in replies.into_iter().zip(resp.batch) {
                    let _ = r.send(Ok((at, one)));
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
    async fn propose_here_or_forward(&self, cmd: Command) -> Outcome {
        let leader = self.wait_for_leader().await?;
        if leader != self.inner.id {
            count_proposal(&cmd);
            let (log_id, resp) = self.forward_propose(leader, cmd).await?;
            let at = Committed {
                log_id,
                applied_here: false,
            };
            return Ok((at, resp));
        }
        self.propose_here(cmd).await
    }

    /// Replicate `cmd` as this member's own entry; "not leader" (nothing appended) if it does not lead.
    async fn propose_here(&self, cmd: Command) -> Outcome {
        count_proposal(&cmd);
        // client_write answers once the entry is applied here.
        match self.inner.raft.client_write(cmd).await {
            Ok(r) => {
                let at = Committed {
                    log_id: r.log_id,
                    applied_here: true,
                };
                Ok((at, r.data))
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(MemberError::NotLeader)
            }
            Err(e) => Err(MemberError::raft(e)),
        }
    }
}

/// Count a proposal and the client commands it carries.
fn count_proposal(cmd: &Command) {
    crate::metrics::PROPOSAL_BATCHES.add(1);
    crate::metrics::PROPOSAL_BATCHED.add(commands_in(cmd) as u64);
}
