//! The `etcd-client` side of the harness: connecting with the cluster's admin certificate, waiting until
//! members serve linearizable reads, finding the leader. Used by the benchmark and the chaos harness.

use crate::cluster::Cluster;
use crate::pki::Pki;
use anyhow::{bail, Context, Result};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use std::path::Path;
use std::time::{Duration, Instant};

/// TLS options presenting the admin certificate and trusting the cluster CA. Server names are checked
/// against `localhost`, which every member certificate carries whatever its address.
pub fn tls(pki: &Pki) -> Result<TlsOptions> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    Ok(TlsOptions::new()
        .domain_name("localhost")
        .ca_certificate(Certificate::from_pem(read(&pki.ca)?))
        .identity(Identity::from_pem(
            read(&pki.admin.crt)?,
            read(&pki.admin.key)?,
        )))
}

/// Opens one gRPC channel to `endpoints` (balanced when several) with the admin certificate. Connecting
/// is lazy: a member that is down fails the first request, not this call.
pub async fn connect(pki: &Pki, endpoints: &[&str]) -> Result<Client> {
    let opts = ConnectOptions::new()
        .with_tls(tls(pki)?)
        .with_connect_timeout(Duration::from_secs(5));
    Client::connect(endpoints, Some(opts))
        .await
        .with_context(|| format!("connecting to {}", endpoints.join(",")))
}

impl Cluster {
    /// A client of member `i` only.
    pub async fn client(&self, i: usize) -> Result<Client> {
        connect(&self.pki, &[self.members[i].client_url.as_str()]).await
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
