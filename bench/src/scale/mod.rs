//! The scale suite (`cairn-bench --scale`, scripts/bench.sh --scale; not in CI): a 3-member cluster of
//! each system loaded with a dataset with history (about 1 GiB at the default 1M keys), then the costs
//! that grow with data: restart, a learner catching up, puts during compaction and defragmentation,
//! big ranges, memory, disk, watch fan-out, 1 MiB values. Steps interleave the systems like the
//! standard suite.

mod load;
mod probes;
mod report;
mod watch;

use crate::sut::{connect_pool, launch, rss_of, System};
use crate::workload::Outcome;
use anyhow::{Context, Result};
use cairn_tests::cluster::Cluster;
use etcd_client::Client;
use report::{Fact, ScaleRun};
use std::path::PathBuf;
use std::time::Duration;

/// What `--scale` takes from the command line.
pub struct Options {
    pub keys: u64,
    pub duration: Duration,
    pub watchers: usize,
    /// The steps to run, in order.
    pub steps: Vec<Step>,
    pub conns: usize,
    pub work: PathBuf,
    pub out: Option<PathBuf>,
    pub command: String,
}

/// The steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Load,
    Idle,
    Ranges,
    PutsBaseline,
    PutsCompact,
    PutsCompactAll,
    PutsDefrag,
    Watch,
    BigValues,
    Restart,
    Learner,
}

const STEPS: [Step; 11] = [
    Step::Load,
    Step::Idle,
    Step::Ranges,
    Step::PutsBaseline,
    Step::PutsCompact,
    Step::PutsCompactAll,
    Step::PutsDefrag,
    Step::Watch,
    Step::BigValues,
    Step::Restart,
    Step::Learner,
];

impl Step {
    /// The name `--scale-steps` takes.
    fn name(self) -> &'static str {
        match self {
            Step::Load => "load",
            Step::Idle => "idle",
            Step::Ranges => "ranges",
            Step::PutsBaseline => "puts",
            Step::PutsCompact => "compact",
            Step::PutsCompactAll => "compact-all",
            Step::PutsDefrag => "defrag",
            Step::Watch => "watch",
            Step::BigValues => "big-values",
            Step::Restart => "restart",
            Step::Learner => "learner",
        }
    }
}

/// The steps `--scale-steps` names (all when it names none), in the suite's order; the load always
/// runs, since every other step needs the dataset.
pub fn chosen_steps(names: &[String]) -> Result<Vec<Step>> {
    for n in names {
        if !STEPS.iter().any(|s| s.name() == n) {
            let known: Vec<&str> = STEPS.iter().map(|s| s.name()).collect();
            anyhow::bail!(
                "--scale-steps: unknown step '{n}' (known: {})",
                known.join(", ")
            );
        }
    }
    Ok(STEPS
        .iter()
        .copied()
        .filter(|s| names.is_empty() || *s == Step::Load || names.iter().any(|n| n == s.name()))
        .collect())
}

/// Members started; the one more created is the learner.
const VOTERS: usize = 3;
/// `--quota-backend-bytes` of every member: 8 GiB.
const QUOTA_BYTES: u64 = 8 << 30;
/// Clients of the put probes (issue 20: 16).
const PUT_CLIENTS: usize = 16;
/// 1 MiB values the big-values step writes (the same number in every system).
const BIG_PUTS: u64 = 300;

struct Scaled {
    cluster: Cluster,
    pool: Vec<Client>,
    run: ScaleRun,
    /// Revisions before and after loading.
    revs: (i64, i64),
}

/// Runs the suite on every system; Ok(false) when one of them failed.
pub async fn run(systems: &[System], opts: &Options) -> Result<bool> {
    let load_at_start = crate::loadavg();
    let mut all = Vec::new();
    for sys in systems {
        eprintln!("==> {}: starting {VOTERS} members", sys.label);
        // etcd's 2 GiB default quota would raise NOSPACE before a 1 GiB dataset with its history is in;
        // the same 8 GiB (etcd's largest advised) for both, so neither refuses writes.
        let quota = [format!("--quota-backend-bytes={QUOTA_BYTES}")];
        let cluster = launch(sys, &opts.work.join(&sys.key), VOTERS + 1, VOTERS, &quota).await?;
        let urls: Vec<String> = cluster.members[..VOTERS]
            .iter()
            .map(|m| m.client_url.clone())
            .collect();
        let pool = connect_pool(&cluster, &urls, opts.conns).await?;
        all.push(Scaled {
            cluster,
            pool,
            run: ScaleRun::new(sys.label.clone()),
            revs: (0, 0),
        });
    }
    let n = all.len();
    for (k, step) in opts.steps.iter().enumerate() {
        for j in 0..n {
            let s = &mut all[(j + k) % n];
            if s.run.failure.is_some() {
                continue;
            }
            eprintln!("==> {}: {step:?}", s.run.system);
            settle_disk().await;
            if let Err(e) = one(opts, s, *step).await {
                eprintln!("{}: {e:#}", s.run.system);
                s.run.failure = Some(format!("{step:?}: {e:#}"));
            }
        }
    }
    let runs: Vec<ScaleRun> = all.into_iter().map(|s| s.run).collect();
    let ctx = report::Context {
        date: crate::date(),
        command: opts.command.clone(),
        keys: opts.keys,
        load: (load_at_start, crate::loadavg()),
    };
    let text = report::render(&ctx, &runs);
    println!("{text}");
    if let Some(out) = &opts.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(runs.iter().all(|r| r.failure.is_none()))
}

/// Write out every dirty page before a step, so that a step is not slowed by the page cache of the
/// one before it, the other system's included (both share one disk: an etcd learner's 2 GB database
/// was still being written back while cairn's learner received its snapshot).
async fn settle_disk() {
    let synced = tokio::task::spawn_blocking(|| std::process::Command::new("sync").status()).await;
    if !matches!(synced, Ok(Ok(status)) if status.success()) {
        eprintln!("    sync before the step failed ({synced:?}); going on");
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The largest data dir of the voters, MiB.
fn largest_disk_mib(cluster: &Cluster) -> f64 {
    let bytes = cluster.members[..VOTERS]
        .iter()
        .map(|m| probes::disk_bytes(&m.data_dir));
    bytes.max().unwrap_or(0) as f64 / 1048576.0
}

/// Records a put outcome's throughput, p99 and worst latency under `what`.
fn puts(run: &mut ScaleRun, what: &str, o: &Outcome) {
    let q = |p: f64| crate::report::quantile_ms(&o.latencies, p);
    run.push(Fact::higher(
        format!("{what}: ops/s"),
        o.ops as f64 / o.elapsed.as_secs_f64().max(1e-9),
    ));
    run.push(Fact::lower(format!("{what}: p99 ms"), q(0.99)));
    run.push(Fact::lower(format!("{what}: max ms"), q(1.0)));
    if o.errors > 0 {
        run.note(format!("{what}: {} errors ({})", o.errors, o.note));
    }
}

/// A client for compactions: etcd's physical compaction of a large store outlasts the pool's 15 s.
async fn patient(cluster: &Cluster) -> Result<Client> {
    let url = &cluster.members[0].client_url;
    cairn_tests::grpc::connect_patient(&cluster.pki, url, probes::PATIENCE).await
}

async fn one(opts: &Options, s: &mut Scaled, step: Step) -> Result<()> {
    let pids = s.cluster.pids()[..VOTERS].to_vec();
    let d = opts.duration;
    match step {
        Step::Load => {
            let l = load::dataset(&s.pool, 32, opts.keys).await?;
            s.revs = (l.first_rev, l.last_rev);
            let secs = l.elapsed.as_secs_f64();
            s.run
                .push(Fact::lower("load the dataset: seconds".into(), secs));
            s.run.push(Fact::higher(
                "load the dataset: key writes/s".into(),
                l.ops as f64 / secs,
            ));
        }
        Step::Idle => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let rss = rss_of(&pids)?;
            s.run.push(Fact::lower(
                "RSS idle, largest member: MiB".into(),
                mib(*rss.iter().max().unwrap_or(&0)),
            ));
            let disk = largest_disk_mib(&s.cluster);
            s.run.push(Fact::lower(
                "on disk after load, largest member: MiB".into(),
                disk,
            ));
        }
        Step::Ranges => {
            let c = &s.pool[0];
            let pid = pids[0];
            for (limit, label) in [(10_000, "range 10k keys"), (100_000, "range 100k keys")] {
                let (lat, rise, n) = probes::range(c, pid, limit, false, 3).await?;
                s.run.note(format!("{label}: {n} keys in each answer"));
                s.run.push(Fact::lower(
                    format!("{label}: median ms"),
                    ms(lat[lat.len() / 2]),
                ));
                s.run.push(Fact::lower(
                    format!("{label}: RSS rise of the serving member, MiB"),
                    mib(rise),
                ));
            }
            let (lat, _, n) = probes::range(c, pid, 0, true, 5).await?;
            s.run.note(format!("count-only: {n} keys counted"));
            s.run.push(Fact::lower(
                "count-only over the keyspace: median ms".into(),
                ms(lat[lat.len() / 2]),
            ));
            // A range that takes seconds on the leader: does the cluster keep its leader meanwhile
            // (heartbeats must go on while the answer is built)?
            let lead = s.cluster.leader_index().await?;
            let c = s.cluster.client(lead).await?;
            let term = |c: Client| async move {
                let st = c.maintenance_client().status().await;
                st.map(|st| st.raft_term()).context("Status of the leader")
            };
            let before = term(c.clone()).await?;
            let half = (opts.keys / 2) as i64;
            let (lat, _, n) = probes::range(&c, pids[lead], half, false, 1).await?;
            let after = term(c.clone()).await?;
            s.run.note(format!(
                "range of half the dataset from the leader: {n} keys; Raft term {before} before, {after} after"
            ));
            s.run.push(Fact::lower(
                "range of half the dataset from the leader: seconds".into(),
                lat[0].as_secs_f64(),
            ));
            s.run.push(Fact::lower(
                "elections during that range (Raft term change)".into(),
                after.saturating_sub(before) as f64,
            ));
        }
        Step::PutsBaseline => {
            let nothing = || async { Ok(()) };
            let (o, _, peak) = probes::puts_during(&s.pool, PUT_CLIENTS, &pids, d, nothing).await?;
            puts(&mut s.run, "put, 16 clients, quiet", &o);
            s.run.push(Fact::lower(
                "RSS under load, largest member: MiB".into(),
                mib(*peak.iter().max().unwrap_or(&0)),
            ));
        }
        Step::PutsCompact => {
            let half = s.revs.0 + (s.revs.1 - s.revs.0) / 2;
            let mut c = patient(&s.cluster).await?;
            let compact = || async move { probes::compact(&mut c, half).await };
            let (o, took, _) = probes::puts_during(&s.pool, PUT_CLIENTS, &pids, d, compact).await?;
            puts(&mut s.run, "put, 16 clients, during compaction", &o);
            s.run.push(Fact::lower(
                "compaction of half the history: seconds".into(),
                took.as_secs_f64(),
            ));
        }
        Step::PutsCompactAll => {
            // Most of the values become history, so this compaction frees most of the store (cairn
            // then rewrites its value file; etcd frees bbolt pages).
            let t = std::time::Instant::now();
            let n = load::overwrite_all(&s.pool, 32, opts.keys).await?;
            s.run.note(format!(
                "before compacting all history: every key overwritten once more ({n} writes in {:.0} s)",
                t.elapsed().as_secs_f64()
            ));
            let now = load::revision(&mut s.pool[0].clone()).await?;
            let mut c = patient(&s.cluster).await?;
            let compact = || async move { probes::compact(&mut c, now).await };
            let (o, took, _) = probes::puts_during(&s.pool, PUT_CLIENTS, &pids, d, compact).await?;
            puts(
                &mut s.run,
                "put, 16 clients, during compaction of all history",
                &o,
            );
            s.run.push(Fact::lower(
                "compaction of all history: seconds".into(),
                took.as_secs_f64(),
            ));
        }
        Step::PutsDefrag => {
            let cluster = &s.cluster;
            let defrag = || probes::defrag_all(cluster, VOTERS);
            let (o, took, _) = probes::puts_during(&s.pool, PUT_CLIENTS, &pids, d, defrag).await?;
            puts(&mut s.run, "put, 16 clients, during defragment", &o);
            s.run.push(Fact::lower(
                "defragment of 3 members: seconds".into(),
                took.as_secs_f64(),
            ));
            let disk = largest_disk_mib(&s.cluster);
            s.run.push(Fact::lower(
                "on disk after compaction + defrag, largest member: MiB".into(),
                disk,
            ));
        }
        Step::Watch => {
            let o = watch::prefix_fanout(&s.pool, opts.watchers, d, 20).await?;
            let w = opts.watchers;
            s.run.push(Fact::lower(
                format!("watch, {w} watchers on one prefix: delivery p99 ms"),
                crate::report::quantile_ms(&o.latencies, 0.99),
            ));
            s.run.note(format!("watch: {}", o.note));
        }
        Step::BigValues => {
            let o = probes::big_values(&s.pool[0], BIG_PUTS, Duration::from_secs(120)).await;
            puts(&mut s.run, "put 1 MiB values, 1 client", &o);
            if o.errors == 0 && !o.note.is_empty() {
                s.run.note(format!("1 MiB values: {}", o.note));
            }
        }
        Step::Restart => {
            let lead = s.cluster.leader_index().await?;
            let follower = (lead + 1) % VOTERS;
            let took = probes::restart_member(&mut s.cluster, follower).await?;
            s.run.push(Fact::lower(
                "kill -9 of a follower → serving linearizable reads: seconds".into(),
                took.as_secs_f64(),
            ));
        }
        Step::Learner => {
            let mut c = s.pool[0].clone();
            let (promoted, serving) = probes::learner_joins(&mut s.cluster, &mut c, VOTERS).await?;
            s.run.push(Fact::lower(
                "learner started → caught up and promoted: seconds".into(),
                promoted.as_secs_f64(),
            ));
            s.run.push(Fact::lower(
                "learner started → serving linearizable reads: seconds".into(),
                serving.as_secs_f64(),
            ));
        }
    }
    Ok(())
}
