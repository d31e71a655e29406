//! etcd's auth store (`auth/store.go`): users, roles, key permissions, the enabled flag and the auth
//! revision. Replicated (changed only by [`AuthCommand`]s applied in log order, carried in snapshots);
//! the simple-token table beside it is member-local, as etcd's `simpleTokenTTLKeeper` is.
//!
//! Passwords arrive here already bcrypt-hashed by the proposing member, so the Raft log and snapshots
//! never hold one in clear (etcd 3.5 does the same with `hashedPassword`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The role that may do everything (etcd's `rootRole`).
pub const ROOT: &str = "root";

/// What a permission allows (etcd's `authpb.Permission_Type`: READ = 0, WRITE = 1, READWRITE = 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PermKind {
    Read,
    Write,
    ReadWrite,
}

impl PermKind {
    /// From etcd's enum value; unknown values read as READ, as a Go switch without default would not
    /// grant anything more.
    pub fn from_i32(v: i32) -> PermKind {
        match v {
            1 => PermKind::Write,
            2 => PermKind::ReadWrite,
            _ => PermKind::Read,
        }
    }

    /// etcd's enum value.
    pub fn as_i32(self) -> i32 {
        match self {
            PermKind::Read => 0,
            PermKind::Write => 1,
            PermKind::ReadWrite => 2,
        }
    }

    fn allows(self, need: Need) -> bool {
        matches!(
            (self, need),
            (PermKind::ReadWrite, _)
                | (PermKind::Read, Need::Read)
                | (PermKind::Write, Need::Write)
        )
    }
}

/// The access a request needs on a key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

/// One key permission of a role: a key (empty `range_end`), a range, or from `key` on (`range_end` "\0").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Perm {
    pub kind: PermKind,
    #[serde(with = "crate::codec::bytes")]
    pub key: Vec<u8>,
    #[serde(with = "crate::codec::bytes")]
    pub range_end: Vec<u8>,
}

/// A user: its bcrypt hash (None for a certificate-only user, etcd's `no_password`) and roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub password_hash: Option<String>,
    pub roles: BTreeSet<String>,
}

/// The replicated auth state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    pub enabled: bool,
    /// Bumped by every change, so a request checked against older permissions can be told apart.
    pub revision: u64,
    pub users: BTreeMap<String, User>,
    /// Roles by name, each with its permissions sorted by key then range end (etcd keeps them so).
    pub roles: BTreeMap<String, Vec<Perm>>,
}

/// A replicated auth change (etcd's `InternalRaftRequest` auth fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthCommand {
    Enable,
    Disable,
    /// Register a simple token on every member, if the auth revision is still the one the password was
    /// checked at.
    Authenticate {
        name: String,
        token: String,
        checked_revision: u64,
    },
    UserAdd {
        name: String,
        password_hash: Option<String>,
    },
    UserDelete {
        name: String,
    },
    UserChangePassword {
        name: String,
        password_hash: Option<String>,
    },
    UserGrantRole {
        user: String,
        role: String,
    },
    UserRevokeRole {
        name: String,
        role: String,
    },
    RoleAdd {
        name: String,
    },
    RoleDelete {
        name: String,
    },
    RoleGrantPermission {
        name: String,
        perm: Perm,
    },
    RoleRevokePermission {
        name: String,
        #[serde(with = "crate::codec::bytes")]
        key: Vec<u8>,
        #[serde(with = "crate::codec::bytes")]
        range_end: Vec<u8>,
    },
}

/// etcd's auth errors (`auth/store.go`); the API's table gives each its gRPC code and text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AuthError {
    #[error("root user does not exist")]
    RootUserNotExist,
    #[error("root user does not have root role")]
    RootRoleNotExist,
    #[error("user name already exists")]
    UserAlreadyExist,
    #[error("user name is empty")]
    UserEmpty,
    #[error("user name not found")]
    UserNotFound,
    #[error("role name already exists")]
    RoleAlreadyExist,
    #[error("role name not found")]
    RoleNotFound,
    #[error("role name is empty")]
    RoleEmpty,
    #[error("authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("permission denied")]
    PermissionDenied,
    #[error("role is not granted to the user")]
    RoleNotGranted,
    #[error("permission is not granted to the role")]
    PermissionNotGranted,
    #[error("authentication is not enabled")]
    AuthNotEnabled,
    #[error("invalid auth token")]
    InvalidAuthToken,
    #[error("invalid auth management")]
    InvalidAuthMgmt,
    #[error("revision of auth store is old")]
    AuthOldRevision,
}

impl AuthState {
    /// Apply one change; `tokens` is this member's simple-token table.
    pub fn apply(&mut self, cmd: &AuthCommand, tokens: &Tokens) -> Result<(), AuthError> {
        use AuthCommand as C;
        match cmd {
            C::Enable => {
                if self.enabled {
                    return Ok(());
                }
                let root = self.users.get(ROOT).ok_or(AuthError::RootUserNotExist)?;
                if !root.roles.contains(ROOT) {
                    return Err(AuthError::RootRoleNotExist);
                }
                self.enabled = true;
                tokens.clear();
            }
            C::Disable => {
                if !self.enabled {
                    return Ok(());
                }
                self.enabled = false;
                tokens.clear();
            }
            C::Authenticate {
                name,
                token,
                checked_revision,
            } => {
                if !self.enabled {
                    return Err(AuthError::AuthNotEnabled);
                }
                if *checked_revision != self.revision {
                    return Err(AuthError::AuthOldRevision);
                }
                if !self.users.contains_key(name) {
                    return Err(AuthError::AuthFailed);
                }
                tokens.assign(token, name);
                // Assigning a token is not a change of users or permissions: no new revision.
                return Ok(());
            }
            C::UserAdd {
                name,
                password_hash,
            } => {
                if name.is_empty() {
                    return Err(AuthError::UserEmpty);
                }
                if self.users.contains_key(name) {
                    return Err(AuthError::UserAlreadyExist);
                }
                self.users.insert(
                    name.clone(),
                    User {
                        password_hash: password_hash.clone(),
                        roles: BTreeSet::new(),
                    },
                );
            }
            C::UserDelete { name } => {
                if self.enabled && name == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.users.remove(name).ok_or(AuthError::UserNotFound)?;
                tokens.invalidate_user(name);
            }
            C::UserChangePassword {
                name,
                password_hash,
            } => {
                let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
                user.password_hash = password_hash.clone();
                tokens.invalidate_user(name);
            }
            C::UserGrantRole { user, role } => {
                let u = self.users.get_mut(user).ok_or(AuthError::UserNotFound)?;
                // The root role exists without RoleAdd (etcd special-cases it).
                if role != ROOT && !self.roles.contains_key(role) {
                    return Err(AuthError::RoleNotFound);
                }
                if !u.roles.insert(role.clone()) {
                    // etcd answers a repeated grant with success and no new revision.
                    return Ok(());
                }
            }
            C::UserRevokeRole { name, role } => {
                if self.enabled && name == ROOT && role == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                let u = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
                if !u.roles.remove(role) {
                    return Err(AuthError::RoleNotGranted);
                }
            }
            C::RoleAdd { name } => {
                if name.is_empty() {
                    return Err(AuthError::RoleEmpty);
                }
                if self.roles.contains_key(name) {
                    return Err(AuthError::RoleAlreadyExist);
                }
                self.roles.insert(name.clone(), Vec::new());
            }
            C::RoleDelete { name } => {
                if self.enabled && name == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.roles.remove(name).ok_or(AuthError::RoleNotFound)?;
                for u in self.users.values_mut() {
                    u.roles.remove(name);
                }
            }
            C::RoleGrantPermission { name, perm } => {
                let perms = self.roles.get_mut(name).ok_or(AuthError::RoleNotFound)?;
                // A grant on the same key and range end replaces its kind (etcd's behaviour).
                match perms
                    .binary_search_by(|p| (&p.key, &p.range_end).cmp(&(&perm.key, &perm.range_end)))
                {
                    Ok(i) => perms[i].kind = perm.kind,
                    Err(i) => perms.insert(i, perm.clone()),
                }
            }
            C::RoleRevokePermission {
                name,
                key,
                range_end,
            } => {
                let perms = self.roles.get_mut(name).ok_or(AuthError::RoleNotFound)?;
                let before = perms.len();
                perms.retain(|p| !(p.key == *key && p.range_end == *range_end));
                if perms.len() == before {
                    return Err(AuthError::PermissionNotGranted);
                }
            }
        }
        self.revision += 1;
        Ok(())
    }

    /// Whether `user` holds the root role (etcd's `hasRootRole`).
    pub fn is_root(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.roles.contains(ROOT))
    }

    /// etcd's `IsAdminPermitted`: nothing is checked while auth is disabled.
    pub fn check_admin(&self, user: Option<&str>) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let user = user.ok_or(AuthError::UserEmpty)?;
        if !self.users.contains_key(user) {
            return Err(AuthError::UserNotFound);
        }
        if !self.is_root(user) {
            return Err(AuthError::PermissionDenied);
        }
        Ok(())
    }

    /// etcd's `isOpPermitted`: may `user` do `need` on `[key, range_end)` (etcd's range conventions)?
    pub fn check(
        &self,
        user: Option<&str>,
        key: &[u8],
        range_end: &[u8],
        need: Need,
    ) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let user = user.ok_or(AuthError::UserEmpty)?;
        let Some(u) = self.users.get(user) else {
            return Err(AuthError::PermissionDenied);
        };
        if u.roles.contains(ROOT) {
            return Ok(());
        }
        let mut perms = u
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flatten()
            .filter(|p| p.kind.allows(need));
        let Some(first) = perms.next() else {
            return Err(AuthError::PermissionDenied);
        };
        let ok = match perms.next() {
            // The common case (a client confined to one prefix): no union to build, nothing allocated.
            None => covers_one(first, key, range_end),
            Some(second) => {
                let mut granted: Vec<(Vec<u8>, Option<Vec<u8>>)> = [first, second]
                    .into_iter()
                    .chain(perms)
                    .map(|p| interval(&p.key, &p.range_end))
                    .collect();
                covered(&mut granted, interval(key, range_end))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }
}

/// Whether the one permission `p` covers `[key, range_end)`: exactly what [`covered`] answers for a
/// union of one interval, compared in place. A permission's range end "" stands for `p.key + "\0"`,
/// the least key above `p.key`, so `k < p.key + "\0"` is `k <= p.key`.
fn covers_one(p: &Perm, key: &[u8], range_end: &[u8]) -> bool {
    let start = p.key.as_slice();
    if key < start {
        return false;
    }
    // `key` is at or above the permission's start: is it also below its end?
    let holds_key = || match p.range_end.as_slice() {
        [] => key == start,
        [0] => true,
        end => key < end,
    };
    match range_end {
        [] => holds_key(),
        [0] => p.range_end == [0],
        // An empty or inverted range asks for its first key (as `covered` does).
        end if end <= key => holds_key(),
        end => match p.range_end.as_slice() {
            // Only `[start, start + "\0")` fits in a one-key permission.
            [] => end.len() == start.len() + 1 && end.starts_with(start) && end.last() == Some(&0),
            [0] => true,
            granted_end => end <= granted_end,
        },
    }
}

/// A key range as a half-open interval; `None` is "no upper bound" (range end "\0").
fn interval(key: &[u8], range_end: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    match range_end {
        [] => {
            let mut next = key.to_vec();
            next.push(0);
            (key.to_vec(), Some(next))
        }
        [0] => (key.to_vec(), None),
        end => (key.to_vec(), Some(end.to_vec())),
    }
}

/// Whether the union of `granted` covers `want` (etcd's interval tree `Contains`).
fn covered(granted: &mut [(Vec<u8>, Option<Vec<u8>>)], want: (Vec<u8>, Option<Vec<u8>>)) -> bool {
    let (mut from, to) = want;
    if let Some(to) = &to {
        if *to <= from {
            // An empty range asks for nothing (etcd treats key >= end as a single key; be strict).
            return granted
                .iter()
                .any(|(s, e)| *s <= from && e.as_ref().is_none_or(|e| from < *e));
        }
    }
    granted.sort();
    for (s, e) in granted.iter() {
        if *s > from {
            break;
        }
        match e {
            None => return true,
            Some(e) if *e > from => {
                if to.as_ref().is_some_and(|to| e >= to) {
                    return true;
                }
                from = e.clone();
            }
            Some(_) => {}
        }
    }
    false
}

/// Simple tokens of this member: token → (user, last use). A token lives `ttl` past its last use
/// (etcd's `simpleTokenTTLKeeper` resets the deadline on every use). One lock for the TTL and the
/// table: every request with a token takes it once.
#[derive(Debug)]
pub struct Tokens {
    table: Mutex<TokenTable>,
}

#[derive(Debug)]
struct TokenTable {
    ttl: Duration,
    live: HashMap<String, (String, Instant)>,
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            table: Mutex::new(TokenTable {
                ttl: Duration::from_secs(300),
                live: HashMap::new(),
            }),
        }
    }
}

impl Tokens {
    /// Set `--auth-token-ttl`.
    pub fn set_ttl(&self, ttl: Duration) {
        self.table.lock().ttl = ttl;
    }

    fn assign(&self, token: &str, user: &str) {
        let mut t = self.table.lock();
        let now = Instant::now();
        let ttl = t.ttl;
        t.live
            .retain(|_, (_, used)| now.duration_since(*used) < ttl);
        t.live.insert(token.to_string(), (user.to_string(), now));
    }

    /// The user a live token belongs to; using it extends its life.
    pub fn user(&self, token: &str) -> Option<String> {
        let mut t = self.table.lock();
        let now = Instant::now();
        let ttl = t.ttl;
        let (user, used) = t.live.get_mut(token)?;
        if now.duration_since(*used) < ttl {
            *used = now;
            return Some(user.clone());
        }
        t.live.remove(token);
        None
    }

    fn invalidate_user(&self, user: &str) {
        self.table.lock().live.retain(|_, (u, _)| u != user);
    }

    fn clear(&self) {
        self.table.lock().live.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st() -> (AuthState, Tokens) {
        (AuthState::default(), Tokens::default())
    }

    fn perm(kind: PermKind, key: &str, end: &str) -> Perm {
        Perm {
            kind,
            key: key.into(),
            range_end: end.into(),
        }
    }

    #[test]
    fn enable_needs_root_user_with_root_role() {
        let (mut a, t) = st();
        assert_eq!(
            a.apply(&AuthCommand::Enable, &t),
            Err(AuthError::RootUserNotExist)
        );
        let add = AuthCommand::UserAdd {
            name: ROOT.into(),
            password_hash: None,
        };
        a.apply(&add, &t).expect("add");
        assert_eq!(a.apply(&add, &t), Err(AuthError::UserAlreadyExist));
        assert_eq!(
            a.apply(&AuthCommand::Enable, &t),
            Err(AuthError::RootRoleNotExist)
        );
        let grant = AuthCommand::UserGrantRole {
            user: ROOT.into(),
            role: ROOT.into(),
        };
        a.apply(&grant, &t).expect("grant root without RoleAdd");
        a.apply(&AuthCommand::Enable, &t).expect("enable");
        assert!(a.enabled);
        let del = AuthCommand::UserDelete { name: ROOT.into() };
        assert_eq!(a.apply(&del, &t), Err(AuthError::InvalidAuthMgmt));
    }

    #[test]
    fn prefix_permission_covers_keys_and_subranges_only() {
        let (mut a, t) = st();
        for c in [
            AuthCommand::UserAdd {
                name: "u".into(),
                password_hash: None,
            },
            AuthCommand::UserAdd {
                name: ROOT.into(),
                password_hash: None,
            },
            AuthCommand::UserGrantRole {
                user: ROOT.into(),
                role: ROOT.into(),
            },
            AuthCommand::RoleAdd { name: "r".into() },
            AuthCommand::RoleGrantPermission {
                name: "r".into(),
                perm: perm(PermKind::Read, "/a/", "/a0"),
            },
            AuthCommand::RoleGrantPermission {
                name: "r".into(),
                perm: perm(PermKind::Write, "/b", ""),
            },
            AuthCommand::UserGrantRole {
                user: "u".into(),
                role: "r".into(),
            },
            AuthCommand::Enable,
        ] {
            a.apply(&c, &t).expect("setup");
        }
        let u = Some("u");
        assert_eq!(a.check(u, b"/a/x", b"", Need::Read), Ok(()));
        assert_eq!(a.check(u, b"/a/", b"/a0", Need::Read), Ok(()));
        assert_eq!(a.check(u, b"/a/x", b"/a/y", Need::Read), Ok(()));
        assert_eq!(
            a.check(u, b"/a/x", b"", Need::Write),
            Err(AuthError::PermissionDenied)
        );
        assert_eq!(
            a.check(u, b"/", b"\0", Need::Read),
            Err(AuthError::PermissionDenied)
        );
        assert_eq!(a.check(u, b"/b", b"", Need::Write), Ok(()));
        assert_eq!(
            a.check(u, b"/b", b"/c", Need::Write),
            Err(AuthError::PermissionDenied)
        );
        assert_eq!(
            a.check(None, b"/a/x", b"", Need::Read),
            Err(AuthError::UserEmpty)
        );
        assert_eq!(a.check(Some(ROOT), b"/", b"\0", Need::Write), Ok(()));
        assert_eq!(a.check_admin(u), Err(AuthError::PermissionDenied));
        let rev = a.revision;
        a.apply(
            &AuthCommand::RoleRevokePermission {
                name: "r".into(),
                key: "/a/".into(),
                range_end: "/a0".into(),
            },
            &t,
        )
        .expect("revoke");
        assert!(a.revision > rev);
        assert_eq!(
            a.check(u, b"/a/x", b"", Need::Read),
            Err(AuthError::PermissionDenied)
        );
    }

    #[test]
    fn tokens_die_with_their_user_and_on_disable() {
        let (mut a, t) = st();
        for c in [
            AuthCommand::UserAdd {
                name: ROOT.into(),
                password_hash: None,
            },
            AuthCommand::UserGrantRole {
                user: ROOT.into(),
                role: ROOT.into(),
            },
            AuthCommand::Enable,
        ] {
            a.apply(&c, &t).expect("setup");
        }
        let auth = |rev| AuthCommand::Authenticate {
            name: ROOT.into(),
            token: "tok.1".into(),
            checked_revision: rev,
        };
        assert_eq!(a.apply(&auth(0), &t), Err(AuthError::AuthOldRevision));
        a.apply(&auth(a.revision), &t).expect("auth");
        assert_eq!(t.user("tok.1").as_deref(), Some(ROOT));
        a.apply(&AuthCommand::Disable, &t).expect("disable");
        assert_eq!(t.user("tok.1"), None);
    }

    /// splitmix64: a seeded, dependency-free generator for the randomized comparison below.
    struct Mix(u64);

    impl Mix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// Short keys over {"\0", "a", "b"}, so equal keys, prefixes and successors ("k\0") are common.
        fn key(&mut self) -> Vec<u8> {
            let len = self.below(4);
            (0..len)
                .map(|_| [0u8, b'a', b'b'][self.below(3) as usize])
                .collect()
        }

        /// A range end as clients send them: none (one key), "\0" (everything from the key), the key's
        /// successor, or any key (empty and inverted ranges included).
        fn range_end(&mut self, key: &[u8]) -> Vec<u8> {
            match self.below(5) {
                0 => Vec::new(),
                1 => vec![0],
                2 => [key, &[0]].concat(),
                _ => self.key(),
            }
        }
    }

    #[test]
    fn one_permission_fast_path_answers_as_the_union_does() {
        let mut rng = Mix(17);
        let (mut allowed, mut refused) = (0, 0);
        for _ in 0..200_000 {
            let key = rng.key();
            let p = perm(PermKind::ReadWrite, "", "");
            let p = Perm {
                range_end: rng.range_end(&key),
                key,
                ..p
            };
            let want = rng.key();
            let want_end = rng.range_end(&want);
            let fast = covers_one(&p, &want, &want_end);
            let general = covered(
                &mut [interval(&p.key, &p.range_end)],
                interval(&want, &want_end),
            );
            assert_eq!(fast, general, "{p:?} over {want:?}..{want_end:?}");
            if fast {
                allowed += 1;
            } else {
                refused += 1;
            }
        }
        // Both answers were exercised, not one trivially.
        assert!(allowed > 10_000 && refused > 10_000, "{allowed} {refused}");
    }

    #[test]
    fn check_with_one_or_several_permissions_matches_the_union() {
        let t = Tokens::default();
        let mut rng = Mix(29);
        for _ in 0..2_000 {
            let mut a = AuthState::default();
            for c in [
                AuthCommand::UserAdd {
                    name: "u".into(),
                    password_hash: None,
                },
                AuthCommand::RoleAdd { name: "r1".into() },
                AuthCommand::RoleAdd { name: "r2".into() },
                AuthCommand::UserGrantRole {
                    user: "u".into(),
                    role: "r1".into(),
                },
                AuthCommand::UserGrantRole {
                    user: "u".into(),
                    role: "r2".into(),
                },
            ] {
                a.apply(&c, &t).expect("setup");
            }
            let n = rng.below(4);
            for i in 0..n {
                let key = rng.key();
                let kind = PermKind::from_i32(rng.below(3) as i32);
                let range_end = rng.range_end(&key);
                let role = if i % 2 == 0 { "r1" } else { "r2" };
                a.roles.get_mut(role).expect("role").push(Perm {
                    kind,
                    key,
                    range_end,
                });
            }
            a.enabled = true;
            for _ in 0..20 {
                let key = rng.key();
                let range_end = rng.range_end(&key);
                let need = if rng.below(2) == 0 {
                    Need::Read
                } else {
                    Need::Write
                };
                let mut granted: Vec<_> = a
                    .roles
                    .values()
                    .flatten()
                    .filter(|p| p.kind.allows(need))
                    .map(|p| interval(&p.key, &p.range_end))
                    .collect();
                let union = covered(&mut granted, interval(&key, &range_end));
                assert_eq!(
                    a.check(Some("u"), &key, &range_end, need).is_ok(),
                    union,
                    "{:?} {need:?} {key:?}..{range_end:?}",
                    a.roles
                );
            }
        }
    }
}
