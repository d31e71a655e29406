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
    use crate::raft::types::{Command, CommandResponse};
    use crate::storage::log::{decode, encode};

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
    fn entries_and_replies_from_before_batching_still_decode() {
        // A Put as members wrote it before `Command::Batch` existed: {"Put": bin "x"}.
        let old_put = [0x81, 0xa3, b'P', b'u', b't', 0xc4, 0x01, b'x'];
        assert_eq!(
            decode::<Command>(&old_put).unwrap(),
            Command::Put(b"x".to_vec())
        );
        assert_eq!(encode(&Command::Put(b"x".to_vec())).unwrap(), old_put);
        // A reply without the `batch` field (an older leader's) reads as an unbatched response.
        #[derive(serde::Serialize)]
        struct OldResponse {
            revision: i64,
            #[serde(with = "crate::codec::bytes")]
            body: Vec<u8>,
            error: Option<crate::mvcc::MvccError>,
        }
        let old = OldResponse {
            revision: 3,
            body: b"r".to_vec(),
            error: None,
        };
        let back: CommandResponse = decode(&encode(&old).unwrap()).unwrap();
        assert_eq!(
            (back.revision, back.body, back.batch),
            (3, b"r".to_vec(), vec![])
        );
        let batch = Command::Batch(vec![
            Command::Put(b"x".to_vec()),
            Command::LeaseRevoke { id: 1 },
        ]);
        assert_eq!(decode::<Command>(&encode(&batch).unwrap()).unwrap(), batch);
    }
}
