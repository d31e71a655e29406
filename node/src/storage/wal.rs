//! The Raft log as an append-only write-ahead log: preallocated segment files of checksummed records,
//! one `write` and one `fdatasync` per append.
//!
//! Why not redb for the log (it keeps the vote and identity, see log.rs): a redb commit rewrites the
//! B-tree pages on the path to the new row plus its allocator state and header, several pages at
//! scattered offsets, and that `fdatasync` took 1.3 ms on average here against 0.23 ms for a 4 KiB
//! append; the log is on the critical path of every write twice (leader, then follower). etcd's WAL
//! is built the same way for the same reason.
//!
//! Layout: `DIR/{seq:016x}.wal`, each preallocated to [`SEGMENT_BYTES`] (so `fdatasync` has no file
//! size to update) and created whole under a temporary name, then renamed. A segment starts with a
//! header: `CAIRNWAL`, the format version (u32), CRC32 of both; a segment of another version is
//! refused (no migration before 1.0). Then come appends, one per `append`/`truncate` call: an append
//! header record holding the length of what follows, then the records. A record is
//! `len u32 | crc32 u32 | kind u8 | payload` (little endian; the CRC covers kind and payload). Kinds:
//! an entry (MessagePack), the committed log id (written with the entries, like etcd's HardState), a
//! truncation point. Zeros follow the last append.
//!
//! Recovery reads every segment in order and applies an append only when all of it checks out; an
//! entry whose index is at or below the last one replaces it and everything after it (as a truncation
//! does). Acknowledgement follows the `fdatasync`, so only the last append can be incomplete, and an
//! incomplete append is the torn tail of a crash only when all of this holds: it is in the last
//! segment; nothing but zeros follows what it covers (or, when its header is unreadable, no other
//! append header follows it); and part of it was never written (a sector-aligned piece of it reads
//! as zeros, as etcd's WAL also requires, or it runs past the end of the file). Such a tail is
//! dropped, logged and zeroed. Anything else is corruption: the member refuses to start, naming the
//! file and offset, because dropping the rest would silently lose acknowledged entries.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use openraft::{Entry, LogId};

use crate::codec::{decode, encode};
use crate::raft::types::{NodeId, TypeConfig};
use crate::storage::wal_format::{
    self as format, record, HeaderError, Step, Verdict, HEADER, KIND_COMMITTED, KIND_ENTRY,
    KIND_TRUNCATE, MAGIC, SEGMENT_HEADER, WAL_VERSION,
};

/// Size each segment is preallocated to; a new segment starts when a write would pass it.
pub const SEGMENT_BYTES: u64 = 16 << 20;

/// How to get a member whose WAL cannot be read back into the cluster.
const RECOVERY: &str = "this member's log cannot be trusted; remove the member and add it back \
    with an empty data dir (`etcdctl member remove ID`, `etcdctl member add NAME --peer-urls=...`, then \
    start it with --initial-cluster-state existing), or restore the cluster from a snapshot";

/// A WAL failure, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An I/O error on a WAL file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A record that does not check out where one must (not the torn tail of the last segment).
    #[error("{path}: corrupt WAL record at offset {offset}: {why}; {RECOVERY}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Byte offset of the record.
        offset: u64,
        /// What is wrong with it.
        why: String,
    },
    /// An entry that does not encode or decode.
    #[error("{path}: {why}")]
    Codec {
        /// The segment.
        path: PathBuf,
        /// What failed.
        why: String,
    },
    /// A segment without a valid header (a WAL from before format versions, or a damaged file).
    #[error(
        "{path}: not a cairn WAL segment of any known format (no valid {} header); \
        a WAL written before format versions existed is not migrated (pre-1.0); {RECOVERY}",
        String::from_utf8_lossy(MAGIC)
    )]
    NotASegment {
        /// The segment.
        path: PathBuf,
    },
    /// A segment written in another format version.
    #[error(
        "{path}: WAL format version {found}, this cairn reads version {WAL_VERSION} only \
        (formats are not migrated before 1.0); run the cairn that wrote it, or: {RECOVERY}"
    )]
    Version {
        /// The segment.
        path: PathBuf,
        /// The version its header names.
        found: u32,
    },
    /// An earlier write or sync failed; what reached the disk is unknown until the WAL is read again.
    #[error("{path}: an earlier WAL write failed ({why}); the member must restart to recover")]
    Failed {
        /// The segment.
        path: PathBuf,
        /// The first failure.
        why: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where an entry's record is.
#[derive(Debug, Clone, Copy)]
struct Loc {
    log_id: LogId<NodeId>,
    seq: u64,
    /// Offset of the payload (after the header).
    offset: u64,
    len: u32,
}

struct Segment {
    path: PathBuf,
    file: File,
    /// Highest entry index written to this segment.
    last_index: Option<u64>,
}

/// The write-ahead log of one member.
pub struct Wal {
    dir: PathBuf,
    segments: BTreeMap<u64, Segment>,
    index: BTreeMap<u64, Loc>,
    committed: Option<LogId<NodeId>>,
    /// The segment written now and where its next append goes.
    tail_seq: u64,
    tail_offset: u64,
    /// The first write or sync failure: after it the file's contents are unknown (a failed
    /// `fdatasync` may have dropped the pages it could not write), so nothing more is written.
    failed: Option<String>,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.wal"))
}

/// Make the directory entry of a new or removed file durable.
fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Reserve the segment's blocks now, so appends do not change its size and cannot run out of space.
fn preallocate(file: &File, path: &Path) -> Result<(), WalError> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, SEGMENT_BYTES as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        // File systems without fallocate: a sparse file still works, each append then also syncs
        // its size. Any other failure (a full disk above all) is an error, not a sparse file that
        // would fail later in the middle of an append.
        Some(libc::EOPNOTSUPP | libc::ENOSYS) => file.set_len(SEGMENT_BYTES).map_err(io(path)),
        _ => Err(io(path)(e)),
    }
}

impl Wal {
    /// Open the WAL in `dir` (created if missing), replaying every segment.
    pub fn open(dir: &Path) -> Result<Wal, WalError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut seqs = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io(dir))? {
            let e = e.map_err(io(dir))?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".wal.tmp") {
                // A segment whose creation a crash cut short; it never held anything.
                std::fs::remove_file(e.path()).map_err(io(&e.path()))?;
            } else if let Some(hex) = name.strip_suffix(".wal") {
                if let Ok(seq) = u64::from_str_radix(hex, 16) {
                    seqs.push(seq);
                }
            }
        }
        seqs.sort_unstable();
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            segments: BTreeMap::new(),
            index: BTreeMap::new(),
            committed: None,
            tail_seq: 0,
            tail_offset: 0,
            failed: None,
        };
        // Purges delete segments from the front only, so the numbers left are consecutive.
        if let Some(w) = seqs.windows(2).find(|w| w[1] != w[0] + 1) {
            return Err(WalError::Corrupt {
                path: segment_path(dir, w[0] + 1),
                offset: 0,
                why: format!(
                    "the segment is missing (segments {:x} and {:x} exist)",
                    w[0], w[1]
                ),
            });
        }
        let n = seqs.len();
        for (i, seq) in seqs.into_iter().enumerate() {
            wal.replay(seq, i + 1 == n)?;
        }
        if wal.segments.is_empty() {
            wal.new_segment(0)?;
        }
        Ok(wal)
    }

    fn replay(&mut self, seq: u64, last: bool) -> Result<(), WalError> {
        let path = segment_path(&self.dir, seq);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut data = Vec::new();
        (&file).read_to_end(&mut data).map_err(io(&path))?;
        match format::check_header(&data) {
            Ok(()) => {}
            Err(HeaderError::Missing) => return Err(WalError::NotASegment { path }),
            Err(HeaderError::Version(found)) => return Err(WalError::Version { path, found }),
        }
        // Every segment is created at its full size, so a shorter one was cut: what it lost may
        // have been acknowledged.
        if (data.len() as u64) < SEGMENT_BYTES {
            return Err(WalError::Corrupt {
                path,
                offset: data.len() as u64,
                why: format!(
                    "the segment is {} bytes, shorter than the {SEGMENT_BYTES} every segment is \
                     created with: it was truncated",
                    data.len()
                ),
            });
        }
        let mut seg = Segment {
            path: path.clone(),
            file,
            last_index: None,
        };
        let mut off = SEGMENT_HEADER;
        loop {
            match format::next_append(&data, off) {
                Step::Append(records, end) => {
                    for r in records {
                        self.apply_record(seq, &mut seg, r)?;
                    }
                    off = end;
                }
                Step::End => break,
                Step::Bad(bad) => {
                    let append_at = bad.append_at;
                    match format::judge(&data, bad, last) {
                        Verdict::Corrupt { offset, why } => {
                            return Err(WalError::Corrupt {
                                path,
                                offset: offset as u64,
                                why,
                            })
                        }
                        Verdict::Torn { until } => {
                            // An append never acknowledged (acknowledgement follows its fdatasync):
                            // zero it so no stale byte can later be read as part of a new append.
                            tracing::warn!(
                                "{}: dropping an incomplete append of {} bytes at offset {append_at} \
                                 (a write cut short by a crash; it was never acknowledged)",
                                path.display(),
                                until - append_at
                            );
                            seg.file
                                .write_all_at(&vec![0u8; until - append_at], append_at as u64)
                                .and_then(|()| seg.file.sync_data())
                                .map_err(io(&path))?;
                            break;
                        }
                    }
                }
            }
        }
        self.segments.insert(seq, seg);
        self.tail_seq = seq;
        self.tail_offset = off as u64;
        Ok(())
    }

    /// Apply one record of an append that checked out.
    fn apply_record(
        &mut self,
        seq: u64,
        seg: &mut Segment,
        r: format::Record<'_>,
    ) -> Result<(), WalError> {
        let codec = |e: String| WalError::Codec {
            path: seg.path.clone(),
            why: format!("record at offset {}: {e}", r.at),
        };
        match r.kind {
            KIND_ENTRY => {
                let e: Entry<TypeConfig> = decode(r.payload).map_err(|e| codec(e.to_string()))?;
                self.place(Loc {
                    log_id: e.log_id,
                    seq,
                    offset: (r.at + HEADER) as u64,
                    len: r.payload.len() as u32,
                });
                seg.last_index = Some(e.log_id.index);
            }
            KIND_COMMITTED => {
                self.committed = decode(r.payload).map_err(|e| codec(e.to_string()))?;
            }
            KIND_TRUNCATE => {
                let at: [u8; 8] = r
                    .payload
                    .try_into()
                    .map_err(|_| codec("truncation record is not 8 bytes".into()))?;
                self.index.split_off(&u64::from_le_bytes(at));
            }
            k => return Err(codec(format!("unknown record kind {k}"))),
        }
        Ok(())
    }

    /// Index an entry record: one at or below the last index replaces it and all after it.
    fn place(&mut self, loc: Loc) {
        let index = loc.log_id.index;
        self.index.split_off(&index);
        if self
            .index
            .last_key_value()
            .is_some_and(|(&last, _)| last + 1 != index)
        {
            // A gap: what came before was purged under a snapshot (openraft continues the log after
            // the snapshot's index); it can never be read again.
            self.index.clear();
        }
        self.index.insert(index, loc);
    }

    /// Create segment `seq` whole (preallocated, with its header) under a temporary name, then
    /// rename it: a crash never leaves a segment without its header.
    fn new_segment(&mut self, seq: u64) -> Result<(), WalError> {
        let path = segment_path(&self.dir, seq);
        let tmp = path.with_extension("wal.tmp");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        preallocate(&file, &tmp)?;
        file.write_all_at(&format::segment_header(), 0)
            .and_then(|()| file.sync_all())
            .map_err(io(&tmp))?;
        if path.exists() {
            return Err(io(&path)(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a WAL segment with this number exists already",
            )));
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(&self.dir)?;
        self.segments.insert(
            seq,
            Segment {
                path,
                file,
                last_index: None,
            },
        );
        self.tail_seq = seq;
        self.tail_offset = SEGMENT_HEADER as u64;
        Ok(())
    }

    /// Write one append (a buffer from [`format::begin_append`] with its records) and make it durable
    /// before returning; returns the offset it starts at in the tail segment. After a failure nothing
    /// more is written (see [`Wal::failed`]).
    fn write(&mut self, mut buf: Vec<u8>) -> Result<u64, WalError> {
        let path = segment_path(&self.dir, self.tail_seq);
        if let Some(why) = &self.failed {
            return Err(WalError::Failed {
                path,
                why: why.clone(),
            });
        }
        format::seal_append(&mut buf);
        let res = self.write_sealed(&buf);
        if let Err(e) = &res {
            self.failed = Some(e.to_string());
        }
        res
    }

    fn write_sealed(&mut self, buf: &[u8]) -> Result<u64, WalError> {
        let start = SEGMENT_HEADER as u64;
        if self.tail_offset > start && self.tail_offset + buf.len() as u64 > SEGMENT_BYTES {
            self.new_segment(self.tail_seq + 1)?;
        }
        let seg = self
            .segments
            .get(&self.tail_seq)
            .ok_or_else(|| WalError::Io {
                path: segment_path(&self.dir, self.tail_seq),
                source: std::io::Error::other("the current segment is not open"),
            })?;
        let fits = self.tail_offset + buf.len() as u64 <= SEGMENT_BYTES;
        seg.file
            .write_all_at(buf, self.tail_offset)
            .map_err(io(&seg.path))?;
        // Within the preallocated size only the data needs syncing; past it (one batch larger than a
        // segment) the new length too.
        if fits {
            seg.file.sync_data().map_err(io(&seg.path))?;
        } else {
            seg.file.sync_all().map_err(io(&seg.path))?;
        }
        let at = self.tail_offset;
        self.tail_offset += buf.len() as u64;
        Ok(at)
    }

    /// Append entries (and the committed id, if it moved) in one durable write.
    pub fn append(
        &mut self,
        entries: &[Entry<TypeConfig>],
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), WalError> {
        let path = segment_path(&self.dir, self.tail_seq);
        let codec = |e: rmp_serde::encode::Error| WalError::Codec {
            path: path.clone(),
            why: format!("encoding a log entry: {e}"),
        };
        let mut buf = format::begin_append();
        let mut at = Vec::with_capacity(entries.len());
        for e in entries {
            let payload = encode(e).map_err(codec)?;
            at.push((e.log_id, buf.len() + HEADER, payload.len()));
            record(KIND_ENTRY, &payload, &mut buf);
        }
        if let Some(c) = committed {
            record(KIND_COMMITTED, &encode(&Some(c)).map_err(codec)?, &mut buf);
        }
        let base = self.write(buf)?;
        let seq = self.tail_seq;
        for &(log_id, offset, len) in &at {
            self.place(Loc {
                log_id,
                seq,
                offset: base + offset as u64,
                len: len as u32,
            });
        }
        if let (Some(&(last, _, _)), Some(seg)) = (at.last(), self.segments.get_mut(&seq)) {
            seg.last_index = Some(last.index);
        }
        if committed.is_some() {
            self.committed = committed;
        }
        Ok(())
    }

    /// Remove entries at and after `index`, durably.
    pub fn truncate(&mut self, index: u64) -> Result<(), WalError> {
        let mut buf = format::begin_append();
        record(KIND_TRUNCATE, &index.to_le_bytes(), &mut buf);
        self.write(buf)?;
        self.index.split_off(&index);
        Ok(())
    }

    /// Forget entries up to and including `index` and delete the segments that hold nothing newer.
    /// The caller records the purge point durably first.
    pub fn purge(&mut self, index: u64) -> Result<(), WalError> {
        self.index = self.index.split_off(&(index + 1));
        let doomed: Vec<u64> = self
            .segments
            .iter()
            .take_while(|(&seq, s)| {
                seq != self.tail_seq && s.last_index.is_none_or(|last| last <= index)
            })
            .map(|(&seq, _)| seq)
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        for seq in doomed {
            if let Some(s) = self.segments.remove(&seq) {
                std::fs::remove_file(&s.path).map_err(io(&s.path))?;
                // Unlinked while open, so the blocks are freed later, a piece at a time: openraft's
                // core awaits a purge, and a snapshot at 1 GiB purged ~2 GB of segments, whose
                // freeing held the leader's heartbeats past the election timeout.
                crate::writeback::free_gradually(s.file);
            }
        }
        sync_dir(&self.dir)
    }

    /// The last entry's log id.
    pub fn last_log_id(&self) -> Option<LogId<NodeId>> {
        self.index.last_key_value().map(|(_, l)| l.log_id)
    }

    /// The committed log id last written.
    pub fn committed(&self) -> Option<LogId<NodeId>> {
        self.committed
    }

    /// Whether the WAL holds no entry (a new member, or one whose log still lives in redb).
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Entries `[start, end)` that are present (`end` None: to the last).
    pub fn read(&self, start: u64, end: Option<u64>) -> Result<Vec<Entry<TypeConfig>>, WalError> {
        let range = match end {
            Some(end) if end <= start => return Ok(Vec::new()),
            Some(end) => self.index.range(start..end),
            None => self.index.range(start..),
        };
        let mut out = Vec::new();
        for loc in range.map(|(_, l)| *l) {
            let seg = self.segments.get(&loc.seq).ok_or_else(|| WalError::Io {
                path: segment_path(&self.dir, loc.seq),
                source: std::io::Error::other("segment of an indexed entry is gone"),
            })?;
            let mut buf = vec![0u8; loc.len as usize];
            seg.file
                .read_exact_at(&mut buf, loc.offset)
                .map_err(io(&seg.path))?;
            out.push(decode(&buf).map_err(|e| WalError::Codec {
                path: seg.path.clone(),
                why: format!("entry at offset {}: {e}", loc.offset),
            })?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::Command;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64, bytes: usize) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Command::Put(vec![index as u8; bytes])),
        }
    }

    fn ids(wal: &Wal) -> Vec<(u64, u64)> {
        wal.read(0, None)
            .expect("read")
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect()
    }

    /// Overwrite the first segment at `offset` with `bytes`; returns the segment's path.
    fn overwrite_first_segment(dir: &Path, offset: u64, bytes: &[u8]) -> PathBuf {
        let path = segment_path(dir, 0);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.write_all_at(bytes, offset))
            .expect("overwriting the segment");
        path
    }

    /// Write a WAL in `dir` of one append per size (entries 1, 2, … of term 1); returns where each
    /// append starts.
    fn written(dir: &Path, sizes: &[usize]) -> Vec<u64> {
        let mut wal = Wal::open(dir).expect("open");
        let mut starts = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            starts.push(wal.tail_offset);
            wal.append(&[entry(1, i as u64 + 1, size)], None)
                .expect("append");
        }
        starts
    }

    /// The error opening the WAL in `dir` must give, as text.
    fn open_error(dir: &Path) -> String {
        match Wal::open(dir) {
            Ok(_) => panic!("opening {} must fail", dir.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn entries_truncation_and_commit_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wal = Wal::open(dir.path()).expect("open");
        let e: Vec<_> = (1..=5).map(|i| entry(1, i, 10)).collect();
        wal.append(&e, None).expect("append");
        wal.truncate(4).expect("truncate");
        let c = Some(LogId::new(CommittedLeaderId::new(1, 1), 2));
        wal.append(&[entry(2, 4, 10)], c).expect("append");
        assert_eq!(ids(&wal), vec![(1, 1), (1, 2), (1, 3), (2, 4)]);
        drop(wal);
        let wal = Wal::open(dir.path()).expect("reopen");
        assert_eq!(ids(&wal), vec![(1, 1), (1, 2), (1, 3), (2, 4)]);
        assert_eq!(wal.committed(), c);
        assert_eq!(wal.last_log_id().map(|l| l.index), Some(4));
        assert_eq!(wal.read(2, Some(3)).expect("read")[0], entry(1, 2, 10));
    }

    #[test]
    fn an_entry_at_or_below_the_last_replaces_the_rest_on_replay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wal = Wal::open(dir.path()).expect("open");
        wal.append(&[entry(1, 1, 1), entry(1, 2, 1), entry(1, 3, 1)], None)
            .expect("append");
        wal.append(&[entry(2, 2, 1)], None).expect("append");
        drop(wal);
        let wal = Wal::open(dir.path()).expect("reopen");
        assert_eq!(ids(&wal), vec![(1, 1), (2, 2)]);
    }

    #[test]
    fn a_torn_tail_is_dropped_and_zeroed_and_writing_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wal = Wal::open(dir.path()).expect("open");
        wal.append(&[entry(1, 1, 100), entry(1, 2, 100)], None)
            .expect("append");
        let end = wal.tail_offset;
        wal.append(&[entry(1, 3, 3000)], None).expect("append");
        let last_end = wal.tail_offset;
        drop(wal);
        // A crash let only the first sector of the last append reach the disk.
        let written = (end / 512 + 1) * 512;
        let path =
            overwrite_first_segment(dir.path(), written, &vec![0; (last_end - written) as usize]);
        let mut wal = Wal::open(dir.path()).expect("reopen");
        assert_eq!(ids(&wal), vec![(1, 1), (1, 2)]);
        assert_eq!(wal.tail_offset, end);
        let mut rest = vec![0u8; (last_end - end) as usize];
        File::open(&path)
            .expect("open")
            .read_exact_at(&mut rest, end)
            .expect("read");
        assert!(rest.iter().all(|&b| b == 0), "the torn tail is zeroed");
        wal.append(&[entry(2, 3, 5)], None).expect("append");
        drop(wal);
        let wal = Wal::open(dir.path()).expect("reopen");
        assert_eq!(ids(&wal), vec![(1, 1), (1, 2), (2, 3)]);
    }

    #[test]
    fn flipped_bytes_mid_last_segment_refuse_the_wal_naming_file_offset_and_recovery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let starts = written(dir.path(), &[100; 20]);
        // 16 bytes inside the 10th entry's payload.
        let record = starts[9] + 17;
        let flipped = vec![0x5a; 16];
        let path = overwrite_first_segment(dir.path(), record + 9 + 40, &flipped);
        let err = open_error(dir.path());
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(
            err.contains(&format!(
                "corrupt WAL record at offset {record}: checksum mismatch"
            )),
            "{err}"
        );
        assert!(err.contains("remove the member and add it back"), "{err}");
        assert!(err.contains("restore"), "{err}");
    }

    #[test]
    fn flipped_bytes_in_the_last_append_are_corruption_not_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let last = written(dir.path(), &[100, 100])[1];
        overwrite_first_segment(dir.path(), last + 17 + 9 + 40, &[0x5a; 16]);
        let err = open_error(dir.path());
        assert!(err.contains("not an append cut short by a crash"), "{err}");
    }

    #[test]
    fn segments_of_another_format_version_or_without_a_header_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        written(dir.path(), &[10]);
        let mut header = format::segment_header();
        header[8..12].copy_from_slice(&7u32.to_le_bytes());
        let crc = crc32fast::hash(&header[..12]);
        header[12..].copy_from_slice(&crc.to_le_bytes());
        let path = overwrite_first_segment(dir.path(), 0, &header);
        let err = open_error(dir.path());
        assert!(
            err.contains(&format!("{}: WAL format version 7", path.display())),
            "{err}"
        );
        assert!(
            err.contains(&format!("reads version {WAL_VERSION} only")),
            "{err}"
        );
        // A segment as written before versions existed started with a record, not the magic.
        overwrite_first_segment(dir.path(), 0, &[9, 0, 0, 0, 1, 2, 3, 4]);
        let err = open_error(dir.path());
        assert!(err.contains("not a cairn WAL segment"), "{err}");
    }

    #[test]
    fn a_truncated_or_missing_segment_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(wal_of_large_entries(dir.path(), 7));
        let last = segment_path(dir.path(), 2);
        let f = OpenOptions::new().write(true).open(&last).expect("open");
        f.set_len(SEGMENT_BYTES / 2).expect("truncate");
        drop(f);
        let err = open_error(dir.path());
        assert!(
            err.contains(&last.display().to_string()) && err.contains("it was truncated"),
            "{err}"
        );
        std::fs::remove_file(segment_path(dir.path(), 1)).expect("rm");
        let err = open_error(dir.path());
        assert!(
            err.contains(&segment_path(dir.path(), 1).display().to_string())
                && err.contains("the segment is missing"),
            "{err}"
        );
    }

    #[test]
    fn a_segment_whose_creation_a_crash_cut_short_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        written(dir.path(), &[10]);
        let tmp = segment_path(dir.path(), 1).with_extension("wal.tmp");
        std::fs::write(&tmp, [0u8; 100]).expect("write");
        let wal = Wal::open(dir.path()).expect("reopen");
        assert!(!tmp.exists());
        assert_eq!(ids(&wal), vec![(1, 1)]);
    }

    /// A WAL in `dir` holding entries 1..=n of a third of a segment each (so they span segments).
    fn wal_of_large_entries(dir: &Path, n: u64) -> Wal {
        let mut wal = Wal::open(dir).expect("open");
        let big = (SEGMENT_BYTES / 3) as usize;
        for i in 1..=n {
            wal.append(&[entry(1, i, big)], None).expect("append");
        }
        wal
    }

    #[test]
    fn corruption_before_the_last_segment_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = wal_of_large_entries(dir.path(), 4);
        assert!(wal.segments.len() >= 2, "rotated");
        drop(wal);
        let path = overwrite_first_segment(dir.path(), 100, &[0xff; 8]);
        let err = open_error(dir.path());
        assert!(err.contains(&path.display().to_string()), "{err}");
        let first_record = SEGMENT_HEADER + format::APPEND_HEADER;
        assert!(
            err.contains(&format!("corrupt WAL record at offset {first_record}")),
            "{err}"
        );
    }

    #[test]
    fn segments_rotate_and_purge_deletes_the_ones_wholly_purged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wal = wal_of_large_entries(dir.path(), 7);
        let count = || std::fs::read_dir(dir.path()).expect("ls").count();
        let before = count();
        assert!(before >= 3, "{before} segments");
        wal.purge(5).expect("purge");
        assert!(count() < before, "segments deleted");
        assert_eq!(ids(&wal), vec![(1, 6), (1, 7)]);
        drop(wal);
        let wal = Wal::open(dir.path()).expect("reopen");
        let left = ids(&wal);
        assert_eq!(left.last(), Some(&(1, 7)));
        assert!(left.contains(&(1, 6)));
    }
}
