//! A data dir made by `cairn snapshot restore` records the `--initial-cluster-token` it was restored
//! with. The member IDs derive from that token, so when the member is later started with its usual
//! flags (an env file rendered with the cluster's original token, as `provision restore` leaves it) the
//! IDs the flags give differ from the stored ones; the record lets the restart check that the flags
//! still describe this member of the restored cluster under the restore's token, instead of refusing
//! the data dir as another cluster's. (etcd ignores the flags on restart altogether.)

use std::path::Path;

/// The file, inside `member/`, holding the token a restore used.
const FILE: &str = "restored-token";

/// Record `token` in the member dir being restored.
pub fn record(member_dir: &Path, token: &str) -> std::io::Result<()> {
    std::fs::write(member_dir.join(FILE), token)
}

/// The token `data_dir` was restored with, if it was made by a restore.
pub fn token(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join("member").join(FILE))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}
