//! A cluster of N members as separate processes (cairn or the real etcd, same flags), each with its own
//! address and ports (loopback by default, or a network namespace of its own), data dir, certificates and
//! log file; killed by PID when dropped. The one launcher of the system tests, the benchmark and the chaos
//! harness: [`Cluster::builder`] says where members run and which binary, PKI and directory they use.

use crate::etcdctl::Etcdctl;
use crate::pki::{Pki, PkiMember};
use crate::{ports, wait, workspace};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Which server binary the members run; both take etcd's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// This workspace's `cairn`.
    Cairn,
    /// The real etcd 3.4 (`/usr/bin/etcd` or `$ETCD_BIN`), to prove the tests' expectations.
    Etcd,
}

impl Flavor {
    /// From `CAIRN_TEST_FLAVOR` (`cairn`, the default, or `etcd`).
    pub fn from_env() -> Result<Flavor> {
        match std::env::var("CAIRN_TEST_FLAVOR")
            .unwrap_or_default()
            .as_str()
        {
            "" | "cairn" => Ok(Flavor::Cairn),
            "etcd" => Ok(Flavor::Etcd),
            other => bail!("CAIRN_TEST_FLAVOR={other:?} is not one of cairn, etcd"),
        }
    }

    /// Lower-case name, as in `CAIRN_TEST_FLAVOR`, tables and directories.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Cairn => "cairn",
            Flavor::Etcd => "etcd",
        }
    }

    /// The binary to run (`$CAIRN_BIN` overrides the workspace's cairn, e.g. to show that a regression
    /// test fails on an older build).
    pub fn binary(self) -> Result<PathBuf> {
        match self {
            Flavor::Cairn => match std::env::var_os("CAIRN_BIN") {
                Some(p) => Ok(PathBuf::from(p)),
                None => workspace::binary("cairn"),
            },
            Flavor::Etcd => {
                let p = PathBuf::from(
                    std::env::var("ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".into()),
                );
                if !p.is_file() {
                    bail!(
                        "{} not found; install etcd-server (scripts/deps.sh) or set ETCD_BIN",
                        p.display()
                    );
                }
                Ok(p)
            }
        }
    }
}

/// One member: its addresses, files and (while running) its process.
#[derive(Debug)]
pub struct Member {
    /// `--name`.
    pub name: String,
    /// Client URL (listen = advertise).
    pub client_url: String,
    /// Peer URL (listen = advertise).
    pub peer_url: String,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// Where stdout+stderr of every start are appended.
    pub log: PathBuf,
    /// The IP address its URLs carry.
    pub address: String,
    /// The network namespace it runs in (`ip netns exec`), or `None` for this one.
    pub netns: Option<String>,
    child: Option<Child>,
    starts: u32,
}

impl Member {
    /// Whether the process is running (has not exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// How the process ended, once it has (`None` while it runs, or if it was never started).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The process ID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

/// Where one member runs: the address its URLs carry, its ports there, and its network namespace.
#[derive(Debug, Clone)]
pub struct Placement {
    /// IP address to listen on and advertise.
    pub address: String,
    /// Client port.
    pub client_port: u16,
    /// Peer port.
    pub peer_port: u16,
    /// Network namespace to start the member in (`ip netns exec NAME`), or `None` for this one.
    pub netns: Option<String>,
}

/// Which PKI a cluster gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkiSource {
    /// `provision render`, unless `CAIRN_TEST_PKI=rcgen` (see [`Pki::create`]).
    FromEnv,
    /// rcgen only: for programs that run without a debug build of `provision` (benchmark, chaos).
    Rcgen,
}

/// Options of a cluster before it exists; [`Builder::create`] makes the files, [`Builder::start`] also
/// starts every member and waits until all are healthy.
#[derive(Debug, Clone)]
pub struct Builder {
    flavor: Flavor,
    n: usize,
    binary: Option<PathBuf>,
    dir: Option<PathBuf>,
    token: Option<String>,
    pki: PkiSource,
    placements: Option<Vec<Placement>>,
    extra_args: Vec<String>,
}

impl Builder {
    /// Runs this binary instead of the flavour's default (e.g. a release build).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Builder {
        self.binary = Some(path.into());
        self
    }

    /// Keeps data, logs and certificates in `dir` (created if missing, kept after drop) instead of a
    /// temp dir that is removed.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.dir = Some(dir.into());
        self
    }

    /// `--initial-cluster-token` (default: unique per test cluster).
    pub fn token(mut self, token: impl Into<String>) -> Builder {
        self.token = Some(token.into());
        self
    }

    /// Which PKI to make.
    pub fn pki(mut self, source: PkiSource) -> Builder {
        self.pki = source;
        self
    }

    /// Where each member runs (default: 127.0.0.1 with ports from [`ports::unused_ports`]).
    pub fn placements(mut self, placements: Vec<Placement>) -> Builder {
        self.placements = Some(placements);
        self
    }

    /// Flags added to every member's command line.
    pub fn extra_args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Builder {
        self.extra_args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Makes ports, dirs and certificates without starting anything.
    pub fn create(self) -> Result<Cluster> {
        let binary = match self.binary {
            Some(b) => b,
            None => self.flavor.binary()?,
        };
        let dir = match self.dir {
            Some(d) => {
                std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
                ClusterDir::Kept(d)
            }
            None => ClusterDir::Temp(
                tempfile::Builder::new()
                    .prefix("cairn-cluster-")
                    .tempdir()
                    .context("creating the cluster temp dir")?,
            ),
        };
        let root = dir.path().to_path_buf();
        let placements = match self.placements {
            Some(p) if p.len() != self.n => {
                bail!("{} placements for {} members", p.len(), self.n)
            }
            Some(p) => p,
            None => {
                // Members may start long after this (member add, restarts): ports no outgoing
                // connection takes.
                let ports = ports::unused_ports(2 * self.n)?;
                (0..self.n)
                    .map(|i| Placement {
                        address: "127.0.0.1".into(),
                        client_port: ports[2 * i],
                        peer_port: ports[2 * i + 1],
                        netns: None,
                    })
                    .collect()
            }
        };
        // Token unique per cluster so that two test clusters can never join each other.
        let token = self.token.unwrap_or_else(|| {
            format!(
                "test-{}-{}",
                std::process::id(),
                root.file_name()
                    .and_then(|f| f.to_str())
                    .unwrap_or("x")
                    .replace(['.', '_'], "-")
            )
            .to_lowercase()
        });
        let specs: Vec<PkiMember> = placements
            .iter()
            .enumerate()
            .map(|(i, p)| PkiMember {
                name: format!("m{i}"),
                address: p.address.clone(),
                client_port: p.client_port,
                peer_port: p.peer_port,
            })
            .collect();
        let certs = root.join("certs");
        let pki = match self.pki {
            PkiSource::FromEnv => Pki::create(&certs, &token, &specs)?,
            PkiSource::Rcgen => Pki::generate(&certs, &specs)?,
        };
        let members = specs
            .iter()
            .zip(placements)
            .map(|(s, p)| Member {
                name: s.name.clone(),
                client_url: format!("https://{}:{}", p.address, p.client_port),
                peer_url: format!("https://{}:{}", p.address, p.peer_port),
                data_dir: root.join("data").join(&s.name),
                log: root.join("logs").join(format!("{}.log", s.name)),
                address: p.address,
                netns: p.netns,
                child: None,
                starts: 0,
            })
            .collect();
        for sub in ["logs", "data"] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(Cluster {
            flavor: self.flavor,
            members,
            pki,
            token,
            extra_args: self.extra_args,
            binary,
            dir,
        })
    }

    /// Creates the cluster, starts every member and waits until `etcdctl endpoint health` passes on each.
    pub fn start(self) -> Result<Cluster> {
        let mut c = self.create()?;
        c.start_all()?;
        c.wait_healthy(START_TIMEOUT)?;
        Ok(c)
    }
}

/// The directory of a cluster: removed on drop, or the caller's.
enum ClusterDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl ClusterDir {
    fn path(&self) -> &Path {
        match self {
            ClusterDir::Temp(t) => t.path(),
            ClusterDir::Kept(p) => p,
        }
    }
}

/// A running test cluster. Keeps its temp dir (data, logs, certs) until dropped.
pub struct Cluster {
    /// Server binary flavour.
    pub flavor: Flavor,
    /// Members in order.
    pub members: Vec<Member>,
    /// Certificates.
    pub pki: Pki,
    /// `--initial-cluster-token` and cluster name.
    pub token: String,
    /// Flags added to every member's command line (e.g. `--snapshot-count=20`).
    pub extra_args: Vec<String>,
    binary: PathBuf,
    dir: ClusterDir,
}

/// How long a (re)started cluster may take to report healthy.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

impl Cluster {
    /// Options for an `n`-member cluster of `flavor`: loopback, temp dir, PKI from the environment.
    pub fn builder(flavor: Flavor, n: usize) -> Builder {
        Builder {
            flavor,
            n,
            binary: None,
            dir: None,
            token: None,
            pki: PkiSource::FromEnv,
            placements: None,
            extra_args: Vec::new(),
        }
    }

    /// Starts an `n`-member TLS cluster with client-cert-auth on both listeners and waits until
    /// `etcdctl endpoint health` passes on every member.
    pub fn start(flavor: Flavor, n: usize) -> Result<Cluster> {
        Cluster::builder(flavor, n).start()
    }

    /// Prepares ports, dirs and certificates without starting anything.
    pub fn create(flavor: Flavor, n: usize) -> Result<Cluster> {
        Cluster::builder(flavor, n).create()
    }

    /// The directory holding data, logs and certificates.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process IDs of the running members, in member order.
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(Member::pid).collect()
    }

    /// `name=peer_url,...` for `--initial-cluster`.
    pub fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts every member that is not running.
    pub fn start_all(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            if !self.members[i].is_running() {
                self.start_member(i)?;
            }
        }
        Ok(())
    }

    /// Starts member `i` (state `new`: once initialised the initial-* flags are ignored, as in etcd).
    pub fn start_member(&mut self, i: usize) -> Result<()> {
        let initial_cluster = self.initial_cluster();
        self.start_member_with(i, &initial_cluster, "new")
    }

    /// `name=peer_url,...` of the given members only.
    pub fn initial_cluster_of(&self, which: &[usize]) -> String {
        which
            .iter()
            .map(|&i| format!("{}={}", self.members[i].name, self.members[i].peer_url))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts member `i` with this `--initial-cluster` and `--initial-cluster-state` (`existing` for a
    /// member added with `member add`).
    pub fn start_member_with(
        &mut self,
        i: usize,
        initial_cluster: &str,
        state: &str,
    ) -> Result<()> {
        let certs = self.pki.members[i].clone();
        let m = &mut self.members[i];
        if m.is_running() {
            bail!("member {} is already running (pid {:?})", m.name, m.pid());
        }
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&m.log)
            .with_context(|| format!("opening {}", m.log.display()))?;
        m.starts += 1;
        use std::io::Write;
        writeln!(log, "===== start #{} of {} =====", m.starts, m.name)?;
        let err = log.try_clone()?;
        // `ip netns exec` execs the binary in place, so the child's PID is the member's own (signals
        // such as SIGSTOP reach it, not a wrapper).
        let mut cmd = match &m.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        cmd.arg(format!("--name={}", m.name))
            .arg(format!("--data-dir={}", m.data_dir.display()))
            .arg(format!("--listen-client-urls={}", m.client_url))
            .arg(format!("--advertise-client-urls={}", m.client_url))
            .arg(format!("--listen-peer-urls={}", m.peer_url))
            .arg(format!("--initial-advertise-peer-urls={}", m.peer_url))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg(format!("--initial-cluster-token={}", self.token))
            .arg(format!("--initial-cluster-state={state}"))
            .arg(format!("--cert-file={}", certs.server_crt.display()))
            .arg(format!("--key-file={}", certs.server_key.display()))
            .arg(format!("--trusted-ca-file={}", certs.ca.display()))
            .arg("--client-cert-auth")
            .arg(format!("--peer-cert-file={}", certs.peer_crt.display()))
            .arg(format!("--peer-key-file={}", certs.peer_key.display()))
            .arg(format!("--peer-trusted-ca-file={}", certs.ca.display()))
            .arg("--peer-client-cert-auth")
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} for member {}", self.binary.display(), m.name))?;
        m.child = Some(child);
        Ok(())
    }

    /// Sends SIGKILL to member `i` (kill -9) and reaps it.
    pub fn kill_member(&mut self, i: usize) -> Result<()> {
        let m = &mut self.members[i];
        if let Some(mut c) = m.child.take() {
            let _ = c.kill();
            c.wait()
                .with_context(|| format!("reaping member {}", m.name))?;
        }
        Ok(())
    }

    /// kill -9 every member.
    pub fn kill_all(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            self.kill_member(i)?;
        }
        Ok(())
    }

    /// kill -9 every member and start them all again with the same flags (their data dirs hold state).
    pub fn restart_all(&mut self) -> Result<()> {
        self.kill_all()?;
        self.start_all()
    }

    /// An etcdctl that talks to every member with the admin client certificate.
    pub fn etcdctl(&self) -> Etcdctl {
        Etcdctl {
            endpoints: self.endpoints(),
            cacert: Some(self.pki.ca.clone()),
            cert: Some((self.pki.admin.crt.clone(), self.pki.admin.key.clone())),
        }
    }

    /// An etcdctl that talks to member `i` only.
    pub fn etcdctl_for(&self, i: usize) -> Etcdctl {
        self.etcdctl()
            .with_endpoints(self.members[i].client_url.clone())
    }

    /// All client URLs, comma-separated.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| m.client_url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every member answers `endpoint health`.
    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let all: Vec<usize> = (0..self.members.len()).collect();
        self.wait_members_healthy(&all, timeout)
    }

    /// Waits until the given members answer `endpoint health`, failing early if one exits.
    pub fn wait_members_healthy(&mut self, which: &[usize], timeout: Duration) -> Result<()> {
        let ctl = self.etcdctl();
        let urls: Vec<String> = which
            .iter()
            .map(|&i| self.members[i].client_url.clone())
            .collect();
        let result = wait::wait_for(
            "members healthy",
            timeout,
            Duration::from_millis(200),
            || {
                for &i in which {
                    if !self.members[i].is_running() {
                        return Err(format!("member {} exited", self.members[i].name));
                    }
                }
                let out = ctl
                    .with_endpoints(urls.join(","))
                    .run(&["endpoint", "health"])
                    .map_err(|e| format!("{e:#}"))?;
                if out.success() {
                    Ok(())
                } else {
                    Err(format!("{}{}", out.stdout, out.stderr))
                }
            },
        );
        result.map_err(|e| anyhow::anyhow!("{e:#}\n{}", self.logs()))
    }

    /// The member ID the leader reports, and the index of the member that has it, asking `which`.
    pub fn leader(&self, which: &[usize]) -> Result<(u64, usize)> {
        let urls: Vec<&str> = which
            .iter()
            .map(|&i| self.members[i].client_url.as_str())
            .collect();
        let status = self
            .etcdctl()
            .with_endpoints(urls.join(","))
            .json(&["endpoint", "status", "-w", "json"])?;
        let entries = status
            .as_array()
            .context("endpoint status -w json is not an array")?;
        let mut leader = None;
        let mut leader_index = None;
        for e in entries {
            let st = &e["Status"];
            let l = st["leader"].as_u64().context("Status.leader missing")?;
            if l == 0 {
                bail!("{} reports no leader", e["Endpoint"]);
            }
            if leader.is_some_and(|x| x != l) {
                bail!("members disagree on the leader: {status}");
            }
            leader = Some(l);
            if st["header"]["member_id"].as_u64() == Some(l) {
                let url = e["Endpoint"].as_str().unwrap_or_default();
                leader_index = self.members.iter().position(|m| m.client_url == url);
            }
        }
        match (leader, leader_index) {
            (Some(l), Some(i)) => Ok((l, i)),
            (Some(l), None) => bail!("leader {l:x} is not among the asked members"),
            _ => bail!("no status entries"),
        }
    }

    /// Every member's log, for a failure report.
    pub fn logs(&self) -> String {
        log_tails(
            self.members
                .iter()
                .map(|m| (m.name.as_str(), m.log.as_path())),
        )
    }
}

/// The last lines of each `(name, log file)`, for a failure report.
pub fn log_tails<'a>(logs: impl Iterator<Item = (&'a str, &'a Path)>) -> String {
    let mut s = String::new();
    for (name, path) in logs {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read: {e})"));
        // The tail is what explains a failure; whole logs of a long test drown it.
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(80)..];
        s.push_str(&format!(
            "----- {} log ({}) last {} lines -----\n",
            name,
            path.display(),
            tail.len()
        ));
        for l in tail {
            s.push_str(l);
            s.push('\n');
        }
    }
    s
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.kill_all();
        if std::thread::panicking() {
            eprintln!(
                "cluster ({:?}, certs by {}) in {}:\n{}",
                self.flavor,
                self.pki.made_by,
                self.dir.path().display(),
                self.logs()
            );
            if std::env::var_os("CAIRN_TEST_KEEP").is_some() {
                if let ClusterDir::Temp(t) = &mut self.dir {
                    let Ok(spare) = tempfile::tempdir() else {
                        return;
                    };
                    let path = std::mem::replace(t, spare).keep();
                    eprintln!("kept {}", path.display());
                }
            }
        }
    }
}
