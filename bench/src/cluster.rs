//! Starts a 3-member cluster of real processes (cairn or etcd: both take etcd's flags) on loopback with
//! mutual TLS on client and peer ports, and connects clients to it.

use crate::certs::Pki;
use anyhow::{bail, Context, Result};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server the cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Etcd,
    Cairn,
}

impl Flavor {
    /// Lower-case name used in tables and directories.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Etcd => "etcd",
            Flavor::Cairn => "cairn",
        }
    }
}

struct Member {
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

/// A running cluster; members are killed when it is dropped.
pub struct Cluster {
    binary: PathBuf,
    members: Vec<Member>,
    /// Client URLs, one per member.
    pub endpoints: Vec<String>,
    /// Data directories, one per member.
    pub data_dirs: Vec<PathBuf>,
    pki: Pki,
}

impl Cluster {
    /// Starts `pki.members.len()` members of `binary` with data and logs under `dir`.
    pub fn start(flavor: Flavor, binary: &Path, dir: &Path, pki: &Pki) -> Result<Cluster> {
        let n = pki.members.len();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ports = free_ports(2 * n)?;
        let peer = |i: usize| format!("https://127.0.0.1:{}", ports[2 * i + 1]);
        let initial: Vec<String> = (0..n).map(|i| format!("m{i}={}", peer(i))).collect();
        let mut cluster = Cluster {
            binary: binary.to_path_buf(),
            members: Vec::new(),
            endpoints: Vec::new(),
            data_dirs: Vec::new(),
            pki: pki.clone(),
        };
        for (i, certs) in pki.members.iter().enumerate() {
            let client = format!("https://127.0.0.1:{}", ports[2 * i]);
            let data = dir.join(format!("m{i}.data"));
            let s = |p: &Path| p.display().to_string();
            let args: Vec<String> = [
                ("--name", format!("m{i}")),
                ("--data-dir", s(&data)),
                ("--listen-client-urls", client.clone()),
                ("--advertise-client-urls", client.clone()),
                ("--listen-peer-urls", peer(i)),
                ("--initial-advertise-peer-urls", peer(i)),
                ("--initial-cluster", initial.join(",")),
                (
                    "--initial-cluster-token",
                    format!("bench-{}", flavor.name()),
                ),
                ("--initial-cluster-state", "new".into()),
                ("--cert-file", s(&certs.cert)),
                ("--key-file", s(&certs.key)),
                ("--trusted-ca-file", s(&pki.ca)),
                ("--peer-cert-file", s(&certs.cert)),
                ("--peer-key-file", s(&certs.key)),
                ("--peer-trusted-ca-file", s(&pki.ca)),
            ]
            .into_iter()
            .map(|(flag, value)| format!("{flag}={value}"))
            .chain([
                "--client-cert-auth".into(),
                "--peer-client-cert-auth".into(),
            ])
            .collect();
            let log = dir.join(format!("m{i}.log"));
            cluster.members.push(Member {
                args,
                log,
                child: None,
            });
            cluster.endpoints.push(client);
            cluster.data_dirs.push(data);
        }
        for i in 0..n {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log);
        let log = log.with_context(|| format!("opening {}", m.log.display()))?;
        let child = Command::new(&self.binary)
            .args(&m.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log handle")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        m.child = Some(child);
        Ok(())
    }

    /// Process IDs of the members, in member order.
    pub fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.child.as_ref().map(Child::id))
            .collect()
    }

    /// Kills every member with SIGKILL (no clean shutdown) and waits for them.
    pub fn kill_all(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Starts every member again with the same flags (a restart: the data dirs already hold state).
    pub fn restart_all(&mut self) -> Result<()> {
        self.kill_all();
        (0..self.members.len()).try_for_each(|i| self.spawn(i))
    }

    /// Waits until a linearizable read succeeds through every member, or fails after `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for (i, endpoint) in self.endpoints.clone().iter().enumerate() {
            loop {
                if let Some(Ok(Some(status))) = self.members[i].child.as_mut().map(Child::try_wait)
                {
                    bail!(
                        "member m{i} exited with {status}; see {}",
                        self.members[i].log.display()
                    );
                }
                let probe = async {
                    Ok::<_, anyhow::Error>(
                        self.connect(endpoint)
                            .await?
                            .get("bench-ready-probe", None)
                            .await?,
                    )
                };
                match tokio::time::timeout(Duration::from_secs(2), probe).await {
                    Ok(Ok(_)) => break,
                    _ if Instant::now() > deadline => bail!(
                        "member m{i} at {endpoint} not ready after {timeout:?}; see {}",
                        self.members[i].log.display()
                    ),
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        Ok(())
    }

    /// Index of the member that leads now, from each member's own Status answer.
    pub async fn leader(&self) -> Result<usize> {
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let status = self.connect(endpoint).await?.status().await?;
            if status.header().map(|h| h.member_id()) == Some(status.leader()) {
                return Ok(i);
            }
        }
        bail!("no member says it leads: the cluster has no leader right now")
    }

    /// Opens one gRPC connection (one TLS channel) to `endpoint` with the bench client cert.
    pub async fn connect(&self, endpoint: &str) -> Result<Client> {
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let tls = TlsOptions::new()
            .domain_name("localhost")
            .ca_certificate(Certificate::from_pem(read(&self.pki.ca)?))
            .identity(Identity::from_pem(
                read(&self.pki.client.cert)?,
                read(&self.pki.client.key)?,
            ));
        let opts = ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(Duration::from_secs(5));
        Client::connect([endpoint], Some(opts))
            .await
            .with_context(|| format!("connecting to {endpoint}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0"))
        .collect::<Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr().context("reading a bound port")?.port()))
        .collect()
}
