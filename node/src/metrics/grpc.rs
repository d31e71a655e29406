//! go-grpc-prometheus's server counters, which etcd registers on its client port:
//! `grpc_server_started_total` and `grpc_server_handled_total` per service, method and status code.
//! Clients read them too: etcd-client's tests count `Authenticate` calls handled OK to prove a token is
//! refreshed once for many concurrent calls.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// gRPC status codes by number, named as grpc-go prints them (go-grpc-prometheus's `grpc_code` label).
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The counters of one RPC.
pub struct Method {
    service: &'static str,
    name: &'static str,
    kind: &'static str,
    started: AtomicU64,
    handled: [AtomicU64; 17],
}

impl Method {
    const fn new(service: &'static str, name: &'static str, kind: &'static str) -> Method {
        Method {
            service,
            name,
            kind,
            started: AtomicU64::new(0),
            handled: [const { AtomicU64::new(0) }; 17],
        }
    }

    /// Count a call that reached the server.
    pub fn start(&self) {
        self.started.fetch_add(1, Relaxed);
    }

    /// Count a call that finished with gRPC status `code` (an unknown number counts as Unknown).
    pub fn handled(&self, code: u32) {
        let i = usize::try_from(code)
            .ok()
            .filter(|i| *i < CODES.len())
            .unwrap_or(2);
        self.handled[i].fetch_add(1, Relaxed);
    }
}

const U: &str = "unary";
const SS: &str = "server_stream";
const BIDI: &str = "bidi_stream";

/// Every RPC of etcd's client API that cairn serves, with its stream kind.
static METHODS: [Method; 48] = [
    Method::new("etcdserverpb.KV", "Range", U),
    Method::new("etcdserverpb.KV", "Put", U),
    Method::new("etcdserverpb.KV", "DeleteRange", U),
    Method::new("etcdserverpb.KV", "Txn", U),
    Method::new("etcdserverpb.KV", "Compact", U),
    Method::new("etcdserverpb.Watch", "Watch", BIDI),
    Method::new("etcdserverpb.Lease", "LeaseGrant", U),
    Method::new("etcdserverpb.Lease", "LeaseRevoke", U),
    Method::new("etcdserverpb.Lease", "LeaseKeepAlive", BIDI),
    Method::new("etcdserverpb.Lease", "LeaseTimeToLive", U),
    Method::new("etcdserverpb.Lease", "LeaseLeases", U),
    Method::new("etcdserverpb.Cluster", "MemberAdd", U),
    Method::new("etcdserverpb.Cluster", "MemberRemove", U),
    Method::new("etcdserverpb.Cluster", "MemberUpdate", U),
    Method::new("etcdserverpb.Cluster", "MemberList", U),
    Method::new("etcdserverpb.Cluster", "MemberPromote", U),
    Method::new("etcdserverpb.Maintenance", "Alarm", U),
    Method::new("etcdserverpb.Maintenance", "Status", U),
    Method::new("etcdserverpb.Maintenance", "Defragment", U),
    Method::new("etcdserverpb.Maintenance", "Hash", U),
    Method::new("etcdserverpb.Maintenance", "HashKV", U),
    Method::new("etcdserverpb.Maintenance", "Snapshot", SS),
    Method::new("etcdserverpb.Maintenance", "MoveLeader", U),
    Method::new("etcdserverpb.Maintenance", "Downgrade", U),
    Method::new("etcdserverpb.Auth", "AuthEnable", U),
    Method::new("etcdserverpb.Auth", "AuthDisable", U),
    Method::new("etcdserverpb.Auth", "AuthStatus", U),
    Method::new("etcdserverpb.Auth", "Authenticate", U),
    Method::new("etcdserverpb.Auth", "UserAdd", U),
    Method::new("etcdserverpb.Auth", "UserGet", U),
    Method::new("etcdserverpb.Auth", "UserList", U),
    Method::new("etcdserverpb.Auth", "UserDelete", U),
    Method::new("etcdserverpb.Auth", "UserChangePassword", U),
    Method::new("etcdserverpb.Auth", "UserGrantRole", U),
    Method::new("etcdserverpb.Auth", "UserRevokeRole", U),
    Method::new("etcdserverpb.Auth", "RoleAdd", U),
    Method::new("etcdserverpb.Auth", "RoleGet", U),
    Method::new("etcdserverpb.Auth", "RoleList", U),
    Method::new("etcdserverpb.Auth", "RoleDelete", U),
    Method::new("etcdserverpb.Auth", "RoleGrantPermission", U),
    Method::new("etcdserverpb.Auth", "RoleRevokePermission", U),
    Method::new("v3lockpb.Lock", "Lock", U),
    Method::new("v3lockpb.Lock", "Unlock", U),
    Method::new("v3electionpb.Election", "Campaign", U),
    Method::new("v3electionpb.Election", "Proclaim", U),
    Method::new("v3electionpb.Election", "Leader", U),
    Method::new("v3electionpb.Election", "Observe", SS),
    Method::new("v3electionpb.Election", "Resign", U),
];

/// The counters of the RPC at gRPC path `/service/method`, if it is one of etcd's.
pub fn method(path: &str) -> Option<&'static Method> {
    let (service, name) = path.strip_prefix('/')?.split_once('/')?;
    METHODS
        .iter()
        .find(|m| m.service == service && m.name == name)
}

/// Append both counter families in Prometheus text format. etcd pre-registers every (method, code) series
/// at zero; here `handled` lists only the codes that occurred, to keep the page short.
pub fn render(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP grpc_server_started_total Total number of RPCs started on the server.\n# TYPE grpc_server_started_total counter"
    );
    for m in METHODS.iter() {
        let n = m.started.load(Relaxed);
        let _ = writeln!(
            out,
            "grpc_server_started_total{{grpc_method=\"{}\",grpc_service=\"{}\",grpc_type=\"{}\"}} {n}",
            m.name, m.service, m.kind
        );
    }
    let _ = writeln!(
        out,
        "# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.\n# TYPE grpc_server_handled_total counter"
    );
    for m in METHODS.iter() {
        for (code, n) in CODES.iter().zip(m.handled.iter()) {
            let n = n.load(Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "grpc_server_handled_total{{grpc_code=\"{code}\",grpc_method=\"{}\",grpc_service=\"{}\",grpc_type=\"{}\"}} {n}",
                    m.name, m.service, m.kind
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handled_call_is_rendered_with_its_code_name() {
        let m = method("/etcdserverpb.Auth/Authenticate").expect("known method");
        m.start();
        m.handled(0);
        m.handled(16);
        m.handled(99);
        let mut out = String::new();
        render(&mut out);
        assert!(out.contains("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Authenticate\",grpc_service=\"etcdserverpb.Auth\",grpc_type=\"unary\"} 1"));
        assert!(out.contains("grpc_code=\"Unauthenticated\",grpc_method=\"Authenticate\""));
        assert!(out.contains("grpc_code=\"Unknown\",grpc_method=\"Authenticate\""));
        assert!(method("/etcdserverpb.KV/Nope").is_none());
        assert!(method("no-slash").is_none());
    }
}
