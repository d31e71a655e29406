//! Compiles the peer transport protocol (proto/peer.proto) into tonic client and server code, and the
//! server side of etcd's lock and election services (proto/etcd/), whose shared messages map onto
//! etcd-client's generated types.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().compile_protos(&["proto/peer.proto"], &["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .extern_path(".etcdserverpb", "crate::api::pb::etcdserverpb")
        .extern_path(".mvccpb", "crate::api::pb::mvccpb")
        .compile_protos(
            &["proto/etcd/v3lock.proto", "proto/etcd/v3election.proto"],
            &["proto"],
        )?;
    Ok(())
}
