//! Read replicas (`mmlog::replica::LogReplica`, `mmlog::events::EventStoreReplica`): a log and
//! an event store followed read-only while their owner writes, compacts, crashes and
//! recovers; in this process, and in other processes.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use mmlog::events::{
    Consistency, Event, EventStore, EventStoreOptions, EventStoreReplica, ItemsPerWriter,
    RecentChanges, State,
};
use mmlog::format::frame::encode_record;
use mmlog::format::segment_header::SEGMENT_HEADER_LEN;
use mmlog::replica::{LogReplica, ReplicaReader};
use mmlog::{ArchiveMode, Error, Log, Options, Retention};
use uuid::Uuid;

/// A digest of a state's live items (id, data, writer, sequence number), in id order.
fn digest(state: &State) -> u64 {
    let mut items: Vec<_> = state
        .items()
        .map(|(id, i)| (id, i.data.to_owned(), i.writer_id, i.seq))
        .collect();
    items.sort();
    let mut h = DefaultHasher::new();
    items.hash(&mut h);
    h.finish()
}

/// Live items per writer, as `ItemsPerWriter` should count them.
fn per_writer(state: &State) -> BTreeMap<u32, u64> {
    let mut counts = BTreeMap::new();
    for (_, item) in state.items() {
        *counts.entry(item.writer_id).or_default() += 1;
    }
    counts
}

/// Everything `reader` has now: `(seq, timestamp_ns, payload)`.
fn drain(reader: &mut ReplicaReader) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(rec) = reader.next() {
        let rec = rec.expect("record");
        out.push((rec.seq(), rec.timestamp_ns(), rec.payload().to_vec()));
    }
    out
}

fn owner_records(log: &Log) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut r = log.read_from(0).expect("reader");
    while let Some(rec) = r.next() {
        let rec = rec.expect("record");
        out.push((rec.seq(), rec.timestamp_ns(), rec.payload().to_vec()));
    }
    out
}

#[test]
fn a_replica_follows_concurrent_writers_and_equals_the_owner_at_each_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open_with(
        dir.path(),
        Options::default().segment_size(16 << 10),
        EventStoreOptions {
            snapshot_every_events: 700,
            snapshot_every: None,
            refresh_every: Duration::from_millis(10),
        },
    )
    .unwrap();
    let replica = EventStoreReplica::open_with(dir.path(), Duration::from_millis(5)).unwrap();
    assert_eq!(replica.read(Consistency::Strong).unwrap().version(), None);
    let model = replica
        .subscribe("per-writer", ItemsPerWriter::default())
        .unwrap();
    let mut follower = replica.log().read_from(0).unwrap();
    let mut followed = Vec::new();
    let mut compared = 0;
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..3u32)
            .map(|w| {
                let store = &store;
                s.spawn(move || {
                    let mut live = Vec::new();
                    for i in 0..800usize {
                        let (_, id) = store.write(w, format!("writer {w} item {i}")).unwrap();
                        live.push(id);
                        if i % 3 == 2 {
                            let id = live.swap_remove((i * 7) % live.len());
                            store.remove(w, id).unwrap();
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                })
            })
            .collect();
        // While they write: every state the replica serves is the owner's at that version.
        let mut last = None;
        while writers.iter().any(|w| !w.is_finished()) {
            let now = replica.read(Consistency::Strong).unwrap();
            assert!(now.version() >= last, "{:?} after {last:?}", now.version());
            last = now.version();
            if let Some(v) = now.version() {
                assert_eq!(*now.state(), *store.state_at_seq(v).unwrap().state());
                compared += 1;
            }
            followed.extend(drain(&mut follower));
            std::thread::sleep(Duration::from_millis(3));
        }
    });
    assert!(
        compared > 3,
        "only {compared} states compared while writing"
    );

    let owner = store.read(Consistency::Strong).unwrap();
    let v = owner.version().unwrap();
    assert_eq!(v, 3 * (800 + 266) - 1);
    let mine = replica
        .wait_for(v, Duration::from_secs(10))
        .unwrap()
        .expect("caught up");
    assert_eq!(mine.version(), Some(v));
    assert_eq!(*mine.state(), *owner.state());
    assert_eq!(digest(&mine), digest(&owner));
    let eventual = replica.read(Consistency::Eventual).unwrap();
    assert_eq!(eventual.version(), Some(v));

    // The read model, fed from the replica's events.
    assert!(
        model.wait_for(v, Duration::from_secs(10)),
        "{:?}",
        model.error()
    );
    let counts: BTreeMap<u32, u64> =
        model.read(|m| m.counts().iter().map(|(w, n)| (*w, *n)).collect());
    assert_eq!(counts, per_writer(&owner));
    model.stop().unwrap();

    // The plain log, record by record, across rollovers.
    while (followed.len() as u64) < v + 1 {
        assert!(follower.wait(Duration::from_secs(10)), "{}", followed.len());
        followed.extend(drain(&mut follower));
    }
    assert_eq!(followed, owner_records(store.log()));
    assert!(store.log().stats().segments > 3);

    // Time travel, by sequence number and by time, and the events themselves.
    assert!(store.snapshots_taken() > 0);
    for k in [0, v / 3, v / 2, v - 1, v] {
        let (a, b) = (
            replica.state_at_seq(k).unwrap(),
            store.state_at_seq(k).unwrap(),
        );
        assert_eq!(*a.state(), *b.state(), "at {k}");
    }
    for k in [v / 4, v / 2 + 1, v] {
        let t = mmlog_time(followed[k as usize].1);
        let (a, b) = (
            replica.state_at_time(t).unwrap(),
            store.state_at_time(t).unwrap(),
        );
        assert_eq!(*a.state(), *b.state(), "as of record {k}");
    }
    let seqs: Vec<u64> = replica
        .events_from(v - 9)
        .unwrap()
        .map(|e| e.unwrap().seq())
        .collect();
    assert_eq!(seqs, (v - 9..=v).collect::<Vec<_>>());
    assert_eq!(replica.background_error(), None);
    replica.close().unwrap();
    store.close().unwrap();
}

fn mmlog_time(ns: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)
}

#[test]
fn a_replica_behind_compaction_starts_again_from_the_newest_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .segment_size(16 << 10)
        .retention(Retention::default());
    let store = EventStore::open_with(
        dir.path(),
        opts,
        EventStoreOptions {
            snapshot_every_events: 0,
            snapshot_every: None,
            refresh_every: Duration::from_millis(10),
        },
    )
    .unwrap();
    for i in 0..50 {
        store.write(1, format!("early {i}")).unwrap();
    }
    // A replica that catches up only when asked, and a reader of the log.
    let replica = EventStoreReplica::open_with(dir.path(), Duration::from_secs(3600)).unwrap();
    assert_eq!(
        replica.read(Consistency::Eventual).unwrap().version(),
        Some(49)
    );
    let log = replica.log().clone();
    let mut behind = log.read_from(0).unwrap();
    assert_eq!(drain(&mut behind).len(), 50);

    // The owner goes on, snapshots, and compacts away what the replica has not read.
    let mut live = Vec::new();
    for i in 0..3000 {
        let (_, id) = store
            .write(2, format!("late {i:05} with some bytes to fill segments"))
            .unwrap();
        live.push(id);
        if i % 4 == 3 {
            store.remove(3, live.swap_remove(i % live.len())).unwrap();
        }
    }
    store.snapshot().unwrap();
    store.log().sync().unwrap();
    let report = store.log().compact().unwrap();
    assert!(report.segments_removed >= 2, "{report:?}");
    let first_live = store.log().stats().first_seq;
    assert!(first_live > 50, "{first_live}");
    for i in 0..5 {
        store.write(4, format!("after the snapshot {i}")).unwrap();
    }

    // Behind: it catches up from the snapshot, to the owner's state.
    assert_eq!(
        replica.read(Consistency::Eventual).unwrap().version(),
        Some(49)
    );
    let owner = store.read(Consistency::Strong).unwrap();
    let now = replica.read(Consistency::Strong).unwrap();
    assert_eq!(now.version(), owner.version());
    assert_eq!(*now.state(), *owner.state());

    // The plain reader reads its segment to the end (its file is gone, not its descriptor),
    // then says it fell behind, and keeps saying so.
    let mut read_on = 0;
    let err = loop {
        match behind.next() {
            Some(Ok(_)) => read_on += 1,
            Some(Err(e)) => break e,
            None => panic!("a reader behind compaction must say so"),
        }
    };
    assert!(behind.fell_behind(), "{err}");
    assert!(err.to_string().contains("compacted away"), "{err}");
    assert!(read_on > 0 && 50 + read_on < first_live, "{read_on}");
    assert!(matches!(behind.next(), Some(Err(_))));

    // A new reader cannot start in the deleted past; from the checkpoint it can.
    assert!(matches!(
        log.read_from(0),
        Err(Error::InvalidArgument { .. })
    ));
    let (cp, mut after) = log.read_from_checkpoint().unwrap();
    let cp = cp.expect("the snapshot");
    let owners = store.log().latest_checkpoint().unwrap().unwrap();
    assert_eq!((cp.seq(), cp.data()), (owners.seq(), owners.data()));
    assert_eq!(after.next_seq(), cp.seq() + 1);
    let rest: Vec<u64> = drain(&mut after).into_iter().map(|r| r.0).collect();
    assert_eq!(rest, (cp.seq() + 1..cp.seq() + 6).collect::<Vec<_>>());

    // A replica opened now starts from the snapshot.
    let fresh = EventStoreReplica::open(dir.path()).unwrap();
    assert_eq!(
        *fresh.read(Consistency::Strong).unwrap().state(),
        *owner.state()
    );
    // Time travel: before the snapshot the events are gone, for the owner as for the
    // replicas; from it on, they agree.
    assert!(store.state_at_seq(10).is_err());
    assert!(replica.state_at_seq(10).is_err());
    let k = cp.seq() + 3;
    assert_eq!(
        *replica.state_at_seq(k).unwrap().state(),
        *store.state_at_seq(k).unwrap().state()
    );
    store.close().unwrap();
}

#[test]
fn a_replica_waits_at_a_crashed_owners_tail_and_reads_the_next_owners_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap();
    for i in 0..10 {
        log.append(format!("first {i}").as_bytes()).unwrap();
    }
    let replica = LogReplica::open(dir.path()).unwrap();
    assert_eq!(replica.owner_pid(), Some(std::process::id()));
    let mut reader = replica.read_from(0).unwrap();
    assert_eq!(drain(&mut reader).len(), 10);
    log.close().unwrap();
    assert_eq!(replica.owner_pid(), None);

    // What a crash leaves behind: a reservation for record 10 never published, and record 11
    // published after it.
    let found = mmlog::inspect::inspect(dir.path(), false).unwrap();
    let seg = found.segments.last().unwrap();
    let end = SEGMENT_HEADER_LEN as u64 + seg.bytes_used;
    let mut buf = vec![0u8; 256];
    let hole = encode_record(&mut buf, 10, 1, b"never published").unwrap();
    let n = encode_record(&mut buf, 11, 1, b"published after a hole").unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .unwrap();
    file.write_all_at(&buf[..n as usize], end + hole).unwrap();
    drop(file);
    assert!(!reader.wait(Duration::from_millis(30)));
    assert!(reader.next().is_none());

    // The next owner's recovery cuts the tail there, and its records follow.
    let log = Log::open(dir.path(), Options::default()).unwrap();
    assert!(log.recovery_report().truncation.is_some());
    for i in 10..13 {
        log.append(format!("second {i}").as_bytes()).unwrap();
    }
    assert!(reader.wait(Duration::from_secs(10)));
    let got: Vec<(u64, Vec<u8>)> = drain(&mut reader)
        .into_iter()
        .map(|(s, _, p)| (s, p))
        .collect();
    let expected: Vec<(u64, Vec<u8>)> = (10..13)
        .map(|i| (i, format!("second {i}").into_bytes()))
        .collect();
    assert_eq!(got, expected);
    log.close().unwrap();
}

#[test]
fn a_directory_that_is_not_a_log_is_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let not_a_log = |dir: &Path| {
        let log = LogReplica::open(dir);
        assert!(matches!(log, Err(Error::NotALog { .. })), "{log:?}");
        let store = EventStoreReplica::open(dir);
        assert!(matches!(store, Err(Error::NotALog { .. })), "{store:?}");
    };
    not_a_log(&tmp.path().join("missing"));
    not_a_log(tmp.path());
    let garbage = tmp.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("notes.txt"), b"hello").unwrap();
    not_a_log(&garbage);
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    not_a_log(&file);
    let fake = tmp.path().join("fake");
    std::fs::create_dir_all(fake.join("segments")).unwrap();
    let junk: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(fake.join("segments/00000000000000000000.seg"), junk).unwrap();
    let err = LogReplica::open(&fake).unwrap_err();
    assert!(err.to_string().contains("not a segment file"), "{err}");
    not_a_log(&fake);

    // A log whose records are not events: the event store's replica says which one.
    let plain = tmp.path().join("plain");
    let log = Log::open(&plain, Options::default()).unwrap();
    log.append(b"\xffnot an event").unwrap();
    let err = EventStoreReplica::open(&plain).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadEvent { seq: 0, .. } | Error::UnknownEvent { seq: 0, .. }
        ),
        "{err:?}"
    );
    log.close().unwrap();
}

/// Every file and directory under `root`: kind, length, modification time and contents.
fn tree(root: &Path) -> BTreeMap<PathBuf, (bool, u64, i64, i64, u64)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let contents = if md.is_dir() {
                todo.push(path.clone());
                0
            } else {
                let mut h = DefaultHasher::new();
                std::fs::read(&path).unwrap().hash(&mut h);
                h.finish()
            };
            let key = path.strip_prefix(root).unwrap().to_path_buf();
            let mtime = (md.mtime(), md.mtime_nsec(), md.is_dir());
            out.insert(key, (mtime.2, md.len(), mtime.0, mtime.1, contents));
        }
    }
    let md = std::fs::metadata(root).unwrap();
    out.insert(
        PathBuf::from("."),
        (true, md.len(), md.mtime(), md.mtime_nsec(), 0),
    );
    out
}

#[test]
fn a_replica_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let opts = Options::default()
        .segment_size(16 << 10)
        .retention(Retention::default().archive(ArchiveMode::Compress));
    {
        let store = EventStore::open(&dir, opts).unwrap();
        let model = store
            .subscribe("per-writer", ItemsPerWriter::default())
            .unwrap();
        let mut live = Vec::new();
        for i in 0..1500 {
            let (_, id) = store
                .write(i % 4, format!("item {i} of the store"))
                .unwrap();
            live.push(id);
            if i % 5 == 4 {
                store
                    .remove(9, live.swap_remove(i as usize % live.len()))
                    .unwrap();
            }
        }
        store.snapshot().unwrap();
        let seq = store.latest_sequence().unwrap();
        assert!(model.wait_for(seq, Duration::from_secs(10)));
        model.stop().unwrap(); // saves projections/per-writer.model
        store.log().sync().unwrap();
        let report = store.log().compact().unwrap();
        assert!(report.segments_removed > 0, "{report:?}");
        for i in 0..20 {
            store.write(5, format!("after {i}")).unwrap();
        }
        store.close().unwrap();
    }
    let before = tree(&dir);
    assert!(
        before.keys().any(|k| k.starts_with("archive")),
        "{before:?}"
    );

    let replica = EventStoreReplica::open_with(&dir, Duration::from_millis(1)).unwrap();
    let now = replica.read(Consistency::Strong).unwrap();
    let v = now.version().unwrap();
    assert_eq!(v, 1500 + 300 + 20 - 1);
    assert!(
        replica
            .wait_for(v, Duration::from_secs(1))
            .unwrap()
            .is_some()
    );
    // Time travel into the archive (compressed segments), and before the first event.
    assert_eq!(replica.state_at_seq(v / 3).unwrap().version(), Some(v / 3));
    let long_ago = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(replica.state_at_time(long_ago).unwrap().version(), None);
    assert_eq!(replica.events_from(0).unwrap().count() as u64, v + 1);
    // Read models: one from the owner's saved copy, one from the first event.
    let saved = replica
        .subscribe("per-writer", ItemsPerWriter::default())
        .unwrap();
    let recent = replica.subscribe("recent", RecentChanges::new(5)).unwrap();
    assert!(saved.wait_for(v, Duration::from_secs(10)));
    assert!(recent.wait_for(v, Duration::from_secs(10)));
    let counts: BTreeMap<u32, u64> =
        saved.read(|m| m.counts().iter().map(|(w, n)| (*w, *n)).collect());
    assert_eq!(counts, per_writer(&now));
    assert_eq!(recent.read(|m| m.changes().last().map(|c| c.seq)), Some(v));
    saved.stop().unwrap();
    recent.stop().unwrap();
    // The log underneath: checkpoints and a reader through the archive.
    let log = replica.log();
    assert_eq!(log.owner_pid(), None);
    assert!(log.latest_checkpoint().unwrap().is_some());
    assert!(log.checkpoint_at_or_before(v).unwrap().is_some());
    assert!(
        log.checkpoint_at_or_before_time(long_ago)
            .unwrap()
            .is_none()
    );
    let mut reader = log.read_from(0).unwrap();
    assert_eq!(drain(&mut reader).len() as u64, v + 1);
    std::thread::sleep(Duration::from_millis(20)); // a few background catch-ups
    replica.close().unwrap();

    assert_eq!(tree(&dir), before, "the replica changed the directory");
}

// ---- One writer process at a time, two replica processes -----------------------------------

const ROLE_ENV: &str = "MMLOG_REPLICA_TEST_ROLE";
const DIR_ENV: &str = "MMLOG_REPLICA_TEST_DIR";
const PROCESS_TEST: &str = "replica::replicas_in_other_processes_converge_to_the_writers_state";
/// Prefix of the lines children report on.
const LINE: &str = "replica-test ";
/// The item the last writer writes last: a replica that has it has everything.
const END_ID: Uuid = Uuid::from_u128(0x00e7_d000_0000_4000_8000_0000_0000_0e7d);
/// A child that lives this long was forgotten by its parent: it exits on its own.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);

/// The writers compact every 30 ms, deleting what the newest snapshot covers but the last
/// 1000 records: a replica's read model that falls further behind would stop.
fn process_options() -> Options {
    Options::default().segment_size(16 << 10).retention(
        Retention::default()
            .keep_records(1000)
            .archive(ArchiveMode::Delete)
            .every(Duration::from_millis(30)),
    )
}

fn process_store_options() -> EventStoreOptions {
    EventStoreOptions {
        snapshot_every_events: 300,
        snapshot_every: None,
        refresh_every: Duration::from_millis(10),
    }
}

fn report(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{LINE}{line}");
    let _ = out.flush();
}

/// Writes and removes items from `threads` threads, `per_thread` events each, a little
/// paced; reports the sequence numbers as it goes when `ack`.
fn write_events(store: &EventStore, first_writer: u32, per_thread: usize, ack: bool) {
    let acked = Mutex::new(());
    std::thread::scope(|s| {
        for w in first_writer..first_writer + 2 {
            let acked = &acked;
            s.spawn(move || {
                let mut live = Vec::new();
                for i in 0..per_thread {
                    let (seq, id) = store.write(w, format!("w{w} #{i}")).unwrap();
                    live.push(id);
                    if i % 4 == 3 {
                        store.remove(w, live.swap_remove(i % live.len())).unwrap();
                    }
                    if ack && i % 20 == 0 {
                        let _g = acked.lock();
                        report(&format!("acked {seq}"));
                    }
                    std::thread::sleep(Duration::from_micros(150));
                }
            });
        }
    });
}

/// The child processes' side of the test.
fn child(role: &str, dir: &Path) {
    let started = Instant::now();
    match role {
        "writer1" => {
            let store =
                EventStore::open_with(dir, process_options(), process_store_options()).unwrap();
            write_events(&store, 1, 1500, true);
            // Killed before this, normally.
            std::thread::sleep(CHILD_LIFETIME.saturating_sub(started.elapsed()));
        }
        "writer2" => {
            let store =
                EventStore::open_with(dir, process_options(), process_store_options()).unwrap();
            write_events(&store, 3, 300, false);
            let end = Event::DataWritten {
                writer_id: 99,
                item_id: END_ID,
                data: "END".into(),
            };
            let seq = store.append(&end).unwrap();
            store.close().unwrap();
            report(&format!("done {seq}"));
        }
        "replica" => {
            let replica = EventStoreReplica::open_with(dir, Duration::from_millis(5)).unwrap();
            let model = replica
                .subscribe("per-writer", ItemsPerWriter::default())
                .unwrap();
            let (mut errors, mut reads, mut last) = (0u64, 0u64, None);
            let state = loop {
                assert!(
                    started.elapsed() < CHILD_LIFETIME,
                    "no END after {reads} reads"
                );
                match replica.read(Consistency::Strong) {
                    Ok(now) => {
                        reads += 1;
                        assert!(now.version() >= last, "went back from {last:?}");
                        last = now.version();
                        if now.data(&END_ID) == Some("END") {
                            break now;
                        }
                    }
                    Err(e) => {
                        eprintln!("replica: {e}");
                        errors += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            };
            let v = state.version().unwrap();
            assert!(
                model.wait_for(v, Duration::from_secs(10)),
                "{:?}",
                model.error()
            );
            let counts: BTreeMap<u32, u64> =
                model.read(|m| m.counts().iter().map(|(w, n)| (*w, *n)).collect());
            let mut h = DefaultHasher::new();
            counts.hash(&mut h);
            report(&format!(
                "result version={v} digest={:x} items={} model={:x} errors={errors} reads={reads}",
                digest(&state),
                state.len(),
                h.finish()
            ));
        }
        other => panic!("unknown role {other}"),
    }
}

/// A child process of this test, and the lines it reports.
struct Child {
    role: &'static str,
    process: std::process::Child,
    lines: mpsc::Receiver<String>,
    stdout: Option<std::thread::JoinHandle<()>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Child {
    fn spawn(role: &'static str, dir: &Path) -> Child {
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args([PROCESS_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            .env(DIR_ENV, dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let mut stderr = process.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The first line may follow the harness's `test <name> ... `.
                if let Some(at) = line.find(LINE)
                    && tx.send(line[at + LINE.len()..].to_string()).is_err()
                {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Child {
            role,
            process,
            lines,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    /// The first line the child reports that `wanted` accepts, within `timeout`.
    fn line(&self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if wanted(&l) => return Some(l),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Waits for the child to exit by itself (killing it after `timeout`); its reported
    /// lines that start with `prefix`.
    fn finish(mut self, timeout: Duration, prefix: &str) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.process.kill();
                let _ = self.process.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Every line the child wrote is in the channel once its output is closed.
        if let Some(h) = self.stdout.take() {
            let _ = h.join();
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        assert!(
            status.is_some_and(|s| s.success()),
            "{} ended with {status:?}; stderr:\n{stderr}",
            self.role
        );
        let all: Vec<String> = self.lines.try_iter().collect();
        eprintln!("{}: {all:?}\n{stderr}", self.role);
        all.into_iter().filter(|l| l.starts_with(prefix)).collect()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Parses `key=value` words.
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

#[test]
fn replicas_in_other_processes_converge_to_the_writers_state() {
    if let (Ok(role), Some(dir)) = (std::env::var(ROLE_ENV), std::env::var_os(DIR_ENV)) {
        child(&role, Path::new(&dir));
        std::process::exit(0);
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    // The store exists before the replicas start.
    EventStore::open_with(&dir, process_options(), process_store_options())
        .unwrap()
        .close()
        .unwrap();
    let replicas = [Child::spawn("replica", &dir), Child::spawn("replica", &dir)];

    // The first writer is killed (SIGKILL) in the middle of its writing.
    let mut writer1 = Child::spawn("writer1", &dir);
    let acked = writer1.line(Duration::from_secs(20), |l| {
        l.strip_prefix("acked ")
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|s| s >= 800)
    });
    assert!(acked.is_some(), "writer 1 acknowledged too little");
    // At some moment of its writing (its snapshots, compactions and appends).
    let jitter = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 20);
    std::thread::sleep(Duration::from_millis(jitter.into()));
    writer1.process.kill().unwrap();
    let status = writer1.process.wait().unwrap();
    assert!(!status.success());
    drop(writer1);

    // The second recovers the store, writes more, ends with END and closes.
    let writer2 = Child::spawn("writer2", &dir);
    let done = writer2.finish(Duration::from_secs(30), "done ");
    let end: u64 = done
        .first()
        .and_then(|l| l.strip_prefix("done "))
        .and_then(|s| s.parse().ok())
        .expect("writer 2 reports its last event");

    let results: Vec<String> = replicas
        .into_iter()
        .map(|r| {
            let mut lines = r.finish(Duration::from_secs(30), "result ");
            lines.pop().expect("a replica reports its result")
        })
        .collect();

    // The writer's state, as its next owner finds it.
    let owner = EventStore::open_with(&dir, process_options(), process_store_options()).unwrap();
    let state = owner.read(Consistency::Strong).unwrap();
    assert_eq!(state.version(), Some(end));
    // The writers compacted while the replicas followed.
    let first_seq = owner.log().stats().first_seq;
    assert!(first_seq > 0, "nothing was compacted");
    let mut h = DefaultHasher::new();
    per_writer(&state).hash(&mut h);
    let model = format!("{:x}", h.finish());
    for result in &results {
        let f = fields(result);
        assert_eq!(f["version"], end.to_string(), "{result}");
        assert_eq!(f["digest"], format!("{:x}", digest(&state)), "{result}");
        assert_eq!(f["items"], state.len().to_string(), "{result}");
        assert_eq!(f["model"], model, "{result}");
        assert_eq!(f["errors"], "0", "{result}");
    }
    owner.close().unwrap();
    println!(
        "two replica processes converged to version {end} ({} items; the log starts at \
         {first_seq}) in {:?}: {results:?}",
        state.len(),
        started.elapsed()
    );
}
