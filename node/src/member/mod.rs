//! The running member: wires config → stores → network → Raft → services, and is the handle the etcd API
//! services use to propose, read and describe the cluster.

mod alarm;
mod auto_compact;
mod check_quorum;
mod compactor;
mod error;
mod forward;
mod join;
mod lessor;
pub mod membership;
mod move_leader;
pub mod peer_service;
mod propose;
pub mod read_index;
mod snapshot_receive;
mod snapshot_trigger;
mod start;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use crate::mvcc::{Command, CommandResponse};
use crate::raft::network::PeerChannels;
use crate::raft::types::{NodeId, PeerNode, Raft};
use crate::storage::data_dir::DataDir;
use crate::storage::log::LogStore;
use crate::storage::state_machine::Shared;

pub use alarm::{KV_OVERHEAD, LEASE_COST};
pub use error::MemberError;
pub use start::Started;

/// How long a proposal or read barrier may take before the client gets "request timed out"
/// (etcd: 5 s plus two election timeouts; ours is fixed and generous).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);

/// A snapshot of cluster-level facts used in response headers and Status.
#[derive(Debug, Clone, Default)]
pub struct RaftStatus {
    pub cluster_id: u64,
    pub member_id: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub raft_index: u64,
    pub applied_index: u64,
}

/// One member as etcd's Cluster API describes it.
#[derive(Debug, Clone, Default)]
pub struct MemberInfo {
    pub id: NodeId,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// The handle the client-facing services hold (cheap to clone).
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    id: NodeId,
    raft: Raft,
    shared: Arc<Shared>,
    peers: PeerChannels,
    data_dir: DataDir,
    /// Client commands waiting to be batched into the next Raft entry (`propose`).
    proposals: propose::Queue,
    /// Linearizable reads waiting for the next read-index round (`read_index`).
    reads: read_index::Queue,
    /// The leader's lease deadlines.
    lessor: lessor::Lessor,
    /// When this member, as leader, last heard from a quorum (`check_quorum`).
    quorum: check_quorum::QuorumClock,
    /// etcd's `--election-timeout`: a leader not acknowledged by a quorum for longer stops leading here.
    election_timeout: Duration,
    /// The space quota in bytes (`--quota-backend-bytes`; None: disabled).
    quota: Option<u64>,
    /// The Raft log: a follower answers an AppendEntries once what it appended is durable.
    log: LogStore,
}

impl App {
    /// Replicate `cmd` and return its result once applied on THIS member (so a read that follows sees it).
    /// Commands arriving together share one Raft entry (see `propose`); on a follower they are
    /// forwarded to the leader over the peer channel. A deterministic rejection comes back as `Ok` with
    /// `CommandResponse::error` set (it was committed and applied).
    pub async fn propose(&self, cmd: Command) -> Result<CommandResponse, MemberError> {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        // Retry only while the answer is "not leader": the command was then never appended, so a
        // retry cannot apply it twice. Elections right after bootstrap produce this briefly.
        loop {
            match tokio::time::timeout_at(deadline, self.submit(cmd.clone())).await {
                Err(_) => return Err(MemberError::Timeout),
                Ok(Err(MemberError::NotLeader)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Ok(Err(MemberError::NotLeader)) => return Err(MemberError::NoLeader),
                Ok(res) => return res,
            }
        }
    }

    /// Wait until this member's state machine reflects every write committed before the call
    /// (Raft read-index, one round shared by all reads waiting; on a follower the read index is
    /// obtained from the leader).
    pub async fn read_barrier(&self) -> Result<(), MemberError> {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.read_barrier_once()).await {
                Err(_) => return Err(MemberError::Timeout),
                // Reads are idempotent: retry through leader changes and unreachable leaders.
                Ok(Err(MemberError::NotLeader | MemberError::NoLeader))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Ok(Err(MemberError::NotLeader)) => return Err(MemberError::NoLeader),
                Ok(res) => return res,
            }
        }
    }

    async fn read_barrier_once(&self) -> Result<(), MemberError> {
        let index = self.read_index().await?;
        self.wait_applied(index).await
    }

    /// The state machine's store, for reads and watch subscriptions (see `mvcc`).
    pub fn store(&self) -> &crate::mvcc::SharedStore {
        &self.inner.shared.store
    }

    /// Current Raft facts (cheap: read from openraft metrics). A leader that has lost its quorum
    /// reports no leader (see `check_quorum`).
    pub fn status(&self) -> RaftStatus {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        RaftStatus {
            cluster_id: self.inner.peers.cluster_id(),
            member_id: self.inner.id,
            leader: self.leader_of(&m),
            term: m.current_term,
            raft_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
        }
    }

    /// etcd's `--election-timeout` of this member.
    pub fn election_timeout(&self) -> Duration {
        self.inner.election_timeout
    }

    /// True when this member is the leader (and a quorum acknowledged it lately, see `check_quorum`).
    pub fn is_leader(&self) -> bool {
        self.leader_of(&self.inner.raft.metrics().borrow()) == Some(self.inner.id)
    }

    /// The leader per these metrics, as this member can vouch for it (`check_quorum`).
    fn leader_of(&self, m: &openraft::RaftMetrics<NodeId, PeerNode>) -> Option<NodeId> {
        let i = &self.inner;
        i.quorum.leader(i.id, m, i.election_timeout)
    }

    /// Members with names and client URLs (unstarted members have an empty name and no client URLs).
    pub fn members(&self) -> Vec<MemberInfo> {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let learners: Vec<NodeId> = membership.learner_ids().collect();
        let attrs = self.inner.shared.members.read().clone();
        membership
            .nodes()
            .map(|(id, node)| {
                let a = attrs.get(id).cloned().unwrap_or_default();
                MemberInfo {
                    id: *id,
                    name: a.name,
                    peer_urls: node.peer_urls.clone(),
                    client_urls: a.client_urls,
                    is_learner: learners.contains(id),
                }
            })
            .collect()
    }

    /// A cached gRPC channel to the current leader's peer listener (mTLS with the peer certificate), on
    /// which the etcd Lease service is also served, so lease keep-alives can be forwarded to the leader.
    pub async fn leader_channel(&self) -> Result<tonic::transport::Channel, MemberError> {
        let leader = self.wait_for_leader().await?;
        let node = self.node(leader).ok_or(MemberError::NoLeader)?;
        self.inner
            .peers
            .channel(leader, &node)
            .map_err(MemberError::other)
    }

    /// Size in bytes of this member's data files (Status.dbSize, `etcd_mvcc_db_total_size_in_bytes`).
    pub fn db_size(&self) -> u64 {
        // The value file is unnamed (it is a cache), so only the store knows its size.
        self.inner.data_dir.raft_bytes() + self.value_bytes_beside_the_snapshot()
    }

    /// The store's value bytes that the snapshot file does not hold (the values it reads from the
    /// current snapshot file are counted with that file).
    pub fn value_bytes_beside_the_snapshot(&self) -> u64 {
        let store = self.store().read();
        store.value_bytes() - self.values_in_current_snapshot(&store)
    }

    /// The store's value bytes read from the current snapshot file (counted with that file).
    fn values_in_current_snapshot(&self, store: &crate::mvcc::Store) -> u64 {
        store.value_bytes_in(&self.inner.data_dir.snapshot_file())
    }

    /// The part of [`App::db_size`] in use (Status.dbSizeInUse): without the value file's garbage,
    /// which a rewrite after compaction gives back (as etcd's defragment does for its free pages).
    pub fn db_size_in_use(&self) -> u64 {
        let store = self.store().read();
        let in_snapshot = self.values_in_current_snapshot(&store);
        self.inner.data_dir.raft_bytes() + store.live_value_bytes().saturating_sub(in_snapshot)
    }

    /// The gauges of `/metrics` at this moment.
    pub fn metrics(&self) -> crate::metrics::Snapshot {
        let s = self.status();
        let (keys, watchers) = {
            let st = self.store().read();
            (st.key_count(), st.watcher_count())
        };
        crate::metrics::Snapshot {
            member_id: s.member_id,
            leader: s.leader,
            raft_index: s.raft_index,
            applied_index: s.applied_index,
            db_size: self.db_size(),
            keys,
            watchers,
        }
    }

    /// The member's data dir (`--data-dir`).
    pub fn data_dir(&self) -> &std::path::Path {
        self.inner.data_dir.root()
    }

    /// This member's ID.
    pub fn member_id(&self) -> NodeId {
        self.inner.id
    }

    /// The Raft handle (for the peer service and shutdown).
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    fn node(&self, id: NodeId) -> Option<PeerNode> {
        self.inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned()
    }

    /// The current leader, waiting up to an election's worth of time for one to emerge.
    async fn wait_for_leader(&self) -> Result<NodeId, MemberError> {
        if let Some(l) = self.leader_of(&self.inner.raft.metrics().borrow()) {
            return Ok(l);
        }
        let wait = self.inner.raft.config().election_timeout_max * 4;
        match self
            .inner
            .raft
            .wait(Some(Duration::from_millis(wait)))
            .metrics(|m| self.leader_of(m).is_some(), "leader known")
            .await
        {
            Ok(m) => self.leader_of(&m).ok_or(MemberError::NoLeader),
            Err(_) => Err(MemberError::NoLeader),
        }
    }

    /// Wait until this member's state machine has applied `index` (None: nothing to wait for).
    async fn wait_applied(&self, index: Option<u64>) -> Result<(), MemberError> {
        let Some(index) = index else {
            return Ok(());
        };
        let applied = &self.inner.shared.applied_index;
        if applied.get() >= index {
            return Ok(());
        }
        tokio::time::timeout(REQUEST_TIMEOUT, applied.wait_at_least(index))
            .await
            .map_err(|_| MemberError::Timeout)
    }
}
