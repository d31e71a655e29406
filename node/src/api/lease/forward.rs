//! A minimal client for the two Lease calls a follower forwards to the leader's peer port. etcd-client
//! does not export its generated tonic client, so the calls are made with tonic's generic client.

use etcd_client::proto::{
    PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse, PbLeaseTimeToLiveRequest,
    PbLeaseTimeToLiveResponse,
};
use futures::Stream;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Response, Status, Streaming};
use tonic_prost::ProstCodec;

/// The leader's peer port could not be reached: to the client, as etcd answers then, there is no leader.
fn unreachable(e: tonic::transport::Error) -> Status {
    tracing::warn!("forwarding a lease call to the leader: {e}");
    crate::api::to_status(crate::member::MemberError::NoLeader)
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
