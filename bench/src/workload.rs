//! The workloads, each driving a pool of gRPC connections for a fixed duration and returning raw
//! per-operation latencies. Clients are spread round-robin over the connections (etcd benchmark's
//! `--clients` over `--conns`), and the connections over the members.

use crate::fsync_floor::micros;
use crate::ledger::{key_of, value_of, Ledger};
use etcd_client::{Client, EventType, GetOptions};
use std::sync::atomic::{AtomicU64, Ordering};
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
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (client, op) = (pick(pool, i), op.clone());
            tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) << 20));
                let mut out = Outcome::default();
                let mut seq = 0u64;
                while Instant::now() < deadline {
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
    closed_loop(pool, clients, duration, move |mut c, i, seq, r| {
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

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Watch fan-out: `watchers` watch streams on one key, one writer putting the send time at `rate`/s.
/// Latency is put-sent → event-received, measured per delivered event.
pub async fn watch_fanout(
    pool: &[Client],
    watchers: usize,
    duration: Duration,
    rate: u32,
) -> anyhow::Result<Outcome> {
    const KEY: &str = "bench-watch/fanout";
    const STOP: &[u8] = b"stop";
    let delivered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(watchers);
    for w in 0..watchers {
        let mut stream = pick(pool, w).watch(KEY, None).await?;
        // The server confirms each watch with a `created` response; only then are later puts guaranteed
        // to be seen, so wait for it before the writer starts.
        match stream.message().await? {
            Some(r) if r.created() => {}
            other => anyhow::bail!("watch {w} was not created: {other:?}"),
        }
        let delivered = delivered.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while let Ok(Some(resp)) = stream.message().await {
                let now = now_micros();
                for ev in resp
                    .events()
                    .iter()
                    .filter(|e| e.event_type() == EventType::Put)
                {
                    let value = ev.kv().map(|kv| kv.value()).unwrap_or_default();
                    if value == STOP {
                        return lat;
                    }
                    let sent = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok());
                    lat.push(now.saturating_sub(sent.unwrap_or(now)).min(u32::MAX as u64) as u32);
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut writer = pick(pool, 0);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let (mut writes, mut errors) = (0u64, 0u64);
    while started.elapsed() < duration {
        tick.tick().await;
        match writer.put(KEY, now_micros().to_string(), None).await {
            Ok(_) => writes += 1,
            Err(_) => errors += 1,
        }
    }
    writer.put(KEY, STOP, None).await?;
    let mut out = Outcome {
        errors,
        ..Outcome::default()
    };
    let mut stuck = 0;
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(lat)) => out.latencies.extend(lat),
            _ => stuck += 1,
        }
    }
    out.elapsed = started.elapsed();
    out.ops = delivered.load(Ordering::Relaxed);
    let expected = writes * watchers as u64;
    out.note = format!(
        "{writes} puts × {watchers} watchers: {}/{expected} events delivered",
        out.ops
    );
    if stuck > 0 {
        out.note
            .push_str(&format!(", {stuck} watchers did not finish"));
    }
    Ok(out)
}
