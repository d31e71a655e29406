//! The gateway's paths: exactly the `google.api.http` options of etcd 3.4.23's rpc.proto, v3lock.proto and
//! v3election.proto (every binding is `post` with `body: "*"`), each naming the gRPC method it calls.

use std::collections::HashMap;

use prost_reflect::{DescriptorPool, MessageDescriptor};

/// etcd's API descriptors, compiled by build.rs from proto/etcd-api.
const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/etcd_api.bin"));

/// (path under `/v3/`, gRPC service, method). Order matters only where two bindings share a path: etcd 3.4
/// binds both Hash and HashKV to `maintenance/hash`, and grpc-gateway v1 serves the first registered (Hash).
const BINDINGS: &[(&str, &str, &str)] = &[
    ("kv/range", "etcdserverpb.KV", "Range"),
    ("kv/put", "etcdserverpb.KV", "Put"),
    ("kv/deleterange", "etcdserverpb.KV", "DeleteRange"),
    ("kv/txn", "etcdserverpb.KV", "Txn"),
    ("kv/compaction", "etcdserverpb.KV", "Compact"),
    ("watch", "etcdserverpb.Watch", "Watch"),
    ("lease/grant", "etcdserverpb.Lease", "LeaseGrant"),
    ("lease/revoke", "etcdserverpb.Lease", "LeaseRevoke"),
    ("kv/lease/revoke", "etcdserverpb.Lease", "LeaseRevoke"),
    ("lease/keepalive", "etcdserverpb.Lease", "LeaseKeepAlive"),
    ("lease/timetolive", "etcdserverpb.Lease", "LeaseTimeToLive"),
    (
        "kv/lease/timetolive",
        "etcdserverpb.Lease",
        "LeaseTimeToLive",
    ),
    ("lease/leases", "etcdserverpb.Lease", "LeaseLeases"),
    ("kv/lease/leases", "etcdserverpb.Lease", "LeaseLeases"),
    ("cluster/member/add", "etcdserverpb.Cluster", "MemberAdd"),
    (
        "cluster/member/remove",
        "etcdserverpb.Cluster",
        "MemberRemove",
    ),
    (
        "cluster/member/update",
        "etcdserverpb.Cluster",
        "MemberUpdate",
    ),
    ("cluster/member/list", "etcdserverpb.Cluster", "MemberList"),
    (
        "cluster/member/promote",
        "etcdserverpb.Cluster",
        "MemberPromote",
    ),
    ("maintenance/alarm", "etcdserverpb.Maintenance", "Alarm"),
    ("maintenance/status", "etcdserverpb.Maintenance", "Status"),
    (
        "maintenance/defragment",
        "etcdserverpb.Maintenance",
        "Defragment",
    ),
    ("maintenance/hash", "etcdserverpb.Maintenance", "Hash"),
    ("maintenance/hash", "etcdserverpb.Maintenance", "HashKV"),
    (
        "maintenance/snapshot",
        "etcdserverpb.Maintenance",
        "Snapshot",
    ),
    (
        "maintenance/transfer-leadership",
        "etcdserverpb.Maintenance",
        "MoveLeader",
    ),
    ("auth/enable", "etcdserverpb.Auth", "AuthEnable"),
    ("auth/disable", "etcdserverpb.Auth", "AuthDisable"),
    ("auth/authenticate", "etcdserverpb.Auth", "Authenticate"),
    ("auth/user/add", "etcdserverpb.Auth", "UserAdd"),
    ("auth/user/get", "etcdserverpb.Auth", "UserGet"),
    ("auth/user/list", "etcdserverpb.Auth", "UserList"),
    ("auth/user/delete", "etcdserverpb.Auth", "UserDelete"),
    (
        "auth/user/changepw",
        "etcdserverpb.Auth",
        "UserChangePassword",
    ),
    ("auth/user/grant", "etcdserverpb.Auth", "UserGrantRole"),
    ("auth/user/revoke", "etcdserverpb.Auth", "UserRevokeRole"),
    ("auth/role/add", "etcdserverpb.Auth", "RoleAdd"),
    ("auth/role/get", "etcdserverpb.Auth", "RoleGet"),
    ("auth/role/list", "etcdserverpb.Auth", "RoleList"),
    ("auth/role/delete", "etcdserverpb.Auth", "RoleDelete"),
    (
        "auth/role/grant",
        "etcdserverpb.Auth",
        "RoleGrantPermission",
    ),
    (
        "auth/role/revoke",
        "etcdserverpb.Auth",
        "RoleRevokePermission",
    ),
    ("lock/lock", "v3lockpb.Lock", "Lock"),
    ("lock/unlock", "v3lockpb.Lock", "Unlock"),
    ("election/campaign", "v3electionpb.Election", "Campaign"),
    ("election/proclaim", "v3electionpb.Election", "Proclaim"),
    ("election/leader", "v3electionpb.Election", "Leader"),
    ("election/observe", "v3electionpb.Election", "Observe"),
    ("election/resign", "v3electionpb.Election", "Resign"),
];

/// One gRPC method as the gateway calls it.
#[derive(Clone, Debug)]
pub struct Rpc {
    /// The gRPC path, `/etcdserverpb.KV/Range`.
    pub grpc_path: String,
    /// The request message.
    pub input: MessageDescriptor,
    /// The response message.
    pub output: MessageDescriptor,
    /// The request body is a stream of JSON objects (Watch, LeaseKeepAlive).
    pub client_streaming: bool,
    /// The response is a stream of `{"result": ...}` lines (Watch, LeaseKeepAlive, Snapshot, Observe).
    pub server_streaming: bool,
}

/// The gateway's path table.
#[derive(Clone, Debug)]
pub struct Routes {
    by_path: HashMap<&'static str, Rpc>,
}

/// Why the table could not be built (a descriptor set out of step with [`BINDINGS`]: a build defect).
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    #[error("etcd API descriptors do not decode: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    #[error("etcd API descriptors have no method {0}/{1}")]
    NoMethod(&'static str, &'static str),
}

impl Routes {
    /// Build the table from the compiled descriptors.
    pub fn new() -> Result<Routes, RoutesError> {
        let pool = DescriptorPool::decode(DESCRIPTORS)?;
        let mut by_path = HashMap::new();
        for &(path, service, method) in BINDINGS {
            let m = pool
                .get_service_by_name(service)
                .and_then(|s| s.methods().find(|m| m.name() == method))
                .ok_or(RoutesError::NoMethod(service, method))?;
            by_path.entry(path).or_insert_with(|| Rpc {
                grpc_path: format!("/{service}/{method}"),
                input: m.input(),
                output: m.output(),
                client_streaming: m.is_client_streaming(),
                server_streaming: m.is_server_streaming(),
            });
        }
        Ok(Routes { by_path })
    }

    /// The method bound to `path` (the part after `/v3/`).
    pub fn get(&self, path: &str) -> Option<&Rpc> {
        self.by_path.get(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binding_names_a_method_of_the_descriptors() {
        let routes = Routes::new().expect("descriptors and bindings agree");
        let range = routes.get("kv/range").expect("kv/range");
        assert_eq!(range.grpc_path, "/etcdserverpb.KV/Range");
        assert_eq!(range.input.full_name(), "etcdserverpb.RangeRequest");
        assert!(!range.client_streaming && !range.server_streaming);
        let watch = routes.get("watch").expect("watch");
        assert!(watch.client_streaming && watch.server_streaming);
        // grpc-gateway v1 serves the first of two bindings of one path.
        assert_eq!(
            routes.get("maintenance/hash").map(|r| r.grpc_path.as_str()),
            Some("/etcdserverpb.Maintenance/Hash")
        );
        assert!(routes
            .get("election/observe")
            .is_some_and(|r| r.server_streaming));
        assert!(routes.get("kv/nope").is_none());
    }
}
