//! The `etcd-client` crate as a second real client beside etcdctl, for what etcdctl cannot do: send
//! requests etcdctl would refuse before sending, half-close a stream, keep one stream open across a
//! fault, or issue many linearizable reads per second; and the client of the benchmark and the chaos
//! harness (readiness, the leader).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::cluster::Cluster;
use crate::pki::Pki;

/// A runtime for one test's async client code (the system tests themselves are synchronous).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building a tokio runtime for the gRPC client")
}

/// Connects to `endpoint` (one client URL) over mutual TLS with the cluster's `admin` certificate.
pub async fn connect(pki: &Pki, endpoint: &str) -> Result<Client> {
    connect_with(pki, &[endpoint], false).await
}

/// Like [`connect`], with every call sent as clientv3's `WithRequireLeader` sends it (gRPC metadata
/// `hasleader: true`), as the Kubernetes API server's watches are.
pub async fn connect_requiring_leader(pki: &Pki, endpoint: &str) -> Result<Client> {
    connect_with(pki, &[endpoint], true).await
}

/// Like [`connect`], authenticated as `user` with `password` (etcd's auth: the client's token).
pub async fn connect_as(pki: &Pki, endpoint: &str, user: &str, password: &str) -> Result<Client> {
    connect_opts(
        pki,
        &[endpoint],
        false,
        Some((user, password)),
        CALL_TIMEOUT,
    )
    .await
}

/// Like [`connect`], with calls that may take up to `timeout` (a physical compaction of a large store
/// takes etcd minutes).
pub async fn connect_patient(pki: &Pki, endpoint: &str, timeout: Duration) -> Result<Client> {
    connect_opts(pki, &[endpoint], false, None, timeout).await
}

/// A client balanced over `endpoints` (client URLs), optionally sending require-leader.
pub async fn connect_with(pki: &Pki, endpoints: &[&str], require_leader: bool) -> Result<Client> {
    connect_opts(pki, endpoints, require_leader, None, CALL_TIMEOUT).await
}

/// How long a call of the clients above may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

async fn connect_opts(
    pki: &Pki,
    endpoints: &[&str],
    require_leader: bool,
    user: Option<(&str, &str)>,
    timeout: Duration,
) -> Result<Client> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(&pki.ca)?))
        .identity(Identity::from_pem(
            read(&pki.admin.crt)?,
            read(&pki.admin.key)?,
        ));
    let opts = ConnectOptions::new()
        .with_tls(tls)
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(timeout)
        .with_require_leader(require_leader);
    let opts = match user {
        Some((name, password)) => opts.with_user(name, password),
        None => opts,
    };
    Client::connect(endpoints, Some(opts))
        .await
        .with_context(|| format!("connecting to {}", endpoints.join(",")))
}

/// The gRPC status code (its name, e.g. `InvalidArgument`) and message of a failed call; for a
/// failure that is not a gRPC status, `not gRPC` and the error's text.
pub fn status_of(e: &etcd_client::Error) -> (String, String) {
    match e {
        etcd_client::Error::GRpcStatus(s) => (format!("{:?}", s.code()), s.message().to_string()),
        other => ("not gRPC".to_string(), other.to_string()),
    }
}

impl Cluster {
    /// A client of member `i` only.
    pub async fn client(&self, i: usize) -> Result<Client> {
        connect(&self.pki, &self.members[i].client_url).await
    }

    /// Waits until a linearizable read succeeds through every member, failing early if one exits or
    /// after `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for i in 0..self.members.len() {
            loop {
                if !self.members[i].is_running() {
                    bail!(
                        "member {} exited; see {}",
                        self.members[i].name,
                        self.members[i].log.display()
                    );
                }
                let probe = async {
                    Ok::<_, anyhow::Error>(
                        self.client(i)
                            .await?
                            .get("harness-ready-probe", None)
                            .await?,
                    )
                };
                match tokio::time::timeout(Duration::from_secs(2), probe).await {
                    Ok(Ok(_)) => break,
                    _ if Instant::now() > deadline => bail!(
                        "member {} at {} not ready after {timeout:?}; see {}",
                        self.members[i].name,
                        self.members[i].client_url,
                        self.members[i].log.display()
                    ),
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        Ok(())
    }

    /// Index of the member that leads now, from each running member's own Status answer.
    pub async fn leader_index(&self) -> Result<usize> {
        for i in 0..self.members.len() {
            let Ok(mut c) = self.client(i).await else {
                continue;
            };
            let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(2), c.status()).await
            else {
                continue;
            };
            if status.header().map(|h| h.member_id()) == Some(status.leader()) {
                return Ok(i);
            }
        }
        bail!("no member says it leads: the cluster has no leader right now")
    }
}
