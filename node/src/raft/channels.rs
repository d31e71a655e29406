//! One cached gRPC channel per member (with TLS a new channel per RPC would cost a handshake per
//! heartbeat), dialled through our own connector: TCP (resolving SRV target names with `--dns-server`
//! when needed), then rustls with the peer certificate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use openraft::LogId;
use parking_lot::Mutex;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};

use crate::codec::encode;
use crate::config::parse_url;
use crate::raft::frames::{self, Method, MAX_PEER_MESSAGE};
use crate::raft::pb::peer_client::PeerClient;
use crate::raft::pb::PeerRequest;
use crate::raft::types::{NodeId, PeerNode};

/// Idle frame connections kept per member (more are opened while calls overlap, then closed).
const MAX_IDLE_FRAME_CONNS: usize = 4;

/// How long a peer dial (TCP + TLS handshake) may take with `--election-timeout` `election_timeout_ms`:
/// like etcd's PeerDialTimeout, 1 s plus the election timeout, so a slow host (a VM under emulation
/// handshakes in seconds) that is given a longer election timeout also gets time to connect.
pub fn peer_dial_timeout(election_timeout_ms: u64) -> Duration {
    Duration::from_secs(1) + Duration::from_millis(election_timeout_ms)
}

/// Idle frame connections to one member and the URL they were dialled for.
type IdleConns = (String, Vec<Box<dyn Io>>);

/// What went wrong in a gRPC call, for the operator: tonic's message plus its cause chain (TLS refusals
/// such as a missing SAN hide several levels down in a "transport error").
pub(crate) fn describe(status: &tonic::Status) -> String {
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

/// A dialled peer connection, TLS or plain.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Channels to every member this member talks to, keyed by member ID and URL.
#[derive(Clone)]
pub struct PeerChannels {
    cluster_id: u64,
    tls: Option<Arc<ClientConfig>>,
    /// Limit on one dial, TCP connect and TLS handshake ([`peer_dial_timeout`]).
    dial_timeout: Duration,
    /// Resolver for peer URLs with host names (SRV bootstrap with `--dns-server`); None = system's.
    dns: Option<crate::dns::Dns>,
    cache: Arc<Mutex<HashMap<NodeId, (String, Channel)>>>,
    /// Idle frame connections (raft/frames.rs) per member, with the URL they were dialled for.
    idle: Arc<Mutex<HashMap<NodeId, IdleConns>>>,
    /// Per peer: the last failure logged and when, so an unreachable peer is reported once (and every
    /// 30 s), not per heartbeat.
    pub(crate) failing: Arc<Mutex<HashMap<NodeId, (String, std::time::Instant)>>>,
    /// The highest commit index this member may tell followers about (its log's durable end).
    pub(crate) commit_ceiling: Option<Arc<CommitCeiling>>,
}

/// The log id up to which this member's own log is on disk (storage/log.rs: a leader tells followers
/// of a commit only up to there), and the commit index held back for it, to be announced (by a
/// heartbeat) once the log reaches it.
pub struct CommitCeiling {
    durable: Box<dyn Fn() -> Option<LogId<NodeId>> + Send + Sync>,
    held_back: std::sync::atomic::AtomicU64,
    wake: tokio::sync::Notify,
}

impl CommitCeiling {
    /// A ceiling at what `durable` returns.
    pub fn new(durable: impl Fn() -> Option<LogId<NodeId>> + Send + Sync + 'static) -> Self {
        CommitCeiling {
            durable: Box::new(durable),
            held_back: Default::default(),
            wake: Default::default(),
        }
    }

    /// The commit index to send instead of `commit`: at most the durable end (noting what was held
    /// back).
    pub fn cap(&self, commit: Option<LogId<NodeId>>) -> Option<LogId<NodeId>> {
        let c = commit?;
        let durable = (self.durable)();
        if durable.is_some_and(|d| d.index >= c.index) {
            return commit;
        }
        self.held_back
            .fetch_max(c.index, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
        durable
    }

    /// Waits until a commit index was held back; returns the highest one so far.
    pub async fn held_back(&self) -> u64 {
        self.wake.notified().await;
        self.held_back.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The peer URL a member is dialled at (its first).
fn peer_url(node: &PeerNode) -> String {
    node.peer_urls.first().cloned().unwrap_or_default()
}

/// Resolved dialling details of one member's peer URL.
struct Target {
    url: String,
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    name: ServerName<'static>,
    dns: Option<crate::dns::Dns>,
}

impl Target {
    /// TCP (resolving host names with `--dns-server` when set), then rustls with the peer certificate.
    async fn dial(&self) -> std::io::Result<Box<dyn Io>> {
        let port = self.port;
        let tcp = match (self.host.parse::<std::net::IpAddr>(), &self.dns) {
            (Ok(ip), _) => tokio::net::TcpStream::connect((ip, port)).await?,
            (Err(_), Some(dns)) => {
                let ips = dns
                    .lookup_ip(&self.host)
                    .await
                    .map_err(std::io::Error::other)?;
                let addrs: Vec<std::net::SocketAddr> =
                    ips.into_iter().map(|ip| (ip, port).into()).collect();
                tokio::net::TcpStream::connect(&addrs[..]).await?
            }
            (Err(_), None) => tokio::net::TcpStream::connect((self.host.as_str(), port)).await?,
        };
        tcp.set_nodelay(true)?;
        Ok(match &self.tls {
            Some(c) => Box::new(c.connect(self.name.clone(), tcp).await?),
            None => Box::new(tcp),
        })
    }
}

/// Why a frame call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Dial(DialError),
    #[error("{0}")]
    Io(std::io::Error),
    /// Connected, but the answer did not come in time (a busy or slow member).
    #[error("no answer in time")]
    Timeout,
    /// No connection in time (a stopped, partitioned or overloaded member).
    #[error("no connection in time")]
    DialTimeout,
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
    /// Channels for cluster `cluster_id`, dialled with `tls` when members use https peer URLs, with
    /// the dial timeout of the default election timeout (see [`Self::with_dial_timeout`]).
    pub fn new(cluster_id: u64, tls: Option<Arc<ClientConfig>>) -> Self {
        PeerChannels {
            cluster_id,
            tls,
            dial_timeout: peer_dial_timeout(1000),
            dns: None,
            cache: Arc::default(),
            idle: Arc::default(),
            failing: Arc::default(),
            commit_ceiling: None,
        }
    }

    /// Cap the commit index sent in AppendEntries at `ceiling` (see [`CommitCeiling`]).
    pub fn with_commit_ceiling(mut self, ceiling: Arc<CommitCeiling>) -> Self {
        self.commit_ceiling = Some(ceiling);
        self
    }

    /// Resolve host names in peer URLs with `dns` instead of the system resolver.
    pub fn with_dns(mut self, dns: Option<crate::dns::Dns>) -> Self {
        self.dns = dns;
        self
    }

    /// Give up a dial (TCP connect and TLS handshake) after `d`; see [`peer_dial_timeout`].
    pub fn with_dial_timeout(mut self, d: Duration) -> Self {
        self.dial_timeout = d;
        self
    }

    /// How long a sent AppendEntries may wait for its answer (raft/network.rs): as long as a dial
    /// may take, one second plus the election timeout; an answer later than that cannot keep this
    /// leader's quorum anyway.
    pub fn answer_patience(&self) -> Duration {
        self.dial_timeout
    }

    /// This cluster's ID (sent in every peer call).
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// Where and how to dial member `id`: its first peer URL, parsed, with the TLS it needs.
    fn target(&self, id: NodeId, node: &PeerNode) -> Result<Target, DialError> {
        let url = peer_url(node);
        let dial_err = |msg: String| DialError {
            id,
            url: url.clone(),
            msg,
        };
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
        let name =
            ServerName::try_from(parsed.host.clone()).map_err(|e| dial_err(e.to_string()))?;
        Ok(Target {
            url,
            host: parsed.host,
            port: parsed.port,
            tls,
            name,
            dns: self.dns.clone(),
        })
    }

    /// The cached channel to member `id` (made lazily; it reconnects by itself after failures).
    pub fn channel(&self, id: NodeId, node: &PeerNode) -> Result<Channel, DialError> {
        let url = peer_url(node);
        let mut cache = self.cache.lock();
        if let Some((u, ch)) = cache.get(&id) {
            if *u == url {
                return Ok(ch.clone());
            }
        }
        let t = self.target(id, node)?;
        let authority = if t.host.contains(':') {
            format!("[{}]:{}", t.host, t.port)
        } else {
            format!("{}:{}", t.host, t.port)
        };
        // The endpoint URI is only used for the :authority header; our connector dials and does TLS.
        let endpoint = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| DialError {
                id,
                url: t.url.clone(),
                msg: e.to_string(),
            })?
            .connect_timeout(self.dial_timeout)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .tcp_nodelay(true);
        let url = t.url.clone();
        let t = Arc::new(t);
        let connector = tower::service_fn(move |_uri: tonic::transport::Uri| {
            let t = t.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(t.dial().await?)) }
        });
        let ch = endpoint.connect_with_connector_lazy(connector);
        cache.insert(id, (url, ch.clone()));
        Ok(ch)
    }

    /// One frame-protocol call to member `id` (raft/frames.rs) on an idle connection, or a new one.
    /// `Ok(Err(text))` is the member's refusal.
    pub async fn frame_call(
        &self,
        id: NodeId,
        node: &PeerNode,
        method: Method,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Result<Vec<u8>, String>, FrameError> {
        let url = peer_url(node);
        let connected = std::sync::atomic::AtomicBool::new(false);
        let work = async {
            let mut io = match self.take_idle(id, &url) {
                Some(io) => io,
                None => self.connect(id, node).await?,
            };
            connected.store(true, std::sync::atomic::Ordering::Relaxed);
            let out = frames::call(&mut io, method, self.cluster_id, payload)
                .await
                .map_err(FrameError::Io)?;
            Ok((io, out))
        };
        match tokio::time::timeout(timeout, work).await {
            Err(_) if connected.load(std::sync::atomic::Ordering::Relaxed) => {
                Err(FrameError::Timeout)
            }
            Err(_) => Err(FrameError::DialTimeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok((io, out))) => {
                self.put_idle(id, url, io);
                Ok(out)
            }
        }
    }

    /// A new frame connection to member `id`: dialled (within the dial timeout) and past the preface.
    async fn connect(&self, id: NodeId, node: &PeerNode) -> Result<Box<dyn Io>, FrameError> {
        let t = self.target(id, node).map_err(FrameError::Dial)?;
        let dial = async {
            let mut io = tokio::time::timeout(self.dial_timeout, t.dial())
                .await
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connecting timed out after {:?}", self.dial_timeout),
                    )
                })??;
            io.write_all(frames::PREFACE).await?;
            Ok(io)
        };
        dial.await.map_err(FrameError::Io)
    }

    fn take_idle(&self, id: NodeId, url: &str) -> Option<Box<dyn Io>> {
        let mut idle = self.idle.lock();
        let (u, conns) = idle.get_mut(&id)?;
        if u != url {
            conns.clear();
            return None;
        }
        while let Some(mut io) = conns.pop() {
            if !frames::is_closed(&mut io) {
                return Some(io);
            }
        }
        None
    }

    fn put_idle(&self, id: NodeId, url: String, io: Box<dyn Io>) {
        let mut idle = self.idle.lock();
        let (u, conns) = idle.entry(id).or_insert_with(|| (url.clone(), Vec::new()));
        if *u != url {
            *u = url;
            conns.clear();
        }
        if conns.len() < MAX_IDLE_FRAME_CONNS {
            conns.push(io);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_timeout_is_one_second_plus_the_election_timeout() {
        assert_eq!(peer_dial_timeout(1000), Duration::from_secs(2));
        assert_eq!(peer_dial_timeout(15_000), Duration::from_secs(16));
        assert_eq!(peer_dial_timeout(0), Duration::from_secs(1));
    }

    #[test]
    fn channels_use_the_dial_timeout_they_are_given() {
        let c = PeerChannels::new(1, None);
        assert_eq!(c.dial_timeout, Duration::from_secs(2));
        let c = c.with_dial_timeout(peer_dial_timeout(20_000));
        assert_eq!(c.dial_timeout, Duration::from_secs(21));
    }

    #[tokio::test]
    async fn a_connected_member_that_does_not_answer_in_time_is_a_timeout_not_a_dial_failure() {
        // Accepts and reads, never answers: a member busy past the heartbeat interval.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let silent = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            while tokio::io::AsyncReadExt::read(&mut conn, &mut buf)
                .await
                .is_ok_and(|n| n > 0)
            {}
        });
        let node = PeerNode {
            name: "m1".into(),
            peer_urls: vec![format!("http://{addr}")],
        };
        let c = PeerChannels::new(1, None);
        let res = c
            .frame_call(2, &node, Method::Append, b"x", Duration::from_millis(100))
            .await;
        assert!(
            matches!(res, Err(FrameError::Timeout)),
            "expected a timeout on the connected call, got {res:?}"
        );
        silent.abort();
    }
}
