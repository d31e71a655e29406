//! Check-quorum, as etcd's Raft does it (openraft 0.9 has none): a leader that has not been
//! acknowledged by a quorum within the election timeout stops counting as leader here. It then reports
//! no leader (Status, /health, `etcd_server_has_leader`), and proposals and reads wait for a leader
//! and fail with "etcdserver: no leader" / "request timed out", so clients and load balancers move to
//! the members that can elect a new one. openraft's core keeps its role until it hears a higher term,
//! and takes it up again as soon as a quorum answers.
//!
//! openraft reports the time since the last quorum acknowledgement in each metrics update; the
//! member's leader watch turns the newest update into the instant that acknowledgement happened, so
//! an update that comes late (a busy core) is never taken for a fresh acknowledgement. The watch
//! looks at most every 20 ms (member/start.rs `leader_watch_pause`), so an instant may be up to that
//! much younger than the acknowledgement was.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::raft::types::{NodeId, PeerNode};

type Metrics = openraft::RaftMetrics<NodeId, PeerNode>;

/// When this member, as leader, last heard from a quorum.
#[derive(Debug, Default)]
pub(super) struct QuorumClock {
    inner: Mutex<Clock>,
}

#[derive(Debug, Default)]
struct Clock {
    /// The term the instants below belong to.
    term: u64,
    /// When this member was first seen leading `term` (a new leader gets one election timeout).
    leading_since: Option<Instant>,
    /// The newest quorum acknowledgement known.
    acked_at: Option<Instant>,
}

impl QuorumClock {
    fn clock(&self) -> std::sync::MutexGuard<'_, Clock> {
        // Two instants: a panic elsewhere cannot leave them inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record what a metrics update of member `me` says, at the moment it arrived.
    pub(super) fn observe(&self, me: NodeId, m: &Metrics) {
        if m.current_leader != Some(me) {
            return;
        }
        let now = Instant::now();
        let mut c = self.clock();
        if c.term != m.current_term || c.leading_since.is_none() {
            *c = Clock {
                term: m.current_term,
                leading_since: Some(now),
                acked_at: None,
            };
        }
        if let Some(ms) = m.millis_since_quorum_ack {
            let at = now.checked_sub(Duration::from_millis(ms)).unwrap_or(now);
            c.acked_at = c.acked_at.max(Some(at));
        }
    }

    /// The leader member `me` can vouch for per `m`: another member's leadership as reported, its own
    /// only while a quorum acknowledged it within `timeout` (or it has led for less than that).
    pub(super) fn leader(&self, me: NodeId, m: &Metrics, timeout: Duration) -> Option<NodeId> {
        let leader = m.current_leader?;
        if leader != me {
            return Some(leader);
        }
        self.observe_if_new(me, m);
        let c = self.clock();
        let heard = c.acked_at.or(c.leading_since)?;
        (heard.elapsed() <= timeout).then_some(leader)
    }

    /// A term whose leadership the watch has not recorded yet starts its grace period now.
    fn observe_if_new(&self, me: NodeId, m: &Metrics) {
        let known = {
            let c = self.clock();
            c.term == m.current_term && c.leading_since.is_some()
        };
        if !known {
            let mut fresh = m.clone();
            // Only the watch may turn the reported age into an instant (it sees updates as they come).
            fresh.millis_since_quorum_ack = None;
            self.observe(me, &fresh);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::Vote;

    fn leading(term: u64, acked_ms_ago: Option<u64>) -> Metrics {
        let mut m = Metrics::new_initial(1);
        m.current_term = term;
        m.vote = Vote::new_committed(term, 1);
        m.current_leader = Some(1);
        m.millis_since_quorum_ack = acked_ms_ago;
        m
    }

    #[test]
    fn a_leader_counts_while_a_quorum_acked_within_the_timeout() {
        let q = QuorumClock::default();
        let m = leading(3, Some(10));
        q.observe(1, &m);
        assert_eq!(q.leader(1, &m, Duration::from_secs(1)), Some(1));
        let old = leading(3, Some(5_000));
        let q = QuorumClock::default();
        q.observe(1, &old);
        assert_eq!(q.leader(1, &old, Duration::from_secs(1)), None);
    }

    #[test]
    fn a_stale_update_is_not_a_fresh_acknowledgement() {
        let q = QuorumClock::default();
        let m = leading(3, Some(10));
        q.observe(1, &m);
        std::thread::sleep(Duration::from_millis(60));
        // The same report looked at again later: the acknowledgement has aged meanwhile.
        assert_eq!(q.leader(1, &m, Duration::from_millis(50)), None);
    }

    #[test]
    fn a_new_leader_without_acknowledgements_has_one_timeout_of_grace() {
        let q = QuorumClock::default();
        let m = leading(4, None);
        assert_eq!(q.leader(1, &m, Duration::from_millis(50)), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(q.leader(1, &m, Duration::from_millis(50)), None);
        // Another member's leadership is taken as reported.
        let mut other = m.clone();
        other.current_leader = Some(2);
        assert_eq!(q.leader(1, &other, Duration::from_millis(50)), Some(2));
    }
}
