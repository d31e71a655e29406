//! One cached gRPC channel per member (with TLS a new channel per RPC would cost a handshake per
//! heartbeat), dialled through our own connector: TCP (resolving SRV target names with `--dns-server`
//! when needed), then rustls with the peer certificate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::{Channel, Endpoint};

use crate::config::parse_url;
use crate::raft::pb::peer_client::PeerClient;
use crate::raft::pb::PeerRequest;
use crate::raft::types::{NodeId, PeerNode};
use crate::store::log::encode;

/// Messages larger than gRPC's 4 MiB default travel between members (snapshot chunks, entry batches).
pub const MAX_PEER_MESSAGE: usize = 64 * 1024 * 1024;

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Channels to every member this member talks to, keyed by member ID and URL.
#[derive(Clone)]
pub struct PeerChannels {
    cluster_id: u64,
    tls: Option<Arc<ClientConfig>>,
    /// Resolver for peer URLs with host names (SRV bootstrap with `--dns-server`); None = system's.
    dns: Option<crate::bootstrap::srv::Dns>,
    cache: Arc<Mutex<HashMap<NodeId, (String, Channel)>>>,
    /// Per peer: the last failure logged and when, so an unreachable peer is reported once (and every
    /// 30 s), not per heartbeat.
    pub(crate) failing: Arc<Mutex<HashMap<NodeId, (String, std::time::Instant)>>>,
}

/// Why a channel to a member could not be made.
#[derive(Debug, thiserror::Error)]
#[error("peer {id:x} at {url}: {msg}")]
pub struct DialError {
    pub id: NodeId,
    pub url: String,
    pub msg: String,
}

impl PeerChannels {
    /// Channels for cluster `cluster_id`, dialled with `tls` when members use https peer URLs.
    pub fn new(cluster_id: u64, tls: Option<Arc<ClientConfig>>) -> Self {
        PeerChannels {
            cluster_id,
            tls,
            dns: None,
            cache: Arc::default(),
            failing: Arc::default(),
        }
    }

    /// Resolve host names in peer URLs with `dns` instead of the system resolver.
    pub fn with_dns(mut self, dns: Option<crate::bootstrap::srv::Dns>) -> Self {
        self.dns = dns;
        self
    }

    /// This cluster's ID (sent in every peer call).
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// The cached channel to member `id` (made lazily; it reconnects by itself after failures).
    pub fn channel(&self, id: NodeId, node: &PeerNode) -> Result<Channel, DialError> {
        let url = node.peer_urls.first().cloned().unwrap_or_default();
        let dial_err = |msg: String| DialError {
            id,
            url: url.clone(),
            msg,
        };
        let mut cache = self.cache.lock().map_err(|e| dial_err(e.to_string()))?;
        if let Some((u, ch)) = cache.get(&id) {
            if *u == url {
                return Ok(ch.clone());
            }
        }
        let parsed = parse_url("peer-urls", &url).map_err(|e| dial_err(e.to_string()))?;
        let tls = match (parsed.tls, &self.tls) {
            (true, Some(cfg)) => Some(tokio_rustls::TlsConnector::from(cfg.clone())),
            (true, None) => {
                return Err(dial_err(
                    "https peer URL but no --peer-trusted-ca-file".into(),
                ))
            }
            (false, _) => None,
        };
        let server_name =
            ServerName::try_from(parsed.host.clone()).map_err(|e| dial_err(e.to_string()))?;
        let (host, port) = (parsed.host.clone(), parsed.port);
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        // The endpoint URI is only used for the :authority header; our connector dials and does TLS.
        let endpoint = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| dial_err(e.to_string()))?
            .connect_timeout(Duration::from_secs(2))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .tcp_nodelay(true);
        let dns = self.dns.clone();
        let connector = tower::service_fn(move |_uri: tonic::transport::Uri| {
            let (host, tls, name, dns) =
                (host.clone(), tls.clone(), server_name.clone(), dns.clone());
            async move {
                let tcp = match (host.parse::<std::net::IpAddr>(), dns) {
                    (Ok(ip), _) => tokio::net::TcpStream::connect((ip, port)).await?,
                    (Err(_), Some(dns)) => {
                        let ips = dns.lookup_ip(&host).await.map_err(std::io::Error::other)?;
                        let addrs: Vec<std::net::SocketAddr> =
                            ips.into_iter().map(|ip| (ip, port).into()).collect();
                        tokio::net::TcpStream::connect(&addrs[..]).await?
                    }
                    (Err(_), None) => tokio::net::TcpStream::connect((host.as_str(), port)).await?,
                };
                tcp.set_nodelay(true)?;
                let io: Box<dyn Io> = match tls {
                    Some(c) => Box::new(c.connect(name, tcp).await?),
                    None => Box::new(tcp),
                };
                Ok::<_, std::io::Error>(TokioIo::new(io))
            }
        });
        let ch = endpoint.connect_with_connector_lazy(connector);
        cache.insert(id, (url, ch.clone()));
        Ok(ch)
    }

    /// A peer protocol client on the cached channel to `id`.
    pub fn client(&self, id: NodeId, node: &PeerNode) -> Result<PeerClient<Channel>, DialError> {
        Ok(PeerClient::new(self.channel(id, node)?)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE))
    }

    /// Wrap a payload with our cluster ID.
    pub fn request<T: Serialize>(&self, msg: &T) -> Result<PeerRequest, rmp_serde::encode::Error> {
        Ok(PeerRequest {
            cluster_id: self.cluster_id,
            payload: encode(msg)?,
        })
    }
}
