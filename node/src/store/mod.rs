//! Durable Raft storage: the log and vote on redb ([`log`]), the state machine over the mvcc store
//! ([`state_machine`]) and its snapshot file ([`snapshot`]).

pub mod log;
pub mod snapshot;
pub mod state_machine;

#[cfg(test)]
mod suite_test;
