//! Watchers. Recorders watch every key from revision 1 for the whole run, moving to another member
//! every few seconds or after an error and resuming at their last revision + 1: their union is the
//! keyspace's history. Random watchers start at random revisions (sometimes compacted ones), on all
//! keys or one, and after a while either resume at last + 1 elsewhere or start over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, WatchOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use crate::history::{WatchEnd, WatchEvent, WatchRange, WatchSession};
use crate::record::{kv, Recorder};
use crate::workload::{key, KEYS};

/// Watcher IDs from here on are random watchers.
pub const RANDOM_BASE: u32 = 10;

/// What [`watch`] should do.
struct Plan {
    watcher: u32,
    recorder: bool,
    member: usize,
    range: WatchRange,
    start_rev: i64,
    resumed: bool,
    /// Stop at this instant.
    until: Instant,
    /// Or once an event of this revision or later has arrived.
    until_rev: i64,
}

impl Plan {
    /// A recorder's session: all keys from `start_rev` through `member` for `millis` ms.
    fn recorder(watcher: u32, member: usize, start_rev: i64, millis: u64) -> Plan {
        Plan {
            watcher,
            recorder: true,
            member,
            range: WatchRange::All,
            start_rev,
            resumed: start_rev > 1,
            until: Instant::now() + Duration::from_millis(millis),
            until_rev: i64::MAX,
        }
    }
}

/// Runs one watch session; returns it (also recorded).
async fn watch(client: &mut Client, plan: Plan, rec: &Recorder, stop: &AtomicBool) -> WatchSession {
    let mut s = WatchSession {
        watcher: plan.watcher,
        recorder: plan.recorder,
        member: plan.member,
        range: plan.range.clone(),
        start_rev: plan.start_rev,
        resumed: plan.resumed,
        invoke: rec.now(),
        created: None,
        events: Vec::new(),
        end: WatchEnd::Stopped,
        end_at: 0,
    };
    let opts = WatchOptions::new().with_start_revision(plan.start_rev);
    let (opts, k) = match &plan.range {
        WatchRange::All => (opts.with_all_keys(), String::new()),
        WatchRange::Key(k) => (opts, k.clone()),
    };
    let stream = tokio::time::timeout(Duration::from_secs(5), client.watch(k, Some(opts))).await;
    let mut stream = match stream {
        Ok(Ok(st)) => st,
        Ok(Err(e)) => return finish(s, WatchEnd::Error(e.to_string()), rec),
        Err(_) => return finish(s, WatchEnd::Error("watch not opened within 5s".into()), rec),
    };
    let mut batch = 0u32;
    loop {
        if Instant::now() >= plan.until || stop.load(Ordering::Relaxed) {
            return finish(s, WatchEnd::Stopped, rec);
        }
        let msg = match tokio::time::timeout(Duration::from_millis(250), stream.message()).await {
            Err(_) => continue,
            Ok(m) => m,
        };
        match msg {
            Ok(Some(resp)) => {
                if resp.created() && s.created.is_none() {
                    s.created = Some(rec.now());
                }
                if resp.canceled() {
                    let end = WatchEnd::Canceled {
                        compact_rev: resp.compact_revision(),
                        reason: resp.cancel_reason().to_string(),
                    };
                    return finish(s, end, rec);
                }
                let at = rec.now();
                batch += 1;
                for e in resp.events() {
                    let Some(k) = e.kv() else { continue };
                    let put = e.event_type() == etcd_client::EventType::Put;
                    s.events.push(WatchEvent {
                        at,
                        rev: k.mod_revision(),
                        key: String::from_utf8_lossy(k.key()).into_owned(),
                        kv: put.then(|| kv(k)),
                        batch,
                    });
                }
                if let Some(e) = s.events.last() {
                    if plan.recorder {
                        rec.recorded[plan.watcher as usize].fetch_max(e.rev, Ordering::Relaxed);
                    }
                    if e.rev >= plan.until_rev {
                        return finish(s, WatchEnd::Stopped, rec);
                    }
                }
            }
            Ok(None) => return finish(s, WatchEnd::Closed, rec),
            Err(e) => return finish(s, WatchEnd::Error(e.to_string()), rec),
        }
    }
}

fn finish(mut s: WatchSession, end: WatchEnd, rec: &Recorder) -> WatchSession {
    s.end = end;
    s.end_at = rec.now();
    rec.session(s.clone());
    s
}

/// The revision after the last one a session delivered.
fn resume_from(s: &WatchSession) -> i64 {
    s.events.last().map_or(s.start_rev, |e| e.rev + 1)
}

/// Recorder watcher `id` until `stop`; returns where it would resume (see [`catch_up`]).
pub async fn recorder(
    id: u32,
    seed: u64,
    mut clients: Vec<Client>,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) -> i64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0xec << 8) ^ u64::from(id));
    let mut next = 1;
    let mut member = id as usize % clients.len();
    while !stop.load(Ordering::Relaxed) {
        let plan = Plan::recorder(id, member, next, rng.random_range(3000..7000));
        let s = watch(&mut clients[member], plan, &rec, &stop).await;
        next = resume_from(&s);
        if matches!(
            s.end,
            WatchEnd::Canceled { .. } | WatchEnd::Error(_) | WatchEnd::Closed
        ) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        member = (member + 1 + rng.random_range(0..clients.len() - 1)) % clients.len();
    }
    next
}

/// Catches recorder `id` up to `fence` (the revision of the harness's last write) after the run:
/// sessions on each member in turn until the fence is delivered, or `deadline`.
pub async fn catch_up(
    id: u32,
    from: i64,
    fence: i64,
    clients: &mut [Client],
    rec: &Recorder,
    deadline: Instant,
) -> bool {
    let mut next = from;
    let stop = AtomicBool::new(false);
    let mut member = 0;
    while Instant::now() < deadline {
        if next > fence {
            return true;
        }
        let plan = Plan {
            until_rev: fence,
            ..Plan::recorder(id, member, next, 3000)
        };
        let s = watch(&mut clients[member], plan, rec, &stop).await;
        next = resume_from(&s).max(next);
        member = (member + 1) % clients.len();
    }
    next > fence
}

/// Random watcher `id` until `stop`.
pub async fn random(
    id: u32,
    seed: u64,
    mut clients: Vec<Client>,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0x3a7c << 8) ^ u64::from(id));
    let mut resume: Option<(WatchRange, i64)> = None;
    while !stop.load(Ordering::Relaxed) {
        let (range, start_rev, resumed) = match resume.take() {
            Some((range, from)) => (range, from, true),
            None => {
                let max = rec.max_rev.load(Ordering::Relaxed).max(1);
                let range = if rng.random_bool(0.6) {
                    WatchRange::All
                } else {
                    WatchRange::Key(key(rng.random_range(0..KEYS)))
                };
                (range, rng.random_range(1..=max + 1), false)
            }
        };
        let member = rng.random_range(0..clients.len());
        let plan = Plan {
            watcher: id,
            recorder: false,
            member,
            range: range.clone(),
            start_rev,
            resumed,
            until: Instant::now() + Duration::from_millis(rng.random_range(1000..4000)),
            until_rev: i64::MAX,
        };
        let s = watch(&mut clients[member], plan, &rec, &stop).await;
        let compacted = matches!(s.end, WatchEnd::Canceled { .. });
        if !compacted && rng.random_bool(0.5) {
            resume = Some((range, resume_from(&s)));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..500))).await;
    }
}
