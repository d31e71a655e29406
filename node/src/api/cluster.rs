//! Cluster: MemberList, MemberAdd, MemberRemove, MemberUpdate, MemberPromote.

use etcd_client::proto::{
    PbClusterService, PbMember, PbMemberAddRequest, PbMemberAddResponse, PbMemberListRequest,
    PbMemberListResponse, PbMemberPromoteRequest, PbMemberPromoteResponse, PbMemberRemoveRequest,
    PbMemberRemoveResponse, PbMemberUpdateRequest, PbMemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use super::guard::Guard;
use super::header::header;
use super::status::{to_status, ApiError};
use crate::member::{App, MemberInfo};

/// The Cluster service.
pub struct ClusterService {
    app: App,
    guard: Guard,
}

impl ClusterService {
    pub fn new(app: App, guard: Guard) -> Self {
        ClusterService { app, guard }
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
        self.guard.admin(&req)?;
        let req = req.into_inner();
        check_peer_urls(&req.peer_ur_ls)?;
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
        self.guard.admin(&req)?;
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
        self.guard.admin(&req)?;
        let req = req.into_inner();
        check_peer_urls(&req.peer_ur_ls)?;
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
        self.guard.admin(&req)?;
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

/// Refuse a member whose peer URLs no member could dial, before it can become a voter that counts
/// toward the quorum. etcd's MemberAdd (types.NewURLs) wants at least one URL, each
/// `scheme://host:port` without a path; cairn's peers speak http and https only (not etcd's unix
/// sockets). etcd 3.4 does not check MemberUpdate's URLs; cairn does, with the same answer.
fn check_peer_urls(urls: &[String]) -> Result<(), Status> {
    let valid = |u: &String| {
        let u = u.trim();
        let rest = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"));
        rest.is_some_and(|r| !r.contains(['/', '?', '#', '@']) && !r.contains(char::is_whitespace))
            && crate::config::parse_url("peer-urls", u).is_ok_and(|p| !p.host.is_empty())
    };
    if urls.is_empty() || !urls.iter().all(valid) {
        return Err(to_status(ApiError::MemberBadUrls));
    }
    Ok(())
}

/// etcd's Cluster service headers carry no revision (it answers from membership, not the store).
fn no_rev(app: &App) -> Option<etcd_client::proto::PbResponseHeader> {
    header(app, 0)
}

#[cfg(test)]
mod tests {
    use super::check_peer_urls;

    fn ok(urls: &[&str]) -> bool {
        let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
        check_peer_urls(&urls).is_ok()
    }

    #[test]
    fn peer_urls_must_be_http_or_https_host_port_without_a_path() {
        assert!(ok(&["https://10.0.1.13:2380"]));
        assert!(ok(&[
            "http://node-3.example.com:2380",
            "https://[::1]:2380"
        ]));
        for bad in [
            "not a url",
            "https://10.0.1.13",
            "https://10.0.1.13:2380/",
            "https://10.0.1.13:2380/peer",
            "ftp://10.0.1.13:2380",
            "unix://socket:1",
            "https://a b:2380",
            "https://:2380",
            "https://10.0.1.13:99999",
        ] {
            assert!(!ok(&[bad]), "{bad} must be refused");
            assert!(
                !ok(&["https://10.0.1.13:2380", bad]),
                "{bad} among good ones"
            );
        }
        assert!(!ok(&[]), "no URL at all");
        let s = check_peer_urls(&["x".into()]).expect_err("invalid");
        assert_eq!(
            (s.code(), s.message()),
            (
                tonic::Code::InvalidArgument,
                "etcdserver: given member URLs are invalid"
            )
        );
    }
}
