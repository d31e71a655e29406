//! Static bootstrap from `--initial-cluster`: choose between founding a new cluster, restarting from the
//! data dir (the `--initial-*` flags are then ignored, as in etcd) and joining an existing cluster.

use std::collections::BTreeMap;

use crate::bootstrap::ids;
use crate::config::{ClusterState, Config, ConfigError};
use crate::raft::types::{NodeId, PeerNode};
use crate::storage::log::StoredIdentity;

/// What this start does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Found a new cluster: every listed member initialises Raft with the same membership.
    New {
        identity: StoredIdentity,
        members: BTreeMap<NodeId, PeerNode>,
    },
    /// The data dir already holds this member's state.
    Restart { identity: StoredIdentity },
    /// Added with `member add`: start empty and wait for the leader to replicate to us. The identity
    /// from the flags is provisional: the real one is learned from the members (see `member::start`).
    Join {
        identity: StoredIdentity,
        members: BTreeMap<NodeId, PeerNode>,
    },
}

impl Plan {
    /// The identity this start runs with.
    pub fn identity(&self) -> StoredIdentity {
        match self {
            Plan::New { identity, .. }
            | Plan::Restart { identity }
            | Plan::Join { identity, .. } => *identity,
        }
    }
}

/// The identity the flags describe, and the initial membership.
pub fn from_flags(
    cfg: &Config,
) -> Result<(StoredIdentity, BTreeMap<NodeId, PeerNode>), ConfigError> {
    let mut members = BTreeMap::new();
    let mut me = None;
    for (name, urls) in cfg.initial_members()? {
        let id = ids::member_id(&urls, &cfg.initial_cluster_token);
        if name == cfg.name {
            me = Some(id);
        }
        if members
            .insert(
                id,
                PeerNode {
                    name: name.clone(),
                    peer_urls: urls,
                },
            )
            .is_some()
        {
            return Err(ConfigError(format!(
                "--initial-cluster: duplicate peer URLs for member {name}"
            )));
        }
    }
    let member_id = me.ok_or_else(|| {
        ConfigError(format!(
            "{} not listed in the initial cluster config",
            cfg.name
        ))
    })?;
    let ids: Vec<NodeId> = members.keys().copied().collect();
    Ok((
        StoredIdentity {
            cluster_id: ids::cluster_id(&ids),
            member_id,
        },
        members,
    ))
}

/// Decide how to start from the flags and the identity stored in the data dir (if any).
pub fn plan(cfg: &Config, stored: Option<StoredIdentity>) -> Result<Plan, ConfigError> {
    let (flags, members) = from_flags(cfg)?;
    match stored {
        Some(s) => {
            // Tokens never change, so a data dir whose member AND cluster ID both differ from the flags
            // was made for another cluster (after `member add` only the cluster ID differs). A member that
            // joined with `existing` got its ID from the leader, and the membership the flags list has
            // changed since: for it the flags prove nothing, and etcd ignores them on restart too.
            if s.member_id != flags.member_id
                && s.cluster_id != flags.cluster_id
                && cfg.initial_cluster_state == ClusterState::New
            {
                return Err(ConfigError(format!(
                    "conflicting cluster ID to the target cluster ({:x} != {:x}): --data-dir {} belongs to member \
                     {:x} of another cluster. Exiting. (Use an empty --data-dir to found or join this cluster.)",
                    s.cluster_id,
                    flags.cluster_id,
                    cfg.data_dir.display(),
                    s.member_id
                )));
            }
            Ok(Plan::Restart { identity: s })
        }
        None => match cfg.initial_cluster_state {
            ClusterState::New => Ok(Plan::New {
                identity: flags,
                members,
            }),
            ClusterState::Existing => Ok(Plan::Join {
                identity: flags,
                members,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cfg(token: &str, state: &str) -> Config {
        Config::try_parse_from([
            "cairn",
            "--name=a",
            "--initial-cluster=a=http://127.0.0.1:1,b=http://127.0.0.1:2",
            "--initial-advertise-peer-urls=http://127.0.0.1:1",
            &format!("--initial-cluster-token={token}"),
            &format!("--initial-cluster-state={state}"),
        ])
        .unwrap()
    }

    #[test]
    fn fresh_data_dir_founds_a_new_cluster_with_every_member() {
        let p = plan(&cfg("t", "new"), None).unwrap();
        let Plan::New { members, identity } = p else {
            panic!("{p:?}")
        };
        assert_eq!(members.len(), 2);
        assert!(members.contains_key(&identity.member_id));
    }

    #[test]
    fn existing_state_joins_without_initialising() {
        assert!(matches!(
            plan(&cfg("t", "existing"), None).unwrap(),
            Plan::Join { .. }
        ));
    }

    #[test]
    fn restart_keeps_the_stored_identity() {
        let (id, _) = from_flags(&cfg("t", "new")).unwrap();
        let moved = StoredIdentity {
            cluster_id: 42,
            ..id
        };
        assert_eq!(
            plan(&cfg("t", "new"), Some(moved)).unwrap(),
            Plan::Restart { identity: moved }
        );
    }

    #[test]
    fn a_joined_member_restarts_after_the_membership_changed() {
        // Its ID came from the leader and its cluster was founded by other members: nothing matches.
        let joined = StoredIdentity {
            cluster_id: 7,
            member_id: 9,
        };
        assert_eq!(
            plan(&cfg("t", "existing"), Some(joined)).unwrap(),
            Plan::Restart { identity: joined }
        );
    }

    #[test]
    fn data_dir_of_another_cluster_is_refused() {
        let (other, _) = from_flags(&cfg("other-token", "new")).unwrap();
        let e = plan(&cfg("t", "new"), Some(other)).unwrap_err();
        assert!(
            e.0.starts_with("conflicting cluster ID to the target cluster"),
            "{}",
            e.0
        );
    }
}
