//! etcd 3.4's v2 discovery protocol (etcdserver/api/v2discovery) over a v2 keys API: read
//! `TOKEN/_config/size`, register `TOKEN/<member id>` = `name=peer-url` (create only), then watch the
//! token until `size` members have registered, ordered by creation.

use std::time::Duration;

use serde::Deserialize;

use super::discovered::{to_cluster, DiscoveryError};
use super::discovery_http::{Answer, HttpClient};
use crate::config::discovery::base_of;

/// etcd's v2 error codes the protocol distinguishes.
const KEY_NOT_FOUND: u32 = 100;
const NODE_EXIST: u32 = 105;

#[derive(Debug, Deserialize)]
struct Reply {
    action: Option<String>,
    node: Option<Node>,
    #[serde(rename = "errorCode")]
    error_code: Option<u32>,
    message: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Node {
    key: String,
    value: Option<String>,
    #[serde(default)]
    nodes: Vec<Node>,
    #[serde(rename = "createdIndex", default)]
    created: u64,
    #[serde(rename = "modifiedIndex", default)]
    modified: u64,
}

struct Discovery {
    client: HttpClient,
    /// The URL as given (for messages).
    url: String,
    /// The token's path on the service (`/v2/keys/discovery/<token>`).
    path: String,
    id: u64,
}

/// Register this member under `url` and wait for the cluster; returns `--initial-cluster`.
pub async fn join(
    url: &str,
    proxy: Option<&str>,
    id: u64,
    me: &str,
) -> Result<String, DiscoveryError> {
    let base = base_of(url);
    let client =
        HttpClient::new(base, proxy).map_err(|e| DiscoveryError::Other(format!("{e:#}")))?;
    let d = Discovery {
        client,
        url: url.trim_end_matches('/').to_string(),
        path: url[base.len()..].trim_end_matches('/').to_string(),
        id,
    };
    d.check().await?;
    d.register(me).await?;
    let (nodes, size, index) = d.check().await?;
    let all = d.wait(nodes, size, index).await?;
    let values: Vec<String> = all.into_iter().filter_map(|n| n.value).collect();
    to_cluster(&values, size)
}

impl Discovery {
    fn self_key(&self) -> String {
        format!("{}/{:x}", self.path, self.id)
    }

    /// One request, retried with backoff while the service cannot be reached or fails (etcd retries).
    async fn call(&self, method: &str, path: &str, body: &str) -> Answer {
        let mut delay = Duration::from_millis(500);
        loop {
            match self.client.send(method, path, body).await {
                Ok(a) if a.status < 500 => return a,
                Ok(a) => tracing::warn!(
                    "during checking discovery URL {}: status {}; retrying in {delay:?}",
                    self.url,
                    a.status
                ),
                Err(e) => tracing::warn!(
                    "during checking discovery URL {}: {e:#}; retrying in {delay:?}",
                    self.url
                ),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    fn parse(a: &Answer) -> Result<Reply, DiscoveryError> {
        serde_json::from_slice(&a.body).map_err(|_| DiscoveryError::BadEndpoint)
    }

    /// The size and the registered members (by creation), and the index to watch from; fails with
    /// FullCluster when `size` members registered before this one.
    async fn check(&self) -> Result<(Vec<Node>, usize, u64), DiscoveryError> {
        let a = self
            .call("GET", &format!("{}/_config/size", self.path), "")
            .await;
        let r = Self::parse(&a)?;
        if r.error_code == Some(KEY_NOT_FOUND) {
            return Err(DiscoveryError::SizeNotFound(self.url.clone()));
        }
        let size = r
            .node
            .and_then(|n| n.value)
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|s| *s > 0)
            .ok_or(DiscoveryError::BadSizeKey)?;
        let a = self.call("GET", &self.path, "").await;
        let r = Self::parse(&a)?;
        if let Some(code) = r.error_code {
            return Err(DiscoveryError::Other(format!(
                "{} (error {code})",
                r.message.unwrap_or_default()
            )));
        }
        let mut nodes: Vec<Node> = r
            .node
            .map(|n| n.nodes)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| base_name(&n.key) != "_config")
            .collect();
        nodes.sort_by_key(|n| n.created);
        let me = format!("{:x}", self.id);
        for (i, n) in nodes.iter().enumerate() {
            if base_name(&n.key) == me {
                break;
            }
            if i + 1 >= size {
                return Err(DiscoveryError::FullCluster);
            }
        }
        Ok((nodes, size, a.etcd_index.unwrap_or_default()))
    }

    async fn register(&self, me: &str) -> Result<(), DiscoveryError> {
        let path = format!("{}?prevExist=false", self.self_key());
        let a = self
            .call("PUT", &path, &format!("value={}", form_encode(me)))
            .await;
        let r = Self::parse(&a)?;
        match r.error_code {
            None => Ok(()),
            Some(NODE_EXIST) => Err(DiscoveryError::DuplicateId),
            Some(code) => Err(DiscoveryError::Other(format!(
                "registering {}: {} (error {code})",
                self.self_key(),
                r.message.unwrap_or_default()
            ))),
        }
    }

    /// Watch the token until `size` members registered.
    async fn wait(
        &self,
        mut all: Vec<Node>,
        size: usize,
        mut index: u64,
    ) -> Result<Vec<Node>, DiscoveryError> {
        all.truncate(size);
        while all.len() < size {
            tracing::info!(
                "found {} peer(s), waiting for {} more",
                all.len(),
                size - all.len()
            );
            let path = format!(
                "{}?wait=true&recursive=true&waitIndex={}",
                self.path,
                index + 1
            );
            let a = self.call("GET", &path, "").await;
            let r = Self::parse(&a)?;
            let Some(n) = r.node else {
                return Err(DiscoveryError::Other(format!(
                    "watching {}: {}",
                    self.url,
                    r.message.unwrap_or_default()
                )));
            };
            index = index.max(n.modified);
            let created = matches!(r.action.as_deref(), Some("create" | "set"));
            if created && base_name(&n.key) != "_config" && !all.iter().any(|x| x.key == n.key) {
                all.push(n);
            }
        }
        Ok(all)
    }
}

fn base_name(key: &str) -> &str {
    key.trim_end_matches('/').rsplit('/').next().unwrap_or(key)
}

/// application/x-www-form-urlencoded value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
