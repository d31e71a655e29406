//! One run: a fresh cluster on tmpfs data dirs in the member namespaces, clients and watchers
//! recording, the run's faults one after another, then every fault healed, a final write (the fence)
//! that every recorder must see, final reads, and the members' convergence. Returns the history.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_tests::cluster::{Builder, Cluster, Flavor, PkiSource};
use cairn_tests::grpc::connect;
use etcd_client::{Client, GetOptions};
use futures::future::join_all;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::{sleep, Instant};

use crate::disk;
use crate::history::{Final, History, MemberFinal, Outcome, Req, HARNESS_CLIENT};
use crate::nemesis::{After, Nemesis};
use crate::net::Net;
use crate::record::{kv, Recorder, RECORDERS};
use crate::schedule::{self, Fault, Timing};
use crate::watchers::{self, RANDOM_BASE};
use crate::workload::{self, key, KEYS, PROBE_KEY};

/// What one run does.
pub struct RunSpec {
    /// Server flavour.
    pub server: Flavor,
    /// Its binary.
    pub binary: PathBuf,
    /// Cluster size.
    pub members: usize,
    /// Seed of this run (schedule, targets, client choices).
    pub seed: u64,
    /// The faults, in order.
    pub faults: Vec<Fault>,
    /// Election timeout and derived durations.
    pub timing: Timing,
    /// Workload clients.
    pub clients: usize,
    /// Where certificates, logs and the history go.
    pub dir: PathBuf,
}

/// Unmounts the members' tmpfs data dirs when the run ends, whatever happened.
struct Mounts(Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = disk::unmount(d);
        }
    }
}

/// One client per member of `c`, each talking to that member only.
pub async fn clients(c: &Cluster) -> Result<Vec<Client>> {
    let conns = c
        .members
        .iter()
        .map(|m| async move { connect(&c.pki, &m.client_url).await });
    join_all(conns).await.into_iter().collect()
}

/// `builder` placed in `net`'s member namespaces, with an rcgen PKI, the run's election timeout (the
/// heartbeat a tenth of it) and `extra` flags.
pub fn in_namespaces(
    builder: Builder,
    net: &Net,
    timing: Timing,
    extra: impl IntoIterator<Item = String>,
) -> Builder {
    let e = timing.election_ms;
    let flags = [
        format!("--heartbeat-interval={}", e / 10),
        format!("--election-timeout={e}"),
    ];
    builder
        .pki(PkiSource::Rcgen)
        .placements(net.placements())
        .extra_args(flags.into_iter().chain(extra))
}

/// Runs `spec`; `print` receives one line per step (also kept in `progress.txt` of the run dir).
pub async fn run(
    spec: &RunSpec,
    net: &Net,
    abort: &AtomicBool,
    print: &dyn Fn(&str),
) -> Result<History> {
    std::fs::create_dir_all(&spec.dir)
        .with_context(|| format!("creating {}", spec.dir.display()))?;
    let log = spec.dir.join("progress.txt");
    let progress = |line: &str| {
        print(line);
        use std::io::Write;
        if let Ok(mut f) = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
        {
            let _ = writeln!(f, "{line}");
        }
    };
    let cluster = in_namespaces(
        Cluster::builder(spec.server, spec.members)
            .binary(&spec.binary)
            .dir(&spec.dir)
            .token(format!("chaos-{}", spec.seed)),
        net,
        spec.timing,
        // Small, so snapshots are taken and members catch up through them.
        ["--snapshot-count=1000".to_string()],
    )
    .create()?;
    let mut mounts = Mounts(Vec::new());
    for (i, m) in cluster.members.iter().enumerate() {
        disk::mount(&format!("{}-m{i}", net.tag), &m.data_dir)?;
        mounts.0.push(m.data_dir.clone());
    }
    let mut cluster = cluster;
    cluster.start_all()?;
    cluster
        .wait_ready(Duration::from_secs(120))
        .await
        .context("the cluster did not start")?;

    let rec = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let seed = spec.seed;
    let mut workers = Vec::new();
    for c in 0..spec.clients {
        let conns = clients(&cluster).await?;
        workers.push(tokio::spawn(workload::client(
            c as u32,
            seed,
            conns,
            rec.clone(),
            stop.clone(),
        )));
    }
    workers.push(tokio::spawn(workload::prober(
        seed,
        clients(&cluster).await?,
        rec.clone(),
        stop.clone(),
    )));
    workers.push(tokio::spawn(workload::compactor(
        seed,
        clients(&cluster).await?,
        rec.clone(),
        stop.clone(),
    )));
    for w in 0..2 {
        let conns = clients(&cluster).await?;
        workers.push(tokio::spawn(watchers::random(
            RANDOM_BASE + w,
            seed,
            conns,
            rec.clone(),
            stop.clone(),
        )));
    }
    let mut recorders = Vec::new();
    for r in 0..RECORDERS as u32 {
        let conns = clients(&cluster).await?;
        recorders.push(tokio::spawn(watchers::recorder(
            r,
            seed,
            conns,
            rec.clone(),
            stop.clone(),
        )));
    }

    let conns = clients(&cluster).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut nem = Nemesis::new(
        cluster,
        net,
        ChaCha8Rng::seed_from_u64(rng.random()),
        rec.clone(),
        spec.timing,
        conns,
    );
    let mut h = History::new(spec.server.name(), seed);
    sleep(Duration::from_millis(schedule::gap_ms(
        &mut rng,
        spec.timing,
    )))
    .await;
    let mut quorum_lost = false;
    for f in &spec.faults {
        if abort.load(Ordering::Relaxed) {
            progress("interrupted: ending the run");
            break;
        }
        let (record, after) = nem.apply(f).await?;
        progress(&format!(
            "{:>7.1}s {} on {}{}{}",
            record.start as f64 / 1e6,
            record.kind,
            record.targets.join(","),
            if record.note.is_empty() { "" } else { ": " },
            record.note
        ));
        h.faults.push(record);
        if matches!(after, After::QuorumLost) {
            quorum_lost = true;
            break;
        }
        sleep(Duration::from_millis(schedule::gap_ms(
            &mut rng,
            spec.timing,
        )))
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    join_all(workers).await;
    let resume: Vec<i64> = join_all(recorders)
        .await
        .into_iter()
        .map(|r| r.unwrap_or(1))
        .collect();

    if !quorum_lost {
        let note = nem.heal_all().await?;
        if !note.is_empty() {
            progress(&format!("healing at the end{note}"));
        }
        nem.settle(Duration::from_secs(60)).await;
        let mut conns = clients(&nem.cluster).await?;
        match fence(&rec, &mut conns).await {
            Ok(fence) => {
                final_reads(&rec, &mut conns).await;
                let deadline = Instant::now() + Duration::from_secs(60);
                for (r, from) in resume.iter().enumerate() {
                    let mut cs = clients(&nem.cluster).await?;
                    if !watchers::catch_up(r as u32, *from, fence, &mut cs, &rec, deadline).await {
                        progress(&format!(
                            "recorder {r} did not reach the fence at revision {fence}"
                        ));
                    }
                }
                h.final_state = Some(converge(&nem.cluster, &mut conns, fence).await);
            }
            Err(e) => {
                // The cluster stayed unavailable with every fault healed: not a wrong result, but the
                // run cannot end cleanly; what was recorded is still checked.
                progress(&format!("{e:#}"));
                h.final_state = Some(Final {
                    revision: 0,
                    members: Vec::new(),
                    not_converged: vec![format!("{e:#}")],
                });
            }
        }
    }
    let (ops, watches) = rec.take();
    h.ops = ops;
    h.watches = watches;
    h.detected = std::mem::take(&mut nem.detected);
    h.refusals = std::mem::take(&mut nem.refusals);
    drop(nem);
    drop(mounts);
    net.heal()?;
    save(&h, &spec.dir)?;
    Ok(h)
}

/// The harness's last write, retried until one is acknowledged; its revision.
async fn fence(rec: &Recorder, conns: &mut [Client]) -> Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while Instant::now() < deadline {
        for (i, c) in conns.iter_mut().enumerate() {
            n += 1;
            let req = Req::Put {
                key: "fence".into(),
                value: format!("fence-{n}"),
                lease: 0,
            };
            if let Outcome::Ok(r) = rec.run(HARNESS_CLIENT, i, c, req).await {
                return Ok(r.rev());
            }
        }
        sleep(Duration::from_millis(500)).await;
    }
    bail!("no write was acknowledged within 60s after every fault was healed")
}

/// A linearizable read of every key, recorded: the final word on what survived.
async fn final_reads(rec: &Recorder, conns: &mut [Client]) {
    let keys = (0..KEYS)
        .map(key)
        .chain([PROBE_KEY.to_string(), "barrier".into()]);
    for (n, k) in keys.enumerate() {
        for attempt in 0..3 {
            let i = (n + attempt) % conns.len();
            let out = rec
                .run(
                    HARNESS_CLIENT,
                    i,
                    &mut conns[i],
                    Req::Get { key: k.clone() },
                )
                .await;
            if matches!(out, Outcome::Ok(_)) {
                break;
            }
        }
    }
}

/// Waits until every member is at `fence`'s revision or beyond (bounded), then takes each one's
/// HashKV and data at that revision.
async fn converge(cluster: &Cluster, conns: &mut [Client], fence: i64) -> Final {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut revs = vec![0i64; conns.len()];
    let mut raft = vec![0u64; conns.len()];
    loop {
        for (i, c) in conns.iter_mut().enumerate() {
            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(2), c.status()).await {
                revs[i] = s.header().map_or(0, |h| h.revision());
                raft[i] = s.raft_index();
            }
        }
        let top = revs.iter().copied().max().unwrap_or(0);
        if revs.iter().all(|&r| r >= fence && r == top) || Instant::now() > deadline {
            break;
        }
        sleep(Duration::from_millis(300)).await;
    }
    let mut members = Vec::new();
    let mut not_converged = Vec::new();
    for (i, c) in conns.iter_mut().enumerate() {
        let name = cluster.members[i].name.clone();
        if revs[i] < fence {
            not_converged.push(format!("{name} at revision {} (fence {fence})", revs[i]));
        }
        let hash = match tokio::time::timeout(Duration::from_secs(5), c.hash_kv(fence)).await {
            Ok(Ok(h)) if revs[i] >= fence => Some((h.hash(), h.compact_version())),
            _ => None,
        };
        let opts = GetOptions::new()
            .with_all_keys()
            .with_revision(fence)
            .with_serializable();
        let kvs = match tokio::time::timeout(Duration::from_secs(5), c.get("", Some(opts))).await {
            Ok(Ok(r)) => r
                .kvs()
                .iter()
                .map(|k| (String::from_utf8_lossy(k.key()).into_owned(), kv(k)))
                .collect(),
            _ => Vec::new(),
        };
        members.push(MemberFinal {
            name,
            revision: revs[i],
            raft_index: raft[i],
            hash: hash.map(|h| h.0),
            hash_compact_rev: hash.map_or(0, |h| h.1),
            kvs,
        });
    }
    Final {
        revision: fence,
        members,
        not_converged,
    }
}

/// Writes `h` to `dir/history.json`.
pub fn save(h: &History, dir: &Path) -> Result<()> {
    let path = dir.join("history.json");
    let text = serde_json::to_string(h).context("serialising the history")?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Reads `dir/history.json` (or the file itself), refusing other format versions.
pub fn load(path: &Path) -> Result<History> {
    let file = if path.is_dir() {
        path.join("history.json")
    } else {
        path.to_path_buf()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let h: History = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a history of this cairn-chaos version",
            file.display()
        )
    })?;
    if h.format != crate::history::FORMAT {
        bail!(
            "{}: history format {} (this cairn-chaos reads format {}); check it with the version that wrote it",
            file.display(),
            h.format,
            crate::history::FORMAT
        );
    }
    Ok(h)
}
