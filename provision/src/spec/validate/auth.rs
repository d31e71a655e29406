//! `auth:`: roles, their permissions (a key, a prefix or a range) and the client certificates holding them.

use super::super::raw::*;
use super::super::*;
use super::{is_simple_name, Collector};

/// etcd's built-in role: every right, and the only one that may manage the cluster.
const ROOT: &str = "root";
/// The identity provision itself logs in with (`tls.clients`): it is given the root role by apply.
const ADMIN: &str = "admin";

/// A permission's keys as a half-open interval; `None` is "no end".
type Interval<'a> = (&'a [u8], Option<Vec<u8>>);

fn interval(p: &Permission) -> Interval<'_> {
    let end = match p.range_end.as_slice() {
        // One key: [key, key + "\0").
        [] => Some([p.key.as_slice(), &[0]].concat()),
        [0] => None,
        e => Some(e.to_vec()),
    };
    (p.key.as_slice(), end)
}

fn overlap(a: &Permission, b: &Permission) -> bool {
    let ((a0, a1), (b0, b1)) = (interval(a), interval(b));
    let before = |start: &[u8], end: &Option<Vec<u8>>| end.as_deref().is_none_or(|e| start < e);
    before(a0, &b1) && before(b0, &a1)
}

pub(super) fn check_auth(
    c: &mut Collector,
    raw: Option<RawAuth>,
    clients: Option<&[String]>,
) -> Option<Auth> {
    let raw = raw?;
    let Some(clients) = clients else {
        c.error(
            Rule::AuthWithoutTls,
            "auth",
            "an auth section without TLS: cairn names a user by its client certificate's CN, and without \
             TLS no client has one"
                .into(),
            "add `tls: { enabled: true, clients: [admin, ...] }` (each role names entries of tls.clients)",
        );
        return None;
    };
    let mut roles: Vec<Role> = Vec::new();
    for r in raw.roles {
        let field = format!("{}.name", r.path);
        let name = r.name.unwrap_or_default();
        if name == ROOT {
            c.error(
                Rule::RootRoleRedefined,
                &field,
                "the role `root` is etcd's built-in role (every right, cluster management): it cannot be \
                 defined here"
                    .into(),
                "give this role another name; provision's own `admin` certificate holds root already",
            );
        } else if !name.is_empty() && !is_simple_name(&name) {
            c.error(
                Rule::BadRoleName,
                &field,
                format!("role name {name:?} is not a simple name"),
                "use letters, digits, '-' and '_', at most 63",
            );
        } else if roles.iter().any(|o| o.name == name) {
            c.error(
                Rule::DuplicateRole,
                &field,
                format!("role {name:?} is defined twice"),
                "merge the two entries into one (permissions and clients together)",
            );
        }
        let mut role = Role {
            name,
            permissions: Vec::new(),
            clients: Vec::new(),
        };
        for (path, client) in r.clients {
            if client == ADMIN || client == ROOT {
                c.error(
                    Rule::ReservedAuthClient,
                    &path,
                    format!(
                        "client {client:?} holds the root role already (provision logs in as `admin` and \
                         gives it root; `root` is etcd's superuser): a role for it would change nothing \
                         and removing it would not take root away"
                    ),
                    "remove it from this role's clients; give the role to a client of its own",
                );
            } else if !clients.contains(&client) {
                let hint = super::did_you_mean(
                    &client,
                    &clients.iter().map(String::as_str).collect::<Vec<_>>(),
                    "client",
                );
                c.error(
                    Rule::UnknownAuthClient,
                    &path,
                    format!(
                        "role {:?} names client {client:?}, which tls.clients does not list: no certificate \
                         has that CN",
                        role.name
                    ),
                    &format!("{hint}; or add {client} to tls.clients"),
                );
            } else if !role.clients.contains(&client) {
                role.clients.push(client);
            }
        }
        for p in r.permissions {
            let Some(perm) = permission(c, &p) else {
                continue;
            };
            if let Some(other) = role.permissions.iter().find(|o| overlap(o, &perm)) {
                c.error(
                    Rule::OverlappingPermissions,
                    &p.path,
                    format!(
                        "{} overlaps {} of the same role: the keys in both would have two grants, and \
                         removing one from this file would not take the right away",
                        perm.describe(),
                        other.describe()
                    ),
                    "make the ranges of one role disjoint (one readwrite permission instead of a read and \
                     a write on the same keys)",
                );
                continue;
            }
            role.permissions.push(perm);
        }
        role.permissions.sort();
        roles.push(role);
    }
    Some(Auth { roles })
}

/// One permission's key range, or the problem with it.
fn permission(c: &mut Collector, p: &RawPermission) -> Option<Permission> {
    let access = p.access?;
    let given = [&p.key, &p.prefix, &p.from]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if given != 1 || (p.to.is_some() && p.from.is_none()) {
        c.error(
            Rule::PermissionTarget,
            &p.path,
            format!(
                "a permission names its keys with exactly one of `key`, `prefix` or `from` (with `to`); \
                 this one gives {}",
                if given == 0 {
                    "none".to_string()
                } else if given == 1 {
                    "`to` without `from`".to_string()
                } else {
                    format!("{given}")
                }
            ),
            "write `key: /a`, `prefix: /registry/` (\"\" for every key), or `from: /a, to: /m`",
        );
        return None;
    }
    let empty = |c: &mut Collector, what: &str| {
        c.error(
            Rule::EmptyPermissionRange,
            &p.path,
            format!("this permission covers no key: {what}"),
            "name a key, or use `prefix: \"\"` for every key",
        );
        None
    };
    let (key, range_end) = if let Some(k) = &p.key {
        if k.is_empty() {
            return empty(c, "the key is empty");
        }
        (k.as_bytes().to_vec(), Vec::new())
    } else if let Some(pre) = &p.prefix {
        if pre.is_empty() {
            // etcdctl's `--prefix ''`: ["\0", "\0") is every key.
            (vec![0], vec![0])
        } else {
            (pre.as_bytes().to_vec(), prefix_end(pre.as_bytes()))
        }
    } else {
        let from = p.from.clone().unwrap_or_default();
        if from.is_empty() {
            return empty(c, "`from` is empty");
        }
        match &p.to {
            None => (from.into_bytes(), vec![0]),
            Some(to) if to.as_str() <= from.as_str() => {
                return empty(c, &format!("`to` {to:?} is not after `from` {from:?}"));
            }
            Some(to) => (from.into_bytes(), to.as_bytes().to_vec()),
        }
    };
    Some(Permission {
        key,
        range_end,
        access,
    })
}
