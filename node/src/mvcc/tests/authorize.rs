//! The applier checks a client's command again with the auth revision it was checked at (etcd's
//! `authApplierV3`), so a permission revoked between the API's check and the apply is enforced.

use super::*;
use crate::mvcc::auth::{AuthCommand as A, AuthError, Perm, PermKind, ROOT};
use crate::mvcc::authorize::{Access, AuthInfo};

/// A store with user `root` holding the root role, auth still off.
fn with_root() -> Store {
    let mut s = Store::new();
    for c in [
        A::UserAdd {
            name: ROOT.into(),
            password_hash: None,
        },
        A::UserGrantRole {
            user: ROOT.into(),
            role: ROOT.into(),
        },
    ] {
        assert_eq!(s.apply(&Command::Auth(c)).error, None);
    }
    s
}

/// A store with auth enabled, `root`, and `alice` holding readwrite on `/app/` through role `app`.
fn enabled() -> Store {
    let mut s = with_root();
    for c in [
        A::UserAdd {
            name: "alice".into(),
            password_hash: None,
        },
        A::RoleAdd { name: "app".into() },
        A::RoleGrantPermission {
            name: "app".into(),
            perm: Perm {
                kind: PermKind::ReadWrite,
                key: b"/app/".to_vec(),
                range_end: b"/app0".to_vec(),
            },
        },
        A::UserGrantRole {
            user: "alice".into(),
            role: "app".into(),
        },
        A::Enable,
    ] {
        assert_eq!(s.apply(&Command::Auth(c)).error, None);
    }
    s
}

fn as_user(s: &Store, user: &str, cmd: Command) -> Command {
    cmd.by(Some(AuthInfo {
        user: Some(user.into()),
        revision: s.auth().revision,
    }))
}

fn auth_error(r: &CommandResponse) -> Option<AuthError> {
    match &r.error {
        Some(MvccError::Auth(e)) => Some(e.clone()),
        _ => None,
    }
}

#[test]
fn a_put_checked_before_a_revoke_is_refused_when_applied_after_it() {
    let mut s = enabled();
    // Checked (and proposed) while alice may write /app/ ...
    let in_flight = as_user(&s, "alice", put_cmd("/app/x", "1"));
    let allowed = as_user(&s, "alice", put_cmd("/app/y", "1"));
    assert_eq!(s.apply(&allowed).error, None);
    assert_eq!(s.revision(), 2);
    // ... then the permission is revoked before it is applied.
    let revoke = A::RoleRevokePermission {
        name: "app".into(),
        key: b"/app/".to_vec(),
        range_end: b"/app0".to_vec(),
    };
    let by_root = as_user(&s, ROOT, Command::Auth(revoke));
    assert_eq!(s.apply(&by_root).error, None);
    let r = s.apply(&in_flight);
    assert_eq!(auth_error(&r), Some(AuthError::AuthOldRevision));
    assert_eq!(s.revision(), 2, "the refused put wrote nothing");
    // The client's retry is checked at the new revision and meets the new permissions (the guard's
    // check is this same `Access`).
    let retry = AuthInfo {
        user: Some("alice".into()),
        revision: s.auth().revision,
    };
    let put = PbPutRequest {
        key: b"/app/x".to_vec(),
        value: b"1".to_vec(),
        ..Default::default()
    };
    assert_eq!(
        Access::new(s.auth(), &retry).put(&put),
        Err(AuthError::PermissionDenied)
    );
    // Inside a batch (one Raft entry) the check is the same, command by command.
    let stale = in_flight.clone();
    let batch = Command::Batch(vec![as_user(&s, ROOT, put_cmd("/other", "1")), stale]);
    let r = s.apply(&batch);
    assert_eq!(r.batch[0].error, None);
    assert_eq!(auth_error(&r.batch[1]), Some(AuthError::AuthOldRevision));
}

#[test]
fn a_request_applied_at_the_auth_revision_it_was_checked_at_is_not_checked_again() {
    let mut s = enabled();
    // A put the guard could not have let through (alice may not write /other) but vouched for at
    // the current auth revision: the applier trusts the check, so nothing refuses it.
    let vouched = as_user(&s, "alice", put_cmd("/other/k", "1"));
    assert_eq!(s.apply(&vouched).error, None);
    assert_eq!(s.revision(), 2);
    // The same request one auth change later is checked again, and refused.
    let stale = as_user(&s, "alice", put_cmd("/other/k", "2"));
    assert_eq!(
        s.apply(&Command::Auth(A::RoleAdd { name: "x".into() }))
            .error,
        None
    );
    assert_eq!(
        auth_error(&s.apply(&stale)),
        Some(AuthError::AuthOldRevision)
    );
    // LeaseRevoke is checked again even at the same revision: puts attach keys to a lease without a
    // new auth revision. The lease holds a key of alice's prefix when she is checked ...
    assert_eq!(s.apply(&Command::LeaseGrant { id: 9, ttl: 60 }).error, None);
    let leased = |s: &Store, key: &str| {
        let put = PbPutRequest {
            key: key.as_bytes().to_vec(),
            lease: 9,
            ..Default::default()
        };
        as_user(s, ROOT, Command::Put(put.encode_to_vec()))
    };
    let mine = leased(&s, "/app/mine");
    assert_eq!(s.apply(&mine).error, None);
    let revoke = as_user(&s, "alice", Command::LeaseRevoke { id: 9 });
    // ... and one outside it by the time her revoke is applied, at the same auth revision.
    let theirs = leased(&s, "/other/theirs");
    assert_eq!(s.apply(&theirs).error, None);
    assert_eq!(
        auth_error(&s.apply(&revoke)),
        Some(AuthError::PermissionDenied)
    );
}

#[test]
fn admin_changes_and_lease_revokes_are_checked_again_at_apply() {
    let mut s = enabled();
    // An admin change proposed by a user who lost the root role meanwhile.
    let add = |name: &str| A::UserAdd {
        name: name.into(),
        password_hash: None,
    };
    assert_eq!(s.apply(&Command::Auth(add("admin"))).error, None);
    let grant = A::UserGrantRole {
        user: "admin".into(),
        role: ROOT.into(),
    };
    assert_eq!(s.apply(&Command::Auth(grant)).error, None);
    let change = as_user(&s, "admin", Command::Auth(add("carol")));
    let demote = A::UserRevokeRole {
        name: "admin".into(),
        role: ROOT.into(),
    };
    assert_eq!(s.apply(&Command::Auth(demote)).error, None);
    assert_eq!(
        auth_error(&s.apply(&change)),
        Some(AuthError::PermissionDenied)
    );
    assert!(!s.auth().users.contains_key("carol"));

    // A lease holding a key outside alice's grant may not be revoked by her.
    assert_eq!(s.apply(&Command::LeaseGrant { id: 7, ttl: 60 }).error, None);
    let leased = PbPutRequest {
        key: b"/other/k".to_vec(),
        lease: 7,
        ..Default::default()
    };
    let put = as_user(&s, ROOT, Command::Put(leased.encode_to_vec()));
    assert_eq!(s.apply(&put).error, None);
    let revoke = as_user(&s, "alice", Command::LeaseRevoke { id: 7 });
    assert_eq!(
        auth_error(&s.apply(&revoke)),
        Some(AuthError::PermissionDenied)
    );
    // The member's own expiry is not a client's request: not checked.
    assert_eq!(s.apply(&Command::LeaseRevoke { id: 7 }).error, None);
}

#[test]
fn a_request_checked_while_auth_was_off_is_refused_once_it_is_on() {
    let mut s = with_root();
    let anonymous = put_cmd("/k", "v").by(Some(AuthInfo {
        user: None,
        revision: s.auth().revision,
    }));
    assert_eq!(s.apply(&Command::Auth(A::Enable)).error, None);
    assert_eq!(
        auth_error(&s.apply(&anonymous)),
        Some(AuthError::AuthOldRevision)
    );
    assert_eq!(s.revision(), 1);
}
