//! The member process: TLS configs, listeners, Raft start, serving, readiness and graceful shutdown.

mod authority;
pub mod listen;
pub mod logging;
pub mod notify;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::Config;
use crate::member::App;
use crate::tls::TlsFiles;

/// The client listener's routes: etcd's gRPC services, the HTTP endpoints and the JSON gateway on the same
/// port.
pub fn client_router(
    app: &App,
    opts: crate::api::ApiOptions,
    access: crate::http::access::Access,
) -> Result<axum::Router, crate::http::gateway::RoutesError> {
    let max_request_bytes = opts.max_request_bytes;
    let grpc = crate::api::services(app.clone(), opts);
    crate::http::client_port(app.clone(), grpc, max_request_bytes, access)
}

/// The auth flags the client services need; reads the JWT keys of `--auth-token jwt,...`.
pub fn auth_options(cfg: &Config) -> anyhow::Result<crate::api::AuthOptions> {
    use crate::api::guard::TokenKind;
    let token = match cfg.auth_token()? {
        crate::config::AuthToken::Simple => TokenKind::Simple,
        crate::config::AuthToken::Jwt(spec) => {
            if !spec.unknown.is_empty() {
                tracing::warn!(options = ?spec.unknown, "unknown JWT options in --auth-token");
            }
            let jwt = crate::api::jwt::Jwt::load(&spec)?;
            if !jwt.signs() {
                tracing::info!("--auth-token jwt without priv-key: this member checks tokens but does not issue them");
            }
            TokenKind::Jwt(std::sync::Arc::new(jwt))
        }
    };
    let (bcrypt_cost, warning) = cfg.bcrypt_cost_in_use();
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    Ok(crate::api::AuthOptions {
        token,
        token_ttl: std::time::Duration::from_secs(cfg.auth_token_ttl),
        bcrypt_cost,
        client_cert_auth: cfg.client_cert_auth,
    })
}

/// The peer listener's routes: our Raft transport, plus etcd's Lease service for forwarded keep-alives.
pub fn peer_router(started: &crate::member::Started) -> axum::Router {
    tonic::service::Routes::new(started.peer_service.server())
        .add_service(crate::api::lease_service(started.app.clone()))
        .into_axum_router()
}

/// The rustls configurations the flags ask for (None = plain http on that side).
pub struct Tls {
    pub client_server_tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    pub peer_server_tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    pub peer_client_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Tls {
    /// Load every certificate file named by the flags.
    pub fn from_config(cfg: &Config) -> Result<Tls, crate::tls::TlsError> {
        let client = TlsFiles {
            prefix: "",
            cert: cfg.cert_file.clone(),
            key: cfg.key_file.clone(),
            ca: cfg.trusted_ca_file.clone(),
            client_cert_auth: cfg.client_cert_auth,
        };
        let peer = TlsFiles {
            prefix: "peer-",
            cert: cfg.peer_cert_file.clone(),
            key: cfg.peer_key_file.clone(),
            ca: cfg.peer_trusted_ca_file.clone(),
            client_cert_auth: cfg.peer_client_cert_auth,
        };
        Ok(Tls {
            client_server_tls: client.server_config()?,
            peer_server_tls: peer.server_config()?,
            peer_client_tls: peer.client_config()?,
        })
    }
}

/// With `--discovery-srv`, fill `--initial-cluster` from DNS (first start only, as etcd) and return the
/// resolver used to dial peers by their SRV target names.
async fn discover(cfg: &mut Config) -> anyhow::Result<Option<crate::dns::Dns>> {
    crate::bootstrap::discovery::resolve(cfg).await?;
    let Some(domain) = cfg.discovery_srv.clone() else {
        return Ok(None);
    };
    let dns = crate::dns::Dns::new(cfg.dns_server)?;
    let data_dir = crate::storage::data_dir::DataDir::new(&cfg.data_dir);
    if data_dir.is_initialized() {
        tracing::info!(
            "discovery ignored since a cluster has already been initialized. Valid log found at {}",
            data_dir.log_db().display()
        );
        // Any list naming this member will do: the stored identity is used on restart.
        cfg.initial_cluster = Some(format!(
            "{}={}",
            cfg.name,
            cfg.initial_advertise_peer_urls.join(",")
        ));
        return Ok(Some(dns));
    }
    tracing::info!("looking up the initial cluster in DNS SRV records of {domain}");
    cfg.initial_cluster = Some(crate::bootstrap::srv::initial_cluster(cfg, &dns).await?);
    Ok(Some(dns))
}

/// Run the member until SIGTERM/SIGINT.
pub async fn run(mut cfg: Config) -> anyhow::Result<()> {
    let dns = discover(&mut cfg).await?;
    let Tls {
        client_server_tls,
        peer_server_tls,
        peer_client_tls,
    } = Tls::from_config(&cfg)?;
    let auth = auth_options(&cfg)?;

    let peer_listeners = listen::bind_all("listen-peer-urls", &cfg.listen_peer_urls).await?;
    let client_listeners = listen::bind_all("listen-client-urls", &cfg.listen_client_urls).await?;
    let metrics_listeners =
        listen::bind_all("listen-metrics-urls", &cfg.listen_metrics_urls).await?;

    let started = App::start(&cfg, peer_client_tls, dns).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    peer_listeners.serve(
        &peer_server_tls,
        &peer_router(&started),
        Some(&started.frame_handler()),
        &stop_rx,
    );
    let client_router = client_router(
        &started.app,
        crate::api::ApiOptions {
            max_request_bytes: cfg.max_request_bytes,
            watch_progress_interval: cfg.watch_progress_interval(),
            auth,
        },
        crate::http::access::Access::new(&cfg.cors, &cfg.host_whitelist),
    )
    .context("building the client port's routes")?;
    client_listeners.serve(&client_server_tls, &client_router, None, &stop_rx);
    metrics_listeners.serve(
        &client_server_tls,
        &crate::http::router(started.app.clone()),
        None,
        &stop_rx,
    );
    started.app.spawn_lease_expiry();
    notify::ready();

    tokio::select! {
        r = wait_for_signal() => {
            r.context("installing signal handlers")?;
            tracing::info!("received signal; shutting down");
        }
        _ = started.app.removed() => {
            tracing::warn!("the member has been permanently removed from the cluster; exiting");
        }
        why = started.app.log_failed() => {
            let _ = stop_tx.send(true);
            anyhow::bail!(
                "the Raft log could not be written: {why}; exiting so that the supervisor restarts \
                 this member once the fault is cleared (nothing unwritten was acknowledged)"
            );
        }
        why = started.app.raft_stopped() => {
            let _ = stop_tx.send(true);
            anyhow::bail!(
                "raft stopped: {why}; exiting so that the supervisor restarts this member once the \
                 fault is cleared (nothing unwritten was acknowledged)"
            );
        }
    }
    let _ = stop_tx.send(true);
    started.app.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}
