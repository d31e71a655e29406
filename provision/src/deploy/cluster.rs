//! The cluster's client API (etcd v3 over gRPC, mutual TLS with the rendered `admin` client certificate):
//! membership, status, health and snapshots. One short-lived connection per endpoint and call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, MemberAddOptions, TlsOptions};
use sha2::{Digest, Sha256};

use super::plan::Member;
use crate::spec::{CaMode, Spec};

/// Per-call limit: a member that does not answer within this is reported unhealthy, not waited for.
const CALL: Duration = Duration::from_secs(4);

/// Files of the client identity apply uses.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// CA that signed the servers' certificates.
    pub ca: PathBuf,
    /// Client certificate.
    pub cert: PathBuf,
    /// Client key.
    pub key: PathBuf,
}

/// How to reach the client API.
#[derive(Debug, Clone)]
pub struct Api {
    tls: Option<ClientTls>,
}

/// One member's answer to Status.
#[derive(Debug, Clone)]
pub struct Status {
    /// The member's ID.
    pub id: u64,
    /// Server version.
    pub version: String,
    /// Leader ID as this member sees it.
    pub leader: u64,
    /// Raft index.
    pub raft_index: u64,
    /// Applied index.
    pub applied: u64,
    /// Learner.
    pub is_learner: bool,
}

impl Api {
    /// The client API of `spec`, authenticating with `out/pki/clients/admin.*` when TLS is on.
    pub fn new(spec: &Spec, out: &Path) -> Api {
        let tls = spec.tls.as_ref().map(|t| {
            // During a CA rotation members present certificates of either CA, and those not yet restarted
            // trust only the old one: trust the bundle and log in with the admin certificate of the old CA,
            // which every member accepts until the rotation is finished.
            let bundle = out.join("pki/ca-bundle.crt");
            let old_admin = out.join("pki/clients/admin.prev.crt");
            let ca = match t.ca {
                _ if bundle.is_file() => bundle.clone(),
                CaMode::Shared => out.join("pki/ca.crt"),
                CaMode::Separate => out.join("pki/client-ca.crt"),
            };
            let admin = if bundle.is_file() && old_admin.is_file() {
                "admin.prev"
            } else {
                "admin"
            };
            ClientTls {
                ca,
                cert: out.join(format!("pki/clients/{admin}.crt")),
                key: out.join(format!("pki/clients/{admin}.key")),
            }
        });
        Api { tls }
    }

    /// Connect to one endpoint (`https://IP:port`).
    pub async fn connect(&self, endpoint: &str) -> anyhow::Result<Client> {
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(CALL);
        if let Some(tls) = self.tls_options(endpoint)? {
            opts = opts.with_tls(tls);
        }
        let c = tokio::time::timeout(CALL, Client::connect([endpoint], Some(opts)))
            .await
            .map_err(|_| anyhow!("{endpoint}: connect timed out"))?
            .with_context(|| format!("connecting to {endpoint}"))?;
        Ok(c)
    }

    /// The TLS settings for `endpoint` (its CA, the admin identity), None without TLS.
    pub fn tls_options(&self, endpoint: &str) -> anyhow::Result<Option<TlsOptions>> {
        let Some(t) = &self.tls else {
            return Ok(None);
        };
        let read = |p: &Path| {
            std::fs::read(p)
                .with_context(|| format!("reading {} (run `provision render` first)", p.display()))
        };
        // Certificates carry the member IPs as SANs; name the IP so rustls checks it.
        let host = endpoint
            .split("://")
            .nth(1)
            .unwrap_or(endpoint)
            .rsplit_once(':')
            .map(|(h, _)| h.trim_matches(['[', ']']))
            .unwrap_or(endpoint)
            .to_string();
        Ok(Some(
            TlsOptions::new()
                .domain_name(host)
                .ca_certificate(Certificate::from_pem(read(&t.ca)?))
                .identity(Identity::from_pem(read(&t.cert)?, read(&t.key)?)),
        ))
    }

    /// Status of one member.
    pub async fn status(&self, endpoint: &str) -> anyhow::Result<Status> {
        let mut c = self.connect(endpoint).await?;
        let s = tokio::time::timeout(CALL, c.status())
            .await
            .map_err(|_| anyhow!("{endpoint}: status timed out"))??;
        Ok(Status {
            id: s.header().map(|h| h.member_id()).unwrap_or(0),
            version: s.version().to_string(),
            leader: s.leader(),
            raft_index: s.raft_index(),
            applied: s.raft_applied_index(),
            is_learner: s.is_learner(),
        })
    }

    /// A linearizable read through this member (what `etcdctl endpoint health` does).
    pub async fn healthy(&self, endpoint: &str) -> anyhow::Result<()> {
        let mut c = self.connect(endpoint).await?;
        tokio::time::timeout(CALL, c.get("health", None))
            .await
            .map_err(|_| anyhow!("{endpoint}: read timed out"))??;
        Ok(())
    }

    /// Members as the first answering endpoint reports them (healthy = its status answered). A member
    /// named in `by_name` is asked at that endpoint (an IP), others at their advertised client URLs.
    pub async fn members(
        &self,
        endpoints: &[String],
        by_name: &BTreeMap<String, String>,
    ) -> anyhow::Result<(Vec<Member>, Option<u64>)> {
        let mut last = anyhow!("no endpoint to ask");
        for ep in endpoints {
            let list = async {
                let mut c = self.connect(ep).await?;
                let r = tokio::time::timeout(CALL, c.member_list())
                    .await
                    .map_err(|_| anyhow!("{ep}: member list timed out"))??;
                anyhow::Ok(r)
            };
            match list.await {
                Ok(r) => {
                    let mut out = Vec::new();
                    let mut leader = None;
                    for m in r.members() {
                        let mut healthy = false;
                        let urls: Vec<String> = match by_name.get(m.name()) {
                            Some(ep) => vec![ep.clone()],
                            None => m.client_urls().to_vec(),
                        };
                        for url in &urls {
                            if let Ok(s) = self.status(url).await {
                                healthy = true;
                                if s.leader != 0 {
                                    leader = Some(s.leader);
                                }
                                break;
                            }
                        }
                        out.push(Member {
                            id: m.id(),
                            name: m.name().to_string(),
                            peer_urls: m.peer_urls().to_vec(),
                            is_learner: m.is_learner(),
                            healthy,
                        });
                    }
                    return Ok((out, leader));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// MemberAdd as a learner; returns the new ID.
    pub async fn add_learner(&self, endpoints: &[String], peer_url: &str) -> anyhow::Result<u64> {
        self.on_any(endpoints, |mut c| {
            let url = peer_url.to_string();
            async move {
                let r = c
                    .member_add([url], Some(MemberAddOptions::new().with_is_learner()))
                    .await?;
                r.member()
                    .map(|m| m.id())
                    .ok_or_else(|| anyhow!("member add returned no member"))
            }
        })
        .await
    }

    /// MemberPromote.
    pub async fn promote(&self, endpoints: &[String], id: u64) -> anyhow::Result<()> {
        self.on_any(endpoints, |mut c| async move {
            c.member_promote(id).await?;
            Ok(())
        })
        .await
    }

    /// MoveLeader to `target`, asked of each endpoint until one (the leader) does it.
    pub async fn move_leader(&self, endpoints: &[String], target: u64) -> anyhow::Result<()> {
        self.on_any(endpoints, |mut c| async move {
            c.move_leader(target).await?;
            Ok(())
        })
        .await
    }

    /// MemberRemove.
    pub async fn remove(&self, endpoints: &[String], id: u64) -> anyhow::Result<()> {
        self.on_any(endpoints, |mut c| async move {
            c.member_remove(id).await?;
            Ok(())
        })
        .await
    }

    /// `f` on the first endpoint that connects and answers within 15 s.
    pub async fn on_any<T, F, Fut>(&self, endpoints: &[String], f: F) -> anyhow::Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        let mut last = anyhow!("no endpoint to ask");
        for ep in endpoints {
            match self.connect(ep).await {
                Ok(c) => match tokio::time::timeout(Duration::from_secs(15), f(c)).await {
                    Ok(r) => return r,
                    Err(_) => last = anyhow!("{ep}: timed out"),
                },
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Stream a snapshot from the first answering endpoint into `path`; returns its size and sha256.
    pub async fn snapshot(
        &self,
        endpoints: &[String],
        path: &Path,
    ) -> anyhow::Result<(usize, String)> {
        let mut last = anyhow!("no endpoint to ask");
        for ep in endpoints {
            let got = async {
                let mut c = self.connect(ep).await?;
                let mut stream = c.snapshot().await?;
                let mut data = Vec::new();
                while let Some(msg) =
                    tokio::time::timeout(Duration::from_secs(30), stream.message())
                        .await
                        .map_err(|_| anyhow!("{ep}: snapshot stream stalled"))??
                {
                    data.extend_from_slice(msg.blob());
                }
                anyhow::Ok(data)
            };
            match got.await {
                Ok(data) => {
                    let sum =
                        verify_snapshot(&data).with_context(|| format!("snapshot from {ep}"))?;
                    crate::files::write_secret(path, &data)?;
                    // Read back what landed on disk: the copy we keep is the one that must be intact.
                    let back = std::fs::read(path)
                        .with_context(|| format!("reading back {}", path.display()))?;
                    verify_snapshot(&back)
                        .with_context(|| format!("{} after writing", path.display()))?;
                    return Ok((back.len(), sum));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// A snapshot as etcd and cairn stream it ends with the sha256 of everything before it; check it.
pub fn verify_snapshot(data: &[u8]) -> anyhow::Result<String> {
    if data.len() <= 32 {
        anyhow::bail!("snapshot is empty ({} bytes)", data.len());
    }
    let (body, sum) = data.split_at(data.len() - 32);
    let actual = Sha256::digest(body);
    if actual.as_slice() != sum {
        anyhow::bail!(
            "snapshot integrity check failed: trailing sha256 {} does not match the content's {}",
            hex::encode(sum),
            hex::encode(actual)
        );
    }
    Ok(hex::encode(Sha256::digest(data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_check_accepts_an_intact_file_and_refuses_a_flipped_byte() {
        let mut data = b"CAIRNSS1 some state".to_vec();
        let sum = Sha256::digest(&data);
        data.extend_from_slice(&sum);
        assert!(verify_snapshot(&data).is_ok());
        data[3] ^= 1;
        assert!(verify_snapshot(&data)
            .unwrap_err()
            .to_string()
            .contains("integrity"));
        assert!(verify_snapshot(&[])
            .unwrap_err()
            .to_string()
            .contains("empty"));
    }
}
