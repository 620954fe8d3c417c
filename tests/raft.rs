//! mmlog under openraft (feature `raft`): openraft's own storage test suite, and a
//! three-node cluster on loopback.

use mmlog::raft::{EventStateMachine, LogStore, TypeConfig};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore<TypeConfig>, EventStateMachine, tempfile::TempDir>
    for Builder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore<TypeConfig>, EventStateMachine), StorageError<u64>>
    {
        let dir = tempfile::tempdir().map_err(|e| {
            StorageError::from_io_error(
                openraft::ErrorSubject::Store,
                openraft::ErrorVerb::Write,
                e,
            )
        })?;
        let (log, sm) = mmlog::raft::open(dir.path()).map_err(|e| {
            StorageError::from_io_error(
                openraft::ErrorSubject::Store,
                openraft::ErrorVerb::Read,
                std::io::Error::other(e),
            )
        })?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() -> Result<(), StorageError<u64>> {
    Suite::test_all(Builder)
}

#[path = "../examples/raft_cluster.rs"]
mod cluster;

/// Three nodes on loopback: writes through the leader, the leader killed, a new one
/// elected, the old one restarted and caught up by snapshot; every acknowledged write on
/// every node, before and after reopening the storage.
#[test]
fn three_nodes_survive_a_leader_kill() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // 1,500 writes after the kill pass the snapshot threshold (1,000 entries), so the
    // restarted node must install a snapshot.
    let report = rt.block_on(cluster::run(dir.path(), 1500, 4))?;
    eprintln!("{report:?}");
    assert_ne!(
        report.leaders.0, report.leaders.1,
        "a new leader was elected"
    );
    assert!(
        report.caught_up_by_snapshot,
        "the restarted node installed a snapshot"
    );
    Ok(())
}
