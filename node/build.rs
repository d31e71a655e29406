//! Compiles the peer transport protocol (proto/peer.proto) into tonic client and server code, and
//! etcd's Auth service (proto/auth.proto) into server code.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/peer.proto");
    println!("cargo:rerun-if-changed=proto/auth.proto");
    println!("cargo:rerun-if-changed=proto/authpb.proto");
    tonic_prost_build::configure().compile_protos(&["proto/peer.proto"], &["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .extern_path(
            ".etcdserverpb.ResponseHeader",
            "::etcd_client::proto::PbResponseHeader",
        )
        .compile_protos(&["proto/auth.proto"], &["proto"])?;
    Ok(())
}
