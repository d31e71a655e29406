//! The Auth service as the Auth phase uses it, over the admin certificate's mTLS connection: read the
//! users, roles and auth flag, and make one change (etcd-client's auth API).

use std::time::Duration;

use anyhow::{anyhow, Context};
use etcd_client::{Client, PermissionType, RoleRevokePermissionOptions, UserAddOptions};

use super::auth::{AuthChange, AuthState};
use super::cluster::Api;
use crate::spec::{Access, Permission};

const CALL: Duration = Duration::from_secs(4);

/// AuthStatus (etcd 3.5), which etcd-client does not wrap: the two messages written out here (prost skips
/// the response header this decoder does not name).
#[derive(Clone, PartialEq, prost::Message)]
struct AuthStatusRequest {}

#[derive(Clone, PartialEq, prost::Message)]
struct AuthStatusResponse {
    #[prost(bool, tag = "2")]
    enabled: bool,
}

/// Whether auth is enabled, as `endpoint` says.
async fn auth_enabled(api: &Api, endpoint: &str) -> anyhow::Result<bool> {
    let mut ep = tonic::transport::Endpoint::from_shared(endpoint.to_string())?
        .connect_timeout(Duration::from_secs(3))
        .timeout(CALL);
    if let Some(tls) = api.tls_options(endpoint)? {
        ep = ep.tls_config(tls)?;
    }
    let channel = ep
        .connect()
        .await
        .with_context(|| format!("connecting to {endpoint}"))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| anyhow!("{endpoint}: {e}"))?;
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/etcdserverpb.Auth/AuthStatus");
    let r: tonic::Response<AuthStatusResponse> = grpc
        .unary(
            tonic::Request::new(AuthStatusRequest {}),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .with_context(|| format!("{endpoint}: AuthStatus"))?;
    Ok(r.into_inner().enabled)
}

/// Users, roles and the auth flag, from the first endpoint that answers.
pub async fn read_state(api: &Api, endpoints: &[String]) -> anyhow::Result<AuthState> {
    let mut last = anyhow!("no endpoint to ask");
    for ep in endpoints {
        match read_from(api, ep).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last.context("reading the cluster's users and roles"))
}

async fn read_from(api: &Api, endpoint: &str) -> anyhow::Result<AuthState> {
    let mut state = AuthState {
        enabled: auth_enabled(api, endpoint).await?,
        ..AuthState::default()
    };
    let mut c = api.connect(endpoint).await?;
    for user in c.user_list().await?.users().to_vec() {
        let roles = c.user_get(user.as_str()).await?.roles().to_vec();
        state.users.insert(user, roles.into_iter().collect());
    }
    for role in c.role_list().await?.roles().to_vec() {
        let mut perms = c
            .role_get(role.as_str())
            .await?
            .permissions()
            .iter()
            .map(from_client)
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| format!("role {role}"))?;
        perms.sort();
        state.roles.insert(role, perms);
    }
    Ok(state)
}

fn from_client(p: &etcd_client::Permission) -> anyhow::Result<Permission> {
    let access = match PermissionType::try_from(p.get_type()) {
        Ok(PermissionType::Read) => Access::Read,
        Ok(PermissionType::Write) => Access::Write,
        Ok(PermissionType::Readwrite) => Access::ReadWrite,
        Err(_) => anyhow::bail!("unknown permission type {}", p.get_type()),
    };
    Ok(Permission {
        key: p.key().to_vec(),
        range_end: p.range_end().to_vec(),
        access,
    })
}

fn to_client(p: &Permission) -> etcd_client::Permission {
    let kind = match p.access {
        Access::Read => PermissionType::Read,
        Access::Write => PermissionType::Write,
        Access::ReadWrite => PermissionType::Readwrite,
    };
    etcd_client::Permission::new(kind, p.key.clone()).with_range_end(p.range_end.clone())
}

/// Make `change` through the first endpoint that answers.
pub async fn make(api: &Api, endpoints: &[String], change: &AuthChange) -> anyhow::Result<()> {
    api.on_any(endpoints, |c| async move { call(c, change).await })
        .await
        .with_context(|| change.to_string())
}

async fn call(mut c: Client, change: &AuthChange) -> anyhow::Result<()> {
    use AuthChange::*;
    // The responses carry only a header: success is all there is to know.
    match change {
        AddRole(r) => {
            c.role_add(r.as_str()).await?;
        }
        Grant(r, p) => {
            c.role_grant_permission(r.as_str(), to_client(p)).await?;
        }
        Revoke(r, p) => {
            let opts = RoleRevokePermissionOptions::new().with_range_end(p.range_end.clone());
            c.role_revoke_permission(r.as_str(), p.key.clone(), Some(opts))
                .await?;
        }
        AddUser(u) => {
            let opts = UserAddOptions::new().with_no_pwd();
            c.user_add(u.as_str(), "", Some(opts)).await?;
        }
        GrantRole(u, r) => {
            c.user_grant_role(u.as_str(), r.as_str()).await?;
        }
        RevokeRole(u, r) => {
            c.user_revoke_role(u.as_str(), r.as_str()).await?;
        }
        DeleteUser(u) => {
            c.user_delete(u.as_str()).await?;
        }
        DeleteRole(r) => {
            c.role_delete(r.as_str()).await?;
        }
        Enable => {
            c.auth_enable().await?;
        }
    }
    Ok(())
}
