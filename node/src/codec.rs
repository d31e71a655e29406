//! MessagePack encoding shared by the Raft log, the peer wire and snapshots.

pub mod bytes;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Serialize with field names (MessagePack maps): openraft types use serde attributes that positional
/// formats mishandle.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(v)
}

/// Inverse of [`encode`].
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(b)
}
