//! A cluster of N members as separate processes (cairn or the real etcd, same flags), each with its own
//! loopback ports, data dir, certificates and log file; killed by PID when dropped.

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

    /// How the process ended, once it has (None while it runs or when it was never started).
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
    dir: tempfile::TempDir,
}

/// How long a (re)started cluster may take to report healthy.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

impl Cluster {
    /// Starts an `n`-member TLS cluster with client-cert-auth on both listeners and waits until
    /// `etcdctl endpoint health` passes on every member.
    pub fn start(flavor: Flavor, n: usize) -> Result<Cluster> {
        let mut c = Cluster::create(flavor, n)?;
        c.start_all()?;
        c.wait_healthy(START_TIMEOUT)?;
        Ok(c)
    }

    /// Prepares ports, dirs and certificates without starting anything.
    pub fn create(flavor: Flavor, n: usize) -> Result<Cluster> {
        let binary = flavor.binary()?;
        let dir = tempfile::Builder::new()
            .prefix("cairn-cluster-")
            .tempdir()
            .context("creating the cluster temp dir")?;
        // Members may start long after this (member add, restarts): ports no outgoing connection takes.
        let ports = ports::unused_ports(2 * n)?;
        // Token unique per cluster so that two test clusters can never join each other.
        let token = format!(
            "test-{}-{}",
            std::process::id(),
            dir.path()
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or("x")
                .replace(['.', '_'], "-")
        )
        .to_lowercase();
        let specs: Vec<PkiMember> = (0..n)
            .map(|i| PkiMember {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
            })
            .collect();
        let pki = Pki::create(&dir.path().join("certs"), &token, &specs)?;
        let members = specs
            .iter()
            .map(|s| Member {
                name: s.name.clone(),
                client_url: format!("https://127.0.0.1:{}", s.client_port),
                peer_url: format!("https://127.0.0.1:{}", s.peer_port),
                data_dir: dir.path().join("data").join(&s.name),
                log: dir.path().join("logs").join(format!("{}.log", s.name)),
                child: None,
                starts: 0,
            })
            .collect();
        std::fs::create_dir_all(dir.path().join("logs"))?;
        std::fs::create_dir_all(dir.path().join("data"))?;
        Ok(Cluster {
            flavor,
            members,
            pki,
            token,
            extra_args: Vec::new(),
            binary,
            dir,
        })
    }

    /// The temp dir holding data, logs and certificates.
    pub fn dir(&self) -> &Path {
        self.dir.path()
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
        let mut cmd = Command::new(&self.binary);
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
                let path = std::mem::replace(
                    &mut self.dir,
                    match tempfile::tempdir() {
                        Ok(d) => d,
                        Err(_) => return,
                    },
                )
                .keep();
                eprintln!("kept {}", path.display());
            }
        }
    }
}
