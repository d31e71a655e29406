//! Leases: the replicated table (TTL and attached keys). Expiry deadlines are the member's lessor's.

use std::collections::BTreeSet;

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
    /// Seconds left, when this member tracks the lease's deadline (the leader's lessor does).
    pub remaining: Option<i64>,
    pub keys: Vec<Vec<u8>>,
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

    /// Granted TTL of a lease, if it exists.
    pub fn lease_ttl(&self, id: i64) -> Option<i64> {
        self.state.leases.get(&id).map(|l| l.ttl)
    }

    /// Every lease with its granted TTL, ascending by ID.
    pub fn lease_ttls(&self) -> Vec<(i64, i64)> {
        self.state
            .leases
            .iter()
            .map(|(id, l)| (*id, l.ttl))
            .collect()
    }

    /// Granted TTL and keys of a lease, if it exists (the remaining TTL is the lessor's to fill in).
    pub fn lease_info(&self, id: i64) -> Option<LeaseInfo> {
        let l = self.state.leases.get(&id)?;
        Some(LeaseInfo {
            granted_ttl: l.ttl,
            remaining: None,
            keys: l.keys.iter().cloned().collect(),
        })
    }
}
