//! The harness shared by the system tests, the benchmark and the chaos harness: one cluster launcher,
//! one PKI, free ports, etcdctl and etcd-client access, and the system tests' other tools.

pub mod apiserver;
pub mod apply;
pub mod base64;
pub mod cluster;
pub mod docker;
pub mod etcdctl;
pub mod fixture;
pub mod grpc;
pub mod hosts;
pub mod https;
pub mod named;
pub mod netns;
pub mod pause;
pub mod pki;
pub mod ports;
pub mod provision;
pub mod release;
pub mod slow_disk;
pub mod spec_fuzz;
pub mod srv_cluster;
pub mod srv_etcdctl;
pub mod tls_probe;
pub mod tmpfs;
pub mod token_call;
pub mod tools;
pub mod wait;
pub mod workspace;
pub mod writer;
