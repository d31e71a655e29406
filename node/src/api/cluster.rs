//! Cluster: MemberList, MemberAdd, MemberRemove, MemberUpdate, MemberPromote.

use etcd_client::proto::{
    PbClusterService, PbMember, PbMemberAddRequest, PbMemberAddResponse, PbMemberListRequest,
    PbMemberListResponse, PbMemberPromoteRequest, PbMemberPromoteResponse, PbMemberRemoveRequest,
    PbMemberRemoveResponse, PbMemberUpdateRequest, PbMemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use super::header::header;
use super::status::{to_status, ApiError};
use crate::member::{App, MemberInfo};

/// The Cluster service.
pub struct ClusterService {
    app: App,
}

impl ClusterService {
    pub fn new(app: App) -> Self {
        ClusterService { app }
    }

    fn members(&self) -> Vec<PbMember> {
        self.app.members().into_iter().map(member).collect()
    }
}

fn member(m: MemberInfo) -> PbMember {
    PbMember {
        id: m.id,
        name: m.name,
        peer_ur_ls: m.peer_urls,
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

#[tonic::async_trait]
impl PbClusterService for ClusterService {
    async fn member_add(
        &self,
        req: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        let req = req.into_inner();
        if req.peer_ur_ls.is_empty() {
            return Err(to_status(ApiError::MemberBadUrls));
        }
        let id = self
            .app
            .add_member(req.peer_ur_ls.clone(), req.is_learner)
            .await
            .map_err(to_status)?;
        let members = self.members();
        let added = members
            .iter()
            .find(|m| m.id == id)
            .cloned()
            .unwrap_or(PbMember {
                id,
                peer_ur_ls: req.peer_ur_ls,
                is_learner: req.is_learner,
                ..Default::default()
            });
        Ok(Response::new(PbMemberAddResponse {
            header: no_rev(&self.app),
            member: Some(added),
            members,
        }))
    }

    async fn member_remove(
        &self,
        req: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        self.app
            .remove_member(req.into_inner().id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(PbMemberRemoveResponse {
            header: no_rev(&self.app),
            members: self.members(),
        }))
    }

    async fn member_update(
        &self,
        req: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        let req = req.into_inner();
        self.app
            .update_member(req.id, req.peer_ur_ls)
            .await
            .map_err(to_status)?;
        Ok(Response::new(PbMemberUpdateResponse {
            header: no_rev(&self.app),
            members: self.members(),
        }))
    }

    async fn member_list(
        &self,
        _: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        Ok(Response::new(PbMemberListResponse {
            header: no_rev(&self.app),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        self.app
            .promote_member(req.into_inner().id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(PbMemberPromoteResponse {
            header: no_rev(&self.app),
            members: self.members(),
        }))
    }
}

/// etcd's Cluster service headers carry no revision (it answers from membership, not the store).
fn no_rev(app: &App) -> Option<etcd_client::proto::PbResponseHeader> {
    header(app, 0)
}
