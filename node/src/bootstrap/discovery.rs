//! Discovery bootstrap: the initial cluster comes from a discovery service where every member registers
//! itself and waits until the configured number of members have: etcd 3.4's v2 protocol against an
//! etcd v2 keys API (`--discovery URL`, [`super::discovery_v2`]) or etcd 3.6's v3 protocol against
//! any etcd-API cluster, cairn included (`--discovery-token` + `--discovery-endpoints`,
//! [`super::discovery_v3`]). As in etcd, the member IDs then derive from the discovery URL or token
//! instead of `--initial-cluster-token`, and a member whose data dir is initialized skips discovery.

use crate::config::Config;

pub use super::discovered::DiscoveryError;

/// `name=url,...` of this member, as it registers itself.
pub fn self_config(cfg: &Config) -> String {
    let mut urls = cfg.initial_advertise_peer_urls.clone();
    urls.sort();
    urls.iter()
        .map(|u| format!("{}={u}", cfg.name))
        .collect::<Vec<_>>()
        .join(",")
}

/// The token member IDs derive from: the v2 URL or the v3 token (etcd's `PeerURLsMapAndToken`).
pub fn token(cfg: &Config) -> Option<String> {
    let d = &cfg.discovery;
    d.discovery.clone().or_else(|| d.discovery_token.clone())
}

/// With a discovery flag: fill `--initial-cluster` (and the token IDs derive from) from the discovery
/// service on a first start; on a restart the service is not asked (etcd's "discovery token ignored").
pub async fn resolve(cfg: &mut Config) -> anyhow::Result<()> {
    let Some(token) = token(cfg) else {
        return Ok(());
    };
    cfg.initial_cluster_token = token;
    let log = cfg.data_dir.join("member").join("raft.redb");
    if log.exists() {
        tracing::warn!(
            "discovery token ignored since a cluster has already been initialized. Valid log found at {}",
            log.display()
        );
        // Any list naming this member will do: the stored identity is used on restart.
        cfg.initial_cluster = Some(self_config(cfg));
        return Ok(());
    }
    let id = super::ids::member_id(&cfg.initial_advertise_peer_urls, &cfg.initial_cluster_token);
    cfg.initial_cluster = Some(initial_cluster(cfg, id).await?);
    Ok(())
}

/// Join through the discovery service the flags name; returns `--initial-cluster`.
pub async fn initial_cluster(cfg: &Config, member_id: u64) -> anyhow::Result<String> {
    let me = self_config(cfg);
    let cluster = match &cfg.discovery.discovery {
        Some(url) => {
            let proxy = cfg.discovery.discovery_proxy.as_deref();
            super::discovery_v2::join(url, proxy, member_id, &me).await?
        }
        None => super::discovery_v3::join(&cfg.discovery, member_id, &me).await?,
    };
    tracing::info!(initial_cluster = %cluster, "got the initial cluster from the discovery service");
    Ok(cluster)
}
