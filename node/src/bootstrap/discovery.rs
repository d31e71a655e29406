//! Discovery bootstrap: the initial cluster comes from a discovery service where every member registers
//! itself and waits until the configured number of members have: etcd 3.4's v2 protocol against an
//! etcd v2 keys API (`--discovery URL`, [`super::discovery_v2`]) or etcd 3.6's v3 protocol against
//! any etcd-API cluster, cairn included (`--discovery-token` + `--discovery-endpoints`,
//! [`super::discovery_v3`]). As in etcd, the member IDs then derive from the discovery URL or token
//! instead of `--initial-cluster-token`, and a member whose data dir is initialized skips discovery.

use crate::config::{parse_initial_cluster, Config};

/// etcd's discovery errors, with its texts (operators search for them) and its advice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The token has no `_config/size` (etcd's guide prints the first sentence).
    #[error("the cluster doesn't have a size configuration value in {0}/_config (discovery: size key not found)")]
    SizeNotFound(String),
    #[error("discovery: size key is bad")]
    BadSizeKey,
    #[error(
        "discovery: cluster is full: failed to bootstrap; discovery token was already used; do not reuse \
         discovery token; generate a new one to bootstrap a cluster"
    )]
    FullCluster,
    #[error(
        "discovery: found duplicate id: member has been registered with discovery service but could not \
         find valid cluster configuration; check data dir if previous bootstrap succeeded or use a new \
         discovery token if previous bootstrap failed"
    )]
    DuplicateId,
    #[error(
        "discovery: found duplicate name: member with duplicated name has already been registered; cURL \
         the discovery token URL for details; do not reuse discovery token; generate a new one to \
         bootstrap a cluster"
    )]
    DuplicateName,
    #[error("discovery: invalid URL")]
    InvalidUrl,
    #[error("discovery: bad discovery endpoint")]
    BadEndpoint,
    /// Anything else the service answered, with what it said.
    #[error("discovery: {0}")]
    Other(String),
}

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

/// The initial cluster from the registered values, first `size` of them: every URL valid, `size`
/// distinct names (etcd's `nodesToCluster`).
pub fn to_cluster(values: &[String], size: usize) -> Result<String, DiscoveryError> {
    let taken: Vec<&String> = values.iter().take(size).collect();
    let joined = taken
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let pairs = parse_initial_cluster(&joined).map_err(|_| DiscoveryError::InvalidUrl)?;
    let mut names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() != size {
        return Err(DiscoveryError::DuplicateName);
    }
    Ok(joined)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_make_the_cluster_or_etcds_errors() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let ok = v(&[
            "a=http://127.0.0.1:1",
            "b=http://127.0.0.1:2",
            "c=http://127.0.0.1:3",
        ]);
        assert_eq!(
            to_cluster(&ok, 2).unwrap(),
            "a=http://127.0.0.1:1,b=http://127.0.0.1:2"
        );
        let dup = v(&["a=http://127.0.0.1:1", "a=http://127.0.0.1:2"]);
        assert_eq!(to_cluster(&dup, 2), Err(DiscoveryError::DuplicateName));
        assert_eq!(
            to_cluster(&v(&["a=ftp://x"]), 1),
            Err(DiscoveryError::InvalidUrl)
        );
    }
}
