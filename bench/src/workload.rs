//! The workloads, each driving a pool of gRPC connections for a fixed duration and returning raw
//! per-operation latencies. Clients are spread round-robin over the connections (etcd benchmark's
//! `--clients` over `--conns`), and the connections over the members.

use crate::fsync_floor::micros;
use crate::ledger::{key_of, value_of, Ledger};
use etcd_client::{Client, EventType, GetOptions, WatchStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What one workload run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Successful operations (for the watch workload: delivered events).
    pub ops: u64,
    /// Failed operations.
    pub errors: u64,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    /// Latency of every successful operation, µs.
    pub latencies: Vec<u32>,
    /// A remark for the table (e.g. undelivered watch events).
    pub note: String,
}

/// Cheap deterministic per-client random numbers (xorshift64*), so runs are repeatable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn pick(pool: &[Client], i: usize) -> Client {
    pool[i % pool.len()].clone()
}

/// Runs `clients` tasks, each calling `op` until `duration` has passed, and merges their results.
async fn closed_loop<F, Fut>(pool: &[Client], clients: usize, duration: Duration, op: F) -> Outcome
where
    F: Fn(Client, usize, u64, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let deadline = Instant::now() + duration;
    closed_loop_while(pool, clients, move || Instant::now() < deadline, op).await
}

/// Runs `clients` tasks, each calling `op` while `keep_going()` says so, and merges their results.
async fn closed_loop_while<F, Fut, K>(
    pool: &[Client],
    clients: usize,
    keep_going: K,
    op: F,
) -> Outcome
where
    F: Fn(Client, usize, u64, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
    K: Fn() -> bool + Clone + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (client, op, keep_going) = (pick(pool, i), op.clone(), keep_going.clone());
            tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) << 20));
                let mut out = Outcome::default();
                let mut seq = 0u64;
                while keep_going() {
                    seq += 1;
                    let t0 = Instant::now();
                    match op(client.clone(), i, seq, rng.next()).await {
                        Ok(()) => {
                            out.ops += 1;
                            out.latencies.push(micros(t0.elapsed()));
                        }
                        Err(e) => {
                            out.errors += 1;
                            if out.note.is_empty() {
                                out.note = format!("first error: {e}");
                            }
                        }
                    }
                }
                out
            })
        })
        .collect();
    let mut total = Outcome::default();
    for task in futures::future::join_all(tasks).await {
        match task {
            Ok(out) => {
                total.ops += out.ops;
                total.errors += out.errors;
                total.latencies.extend(out.latencies);
                if total.note.is_empty() {
                    total.note = out.note;
                }
            }
            Err(_) => total.errors += 1,
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Puts 256-byte values to random keys of the keyspace; every acknowledgement is recorded in `ledger`.
pub async fn put(
    pool: &[Client],
    clients: usize,
    duration: Duration,
    keyspace: u64,
    ledger: Arc<Ledger>,
) -> Outcome {
    let deadline = Instant::now() + duration;
    put_while(
        pool,
        clients,
        move || Instant::now() < deadline,
        keyspace,
        ledger,
    )
    .await
}

/// [`put`] while `keep_going()` says so (the scale suite stops it when a compaction or defrag is done).
pub async fn put_while(
    pool: &[Client],
    clients: usize,
    keep_going: impl Fn() -> bool + Clone + Send + 'static,
    keyspace: u64,
    ledger: Arc<Ledger>,
) -> Outcome {
    closed_loop_while(pool, clients, keep_going, move |mut c, i, seq, r| {
        let ledger = ledger.clone();
        async move {
            let key = r % keyspace;
            let tag = ((i as u64) << 40) | seq;
            match c.put(key_of(key), value_of(tag), None).await {
                Ok(resp) => {
                    let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
                    ledger.acked(key, rev, tag);
                    Ok(())
                }
                Err(e) => {
                    // The put may or may not have committed: the key's final value is uncertain.
                    ledger.uncertain(key);
                    Err(e.to_string())
                }
            }
        }
    })
    .await
}

/// Reads random keys of the keyspace, linearizable or serializable.
pub async fn get(
    pool: &[Client],
    clients: usize,
    duration: Duration,
    keyspace: u64,
    serializable: bool,
) -> Outcome {
    closed_loop(pool, clients, duration, move |mut c, _, _, r| async move {
        let opts = serializable.then(|| GetOptions::new().with_serializable());
        c.get(key_of(r % keyspace), opts)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
}

/// Lease churn: each operation is grant (TTL 60 s) + one keep-alive round trip + revoke.
pub async fn lease_churn(pool: &[Client], clients: usize, duration: Duration) -> Outcome {
    closed_loop(pool, clients, duration, |mut c, _, _, _| async move {
        let cycle = async {
            let id = c.lease_grant(60, None).await?.id();
            let (mut keeper, mut stream) = c.lease_keep_alive(id).await?;
            keeper.keep_alive().await?;
            let answered = stream.message().await?.is_some_and(|r| r.ttl() > 0);
            c.lease_revoke(id).await?;
            Ok::<bool, etcd_client::Error>(answered)
        };
        match cycle.await {
            Ok(true) => Ok(()),
            Ok(false) => Err("keep-alive answered without a TTL".to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

/// Now since the epoch, µs (the fan-out writer's send time).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The value that tells a fan-out watcher the run is over.
pub const STOP: &[u8] = b"stop";

/// Watch fan-out: `watchers` watch streams on one key, one writer putting the send time at `rate`/s.
/// Latency is put-sent → event-received, measured per delivered event.
pub async fn watch_fanout(
    pool: &[Client],
    watchers: usize,
    duration: Duration,
    rate: u32,
) -> anyhow::Result<Outcome> {
    const KEY: &str = "bench-watch/fanout";
    let mut tasks = Vec::with_capacity(watchers);
    for w in 0..watchers {
        let mut stream = pick(pool, w).watch(KEY, None).await?;
        // The server confirms each watch with a `created` response; only then are later puts guaranteed
        // to be seen, so wait for it before the writer starts.
        match stream.message().await? {
            Some(r) if r.created() => {}
            other => anyhow::bail!("watch {w} was not created: {other:?}"),
        }
        tasks.push(tokio::spawn(deliveries(stream, 1)));
    }
    let keys = |_| KEY.to_string();
    fanout_writer(pick(pool, 0), keys, KEY, duration, rate, tasks, watchers).await
}

/// The writer and the tally of the watch fan-out workloads: puts the send time (µs) to `key(i)` at
/// `rate`/s for `duration`, then [`STOP`] to `stop_key`; then collects the latencies each watcher
/// task saw (a task that does not finish within 60 s counts as stuck).
pub async fn fanout_writer(
    mut writer: Client,
    key: impl Fn(u64) -> String,
    stop_key: &str,
    duration: Duration,
    rate: u32,
    tasks: Vec<tokio::task::JoinHandle<Vec<u32>>>,
    watchers: usize,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let (mut writes, mut errors) = (0u64, 0u64);
    while started.elapsed() < duration {
        tick.tick().await;
        match writer
            .put(key(writes + errors), now_micros().to_string(), None)
            .await
        {
            Ok(_) => writes += 1,
            Err(_) => errors += 1,
        }
    }
    writer.put(stop_key, STOP, None).await?;
    let mut out = Outcome {
        errors,
        ..Outcome::default()
    };
    let mut stuck = 0;
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(60), task).await {
            Ok(Ok(lat)) => out.latencies.extend(lat),
            _ => stuck += 1,
        }
    }
    out.elapsed = started.elapsed();
    out.ops = out.latencies.len() as u64;
    let expected = writes * watchers as u64;
    out.note = format!(
        "{writes} puts × {watchers} watchers: {}/{expected} events delivered",
        out.ops
    );
    if stuck > 0 {
        out.note
            .push_str(&format!(", {stuck} watcher tasks did not finish"));
    }
    Ok(out)
}

/// The delivery latencies a watch stream carrying `watches` fan-out watches sees, until each of them
/// has seen the writer's [`STOP`] (or the stream ends).
pub async fn deliveries(mut stream: WatchStream, watches: usize) -> Vec<u32> {
    let (mut lat, mut stopped) = (Vec::new(), 0);
    while let Ok(Some(resp)) = stream.message().await {
        let now = now_micros();
        let puts = resp
            .events()
            .iter()
            .filter(|e| e.event_type() == EventType::Put);
        for ev in puts {
            let value = ev.kv().map(|kv| kv.value()).unwrap_or_default();
            if value == STOP {
                stopped += 1;
            } else {
                lat.push(delivery_micros(now, value));
            }
        }
        if stopped >= watches {
            break;
        }
    }
    lat
}

/// Microseconds from the send time a fan-out event carries to `now`.
pub fn delivery_micros(now: u64, value: &[u8]) -> u32 {
    let sent = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    now.saturating_sub(sent.unwrap_or(now)).min(u32::MAX as u64) as u32
}
