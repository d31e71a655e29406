//! Auth: users, roles, permissions, enable/disable, status and Authenticate, with etcd 3.4/3.5's rules
//! and texts. Changes are proposed through Raft as `Command::Auth`; reads are served from this member's
//! store after a read barrier. Who may call what is decided by [`Guard`] (admin calls need root).
//!
//! Authenticate is serialized through Raft for simple tokens, as etcd 3.4 does: the password is
//! checked here (bcrypt, on a blocking thread), then the token is proposed so that every member knows
//! it and a client may use it on any endpoint; the proposal carries the auth revision the password was
//! checked at, so a password changed in between refuses the token (etcd's "revision of auth store is
//! old", on which clients authenticate again). A JWT (`--auth-token jwt`) is signed here instead, with
//! the auth revision the password was checked at, and never proposed.

use std::sync::atomic::{AtomicU64, Ordering};

use tonic::{Request, Response, Status};

use super::guard::{Caller, Guard, TokenKind};
use super::header::current;
use super::status::{to_status, ApiError};
use crate::member::{App, MemberError};
use crate::mvcc::auth::{AuthCommand, AuthError, Perm, PermKind, ROOT};
use crate::mvcc::{Command, MvccError};

/// The Auth service's generated code (proto/auth.proto: etcd's `etcdserverpb.Auth`).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    /// etcd's `etcdserverpb.Auth` service and its messages.
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    /// etcd's authpb messages.
    pub mod authpb {
        tonic::include_proto!("authpb");
    }
}

use pb::authpb;
use pb::etcdserverpb::auth_server::Auth;
use pb::etcdserverpb::*;

/// Letters of a simple token (etcd's `letters`).
const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The Auth service.
pub struct AuthService {
    app: App,
    guard: Guard,
    /// Makes every token of this member distinct even if the random part repeated.
    issued: AtomicU64,
}

impl AuthService {
    pub fn new(app: App, guard: Guard) -> Self {
        AuthService {
            app,
            guard,
            issued: AtomicU64::new(0),
        }
    }

    /// Propose an auth change (on behalf of `by`, checked again when applied) and wait until it is
    /// applied here.
    async fn change(&self, cmd: AuthCommand, by: Option<Caller>) -> Result<(), Status> {
        let r = self
            .app
            .propose(Command::Auth(cmd).by(by))
            .await
            .map_err(to_status)?;
        match r.error {
            Some(e) => Err(to_status(e)),
            None => Ok(()),
        }
    }

    /// An admin-only change: root checked, then proposed.
    async fn admin_change<T>(&self, req: &Request<T>, cmd: AuthCommand) -> Result<(), Status> {
        let by = self.guard.admin(req)?;
        self.change(cmd, by).await
    }

    /// Read the auth state after a read barrier (reads see every change acknowledged before them).
    async fn read<R>(
        &self,
        f: impl FnOnce(&crate::mvcc::auth::AuthState) -> Result<R, AuthError>,
    ) -> Result<R, Status> {
        self.app.read_barrier().await.map_err(to_status)?;
        let store = self.app.store();
        let store = store.read();
        f(store.auth()).map_err(|e| to_status(MvccError::Auth(e)))
    }

    /// bcrypt a password with `--bcrypt-cost`, off the async threads (cost 10 takes tens of ms).
    async fn hash(&self, password: String) -> Result<String, Status> {
        let cost = self.guard.options().bcrypt_cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(|e| to_status(MemberError::other(e)))?
            .map_err(|e| to_status(MemberError::other(format!("hashing a password: {e}"))))
    }

    /// The hash a UserAdd/ChangePassword stores: etcd 3.5's pre-hashed password, none for
    /// `no_password`, else the password hashed here.
    async fn password_hash(
        &self,
        password: String,
        hashed: String,
        no_password: bool,
    ) -> Result<Option<String>, Status> {
        if no_password {
            return Ok(None);
        }
        if !hashed.is_empty() {
            return Ok(Some(hashed));
        }
        self.hash(password).await.map(Some)
    }

    fn simple_token(&self) -> Result<String, Status> {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(|e| to_status(MemberError::other(e)))?;
        let letters: String = raw
            .iter()
            .map(|b| char::from(LETTERS[usize::from(*b) % LETTERS.len()]))
            .collect();
        Ok(format!(
            "{letters}.{}",
            self.issued.fetch_add(1, Ordering::Relaxed) + 1
        ))
    }
}

fn header(app: &App) -> Option<etcd_client::proto::PbResponseHeader> {
    current(app)
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        _: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        // Anyone may enable (there is no one to check against before); the root rules are the store's.
        self.change(AuthCommand::Enable, None).await?;
        Ok(Response::new(AuthEnableResponse {
            header: header(&self.app),
        }))
    }

    async fn auth_disable(
        &self,
        req: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        self.admin_change(&req, AuthCommand::Disable).await?;
        Ok(Response::new(AuthDisableResponse {
            header: header(&self.app),
        }))
    }

    async fn auth_status(
        &self,
        _: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        let (enabled, auth_revision) = self.read(|a| Ok((a.enabled, a.revision))).await?;
        Ok(Response::new(AuthStatusResponse {
            header: header(&self.app),
            enabled,
            auth_revision,
        }))
    }

    async fn authenticate(
        &self,
        req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let AuthenticateRequest { name, password } = req.into_inner();
        let (hash, checked_revision) = self
            .read(|a| {
                if !a.enabled {
                    return Err(AuthError::AuthNotEnabled);
                }
                let hash = a.users.get(&name).and_then(|u| u.password_hash.clone());
                Ok((hash, a.revision))
            })
            .await?;
        // A user without a password (certificate-only) cannot log in with one.
        let ok = match hash {
            Some(hash) => tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
                .await
                .map_err(|e| to_status(MemberError::other(e)))?
                .unwrap_or(false),
            None => false,
        };
        if !ok {
            // Never the password; the bcrypt cost is what slows a brute force, as in etcd.
            tracing::warn!(user = %name, "authentication failed: invalid user ID or password");
            return Err(to_status(MvccError::Auth(AuthError::AuthFailed)));
        }
        let token = match &self.guard.options().token {
            // A JWT needs no Raft round: every member checks it with the key; it names the auth
            // revision the password was checked at, so a change since then makes it "old".
            TokenKind::Jwt(jwt) => jwt
                .sign(&name, checked_revision)
                .map_err(|e| to_status(MemberError::other(e)))?,
            TokenKind::Simple => {
                let token = self.simple_token()?;
                let assign = AuthCommand::Authenticate {
                    name: name.clone(),
                    token: token.clone(),
                    checked_revision,
                };
                self.change(assign, None).await?;
                token
            }
        };
        tracing::debug!(user = %name, "authenticated");
        Ok(Response::new(AuthenticateResponse {
            header: header(&self.app),
            token,
        }))
    }

    async fn user_add(
        &self,
        req: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let by = self.guard.admin(&req)?;
        let r = req.into_inner();
        if r.name.is_empty() {
            return Err(to_status(MvccError::Auth(AuthError::UserEmpty)));
        }
        let no_password = r.options.is_some_and(|o| o.no_password);
        let password_hash = self
            .password_hash(r.password, r.hashed_password, no_password)
            .await?;
        self.change(
            AuthCommand::UserAdd {
                name: r.name,
                password_hash,
            },
            by,
        )
        .await?;
        Ok(Response::new(AuthUserAddResponse {
            header: header(&self.app),
        }))
    }

    async fn user_get(
        &self,
        req: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        // A user may read itself; anyone else needs root (etcd's authApplierV3.UserGet).
        let caller = self.guard.caller(&req)?;
        let name = req.into_inner().name;
        let roles = self
            .read(|a| {
                if caller.user.as_deref() != Some(name.as_str()) {
                    a.check_admin(caller.user.as_deref())?;
                }
                let u = a.users.get(&name).ok_or(AuthError::UserNotFound)?;
                Ok(u.roles.iter().cloned().collect())
            })
            .await?;
        Ok(Response::new(AuthUserGetResponse {
            header: header(&self.app),
            roles,
        }))
    }

    async fn user_list(
        &self,
        req: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        self.guard.admin(&req)?;
        let users = self.read(|a| Ok(a.users.keys().cloned().collect())).await?;
        Ok(Response::new(AuthUserListResponse {
            header: header(&self.app),
            users,
        }))
    }

    async fn user_delete(
        &self,
        req: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let name = req.get_ref().name.clone();
        self.admin_change(&req, AuthCommand::UserDelete { name })
            .await?;
        Ok(Response::new(AuthUserDeleteResponse {
            header: header(&self.app),
        }))
    }

    async fn user_change_password(
        &self,
        req: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let by = self.guard.admin(&req)?;
        let r = req.into_inner();
        let password_hash = self
            .password_hash(r.password, r.hashed_password, false)
            .await?;
        self.change(
            AuthCommand::UserChangePassword {
                name: r.name,
                password_hash,
            },
            by,
        )
        .await?;
        Ok(Response::new(AuthUserChangePasswordResponse {
            header: header(&self.app),
        }))
    }

    async fn user_grant_role(
        &self,
        req: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let r = req.get_ref();
        let cmd = AuthCommand::UserGrantRole {
            user: r.user.clone(),
            role: r.role.clone(),
        };
        self.admin_change(&req, cmd).await?;
        Ok(Response::new(AuthUserGrantRoleResponse {
            header: header(&self.app),
        }))
    }

    async fn user_revoke_role(
        &self,
        req: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let r = req.get_ref();
        let cmd = AuthCommand::UserRevokeRole {
            name: r.name.clone(),
            role: r.role.clone(),
        };
        self.admin_change(&req, cmd).await?;
        Ok(Response::new(AuthUserRevokeRoleResponse {
            header: header(&self.app),
        }))
    }

    async fn role_add(
        &self,
        req: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let name = req.get_ref().name.clone();
        self.admin_change(&req, AuthCommand::RoleAdd { name })
            .await?;
        Ok(Response::new(AuthRoleAddResponse {
            header: header(&self.app),
        }))
    }

    async fn role_get(
        &self,
        req: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        // A user may read the roles it holds; other roles need root (etcd's authApplierV3.RoleGet).
        let caller = self.guard.caller(&req)?.user;
        let role = req.into_inner().role;
        let perm = self
            .read(|a| {
                let holds = caller
                    .as_deref()
                    .and_then(|c| a.users.get(c))
                    .is_some_and(|u| u.roles.contains(&role));
                if !holds {
                    a.check_admin(caller.as_deref())?;
                }
                // The root role needs no RoleAdd; it has no key permissions to list.
                if role == ROOT && !a.roles.contains_key(ROOT) {
                    return Ok(Vec::new());
                }
                let perms = a.roles.get(&role).ok_or(AuthError::RoleNotFound)?;
                Ok(perms.iter().map(to_pb).collect())
            })
            .await?;
        Ok(Response::new(AuthRoleGetResponse {
            header: header(&self.app),
            perm,
        }))
    }

    async fn role_list(
        &self,
        req: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        self.guard.admin(&req)?;
        let roles = self.read(|a| Ok(a.roles.keys().cloned().collect())).await?;
        Ok(Response::new(AuthRoleListResponse {
            header: header(&self.app),
            roles,
        }))
    }

    async fn role_delete(
        &self,
        req: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let name = req.get_ref().role.clone();
        self.admin_change(&req, AuthCommand::RoleDelete { name })
            .await?;
        Ok(Response::new(AuthRoleDeleteResponse {
            header: header(&self.app),
        }))
    }

    async fn role_grant_permission(
        &self,
        req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let r = req.get_ref();
        // etcd 3.4 dereferences the permission unchecked; 3.5 answers "permission not given".
        let Some(p) = &r.perm else {
            return Err(to_status(ApiError::PermissionNotGiven));
        };
        let cmd = AuthCommand::RoleGrantPermission {
            name: r.name.clone(),
            perm: Perm {
                kind: PermKind::from_i32(p.perm_type),
                key: p.key.clone(),
                range_end: p.range_end.clone(),
            },
        };
        self.admin_change(&req, cmd).await?;
        Ok(Response::new(AuthRoleGrantPermissionResponse {
            header: header(&self.app),
        }))
    }

    async fn role_revoke_permission(
        &self,
        req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let r = req.get_ref();
        let cmd = AuthCommand::RoleRevokePermission {
            name: r.role.clone(),
            key: r.key.clone(),
            range_end: r.range_end.clone(),
        };
        self.admin_change(&req, cmd).await?;
        Ok(Response::new(AuthRoleRevokePermissionResponse {
            header: header(&self.app),
        }))
    }
}

fn to_pb(p: &Perm) -> authpb::Permission {
    authpb::Permission {
        perm_type: p.kind.as_i32(),
        key: p.key.clone(),
        range_end: p.range_end.clone(),
    }
}
