//! Joining an existing cluster (`--initial-cluster-state existing`): ask the members listed in
//! `--initial-cluster` for the cluster ID and membership, and find our own ID by our peer URLs (the ID
//! was chosen by the leader at `member add`), as etcd does with `GetClusterFromRemotePeers`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::decode;
use crate::config::{Config, ConfigError};
use crate::member::wire::ClusterInfo;
use crate::raft::network::{peer_dial_timeout, PeerChannels};
use crate::raft::types::{NodeId, PeerNode};
use crate::storage::log::StoredIdentity;

/// How long to keep trying the listed members before giving up.
const DISCOVER_FOR: Duration = Duration::from_secs(60);

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// The cluster ID and membership as member `id` sees them (its peer `members` call).
pub(crate) async fn ask_members(
    peers: &PeerChannels,
    id: NodeId,
    node: &PeerNode,
    timeout: Duration,
) -> Result<ClusterInfo, String> {
    let mut c = peers.client(id, node).map_err(|e| e.to_string())?;
    let req = peers.request(&()).map_err(|e| e.to_string())?;
    let reply = tokio::time::timeout(timeout, c.members(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|s| s.message().to_string())?;
    decode::<ClusterInfo>(&reply.into_inner().payload).map_err(|e| e.to_string())
}

/// Learn this member's identity from the running cluster.
pub async fn discover(
    cfg: &Config,
    listed: &BTreeMap<NodeId, PeerNode>,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> anyhow::Result<StoredIdentity> {
    let peers =
        PeerChannels::new(0, tls).with_dial_timeout(peer_dial_timeout(cfg.election_timeout));
    let mine = sorted(&cfg.initial_advertise_peer_urls);
    let deadline = tokio::time::Instant::now() + DISCOVER_FOR;
    let mut last_err = String::from("no other member listed in --initial-cluster");
    loop {
        for (id, node) in listed.iter().filter(|(_, n)| n.name != cfg.name) {
            match ask_members(&peers, *id, node, Duration::from_secs(3)).await {
                Ok(info) => {
                    let me = info
                        .members
                        .iter()
                        .find(|(_, n)| sorted(&n.peer_urls) == mine);
                    return match me {
                        Some((member_id, _)) => {
                            tracing::info!(
                                cluster_id = format!("{:x}", info.cluster_id),
                                member_id = format!("{member_id:x}"),
                                "found this member in the existing cluster"
                            );
                            Ok(StoredIdentity { cluster_id: info.cluster_id, member_id: *member_id })
                        }
                        None => Err(ConfigError(format!(
                            "member {} with peer URLs {} is not part of cluster {:x}: add it first with \
                             `etcdctl member add {} --peer-urls={}`",
                            cfg.name,
                            mine.join(","),
                            info.cluster_id,
                            cfg.name,
                            mine.join(",")
                        ))
                        .into()),
                    };
                }
                Err(e) => last_err = format!("{}: {e}", node.peer_urls.join(",")),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "could not reach any member of the existing cluster listed in --initial-cluster \
                 within {DISCOVER_FOR:?} (last error: {last_err})"
            );
        }
        tracing::warn!("cannot reach the existing cluster yet ({last_err}); retrying");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
