//! Multi-version key-value store with etcd semantics: revisions, key index, compaction, leases, watch hub.
//! No Raft; etcd's prost messages are used as plain data. The only I/O is the value file
//! ([`values`]), a cache that is rebuilt with the store.
//!
//! The replicated part ([`State`]) changes only through [`Store::apply`], deterministically, so every
//! member that applies the same log holds the same state. The watch hub is member-local and never
//! serialized; lease expiry deadlines are the member's lessor's.

pub mod alarm;
pub mod auth;
pub mod authorize;
mod command;
mod error;
mod index_codec;
mod keyspace;
mod lease;
mod records;
mod retention;
mod snapshot;
#[cfg(test)]
mod tests;
mod txn;
mod values;
mod watch;
mod write;

pub use command::{Command, CommandResponse};
pub use error::MvccError;
pub use keyspace::{KeyRange, WalkStep};
pub use lease::LeaseInfo;
#[cfg(test)]
pub use records::test_writes;
pub use records::{Importer, Record};
pub use retention::{ByRevision, Periodic, Retention, REVISION_CHECK};
pub use snapshot::{Capture, Sections};
pub use watch::{Behind, CatchUp, WatchBatch, WatchFeed, WatchId, WatchSpec, WatchStart};

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbDeleteRequest, PbEvent, PbPutRequest,
    PbRangeRequest, PbRangeResponse, PbTxnRequest,
};
use prost::Message;

use keyspace::{Keyspace, Version};
use lease::Lease;

/// The store shared between the state machine (writer) and the API services (readers, watchers).
pub type SharedStore = Arc<RwLock<Store>>;

/// Reads inside a write see the writes made before them in the same command.
const LATEST: i64 = i64::MAX;

/// The replicated state: what snapshots carry.
#[derive(Debug, Default)]
struct State {
    keys: Keyspace,
    revision: i64,
    compact_revision: i64,
    leases: BTreeMap<i64, Lease>,
    auth: auth::AuthState,
}

/// The whole key-value state of one member.
#[derive(Debug, Default)]
pub struct Store {
    state: State,
    hub: watch::Hub,
    /// This member's simple auth tokens (member-local, like the watch hub).
    tokens: auth::Tokens,
    /// Raised alarms (replicated; carried in snapshots beside the state, see `alarm`).
    alarms: alarm::Alarms,
}

/// The writes of one command: they share one main revision, ordered by sub-revision.
struct Write<'a> {
    st: &'a mut State,
    rev: i64,
    sub: u32,
    /// Whether anyone watches: events (copies of keys and values) are built only then.
    emit: bool,
    events: Vec<PbEvent>,
}

impl Store {
    /// An empty store at revision 1 (etcd starts at 1), its value file in the system's temp dir.
    pub fn new() -> Self {
        let mut s = Store::default();
        s.state.revision = 1;
        s
    }

    /// An empty store at revision 1 whose value file is made in `dir` (the member's data dir).
    pub fn in_dir(dir: std::path::PathBuf) -> Self {
        let mut s = Store::new();
        s.state.keys = Keyspace::in_dir(dir);
        s
    }

    /// Bytes in the value file, garbage included (part of Status.dbSize).
    pub fn value_bytes(&self) -> u64 {
        self.state.keys.value_bytes()
    }

    /// Of [`Store::value_bytes`], those read from the snapshot file `current` names, when the store's
    /// values start in that very file (not in an older snapshot that was replaced since): counted
    /// with the snapshot file already.
    pub fn value_bytes_in(&self, current: &std::path::Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let Some((base, len)) = self.state.keys.value_base() else {
            return 0;
        };
        match (base.metadata(), std::fs::metadata(current)) {
            (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino() => len,
            _ => 0,
        }
    }

    /// Bytes in the value file that kept versions refer to (part of Status.dbSizeInUse).
    pub fn live_value_bytes(&self) -> u64 {
        self.state.keys.live_value_bytes()
    }

    /// Whether a value-file rewrite started by a compaction is under way (its file not yet used).
    pub fn value_rewrite_running(&self) -> bool {
        self.state.keys.value_rewrite_running()
    }

    /// Wait for a value-file rewrite started by a compaction, and use its file.
    #[cfg(test)]
    pub fn finish_value_rewrite(&mut self) {
        self.state.keys.finish_rewrite();
    }

    /// Whether a compaction has keys left to compact (see [`Store::walk_step`]).
    pub fn compacting(&self) -> bool {
        self.state.keys.compacting()
    }

    /// Whether [`Store::walk_step`] has work: a walk over the keys under way, or a rewritten value
    /// file to swap in (which starts one).
    pub fn walk_pending(&self) -> bool {
        self.state.keys.walking() || self.state.keys.value_rewrite_ready()
    }

    /// Carry the walk over the keys on for about `budget` (a slice of them), first swapping in a
    /// rewritten value file if one is ready. A compaction is recorded when applied, and reads
    /// already answer as if it were done; the walk frees the memory and values of the versions it
    /// dropped, and repoints references into a rewritten file, a few ms of the store's lock at a
    /// time.
    pub fn walk_step(&mut self, budget: std::time::Duration) -> WalkStep {
        self.state.keys.swap_rewritten_values();
        self.state.keys.walk_step(budget)
    }

    /// Carry the walk under way out to its end.
    pub fn finish_walk(&mut self) {
        self.state.keys.finish_walk();
    }

    /// The first I/O error of the value file, if any. The state machine stops applying on it: a
    /// member that carried on without a value would diverge from the others.
    pub fn failure(&self) -> Option<&str> {
        self.state.keys.failure()
    }

    /// Apply one committed command. Deterministic: the same commands in the same order give the same
    /// state and responses on every member. Notifies watchers of the resulting events.
    pub fn apply(&mut self, cmd: &Command) -> CommandResponse {
        self.state.keys.swap_rewritten_values();
        let Command::Batch(cmds) = cmd else {
            return self.apply_one(cmd);
        };
        // Each command of a batch is applied as if it were an entry of its own.
        let batch = cmds.iter().map(|c| self.apply(c)).collect();
        CommandResponse {
            revision: self.state.revision,
            batch,
            ..Default::default()
        }
    }

    fn apply_one(&mut self, cmd: &Command) -> CommandResponse {
        let (cmd, by) = cmd.unwrapped();
        // etcd's auth applier comes first: a refused request is refused whatever the alarms say.
        let authorized = by.map_or(Ok(()), |by| authorize::at_apply(&self.state, by, cmd));
        if let Some(e) = authorized.err().or_else(|| self.refused_by_alarm(cmd)) {
            return CommandResponse {
                revision: self.state.revision,
                error: Some(e),
                ..Default::default()
            };
        }
        if let Command::Alarm {
            action,
            member_id,
            alarm,
        } = cmd
        {
            return CommandResponse {
                revision: self.state.revision,
                body: self.apply_alarm(*action, *member_id, *alarm),
                ..Default::default()
            };
        }
        let rev = self.state.revision + 1;
        let mut w = Write {
            st: &mut self.state,
            rev,
            sub: 0,
            emit: !self.hub.is_empty(),
            events: Vec::new(),
        };
        let body = match cmd {
            Command::Put(b) => decode::<PbPutRequest>(b)
                .and_then(|r| w.put(&r))
                .map(|r| r.encode_to_vec()),
            Command::DeleteRange(b) => decode::<PbDeleteRequest>(b)
                .map(|r| w.delete_range(&r))
                .map(|r| r.encode_to_vec()),
            Command::Txn(b) => decode::<PbTxnRequest>(b)
                .and_then(|r| w.txn(&r))
                .map(|r| r.encode_to_vec()),
            Command::Compact(b) => decode::<PbCompactionRequest>(b)
                .and_then(|r| w.st.compact(r.revision))
                .map(|r| r.encode_to_vec()),
            Command::LeaseGrant { id, ttl } => w.lease_grant(*id, *ttl).map(|r| r.encode_to_vec()),
            Command::LeaseRevoke { id } => w.lease_revoke(*id).map(|r| r.encode_to_vec()),
            Command::Auth(c) => {
                w.st.auth
                    .apply(c, &self.tokens)
                    .map(|()| Vec::new())
                    .map_err(MvccError::Auth)
            }
            // Member attributes live beside the store (the state machine keeps them); batches are
            // taken apart by `apply`, requesters above.
            Command::PublishMember { .. }
            | Command::Batch(_)
            | Command::Alarm { .. }
            | Command::Authorized { .. } => Ok(Vec::new()),
        };
        let (wrote, events) = (w.sub > 0, w.events);
        if wrote {
            self.state.revision = rev;
            if !events.is_empty() {
                self.hub.notify(rev, &events);
            }
        }
        match body {
            Ok(body) => CommandResponse {
                revision: self.state.revision,
                body,
                ..Default::default()
            },
            Err(e) => CommandResponse {
                revision: self.state.revision,
                error: Some(e),
                ..Default::default()
            },
        }
    }

    /// Capture the replicated state (keys with history since compaction, leases, users) for a
    /// snapshot: the key index now, encoded and its values read by [`Capture::write_to`] without
    /// this lock.
    pub fn capture(&self) -> Capture {
        snapshot::capture(&self.state)
    }

    /// Replace the state with the snapshot whose store sections [`Capture::write_to`] wrote to
    /// `file`; its values are read from there when needed. Existing watchers stay subscribed and
    /// catch up through the new state's history (canceled if it was compacted).
    pub fn restore_from(
        &mut self,
        file: Arc<std::fs::File>,
        path: &std::path::Path,
        sections: &Sections,
    ) -> Result<(), MvccError> {
        snapshot::restore(&mut self.state, file, path, sections)?;
        self.hub.state_replaced();
        Ok(())
    }

    /// Make `into` a copy of this store through a snapshot file.
    #[cfg(test)]
    pub fn copy_into(&self, into: &mut Store) -> Result<(), MvccError> {
        let mut f = tempfile::tempfile().map_err(|e| MvccError::Storage(e.to_string()))?;
        let s = self
            .capture()
            .write_to(&mut f)
            .map_err(|e| MvccError::Storage(e.to_string()))?;
        into.restore_from(Arc::new(f), std::path::Path::new("a temp file"), &s)
    }

    /// The replicated users, roles and permissions.
    pub fn auth(&self) -> &auth::AuthState {
        &self.state.auth
    }

    /// This member's simple tokens.
    pub fn tokens(&self) -> &auth::Tokens {
        &self.tokens
    }

    /// The current revision.
    pub fn revision(&self) -> i64 {
        self.state.revision
    }

    /// The revision of the last compaction (0 if none).
    pub fn compact_revision(&self) -> i64 {
        self.state.compact_revision
    }

    /// Number of live keys (for `etcd_debugging_mvcc_keys_total`).
    pub fn key_count(&self) -> usize {
        self.state.keys.live_keys()
    }

    /// etcd's Range, without header. Serves reads; the caller decides linearizability.
    pub fn range(&self, req: &PbRangeRequest) -> Result<PbRangeResponse, MvccError> {
        self.state.range(req, self.state.revision)
    }

    /// A hash of every retained version at or below `rev` (0 = current), equal on members with the
    /// same history: returns (hash, compact revision, hashed revision).
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64), MvccError> {
        let rev = self.state.check_read_rev(rev)?;
        let mut h = crc32fast::Hasher::new();
        for (k, v) in self
            .state
            .keys
            .all_versions()
            .filter(|(_, v)| v.rev.main <= rev)
        {
            h.update(k);
            for n in [
                v.rev.main,
                i64::from(v.rev.sub),
                v.create,
                v.version,
                v.lease,
            ] {
                h.update(&n.to_be_bytes());
            }
            h.update(&[u8::from(v.tombstone)]);
            h.update(&self.state.keys.value(v)?);
        }
        Ok((h.finalize(), self.state.compact_revision, rev))
    }

    /// A hash of the whole replicated state, for Maintenance.Hash (etcd hashes its backend file): every
    /// retained key version (as HashKV), the compaction and current revisions, the leases and the
    /// alarms. Equal on members that applied the same log.
    pub fn hash(&self) -> Result<u32, MvccError> {
        let (kv, compacted, rev) = self.hash_kv(0)?;
        let mut h = crc32fast::Hasher::new();
        for n in [i64::from(kv), compacted, rev] {
            h.update(&n.to_be_bytes());
        }
        for (id, ttl) in self.lease_ttls() {
            h.update(&id.to_be_bytes());
            h.update(&ttl.to_be_bytes());
        }
        for (member, alarm) in &self.alarms {
            h.update(&member.to_be_bytes());
            h.update(&alarm.to_be_bytes());
        }
        Ok(h.finalize())
    }
}

fn decode<M: Message + Default>(b: &[u8]) -> Result<M, MvccError> {
    M::decode(b).map_err(|e| MvccError::Malformed(e.to_string()))
}

impl State {
    fn check_read_rev(&self, rev: i64) -> Result<i64, MvccError> {
        if rev <= 0 {
            return Ok(self.revision);
        }
        if rev > self.revision {
            return Err(MvccError::FutureRevision);
        }
        if rev < self.compact_revision {
            return Err(MvccError::Compacted);
        }
        Ok(rev)
    }

    /// Range at the request's revision, or at `latest` when it asks for none.
    fn range(&self, req: &PbRangeRequest, latest: i64) -> Result<PbRangeResponse, MvccError> {
        let at = if req.revision > 0 {
            self.check_read_rev(req.revision)?
        } else {
            latest
        };
        let range = KeyRange::new(&req.key, &req.range_end);
        // etcd sorts ascending by the target when one other than the key is named without an order.
        let order = match (req.sort_order, req.sort_target) {
            (0, t) if t != 0 => 1,
            (o, _) => o,
        };
        let needs_sort = order != 0 && !(order == 1 && req.sort_target == 0);
        let mut count = 0i64;
        // Without a sort, the keys past the limit are only counted: one more than the limit is
        // enough to know there are more. (A 10k-key answer over a million keys held a million
        // entries here, 16 MiB, before it was cut to the limit.)
        let enough = match usize::try_from(req.limit) {
            Ok(l) if l > 0 && !needs_sort => l.saturating_add(1),
            _ => usize::MAX,
        };
        let mut picked: Vec<(&[u8], &Version)> = Vec::new();
        for (k, v) in self.keys.range_at(range, at) {
            count += 1;
            if req.count_only || picked.len() >= enough {
                continue;
            }
            let keep = (req.min_mod_revision == 0 || v.rev.main >= req.min_mod_revision)
                && (req.max_mod_revision == 0 || v.rev.main <= req.max_mod_revision)
                && (req.min_create_revision == 0 || v.create >= req.min_create_revision)
                && (req.max_create_revision == 0 || v.create <= req.max_create_revision);
            if keep {
                picked.push((k, v));
            }
        }
        // Sorting by value reads each value once, up front.
        let values: Vec<Vec<u8>> = if needs_sort && req.sort_target == 4 {
            picked
                .iter()
                .map(|(_, v)| self.keys.value(v))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        if needs_sort {
            let mut order_of: Vec<usize> = (0..picked.len()).collect();
            order_of.sort_by(|&i, &j| {
                let (a, b) = (&picked[i], &picked[j]);
                let o = match req.sort_target {
                    1 => a.1.version.cmp(&b.1.version),
                    2 => a.1.create.cmp(&b.1.create),
                    3 => a.1.rev.main.cmp(&b.1.rev.main),
                    4 => values[i].cmp(&values[j]),
                    _ => a.0.cmp(b.0),
                };
                if order == 2 {
                    o.reverse()
                } else {
                    o
                }
            });
            picked = order_of.into_iter().map(|i| picked[i]).collect();
        }
        let more = req.limit > 0 && picked.len() as i64 > req.limit;
        if more {
            picked.truncate(req.limit as usize);
        }
        let kvs = picked
            .into_iter()
            .map(|(k, v)| {
                if req.keys_only {
                    Ok(v.kv_with(k, Vec::new()))
                } else {
                    self.keys.kv(k, v)
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(PbRangeResponse {
            header: None,
            kvs,
            more,
            count,
        })
    }

    fn compact(&mut self, rev: i64) -> Result<PbCompactionResponse, MvccError> {
        if rev <= self.compact_revision {
            return Err(MvccError::Compacted);
        }
        if rev > self.revision {
            return Err(MvccError::FutureRevision);
        }
        self.keys.compact(rev);
        self.compact_revision = rev;
        Ok(PbCompactionResponse::default())
    }
}
