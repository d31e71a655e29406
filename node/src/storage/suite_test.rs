//! openraft's storage conformance suite against the redb log store and the mvcc state machine.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

use crate::raft::types::{NodeId, TypeConfig};
use crate::storage::data_dir::DataDir;
use crate::storage::log::LogStore;
use crate::storage::snapshot::SnapshotDir;
use crate::storage::state_machine::StateMachine;

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RedbBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
        let data_dir = DataDir::new(dir.path());
        std::fs::create_dir_all(data_dir.member())
            .map_err(|e| openraft::StorageIOError::write(&e))?;
        let log = LogStore::open(&data_dir).map_err(|e| openraft::StorageIOError::write(&e))?;
        let snaps =
            SnapshotDir::new(data_dir.snap()).map_err(|e| openraft::StorageIOError::write(&e))?;
        let sm = StateMachine::open(snaps, data_dir.values())
            .map_err(|e| openraft::StorageIOError::write(openraft::AnyError::error(e)))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn redb_store_passes_openraft_suite() {
    if let Err(e) = Suite::test_all(RedbBuilder) {
        panic!("openraft storage suite failed: {e}");
    }
}
