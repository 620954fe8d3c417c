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
fn openraft_storage_suite() -> Result<(), Box<StorageError<u64>>> {
    Suite::test_all(Builder).map_err(Box::new)
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

mod storage {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use mmlog::events::Consistency;
    use mmlog::raft::{EventStateMachine, LogStore, Request, TypeConfig};
    use mmlog::testing::{kill_child_after, run_if_child};
    use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, Vote};
    use uuid::Uuid;

    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn rt() -> Result<tokio::runtime::Runtime, Error> {
        Ok(tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?)
    }

    fn log_id(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    /// Entry `index` of term `term`, with a payload big enough that a few hundred fill a
    /// small segment.
    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(Request::Write {
                writer_id: 1,
                item_id: Uuid::from_u128(u128::from(index)),
                data: format!("term {term} index {index} {}", "x".repeat(200)),
            }),
        }
    }

    /// The state machine's request for entry `index`: a write, or every fifth entry the
    /// removal of the item two before it.
    fn sm_entry(index: u64) -> Entry<TypeConfig> {
        let request = if index.is_multiple_of(5) {
            Request::Remove {
                writer_id: 1,
                item_id: Uuid::from_u128(u128::from(index - 2)),
            }
        } else {
            Request::Write {
                writer_id: 1,
                item_id: Uuid::from_u128(u128::from(index)),
                data: format!("item {index}"),
            }
        };
        Entry {
            log_id: log_id(1, index),
            payload: EntryPayload::Normal(request),
        }
    }

    fn expected_after(last: u64) -> BTreeMap<Uuid, String> {
        let mut state = BTreeMap::new();
        for i in 1..=last {
            if i.is_multiple_of(5) {
                state.remove(&Uuid::from_u128(u128::from(i - 2)));
            } else {
                state.insert(Uuid::from_u128(u128::from(i)), format!("item {i}"));
            }
        }
        state
    }

    #[test]
    fn log_store_replays_vote_entries_truncation_and_purge() -> Result<(), Error> {
        let dir = tempfile::tempdir()?;
        let options = mmlog::Options::default().segment_size(mmlog::SEGMENT_SIZE_MIN);
        rt()?.block_on(async {
            let mut store = LogStore::<TypeConfig>::open_with(dir.path(), options.clone())?;
            store.save_vote(&Vote::new(1, 1)).await?;
            store
                .blocking_append((1..=400).map(|i| entry(1, i)))
                .await?;
            // A new leader of term 2 replaces everything from 300 on.
            store.save_vote(&Vote::new_committed(2, 2)).await?;
            store.truncate(log_id(1, 300)).await?;
            store
                .blocking_append((300..=450).map(|i| entry(2, i)))
                .await?;
            store.save_committed(Some(log_id(2, 420))).await?;
            let segments_before = store.log().stats().segments;
            store.purge(log_id(1, 250)).await?;
            let segments_after = store.log().stats().segments;
            assert!(
                segments_after < segments_before,
                "purging 250 of 450 entries frees segments ({segments_before} -> {segments_after})"
            );
            drop(store);

            let mut store = LogStore::<TypeConfig>::open_with(dir.path(), options)?;
            assert_eq!(store.read_vote().await?, Some(Vote::new_committed(2, 2)));
            assert_eq!(store.read_committed().await?, Some(log_id(2, 420)));
            let state = store.get_log_state().await?;
            assert_eq!(state.last_purged_log_id, Some(log_id(1, 250)));
            assert_eq!(state.last_log_id, Some(log_id(2, 450)));
            let entries = store.try_get_log_entries(0..1000).await?;
            let ids: Vec<LogId<u64>> = entries.iter().map(|e| e.log_id).collect();
            let want: Vec<LogId<u64>> = (251..300)
                .map(|i| log_id(1, i))
                .chain((300..=450).map(|i| log_id(2, i)))
                .collect();
            assert_eq!(ids, want);
            assert_eq!(
                store.try_get_log_entries(299..301).await?,
                vec![entry(1, 299), entry(2, 300)]
            );
            Ok::<_, Error>(())
        })
    }

    #[test]
    fn log_store_refuses_a_damaged_record() -> Result<(), Error> {
        let dir = tempfile::tempdir()?;
        {
            let log = mmlog::Log::open(dir.path(), mmlog::Options::default())?;
            log.append(&[9, 1, 2, 3])?;
            log.close()?;
        }
        match LogStore::<TypeConfig>::open(dir.path()) {
            Err(mmlog::Error::BadEvent { seq: 0, reason }) => {
                assert!(reason.contains("unknown kind 9"), "{reason}");
            }
            Err(other) => panic!("expected BadEvent, got {other}"),
            Ok(_) => panic!("a record of unknown kind was accepted"),
        }
        Ok(())
    }

    /// A child applies entries one by one and is killed with SIGKILL mid-stream. Applying
    /// from the state machine's own last mark again, as openraft does after a restart, must
    /// leave each entry's event in the store exactly once.
    #[test]
    fn state_machine_applies_each_entry_once_across_a_kill() -> Result<(), Error> {
        run_if_child(|dir, acks| {
            let mut run = || -> Result<(), Error> {
                let mut sm = EventStateMachine::open(dir)?;
                rt()?.block_on(async {
                    for i in 1u64.. {
                        sm.apply([sm_entry(i)]).await?;
                        acks.ack(&i.to_string())?;
                    }
                    Ok::<_, Error>(())
                })
            };
            if let Err(e) = run() {
                eprintln!("child failed: {e}");
                std::process::exit(2);
            }
        });
        let dir = tempfile::tempdir()?;
        let args = [
            "storage::state_machine_applies_each_entry_once_across_a_kill",
            "--exact",
            "--nocapture",
        ];
        let killed = kill_child_after(&args, dir.path(), Duration::from_millis(1500))?;
        assert!(
            killed.killed,
            "the child ran until killed: {}",
            killed.stderr
        );
        let acked: u64 = killed.acks.last().ok_or("nothing applied")?.parse()?;
        assert!(acked > 1024, "the child applied past a mark ({acked})");

        let mut sm = EventStateMachine::open(dir.path())?;
        let events = sm.event_store();
        let in_store = events.latest_sequence().map_or(0, |l| l + 1);
        assert!(
            in_store >= acked,
            "every applied entry's event is in the store"
        );
        rt()?.block_on(async {
            let (applied, _) = sm.applied_state().await?;
            let from = applied.map_or(1, |id| id.index + 1);
            assert!(
                from <= acked + 1,
                "the mark is no later than what was applied"
            );
            let last = acked + 100;
            let responses = sm.apply((from..=last).map(sm_entry)).await?;
            assert_eq!(responses.len() as u64, last - from + 1);
            for (i, response) in (from..).zip(&responses) {
                assert_eq!(
                    response.event_seq,
                    Some(i - 1),
                    "entry {i} is event {}, applied again or not",
                    i - 1
                );
            }
            assert_eq!(events.latest_sequence(), Some(last - 1), "no event twice");
            let view = events.read(Consistency::Strong)?;
            let want = expected_after(last);
            assert_eq!(view.len(), want.len());
            for (id, data) in &want {
                assert_eq!(view.data(id), Some(data.as_str()));
            }
            Ok::<_, Error>(())
        })
    }

    #[test]
    fn snapshots_survive_a_reopen_and_install_elsewhere() -> Result<(), Error> {
        let a = tempfile::tempdir()?;
        let b = tempfile::tempdir()?;
        rt()?.block_on(async {
            let mut sm = EventStateMachine::open(a.path())?;
            sm.apply((1..=60).map(sm_entry)).await?;
            let snapshot = {
                use openraft::RaftSnapshotBuilder;
                sm.get_snapshot_builder().await.build_snapshot().await?
            };
            assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 60)));
            // Applied after the snapshot: not in it.
            sm.apply((61..=70).map(sm_entry)).await?;
            drop(sm);

            let mut sm = EventStateMachine::open(a.path())?;
            let current = sm
                .get_current_snapshot()
                .await?
                .ok_or("the snapshot is kept")?;
            assert_eq!(current.meta, snapshot.meta);
            assert_eq!(current.snapshot.get_ref(), snapshot.snapshot.get_ref());
            assert_eq!(sm.applied_state().await?.0, Some(log_id(1, 70)));

            // Another node with different items of its own installs it: its state becomes
            // the snapshot's, by events appended to its own history.
            let mut other = EventStateMachine::open(b.path())?;
            other
                .apply((1..=3).map(|i| {
                    let mut e = sm_entry(i + 1000);
                    e.log_id = log_id(1, i);
                    e
                }))
                .await?;
            other
                .install_snapshot(&current.meta, current.snapshot)
                .await?;
            assert_eq!(other.applied_state().await?.0, Some(log_id(1, 60)));
            let view = other.event_store().read(Consistency::Strong)?;
            let want = expected_after(60);
            assert_eq!(view.len(), want.len());
            for (id, data) in &want {
                assert_eq!(view.data(id), Some(data.as_str()));
            }
            drop(view);
            drop(other);
            let mut other = EventStateMachine::open(b.path())?;
            let kept = other
                .get_current_snapshot()
                .await?
                .ok_or("installed snapshot kept")?;
            assert_eq!(kept.meta, snapshot.meta);
            // Applying continues after it.
            other.apply((61..=70).map(sm_entry)).await?;
            let view = other.event_store().read(Consistency::Strong)?;
            assert_eq!(view.len(), expected_after(70).len());
            Ok::<_, Error>(())
        })
    }
}
