//! Forwarding the two Lease calls a follower cannot answer (KeepAlive, TimeToLive) to the leader's
//! peer port, through leader changes. etcd-client does not export its generated tonic client, so the
//! calls are made with tonic's generic client.

use std::time::Duration;

use etcd_client::proto::{
    PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse, PbLeaseTimeToLiveRequest,
    PbLeaseTimeToLiveResponse,
};
use futures::Stream;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Response, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::api::to_status;
use crate::member::{App, MemberError, REQUEST_TIMEOUT};

/// The leader's peer port could not be reached: to the client, as etcd answers then, there is no leader.
fn unreachable(e: tonic::transport::Error) -> Status {
    tracing::debug!("forwarding a lease call to the leader: {e}");
    to_status(MemberError::NoLeader)
}

/// Lease calls on the leader.
pub struct LeaseClient {
    grpc: tonic::client::Grpc<Channel>,
}

impl LeaseClient {
    pub fn new(ch: Channel) -> Self {
        LeaseClient {
            grpc: tonic::client::Grpc::new(ch),
        }
    }

    pub async fn lease_time_to_live(
        &mut self,
        req: PbLeaseTimeToLiveRequest,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        self.grpc.ready().await.map_err(unreachable)?;
        let path = PathAndQuery::from_static("/etcdserverpb.Lease/LeaseTimeToLive");
        self.grpc
            .unary(tonic::Request::new(req), path, ProstCodec::default())
            .await
    }

    pub async fn lease_keep_alive(
        &mut self,
        reqs: impl Stream<Item = PbLeaseKeepAliveRequest> + Send + 'static,
    ) -> Result<Response<Streaming<PbLeaseKeepAliveResponse>>, Status> {
        self.grpc.ready().await.map_err(unreachable)?;
        let path = PathAndQuery::from_static("/etcdserverpb.Lease/LeaseKeepAlive");
        self.grpc
            .streaming(tonic::Request::new(reqs), path, ProstCodec::default())
            .await
    }
}

/// Run `here` if this member leads, else `there` on the leader's peer port, retrying through leader
/// changes and unreachable leaders for up to a request timeout, as etcd's LeaseRenew forwards; then
/// etcd's "etcdserver: no leader" or "etcdserver: request timed out" (never a transport error: a
/// killed leader's port refuses connections until a new leader is known). On the peer port
/// (`forward` false) a member that does not lead says so at once, and the forwarder tries again.
pub async fn on_leader<T, Fut>(
    app: &App,
    forward: bool,
    here: impl Fn() -> T,
    there: impl Fn(LeaseClient) -> Fut,
) -> Result<T, Status>
where
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    let mut why = MemberError::Timeout;
    loop {
        if app.is_leader() {
            return Ok(here());
        }
        if !forward {
            return Err(to_status(MemberError::NotLeader));
        }
        let attempt = async {
            let ch = app.leader_channel().await.map_err(|e| match e {
                MemberError::NoLeader => e,
                other => {
                    tracing::debug!("a channel to the leader for a lease request: {other}");
                    MemberError::Timeout
                }
            })?;
            there(LeaseClient::new(ch)).await.map_err(|s| {
                tracing::debug!("forwarding a lease request to the leader: {s}");
                MemberError::Timeout
            })
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => why = e,
            Err(_) => return Err(to_status(why)),
        }
        if tokio::time::timeout_at(deadline, tokio::time::sleep(RETRY_EVERY))
            .await
            .is_err()
        {
            return Err(to_status(why));
        }
    }
}

/// Pause between attempts to reach the leader (etcd's LeaseRenew throttles the same way).
const RETRY_EVERY: Duration = Duration::from_millis(50);

/// One keep-alive through the leader's own stream: send `req`, take its answer.
pub async fn renew_on(
    mut leader: LeaseClient,
    req: PbLeaseKeepAliveRequest,
) -> Result<PbLeaseKeepAliveResponse, Status> {
    let mut answers = leader
        .lease_keep_alive(futures::stream::once(async move { req }))
        .await?
        .into_inner();
    answers
        .message()
        .await?
        .ok_or_else(|| Status::unavailable("the leader ended the keep-alive stream"))
}
