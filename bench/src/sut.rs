//! The systems under test: which binaries `--systems` names, and one running 3-member cluster of each
//! with its client pool, its ledger of acknowledged puts and its results.

use crate::ledger::Ledger;
use crate::procstat;
use crate::report::SystemRun;
use anyhow::{bail, Context, Result};
use cairn_tests::cluster::{Cluster, Flavor, PkiSource};
use cairn_tests::grpc::connect;
use etcd_client::Client;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One entry of `--systems`: its key (`etcd`, `etcd35`, `cairn`), binary and the label tables show.
#[derive(Debug, Clone)]
pub struct System {
    pub key: String,
    pub flavor: Flavor,
    pub binary: PathBuf,
    /// `cairn`, or `etcd` and the version the binary reports (`etcd 3.5.16`).
    pub label: String,
}

/// `~/x` with `$HOME` put in, so defaults can name the cache scripts/etcd35.sh fills.
pub fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest),
        None => PathBuf::from(path),
    }
}

/// Resolves `--systems` against the binaries given for each.
pub fn resolve(
    keys: &[String],
    etcd: &Path,
    etcd35: &Path,
    cairn: &Path,
    cairn_before: Option<&Path>,
) -> Result<Vec<System>> {
    let mut out = Vec::new();
    for key in keys {
        let (flavor, binary, flag) = match key.as_str() {
            "etcd" => (Flavor::Etcd, etcd, "--etcd"),
            "etcd35" => (Flavor::Etcd, etcd35, "--etcd35"),
            "cairn" => (Flavor::Cairn, cairn, "--cairn"),
            "cairn-before" => match cairn_before {
                Some(b) => (Flavor::Cairn, b, "--cairn-before"),
                None => bail!(
                    "--systems cairn-before needs --cairn-before PATH (the build to compare with)"
                ),
            },
            other => bail!(
                "--systems: unknown system '{other}': use etcd, etcd35, cairn and/or cairn-before"
            ),
        };
        if !binary.is_file() {
            let hint = if key == "etcd35" {
                " (scripts/etcd35.sh fetches it)"
            } else {
                " (build it, or pass its path)"
            };
            bail!("{flag}: {} does not exist{hint}", binary.display());
        }
        let label = match (flavor, key.as_str()) {
            (Flavor::Cairn, "cairn-before") => "cairn before".to_string(),
            (Flavor::Cairn, _) => "cairn".to_string(),
            (Flavor::Etcd, _) => format!("etcd {}", etcd_version(binary)?),
        };
        if out.iter().any(|s: &System| s.label == label) {
            bail!("--systems: {label} is named twice (are --etcd and --etcd35 the same binary?)");
        }
        out.push(System {
            key: key.clone(),
            flavor,
            binary: binary.to_path_buf(),
            label,
        });
    }
    Ok(out)
}

/// The version an etcd binary prints (`etcd Version: 3.4.23` → `3.4.23`).
fn etcd_version(binary: &Path) -> Result<String> {
    let out = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("{} --version printed no version: {text}", binary.display()))
}

/// Creates `members` members of `sys` under `dir` and starts the first `started` of them as one
/// cluster (the rest have ports and certificates, for a member added later).
pub async fn launch(
    sys: &System,
    dir: &Path,
    members: usize,
    started: usize,
    extra_args: &[String],
) -> Result<Cluster> {
    let mut cluster = Cluster::builder(sys.flavor, members)
        .binary(&sys.binary)
        .dir(dir)
        .token(format!("bench-{}", sys.key))
        .pki(PkiSource::Rcgen)
        .extra_args(extra_args.iter().cloned())
        .create()?;
    let first: Vec<usize> = (0..started).collect();
    let initial = cluster.initial_cluster_of(&first);
    for &i in &first {
        cluster.start_member_with(i, &initial, "new")?;
    }
    for &i in &first {
        until_serving(&cluster, i, Duration::from_secs(60)).await?;
    }
    Ok(cluster)
}

/// Waits until a linearizable read through member `i` succeeds (not past `timeout`).
pub async fn until_serving(cluster: &Cluster, i: usize, timeout: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let probe = async {
            let mut c = cluster.client(i).await?;
            c.get("bench-ready-probe", None).await?;
            Ok::<(), anyhow::Error>(())
        };
        if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(2), probe).await {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "member {} served no linearizable read within {timeout:?}; see {}",
                cluster.members[i].name,
                cluster.members[i].log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running system under test.
pub struct Sut {
    pub cluster: Cluster,
    /// `--conns` TLS channels, spread over the members.
    pub pool: Vec<Client>,
    pub pids: Vec<u32>,
    /// VmRSS of each member once started and settled, KiB.
    pub idle_rss: Vec<u64>,
    /// Every acknowledged put of the put workloads.
    pub ledger: Arc<Ledger>,
    pub run: SystemRun,
}

impl Sut {
    /// Starts a 3-member cluster of `sys` in `work/<key>` and opens `conns` channels to it.
    pub async fn start(sys: &System, work: &Path, conns: usize) -> Result<Sut> {
        eprintln!("==> {}: starting 3 members", sys.label);
        let cluster = launch(sys, &work.join(&sys.key), 3, 3, &[]).await?;
        let urls: Vec<String> = cluster
            .members
            .iter()
            .map(|m| m.client_url.clone())
            .collect();
        let pool = connect_pool(&cluster, &urls, conns).await?;
        Ok(Sut {
            pids: cluster.pids(),
            cluster,
            pool,
            idle_rss: Vec::new(),
            ledger: Arc::new(Ledger::default()),
            run: SystemRun::new(sys.label.clone()),
        })
    }

    /// Takes the idle memory figure (call once elections and connections have settled).
    pub fn note_idle_rss(&mut self) -> Result<()> {
        self.idle_rss = rss_of(&self.pids)?;
        Ok(())
    }

    /// Client URLs of the members.
    pub fn endpoints(&self) -> Vec<String> {
        self.cluster
            .members
            .iter()
            .map(|m| m.client_url.clone())
            .collect()
    }
}

/// `conns` channels with the admin certificate, round-robin over `urls`.
pub async fn connect_pool(cluster: &Cluster, urls: &[String], conns: usize) -> Result<Vec<Client>> {
    let mut pool = Vec::with_capacity(conns);
    for i in 0..conns {
        pool.push(connect(&cluster.pki, &urls[i % urls.len()]).await?);
    }
    Ok(pool)
}

/// VmRSS of each process, KiB.
pub fn rss_of(pids: &[u32]) -> Result<Vec<u64>> {
    pids.iter()
        .map(|&p| procstat::rss_kib(p).map(|r| r.0))
        .collect()
}
