//! Accept loops: one TCP listener serves one axum router (gRPC over HTTP/2 and plain HTTP/1.1 on the
//! same port), optionally behind rustls. A failed TLS handshake (no client certificate, unknown CA) only
//! closes that connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::authority::AuthorityFix;
use crate::config::parse_url;
use crate::raft::frames::{self, FrameHandler};

/// Bind the address of a listen URL (`localhost` means 127.0.0.1, like etcd).
pub async fn bind(flag: &str, url: &str) -> anyhow::Result<TcpListener> {
    let p = parse_url(flag, url)?;
    let host = if p.host == "localhost" {
        "127.0.0.1".to_string()
    } else {
        p.host
    };
    let ip: std::net::IpAddr = host
        .parse()
        .with_context(|| format!("expected IP in URL for binding ({url})"))?;
    let addr = SocketAddr::new(ip, p.port);
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("--{flag} {url}: cannot listen on {addr}"))
}

/// The listeners bound for one flag, each remembering whether its URL is https.
pub struct Bound {
    flag: &'static str,
    listeners: Vec<(bool, TcpListener)>,
}

/// Bind every URL of `flag` (before Raft starts, so a taken port fails fast with the flag named).
pub async fn bind_all(flag: &'static str, urls: &[String]) -> anyhow::Result<Bound> {
    let mut listeners = Vec::new();
    for u in urls {
        listeners.push((u.starts_with("https://"), bind(flag, u).await?));
    }
    Ok(Bound { flag, listeners })
}

impl Bound {
    /// Serve `router` (and `frames`, on the peer port) on every listener (`tls` on the https ones)
    /// until `stop` turns true.
    pub fn serve(
        self,
        tls: &Option<Arc<rustls::ServerConfig>>,
        router: &axum::Router,
        frames: Option<&Arc<dyn FrameHandler>>,
        stop: &watch::Receiver<bool>,
    ) {
        for (https, l) in self.listeners {
            let (tls, router) = if https {
                // The HTTP side's host whitelist guards plain-HTTP connections only.
                let secure = axum::Extension(crate::http::access::Secure);
                (tls.clone(), router.clone().layer(secure))
            } else {
                (None, router.clone())
            };
            match l.local_addr() {
                Ok(a) => tracing::info!(address = %a, tls = https, "serving --{}", self.flag),
                Err(e) => tracing::warn!("--{}: {e}", self.flag),
            }
            tokio::spawn(serve(l, tls, router, frames.cloned(), stop.clone()));
        }
    }
}

/// Serve `router` on `listener` until `shutdown` turns true; with `frames`, connections that open with
/// the frame protocol's preface (raft/frames.rs) go to it instead.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: axum::Router,
    frames: Option<Arc<dyn FrameHandler>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Usually EMFILE; back off instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let (acceptor, stop) = (acceptor.clone(), shutdown.clone());
        let app = (router.clone(), frames.clone());
        tokio::spawn(async move { serve_conn(tcp, peer, acceptor, app, stop).await });
    }
}

async fn serve_conn(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    (router, frames): (axum::Router, Option<Arc<dyn FrameHandler>>),
    stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let res = match acceptor {
        Some(a) => match tokio::time::timeout(Duration::from_secs(10), a.accept(tcp)).await {
            Ok(Ok(tls)) => {
                // The verified client certificate names the user of requests without a token
                // (etcd's AuthInfoFromTLS); only a client-cert-auth listener asks for one.
                let router = match client_cert_name(&tls) {
                    Some(cn) => router.layer(axum::Extension(cn)),
                    None => router,
                };
                dispatch(tls, router, frames, stop).await
            }
            Ok(Err(e)) => {
                tracing::warn!(remote = %peer, "rejected connection: TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::warn!(remote = %peer, "rejected connection: TLS handshake timed out");
                return;
            }
        },
        None => dispatch(tcp, router, frames, stop).await,
    };
    if let Err(e) = res {
        tracing::debug!(remote = %peer, "connection closed: {e}");
    }
}

/// The Common Name of the client certificate a TLS connection presented, if any.
fn client_cert_name(
    tls: &tokio_rustls::server::TlsStream<TcpStream>,
) -> Option<crate::api::ClientCertName> {
    let der = tls.get_ref().1.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(crate::api::ClientCertName(cn.to_string()))
}

type ConnResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Hand a connection to the frame protocol if it opens with its preface, else to the HTTP server.
async fn dispatch<S>(
    mut io: S,
    router: axum::Router,
    frames: Option<Arc<dyn FrameHandler>>,
    stop: watch::Receiver<bool>,
) -> ConnResult
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(svc) = frames else {
        return drive(TokioIo::new(AuthorityFix::new(io)), router, stop).await;
    };
    // Every HTTP/1.1 request line and the HTTP/2 preface are longer than this, so the read never
    // waits for bytes a well-behaved client would not send.
    let mut head = [0u8; frames::PREFACE.len()];
    match tokio::time::timeout(Duration::from_secs(10), io.read_exact(&mut head)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err("no request within 10s".into()),
    }
    match frames::preface_version(&head) {
        Some(Ok(())) => return Ok(frames::serve(io, svc, stop).await?),
        Some(Err(refusal)) => return Ok(frames::refuse(io, &refusal).await?),
        None => {}
    }
    let io = AuthorityFix::with_prefix(io, head.to_vec());
    drive(TokioIo::new(io), router, stop).await
}

/// Serve one connection; on shutdown finish in-flight requests (HTTP/2 GOAWAY) and close.
async fn drive<I>(io: I, router: axum::Router, mut stop: watch::Receiver<bool>) -> ConnResult
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(router));
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => res,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}
