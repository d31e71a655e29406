//! `cairn snapshot restore FILE`: a new member's data dir holding the snapshot's keys (every retained
//! version, with create/mod revisions and versions), leases and revision, as member `--name` of a new
//! cluster made of `--initial-cluster` (IDs derived from `--initial-cluster-token`, as etcd does). Start
//! every member with the same flags afterwards; new writes continue from the snapshot's next revision.
//!
//! The data dir holds what a member that had just taken a Raft snapshot holds: the snapshot file, the
//! identity, an empty log. The snapshot sits at log index = member count (etcd's restore commits one
//! configuration entry per member) with the same log ID on every member, so they agree on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser as _};
use openraft::{CommittedLeaderId, LogId, Membership, SnapshotMeta, StoredMembership};

use super::SnapshotFile;
use crate::bootstrap::static_cluster;
use crate::config::{Config, ConfigError};
use crate::etcd_db::import;
use crate::mvcc::Store;
use crate::raft::types::{NodeId, PeerNode};
use crate::storage::data_dir::DataDir;
use crate::storage::log::{LogStore, StoredIdentity};
use crate::storage::snapshot::{MemberAttrs, SnapshotDir};

/// Arguments of `cairn snapshot restore` (etcdctl's names and defaults).
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The snapshot file (from `etcdctl snapshot save` against cairn or etcd 3.4/3.5).
    pub file: PathBuf,
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Path to the data directory [default: NAME.etcd].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Initial cluster configuration for restore bootstrap.
    #[arg(long, default_value = "default=http://localhost:2380")]
    pub initial_cluster: String,
    /// Initial cluster token for the etcd cluster during restore bootstrap.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, default_value = "http://localhost:2380", value_delimiter = ',')]
    pub initial_advertise_peer_urls: Vec<String>,
    /// Ignore snapshot integrity hash value (required if copied from data directory).
    #[arg(long)]
    pub skip_hash_check: bool,
}

/// What a restore made.
#[derive(Debug, Clone)]
pub struct Restored {
    pub data_dir: PathBuf,
    pub identity: StoredIdentity,
    pub loaded: import::Loaded,
}

/// Run the restore and print what was made.
pub fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let r = restore_data_dir(args)?;
    println!(
        "restored snapshot {} into {}: revision {}, compacted at {}, {} key versions, {} leases; \
         member {:x} of cluster {:x}",
        args.file.display(),
        r.data_dir.display(),
        r.loaded.revision,
        r.loaded.compact_revision,
        r.loaded.records,
        r.loaded.leases,
        r.identity.member_id,
        r.identity.cluster_id
    );
    Ok(())
}

/// Check the flags and the snapshot, then write the data dir (into a sibling directory renamed into
/// place at the end, so a failed restore leaves no half-made data dir a member could start from).
pub fn restore_data_dir(args: &RestoreArgs) -> anyhow::Result<Restored> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", args.name)));
    let cfg = member_config(args, &data_dir)?;
    cfg.validate_membership()?;
    let (identity, members) = static_cluster::from_flags(&cfg)?;
    if !dir_is_empty(&data_dir) {
        return Err(ConfigError(format!(
            "data-dir {:?} not empty or could not be read",
            data_dir.display().to_string()
        ))
        .into());
    }
    let snap = SnapshotFile::open(&args.file, !args.skip_hash_check)?;

    let staging = sibling(&data_dir, "restoring")?;
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing the leftover {}", staging.display()))?;
    }
    let member_dir = staging.join("member");
    create_private_dir(&member_dir)?;
    let mut store = Store::in_dir(member_dir.clone());
    let loaded = import::load(&snap.db, &mut store)
        .with_context(|| format!("reading {}", args.file.display()))?;
    crate::bootstrap::restored::record(&member_dir, &args.initial_cluster_token)
        .with_context(|| format!("writing {}", member_dir.display()))?;
    write_member(&DataDir::new(&staging), identity, &members, &store)?;
    drop(store);
    if data_dir.exists() {
        // Empty (checked above): replaced by the restored one.
        std::fs::remove_dir(&data_dir)
            .with_context(|| format!("replacing the empty {}", data_dir.display()))?;
    }
    std::fs::rename(&staging, &data_dir)
        .with_context(|| format!("moving {} to {}", staging.display(), data_dir.display()))?;
    Ok(Restored {
        data_dir,
        identity,
        loaded,
    })
}

/// The member flags the restore describes, parsed as `cairn` parses them (same checks, same IDs).
fn member_config(args: &RestoreArgs, data_dir: &Path) -> Result<Config, ConfigError> {
    let argv = [
        "cairn".to_string(),
        format!("--name={}", args.name),
        format!("--data-dir={}", data_dir.display()),
        format!("--initial-cluster={}", args.initial_cluster),
        format!("--initial-cluster-token={}", args.initial_cluster_token),
        format!(
            "--initial-advertise-peer-urls={}",
            args.initial_advertise_peer_urls.join(",")
        ),
    ];
    Config::try_parse_from(argv).map_err(|e| ConfigError(e.to_string()))
}

/// Snapshot file, then identity last: a data dir with an identity is one a member restarts from.
fn write_member(
    data_dir: &DataDir,
    identity: StoredIdentity,
    members: &BTreeMap<NodeId, PeerNode>,
    store: &Store,
) -> anyhow::Result<()> {
    let index = members.len() as u64;
    let log_id = LogId::new(CommittedLeaderId::new(0, 0), index);
    let voters: BTreeSet<NodeId> = members.keys().copied().collect();
    let membership = Membership::new(vec![voters], members.clone());
    let meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: StoredMembership::new(Some(log_id), membership),
        snapshot_id: format!("0-{index}-restored"),
    };
    let attrs = members
        .iter()
        .map(|(id, n)| {
            let a = MemberAttrs {
                name: n.name.clone(),
                client_urls: Vec::new(),
            };
            (*id, a)
        })
        .collect();
    let capture = store.capture();
    // etcd's restore clears alarms too (a restored member starts without them).
    SnapshotDir::new(data_dir.snap())?.save(&meta, attrs, Vec::new(), &capture)?;
    let log_path = data_dir.log_db();
    let log =
        LogStore::open(data_dir).with_context(|| format!("creating {}", log_path.display()))?;
    log.set_identity(&identity).map_err(|e| {
        anyhow::anyhow!(
            "recording the member identity in {}: {e}",
            log_path.display()
        )
    })?;
    Ok(())
}

fn dir_is_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut d) => d.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn sibling(dir: &Path, suffix: &str) -> anyhow::Result<PathBuf> {
    let name = dir
        .file_name()
        .with_context(|| format!("--data-dir {} names no directory", dir.display()))?;
    let mut s = name.to_os_string();
    s.push(format!(".{suffix}"));
    Ok(dir.with_file_name(s))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd_db::export::{write, ClusterRecord};
    use crate::mvcc::test_writes::put;
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek, SeekFrom, Write};

    /// A snapshot file as `etcdctl snapshot save` leaves it: the database and its SHA-256.
    fn snapshot_file(dir: &Path) -> PathBuf {
        let mut s = Store::new();
        put(&mut s, "a", "1", 0);
        put(&mut s, "a", "2", 0);
        let mut f = write(&s, &ClusterRecord::default(), tempfile::tempfile().unwrap()).unwrap();
        let mut db = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut db).unwrap();
        let sum = Sha256::digest(&db);
        let path = dir.join("snap.db");
        let mut out = std::fs::File::create(&path).unwrap();
        out.write_all(&db).unwrap();
        out.write_all(&sum).unwrap();
        path
    }

    fn args(file: &Path, data_dir: &Path) -> RestoreArgs {
        RestoreArgs {
            file: file.to_path_buf(),
            name: "default".into(),
            data_dir: Some(data_dir.to_path_buf()),
            initial_cluster: "default=http://localhost:2380".into(),
            initial_cluster_token: "etcd-cluster".into(),
            initial_advertise_peer_urls: vec!["http://localhost:2380".into()],
            skip_hash_check: false,
        }
    }

    #[test]
    fn restore_writes_a_data_dir_a_member_restarts_from() {
        let tmp = tempfile::tempdir().unwrap();
        let file = snapshot_file(tmp.path());
        let dir = tmp.path().join("data");
        let r = restore_data_dir(&args(&file, &dir)).unwrap();
        assert_eq!(r.loaded.revision, 3);
        // etcd's well-known ID of a default single member.
        assert_eq!(format!("{:x}", r.identity.member_id), "8e9e05c52164694d");
        let log = LogStore::open(&DataDir::new(&dir)).unwrap();
        assert_eq!(log.identity().unwrap(), Some(r.identity));
        let snap = SnapshotDir::new(dir.join("member/snap"))
            .unwrap()
            .open()
            .unwrap()
            .unwrap();
        assert_eq!(snap.header.meta.last_log_id.map(|l| l.index), Some(1));
        assert!(!tmp.path().join("data.restoring").exists());
    }

    #[test]
    fn restore_refuses_a_non_empty_data_dir_and_a_damaged_or_unhashed_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = snapshot_file(tmp.path());
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("x"), b"").unwrap();
        let e = restore_data_dir(&args(&file, &dir)).unwrap_err();
        assert!(
            e.to_string().ends_with("not empty or could not be read"),
            "{e}"
        );

        let mut bytes = std::fs::read(&file).unwrap();
        bytes[5000] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let e = restore_data_dir(&args(&file, &tmp.path().join("d2"))).unwrap_err();
        assert!(e.to_string().starts_with("expected sha256 ["), "{e}");

        std::fs::write(&file, &bytes[..bytes.len() - 32]).unwrap();
        let e = restore_data_dir(&args(&file, &tmp.path().join("d3"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "snapshot missing hash but --skip-hash-check=false"
        );
        assert!(!tmp.path().join("d3").exists());
    }
}
