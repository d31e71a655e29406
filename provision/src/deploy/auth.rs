//! The cluster's users and roles against cluster.yaml's `auth:` (pure: the Auth phase reads the cluster
//! and makes the changes). Wanted: `root` and provision's `admin` with the root role, every role of the
//! file with exactly its permissions, a no-password user per client certificate with exactly its roles,
//! auth enabled. Roles and users provision made earlier and the file no longer has are deleted; those
//! made by others are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::{Auth, Permission};

/// etcd's superuser and role.
pub const ROOT: &str = "root";
/// The user provision logs in as (the CN of its client certificate).
pub const ADMIN: &str = "admin";

/// Users, roles and the auth flag as the cluster reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthState {
    /// AuthStatus's flag.
    pub enabled: bool,
    /// Users with their roles.
    pub users: BTreeMap<String, BTreeSet<String>>,
    /// Roles with their permissions.
    pub roles: BTreeMap<String, Vec<Permission>>,
}

/// What provision made in an earlier apply (`OUT/apply/auth.json`): only these are deleted when the file
/// drops them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Managed {
    /// Roles of the file.
    pub roles: BTreeSet<String>,
    /// Users made for client certificates.
    pub users: BTreeSet<String>,
}

impl Managed {
    /// What `want` makes provision responsible for.
    pub fn of(want: &Auth) -> Managed {
        Managed {
            roles: want.roles.iter().map(|r| r.name.clone()).collect(),
            users: want.client_roles().into_keys().collect(),
        }
    }

    fn path(out: &Path) -> PathBuf {
        super::state::dir(out).join("auth.json")
    }

    /// The record of the last apply (empty when there is none).
    pub fn load(out: &Path) -> anyhow::Result<Managed> {
        super::state::read_json(&Self::path(out), "provision's auth record")
    }

    /// Record what this apply manages.
    pub fn save(&self, out: &Path) -> anyhow::Result<()> {
        super::state::write_json(&Self::path(out), self)
    }
}

/// One change to the cluster's auth store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthChange {
    /// RoleAdd.
    AddRole(String),
    /// RoleGrantPermission (also replaces the access of a permission on the same keys).
    Grant(String, Permission),
    /// RoleRevokePermission.
    Revoke(String, Permission),
    /// UserAdd without a password (the user is its certificate).
    AddUser(String),
    /// UserGrantRole (user, role).
    GrantRole(String, String),
    /// UserRevokeRole (user, role).
    RevokeRole(String, String),
    /// UserDelete.
    DeleteUser(String),
    /// RoleDelete (also takes it from every user).
    DeleteRole(String),
    /// AuthEnable.
    Enable,
}

impl fmt::Display for AuthChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use AuthChange::*;
        match self {
            AddRole(r) => write!(f, "create role {r}"),
            Grant(r, p) => write!(f, "grant role {r} {} on {}", p.access, p.describe()),
            Revoke(r, p) => write!(f, "revoke from role {r} {} on {}", p.access, p.describe()),
            AddUser(u) => write!(f, "create user {u} (no password)"),
            GrantRole(u, r) => write!(f, "grant role {r} to user {u}"),
            RevokeRole(u, r) => write!(f, "revoke role {r} from user {u}"),
            DeleteUser(u) => write!(f, "delete user {u} (no longer in cluster.yaml)"),
            DeleteRole(r) => write!(f, "delete role {r} (no longer in cluster.yaml)"),
            Enable => write!(f, "enable authentication"),
        }
    }
}

/// The changes that make `have` what `want` says, in an order the cluster accepts (roles before the
/// grants naming them, `root` with its role before AuthEnable).
pub fn changes(want: &Auth, have: &AuthState, managed: &Managed) -> Vec<AuthChange> {
    use AuthChange::*;
    let mut out = Vec::new();
    let wanted_roles: BTreeSet<&str> = want.roles.iter().map(|r| r.name.as_str()).collect();
    for role in &want.roles {
        let Some(perms) = have.roles.get(&role.name) else {
            out.push(AddRole(role.name.clone()));
            out.extend(
                role.permissions
                    .iter()
                    .map(|p| Grant(role.name.clone(), p.clone())),
            );
            continue;
        };
        for p in &role.permissions {
            if !perms.contains(p) {
                out.push(Grant(role.name.clone(), p.clone()));
            }
        }
        let same_keys =
            |a: &Permission, b: &Permission| a.key == b.key && a.range_end == b.range_end;
        for p in perms {
            if !role.permissions.iter().any(|w| same_keys(w, p)) {
                out.push(Revoke(role.name.clone(), p.clone()));
            }
        }
    }
    let deleted_roles: Vec<&String> = managed
        .roles
        .iter()
        .filter(|r| !wanted_roles.contains(r.as_str()) && have.roles.contains_key(*r))
        .collect();
    let clients = want.client_roles();
    let mut users: Vec<(&str, Vec<&str>, bool)> =
        vec![(ROOT, vec![ROOT], false), (ADMIN, vec![ROOT], false)];
    for (u, roles) in &clients {
        users.push((u, roles.iter().map(String::as_str).collect(), true));
    }
    for (user, roles, exact) in users {
        let held = have.users.get(user);
        if held.is_none() {
            out.push(AddUser(user.to_string()));
        }
        for r in &roles {
            if !held.is_some_and(|h| h.contains(*r)) {
                out.push(GrantRole(user.to_string(), r.to_string()));
            }
        }
        // A client user has exactly its roles; a role being deleted leaves every user with it.
        for r in held.into_iter().flatten().filter(|_| exact) {
            if !roles.contains(&r.as_str()) && !deleted_roles.contains(&r) {
                out.push(RevokeRole(user.to_string(), r.clone()));
            }
        }
    }
    for u in &managed.users {
        if !clients.contains_key(u) && u != ROOT && u != ADMIN && have.users.contains_key(u) {
            out.push(DeleteUser(u.clone()));
        }
    }
    out.extend(deleted_roles.into_iter().map(|r| DeleteRole(r.clone())));
    if !have.enabled {
        out.push(Enable);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Access, Role};

    fn perm(prefix: &str, access: Access) -> Permission {
        Permission {
            key: prefix.as_bytes().to_vec(),
            range_end: crate::spec::prefix_end(prefix.as_bytes()),
            access,
        }
    }

    fn example() -> Auth {
        Auth {
            roles: vec![
                Role {
                    name: "apiserver".into(),
                    permissions: vec![perm("/registry/", Access::ReadWrite)],
                    clients: vec!["apiserver".into()],
                },
                Role {
                    name: "backup".into(),
                    permissions: vec![Permission {
                        key: vec![0],
                        range_end: vec![0],
                        access: Access::Read,
                    }],
                    clients: vec!["backup".into()],
                },
            ],
        }
    }

    /// The state `changes` would leave, as the cluster would apply them.
    fn apply(have: &mut AuthState, changes: &[AuthChange]) {
        use AuthChange::*;
        for c in changes {
            match c {
                AddRole(r) => {
                    have.roles.insert(r.clone(), Vec::new());
                }
                Grant(r, p) => {
                    let ps = have
                        .roles
                        .get_mut(r)
                        .expect("role exists before its grants");
                    ps.retain(|o| (&o.key, &o.range_end) != (&p.key, &p.range_end));
                    ps.push(p.clone());
                    ps.sort();
                }
                Revoke(r, p) => have.roles.get_mut(r).expect("role").retain(|o| o != p),
                AddUser(u) => {
                    have.users.insert(u.clone(), BTreeSet::new());
                }
                GrantRole(u, r) => {
                    assert!(
                        r == ROOT || have.roles.contains_key(r),
                        "grant of a missing role {r}"
                    );
                    have.users.get_mut(u).expect("user").insert(r.clone());
                }
                RevokeRole(u, r) => assert!(have.users.get_mut(u).expect("user").remove(r)),
                DeleteUser(u) => assert!(have.users.remove(u).is_some()),
                DeleteRole(r) => {
                    assert!(have.roles.remove(r).is_some());
                    have.users.values_mut().for_each(|rs| {
                        rs.remove(r);
                    });
                }
                Enable => {
                    assert!(have.users.get(ROOT).is_some_and(|r| r.contains(ROOT)));
                    have.enabled = true;
                }
            }
        }
    }

    #[test]
    fn an_empty_cluster_gets_root_admin_roles_client_users_then_auth_enabled() {
        let want = example();
        let c = changes(&want, &AuthState::default(), &Managed::default());
        let lines: Vec<String> = c.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "create role apiserver",
                "grant role apiserver readwrite on prefix \"/registry/\"",
                "create role backup",
                "grant role backup read on every key",
                "create user root (no password)",
                "grant role root to user root",
                "create user admin (no password)",
                "grant role root to user admin",
                "create user apiserver (no password)",
                "grant role apiserver to user apiserver",
                "create user backup (no password)",
                "grant role backup to user backup",
                "enable authentication",
            ]
        );
        let mut have = AuthState::default();
        apply(&mut have, &c);
        assert_eq!(changes(&want, &have, &Managed::of(&want)), []);
    }

    #[test]
    fn a_removed_grant_permission_and_role_are_taken_back_and_others_left_alone() {
        let before = example();
        let mut have = AuthState::default();
        let first = changes(&before, &have, &Managed::default());
        apply(&mut have, &first);
        // Made by someone else: left alone.
        have.roles
            .insert("ops".into(), vec![perm("/ops/", Access::Read)]);
        have.users
            .insert("alice".into(), ["ops".to_string()].into());
        let mut after = before.clone();
        after.roles[0].permissions = vec![
            perm("/events/", Access::Write),
            perm("/registry/", Access::Read),
        ];
        after.roles[0].clients.push("backup".into());
        after.roles[1].clients.clear();
        let c = changes(&after, &have, &Managed::of(&before));
        let lines: Vec<String> = c.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "grant role apiserver write on prefix \"/events/\"",
                "grant role apiserver read on prefix \"/registry/\"",
                "grant role apiserver to user backup",
                "revoke role backup from user backup",
            ]
        );
        apply(&mut have, &c);
        let mut gone = after.clone();
        gone.roles.remove(1);
        gone.roles[0].permissions.remove(0); // /events/
        let c = changes(&gone, &have, &Managed::of(&after));
        let lines: Vec<String> = c.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "revoke from role apiserver write on prefix \"/events/\"",
                "delete role backup (no longer in cluster.yaml)",
            ]
        );
        apply(&mut have, &c);
        assert_eq!(changes(&gone, &have, &Managed::of(&gone)), []);
        assert!(have.users.contains_key("alice") && have.roles.contains_key("ops"));
    }
}
