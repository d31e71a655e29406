//! The keyspace's history by revision, merged from every watch session: the ground truth the revision
//! model and the watch checker compare against. A revision counts as known (covered) only where some
//! all-keys session vouched for having delivered everything: from its start revision through its last
//! event's revision (a watch delivers every change from its start on, and a response always carries
//! whole revisions; the watch checker holds each session to both). Progress answers vouch for nothing
//! here: etcd 3.4.23 can answer a progress request before it has sent the events below that revision.

use std::collections::{BTreeMap, HashMap};

use crate::history::{History, Kv, WatchEnd, WatchRange};

/// A change to one key at one revision (`None`: deleted).
pub type Change = Option<Kv>;

/// The merged history.
#[derive(Debug, Default)]
pub struct EventLog {
    /// Revision → key → change.
    pub by_rev: BTreeMap<i64, BTreeMap<String, Change>>,
    /// Key → revision → change.
    pub by_key: BTreeMap<String, BTreeMap<i64, Change>>,
    /// Value → (revision, key) of every put of it.
    by_value: HashMap<String, Vec<(i64, String)>>,
    /// Disjoint, sorted, inclusive intervals of revisions whose every change is known.
    covered: Vec<(i64, i64)>,
    /// Two sessions that received different changes for the same key and revision.
    pub conflicts: Vec<String>,
}

/// What a key held at a revision, if the log knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Known: the key's value (or absent).
    Known(Option<Kv>),
    /// Some revision in between is not covered.
    Unknown,
}

impl EventLog {
    /// Merges every session of `h`.
    pub fn build(h: &History) -> EventLog {
        let mut log = EventLog::default();
        let mut spans = Vec::new();
        for s in &h.watches {
            for e in &s.events {
                let slot = log.by_rev.entry(e.rev).or_default();
                match slot.get(&e.key) {
                    Some(prev) if prev != &e.kv => log.conflicts.push(format!(
                        "watchers disagree on key {} at revision {}: {:?} and {:?} (watcher {} via member {})",
                        e.key, e.rev, prev, e.kv, s.watcher, s.member
                    )),
                    Some(_) => {}
                    None => {
                        slot.insert(e.key.clone(), e.kv.clone());
                        if let Some(kv) = &e.kv {
                            log.by_value
                                .entry(kv.value.clone())
                                .or_default()
                                .push((e.rev, e.key.clone()));
                        }
                        log.by_key
                            .entry(e.key.clone())
                            .or_default()
                            .insert(e.rev, e.kv.clone());
                    }
                }
            }
            let compacted =
                matches!(s.end, WatchEnd::Canceled { compact_rev, .. } if compact_rev > 0);
            if s.range != WatchRange::All || compacted || s.created.is_none() {
                continue;
            }
            let last = s.events.iter().map(|e| e.rev).max().unwrap_or(0);
            let hi = last;
            if hi >= s.start_rev.max(1) {
                spans.push((s.start_rev.max(1), hi));
            }
        }
        spans.sort();
        for (a, b) in spans {
            match log.covered.last_mut() {
                Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
                _ => log.covered.push((a, b)),
            }
        }
        log
    }

    /// Whether every change in revisions `a..=b` is known.
    pub fn covers(&self, a: i64, b: i64) -> bool {
        if a > b {
            return true;
        }
        self.covered.iter().any(|&(x, y)| x <= a.max(1) && b <= y)
    }

    /// The covered intervals.
    pub fn covered(&self) -> &[(i64, i64)] {
        &self.covered
    }

    /// The change to `key` at exactly `rev`, if any was seen.
    pub fn change(&self, rev: i64, key: &str) -> Option<&Change> {
        self.by_rev.get(&rev).and_then(|m| m.get(key))
    }

    /// What `key` held at `rev`.
    pub fn state_at(&self, key: &str, rev: i64) -> KeyState {
        let last = self
            .by_key
            .get(key)
            .and_then(|m| m.range(..=rev).next_back());
        match last {
            Some((&r, c)) if self.covers(r + 1, rev) => KeyState::Known(c.clone()),
            None if self.covers(1, rev) => KeyState::Known(None),
            _ => KeyState::Unknown,
        }
    }

    /// (revision, key) of every put of `value`.
    pub fn revisions_of(&self, value: &str) -> &[(i64, String)] {
        self.by_value.get(value).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every put value with where it was put.
    pub fn values(&self) -> impl Iterator<Item = (&String, &Vec<(i64, String)>)> {
        self.by_value.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::{EventLog, KeyState};
    use crate::check::testkit::{kv, H};
    use crate::history::{WatchEnd, WatchRange};

    #[test]
    fn coverage_joins_sessions_and_stops_at_holes() {
        let mut h = H::new();
        // 1..=2 and 3..=7 vouched for by two sessions; 8 by none.
        h.watch(0, 1, &[(2, "x", Some("a"))]).watch(
            0,
            3,
            &[(5, "x", Some("b")), (7, "x", Some("c"))],
        );
        let log = EventLog::build(&h.h);
        assert_eq!(log.covered(), &[(1, 7)]);
        assert_eq!(log.state_at("x", 4), KeyState::Known(kv("a", 2)));
        assert_eq!(log.state_at("y", 7), KeyState::Known(None));
        assert_eq!(log.state_at("x", 7), KeyState::Known(kv("c", 7)));
        assert_eq!(log.state_at("x", 8), KeyState::Unknown);
    }

    #[test]
    fn single_key_and_compacted_sessions_vouch_for_nothing() {
        let mut h = H::new();
        h.watch_session(
            0,
            WatchRange::Key("x".into()),
            1,
            &[(2, "x", Some("a"))],
            0,
            WatchEnd::Stopped,
        );
        let canceled = WatchEnd::Canceled {
            compact_rev: 3,
            reason: String::new(),
        };
        h.watch_session(1, WatchRange::All, 1, &[(2, "x", Some("a"))], 0, canceled);
        let log = EventLog::build(&h.h);
        assert!(log.covered().is_empty());
        assert_eq!(log.state_at("x", 2), KeyState::Known(kv("a", 2)));
        assert_eq!(log.state_at("x", 3), KeyState::Unknown);
    }
}
