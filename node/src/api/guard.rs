//! The one place auth is enforced: who a request comes from (token or client certificate) and whether
//! that user may do what it asks (etcd `auth/store.go` `isOpPermitted`, `IsAdminPermitted`, and the
//! per-request checks of `etcdserver/v3_server.go` and `apply_auth.go`). Every service calls it; no
//! handler looks at users or permissions itself.
//!
//! While auth is disabled every check passes after one read of the enabled flag.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request as HttpRequest;
use axum::middleware::Next;
use axum::response::Response;
use etcd_client::proto::{PbDeleteRequest, PbPutRequest, PbRangeRequest, PbTxnRequest};
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

use super::jwt::Jwt;
use super::status::to_status;
use crate::member::App;
use crate::mvcc::auth::{AuthError, Need};
use crate::mvcc::authorize::{Access, AuthInfo};
use crate::mvcc::{MvccError, Store};

/// The verified client certificate's Common Name; the server puts it on every request of a TLS
/// connection whose client presented one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertName(pub String);

/// How tokens are made (`--auth-token`).
#[derive(Debug, Clone)]
pub enum TokenKind {
    /// etcd's simple tokens: random, registered on every member through Raft, expiring after the TTL.
    Simple,
    /// Signed JWTs carrying the user and the auth revision at login.
    Jwt(Arc<Jwt>),
}

/// The auth flags (`--auth-token`, `--auth-token-ttl`, `--bcrypt-cost`, `--client-cert-auth`).
#[derive(Debug, Clone)]
pub struct AuthOptions {
    pub token: TokenKind,
    pub token_ttl: Duration,
    pub bcrypt_cost: u32,
    /// With `--client-cert-auth`, a request without a token is its certificate's CN (etcd's rule).
    pub client_cert_auth: bool,
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            token: TokenKind::Simple,
            token_ttl: Duration::from_secs(300),
            bcrypt_cost: crate::config::DEFAULT_BCRYPT_COST,
            client_cert_auth: false,
        }
    }
}

/// What names the caller of a request: its token and its client certificate. Long-lived calls (watch
/// streams, Lock and Election waits) keep it and resolve the caller again at each step, as etcd reads
/// the stream's context at each watch creation; Lock and Election lend it to the KV, Lease and Watch
/// calls they make for the caller, as etcd passes the caller's metadata to its in-process client.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    token: Option<String>,
    cert: Option<ClientCertName>,
}

impl Identity {
    /// The identity a request carries.
    pub fn of<T>(req: &Request<T>) -> Identity {
        Identity {
            token: token_of(req).map(str::to_string),
            cert: req.extensions().get::<ClientCertName>().cloned(),
        }
    }

    /// A request carrying this identity, for a call made on the caller's behalf.
    pub fn lend<T>(&self, message: T) -> Request<T> {
        let mut req = Request::new(message);
        if let Some(t) = self
            .token
            .as_deref()
            .and_then(|t| MetadataValue::try_from(t).ok())
        {
            req.metadata_mut().insert("token", t);
        }
        if let Some(cert) = &self.cert {
            req.extensions_mut().insert(cert.clone());
        }
        req
    }
}

/// Who a request comes from (a user name, or nobody) and the auth revision its identity is from.
pub type Caller = AuthInfo;

/// The token of a request, borrowed from its metadata `token` (or `authorization`, as the gateway
/// sends it, with or without "Bearer ").
fn token_of<T>(req: &Request<T>) -> Option<&str> {
    token_in(req.metadata().as_ref())
}

fn token_in(headers: &axum::http::HeaderMap) -> Option<&str> {
    let t = headers
        .get("token")
        .or_else(|| headers.get("authorization"))?;
    let t = t.to_str().unwrap_or_default();
    Some(t.strip_prefix("Bearer ").unwrap_or(t))
}

/// The auth checks, shared by every service (cheap to clone).
#[derive(Clone)]
pub struct Guard {
    app: App,
    opts: Arc<AuthOptions>,
}

fn denied(e: AuthError) -> Status {
    to_status(MvccError::Auth(e))
}

impl Guard {
    /// A guard over `app`'s auth store.
    pub fn new(app: App, opts: AuthOptions) -> Self {
        Guard {
            app,
            opts: Arc::new(opts),
        }
    }

    /// The auth flags.
    pub fn options(&self) -> &AuthOptions {
        &self.opts
    }

    /// Middleware in front of every client-port service, for a token issued by another member that
    /// this member has not caught up with. A simple token is registered through Raft by the member
    /// that authenticated it; a JWT names the auth revision it was issued at. A client that logs in at
    /// one member and calls another (clientv3 balances over its endpoints) may present it before this
    /// member applied that far: the simple token would be "invalid auth token" (which cancels a
    /// watch), the JWT's writes "revision of auth store is old". Such a call first waits for a read
    /// barrier (every committed entry applied here, bounded by the election timeout); then the
    /// services judge the token as before. Other calls pass at once.
    pub async fn settle_token(self, req: HttpRequest, next: Next) -> Response {
        let behind = token_in(req.headers()).is_some_and(|t| {
            let store = self.app.store().read();
            let auth = store.auth();
            auth.enabled
                && match &self.opts.token {
                    TokenKind::Simple => store.tokens().user(t).is_none(),
                    TokenKind::Jwt(_) => {
                        Jwt::claimed_revision(t).is_some_and(|r| r > auth.revision)
                    }
                }
        });
        if behind {
            let wait = self.app.election_timeout().max(Duration::from_secs(1));
            // On timeout or without a leader the services answer as they would have, and the
            // client authenticates again.
            let _ = tokio::time::timeout(wait, self.app.read_barrier()).await;
        }
        next.run(req).await
    }

    /// The caller of a request (etcd `AuthInfoFromCtx`): the user of the token in metadata `token`
    /// (or `authorization`, as the gateway sends it), else the client certificate's CN when
    /// `--client-cert-auth` is on, else anonymous. A token that is not (or no longer) valid is
    /// etcd's "invalid auth token", which makes clientv3 authenticate again. A simple token or a
    /// certificate speaks for the current auth revision, a JWT for the one it was issued at.
    pub fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let store = self.app.store().read();
        self.resolve(&store, token_of(req), req.extensions().get())
            .map_err(denied)
    }

    /// The caller an identity names now.
    pub fn caller_of(&self, id: &Identity) -> Result<Caller, AuthError> {
        let store = self.app.store().read();
        self.resolve(&store, id.token.as_deref(), id.cert.as_ref())
    }

    /// The caller a token or certificate names in `store` (whose lock the caller holds).
    fn resolve(
        &self,
        store: &Store,
        token: Option<&str>,
        cert: Option<&ClientCertName>,
    ) -> Result<Caller, AuthError> {
        let revision = store.auth().revision;
        if !store.auth().enabled {
            return Ok(Caller {
                user: None,
                revision,
            });
        }
        if let Some(token) = token {
            let known = match &self.opts.token {
                TokenKind::Simple => store.tokens().user(token).map(|user| Caller {
                    user: Some(user),
                    revision,
                }),
                TokenKind::Jwt(jwt) => jwt.check(token).map(|t| Caller {
                    user: Some(t.user),
                    revision: t.revision,
                }),
            };
            return known.ok_or(AuthError::InvalidAuthToken);
        }
        let user = match cert {
            Some(ClientCertName(cn)) if self.opts.client_cert_auth => Some(cn.clone()),
            _ => None,
        };
        Ok(Caller { user, revision })
    }

    /// Resolve the caller of `req` and check it with `f` (if auth is enabled), under one read lock of
    /// the store: the caller to propose with (None while the auth store was never used, see
    /// `Command::by`). It carries the auth revision of the state just checked, so that the applier may
    /// trust the check when it applies at that same revision (`mvcc::authorize::at_apply`). A JWT issued
    /// at a revision this member has not applied yet was checked against older permissions: proposed
    /// with the older revision, it is refused at apply as "revision of auth store is old" and the
    /// client authenticates again.
    fn check<T>(
        &self,
        req: &Request<T>,
        f: impl FnOnce(&Store, &Access<'_>) -> Result<(), AuthError>,
    ) -> Result<Option<Caller>, Status> {
        let store = self.app.store().read();
        let mut caller = self
            .resolve(&store, token_of(req), req.extensions().get())
            .map_err(denied)?;
        let auth = store.auth();
        if auth.enabled {
            f(&store, &Access::new(auth, &caller)).map_err(denied)?;
        }
        caller.revision = auth.revision;
        Ok((auth.revision > 0).then_some(caller))
    }

    /// Admin operations (member changes, compaction, defragment, snapshot, alarms, auth management,
    /// move-leader) need the root role. The caller, to propose with.
    pub fn admin<T>(&self, req: &Request<T>) -> Result<Option<Caller>, Status> {
        self.check(req, |_, a| a.admin())
    }

    /// Range needs read on its range.
    pub fn range(&self, req: &Request<PbRangeRequest>) -> Result<(), Status> {
        self.check(req, |_, a| a.range(req.get_ref())).map(drop)
    }

    /// Put needs write on its key (and read, with prev_kv).
    pub fn put(&self, req: &Request<PbPutRequest>) -> Result<Option<Caller>, Status> {
        self.check(req, |_, a| a.put(req.get_ref()))
    }

    /// DeleteRange needs write on its range (and read, with prev_kv).
    pub fn delete(&self, req: &Request<PbDeleteRequest>) -> Result<Option<Caller>, Status> {
        self.check(req, |_, a| a.delete(req.get_ref()))
    }

    /// Txn needs read on every compare and the rights of every operation of both branches.
    pub fn txn(&self, req: &Request<PbTxnRequest>) -> Result<Option<Caller>, Status> {
        self.check(req, |_, a| a.txn(req.get_ref()))
    }

    /// A watch needs read on its range (checked with the caller its stream names now).
    pub fn watch(&self, id: &Identity, key: &[u8], range_end: &[u8]) -> Result<(), AuthError> {
        let store = self.app.store().read();
        let caller = self.resolve(&store, id.token.as_deref(), id.cert.as_ref())?;
        Access::new(store.auth(), &caller).need(key, range_end, Need::Read)
    }

    /// LeaseRevoke needs write on every key attached to the lease.
    pub fn lease_revoke<T>(&self, req: &Request<T>, id: i64) -> Result<Option<Caller>, Status> {
        self.check(req, |store, a| {
            let keys = store.lease_info(id).map(|l| l.keys).unwrap_or_default();
            a.lease_keys(keys.iter().map(Vec::as_slice))
        })
    }
}
