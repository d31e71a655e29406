//! The HTTP/1.1 requests the v2 discovery protocol makes (etcd's v2 keys API: GET, PUT with a form
//! body, long-poll GET with `wait=true`), one connection per request, over TLS for https URLs (the
//! system's CA bundle) and through `--discovery-proxy` when given (absolute-form requests for http,
//! CONNECT for https), as Go's http.Transport does for etcd.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::parse_url;

/// Where Debian (and most distributions) keep the system's trusted CAs; `SSL_CERT_FILE` overrides.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// An answer: status, the `X-Etcd-Index` header, the body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub etcd_index: Option<u64>,
    pub body: Bytes,
}

/// A client for one discovery service (`scheme://host:port`), optionally through a proxy.
#[derive(Clone)]
pub struct HttpClient {
    tls: bool,
    host: String,
    port: u16,
    proxy: Option<(String, u16)>,
    tls_config: Option<Arc<rustls::ClientConfig>>,
}

impl HttpClient {
    /// A client for the service at `base` (`http(s)://host:port`), through `proxy` if given.
    pub fn new(base: &str, proxy: Option<&str>) -> anyhow::Result<HttpClient> {
        let u = parse_url("discovery", base)?;
        let proxy = match proxy {
            Some(p) => {
                let p = parse_url("discovery-proxy", p)?;
                Some((p.host, p.port))
            }
            None => None,
        };
        let tls_config = if u.tls { Some(system_tls()?) } else { None };
        Ok(HttpClient {
            tls: u.tls,
            host: u.host,
            port: u.port,
            proxy,
            tls_config,
        })
    }

    /// Send `method path_and_query` with a form `body` (empty for GET).
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: &str,
    ) -> anyhow::Result<Answer> {
        let authority = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let (dial_host, dial_port) = self
            .proxy
            .clone()
            .unwrap_or_else(|| (self.host.clone(), self.port));
        let mut tcp = TcpStream::connect((dial_host.as_str(), dial_port))
            .await
            .with_context(|| format!("connecting to {dial_host}:{dial_port}"))?;
        // Through a proxy, http requests carry the absolute URL; https tunnels with CONNECT.
        let uri = match (&self.proxy, self.tls) {
            (Some(_), false) => format!("http://{authority}{path_and_query}"),
            (Some(_), true) => {
                connect_tunnel(&mut tcp, &authority).await?;
                path_and_query.to_string()
            }
            (None, _) => path_and_query.to_string(),
        };
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", &authority)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body.to_string())))
            .context("building the request")?;
        match &self.tls_config {
            Some(cfg) => {
                let name = rustls_pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| anyhow!("discovery host {}: {e}", self.host))?;
                let stream = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {authority}"))?;
                exchange(TokioIo::new(stream), req).await
            }
            None => exchange(TokioIo::new(tcp), req).await,
        }
    }
}

async fn exchange<S>(io: TokioIo<S>, req: Request<Full<Bytes>>) -> anyhow::Result<Answer>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .context("HTTP handshake")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(req)
        .await
        .context("sending the request")?;
    let status = resp.status().as_u16();
    let etcd_index = resp
        .headers()
        .get("x-etcd-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = resp
        .into_body()
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    Ok(Answer {
        status,
        etcd_index,
        body,
    })
}

/// Open a CONNECT tunnel to `authority` on a proxy connection.
async fn connect_tunnel(tcp: &mut TcpStream, authority: &str) -> anyhow::Result<()> {
    let hello = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    tcp.write_all(hello.as_bytes()).await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await? == 0 || head.len() > 8192 {
            bail!("the discovery proxy closed the CONNECT to {authority}");
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        bail!(
            "the discovery proxy refused CONNECT {authority}: {}",
            line.lines().next().unwrap_or_default()
        );
    }
    Ok(())
}

fn system_tls() -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let path = std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| SYSTEM_CA_BUNDLE.into());
    let pem =
        std::fs::read(&path).with_context(|| format!("reading the system CA bundle {path}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
        let cert: rustls_pki_types::CertificateDer = cert.map_err(|e| anyhow!("{path}: {e}"))?;
        let _ = roots.add(cert);
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| anyhow!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
