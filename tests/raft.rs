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

    /// An install interrupted after the snapshot was saved (the `installing` file of the
    /// documented format) is finished by the next open.
    #[test]
    fn an_interrupted_install_is_finished_at_open() -> Result<(), Error> {
        let a = tempfile::tempdir()?;
        let b = tempfile::tempdir()?;
        rt()?.block_on(async {
            let mut sm = EventStateMachine::open(a.path())?;
            sm.apply((1..=40).map(sm_entry)).await?;
            let snapshot = {
                use openraft::RaftSnapshotBuilder;
                sm.get_snapshot_builder().await.build_snapshot().await?
            };
            // Node b has applied other things, then crashed mid-install.
            let mut other = EventStateMachine::open(b.path())?;
            other.apply((1..=3).map(|i| sm_entry(i + 1000))).await?;
            drop(other);
            let meta = postcard::to_allocvec(&snapshot.meta)?;
            let mut file = b"MRI1".to_vec();
            file.extend_from_slice(&u32::try_from(meta.len())?.to_le_bytes());
            file.extend_from_slice(&meta);
            file.extend_from_slice(snapshot.snapshot.get_ref());
            std::fs::write(b.path().join("installing"), file)?;

            let mut other = EventStateMachine::open(b.path())?;
            assert!(!b.path().join("installing").exists());
            assert_eq!(other.applied_state().await?.0, Some(log_id(1, 40)));
            let view = other.event_store().read(Consistency::Strong)?;
            let want = expected_after(40);
            assert_eq!(view.len(), want.len());
            for (id, data) in &want {
                assert_eq!(view.data(id), Some(data.as_str()));
            }
            let current = other.get_current_snapshot().await?.ok_or("installed")?;
            assert_eq!(current.meta, snapshot.meta);
            Ok::<_, Error>(())
        })
    }

    /// A request whose event cannot fit in a segment is refused the same way on every node:
    /// no event, a reason, and applying goes on.
    #[test]
    fn a_request_too_large_for_a_segment_is_refused_not_fatal() -> Result<(), Error> {
        let dir = tempfile::tempdir()?;
        rt()?.block_on(async {
            let mut sm = EventStateMachine::open(dir.path())?;
            let huge = Entry {
                log_id: log_id(1, 1),
                payload: EntryPayload::Normal(Request::Write {
                    writer_id: 1,
                    item_id: Uuid::from_u128(1),
                    data: "x".repeat((mmlog::SEGMENT_SIZE_DEFAULT as usize) + 1),
                }),
            };
            let responses = sm.apply([huge, sm_entry(2)]).await?;
            assert_eq!(responses[0].event_seq, None);
            assert!(responses[0].refused.is_some(), "{:?}", responses[0]);
            assert_eq!(responses[1].event_seq, Some(0));
            assert_eq!(sm.applied_state().await?.0, Some(log_id(1, 2)));
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

/// The cluster again, each node its own process, and the leader killed with SIGKILL.
mod processes {
    use std::fs::File;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use mmlog::events::Consistency;
    use mmlog::raft::network::Client;
    use mmlog::raft::{Node, NodeId};

    use super::cluster::{BoxError, Expected, check_state, write_many};

    const TEST: &str = "processes::a_leader_killed_with_sigkill_loses_no_acknowledged_write";
    /// Set in a child: `id;directory;address of node 1,2,3`.
    const NODE_ENV: &str = "MMLOG_RAFT_TEST_NODE";

    /// In a child: runs node `id` until killed. Node 1 initializes the cluster (a node that
    /// already is in one refuses, which is fine on a restart).
    fn run_node_if_child() {
        let Ok(spec) = std::env::var(NODE_ENV) else {
            return;
        };
        let run = || -> Result<(), BoxError> {
            let mut parts = spec.split(';');
            let id: NodeId = parts.next().ok_or("no id")?.parse()?;
            let dir = parts.next().ok_or("no directory")?.to_owned();
            let addrs: Vec<(NodeId, String)> = (1..).zip(parts.map(str::to_owned)).collect();
            let addr = addrs
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, a)| a.clone())
                .ok_or("no address")?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(&addr).await?;
                let node = Node::start(id, &dir, listener, Node::fast_failover_config()?).await?;
                if id == 1 {
                    let _ = node.initialize_cluster(&addrs).await;
                }
                loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            })
        };
        if let Err(e) = run() {
            eprintln!("node failed: {e}");
            std::process::exit(2);
        }
    }

    fn spawn(id: NodeId, root: &Path, addrs: &[(NodeId, String)]) -> Result<Child, BoxError> {
        let dir = root.join(format!("node-{id}"));
        let list: Vec<&str> = addrs.iter().map(|(_, a)| a.as_str()).collect();
        let spec = format!("{id};{};{}", dir.display(), list.join(";"));
        let stderr = File::create(root.join(format!("node-{id}.stderr")))?;
        Ok(Command::new(std::env::current_exe()?)
            .args([TEST, "--exact", "--nocapture"])
            .env(NODE_ENV, spec)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?)
    }

    async fn wait_until(
        client: &mut Client,
        ids: &[NodeId],
        what: &str,
        mut done: impl FnMut(&[mmlog::raft::network::Status]) -> bool,
    ) -> Result<Vec<mmlog::raft::network::Status>, BoxError> {
        let start = tokio::time::Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            let mut all = Vec::new();
            for &id in ids {
                if let Ok(s) = client.status(id).await {
                    all.push(s);
                }
            }
            if all.len() == ids.len() && done(&all) {
                return Ok(all);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!("timed out waiting until {what}").into())
    }

    #[test]
    fn a_leader_killed_with_sigkill_loses_no_acknowledged_write() -> Result<(), BoxError> {
        run_node_if_child();
        let root = tempfile::tempdir()?;
        let mut addrs = Vec::new();
        for id in 1..=3u64 {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            addrs.push((id, listener.local_addr()?.to_string()));
        }
        let mut children: Vec<Option<Child>> = Vec::new();
        for id in 1..=3u64 {
            children.push(Some(spawn(id, root.path(), &addrs)?));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let outcome = rt.block_on(async {
            let ids = [1, 2, 3];
            let mut client = Client::new(addrs.clone(), Duration::from_millis(500));
            wait_until(&mut client, &ids, "a leader is elected", |s| {
                s.iter().all(|s| s.leader.is_some())
            })
            .await?;
            let mut expected = Expected::new();
            write_many(&addrs, 4, 300, false, &mut expected).await?;

            let status = wait_until(&mut client, &ids, "the leader is known", |s| {
                s.iter().any(|s| s.leader.is_some())
            })
            .await?;
            let leader = status.iter().find_map(|s| s.leader).ok_or("no leader")?;
            let slot = usize::try_from(leader - 1)?;
            if let Some(mut child) = children[slot].take() {
                child.kill()?; // SIGKILL
                child.wait()?;
            }
            // More than a snapshot's worth after the kill, with removals.
            write_many(&addrs, 4, 1500, true, &mut expected).await?;
            children[slot] = Some(spawn(leader, root.path(), &addrs)?);
            wait_until(&mut client, &ids, "every node applied everything", |s| {
                let top = s.iter().filter_map(|s| s.last_applied).max();
                let leaders: Vec<_> = s.iter().map(|s| s.leader).collect();
                leaders.iter().all(|l| l.is_some() && *l == leaders[0])
                    && s.iter().all(|s| s.last_applied == top && s.last_log <= top)
            })
            .await?;
            Ok::<_, BoxError>((leader, expected))
        });
        // Whatever happened, no node outlives the test.
        for child in children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let (killed, expected) = outcome.map_err(|e| {
            let logs: String = (1..=3)
                .map(|i| {
                    let p = root.path().join(format!("node-{i}.stderr"));
                    format!(
                        "node {i}: {}\n",
                        std::fs::read_to_string(p).unwrap_or_default()
                    )
                })
                .collect();
            format!("{e}\n{logs}")
        })?;
        assert!(expected.len() > 1000, "writes were acknowledged");
        // Every node, itself killed with SIGKILL at the end, holds exactly the
        // acknowledged state in its own storage.
        for id in 1..=3u64 {
            let (_, sm) = mmlog::raft::open(root.path().join(format!("node-{id}")))?;
            let view = sm.event_store().read(Consistency::Strong)?;
            check_state(id, view.state(), &expected)
                .map_err(|e| format!("{e} (node {killed} was the killed leader)"))?;
        }
        Ok(())
    }
}
