//! The store's snapshot encoding: MessagePack of the replicated state with every value inline.
//!
//! The layout is the one snapshots had when values were kept in memory (the derived encoding of
//! [`Owned`]), so snapshot files and snapshots sent by members of either build read the same. Writing
//! streams the values out of the value file one at a time instead of building an owned copy.

use std::collections::BTreeMap;

use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};

use super::auth::AuthState;
use super::keyspace::{Keyspace, Rev, Version};
use super::lease::Lease;
use super::{MvccError, State};

/// The state as a snapshot holds it.
#[derive(Serialize, Deserialize)]
pub(super) struct Owned {
    keys: OwnedKeys,
    revision: i64,
    compact_revision: i64,
    leases: BTreeMap<i64, Lease>,
    auth: AuthState,
}

#[derive(Serialize, Deserialize)]
struct OwnedKeys {
    keys: BTreeMap<Vec<u8>, Vec<OwnedVersion>>,
}

#[derive(Serialize, Deserialize)]
struct OwnedVersion {
    rev: Rev,
    create: i64,
    version: i64,
    lease: i64,
    value: Vec<u8>,
    tombstone: bool,
}

/// Encode `st` in the [`Owned`] layout.
pub(super) fn encode(st: &State) -> Result<Vec<u8>, MvccError> {
    let view = StateView {
        keys: KeysView {
            keys: VersionsByKey(&st.keys),
        },
        revision: st.revision,
        compact_revision: st.compact_revision,
        leases: &st.leases,
        auth: &st.auth,
    };
    rmp_serde::to_vec(&view).map_err(|e| MvccError::Storage(format!("encoding a snapshot: {e}")))
}

/// Replace `st`'s keys, revisions and leases with a snapshot's.
pub(super) fn decode_into(st: &mut State, bytes: &[u8]) -> Result<(), MvccError> {
    let owned: Owned = rmp_serde::from_slice(bytes)
        .map_err(|e| MvccError::Malformed(format!("store snapshot: {e}")))?;
    st.keys.clear();
    for (key, versions) in owned.keys.keys {
        let vs = versions
            .into_iter()
            .map(|v| {
                let meta = Version {
                    rev: v.rev,
                    create: v.create,
                    version: v.version,
                    lease: v.lease,
                    value: Default::default(),
                    tombstone: v.tombstone,
                };
                (meta, v.value)
            })
            .collect();
        st.keys.load(key, vs);
    }
    st.revision = owned.revision;
    st.compact_revision = owned.compact_revision;
    st.leases = owned.leases;
    st.auth = owned.auth;
    Ok(())
}

// Borrowed twins of the owned types; field names and order must match them.
#[derive(Serialize)]
struct StateView<'a> {
    keys: KeysView<'a>,
    revision: i64,
    compact_revision: i64,
    leases: &'a BTreeMap<i64, Lease>,
    auth: &'a AuthState,
}

#[derive(Serialize)]
struct KeysView<'a> {
    keys: VersionsByKey<'a>,
}

#[derive(Serialize)]
struct VersionView<'a> {
    rev: Rev,
    create: i64,
    version: i64,
    lease: i64,
    value: &'a [u8],
    tombstone: bool,
}

struct VersionsByKey<'a>(&'a Keyspace);

struct Versions<'a> {
    keys: &'a Keyspace,
    versions: &'a [Version],
}

impl Serialize for VersionsByKey<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A known length: without one the encoder would buffer the whole map.
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (key, versions) in self.0.iter() {
            map.serialize_entry(
                key,
                &Versions {
                    keys: self.0,
                    versions,
                },
            )?;
        }
        map.end()
    }
}

impl Serialize for Versions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.versions.len()))?;
        for v in self.versions {
            let value = self.keys.value(v).map_err(S::Error::custom)?;
            seq.serialize_element(&VersionView {
                rev: v.rev,
                create: v.create,
                version: v.version,
                lease: v.lease,
                value: &value,
                tombstone: v.tombstone,
            })?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streamed_encoding_is_the_owned_layout() {
        let mut st = State::default();
        for (key, value, rev) in [("a", "1", 2), ("a", "22", 3), ("b", "", 4)] {
            let value = st.keys.store_value(value.as_bytes());
            st.keys.push(
                key.as_bytes(),
                Version {
                    rev: Rev { main: rev, sub: 0 },
                    create: 2,
                    version: 1,
                    lease: 0,
                    value,
                    tombstone: false,
                },
            );
        }
        st.revision = 4;
        st.leases.insert(7, Lease::new(30));
        let streamed = encode(&st).expect("encode");
        let version = |main, value: &str| OwnedVersion {
            rev: Rev { main, sub: 0 },
            create: 2,
            version: 1,
            lease: 0,
            value: value.as_bytes().to_vec(),
            tombstone: false,
        };
        let owned = Owned {
            keys: OwnedKeys {
                keys: BTreeMap::from([
                    (b"a".to_vec(), vec![version(2, "1"), version(3, "22")]),
                    (b"b".to_vec(), vec![version(4, "")]),
                ]),
            },
            revision: 4,
            compact_revision: 0,
            leases: st.leases.clone(),
            auth: AuthState::default(),
        };
        assert_eq!(streamed, rmp_serde::to_vec(&owned).expect("owned"));
    }
}
