//! The one place auth is enforced: who a request comes from (token or client certificate) and whether
//! that user may do what it asks (etcd `auth/store.go` `isOpPermitted`, `IsAdminPermitted`, and the
//! per-request checks of `etcdserver/v3_server.go` and `apply_auth.go`). Every service calls it; no
//! handler looks at users or permissions itself.
//!
//! While auth is disabled every check passes after one read of the enabled flag.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::proto::{
    PbDeleteRequest, PbPutRequest, PbRangeRequest, PbTxnOpRequest, PbTxnRequest,
};
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use super::status::to_status;
use crate::member::App;
use crate::mvcc::auth::{AuthError, AuthState, Need};
use crate::mvcc::MvccError;

/// The verified client certificate's Common Name; the server puts it on every request of a TLS
/// connection whose client presented one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertName(pub String);

/// How tokens are made (`--auth-token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// etcd's simple tokens: random, registered on every member through Raft, expiring after the TTL.
    Simple,
}

/// The auth flags (`--auth-token`, `--auth-token-ttl`, `--bcrypt-cost`, `--client-cert-auth`).
#[derive(Debug, Clone, Copy)]
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
            bcrypt_cost: 10,
            client_cert_auth: false,
        }
    }
}

/// Who a request comes from: a user name, or nobody (anonymous).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller(pub Option<String>);

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

    /// The caller of a request (etcd `AuthInfoFromCtx`): the user of the token in metadata `token`
    /// (or `authorization`, as the gateway sends it), else the client certificate's CN when
    /// `--client-cert-auth` is on, else anonymous. A token that is not (or no longer) valid is
    /// etcd's "invalid auth token", which makes clientv3 authenticate again.
    pub fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        self.caller_of(req.metadata(), req.extensions().get::<ClientCertName>())
    }

    fn caller_of(&self, md: &MetadataMap, cert: Option<&ClientCertName>) -> Result<Caller, Status> {
        let store = self.app.store();
        let store = store.read();
        if !store.auth().enabled {
            return Ok(Caller(None));
        }
        let token = md.get("token").or_else(|| md.get("authorization"));
        if let Some(token) = token {
            let token = token.to_str().unwrap_or_default();
            let token = token.strip_prefix("Bearer ").unwrap_or(token);
            return match store.tokens().user(token) {
                Some(user) => Ok(Caller(Some(user))),
                None => Err(denied(AuthError::InvalidAuthToken)),
            };
        }
        if self.opts.client_cert_auth {
            if let Some(ClientCertName(cn)) = cert {
                return Ok(Caller(Some(cn.clone())));
            }
        }
        Ok(Caller(None))
    }

    /// Run `f` on the auth state, if auth is enabled.
    fn with_auth(&self, f: impl FnOnce(&AuthState) -> Result<(), AuthError>) -> Result<(), Status> {
        let store = self.app.store();
        let store = store.read();
        let auth = store.auth();
        if !auth.enabled {
            return Ok(());
        }
        f(auth).map_err(denied)
    }

    /// Admin operations (member changes, compaction, defragment, snapshot, alarms, auth management,
    /// move-leader) need the root role.
    pub fn admin<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let caller = self.caller(req)?;
        self.with_auth(|a| a.check_admin(caller.0.as_deref()))?;
        Ok(caller)
    }

    /// Range needs read on its range.
    pub fn range(&self, req: &Request<PbRangeRequest>) -> Result<(), Status> {
        let caller = self.caller(req)?;
        self.with_auth(|a| range_ok(a, &caller, req.get_ref()))
    }

    /// Put needs write on its key (and read, with prev_kv).
    pub fn put(&self, req: &Request<PbPutRequest>) -> Result<(), Status> {
        let caller = self.caller(req)?;
        self.with_auth(|a| put_ok(a, &caller, req.get_ref()))
    }

    /// DeleteRange needs write on its range (and read, with prev_kv).
    pub fn delete(&self, req: &Request<PbDeleteRequest>) -> Result<(), Status> {
        let caller = self.caller(req)?;
        self.with_auth(|a| delete_ok(a, &caller, req.get_ref()))
    }

    /// Txn needs read on every compare and the rights of every operation of both branches.
    pub fn txn(&self, req: &Request<PbTxnRequest>) -> Result<(), Status> {
        let caller = self.caller(req)?;
        self.with_auth(|a| txn_ok(a, &caller, req.get_ref()))
    }

    /// A watch needs read on its range.
    pub fn watch(&self, caller: &Caller, key: &[u8], range_end: &[u8]) -> Result<(), AuthError> {
        let store = self.app.store();
        let store = store.read();
        store
            .auth()
            .check(caller.0.as_deref(), key, range_end, Need::Read)
    }

    /// LeaseRevoke needs write on every key attached to the lease.
    pub fn lease_revoke<T>(&self, req: &Request<T>, id: i64) -> Result<(), Status> {
        let caller = self.caller(req)?;
        let keys = {
            let store = self.app.store();
            let store = store.read();
            if !store.auth().enabled {
                return Ok(());
            }
            store.lease_info(id).map(|l| l.keys).unwrap_or_default()
        };
        self.with_auth(|a| {
            keys.iter()
                .try_for_each(|k| a.check(caller.0.as_deref(), k, b"", Need::Write))
        })
    }
}

fn range_ok(a: &AuthState, c: &Caller, r: &PbRangeRequest) -> Result<(), AuthError> {
    a.check(c.0.as_deref(), &r.key, &r.range_end, Need::Read)
}

fn put_ok(a: &AuthState, c: &Caller, r: &PbPutRequest) -> Result<(), AuthError> {
    a.check(c.0.as_deref(), &r.key, b"", Need::Write)?;
    if r.prev_kv {
        a.check(c.0.as_deref(), &r.key, b"", Need::Read)?;
    }
    Ok(())
}

fn delete_ok(a: &AuthState, c: &Caller, r: &PbDeleteRequest) -> Result<(), AuthError> {
    a.check(c.0.as_deref(), &r.key, &r.range_end, Need::Write)?;
    if r.prev_kv {
        a.check(c.0.as_deref(), &r.key, &r.range_end, Need::Read)?;
    }
    Ok(())
}

fn txn_ok(a: &AuthState, c: &Caller, t: &PbTxnRequest) -> Result<(), AuthError> {
    for cmp in &t.compare {
        a.check(c.0.as_deref(), &cmp.key, &cmp.range_end, Need::Read)?;
    }
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(PbTxnOpRequest::RequestRange(r)) => range_ok(a, c, r)?,
            Some(PbTxnOpRequest::RequestPut(p)) => put_ok(a, c, p)?,
            Some(PbTxnOpRequest::RequestDeleteRange(d)) => delete_ok(a, c, d)?,
            Some(PbTxnOpRequest::RequestTxn(n)) => txn_ok(a, c, n)?,
            None => {}
        }
    }
    Ok(())
}
