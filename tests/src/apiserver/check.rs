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

/// True when `key` is in the range a watch `name` covers (a prefix, or `=key` for one key).
pub fn in_range(name: &str, key: &str) -> bool {
    match name.strip_prefix('=') {
        Some(exact) => key == exact,
        None => key.starts_with(name),
    }
}

pub async fn check(mut client: Client, recorded: Recorded, opts: &Options) -> Result<Report> {
    let mut violations = recorded.problems.clone();
    let uncertain: HashSet<&str> = recorded.uncertain.iter().map(String::as_str).collect();

    // 1. The last acknowledged write of every key is what the cluster holds now.
    let mut last: BTreeMap<&str, &Acked> = BTreeMap::new();
    for a in &recorded.acked {
        let e = last.entry(a.key.as_str()).or_insert(a);
        if a.revision > e.revision {
            *e = a;
        }
    }
    let now = client
        .get("/registry/", Some(GetOptions::new().with_prefix()))
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
    for (key, a) in &last {
        let got = held.get(*key);
        let ok = match (&a.value, got) {
            (Some(v), Some((rev, value))) => *rev == a.revision && value == v,
            (None, None) => true,
            _ => false,
        };
        let newer_unknown = uncertain.contains(key) && got.is_none_or(|g| g.0 > a.revision);
        if !ok && !newer_unknown {
            violations.push(format!(
                "lost write: {key} acknowledged {:?} at revision {}, the cluster holds {got:?}",
                a.value, a.revision
            ));
        }
    }

    // 2. Every watch delivered each acknowledged write of its range once, in revision order.
    for (name, events) in &recorded.watched {
        let mut prev = 0;
        let mut seen = BTreeSet::new();
        for (key, rev, _) in events {
            if *rev < prev {
                violations.push(format!("watch {name}: {key}@{rev} after revision {prev}"));
            }
            prev = *rev;
            if !seen.insert((key.as_str(), *rev)) {
                violations.push(format!("watch {name}: {key}@{rev} delivered twice"));
            }
        }
        let acked: BTreeSet<(&str, i64)> = recorded
            .acked
            .iter()
            .filter(|a| in_range(name, &a.key))
            .map(|a| (a.key.as_str(), a.revision))
            .collect();
        let missed: Vec<_> = acked.difference(&seen).take(5).collect();
        if !missed.is_empty() {
            violations.push(format!(
                "watch {name} missed acknowledged writes, e.g. {missed:?}"
            ));
        }
        let unknown: Vec<_> = seen
            .difference(&acked)
            .filter(|(k, _)| !uncertain.contains(k))
            .take(5)
            .collect();
        if !unknown.is_empty() {
            violations.push(format!(
                "watch {name} delivered writes nobody made: {unknown:?}"
            ));
        }
    }

    // 3. Every list is the state at its revision, as the acknowledged writes give it.
    for l in &recorded.list_snapshots {
        let mut state: BTreeMap<&str, i64> = BTreeMap::new();
        for a in recorded
            .acked
            .iter()
            .filter(|a| a.key.starts_with(&l.prefix))
        {
            if a.revision > l.revision {
                continue;
            }
            match a.value {
                Some(_) => state.insert(a.key.as_str(), a.revision),
                None => state.remove(a.key.as_str()),
            };
        }
        // Writes that may or may not have applied, and objects older than the run, are not known.
        let unsure = recorded.uncertain.iter().any(|k| k.starts_with(&l.prefix));
        let listed_known: BTreeMap<&str, i64> = l
            .items
            .iter()
            .filter(|(_, r)| *r > recorded.start_revision)
            .map(|(k, r)| (k.as_str(), *r))
            .collect();
        if !unsure && listed_known != state {
            violations.push(format!(
                "list of {} at revision {} is not the state at that revision ({} listed, {} expected)",
                l.prefix,
                l.revision,
                listed_known.len(),
                state.len()
            ));
        }
    }
    Ok(Report {
        duration: opts.duration,
        recorded,
        violations,
    })
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
             ({} resumes, {} progress notifications), lists {} ({} too old), compactions {}, \
             uncertain writes {}, election leases expired {}",
            r.acked.len(),
            r.conflicts,
            r.watched.len(),
            r.watch_resumes,
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
