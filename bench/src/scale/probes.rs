//! The scale suite's measurements on a loaded cluster: big ranges, count-only, puts during compaction
//! and defragmentation, 1 MiB values, a restart after kill -9, a learner catching up.

use super::load;
use crate::ledger::Ledger;
use crate::procstat;
use crate::sut::until_serving;
use crate::workload::{self, Outcome};
use anyhow::{bail, Context, Result};
use cairn_tests::cluster::Cluster;
use etcd_client::{Client, CompactionOptions, GetOptions, MemberAddOptions};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tracks the highest VmRSS of some processes while it runs (sampled every 20 ms).
pub struct RssPeak {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<u64>>,
}

impl RssPeak {
    pub fn start(pids: Vec<u32>) -> RssPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = vec![0u64; pids.len()];
            while !flag.load(Ordering::Relaxed) {
                for (p, &pid) in peak.iter_mut().zip(&pids) {
                    if let Ok((rss, _)) = procstat::rss_kib(pid) {
                        *p = (*p).max(rss);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        });
        RssPeak { stop, task }
    }

    /// The peak of each process, KiB.
    pub async fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

/// Bytes under `dir`, as `du` counts them (allocated blocks).
pub fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => total += disk_bytes(&e.path()),
            Ok(m) => total += m.blocks() * 512,
            Err(_) => {}
        }
    }
    total
}

/// Latency of `reps` linearizable ranges of `limit` dataset keys through `client` (one member), and
/// how far that member's RSS rose above its level before the first: (sorted latencies, rise KiB, keys
/// in one answer or the count).
pub async fn range(
    client: &Client,
    pid: u32,
    limit: i64,
    count_only: bool,
    reps: usize,
) -> Result<(Vec<Duration>, u64, i64)> {
    // A 100k-key answer is ~100 MiB: far past tonic's 4 MiB default for a received message.
    let mut kv = client.kv_client().max_decoding_message_size(1 << 30);
    let before = procstat::rss_kib(pid)?.0;
    let peak = RssPeak::start(vec![pid]);
    let mut lat = Vec::with_capacity(reps);
    let mut keys = 0;
    let mut opts = GetOptions::new().with_prefix().with_limit(limit);
    if count_only {
        opts = GetOptions::new().with_prefix().with_count_only();
    }
    for _ in 0..reps {
        let t = Instant::now();
        let resp = kv
            .get(load::PREFIX, Some(opts.clone()))
            .await
            .context("range over the dataset")?;
        lat.push(t.elapsed());
        let n = if count_only {
            resp.count()
        } else {
            resp.kvs().len() as i64
        };
        if n == 0 {
            bail!("the range returned nothing: is the dataset loaded?");
        }
        keys = n;
    }
    let rise = peak.finish().await[0].saturating_sub(before);
    lat.sort();
    Ok((lat, rise, keys))
}

/// Puts of `clients` clients (256-byte values) that start, run `disrupt` after half a second, and stop
/// one second after it returns (or after `min` if that is later): the puts' outcome, how long
/// `disrupt` took and the members' peak RSS meanwhile.
pub async fn puts_during<F, Fut>(
    pool: &[Client],
    clients: usize,
    pids: &[u32],
    min: Duration,
    disrupt: F,
) -> Result<(Outcome, Duration, Vec<u64>)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let started = Instant::now();
    let peak = RssPeak::start(pids.to_vec());
    let keep_going = move || !flag.load(Ordering::Relaxed);
    let puts = workload::put_while(
        pool,
        clients,
        keep_going,
        10_000,
        Arc::new(Ledger::default()),
    );
    let disruption = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t = Instant::now();
        let r = disrupt().await;
        let took = t.elapsed();
        let rest = min
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        tokio::time::sleep(rest).await;
        stop.store(true, Ordering::Relaxed);
        r.map(|()| took)
    };
    let (mut outcome, took) = tokio::join!(puts, disruption);
    outcome.latencies.sort_unstable();
    Ok((outcome, took?, peak.finish().await))
}

/// Compacts the whole store to `rev`, physically (the call returns once it is applied and on disk).
pub async fn compact(client: &mut Client, rev: i64) -> Result<()> {
    let opts = CompactionOptions::new().with_physical();
    client.compact(rev, Some(opts)).await.context("compact")?;
    Ok(())
}

/// How long a compaction or defragment call may take.
pub const PATIENCE: Duration = Duration::from_secs(900);

/// Defragments every started member, one after the other, as `etcdctl defrag --cluster` does.
pub async fn defrag_all(cluster: &Cluster, started: usize) -> Result<()> {
    for i in 0..started {
        // etcd rewrites its whole bbolt file: minutes at 1 GiB, past the usual 15 s call timeout.
        let url = &cluster.members[i].client_url;
        let mut c = cairn_tests::grpc::connect_patient(&cluster.pki, url, PATIENCE).await?;
        c.defragment()
            .await
            .with_context(|| format!("defragment of m{i}"))?;
    }
    Ok(())
}

/// One client putting `count` 1 MiB values to 8 keys (at most for `cap`). A count, not a time: the
/// steps after it (restart, learner) then find the same data in both systems, where a time left the
/// faster one with more history to restore and send (a 10 s step wrote 1 GB in cairn, 390 MB in etcd).
pub async fn big_values(client: &Client, count: u64, cap: Duration) -> Outcome {
    let mut c = client.clone();
    let mut out = Outcome::default();
    let started = Instant::now();
    let value = vec![b'v'; 1 << 20];
    for i in 0..count {
        if started.elapsed() > cap {
            out.note = format!("stopped after {i} of {count} puts: {cap:?} passed");
            break;
        }
        let t = Instant::now();
        match c
            .put(format!("scale-big/{}", i % 8), value.clone(), None)
            .await
        {
            Ok(_) => {
                out.ops += 1;
                out.latencies.push(crate::fsync_floor::micros(t.elapsed()));
            }
            Err(e) => {
                out.errors += 1;
                if out.note.is_empty() {
                    out.note = format!("first error: {e}");
                }
            }
        }
    }
    out.elapsed = started.elapsed();
    out.latencies.sort_unstable();
    out
}

/// kill -9 of follower `i`, restart, time until it serves a linearizable read again.
pub async fn restart_member(cluster: &mut Cluster, i: usize) -> Result<Duration> {
    cluster.kill_member(i)?;
    let t = Instant::now();
    cluster.start_member(i)?;
    until_serving(cluster, i, Duration::from_secs(600)).await?;
    Ok(t.elapsed())
}

/// Adds member `i` (created, not started) as a learner, starts it, promotes it as soon as the leader
/// accepts (it refuses while the learner lags): (start → promoted, start → serving linearizable reads).
pub async fn learner_joins(
    cluster: &mut Cluster,
    client: &mut Client,
    i: usize,
) -> Result<(Duration, Duration)> {
    let peer = cluster.members[i].peer_url.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    // etcd refuses membership changes until every member has been connected for 5 s.
    let id = loop {
        let opts = MemberAddOptions::new().with_is_learner();
        match client.member_add([peer.as_str()], Some(opts)).await {
            Ok(r) => {
                break r
                    .member()
                    .map(|m| m.id())
                    .context("member add: no member")?
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("    member add refused ({e}); retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).context("member add --learner"),
        }
    };
    let all: Vec<usize> = (0..=i).collect();
    let initial = cluster.initial_cluster_of(&all);
    let t = Instant::now();
    cluster.start_member_with(i, &initial, "existing")?;
    let deadline = t + Duration::from_secs(900);
    loop {
        match client.member_promote(id).await {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline && cluster.members[i].is_running() => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(e).context("member promote: the learner never caught up"),
        }
    }
    let promoted = t.elapsed();
    until_serving(cluster, i, Duration::from_secs(300)).await?;
    Ok((promoted, t.elapsed()))
}
