//! What each request needs, checked twice as etcd checks it: by the API before proposing
//! (`api::guard`), and again when the request is applied, with the user and auth revision it was
//! checked with (etcd's request header `username` + `auth_revision`, `etcdserver/apply_auth.go`). So a
//! permission revoked while a request is in flight applies to it: a request checked at an older auth
//! revision is refused with "revision of auth store is old", on which clients authenticate again and
//! retry (clientv3's retry interceptor), and the retry meets the new permissions. A request applied at
//! the very auth revision it was checked at is not checked again (see [`at_apply`] for why that is
//! sound), except LeaseRevoke.

use etcd_client::proto::{
    PbDeleteRequest, PbPutRequest, PbRangeRequest, PbTxnOpRequest, PbTxnRequest,
};
use serde::{Deserialize, Serialize};

use super::auth::{AuthCommand, AuthError, AuthState, Need};
use super::{decode, Command, MvccError, State};

/// Who a request comes from and the auth revision its rights were checked at (etcd's `AuthInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthInfo {
    /// None: no token and no client certificate (anonymous).
    pub user: Option<String>,
    /// The auth store's revision its rights were checked at (the guard proposes with the revision of
    /// the state it checked; a JWT's caller names the revision it was issued at until then).
    pub revision: u64,
}

/// The rights of one caller over the auth state.
pub struct Access<'a> {
    auth: &'a AuthState,
    who: &'a AuthInfo,
}

impl<'a> Access<'a> {
    /// `who`'s rights in `auth`.
    pub fn new(auth: &'a AuthState, who: &'a AuthInfo) -> Self {
        Access { auth, who }
    }

    /// etcd's `isOpPermitted`: rights checked at an older auth revision are refused before anything.
    pub fn need(&self, key: &[u8], range_end: &[u8], need: Need) -> Result<(), AuthError> {
        if !self.auth.enabled {
            return Ok(());
        }
        if self.who.revision < self.auth.revision {
            return Err(AuthError::AuthOldRevision);
        }
        self.auth
            .check(self.who.user.as_deref(), key, range_end, need)
    }

    /// Admin operations need the root role (etcd's `IsAdminPermitted`, which checks no revision).
    pub fn admin(&self) -> Result<(), AuthError> {
        self.auth.check_admin(self.who.user.as_deref())
    }

    /// Range needs read on its range.
    pub fn range(&self, r: &PbRangeRequest) -> Result<(), AuthError> {
        self.need(&r.key, &r.range_end, Need::Read)
    }

    /// Put needs write on its key (and read, with prev_kv).
    pub fn put(&self, r: &PbPutRequest) -> Result<(), AuthError> {
        self.need(&r.key, b"", Need::Write)?;
        if r.prev_kv {
            self.need(&r.key, b"", Need::Read)?;
        }
        Ok(())
    }

    /// DeleteRange needs write on its range (and read, with prev_kv).
    pub fn delete(&self, r: &PbDeleteRequest) -> Result<(), AuthError> {
        self.need(&r.key, &r.range_end, Need::Write)?;
        if r.prev_kv {
            self.need(&r.key, &r.range_end, Need::Read)?;
        }
        Ok(())
    }

    /// Txn needs read on every compare and the rights of every operation of both branches.
    pub fn txn(&self, t: &PbTxnRequest) -> Result<(), AuthError> {
        for cmp in &t.compare {
            self.need(&cmp.key, &cmp.range_end, Need::Read)?;
        }
        for op in t.success.iter().chain(&t.failure) {
            match &op.request {
                Some(PbTxnOpRequest::RequestRange(r)) => self.range(r)?,
                Some(PbTxnOpRequest::RequestPut(p)) => self.put(p)?,
                Some(PbTxnOpRequest::RequestDeleteRange(d)) => self.delete(d)?,
                Some(PbTxnOpRequest::RequestTxn(n)) => self.txn(n)?,
                None => {}
            }
        }
        Ok(())
    }

    /// LeaseRevoke needs write on every key attached to the lease.
    pub fn lease_keys<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> Result<(), AuthError> {
        keys.into_iter()
            .try_for_each(|k| self.need(k, b"", Need::Write))
    }
}

/// The apply-time check of a command proposed on behalf of `who`, against the state it is applied
/// to. Commands of the member itself (lease expiry, compaction, alarms it raises) are not wrapped and
/// never reach here.
pub(super) fn at_apply(st: &State, who: &AuthInfo, cmd: &Command) -> Result<(), MvccError> {
    if !st.auth.enabled {
        return Ok(());
    }
    // Checked at the auth revision it is applied at: skip the second check. Sound because the auth
    // revision covers everything a verdict here reads besides the command itself: `AuthState::apply`
    // bumps it on every change of the enabled flag, users, their roles and the roles' permissions
    // (only no-ops and Authenticate, which registers a token and grants nothing, leave it), and every
    // member reaches the same auth state at the same revision. The API's guard checks these same rules
    // with the caller's revision read under the same lock as the state it checks (`api::guard`), so
    // equal revisions mean the guard's verdict was reached on this very permission set. LeaseRevoke is
    // the exception: its verdict also reads the keys attached to the lease, which puts change without
    // a new auth revision, so it is always checked again.
    if who.revision == st.auth.revision && !matches!(cmd, Command::LeaseRevoke { .. }) {
        return Ok(());
    }
    let a = Access::new(&st.auth, who);
    match cmd {
        Command::Put(b) => a.put(&decode(b)?)?,
        Command::DeleteRange(b) => a.delete(&decode(b)?)?,
        Command::Txn(b) => a.txn(&decode(b)?)?,
        Command::LeaseRevoke { id } => {
            if let Some(lease) = st.leases.get(id) {
                a.lease_keys(lease.keys.iter().map(Vec::as_slice))?;
            }
        }
        // Anyone may enable auth; Authenticate carries its own revision check.
        Command::Auth(AuthCommand::Enable | AuthCommand::Authenticate { .. }) => {}
        Command::Auth(_) => a.admin()?,
        _ => {}
    }
    Ok(())
}
