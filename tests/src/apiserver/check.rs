//! What the workload checks once it ran: no acknowledged write lost, watches complete and in order,
//! lists consistent snapshots; and the figures it prints.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::time::Duration;

use anyhow::Result;
use etcd_client::{Client, GetOptions};

use super::{Acked, Options, Recorded};

/// The outcome of one run: figures per operation kind and every violation found.
#[derive(Debug)]
pub struct Report {
    pub duration: Duration,
    pub recorded: Recorded,
    /// Violations of what a control plane needs; empty when the run passed.
    pub violations: Vec<String>,
}

/// True when `key` is in the range a watch `name` covers (a prefix, or `=key` or `=key#n` for one key).
pub fn in_range(name: &str, key: &str) -> bool {
    match name.strip_prefix('=') {
        // An open stream's name ends in `#n`, as several may watch one key.
        Some(exact) => key == exact.split('#').next().unwrap_or(exact),
        None => key.starts_with(name),
    }
}

pub async fn check(client: Client, recorded: Recorded, opts: &Options) -> Result<Report> {
    let now = super::tasks::retrying("reading back /registry/", || {
        let mut c = client.clone();
        async move {
            let opts = GetOptions::new().with_prefix();
            Ok(c.get("/registry/", Some(opts)).await?)
        }
    })
    .await?;
    let held: BTreeMap<String, (i64, String)> = now
        .kvs()
        .iter()
        .map(|kv| {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let value = String::from_utf8_lossy(kv.value()).into_owned();
            (key, (kv.mod_revision(), value))
        })
        .collect();
    let violations = verify(&recorded, &held);
    Ok(Report {
        duration: opts.duration,
        recorded,
        violations,
    })
}

/// At most this many examples in one violation's message.
const EXAMPLES: usize = 5;

/// Checks what the tasks recorded against `held`, what the cluster holds under `/registry/` at the
/// end (key → mod revision, value). Pure, so its rules are unit-tested.
pub fn verify(recorded: &Recorded, held: &BTreeMap<String, (i64, String)>) -> Vec<String> {
    let mut violations = recorded.problems.clone();
    let uncertain: HashSet<&str> = recorded.uncertain.iter().map(String::as_str).collect();
    // Tasks push their acknowledgements when their calls return, which is not the order the cluster
    // applied them in: two writers of one key can push in the opposite order. Only the revision
    // orders writes.
    let mut acked: Vec<&Acked> = recorded.acked.iter().collect();
    acked.sort_by_key(|a| a.revision);

    // 1. The last acknowledged write of every key is what the cluster holds now.
    let mut last: BTreeMap<&str, &Acked> = BTreeMap::new();
    for a in &acked {
        last.insert(a.key.as_str(), a);
    }
    for (key, a) in &last {
        let got = held.get(*key);
        let ok = match (&a.value, got) {
            (Some(v), Some((rev, value))) => *rev == a.revision && value == v,
            (None, None) => true,
            _ => false,
        };
        // A write of this key that failed without an answer may have applied after this one.
        let newer_unknown = uncertain.contains(key) && got.is_none_or(|g| g.0 > a.revision);
        if !ok && !newer_unknown {
            violations.push(format!(
                "lost write: {key} acknowledged {:?} at revision {}, the cluster holds {}",
                a.value,
                a.revision,
                match got {
                    Some((rev, value)) => format!("{value:?} at revision {rev}"),
                    None => "nothing".to_string(),
                }
            ));
        }
    }

    // 2. Every watch delivered each acknowledged write of its range once, in revision order, but
    //    for the revisions a re-list after a compaction covered instead.
    for (name, events) in &recorded.watched {
        let mut prev: Option<(&str, i64)> = None;
        let mut seen = BTreeSet::new();
        for (key, rev, _) in events {
            if let Some((pk, pr)) = prev {
                if *rev < pr {
                    violations.push(format!(
                        "watch {name} reordered: {key} at revision {rev} after {pk} at revision {pr}"
                    ));
                }
            }
            prev = Some((key.as_str(), *rev));
            if !seen.insert((key.as_str(), *rev)) {
                violations.push(format!(
                    "watch {name} delivered {key} at revision {rev} twice"
                ));
            }
        }
        let gaps = recorded.relisted.get(name).map_or(&[][..], Vec::as_slice);
        let relisted = |rev: i64| gaps.iter().any(|(from, to)| (*from..=*to).contains(&rev));
        let ranged: BTreeSet<(&str, i64)> = acked
            .iter()
            .filter(|a| in_range(name, &a.key))
            .map(|a| (a.key.as_str(), a.revision))
            .collect();
        let missed: Vec<_> = ranged
            .difference(&seen)
            .filter(|(_, r)| !relisted(*r))
            .collect();
        if !missed.is_empty() {
            violations.push(format!(
                "watch {name} missed {} acknowledged writes, e.g. {}",
                missed.len(),
                at_revisions(missed.iter().copied())
            ));
        }
        let unknown: Vec<_> = seen
            .iter()
            .filter(|(k, r)| !ranged.contains(&(*k, *r)) && !uncertain.contains(k))
            .collect();
        if !unknown.is_empty() {
            violations.push(format!(
                "watch {name} delivered {} writes nobody made, e.g. {}",
                unknown.len(),
                at_revisions(unknown.iter().copied())
            ));
        }
    }

    // 3. Every list is the state at its revision, as the acknowledged writes give it. A key with a
    //    write that may or may not have applied, and objects older than the run, are not known:
    //    only they are left out.
    for l in &recorded.list_snapshots {
        let known = |k: &str| k.starts_with(&l.prefix) && !uncertain.contains(k);
        let mut expected: BTreeMap<&str, i64> = BTreeMap::new();
        for a in acked
            .iter()
            .take_while(|a| a.revision <= l.revision)
            .filter(|a| known(&a.key))
        {
            match a.value {
                Some(_) => expected.insert(a.key.as_str(), a.revision),
                None => expected.remove(a.key.as_str()),
            };
        }
        let listed: BTreeMap<&str, i64> = l
            .items
            .iter()
            .filter(|(k, r)| *r > recorded.start_revision && known(k))
            .map(|(k, r)| (k.as_str(), *r))
            .collect();
        let keys: BTreeSet<&str> = expected.keys().chain(listed.keys()).copied().collect();
        let wrong: Vec<String> = keys
            .into_iter()
            .filter(|k| listed.get(k) != expected.get(k))
            .map(|k| {
                let rev = |m: &BTreeMap<&str, i64>| {
                    m.get(k)
                        .map_or("absent".to_string(), |r| format!("at revision {r}"))
                };
                format!("{k} listed {}, expected {}", rev(&listed), rev(&expected))
            })
            .collect();
        if !wrong.is_empty() {
            violations.push(format!(
                "list of {} at revision {} is not the state at that revision: {} keys differ, e.g. {}",
                l.prefix,
                l.revision,
                wrong.len(),
                wrong
                    .iter()
                    .take(EXAMPLES)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    violations
}

/// `key@revision, ...` for the first few.
fn at_revisions<'a>(writes: impl Iterator<Item = &'a (&'a str, i64)>) -> String {
    writes
        .take(EXAMPLES)
        .map(|(k, r)| format!("{k}@{r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.recorded;
        let secs = self.duration.as_secs_f64().max(0.001);
        writeln!(f, "| operation | ok | errors | ops/s | p50 ms | p99 ms |")?;
        writeln!(f, "|---|---:|---:|---:|---:|---:|")?;
        for (kind, l) in &r.ops {
            let mut s = l.ok.clone();
            s.sort();
            writeln!(
                f,
                "| {kind} | {} | {} | {:.1} | {:.2} | {:.2} |",
                s.len(),
                l.errors,
                s.len() as f64 / secs,
                percentile(&s, 0.5).as_secs_f64() * 1e3,
                percentile(&s, 0.99).as_secs_f64() * 1e3
            )?;
        }
        let events: usize = r.watched.values().map(Vec::len).sum();
        writeln!(
            f,
            "acknowledged writes {}, conflicts retried {}, watch events {events} on {} watches \
             ({} streams opened, {} resumes, {} re-lists after compaction, {} progress notifications), lists {} \
             ({} too old), compactions {}, uncertain writes {}, election leases expired {}",
            r.acked.len(),
            r.conflicts,
            r.watched.len(),
            r.streams.len(),
            r.watch_resumes,
            r.relists,
            r.progress_notifications,
            r.lists,
            r.lists_too_old,
            r.compactions,
            r.uncertain.len(),
            r.lease_expiries
        )?;
        for (kind, l) in &r.ops {
            if let Some(e) = &l.first_error {
                writeln!(
                    f,
                    "first {kind} error: {}",
                    e.chars().take(200).collect::<String>()
                )?;
            }
        }
        for end in r.watch_ends.iter().take(5) {
            writeln!(f, "watch resumed: {end}")?;
        }
        if self.violations.is_empty() {
            write!(
                f,
                "checks: no lost write, no missed or reordered event, every list consistent"
            )
        } else {
            write!(
                f,
                "VIOLATIONS ({}):\n{}",
                self.violations.len(),
                self.violations.join("\n")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::ListSnapshot;

    fn put(key: &str, revision: i64) -> Acked {
        Acked {
            key: key.into(),
            revision,
            value: Some(format!("v{revision}")),
        }
    }

    fn delete(key: &str, revision: i64) -> Acked {
        Acked {
            key: key.into(),
            revision,
            value: None,
        }
    }

    fn list(prefix: &str, revision: i64, items: &[(&str, i64)]) -> ListSnapshot {
        ListSnapshot {
            prefix: prefix.into(),
            revision,
            items: items.iter().map(|(k, r)| (k.to_string(), *r)).collect(),
        }
    }

    fn held(items: &[(&str, i64)]) -> BTreeMap<String, (i64, String)> {
        items
            .iter()
            .map(|(k, r)| (k.to_string(), (*r, format!("v{r}"))))
            .collect()
    }

    /// Two writers of `/registry/a/x`: the create at 10 and the delete at 12, pushed delete first;
    /// `/registry/a/y` created at 11. A watch of `/registry/a/` saw all three.
    fn out_of_order() -> Recorded {
        let mut r = Recorded {
            start_revision: 9,
            acked: vec![
                delete("/registry/a/x", 12),
                put("/registry/a/y", 11),
                put("/registry/a/x", 10),
            ],
            ..Recorded::default()
        };
        r.watched.insert(
            "/registry/a/".into(),
            vec![
                ("/registry/a/x".into(), 10, true),
                ("/registry/a/y".into(), 11, true),
                ("/registry/a/x".into(), 12, false),
            ],
        );
        r.list_snapshots = vec![
            list(
                "/registry/a/",
                11,
                &[("/registry/a/x", 10), ("/registry/a/y", 11)],
            ),
            list("/registry/a/", 12, &[("/registry/a/y", 11)]),
        ];
        r
    }

    #[test]
    fn writes_acknowledged_out_of_revision_order_are_no_violation() {
        let r = out_of_order();
        assert_eq!(
            verify(&r, &held(&[("/registry/a/y", 11)])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_watch_that_missed_or_reordered_a_write_is_reported_with_key_and_revisions() {
        let mut r = out_of_order();
        let events = r.watched.get_mut("/registry/a/").unwrap();
        events.swap(0, 1);
        events.pop();
        let v = verify(&r, &held(&[("/registry/a/y", 11)]));
        assert_eq!(
            v,
            vec![
                "watch /registry/a/ reordered: /registry/a/x at revision 10 after /registry/a/y at revision 11",
                "watch /registry/a/ missed 1 acknowledged writes, e.g. /registry/a/x@12",
            ]
        );
    }

    #[test]
    fn a_list_or_final_state_that_differs_is_reported_with_key_and_revisions() {
        let mut r = out_of_order();
        r.list_snapshots[1].items.push(("/registry/a/x".into(), 10));
        let v = verify(&r, &held(&[("/registry/a/x", 10), ("/registry/a/y", 11)]));
        assert_eq!(
            v,
            vec![
                "lost write: /registry/a/x acknowledged None at revision 12, the cluster holds \"v10\" at revision 10",
                "list of /registry/a/ at revision 12 is not the state at that revision: 1 keys differ, \
                 e.g. /registry/a/x listed at revision 10, expected absent",
            ]
        );
    }

    #[test]
    fn an_unsure_write_excludes_only_its_own_key() {
        let mut r = out_of_order();
        // A write of z failed without an answer; it applied at 13 and the watch saw it.
        r.uncertain.push("/registry/a/z".into());
        r.watched
            .get_mut("/registry/a/")
            .unwrap()
            .push(("/registry/a/z".into(), 13, true));
        r.list_snapshots.push(list(
            "/registry/a/",
            13,
            &[("/registry/a/z", 13)], // y is missing: still a violation
        ));
        let v = verify(&r, &held(&[("/registry/a/y", 11), ("/registry/a/z", 13)]));
        assert_eq!(
            v,
            vec![
                "list of /registry/a/ at revision 13 is not the state at that revision: 1 keys differ, \
                 e.g. /registry/a/y listed absent, expected at revision 11"
            ]
        );
    }

    #[test]
    fn writes_a_relist_covered_need_no_event_but_later_ones_do() {
        let mut r = out_of_order();
        r.acked.push(put("/registry/a/y", 14));
        // The watch was compacted away at 11, re-listed at 12 and missed the write at 14.
        r.relisted.insert("/registry/a/".into(), vec![(11, 12)]);
        r.watched.get_mut("/registry/a/").unwrap().truncate(1);
        let v = verify(&r, &held(&[("/registry/a/y", 14)]));
        assert_eq!(
            v,
            vec!["watch /registry/a/ missed 1 acknowledged writes, e.g. /registry/a/y@14"]
        );
    }
}
