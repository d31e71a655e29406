//! Starting a member: open the data dir, choose new / restart / join, build Raft, publish our attributes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openraft::error::{InitializeError, RaftError};
use openraft::SnapshotPolicy;

use crate::bootstrap::static_cluster::{self, Plan};
use crate::config::Config;
use crate::member::peer_service::PeerService;
use crate::member::{App, Inner};
use crate::mvcc::Command;
use crate::raft::network::{peer_dial_timeout, CommitCeiling, PeerChannels};
use crate::raft::types::Raft;
use crate::storage::data_dir::DataDir;
use crate::storage::log::LogStore;
use crate::storage::snapshot::SnapshotDir;
use crate::storage::state_machine::StateMachine;

/// etcd keeps this many entries behind a snapshot so slow followers catch up from the log.
const CATCH_UP_ENTRIES: u64 = 5000;
/// Entries per AppendEntries message at most (the log store also cuts a message at 4 MiB of commands,
/// storage/log.rs `MAX_APPEND_BYTES`): enough that small entries fill a message too, so a member
/// catching up moves 4 MiB per round trip. It then applies many entries at once, perhaps writes and a
/// compaction of them together; the state machine lets watchers catch up before such a compaction
/// (`Store::stranded_by`), or they would be canceled (cairn-chaos seed 2300 found that with 1024
/// before that wait existed).
const MAX_PAYLOAD_ENTRIES: u64 = 1024;

/// A started member: the API handle and the peer service to serve on the peer listener.
pub struct Started {
    pub app: App,
    pub peer_service: PeerService,
}

/// Create the data directories readable by the service user only (etcd insists on 0700 too).
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn raft_config(cfg: &Config, cluster_id: u64) -> anyhow::Result<openraft::Config> {
    let rc = openraft::Config {
        cluster_name: format!("{cluster_id:x}"),
        heartbeat_interval: cfg.heartbeat_interval,
        // openraft 0.9 makes a follower wait `leader lease (= election_timeout_max)` PLUS a random
        // timeout in [min, max] after the last heartbeat before campaigning. Splitting etcd's
        // --election-timeout E into min = E/3, max = 2E/3 gives an effective E..4E/3, like etcd's
        // E..2E, so a killed leader is replaced within about 1.5 s at the defaults.
        election_timeout_min: cfg.election_timeout / 3,
        election_timeout_max: cfg.election_timeout * 2 / 3,
        // How long a snapshot's receiver may take no data (raft/snapshot_send.rs).
        install_snapshot_timeout: 30_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_count.max(1)),
        max_in_snapshot_log_to_keep: CATCH_UP_ENTRIES.min(cfg.snapshot_count),
        max_payload_entries: MAX_PAYLOAD_ENTRIES,
        ..Default::default()
    };
    rc.validate()
        .context("--heartbeat-interval / --election-timeout / --snapshot-count")
}

impl Started {
    /// The member's side of the peer frame protocol, for the peer listener.
    pub fn frame_handler(&self) -> std::sync::Arc<dyn crate::raft::frames::FrameHandler> {
        std::sync::Arc::new(self.peer_service.clone())
    }
}

impl App {
    /// Open the data dir, bootstrap or restart Raft, and start publishing this member's attributes.
    /// Configuration refusals come back as [`crate::config::ConfigError`] inside the anyhow error.
    pub async fn start(
        cfg: &Config,
        peer_tls: Option<Arc<rustls::ClientConfig>>,
        dns: Option<crate::dns::Dns>,
    ) -> anyhow::Result<Started> {
        let data_dir = DataDir::new(&cfg.data_dir);
        let member_dir = data_dir.member();
        create_private_dir(&member_dir).with_context(|| {
            format!(
                "--data-dir {}: cannot create {}",
                cfg.data_dir.display(),
                member_dir.display()
            )
        })?;
        let log_path = data_dir.log_db();
        let log = LogStore::open(&data_dir)
            .with_context(|| format!("opening Raft log {}", log_path.display()))?;
        let stored = log
            .identity()
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", log_path.display()))?;
        let plan = static_cluster::plan(cfg, stored)?;
        match &plan {
            Plan::Restart { .. } => tracing::info!(
                data_dir = %cfg.data_dir.display(),
                "initial cluster flags ignored since the member has already been initialized: valid log found in {}",
                log_path.display()
            ),
            Plan::New { members, .. } => tracing::info!(
                members = members
                    .values()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                "starting a new cluster"
            ),
            Plan::Join { .. } => {
                tracing::info!("joining an existing cluster; waiting for the leader to add us")
            }
        }
        let identity = match &plan {
            Plan::Join { members, .. } => {
                let found = super::join::discover(cfg, members, peer_tls.clone()).await?;
                log.set_identity(&found)
                    .map_err(|e| anyhow::anyhow!("recording member identity: {e}"))?;
                found
            }
            _ => plan.identity(),
        };
        let cluster_id = identity.cluster_id;
        tracing::info!(
            member_id = format!("{:x}", identity.member_id),
            cluster_id = format!("{cluster_id:x}"),
            "member identity"
        );

        let snaps = SnapshotDir::new(data_dir.snap())?;
        let sm = StateMachine::open(snaps.clone(), data_dir.values())
            .map_err(|e| anyhow::anyhow!(e))?
            .after_log(log.durability());
        let shared = sm.shared();
        let durable = log.durability();
        let ceiling = Arc::new(CommitCeiling::new(move || durable.last()));
        let peers = PeerChannels::new(cluster_id, peer_tls)
            .with_dns(dns)
            .with_dial_timeout(peer_dial_timeout(cfg.election_timeout))
            .with_commit_ceiling(ceiling.clone());
        let rc = Arc::new(raft_config(cfg, cluster_id)?);
        log.set_member(identity.member_id);
        let raft = Raft::new(identity.member_id, rc, peers.clone(), log.clone(), sm)
            .await
            .context("starting Raft")?;
        shared.raft_started();

        if let Plan::New { members, identity } = plan {
            match raft.initialize(members.clone()).await {
                Ok(()) => {}
                // Already initialised by an earlier start that crashed before recording the identity.
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(anyhow::anyhow!("initializing the cluster {members:?}: {e}")),
            }
            log.set_identity(&identity)
                .map_err(|e| anyhow::anyhow!("recording member identity: {e}"))?;
        }

        let app = App {
            inner: Arc::new_cyclic(|me| Inner {
                id: identity.member_id,
                raft,
                shared,
                peers,
                data_dir,
                proposals: super::propose::spawn(me.clone()),
                reads: super::read_index::spawn(me.clone()),
                lessor: Default::default(),
                quorum: Default::default(),
                election_timeout: Duration::from_millis(cfg.election_timeout),
                quota: cfg.quota_bytes(),
                log: log.clone(),
            }),
        };
        if let Some(q) = cfg
            .quota_bytes()
            .filter(|q| *q > crate::config::MAX_QUOTA_BYTES)
        {
            tracing::warn!(
                "quota exceeds the maximum value: --quota-backend-bytes {q} is over {} (8 GiB)",
                crate::config::MAX_QUOTA_BYTES
            );
        }
        let peer_service = PeerService::new(app.clone(), cluster_id, snaps);
        app.spawn_leader_watch();
        app.spawn_commit_announcer(ceiling);
        app.spawn_publish(cfg.name.clone(), cfg.advertise_client_urls.clone());
        app.spawn_auto_compaction(cfg.auto_compaction()?);
        app.spawn_snapshot_trigger();
        app.spawn_compactor();
        Ok(Started { app, peer_service })
    }

    /// Publish our name and client URLs through Raft until it succeeds (etcd's `publishV3`).
    fn spawn_publish(&self, name: String, client_urls: Vec<String>) {
        let app = self.clone();
        tokio::spawn(async move {
            let cmd = Command::PublishMember {
                id: app.member_id(),
                name,
                client_urls,
            };
            loop {
                match app.propose(cmd.clone()).await {
                    Ok(_) => {
                        tracing::info!("published local member to cluster through raft");
                        return;
                    }
                    Err(e) => tracing::debug!("publishing member attributes: {e}; retrying"),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// Log leader changes like etcd ("elected leader X at term T" / "lost leader") and count them
    /// (`etcd_server_leader_changes_seen_total`: a different leader than the last one known). It also
    /// feeds check-quorum the newest metrics update (openraft sends one per tick at least).
    ///
    /// openraft sends its metrics at every turn of its loop, several times per write; woken by each,
    /// this task cost a thread wake-up per send. It sleeps [`leader_watch_pause`] after each wake
    /// instead, then takes the newest update: one sent during the pause, so check-quorum takes its
    /// acknowledgement for at most that much younger than it is.
    fn spawn_leader_watch(&self) {
        let mut rx = self.inner.raft.metrics();
        let me = self.inner.id;
        let pause = leader_watch_pause(self.inner.election_timeout);
        let app = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut last: Option<u64> = None;
            let mut last_known: Option<u64> = None;
            loop {
                let Some(inner) = app.upgrade() else {
                    return;
                };
                let app = App { inner };
                let (reported, leader, term) = {
                    let m = rx.borrow_and_update();
                    app.inner.quorum.observe(me, &m);
                    (m.current_leader, app.leader_of(&m), m.current_term)
                };
                drop(app);
                if leader != last {
                    match leader {
                        Some(l) => {
                            tracing::info!("raft.node: {me:x} elected leader {l:x} at term {term}");
                            if last_known != Some(l) {
                                crate::metrics::LEADER_CHANGES.add(1);
                                last_known = Some(l);
                            }
                        }
                        None if reported == Some(me) => tracing::warn!(
                            "raft.node: {me:x} lost leader at term {term}: no quorum acknowledged \
                             this leader within the election timeout; it serves no request until \
                             one does (check-quorum)"
                        ),
                        None => tracing::info!("raft.node: {me:x} lost leader at term {term}"),
                    }
                    last = leader;
                }
                if rx.changed().await.is_err() {
                    return;
                }
                tokio::time::sleep(pause).await;
            }
        });
    }

    /// Resolves, with the reason, once Raft has stopped on an error: a storage failure (a full disk,
    /// an I/O error on the log, the vote or the value file) or a bug. openraft cannot resume after
    /// that; the member must exit so that its supervisor starts it again from its data dir once the
    /// fault is cleared (the unit has Restart=on-failure; etcd exits on such errors too).
    pub async fn raft_stopped(&self) -> String {
        // openraft sets `running_state` only as its core ends, and the core owns the server metrics'
        // sender: waiting for that channel to close wakes this once, where the full metrics (sent at
        // every turn of the core's loop) woke it several times per write.
        let mut rx = self.inner.raft.server_metrics();
        while rx.changed().await.is_ok() {}
        match &self.inner.raft.metrics().borrow().running_state {
            Err(fatal) => fatal.to_string(),
            Ok(()) => "the Raft core ended".into(),
        }
    }

    /// Announce a commit index held back for this member's own log (raft/channels.rs
    /// [`CommitCeiling`]) with a heartbeat as soon as the log is durable that far: followers would
    /// otherwise learn of it only at the next heartbeat, and a put through a follower, answered once
    /// applied there, would wait for it.
    fn spawn_commit_announcer(&self, ceiling: Arc<CommitCeiling>) {
        let raft = self.inner.raft.clone();
        let log = self.inner.log.durability();
        tokio::spawn(async move {
            loop {
                let index = ceiling.held_back().await;
                if log.until_index(index).await.is_err()
                    || raft.trigger().heartbeat().await.is_err()
                {
                    return;
                }
            }
        });
    }

    /// Resolves, with the reason, once the Raft log could not be written (storage/log.rs): the
    /// member must then exit, as for [`Self::raft_stopped`].
    pub async fn log_failed(&self) -> String {
        self.inner.log.durability().failure().await
    }

    /// Wait until everything this member appended to its log so far is on disk.
    pub(super) async fn log_durable(&self) -> Result<(), String> {
        let log = &self.inner.log;
        log.durability().until_seq(log.submitted()).await
    }

    /// Stop the lessor, then Raft (graceful shutdown): no lease is revoked while stopping.
    pub async fn shutdown(&self) {
        self.inner.lessor.stop();
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

/// How long the leader watch lets metrics updates gather: a fiftieth of the election timeout, at
/// most 20 ms (a leader cut off from its quorum steps down that much later).
fn leader_watch_pause(election_timeout: Duration) -> Duration {
    (election_timeout / 50).min(Duration::from_millis(20))
}
