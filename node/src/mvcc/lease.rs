//! Leases: the replicated table (TTL and attached keys) and the leader-local expiry deadlines.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{State, Store};

/// A granted lease as replicated.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lease {
    pub ttl: i64,
    pub keys: BTreeSet<Vec<u8>>,
}

impl Lease {
    pub fn new(ttl: i64) -> Self {
        Lease {
            ttl,
            keys: BTreeSet::new(),
        }
    }
}

/// What TimeToLive reports about a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub granted_ttl: i64,
    /// Seconds left, when this member tracks the lease's deadline (the leader does).
    pub remaining: Option<i64>,
    pub keys: Vec<Vec<u8>>,
}

/// Expiry deadlines, kept only by the leader. A lease the leader has not seen yet (granted before it
/// became leader, or through another member) gets a full TTL from the moment it is first seen, as etcd
/// does on leader change.
#[derive(Debug, Default)]
pub struct Deadlines {
    at: HashMap<i64, Instant>,
}

impl State {
    pub(super) fn detach(&mut self, lease: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.remove(key);
        }
    }
}

impl Store {
    /// Every lease ID, ascending.
    pub fn lease_ids(&self) -> Vec<i64> {
        self.state.leases.keys().copied().collect()
    }

    /// Granted TTL, remaining TTL and keys of a lease, if it exists.
    pub fn lease_info(&self, id: i64, now: Instant) -> Option<LeaseInfo> {
        let l = self.state.leases.get(&id)?;
        let remaining = self.deadlines.at.get(&id).map(|d| {
            let left = d.saturating_duration_since(now);
            // etcd rounds the remaining time up to whole seconds.
            left.as_secs() as i64 + i64::from(left.subsec_nanos() > 0)
        });
        Some(LeaseInfo {
            granted_ttl: l.ttl,
            remaining,
            keys: l.keys.iter().cloned().collect(),
        })
    }

    /// Renew a lease for its full TTL (leader only); returns the TTL, or None if the lease is gone.
    pub fn lease_renew(&mut self, id: i64, now: Instant) -> Option<i64> {
        let ttl = self.state.leases.get(&id)?.ttl;
        self.deadlines.at.insert(id, now + secs(ttl));
        Some(ttl)
    }

    /// Leader bookkeeping: start tracking leases not yet tracked, forget revoked ones, and return the
    /// IDs whose deadline has passed (to be revoked through Raft).
    pub fn expired_leases(&mut self, now: Instant) -> Vec<i64> {
        let leases = &self.state.leases;
        self.deadlines.at.retain(|id, _| leases.contains_key(id));
        for (id, l) in leases {
            self.deadlines.at.entry(*id).or_insert(now + secs(l.ttl));
        }
        let mut due: Vec<i64> = self
            .deadlines
            .at
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| *id)
            .collect();
        due.sort_unstable();
        due
    }

    /// Drop every deadline (this member lost leadership; a future leader term restarts them).
    pub fn forget_deadlines(&mut self) {
        self.deadlines.at.clear();
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}
