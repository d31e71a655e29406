//! etcd 3.6's v3 discovery protocol (server/etcdserver/api/v3discovery) over any etcd-API cluster:
//! `/_etcd/registry/<token>/_config/size` holds the size, each member puts
//! `/_etcd/registry/<token>/members/<member id>` = `name=peer-url`, and the first `size` members by
//! create revision form the cluster; the rest watch until there are that many.

use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, Identity, TlsOptions, WatchOptions,
};

use super::discovered::{to_cluster, DiscoveryError};
use crate::config::DiscoveryFlags;

/// One registered member: its key, `name=url` value and create revision.
type Registered = (String, String, i64);

/// Register this member under `--discovery-token` and wait for the cluster; returns `--initial-cluster`.
pub async fn join(f: &DiscoveryFlags, id: u64, me: &str) -> Result<String, DiscoveryError> {
    let token = f.discovery_token.clone().unwrap_or_default();
    let prefix = format!("/_etcd/registry/{token}");
    let size_key = format!("{prefix}/_config/size");
    let members = format!("{prefix}/members");
    let my_key = format!("{members}/{id:x}");
    let mut client = connect(f).await?;
    check(&mut client, &size_key, &members, &my_key, &token).await?;
    retry("registering this member", || {
        let mut c = client.clone();
        let (k, v) = (my_key.clone(), me.to_string());
        async move { c.put(k, v, None).await.map(|_| ()) }
    })
    .await;
    let (mut found, size, rev) = check(&mut client, &size_key, &members, &my_key, &token).await?;
    if found.len() < size {
        tracing::info!(
            "found {} peer(s), waiting for {} more",
            found.len(),
            size - found.len()
        );
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(rev + 1);
        let mut stream = client
            .watch(members.clone(), Some(opts))
            .await
            .map_err(|e| DiscoveryError::Other(format!("watching {members}: {e}")))?;
        while found.len() < size {
            let resp = stream
                .message()
                .await
                .map_err(|e| DiscoveryError::Other(format!("watching {members}: {e}")))?
                .ok_or_else(|| DiscoveryError::Other(format!("watch of {members} ended")))?;
            for ev in resp.events() {
                let Some(kv) = ev.kv().filter(|_| ev.event_type() == EventType::Put) else {
                    continue;
                };
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                if !found.iter().any(|m| m.0 == key) {
                    let value = String::from_utf8_lossy(kv.value()).into_owned();
                    found.push((key, value, kv.create_revision()));
                    found.sort_by_key(|m| m.2);
                }
            }
        }
    }
    let values: Vec<String> = found.into_iter().map(|m| m.1).collect();
    to_cluster(&values, size)
}

/// The size and registered members (by create revision), and the revision they were read at.
async fn check(
    client: &mut Client,
    size_key: &str,
    members: &str,
    my_key: &str,
    token: &str,
) -> Result<(Vec<Registered>, usize, i64), DiscoveryError> {
    let got = retry("reading the cluster size", || {
        let mut c = client.clone();
        let k = size_key.to_string();
        async move { c.get(k, None).await }
    })
    .await;
    let value = got
        .kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
        .ok_or_else(|| DiscoveryError::SizeNotFound(format!("token {token}")))?;
    let size: usize = value
        .trim()
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .ok_or(DiscoveryError::BadSizeKey)?;
    let listed = retry("listing registered members", || {
        let mut c = client.clone();
        let k = members.to_string();
        async move { c.get(k, Some(GetOptions::new().with_prefix())).await }
    })
    .await;
    let rev = listed.header().map(|h| h.revision()).unwrap_or_default();
    let mut found: Vec<Registered> = listed
        .kvs()
        .iter()
        .map(|kv| {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let value = String::from_utf8_lossy(kv.value()).into_owned();
            (key, value, kv.create_revision())
        })
        .collect();
    found.sort_by_key(|m| m.2);
    for (i, m) in found.iter().enumerate() {
        if m.0 == my_key {
            break;
        }
        if i + 1 >= size {
            return Err(DiscoveryError::FullCluster);
        }
    }
    Ok((found, size, rev))
}

/// Call `f` until it succeeds, backing off as etcd's discovery does while the service is unreachable.
async fn retry<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let mut delay = Duration::from_millis(500);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => tracing::warn!("v3 discovery: {what}: {e}; retrying in {delay:?}"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

async fn connect(f: &DiscoveryFlags) -> Result<Client, DiscoveryError> {
    let other = |e: String| DiscoveryError::Other(e);
    if f.discovery_insecure_skip_tls_verify {
        return Err(other(
            "--discovery-insecure-skip-tls-verify is not supported by cairn: give --discovery-cacert".into(),
        ));
    }
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(f.discovery_dial_timeout)
        .with_timeout(f.discovery_request_timeout)
        .with_keep_alive(f.discovery_keepalive_time, f.discovery_keepalive_timeout);
    let secure = f
        .discovery_endpoints
        .iter()
        .any(|e| e.starts_with("https://"))
        || !f.discovery_insecure_transport;
    if secure {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| other(format!("reading {}: {e}", p.display())))
        };
        let mut tls = TlsOptions::new();
        if let Some(ca) = &f.discovery_cacert {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&f.discovery_cert, &f.discovery_key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        // Certificates name the members' IPs: check the first endpoint's host.
        if let Some(host) = f.discovery_endpoints.first().map(|e| host_of(e)) {
            tls = tls.domain_name(host);
        }
        opts = opts.with_tls(tls);
    }
    if let Some(user) = &f.discovery_user {
        let (name, password) = match (user.split_once(':'), &f.discovery_password) {
            (Some((n, p)), _) => (n.to_string(), p.to_string()),
            (None, Some(p)) => (user.clone(), p.clone()),
            (None, None) => (user.clone(), String::new()),
        };
        opts = opts.with_user(name, password);
    }
    let endpoints: Vec<String> = f
        .discovery_endpoints
        .iter()
        .map(|e| {
            if e.contains("://") {
                e.clone()
            } else if secure {
                format!("https://{e}")
            } else {
                format!("http://{e}")
            }
        })
        .collect();
    Client::connect(endpoints.clone(), Some(opts))
        .await
        .map_err(|e| {
            other(format!(
                "connecting to --discovery-endpoints {}: {e}",
                endpoints.join(",")
            ))
        })
}

fn host_of(endpoint: &str) -> String {
    let rest = endpoint.split("://").nth(1).unwrap_or(endpoint);
    let hostport = rest.split('/').next().unwrap_or(rest);
    hostport
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(hostport)
        .trim_matches(['[', ']'])
        .to_string()
}
