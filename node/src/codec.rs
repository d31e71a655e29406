//! MessagePack encoding shared by the Raft log, the peer wire and snapshots.

pub mod bytes;
