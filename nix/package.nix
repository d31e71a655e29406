# Builds the workspace from Cargo.lock; `cairn` is the node, `passthru.provision` the provisioner.
{ lib, rustPlatform, protobuf, stdenv }:

let
  src = lib.cleanSourceWith {
    src = ../.;
    filter = path: type:
      let base = baseNameOf path; in
      !(type == "directory" && (base == "target" || base == "out" || base == "data"));
  };
  common = {
    version = "0.1.0";
    inherit src;
    cargoLock.lockFile = ../Cargo.lock;
    nativeBuildInputs = [ protobuf ];
    # etcd-client compiles etcd's .proto files with protoc at build time.
    PROTOC = "${protobuf}/bin/protoc";
    PROTOC_INCLUDE = "${protobuf}/include";
    # Unit tests only: the system tests need etcdctl, named and real sockets, which the sandbox lacks.
    cargoTestFlags = [ "--lib" "--bins" ];
    meta = {
      license = lib.licenses.asl20;
      platforms = lib.platforms.linux;
    };
  };
  provision = rustPlatform.buildRustPackage (common // {
    pname = "cairn-provision";
    cargoBuildFlags = [ "-p" "provision" ];
    cargoTestFlags = common.cargoTestFlags ++ [ "-p" "provision" ];
    meta = common.meta // { description = "Cairn provisioner: one cluster.yaml to every artifact"; mainProgram = "provision"; };
  });
in
rustPlatform.buildRustPackage (common // {
  pname = "cairn";
  cargoBuildFlags = [ "-p" "cairn-node" ];
  cargoTestFlags = common.cargoTestFlags ++ [ "-p" "cairn-node" ];
  passthru = { inherit provision; };
  meta = common.meta // { description = "Raft-replicated key-value server speaking the etcd v3 API"; mainProgram = "cairn"; };
})
