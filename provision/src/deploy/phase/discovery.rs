//! `bootstrap: discovery`: before the first start, the token's expected size goes into the discovery
//! cluster at `/_etcd/registry/<token>/_config/size` (etcd 3.6's v3discovery layout, which cairn's
//! bootstrap/discovery_v3.rs reads). Created only when absent (one transaction), so a second apply changes
//! nothing; a token that already holds another size is refused, naming it, before any member starts.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, Identity, TlsOptions, Txn, TxnOp,
};

use super::Phase;
use crate::deploy::ctx::RunCtx;
use crate::spec::Discovery;

/// Per-call limit on the discovery cluster.
const CALL: Duration = Duration::from_secs(5);

/// Give the discovery token its size.
pub struct DiscoveryToken;

impl Phase for DiscoveryToken {
    fn title(&self) -> String {
        "Discovery token".into()
    }

    fn should_run(&self, ctx: &RunCtx) -> bool {
        ctx.spec.discovery.is_some()
    }

    fn run(&mut self, ctx: &mut RunCtx) -> anyhow::Result<()> {
        let Some(d) = ctx.spec.discovery.clone() else {
            return Ok(());
        };
        let want = ctx.spec.nodes.len();
        let key = d.size_key();
        // Members that hold data were bootstrapped already: the token is never read again (etcd: "discovery
        // token ignored since a cluster has already been initialized"), and members join by MemberAdd.
        let bootstrapped =
            ctx.membership.observed.members.is_some() || ctx.facts.values().any(|f| f.has_data);
        let size = ctx.session.block_on(async {
            let mut c = connect(&d).await?;
            read_size(&mut c, &key).await
        })?;
        match size {
            Some(have) if have == want.to_string() => {
                ctx.ui.info(&format!("token {}: size {have} already set", d.token));
            }
            Some(have) if bootstrapped => ctx.ui.info(&format!(
                "token {} was used at bootstrap with size {have}; the cluster has {want} members now and \
                 changes membership through the member API, not the token",
                d.token
            )),
            Some(have) => bail!(refuse(&d, &key, &have, want)),
            None if bootstrapped => ctx.ui.info(&format!(
                "token {} has no size in the discovery cluster, but the members are bootstrapped already: \
                 nothing to do",
                d.token
            )),
            None => {
                let what = format!(
                    "set {key} = {want} in the discovery cluster ({})",
                    d.endpoints.join(",")
                );
                if !ctx.ui.gate("discovery", &what) {
                    return Ok(());
                }
                let created = ctx.session.block_on(async {
                    let mut c = connect(&d).await?;
                    let txn = Txn::new()
                        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                        .and_then([TxnOp::put(key.clone(), want.to_string(), None)]);
                    let r = tokio::time::timeout(CALL, c.txn(txn))
                        .await
                        .map_err(|_| anyhow!("setting {key}: timed out"))??;
                    if r.succeeded() {
                        return Ok(None);
                    }
                    // Someone set it between our read and the transaction: judge their value.
                    read_size(&mut c, &key).await
                })?;
                if let Some(have) = created.filter(|h| *h != want.to_string()) {
                    bail!(refuse(&d, &key, &have, want));
                }
            }
        }
        Ok(())
    }
}

fn refuse(d: &Discovery, key: &str, have: &str, want: usize) -> String {
    format!(
        "discovery token {:?} already expects {have} members ({key} in {}), but cluster.yaml lists {want}: a \
         token bootstraps one cluster of one size; give `cluster.discovery.token` a new token",
        d.token,
        d.endpoints.join(",")
    )
}

/// The size value under `key`, if any.
async fn read_size(c: &mut Client, key: &str) -> anyhow::Result<Option<String>> {
    let r = tokio::time::timeout(CALL, c.get(key, None))
        .await
        .map_err(|_| anyhow!("reading {key}: timed out"))?
        .with_context(|| format!("reading {key} from the discovery cluster"))?;
    Ok(r.kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).trim().to_string()))
}

/// A client of the discovery cluster, with its CA and the client certificate when given.
async fn connect(d: &Discovery) -> anyhow::Result<Client> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(CALL);
    if d.tls() {
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let mut tls = TlsOptions::new();
        if let Some(ca) = &d.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let Some((cert, key)) = &d.client {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        // Server certificates usually name IPs: check the first endpoint's host, as cairn's own
        // discovery client does.
        if let Some(e) = d.endpoints.first() {
            let rest = e.split("://").nth(1).unwrap_or(e);
            let host = rest
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or(rest)
                .trim_matches(['[', ']']);
            tls = tls.domain_name(host);
        }
        opts = opts.with_tls(tls);
    }
    let eps = d.endpoints.join(",");
    tokio::time::timeout(CALL, Client::connect(d.endpoints.clone(), Some(opts)))
        .await
        .map_err(|_| anyhow!("connecting to the discovery cluster {eps}: timed out"))?
        .with_context(|| format!("connecting to the discovery cluster {eps}"))
}
