//! The workload's tasks: writers, listers, watches, the compactor and the leader-election lease.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use tokio::sync::watch;

use super::watch::{watch_resource, Conn};
use super::{Acked, Options, Recorded};
use crate::pki::Pki;

pub(super) type Shared = Arc<Mutex<Recorded>>;

pub(super) fn lock(r: &Shared) -> std::sync::MutexGuard<'_, Recorded> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// Times `f`, recording its latency (or error) under `kind`.
async fn timed<T>(
    rec: &Shared,
    kind: &'static str,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, etcd_client::Error> {
    let t = Instant::now();
    let r = f.await;
    let mut g = lock(rec);
    let l = g.ops.entry(kind).or_default();
    match &r {
        Ok(_) => l.ok.push(t.elapsed()),
        Err(e) => {
            l.errors += 1;
            l.first_error.get_or_insert_with(|| e.to_string());
        }
    }
    r
}

/// Calls `f` until it succeeds, for up to [`super::RETRY_FOR`]; then fails with its last error.
pub(super) async fn retrying<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = Instant::now() + super::RETRY_FOR;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("{what}, retried for {:?}", super::RETRY_FOR)))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// A small deterministic generator (the workload needs variety, not randomness).
fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

/// The prefix of resource kind `r`.
pub fn resource_prefix(r: usize) -> String {
    format!("/registry/r{r}/")
}

/// The end of the range of keys starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// When the load stops: after the run's duration, or earlier when [`Deadline::now`] is called.
#[derive(Clone)]
pub(super) struct Deadline(Arc<Mutex<Instant>>);

impl Deadline {
    pub(super) fn after(d: Duration) -> Deadline {
        Deadline(Arc::new(Mutex::new(Instant::now() + d)))
    }

    fn passed(&self) -> bool {
        Instant::now() >= *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the load now.
    pub(super) fn now(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
}

/// Runs every task until `deadline` has passed and the watches have seen every write.
pub async fn run(
    pki: Pki,
    endpoints: Vec<String>,
    opts: Options,
    rec: Shared,
    deadline: Deadline,
) -> Result<Recorded> {
    let opts = &opts;
    let eps: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let client = retrying("connecting", || {
        crate::grpc::connect_with(&pki, &eps, false)
    })
    .await?;
    let start = retrying("reading the start revision", || {
        let mut c = client.clone();
        async move { Ok(c.get("/registry/", None).await?) }
    })
    .await?;
    let start_rev = start.header().map(|h| h.revision()).unwrap_or(0);
    let (stop_tx, stop) = watch::channel(false);

    let own = || Conn::Own;
    let mut names: Vec<(String, String, Conn)> = (0..opts.resources)
        .map(|r| (resource_prefix(r), resource_prefix(r), own()))
        .chain((0..opts.small_watches).map(|i| {
            let key = format!("{}ns{}/o{}", resource_prefix(0), i % 3, i);
            (format!("={key}"), key, own())
        }))
        .collect();
    let mut pool = Conn::shared(endpoints.len());
    for i in 0..opts.open_streams {
        if i > 0 && i % super::STREAMS_PER_CONNECTION == 0 {
            pool = Conn::shared(endpoints.len());
        }
        let resources = opts.resources.max(1);
        let o = (i / resources) % opts.objects.max(1);
        let key = format!("{}ns{}/o{o}", resource_prefix(i % resources), o % 3);
        names.push((format!("={key}#{i}"), key, pool.clone()));
    }
    let mut watches = Vec::new();
    for (i, (name, key, conn)) in names.into_iter().enumerate() {
        let first_member = opts.watch_member.unwrap_or(i) % endpoints.len().max(1);
        watches.push(tokio::spawn(watch_resource(
            pki.clone(),
            endpoints.clone(),
            conn,
            first_member,
            name,
            key,
            start_rev + 1,
            opts.page,
            opts.watch_pause,
            rec.clone(),
            stop.clone(),
        )));
    }
    let event_lease = retrying("granting the events' lease", || {
        let mut c = client.clone();
        async move { Ok(c.lease_grant(3600, None).await?) }
    })
    .await?
    .id();
    let mut load = Vec::new();
    for w in 0..opts.writers {
        load.push(tokio::spawn(writer(
            client.clone(),
            w,
            opts.clone(),
            deadline.clone(),
            event_lease,
            rec.clone(),
        )));
    }
    load.push(tokio::spawn(lister(
        client.clone(),
        opts.clone(),
        deadline.clone(),
        rec.clone(),
    )));
    load.push(tokio::spawn(compactor(
        client.clone(),
        opts.clone(),
        deadline.clone(),
        rec.clone(),
    )));
    load.push(tokio::spawn(leader_election(
        client.clone(),
        deadline,
        rec.clone(),
    )));
    for t in load {
        t.await?;
    }
    wait_watches_caught_up(&rec, Duration::from_secs(20)).await;
    let _ = stop_tx.send(true);
    for t in watches {
        t.await?;
    }
    let mut r = std::mem::take(&mut *lock(&rec));
    r.acked.retain(|a| a.revision > start_rev);
    r.start_revision = start_rev;
    Ok(r)
}

/// Waits until every watch has delivered the last acknowledged write of its range (or re-listed
/// past it). The writers have stopped: the last writes are known once.
async fn wait_watches_caught_up(rec: &Shared, within: Duration) {
    let deadline = Instant::now() + within;
    let last_acked: Vec<(String, i64)> = {
        let g = lock(rec);
        g.watched
            .keys()
            .map(|name| {
                let last = g
                    .acked
                    .iter()
                    .filter(|a| super::check::in_range(name, &a.key))
                    .map(|a| a.revision)
                    .max()
                    .unwrap_or(0);
                (name.clone(), last)
            })
            .collect()
    };
    while Instant::now() < deadline {
        let behind = {
            let g = lock(rec);
            last_acked.iter().any(|(name, last)| {
                let delivered = g
                    .watched
                    .get(name)
                    .and_then(|e| e.last())
                    .map_or(0, |e| e.1);
                let listed = g
                    .relisted
                    .get(name)
                    .and_then(|r| r.last())
                    .map_or(0, |r| r.1);
                delivered.max(listed) < *last
            })
        };
        if !behind {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Objects created, updated and deleted as the API server's GuaranteedUpdate does it; events
/// created with a one-hour lease.
async fn writer(
    mut c: Client,
    w: usize,
    opts: super::Options,
    deadline: Deadline,
    event_lease: i64,
    rec: Shared,
) {
    let mut seed = (w as u64 * 7919 + 17) ^ opts.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut known: HashMap<String, i64> = HashMap::new();
    let mut n = 0u64;
    while !deadline.passed() {
        n += 1;
        let pick = next(&mut seed);
        if pick.is_multiple_of(8) {
            let key = format!("/registry/events/ns0/e{w}-{n}");
            let put = TxnOp::put(
                key.as_str(),
                "event",
                Some(PutOptions::new().with_lease(event_lease)),
            );
            let cmp = Compare::create_revision(key.as_str(), CompareOp::Equal, 0);
            let r = timed(
                &rec,
                "create event",
                c.txn(Txn::new().when([cmp]).and_then([put])),
            )
            .await;
            record(&rec, &key, r, Some("event".into()));
            continue;
        }
        let r = (pick as usize) % opts.resources;
        let o = (pick as usize / 7) % opts.objects;
        let key = format!("{}ns{}/o{}", resource_prefix(r), o % 3, o);
        let rev = match known.get(&key) {
            Some(r) => *r,
            None => match timed(&rec, "get", c.get(key.as_str(), None)).await {
                Ok(g) => g.kvs().first().map_or(0, |kv| kv.mod_revision()),
                Err(_) => continue,
            },
        };
        let value = format!("w{w}-{n}");
        let (kind, cmp, op, written) = if rev == 0 {
            let cmp = Compare::create_revision(key.as_str(), CompareOp::Equal, 0);
            (
                "create",
                cmp,
                TxnOp::put(key.as_str(), value.as_str(), None),
                Some(value),
            )
        } else if pick % 10 == 1 {
            let cmp = Compare::mod_revision(key.as_str(), CompareOp::Equal, rev);
            ("delete", cmp, TxnOp::delete(key.as_str(), None), None)
        } else {
            let cmp = Compare::mod_revision(key.as_str(), CompareOp::Equal, rev);
            (
                "update",
                cmp,
                TxnOp::put(key.as_str(), value.as_str(), None),
                Some(value),
            )
        };
        let txn = Txn::new()
            .when([cmp])
            .and_then([op])
            .or_else([TxnOp::get(key.as_str(), None)]);
        match timed(&rec, kind, c.txn(txn)).await {
            Ok(t) if t.succeeded() => {
                let at = t.header().map(|h| h.revision()).unwrap_or(0);
                known.insert(key.clone(), if written.is_some() { at } else { 0 });
                lock(&rec).acked.push(Acked {
                    key,
                    revision: at,
                    value: written,
                });
            }
            // A conflict: take the current revision from the Else branch and retry later.
            Ok(t) => {
                let current = t.op_responses().into_iter().find_map(|r| match r {
                    TxnOpResponse::Get(g) => {
                        Some(g.kvs().first().map_or(0, |kv| kv.mod_revision()))
                    }
                    _ => None,
                });
                known.insert(key, current.unwrap_or(0));
                lock(&rec).conflicts += 1;
            }
            Err(_) => {
                known.remove(&key);
                lock(&rec).uncertain.push(key);
            }
        }
    }
}

/// Records a plain create's outcome.
fn record(
    rec: &Shared,
    key: &str,
    r: Result<etcd_client::TxnResponse, etcd_client::Error>,
    value: Option<String>,
) {
    let mut g = lock(rec);
    match r {
        Ok(t) if t.succeeded() => {
            let revision = t.header().map(|h| h.revision()).unwrap_or(0);
            g.acked.push(Acked {
                key: key.to_string(),
                revision,
                value,
            });
        }
        Ok(_) => g
            .problems
            .push(format!("create of the new key {key} found it existing")),
        Err(_) => g.uncertain.push(key.to_string()),
    }
}

/// Paginated lists as the API server's reflector LISTs: pages of `opts.page` at the first page's
/// revision, continued from the last key.
async fn lister(mut c: Client, opts: super::Options, deadline: Deadline, rec: Shared) {
    let mut r = 0;
    while !deadline.passed() {
        let prefix = resource_prefix(r % opts.resources);
        r += 1;
        let t = Instant::now();
        match list(&mut c, &prefix, opts.page).await {
            Ok(seen) => {
                let mut g = lock(&rec);
                g.ops.entry("list").or_default().ok.push(t.elapsed());
                g.lists += 1;
                if g.list_snapshots.len() < 500 {
                    g.list_snapshots.push(seen);
                }
            }
            // A failed call (a member down or cut off, no leader) is an error a client retries;
            // only an answer that contradicts itself (count vs pages) is a problem.
            Err(e) => match e.downcast_ref::<etcd_client::Error>() {
                Some(e) if e.to_string().contains("compacted") => lock(&rec).lists_too_old += 1,
                Some(_) => lock(&rec).ops.entry("list").or_default().errors += 1,
                None => lock(&rec).problems.push(format!("list {prefix}: {e:#}")),
            },
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One paginated list: (prefix, revision, keys with mod revisions); checks count and order itself.
pub(super) async fn list(c: &mut Client, prefix: &str, page: i64) -> Result<super::ListSnapshot> {
    let first = c
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_limit(page)),
        )
        .await?;
    let rev = first.header().map(|h| h.revision()).unwrap_or(0);
    let count = first.count();
    let mut items: Vec<(String, i64)> = Vec::new();
    let mut resp = first;
    loop {
        for kv in resp.kvs() {
            items.push((kv.key_str()?.to_string(), kv.mod_revision()));
        }
        if !resp.more() {
            break;
        }
        let Some((last, _)) = items.last() else { break };
        let from = format!("{last}\0");
        let opts = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_limit(page)
            .with_revision(rev);
        resp = c.get(from, Some(opts)).await?;
    }
    anyhow::ensure!(
        items.len() as i64 == count,
        "list of {prefix} at {rev}: {} items over the pages, count {count}",
        items.len()
    );
    Ok(super::ListSnapshot {
        prefix: prefix.to_string(),
        revision: rev,
        items,
    })
}

/// The API server's compaction: a Txn on the version of `compact_rev_key`, then Compact to the
/// revision of the previous round.
async fn compactor(mut c: Client, opts: super::Options, deadline: Deadline, rec: Shared) {
    const KEY: &str = "compact_rev_key";
    let mut version = 0;
    let mut previous = 0;
    let mut next = Instant::now() + opts.compact_every;
    loop {
        // Short sleeps, so an early stop is seen at once.
        tokio::time::sleep(Duration::from_millis(200)).await;
        if deadline.passed() {
            return;
        }
        if Instant::now() < next {
            continue;
        }
        next += opts.compact_every;
        let txn = Txn::new()
            .when([Compare::version(KEY, CompareOp::Equal, version)])
            .and_then([TxnOp::put(KEY, previous.to_string(), None)])
            .or_else([TxnOp::get(KEY, None)]);
        let Ok(t) = timed(&rec, "compaction txn", c.txn(txn)).await else {
            continue;
        };
        if !t.succeeded() {
            version = t
                .op_responses()
                .into_iter()
                .find_map(|r| match r {
                    TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.version()),
                    _ => None,
                })
                .unwrap_or(0);
            continue;
        }
        version += 1;
        let rev = t.header().map(|h| h.revision()).unwrap_or(0);
        if previous > 0
            && timed(&rec, "compact", c.compact(previous, None))
                .await
                .is_ok()
        {
            lock(&rec).compactions += 1;
        }
        previous = rev;
    }
}

/// A leader-election lease object renewed every 2 s under a short etcd lease kept alive. When the
/// etcd lease expired anyway (keep-alives failing through a fault for longer than its TTL), its key
/// went with it: that is no lost write but an election lost, and the renewer starts over with a new
/// lease, as a scheduler that lost its lock campaigns again.
async fn leader_election(mut c: Client, deadline: Deadline, rec: Shared) {
    let key = "/registry/leases/kube-system/kube-scheduler";
    let mut lease = None;
    // The key's mod revision as last seen (0: absent); None after a read failed, so unknown.
    let mut rev = Some(0);
    // Values of renewals that failed without an answer: each may still commit later (a timed-out
    // proposal in a log), after the renewer read the key again.
    let mut unanswered: Vec<String> = Vec::new();
    let mut n = 0;
    while !deadline.passed() {
        n += 1;
        // A renewer that could not read the object reads it again before it writes (client-go's
        // leader election gets it first): guessing "absent" would make its create fail on a key
        // it holds.
        if rev.is_none() {
            rev = current_mod_revision(&mut c, key).await;
        }
        let Some(rev_now) = rev else {
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        };
        let id = match lease {
            Some(id) => id,
            None => match timed(&rec, "lease grant", c.lease_grant(15, None)).await {
                Ok(l) => *lease.insert(l.id()),
                Err(_) => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            },
        };
        let _ = timed(&rec, "lease keepalive", async {
            let (mut k, mut s) = c.lease_keep_alive(id).await?;
            k.keep_alive().await?;
            s.message().await
        })
        .await;
        let value = format!("renew-{n}");
        let cmp = if rev_now == 0 {
            Compare::create_revision(key, CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(key, CompareOp::Equal, rev_now)
        };
        let put = TxnOp::put(key, value.as_str(), Some(PutOptions::new().with_lease(id)));
        let txn = Txn::new()
            .when([cmp])
            .and_then([put])
            .or_else([TxnOp::get(key, None)]);
        match timed(&rec, "lease renew", c.txn(txn)).await {
            Ok(t) if t.succeeded() => {
                let at = t.header().map(|h| h.revision()).unwrap_or(0);
                rev = Some(at);
                lock(&rec).acked.push(Acked {
                    key: key.into(),
                    revision: at,
                    value: Some(value),
                });
            }
            Ok(t) => {
                // The Txn's else branch read the key: one of our unanswered renewals landing late
                // explains the failed compare; anything else is a lost Txn.
                let holder = t.op_responses().into_iter().find_map(|r| match r {
                    TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
                    _ => None,
                });
                let late = holder.is_some_and(|v| unanswered.iter().any(|u| u.as_bytes() == v));
                let expired = match c.lease_time_to_live(id, None).await {
                    Ok(t) => t.ttl() <= 0,
                    Err(e) => e.to_string().contains("lease not found"),
                };
                {
                    let mut g = lock(&rec);
                    if expired {
                        g.lease_expiries += 1;
                        g.uncertain.push(key.into());
                        lease = None;
                    } else if late {
                        g.uncertain.push(key.into());
                    } else {
                        g.problems.push(format!(
                            "the only renewer of {key} lost its Txn at {rev_now}"
                        ));
                    }
                }
                rev = current_mod_revision(&mut c, key).await;
            }
            Err(_) => {
                lock(&rec).uncertain.push(key.into());
                unanswered.push(value);
                rev = current_mod_revision(&mut c, key).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The key's mod revision now (0: absent; None: the read failed).
async fn current_mod_revision(c: &mut Client, key: &str) -> Option<i64> {
    let got = c.get(key, None).await.ok()?;
    Some(got.kvs().first().map_or(0, |kv| kv.mod_revision()))
}
