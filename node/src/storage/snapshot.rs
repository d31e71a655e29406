//! The snapshot file in the data dir: what a restart loads (openraft then replays only the log after
//! it) and, byte for byte, what InstallSnapshot sends to a member that is too far behind.
//!
//! Layout (format [`FORMAT`]):
//! ```text
//! [store values][store key index][header: MessagePack][trailer: 32 bytes]
//! ```
//! The store writes its two sections ([`crate::mvcc::Capture`]); the header names where they are and
//! adds openraft's metadata, the member attributes and the alarms; the trailer locates the header:
//! header offset (u64 LE), header length (u64 LE), header CRC-32 (u32 LE), format (u32 LE), magic.
//! Opening a snapshot reads the trailer, the header and the store's index, never the values: the
//! store reads those from this file when a request needs them.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::SnapshotMeta;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::mvcc::{Capture, Sections};
use crate::raft::types::{NodeId, PeerNode};
use crate::storage::data_dir::SNAPSHOT_FILE;

/// The snapshot file format this build writes and reads. Nothing was released: other formats are
/// refused, not converted.
pub const FORMAT: u32 = 3;
const MAGIC: &[u8; 8] = b"CAIRNSNP";
const TRAILER_LEN: u64 = 32;
/// Unfinished files (a snapshot being written or received) carry this suffix; a start removes them.
const PART: &str = ".part";
/// What the files made to receive a snapshot are called before their number (`receiving-3.part`).
const RECEIVING: &str = "receiving";

/// Attributes a member published after it started (etcd's `Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAttrs {
    pub name: String,
    pub client_urls: Vec<String>,
}

/// What a snapshot file says besides the store's sections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// openraft's metadata: last log ID, membership, snapshot ID.
    pub meta: SnapshotMeta<NodeId, PeerNode>,
    /// Published member attributes by member ID.
    pub members: BTreeMap<NodeId, MemberAttrs>,
    /// Raised alarms (member ID, alarm type).
    pub alarms: Vec<(u64, i32)>,
    /// Where the store's values and index are.
    pub store: Sections,
}

/// A snapshot file, open, with its header read and checked.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    /// Where it is (the current snapshot's path).
    pub path: PathBuf,
    pub header: Header,
}

/// Errors reading or writing the snapshot file, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot file {path} is corrupt: {msg}")]
    Corrupt { path: PathBuf, msg: String },
}

/// The snapshot directory of one member.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
    /// Serializes replacing the current file (a snapshot built and one received may finish together).
    replacing: Arc<Mutex<()>>,
}

static PART_SEQ: AtomicU64 = AtomicU64::new(0);

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError {
    let path = path.to_path_buf();
    move |source| SnapshotError::Io { path, source }
}

impl SnapshotDir {
    /// Use (and create) `dir`; files left unfinished by a crash are removed.
    pub fn new(dir: PathBuf) -> Result<Self, SnapshotError> {
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let path = entry.map_err(io_at(&dir))?.path();
            if path.to_string_lossy().ends_with(PART) {
                fs::remove_file(&path).map_err(io_at(&path))?;
            }
        }
        Ok(SnapshotDir {
            dir,
            replacing: Arc::default(),
        })
    }

    fn current(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }

    fn part(&self, what: &str) -> PathBuf {
        let n = PART_SEQ.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{what}-{n}{PART}"))
    }

    /// Write a snapshot of `capture` and make it the current one, durably: a temp file, fsync,
    /// rename over, fsync the directory, so a crash leaves the old or the new snapshot, never a torn
    /// one. Returns the file, open at its start (what InstallSnapshot sends). A snapshot older than
    /// the current one (a newer one was installed meanwhile) is written but does not replace it.
    pub fn save(
        &self,
        meta: &SnapshotMeta<NodeId, PeerNode>,
        members: BTreeMap<NodeId, MemberAttrs>,
        alarms: Vec<(u64, i32)>,
        capture: &Capture,
    ) -> Result<File, SnapshotError> {
        let started = std::time::Instant::now();
        let tmp = self.part("build");
        let file = create_new(&tmp)?;
        let written = write_snapshot(&file, meta, members, alarms, capture).and_then(|()| {
            file.sync_all()?;
            Ok(())
        });
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(SnapshotError::Io { path: tmp, source });
        }
        {
            let _replacing = self.replacing.lock();
            let newer = self
                .open()
                .ok()
                .flatten()
                .is_some_and(|cur| cur.header.meta.last_log_id > meta.last_log_id);
            if newer {
                fs::remove_file(&tmp).map_err(io_at(&tmp))?;
            } else {
                self.make_current(&tmp)?;
            }
        }
        // The snapshot file is what persists the state machine: our "backend commit".
        crate::metrics::BACKEND_COMMIT.observe(started.elapsed());
        let index = meta.last_log_id.map(|l| l.index).unwrap_or_default();
        tracing::info!(
            bytes = file.metadata().map(|m| m.len()).unwrap_or_default(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "saved snapshot at index {index}"
        );
        rewound(file, &tmp)
    }

    /// A snapshot of `capture`, not saved: its bytes (those [`SnapshotDir::save`] would write) come out
    /// of the returned pipe as a background thread encodes them. For a member too far behind when the
    /// saved snapshot is old: it then gets the state as it is now, as etcd sends its database, rather
    /// than the saved file and the log written since. The writer stops when the reader is dropped; a
    /// stream it could not finish ends without the trailer, which the receiver refuses.
    pub fn stream(
        &self,
        meta: SnapshotMeta<NodeId, PeerNode>,
        members: BTreeMap<NodeId, MemberAttrs>,
        alarms: Vec<(u64, i32)>,
        capture: Capture,
    ) -> Result<File, SnapshotError> {
        let (reader, writer) = pipe().map_err(io_at(&self.dir))?;
        let dir = self.dir.clone();
        std::thread::Builder::new()
            .name("snapshot-stream".into())
            .spawn(move || {
                crate::writeback::background_priority();
                let started = std::time::Instant::now();
                let index = meta.last_log_id.map(|l| l.index).unwrap_or_default();
                let mut w = BufWriter::with_capacity(1 << 20, writer);
                match write_sections(&mut w, &meta, members, alarms, &capture) {
                    Ok(()) => tracing::info!(
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "streamed a snapshot of the current state at index {index}"
                    ),
                    Err(e) => tracing::warn!(
                        "streaming a snapshot at index {index} from {} stopped: {e}",
                        dir.display()
                    ),
                }
            })
            .map_err(io_at(&self.dir))?;
        Ok(reader)
    }

    /// A fresh file to receive a snapshot into (InstallSnapshot chunks), with its path for
    /// [`SnapshotDir::install`].
    pub fn receiving(&self) -> Result<(File, PathBuf), SnapshotError> {
        let path = self.part(RECEIVING);
        let file = create_new(&path)?;
        Ok((file, path))
    }

    /// The path of `file` if it is one [`SnapshotDir::receiving`] made (a snapshot streamed in whole is
    /// handed to openraft as an open file, and installed from there).
    pub fn received_path(&self, file: &File) -> Option<PathBuf> {
        let prefix = format!("{RECEIVING}-");
        fs::read_dir(&self.dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(PART))
            })
            .find(|p| same_file(file, p).unwrap_or(false))
    }

    /// Make the received snapshot at `path` (all of it written through `file`) the current one, after
    /// checking that it is whole and that it is the snapshot `meta` describes.
    pub fn install(
        &self,
        path: &Path,
        file: File,
        meta: &SnapshotMeta<NodeId, PeerNode>,
    ) -> Result<Opened, SnapshotError> {
        let file = match same_file(&file, path) {
            Ok(true) => file,
            // The data was handed over as another file (openraft's storage suite does this):
            // copied into the one made for it.
            Ok(false) => copy_into(file, path).map_err(io_at(path))?,
            Err(e) => {
                return Err(SnapshotError::Io {
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        };
        let checked = file
            .sync_all()
            .map_err(io_at(path))
            .and_then(|()| header_of(&file, path, meta));
        let header = match checked {
            Ok(h) => h,
            Err(e) => {
                let _ = fs::remove_file(path);
                return Err(e);
            }
        };
        {
            let _replacing = self.replacing.lock();
            self.make_current(path)?;
        }
        let file = rewound(file, &self.current())?;
        Ok(Opened {
            file,
            path: self.current(),
            header,
        })
    }

    /// Check that the received snapshot at `path` (written through `file`) is whole and is the one
    /// `meta` describes, without installing it.
    pub fn check_received(
        &self,
        file: &File,
        path: &Path,
        meta: &SnapshotMeta<NodeId, PeerNode>,
    ) -> Result<(), SnapshotError> {
        header_of(file, path, meta).map(|_| ())
    }

    fn make_current(&self, path: &Path) -> Result<(), SnapshotError> {
        // Held across the rename, so that the replaced snapshot's blocks are freed a piece at a time
        // rather than all at once by the rename (see `writeback::free_gradually`).
        let replaced = File::open(self.current()).ok();
        fs::rename(path, self.current()).map_err(io_at(&self.current()))?;
        if let Some(f) = replaced {
            crate::writeback::free_gradually(f);
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(&self.dir))
    }

    /// Open the current snapshot, if one was saved, reading and checking its header.
    pub fn open(&self) -> Result<Option<Opened>, SnapshotError> {
        let path = self.current();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SnapshotError::Io { path, source }),
        };
        let header = read_header(&file, &path)?;
        Ok(Some(Opened { file, path, header }))
    }
}

fn create_new(path: &Path) -> Result<File, SnapshotError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_at(path))
}

/// A pipe (reader, writer) with a buffer of 1 MiB where the kernel allows it, so the encoder and the
/// sender trade parts rather than pages.
fn pipe() -> std::io::Result<(File, File)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills `fds` with two new descriptors on success; each is owned exactly once below.
    let (reader, writer) = unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    };
    // SAFETY: F_SETPIPE_SZ takes an int; on failure the pipe keeps its default size, which works.
    unsafe {
        libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 1 << 20);
    }
    Ok((File::from(reader), File::from(writer)))
}

/// Whether `file` is the file at `path`.
fn same_file(file: &File, path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (file.metadata()?, fs::metadata(path)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// The whole of `from` copied into a new file at `path`, which is returned.
fn copy_into(mut from: File, path: &Path) -> std::io::Result<File> {
    let mut to = OpenOptions::new()
        .read(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    from.seek(SeekFrom::Start(0))?;
    std::io::copy(&mut from, &mut to)?;
    Ok(to)
}

/// `file` positioned at its start.
fn rewound(mut file: File, path: &Path) -> Result<File, SnapshotError> {
    file.seek(SeekFrom::Start(0)).map_err(io_at(path))?;
    Ok(file)
}

fn write_snapshot(
    file: &File,
    meta: &SnapshotMeta<NodeId, PeerNode>,
    members: BTreeMap<NodeId, MemberAttrs>,
    alarms: Vec<(u64, i32)>,
    capture: &Capture,
) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, crate::writeback::Paced::new(file));
    write_sections(&mut w, meta, members, alarms, capture)
}

/// The snapshot's bytes, in file order, to `w`.
fn write_sections(
    w: &mut impl Write,
    meta: &SnapshotMeta<NodeId, PeerNode>,
    members: BTreeMap<NodeId, MemberAttrs>,
    alarms: Vec<(u64, i32)>,
    capture: &Capture,
) -> std::io::Result<()> {
    let store = capture.write_to(w)?;
    let header = Header {
        meta: meta.clone(),
        members,
        alarms,
        store,
    };
    let bytes = crate::codec::encode(&header).map_err(std::io::Error::other)?;
    let header_off = store.values_len + store.index_len;
    w.write_all(&bytes)?;
    w.write_all(&header_off.to_le_bytes())?;
    w.write_all(&(bytes.len() as u64).to_le_bytes())?;
    w.write_all(&crc32fast::hash(&bytes).to_le_bytes())?;
    w.write_all(&FORMAT.to_le_bytes())?;
    w.write_all(MAGIC)?;
    w.flush()
}

/// The header of the snapshot in `file`, which must be the snapshot `meta` describes.
fn header_of(
    file: &File,
    path: &Path,
    meta: &SnapshotMeta<NodeId, PeerNode>,
) -> Result<Header, SnapshotError> {
    let header = read_header(file, path)?;
    if header.meta == *meta {
        Ok(header)
    } else {
        Err(SnapshotError::Corrupt {
            path: path.to_path_buf(),
            msg: format!(
                "it holds snapshot {} where {} was sent",
                header.meta.snapshot_id, meta.snapshot_id
            ),
        })
    }
}

fn read_header(file: &File, path: &Path) -> Result<Header, SnapshotError> {
    let corrupt = |msg: String| SnapshotError::Corrupt {
        path: path.to_path_buf(),
        msg,
    };
    let len = file.metadata().map_err(io_at(path))?.len();
    if len < TRAILER_LEN {
        return Err(corrupt(format!(
            "{len} bytes, shorter than its trailer (a write was cut short)"
        )));
    }
    let mut t = [0u8; TRAILER_LEN as usize];
    file.read_exact_at(&mut t, len - TRAILER_LEN)
        .map_err(io_at(path))?;
    let u64_at = |i: usize| u64::from_le_bytes(t[i..i + 8].try_into().unwrap_or_default());
    let u32_at = |i: usize| u32::from_le_bytes(t[i..i + 4].try_into().unwrap_or_default());
    if &t[24..32] != MAGIC {
        return Err(corrupt(
            "no snapshot trailer at its end (a write was cut short, or it is not a cairn snapshot)"
                .into(),
        ));
    }
    let format = u32_at(20);
    if format != FORMAT {
        return Err(corrupt(format!(
            "format {format}; this build reads format {FORMAT} only (remove the member's data dir and \
             add it again, or restore it from `etcdctl snapshot save`)"
        )));
    }
    let (off, hlen, crc) = (u64_at(0), u64_at(8), u32_at(16));
    if off.checked_add(hlen) != Some(len - TRAILER_LEN) {
        return Err(corrupt(format!(
            "its header at {off}+{hlen} does not end where the trailer starts ({})",
            len - TRAILER_LEN
        )));
    }
    let mut bytes = vec![0; hlen as usize];
    file.read_exact_at(&mut bytes, off).map_err(io_at(path))?;
    if crc32fast::hash(&bytes) != crc {
        return Err(corrupt("its header does not match its checksum".into()));
    }
    let header: Header =
        crate::codec::decode(&bytes).map_err(|e| corrupt(format!("its header: {e}")))?;
    if header.store.values_len + header.store.index_len != off {
        return Err(corrupt(format!(
            "its store sections ({} + {} bytes) do not end where its header starts ({off})",
            header.store.values_len, header.store.index_len
        )));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::{Command, Store};

    fn store() -> Store {
        let mut s = Store::new();
        let put = etcd_client::proto::PbPutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        s.apply(&Command::Put(prost::Message::encode_to_vec(&put)));
        s
    }

    /// A snapshot of the test store with no members or alarms, saved into `dir`.
    fn save_empty(dir: &SnapshotDir, id: &str, index: u64) -> File {
        dir.save(
            &meta(id, index),
            BTreeMap::new(),
            vec![],
            &store().capture(),
        )
        .unwrap()
    }

    fn meta(id: &str, index: u64) -> SnapshotMeta<NodeId, PeerNode> {
        SnapshotMeta {
            last_log_id: Some(openraft::LogId::new(
                openraft::CommittedLeaderId::new(1, 0),
                index,
            )),
            snapshot_id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_saved_snapshot_opens_with_its_header_and_its_store() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::new(tmp.path().join("snap")).unwrap();
        assert!(dir.open().unwrap().is_none());
        let members = BTreeMap::from([(
            7,
            MemberAttrs {
                name: "infra0".into(),
                client_urls: vec!["http://a:1".into()],
            },
        )]);
        let s = store();
        let capture = s.capture();
        dir.save(&meta("1-2-3", 2), members, vec![(7, 1)], &capture)
            .unwrap();
        let back = dir.open().unwrap().unwrap();
        assert_eq!(back.header.meta, meta("1-2-3", 2));
        assert_eq!(back.header.members[&7].name, "infra0");
        assert_eq!(back.header.alarms, vec![(7, 1)]);
        let mut t = Store::new();
        t.restore_from(Arc::new(back.file), &back.path, &back.header.store)
            .unwrap();
        assert_eq!(t.hash_kv(0), s.hash_kv(0));
        // An older snapshot finishing late does not replace a newer one.
        dir.save(&meta("1-1-4", 1), BTreeMap::new(), vec![], &capture)
            .unwrap();
        assert_eq!(dir.open().unwrap().unwrap().header.meta, meta("1-2-3", 2));
    }

    #[test]
    fn a_cut_short_or_foreign_file_is_refused_with_the_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::new(tmp.path().join("snap")).unwrap();
        let s = store();
        dir.save(&meta("1-2-3", 2), BTreeMap::new(), vec![], &s.capture())
            .unwrap();
        let path = dir.current();
        let len = fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 1).unwrap();
        let err = dir.open().unwrap_err().to_string();
        assert!(
            err.contains("trailer") && err.contains("current.snap"),
            "{err}"
        );
        fs::write(
            &path,
            b"something else entirely, long enough to have a trailer",
        )
        .unwrap();
        let err = dir.open().unwrap_err().to_string();
        assert!(err.contains("not a cairn snapshot"), "{err}");
    }

    #[test]
    fn the_current_state_streamed_installs_like_a_saved_snapshot_and_a_cut_stream_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let leader = SnapshotDir::new(tmp.path().join("leader")).unwrap();
        let follower = SnapshotDir::new(tmp.path().join("follower")).unwrap();
        let s = store();
        let members = BTreeMap::from([(7, MemberAttrs::default())]);
        let mut streamed = leader
            .stream(meta("1-5-6", 5), members.clone(), vec![(7, 1)], s.capture())
            .unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut streamed, &mut bytes).unwrap();
        assert!(leader.open().unwrap().is_none(), "a stream is not saved");
        // Cut short, it lacks the trailer: refused before any install.
        let (mut file, path) = follower.receiving().unwrap();
        file.write_all(&bytes[..bytes.len() - 1]).unwrap();
        let err = follower
            .check_received(&file, &path, &meta("1-5-6", 5))
            .unwrap_err()
            .to_string();
        assert!(err.contains("trailer"), "{err}");
        // Whole, it is the snapshot a save of the same capture writes, and restores the store.
        let (mut file, path) = follower.receiving().unwrap();
        file.write_all(&bytes).unwrap();
        follower
            .check_received(&file, &path, &meta("1-5-6", 5))
            .unwrap();
        let opened = follower.install(&path, file, &meta("1-5-6", 5)).unwrap();
        assert_eq!(opened.header.members, members);
        let mut t = Store::new();
        t.restore_from(Arc::new(opened.file), &opened.path, &opened.header.store)
            .unwrap();
        assert_eq!(t.hash_kv(0), s.hash_kv(0));
        let mut saved = Vec::new();
        let mut f = leader
            .save(&meta("1-5-6", 5), members, vec![(7, 1)], &s.capture())
            .unwrap();
        std::io::Read::read_to_end(&mut f, &mut saved).unwrap();
        assert_eq!(saved, bytes);
    }

    #[test]
    fn a_received_snapshot_is_installed_only_when_it_is_the_one_sent() {
        let tmp = tempfile::tempdir().unwrap();
        let leader = SnapshotDir::new(tmp.path().join("leader")).unwrap();
        let follower = SnapshotDir::new(tmp.path().join("follower")).unwrap();
        let mut sent = save_empty(&leader, "1-2-3", 2);
        let (mut file, path) = follower.receiving().unwrap();
        std::io::copy(&mut sent, &mut file).unwrap();
        let err = follower
            .install(&path, file.try_clone().unwrap(), &meta("1-9-9", 9))
            .unwrap_err()
            .to_string();
        assert!(err.contains("1-9-9"), "{err}");
        assert!(!path.exists(), "a refused file is removed");
        let (mut file, path) = follower.receiving().unwrap();
        sent.seek(SeekFrom::Start(0)).unwrap();
        std::io::copy(&mut sent, &mut file).unwrap();
        let opened = follower.install(&path, file, &meta("1-2-3", 2)).unwrap();
        assert_eq!(opened.header.meta, meta("1-2-3", 2));
        assert_eq!(
            follower.open().unwrap().unwrap().header,
            leader.open().unwrap().unwrap().header
        );
        // Leftovers of a crash are removed at the next start.
        let (_f, part) = follower.receiving().unwrap();
        SnapshotDir::new(tmp.path().join("follower")).unwrap();
        assert!(!part.exists());
    }

    #[test]
    fn a_file_made_for_receiving_is_found_by_its_handle_and_no_other_is() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::new(tmp.path().join("snap")).unwrap();
        let (file, path) = dir.receiving().unwrap();
        let (_other, other_path) = dir.receiving().unwrap();
        assert_eq!(dir.received_path(&file), Some(path.clone()));
        assert_ne!(path, other_path);
        // A snapshot file that was not made for receiving (the current one) is not taken for one.
        let saved = save_empty(&dir, "1-2-3", 2);
        assert_eq!(dir.received_path(&saved), None);
    }
}
