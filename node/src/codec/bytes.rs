//! `#[serde(with = "crate::codec::bytes")]` for `Vec<u8>` fields: serialized as a byte string (MessagePack
//! `bin`) instead of a sequence of integers, which would take up to twice the space in the Raft log.

use serde::de::{Error, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

/// Serialize as bytes.
pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(v)
}

/// Deserialize from bytes (or, for data written as a sequence, from that).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    d.deserialize_byte_buf(BytesVisitor)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(b) = seq.next_element()? {
            out.push(b);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::codec::{decode, encode};
    use crate::mvcc::{Command, CommandResponse};

    #[test]
    fn payloads_are_stored_as_byte_strings_and_round_trip() {
        let payload = vec![0xffu8; 1000];
        let cmd = Command::Put(payload.clone());
        let bytes = encode(&cmd).unwrap();
        assert!(
            bytes.len() < 1100,
            "{} bytes for a 1000-byte payload",
            bytes.len()
        );
        assert_eq!(decode::<Command>(&bytes).unwrap(), cmd);
        let resp = CommandResponse {
            revision: 7,
            body: payload,
            ..Default::default()
        };
        assert_eq!(
            decode::<CommandResponse>(&encode(&resp).unwrap()).unwrap(),
            resp
        );
    }

    #[test]
    fn openraft_entries_round_trip() {
        use openraft::{Entry, EntryPayload, LogId, Membership};
        let normal = Entry::<crate::raft::types::TypeConfig> {
            log_id: LogId::new(openraft::CommittedLeaderId::new(3, 9), 42),
            payload: EntryPayload::Normal(Command::LeaseGrant { id: 5, ttl: 10 }),
        };
        let back: Entry<crate::raft::types::TypeConfig> =
            decode(&encode(&normal).unwrap()).unwrap();
        assert_eq!(back.log_id, normal.log_id);
        assert!(matches!(
            back.payload,
            EntryPayload::Normal(Command::LeaseGrant { id: 5, ttl: 10 })
        ));
        let m = Membership::<u64, crate::raft::types::PeerNode>::new(
            vec![[1u64, 2].into_iter().collect()],
            None,
        );
        let mem = Entry::<crate::raft::types::TypeConfig> {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Membership(m.clone()),
        };
        let back: Entry<crate::raft::types::TypeConfig> = decode(&encode(&mem).unwrap()).unwrap();
        assert!(matches!(back.payload, EntryPayload::Membership(x) if x == m));
    }

    #[test]
    fn batches_round_trip() {
        let batch = Command::Batch(vec![
            Command::Put(b"x".to_vec()),
            Command::LeaseRevoke { id: 1 },
        ]);
        assert_eq!(decode::<Command>(&encode(&batch).unwrap()).unwrap(), batch);
    }
}
