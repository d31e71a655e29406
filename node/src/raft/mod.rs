//! Raft plumbing: type config, peer client, peer server.
pub mod types;
