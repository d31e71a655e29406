//! Durable Raft storage: the log ([`log`] over the write-ahead log [`wal`]; vote and identity on redb), the state machine over the mvcc store
//! ([`state_machine`]) and its snapshot file ([`snapshot`]).

pub mod data_dir;
pub mod log;
pub mod log_writer;
pub mod snapshot;
pub mod state_machine;
pub mod wal;
mod wal_format;

#[cfg(test)]
mod suite_test;
