//! What a discovery service answered, made into the initial cluster, and etcd's discovery errors:
//! shared by the v2 and v3 protocols ([`super::discovery_v2`], [`super::discovery_v3`]).

use crate::config::parse_initial_cluster;

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
