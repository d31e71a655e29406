//! The lessor (etcd's lease package): the leader's lease expiry deadlines, under a lock of their own.
//! The replicated lease table (TTL, attached keys) stays in the mvcc store; a KeepAlive only reads it,
//! so renewals never wait for, or hold up, writes and reads of the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::member::App;
use crate::mvcc::{Command, LeaseInfo};

/// Expiry deadlines, kept only by the leader. A lease the leader has not seen yet (granted before it
/// became leader, or through another member) gets a full TTL from the moment it is first seen, as etcd
/// does on leader change.
#[derive(Debug, Default)]
pub struct Lessor {
    at: Mutex<HashMap<i64, Instant>>,
    /// Set when the member stops: no revocation is proposed after that (each would only fail).
    stopped: AtomicBool,
}

impl Lessor {
    /// Push lease `id`'s deadline to `ttl` seconds from `now`.
    pub fn renew(&self, id: i64, ttl: i64, now: Instant) {
        self.at.lock().insert(id, now + secs(ttl));
    }

    /// Whole seconds left for lease `id` (rounded up, as etcd does), when its deadline is tracked.
    pub fn remaining(&self, id: i64, now: Instant) -> Option<i64> {
        self.at.lock().get(&id).map(|d| {
            let left = d.saturating_duration_since(now);
            left.as_secs() as i64 + i64::from(left.subsec_nanos() > 0)
        })
    }

    /// Leader bookkeeping over the current `leases` (ID, granted TTL): start tracking the new ones,
    /// forget revoked ones, and return the IDs whose deadline has passed (to be revoked through Raft).
    pub fn expired(&self, leases: &[(i64, i64)], now: Instant) -> Vec<i64> {
        let mut at = self.at.lock();
        let live: HashMap<i64, i64> = leases.iter().copied().collect();
        at.retain(|id, _| live.contains_key(id));
        for (id, ttl) in &live {
            at.entry(*id).or_insert(now + secs(*ttl));
        }
        let mut due: Vec<i64> = at
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| *id)
            .collect();
        due.sort_unstable();
        due
    }

    /// Drop every deadline (this member is not the leader; a future leader term restarts them).
    pub fn forget(&self) {
        self.at.lock().clear();
    }

    /// Stop expiring leases for good (the member is shutting down).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}

/// How often the leader looks for expired leases (and a follower drops its deadlines).
const EXPIRY_CHECK: Duration = Duration::from_millis(500);

impl App {
    /// Renew lease `id` for its full TTL (on the leader); returns the TTL, or None if the lease is gone.
    pub fn lease_renew(&self, id: i64) -> Option<i64> {
        let ttl = self.store().read().lease_ttl(id)?;
        self.inner.lessor.renew(id, ttl, Instant::now());
        Some(ttl)
    }

    /// Granted TTL, remaining TTL (where this member tracks it) and keys of lease `id`, if it exists.
    pub fn lease_info(&self, id: i64) -> Option<LeaseInfo> {
        let mut info = self.store().read().lease_info(id)?;
        info.remaining = self.inner.lessor.remaining(id, Instant::now());
        Some(info)
    }

    /// Start the expiry loop: on the leader, revoke leases whose deadline passed; elsewhere keep no
    /// deadlines, so that a member that becomes leader gives every lease a full TTL. It ends when the
    /// member stops ([`App::shutdown`] stops the lessor before Raft).
    pub fn spawn_lease_expiry(&self) {
        let app = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_CHECK);
            loop {
                tick.tick().await;
                if app.inner.lessor.is_stopped() {
                    return;
                }
                if !app.is_leader() {
                    app.inner.lessor.forget();
                    continue;
                }
                let leases = app.store().read().lease_ttls();
                let due = app.inner.lessor.expired(&leases, Instant::now());
                app.revoke_expired(&due).await;
            }
        });
    }

    /// Revoke `due` through Raft, in order. The first failure ends the pass with one line for all that
    /// are left (they stay due and are retried on the next tick): without a quorum, or while Raft
    /// stops, every proposal would fail the same way, and a line per lease buried the log.
    async fn revoke_expired(&self, due: &[i64]) {
        for (done, &id) in due.iter().enumerate() {
            if self.inner.lessor.is_stopped() {
                return;
            }
            if let Err(e) = self.propose(Command::LeaseRevoke { id }).await {
                if !self.inner.lessor.is_stopped() {
                    tracing::warn!(
                        error = %e,
                        "could not revoke {} expired lease(s), first {id:016x}; retrying",
                        due.len() - done
                    );
                }
                return;
            }
            tracing::info!(lease = format!("{id:016x}"), "lease expired, keys deleted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_expire_only_after_their_ttl_from_first_sight() {
        let l = Lessor::default();
        let leases = [(1, 5)];
        let t0 = Instant::now();
        assert!(l.expired(&leases, t0).is_empty());
        l.renew(1, 5, t0 + Duration::from_secs(4));
        assert!(
            l.expired(&leases, t0 + Duration::from_secs(8)).is_empty(),
            "renewal pushed the deadline"
        );
        assert_eq!(l.expired(&leases, t0 + Duration::from_secs(10)), vec![1]);
        assert_eq!(l.remaining(1, t0 + Duration::from_secs(6)), Some(3));
        assert!(
            l.expired(&[], t0).is_empty(),
            "a revoked lease is forgotten"
        );
        assert_eq!(l.remaining(1, t0), None);
    }
}
