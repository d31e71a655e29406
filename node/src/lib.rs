//! Cairn node: an etcd-v3-compatible key-value server replicated with openraft and stored in redb.

pub mod api;
pub mod bbolt;
pub mod blocking;
pub mod bootstrap;
pub mod codec;
pub mod config;
pub mod direct_write;
pub mod dns;
pub mod etcd_db;
pub mod http;
pub mod member;
pub mod metrics;
pub mod mvcc;
pub mod raft;
pub mod server;
pub mod snapshot_cmd;
pub mod storage;
pub mod tls;
pub mod writeback;
