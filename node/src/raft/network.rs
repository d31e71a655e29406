//! The peer client: one cached gRPC channel per member (with TLS a new channel per RPC would cost a
//! handshake per heartbeat), carrying openraft's RPCs and forwarded proposals / read-index requests.
//! Every call carries our cluster ID so a member of another cluster refuses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::{Channel, Endpoint};

use crate::config::parse_url;
use crate::raft::pb::peer_client::PeerClient;
use crate::raft::pb::PeerRequest;
use crate::raft::types::{NodeId, PeerNode, TypeConfig};
use crate::store::log::{decode, encode};

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
    failing: Arc<Mutex<HashMap<NodeId, (String, std::time::Instant)>>>,
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

impl RaftNetworkFactory<TypeConfig> for PeerChannels {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> PeerConnection {
        PeerConnection {
            target,
            node: node.clone(),
            peers: self.clone(),
        }
    }
}

/// openraft's view of one member.
pub struct PeerConnection {
    target: NodeId,
    node: PeerNode,
    peers: PeerChannels,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, PeerNode, RaftError<NodeId, E>>>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

/// What went wrong, for the operator: tonic's message plus its cause chain (TLS refusals such as a
/// missing SAN hide several levels down in a "transport error").
fn describe(status: &tonic::Status) -> String {
    let mut out = status.message().to_string();
    let mut cur = std::error::Error::source(status);
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        cur = c.source();
    }
    out
}

impl PeerConnection {
    /// One RPC, logging when the peer becomes unreachable or active again (etcd's "peer … became
    /// inactive/active" lines).
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let mut why = None;
        let res = self.call_once(method, req, option, &mut why).await;
        let url = self.node.peer_urls.join(",");
        let peer = format!("{:x}", self.target);
        let Ok(mut failing) = self.peers.failing.lock() else {
            return res;
        };
        match why {
            Some(msg) => {
                let stale = match failing.get(&self.target) {
                    Some((m, at)) => *m != msg || at.elapsed() > Duration::from_secs(30),
                    None => true,
                };
                if stale {
                    tracing::warn!(%peer, %url, "peer became inactive: {msg}");
                    failing.insert(self.target, (msg, std::time::Instant::now()));
                }
            }
            None => {
                if failing.remove(&self.target).is_some() {
                    tracing::info!(%peer, %url, "peer became active");
                }
            }
        }
        res
    }

    async fn call_once<Req, Resp, E>(
        &self,
        method: Method,
        req: &Req,
        option: &RPCOption,
        why: &mut Option<String>,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let mut client = match self.peers.client(self.target, &self.node) {
            Ok(c) => c,
            Err(e) => {
                *why = Some(e.to_string());
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
        };
        let request = self
            .peers
            .request(req)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let sent = request.payload.len();
        let fut = async {
            match method {
                Method::Append => client.append_entries(request).await,
                Method::Vote => client.vote(request).await,
                Method::Snapshot => client.install_snapshot(request).await,
            }
        };
        let reply = match tokio::time::timeout(option.hard_ttl(), fut).await {
            Ok(Ok(r)) => r.into_inner(),
            Err(_) => {
                let msg = Msg("peer RPC timed out".into());
                *why = Some(msg.0.clone());
                return Err(RPCError::Unreachable(Unreachable::new(&msg)));
            }
            Ok(Err(status)) => {
                let msg = Msg(describe(&status));
                *why = Some(msg.0.clone());
                return Err(if status.code() == tonic::Code::Unavailable {
                    RPCError::Unreachable(Unreachable::new(&msg))
                } else {
                    RPCError::Network(NetworkError::new(&msg))
                });
            }
        };
        crate::raft::observe_peer_bytes(sent, reply.payload.len());
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(&reply.payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

enum Method {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.call(Method::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(Method::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(Method::Vote, &rpc, &option).await
    }
}
