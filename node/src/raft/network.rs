//! openraft's network over the peer port: AppendEntries and Vote as frame calls (raft/frames.rs),
//! each carrying MessagePack and our cluster ID, and whole snapshots as one gRPC stream
//! (raft/snapshot_send.rs); unreachable peers are logged once.
//!
//! An AppendEntries outlives openraft's wait for it. openraft 0.9 gives each one the heartbeat
//! interval (100 ms by default), drops a later answer and sends the entries again; a follower answers
//! only once they are fsynced, so a follower whose fsync took longer than that (a busy or throttled
//! disk) was never heard from: nothing committed, the leader lost its quorum (check-quorum) and the
//! next leader fared no better. etcd's streams have no such deadline: a slow disk only slows it. Here
//! the call goes on for [`PeerChannels::answer_patience`], and openraft's next AppendEntries of the
//! same leader from the same point waits for that answer instead of sending anything: when it comes,
//! what the follower matched is reported against the newer request (see [`claim`]). openraft dates
//! that acknowledgement at the newer request's sending, later than the follower's answer may have
//! been made; it uses the date only for the time since a quorum acknowledged the leader, which
//! check-quorum (member/check_quorum.rs) may so see up to [`PeerChannels::answer_patience`] late.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{LogId, Snapshot, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;

use crate::codec::{decode, encode};
use crate::raft::channels::FrameError;
pub use crate::raft::channels::{peer_dial_timeout, CommitCeiling, PeerChannels};
use crate::raft::frames::Method;
use crate::raft::snapshot_send::{self, SendError};
use crate::raft::types::{NodeId, PeerNode, TypeConfig};

impl RaftNetworkFactory<TypeConfig> for PeerChannels {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> PeerConnection {
        PeerConnection {
            peer: Peer {
                target,
                node: node.clone(),
                peers: self.clone(),
            },
            sent: None,
        }
    }
}

/// openraft's view of one member.
pub struct PeerConnection {
    peer: Peer,
    /// The last AppendEntries sent, until its answer has been reported to openraft.
    sent: Option<SentAppend>,
}

/// Where one member is and how to reach it.
#[derive(Clone)]
struct Peer {
    target: NodeId,
    node: PeerNode,
    peers: PeerChannels,
}

type AppendResult = RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible>;

/// An AppendEntries on its way, or its answer not yet reported in full.
struct SentAppend {
    vote: Vote<NodeId>,
    prev: Option<LogId<NodeId>>,
    /// Its last entry's ID (`prev` for a heartbeat).
    last: Option<LogId<NodeId>>,
    answer: Answer,
}

enum Answer {
    /// The call itself, polled by each request that waits for it: between requests the answer
    /// waits in the socket (a task of its own would cost every AppendEntries a hand-off). In a
    /// mutex only because openraft wants the connection `Sync`; it is never contended.
    Awaited(std::sync::Mutex<Pin<Box<dyn Future<Output = AppendResult> + Send>>>),
    /// The follower matched up to here; a newer request reaching past it has not asked yet.
    Matched(Option<LogId<NodeId>>),
}

/// What a follower that `matched` the log up to there, answering an AppendEntries, tells a newer
/// request of the same leader from the same point whose last entry is `last`; and whether `matched`
/// reaches past `last`, so that a later request can still learn more from it.
fn claim(
    matched: Option<LogId<NodeId>>,
    last: &Option<LogId<NodeId>>,
) -> (AppendEntriesResponse<NodeId>, bool) {
    let matched_index = matched.map(|l| l.index);
    let last_index = last.map(|l| l.index);
    if matched_index >= last_index {
        // One leader's log holds the same entry at each index, so the newer request's entries up
        // to `last` are among those matched.
        (AppendEntriesResponse::Success, matched_index > last_index)
    } else {
        // At or past the request's start: the follower answered a request from the same point.
        (AppendEntriesResponse::PartialSuccess(matched), false)
    }
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, PeerNode, RaftError<NodeId, E>>>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

impl Peer {
    /// One RPC, logging when the peer becomes unreachable or active again (etcd's "peer … became
    /// inactive/active" lines).
    async fn call<Req, Resp, E>(
        &self,
        method: Method,
        req: &Req,
        ttl: Duration,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let mut why = None;
        let res = self.call_once(method, req, ttl, &mut why).await;
        self.record(why);
        res
    }

    /// Log a change between reachable and not (`why` is the failure of the last call, if it failed).
    fn record(&self, why: Option<String>) {
        let url = self.node.peer_urls.join(",");
        let peer = format!("{:x}", self.target);
        let mut failing = self.peers.failing.lock();
        match why {
            Some(msg) => {
                let stale = match failing.get(&self.target) {
                    Some((m, at)) => *m != msg || at.elapsed() > Duration::from_secs(30),
                    None => true,
                };
                if stale {
                    tracing::warn!(%peer, %url, "peer became inactive: {msg}");
                    failing.insert(self.target, (msg, std::time::Instant::now()));
                }
            }
            None => {
                if failing.remove(&self.target).is_some() {
                    tracing::info!(%peer, %url, "peer became active");
                }
            }
        }
    }

    async fn call_once<Req, Resp, E>(
        &self,
        method: Method,
        req: &Req,
        ttl: Duration,
        why: &mut Option<String>,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let unreachable = |why: &mut Option<String>, msg: String| {
            let msg = Msg(msg);
            *why = Some(msg.0.clone());
            RPCError::Unreachable(Unreachable::new(&msg))
        };
        let payload = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let sent = payload.len();
        let reply = match self
            .peers
            .frame_call(self.target, &self.node, method, &payload, ttl)
            .await
        {
            Ok(Ok(reply)) => reply,
            Ok(Err(refused)) => {
                let msg = Msg(refused);
                *why = Some(msg.0.clone());
                return Err(RPCError::Network(NetworkError::new(&msg)));
            }
            // A slow answer is not an unreachable member: openraft backs off 500 ms after
            // Unreachable, and a heartbeat interval's delay on a busy machine (or behind a
            // follower's fsync) then stopped commits for half a second. Retried at once instead.
            Err(FrameError::Timeout) => {
                let msg = Msg("peer RPC timed out".into());
                *why = Some(msg.0.clone());
                return Err(RPCError::Network(NetworkError::new(&msg)));
            }
            Err(FrameError::DialTimeout) => {
                return Err(unreachable(
                    why,
                    "peer RPC timed out while connecting".into(),
                ))
            }
            Err(e) => return Err(unreachable(why, e.to_string())),
        };
        crate::metrics::PEER_SENT_BYTES.add(sent as u64);
        crate::metrics::PEER_RECEIVED_BYTES.add(reply.len() as u64);
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        if let Some(ceiling) = &self.peer.peers.commit_ceiling {
            // Our own copy may not be on disk yet (storage/log.rs): a commit index past it could let
            // a follower apply an entry that a crash of this member takes from the majority.
            rpc.leader_commit = ceiling.cap(rpc.leader_commit);
        }
        let last = rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id);
        let joins = self
            .sent
            .as_ref()
            .is_some_and(|s| s.vote == rpc.vote && s.prev == rpc.prev_log_id);
        if !joins {
            // A request from elsewhere (a new leader term, a conflict, a snapshot) replaces the one
            // on its way, whose answer no longer fits; it may still reach the follower, like any
            // late message, and Raft's checks there make it harmless.
            self.sent = None;
        }
        let peer = &self.peer;
        let sent = self.sent.get_or_insert_with(|| {
            let peer = peer.clone();
            let patience = peer.peers.answer_patience();
            let (vote, prev) = (rpc.vote, rpc.prev_log_id);
            let call = async move { peer.call(Method::Append, &rpc, patience).await };
            SentAppend {
                vote,
                prev,
                last,
                answer: Answer::Awaited(std::sync::Mutex::new(Box::pin(call))),
            }
        });
        let got = match &mut sent.answer {
            Answer::Matched(m) => Ok(*m),
            // Before openraft's own deadline (the hard TTL), so that the wait ends here.
            Answer::Awaited(call) => {
                let call = call.get_mut().unwrap_or_else(|p| p.into_inner());
                match tokio::time::timeout(option.soft_ttl(), call).await {
                    Err(_) => {
                        let msg = Msg("peer RPC timed out; its answer is still awaited".into());
                        return Err(RPCError::Network(NetworkError::new(&msg)));
                    }
                    Ok(Ok(AppendEntriesResponse::Success)) => Ok(sent.last),
                    Ok(Ok(AppendEntriesResponse::PartialSuccess(m))) => Ok(m),
                    // A refusal (a conflict at `prev`, a higher vote) or an error: the same for
                    // the newer request, which starts at the same point.
                    Ok(other) => Err(other),
                }
            }
        };
        let matched = match got {
            Ok(m) => m,
            Err(res) => {
                self.sent = None;
                return res;
            }
        };
        let (answer, more) = claim(matched, &last);
        match self.sent.as_mut() {
            Some(sent) if more => sent.answer = Answer::Matched(matched),
            _ => self.sent = None,
        }
        Ok(answer)
    }

    /// Never called: `full_snapshot` streams the whole snapshot instead of openraft's chunks.
    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let msg = Msg("snapshots are streamed whole (SendSnapshot), not sent in chunks".into());
        Err(RPCError::Network(NetworkError::new(&msg)))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, SendError> {
        let p = &self.peer;
        let res =
            snapshot_send::send(&p.peers, p.target, &p.node, vote, snapshot, cancel, &option).await;
        p.record(match &res {
            Err(StreamingError::Unreachable(e)) => Some(e.to_string()),
            Err(StreamingError::Network(e)) => Some(e.to_string()),
            _ => None,
        });
        res
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.peer.call(Method::Vote, &rpc, option.hard_ttl()).await
    }

    /// Retries after 50 ms, doubling to openraft's constant 500 ms: a member just added, or just
    /// restarted, is usually dialled before it listens, and the first retry at 500 ms was most of
    /// the wait before a 1 GiB learner's snapshot started (0.5 of its 5.9 s).
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(retry_delays())
    }
}

/// The sleeps before the retries to an unreachable peer: 50, 100, 200, 400 ms, then 500 ms.
fn retry_delays() -> impl Iterator<Item = Duration> + Send + 'static {
    (0..).map(|i: u32| Duration::from_millis(50u64 << i.min(4)).min(Duration::from_millis(500)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_start_at_50_ms_and_settle_at_openrafts_500() {
        let ms: Vec<u64> = retry_delays()
            .take(7)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(ms, [50, 100, 200, 400, 500, 500, 500]);
    }

    fn id(term: u64, index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(openraft::CommittedLeaderId::new(term, 1), index))
    }

    #[test]
    fn an_answer_reaching_past_the_newer_request_is_a_success_and_is_kept() {
        // A heartbeat from index 10 joins entries 11..=20 on their way: matched 20.
        assert_eq!(
            claim(id(2, 20), &id(2, 10)),
            (AppendEntriesResponse::Success, true)
        );
        assert_eq!(
            claim(id(2, 20), &id(2, 20)),
            (AppendEntriesResponse::Success, false)
        );
    }

    #[test]
    fn an_answer_short_of_the_newer_request_is_a_partial_success() {
        // Entries 11..=20 answered; the newer request carries 11..=25.
        assert_eq!(
            claim(id(2, 20), &id(2, 25)),
            (AppendEntriesResponse::PartialSuccess(id(2, 20)), false)
        );
        // Nothing matched past the start (a follower that had less): the start itself.
        assert_eq!(
            claim(id(2, 10), &id(2, 25)),
            (AppendEntriesResponse::PartialSuccess(id(2, 10)), false)
        );
        assert_eq!(
            claim(None, &id(2, 3)),
            (AppendEntriesResponse::PartialSuccess(None), false)
        );
    }
}
