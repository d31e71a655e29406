//! Compiles the peer transport protocol (proto/peer.proto) into tonic client and server code; the server
//! side of etcd's lock and election services (proto/etcd/), whose shared messages map onto etcd-client's
//! generated types; and etcd's API protos (proto/etcd-api, as etcd-client ships them) into a descriptor set
//! for the JSON gateway.
use std::path::PathBuf;
use std::process::Command;

/// etcd's API files the gateway serves (imports are pulled in with `--include_imports`).
const ETCD_API: &[&str] = &[
    "etcd/api/etcdserverpb/rpc.proto",
    "etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
    "etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto",
];

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

    // A descriptor set, not generated code: the gateway works on dynamic messages, so every etcd service
    // gets JSON without a second set of Rust types beside etcd-client's.
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("etcd_api.bin");
    let protoc = std::env::var("PROTOC").unwrap_or_else(|_| "protoc".into());
    let status = Command::new(&protoc)
        .arg("--include_imports")
        .arg(format!("--descriptor_set_out={}", out.display()))
        .arg("-Iproto/etcd-api")
        .args(ETCD_API)
        .status()
        .map_err(|e| format!("running {protoc} (install protobuf-compiler): {e}"))?;
    if !status.success() {
        return Err(format!("{protoc} failed on proto/etcd-api: {status}").into());
    }
    Ok(())
}
