//! The event store through its public API.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use mmlog::events::{Consistency, Event, EventStore, EventStoreOptions};
use mmlog::{Error, HeldBy, Options, Retention};

fn small() -> Options {
    Options::default().segment_size(64 << 10)
}

#[test]
fn contract_example() -> Result<(), Error> {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path(), Options::default())?;
    let (seq, item): (u64, uuid::Uuid) = store.write(7, "hello")?;
    let seq2: u64 = store.remove(7, item)?;
    assert!(seq2 > seq);
    let latest: Option<u64> = store.latest_sequence();
    assert_eq!(latest, Some(seq2));
    let mut seen = Vec::new();
    for ev in store.events_from(0)? {
        let ev = ev?;
        let _ = (ev.seq(), ev.timestamp());
        match ev.event() {
            Event::DataWritten {
                writer_id,
                item_id,
                data,
            } => seen.push(format!("w {writer_id} {} {data}", *item_id == item)),
            Event::DataRemoved { writer_id, item_id } => {
                seen.push(format!("r {writer_id} {}", *item_id == item))
            }
            _ => {}
        }
    }
    assert_eq!(seen, vec!["w 7 true hello", "r 7 true"]);
    let state = store.read(Consistency::Strong)?;
    let _: Option<u64> = state.version();
    assert_eq!(state.version(), Some(seq2));
    let _: Option<&str> = state.data(&item);
    assert_eq!(state.data(&item), None);
    let _: usize = state.len();
    let then = store.state_at_seq(seq)?;
    assert_eq!(then.data(&item), Some("hello"));
    let then = store.state_at_time(SystemTime::now() - Duration::from_secs(60))?;
    assert_eq!((then.len(), then.version()), (0, None));
    Ok(())
}

#[test]
fn removing_an_item_that_is_not_live_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path(), small()).unwrap();
    let missing = uuid::Uuid::new_v4();
    assert!(matches!(
        store.remove(1, missing),
        Err(Error::NoSuchItem { item_id }) if item_id == missing
    ));
    let (_, item) = store.write(1, "x").unwrap();
    store.remove(2, item).unwrap();
    assert!(matches!(
        store.remove(2, item),
        Err(Error::NoSuchItem { .. })
    ));
    assert_eq!(store.latest_sequence(), Some(1));
}

#[test]
fn consistency_modes_say_what_they_reflect() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open_with(
        dir.path(),
        small(),
        EventStoreOptions {
            refresh_every: Duration::from_millis(20),
            ..EventStoreOptions::default()
        },
    )
    .unwrap();
    let (seq, item) = store.write(1, "a").unwrap();
    // Strong sees it at once.
    let s = store.read(Consistency::Strong).unwrap();
    assert_eq!((s.version(), s.data(&item)), (Some(seq), Some("a")));
    assert!(s.age() < Duration::from_secs(1));
    // A zero staleness bound catches up too.
    let (seq2, item2) = store.write(1, "b").unwrap();
    let s = store
        .read(Consistency::BoundedStaleness(Duration::ZERO))
        .unwrap();
    assert_eq!((s.version(), s.data(&item2)), (Some(seq2), Some("b")));
    // Eventual never touches the log; the background refresh brings it up to date.
    let (seq3, item3) = store.write(1, "c").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = store.read(Consistency::Eventual).unwrap();
        if s.version() == Some(seq3) {
            assert_eq!(s.data(&item3), Some("c"));
            break;
        }
        assert!(s.version() <= Some(seq3));
        assert!(
            Instant::now() < deadline,
            "eventual read stuck at {:?}",
            s.version()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // A generous bound serves the cache without catching up.
    let (seq4, _) = store.write(1, "d").unwrap();
    let s = store
        .read(Consistency::BoundedStaleness(Duration::from_secs(3600)))
        .unwrap();
    assert!(s.version() <= Some(seq4));
}

#[test]
fn concurrent_writers_and_readers_agree_with_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path(), small()).unwrap();
    std::thread::scope(|s| {
        for w in 0..8u32 {
            let store = &store;
            s.spawn(move || {
                let mut mine = Vec::new();
                for i in 0..500 {
                    let (_, id) = store.write(w, format!("w{w}-{i}")).unwrap();
                    mine.push(id);
                    if i % 3 == 0 {
                        let victim = mine.remove(0);
                        store.remove(w, victim).unwrap();
                    }
                }
            });
        }
        for _ in 0..2 {
            s.spawn(|| {
                let mut last = None;
                for _ in 0..200 {
                    let v = store.read(Consistency::Strong).unwrap();
                    assert!(v.version() >= last, "versions go backwards");
                    last = v.version();
                }
            });
        }
    });
    // Replaying every event by hand gives the same state.
    let mut expected: HashMap<uuid::Uuid, String> = HashMap::new();
    for ev in store.events_from(0).unwrap() {
        match ev.unwrap().event() {
            Event::DataWritten { item_id, data, .. } => {
                expected.insert(*item_id, data.clone());
            }
            Event::DataRemoved { item_id, .. } => {
                expected.remove(item_id);
            }
            _ => {}
        }
    }
    let state = store.read(Consistency::Strong).unwrap();
    assert_eq!(state.len(), expected.len());
    assert_eq!(state.len(), 8 * (500 - 167));
    for (id, data) in &expected {
        assert_eq!(state.data(id), Some(data.as_str()));
    }
}

#[test]
fn a_cold_start_loads_the_snapshot_and_replays_only_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || small().retention(Retention::default());
    let mut items = Vec::new();
    let version;
    {
        let store = EventStore::open(dir.path(), opts()).unwrap();
        for i in 0..3000 {
            items.push(store.write(i % 5, format!("item {i}")).unwrap().1);
        }
        for id in items.drain(..1000) {
            store.remove(9, id).unwrap();
        }
        let snap = store.snapshot().unwrap();
        assert_eq!(snap, store.latest_sequence());
        for i in 0..10 {
            items.push(store.write(1, format!("late {i}")).unwrap().1);
        }
        version = store.latest_sequence();
        // Everything the snapshot covers leaves the log: a replay from the start is now
        // impossible, so the state below can only come from the snapshot.
        let report = store.log().compact().unwrap();
        assert!(report.segments_removed > 0, "{report:?}");
        store.close().unwrap();
    }
    let store = EventStore::open(dir.path(), opts()).unwrap();
    let s = store.read(Consistency::Eventual).unwrap();
    assert_eq!(s.version(), version);
    assert_eq!(s.len(), 2010);
    assert_eq!(s.data(&items[0]), Some("item 1000"));
    assert_eq!(s.data(&items[2009]), Some("late 9"));
}

#[test]
fn snapshots_are_taken_every_n_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open_with(
        dir.path(),
        small(),
        EventStoreOptions {
            snapshot_every_events: 500,
            snapshot_every: None,
            refresh_every: Duration::from_millis(10),
        },
    )
    .unwrap();
    for i in 0..2000 {
        store.write(1, format!("{i}")).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.snapshots_taken() == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(store.background_error(), None);
    let cp = store.log().latest_checkpoint().unwrap().unwrap();
    assert!(cp.seq() >= 499);
}

#[test]
fn time_travel_by_sequence_and_time_uses_the_nearest_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path(), small().keep_checkpoints(10)).unwrap();
    let (s0, a) = store.write(1, "a").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let t1 = SystemTime::now();
    std::thread::sleep(Duration::from_millis(20));
    store.snapshot().unwrap();
    let (_, b) = store.write(1, "b").unwrap();
    let sr = store.remove(1, a).unwrap();
    store.snapshot().unwrap();
    let (s3, c) = store.write(1, "c").unwrap();

    let at0 = store.state_at_seq(s0).unwrap();
    assert_eq!((at0.len(), at0.data(&a)), (1, Some("a")));
    let before_removal = store.state_at_seq(sr - 1).unwrap();
    assert_eq!(
        (before_removal.data(&a), before_removal.data(&b)),
        (Some("a"), Some("b"))
    );
    let now = store.state_at_seq(s3).unwrap();
    assert_eq!(
        (now.data(&a), now.data(&b), now.data(&c)),
        (None, Some("b"), Some("c"))
    );
    let then = store.state_at_time(t1).unwrap();
    assert_eq!(
        (then.version(), then.data(&a), then.data(&b)),
        (Some(s0), Some("a"), None)
    );
    assert_eq!(store.state_at_time(SystemTime::now()).unwrap().len(), 2);
}

#[test]
fn an_unknown_event_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path(), small()).unwrap();
    store.write(1, "fine").unwrap();
    // A record from a newer release: event type 9.
    let seq = store.log().append(&[9, 1, 0, 0]).unwrap();
    let results: Vec<_> = store.events_from(0).unwrap().collect();
    assert!(results[0].is_ok());
    assert!(matches!(
        results[1],
        Err(Error::UnknownEvent { seq: s, event_type: 9, version: 1 }) if s == seq
    ));
    assert!(matches!(
        store.read(Consistency::Strong),
        Err(Error::UnknownEvent { .. })
    ));
}

#[test]
fn audit_trail_history_of_an_item_and_changes_in_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path(), small()).unwrap();
    let (_, keep) = store.write(1, "kept").unwrap();
    let (w, gone) = store.write(2, "gone").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let t1 = SystemTime::now();
    std::thread::sleep(Duration::from_millis(20));
    let r = store.remove(3, gone).unwrap();
    let (n, _) = store.write(4, "new").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let t2 = SystemTime::now();
    std::thread::sleep(Duration::from_millis(20));
    store.write(5, "later").unwrap();

    let h = store.history(gone).unwrap();
    let seqs: Vec<(u64, u32)> = h.iter().map(|e| (e.seq(), e.writer_id())).collect();
    assert_eq!(seqs, vec![(w, 2), (r, 3)]);
    assert_eq!(store.history(keep).unwrap().len(), 1);
    assert!(store.history(uuid::Uuid::new_v4()).unwrap().is_empty());

    let window = store.changes_between(t1, t2).unwrap();
    let who: Vec<(u64, u32)> = window.iter().map(|e| (e.seq(), e.writer_id())).collect();
    assert_eq!(who, vec![(r, 3), (n, 4)]);
}

#[test]
fn read_models_follow_the_stream_and_resume_after_a_restart() {
    use mmlog::events::{ItemsPerWriter, RecentChanges};
    let dir = tempfile::tempdir().unwrap();
    let opts = || small().retention(Retention::default().require_checkpoint(false));
    let mut all = Vec::new();
    {
        let store = EventStore::open(dir.path(), opts()).unwrap();
        let per_writer = store
            .subscribe("per-writer", ItemsPerWriter::default())
            .unwrap();
        let recent = store.subscribe("recent", RecentChanges::new(1000)).unwrap();
        for i in 0..300u32 {
            all.push(store.write(i % 3, format!("{i}")).unwrap().1);
        }
        for id in all.drain(..30) {
            store.remove(9, id).unwrap(); // writer 0, 1 and 2 each lose 10
        }
        let last = store.latest_sequence().unwrap();
        assert!(per_writer.wait_for(last, Duration::from_secs(10)));
        assert!(recent.wait_for(last, Duration::from_secs(10)));
        assert_eq!(per_writer.lag(store.latest_sequence()), 0);
        per_writer.read(|m| {
            assert_eq!(
                (m.count(0), m.count(1), m.count(2), m.count(9)),
                (90, 90, 90, 0)
            );
        });
        recent.read(|m| {
            let seqs: Vec<u64> = m.changes().map(|c| c.seq).collect();
            assert_eq!(seqs, (0..=last).collect::<Vec<_>>());
        });
        per_writer.stop().unwrap();
        recent.stop().unwrap();
        // Stopped models hold what they have not applied: these events stay in the log.
        for i in 0..2000u32 {
            store.write(4, format!("later {i}")).unwrap();
        }
        let report = store.log().compact().unwrap();
        assert!(
            matches!(report.held_by, Some(HeldBy::Consumer(ref n)) if n.starts_with("model.")),
            "{report:?}"
        );
        store.close().unwrap();
    }
    let store = EventStore::open(dir.path(), opts()).unwrap();
    let per_writer = store
        .subscribe("per-writer", ItemsPerWriter::default())
        .unwrap();
    let recent = store.subscribe("recent", RecentChanges::new(5000)).unwrap();
    let last = store.latest_sequence().unwrap();
    assert!(per_writer.wait_for(last, Duration::from_secs(10)));
    assert!(recent.wait_for(last, Duration::from_secs(10)));
    per_writer.read(|m| assert_eq!((m.count(0), m.count(4)), (90, 2000)));
    // Resumed, not replayed: every event exactly once, in order.
    recent.read(|m| {
        let seqs: Vec<u64> = m.changes().map(|c| c.seq).collect();
        assert_eq!(seqs, (0..=last).collect::<Vec<_>>());
    });
    assert!(per_writer.error().is_none());
}

#[test]
fn migration_walks_the_three_phases_with_no_mismatch() {
    use mmlog::events::{LockedStore, Migration, MigrationPhase};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    // The application as it was: a locked store with data in it.
    let locked = Arc::new(LockedStore::new());
    let old: Vec<uuid::Uuid> = (0..100)
        .map(|i| locked.write(i % 4, format!("old {i}")))
        .collect();

    let store = EventStore::open(dir.path(), small()).unwrap();
    let m = Migration::start(Arc::clone(&locked), store).unwrap();
    assert_eq!(
        (m.phase(), m.stats().backfilled),
        (MigrationPhase::DualWrite, 100)
    );

    // Phase 1: writes go to both; concurrent writers.
    let new: Vec<uuid::Uuid> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4u32)
            .map(|w| {
                let m = &m;
                s.spawn(move || {
                    (0..50)
                        .map(|i| m.write(w, &format!("new {w} {i}")).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    for id in &old[..10] {
        m.remove(0, *id).unwrap();
    }
    assert_eq!(locked.len(), 290);
    assert_eq!(m.read(&new[0]).unwrap().as_deref(), Some("new 0 0"));

    // Phase 2: reads from events, checked against the lock.
    assert_eq!(m.advance(), MigrationPhase::ReadMigration);
    for id in old.iter().chain(&new) {
        assert_eq!(m.read(id).unwrap(), locked.get(id));
    }
    let id = m.write(5, "during reads").unwrap();
    assert_eq!(m.read(&id).unwrap().as_deref(), Some("during reads"));
    let stats = m.stats();
    assert_eq!(
        (stats.compared_reads, stats.mismatches, stats.fallbacks),
        (301, 0, 0)
    );

    // A change made behind the adapter's back is seen as a mismatch.
    locked.put(old[50], 0, "edited".into());
    m.read(&old[50]).unwrap();
    assert_eq!(m.stats().mismatches, 1);
    locked.put(old[50], 2, "old 50".into());

    // Phase 3: the locked store is dropped; events alone answer.
    assert_eq!(m.advance(), MigrationPhase::Full);
    assert_eq!(Arc::strong_count(&locked), 1);
    let id2 = m.write(6, "after").unwrap();
    assert!(locked.get(&id2).is_none());
    assert_eq!(m.read(&id2).unwrap().as_deref(), Some("after"));
    assert_eq!(m.read(&old[0]).unwrap(), None);
    assert_eq!(m.read(&old[99]).unwrap().as_deref(), Some("old 99"));
    let store = m.into_store();
    assert_eq!(store.read(Consistency::Strong).unwrap().len(), 292);
}

#[test]
fn snapshots_are_also_taken_every_t() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open_with(
        dir.path(),
        small(),
        EventStoreOptions {
            snapshot_every_events: 0,
            snapshot_every: Some(Duration::from_millis(30)),
            refresh_every: Duration::from_millis(10),
        },
    )
    .unwrap();
    let (seq, _) = store.write(1, "one event is enough").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.snapshots_taken() == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(store.log().latest_checkpoint().unwrap().unwrap().seq(), seq);
    // Nothing new: no new snapshot.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(store.snapshots_taken(), 1);
}

#[test]
fn strong_never_misses_a_returned_write_and_bounded_staleness_keeps_its_bound() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open_with(
        dir.path(),
        small(),
        EventStoreOptions {
            refresh_every: Duration::from_millis(5),
            ..EventStoreOptions::default()
        },
    )
    .unwrap();
    // The highest sequence number whose write has returned.
    let returned = AtomicU64::new(0);
    let any = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for w in 0..3u32 {
            let (store, returned, any, done) = (&store, &returned, &any, &done);
            s.spawn(move || {
                for i in 0..2000 {
                    let (seq, _) = store.write(w, format!("{i}")).unwrap();
                    returned.fetch_max(seq, Ordering::AcqRel);
                    any.store(true, Ordering::Release);
                }
                done.store(true, Ordering::Release);
            });
        }
        s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                let floor = any
                    .load(Ordering::Acquire)
                    .then(|| returned.load(Ordering::Acquire));
                let v = store.read(Consistency::Strong).unwrap();
                assert!(
                    v.version() >= floor,
                    "strong read at {:?} missed {floor:?}",
                    v.version()
                );
            }
        });
        s.spawn(|| {
            let bound = Duration::from_millis(2);
            while !done.load(Ordering::Acquire) {
                let v = store.read(Consistency::BoundedStaleness(bound)).unwrap();
                // The view was at most `bound` old when it was handed out (allow for the time
                // between that and this check).
                assert!(
                    v.age() <= bound + Duration::from_millis(50),
                    "{:?}",
                    v.age()
                );
            }
        });
    });
}

#[test]
fn time_travel_equals_a_replay_from_scratch_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open_with(
        dir.path(),
        small().keep_checkpoints(100),
        EventStoreOptions {
            snapshot_every_events: 0,
            snapshot_every: None,
            ..EventStoreOptions::default()
        },
    )
    .unwrap();
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let mut live = Vec::new();
    for i in 0..3000 {
        if !live.is_empty() && next().is_multiple_of(3) {
            let k = (next() % live.len() as u64) as usize;
            let id = live.swap_remove(k);
            store.remove((next() % 7) as u32, id).unwrap();
        } else {
            live.push(store.write((next() % 7) as u32, format!("v{i}")).unwrap().1);
        }
        if i % 400 == 399 {
            store.snapshot().unwrap();
        }
    }
    let all: Vec<_> = store.events_from(0).unwrap().map(|e| e.unwrap()).collect();
    let last = store.latest_sequence().unwrap();
    for _ in 0..40 {
        let at = next() % (last + 1);
        let s = store.state_at_seq(at).unwrap();
        assert_eq!(s.version(), Some(at));
        assert_state_is(&s, &model_at(&all, at), &format!("at {at}"));
    }
}

/// A xorshift64 stream: deterministic choices for a test.
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// The live items after the events up to and including `at`, applied one by one.
fn model_at(all: &[mmlog::events::StoredEvent], at: u64) -> HashMap<uuid::Uuid, (String, u64)> {
    let mut model = HashMap::new();
    for ev in all.iter().take_while(|e| e.seq() <= at) {
        match ev.event() {
            Event::DataWritten { item_id, data, .. } => {
                model.insert(*item_id, (data.clone(), ev.seq()));
            }
            Event::DataRemoved { item_id, .. } => {
                model.remove(item_id);
            }
            _ => {}
        }
    }
    model
}

fn assert_state_is(
    s: &mmlog::events::State,
    model: &HashMap<uuid::Uuid, (String, u64)>,
    what: &str,
) {
    assert_eq!(s.len(), model.len(), "{what}: len");
    assert_eq!(s.items().count(), model.len(), "{what}: items()");
    for (id, item) in s.items() {
        let (data, seq) = &model[&id];
        assert_eq!((item.data, item.seq), (data.as_str(), *seq), "{what}: {id}");
    }
}

/// Long replays go through one-pass delta tables, the background thread folds layers into
/// one table, and snapshots are the folded table read in place: every path must give the
/// state that applying the events one by one gives, with rewrites of an id, removals of
/// ids never written and removals followed by rewrites included.
#[test]
fn one_pass_replays_folds_and_snapshots_equal_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let no_auto = EventStoreOptions {
        snapshot_every_events: 0,
        snapshot_every: None,
        refresh_every: Duration::from_millis(5),
    };
    let store =
        EventStore::open_with(dir.path(), small().keep_checkpoints(10), no_auto.clone()).unwrap();
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let ids: Vec<uuid::Uuid> = (0..12_000).map(|_| uuid::Uuid::new_v4()).collect();
    let total = 16_000u64;
    for i in 0..total {
        let id = ids[(next() % ids.len() as u64) as usize];
        let event = if next().is_multiple_of(4) {
            Event::DataRemoved {
                writer_id: 2,
                item_id: id,
            }
        } else {
            Event::DataWritten {
                writer_id: 1,
                item_id: id,
                data: format!("v{i}"),
            }
        };
        store.append(&event).unwrap();
        if i == 5_000 || i == 8_000 {
            store.snapshot().unwrap();
        }
        if i % 2_000 == 0 {
            // Strong reads along the way keep the cache applying events one by one.
            store.read(Consistency::Strong).unwrap();
        }
    }
    let all: Vec<_> = store.events_from(0).unwrap().map(|e| e.unwrap()).collect();
    let last = total - 1;
    assert_state_is(
        &store.read(Consistency::Strong).unwrap(),
        &model_at(&all, last),
        "live",
    );
    // From nothing (before the first snapshot), from each snapshot, across both.
    for at in [
        0, 1500, 4_999, 5_000, 5_001, 7_000, 7_999, 8_000, 8_001, 15_000, last,
    ] {
        let s = store.state_at_seq(at).unwrap();
        assert_eq!(s.version(), Some(at));
        assert_state_is(&s, &model_at(&all, at), &format!("state_at_seq({at})"));
    }
    for k in [1, 5000, 9000, 15_500] {
        let ev = &all[k];
        let s = store.state_at_time(ev.timestamp()).unwrap();
        // Several events may share a timestamp: the state includes all of them.
        let at = all
            .iter()
            .rposition(|e| e.timestamp_ns() <= ev.timestamp_ns())
            .unwrap() as u64;
        assert_eq!(s.version(), Some(at));
        assert_state_is(&s, &model_at(&all, at), &format!("state_at_time(#{k})"));
    }
    // A snapshot leaves the state as one table (the state's Debug shows its layers).
    store.snapshot().unwrap();
    let layers = format!("{:?}", store.read(Consistency::Eventual).unwrap().state());
    assert!(layers.contains("delta_rows: None, changes: 0"), "{layers}");
    assert_state_is(
        &store.read(Consistency::Strong).unwrap(),
        &model_at(&all, last),
        "snapshot",
    );
    store.close().unwrap();
    std::fs::remove_file(
        std::fs::read_dir(dir.path().join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .max()
            .unwrap(),
    )
    .unwrap();

    // A cold start from the snapshot at 8,000 (one pass over the 8,000 events after it);
    // with no event arriving, the background thread then folds that delta into one table.
    let store =
        EventStore::open_with(dir.path(), small().keep_checkpoints(10), no_auto.clone()).unwrap();
    assert_state_is(
        &store.read(Consistency::Eventual).unwrap(),
        &model_at(&all, last),
        "reopened",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let layers = format!("{:?}", store.read(Consistency::Eventual).unwrap().state());
        if layers.contains("delta_rows: None, changes: 0") {
            break;
        }
        assert!(Instant::now() < deadline, "never folded: {layers}");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_state_is(
        &store.read(Consistency::Eventual).unwrap(),
        &model_at(&all, last),
        "folded",
    );
    store.close().unwrap();
    std::fs::remove_dir_all(dir.path().join("checkpoints")).unwrap();
    let store = EventStore::open_with(dir.path(), small(), no_auto).unwrap();
    assert_state_is(
        &store.read(Consistency::Eventual).unwrap(),
        &model_at(&all, last),
        "from scratch",
    );
}

/// The spec's storage growth: old events leave the live log for the archive and a recent
/// window stays, while the state, time travel into the archived past and the audit trail
/// still answer exactly.
#[test]
fn storage_stays_bounded_and_archived_events_still_answer() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention::default()
        .keep_records(500)
        .archive(mmlog::ArchiveMode::Compress);
    let store = EventStore::open_with(
        dir.path(),
        small().retention(retention).keep_checkpoints(2),
        EventStoreOptions {
            snapshot_every_events: 1_000,
            ..EventStoreOptions::default()
        },
    )
    .unwrap();
    let mut live = Vec::new();
    let mut first = None;
    for i in 0..6_000u32 {
        if i % 4 == 3 {
            store.remove(1, live.swap_remove(live.len() / 2)).unwrap();
        } else {
            let (_, id) = store.write(i % 5, format!("value {i}")).unwrap();
            first.get_or_insert(id);
            live.push(id);
        }
    }
    store.snapshot().unwrap();
    let report = store.log().compact().unwrap();
    assert!(report.segments_archived > 0, "{report:?}");
    let window = store.log().stats().first_seq;
    assert!(window > 1_000, "the live log starts at {window}");
    let (archived, damaged) = store.log().archived_segments().unwrap();
    assert!(damaged.is_empty() && archived.first().map(|a| a.base_seq) == Some(0));

    // Every event is still there, in order, through the archive.
    let all: Vec<_> = store.events_from(0).unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(all.len(), 6_000);
    assert!(all.iter().enumerate().all(|(i, e)| e.seq() == i as u64));
    let now = store.read(Consistency::Strong).unwrap();
    assert_state_is(&now, &model_at(&all, 5_999), "now");
    assert_eq!(now.len(), live.len());
    // Time travel to points whose snapshots were pruned and whose events were archived.
    for at in [0, 250, 999] {
        let then = store.state_at_seq(at).unwrap();
        assert_state_is(&then, &model_at(&all, at), &format!("state_at_seq({at})"));
    }
    // The first item's history starts in the archive.
    let history = store.history(first.unwrap()).unwrap();
    assert_eq!(history.first().map(|e| e.seq()), Some(0));
}

/// Removals need no catch-up of the cached state and race cleanly: of several threads
/// removing the same items at once, exactly one removal of each item succeeds, the others
/// get `NoSuchItem`, and every item written by one thread can be removed by another as soon
/// as its write returned.
#[test]
fn racing_removals_of_an_item_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open_with(
        dir.path(),
        small(),
        EventStoreOptions {
            refresh_every: Duration::from_secs(3600),
            ..EventStoreOptions::default()
        },
    )
    .unwrap();
    // Items written before the store was reopened are judged by the cached state.
    let old: Vec<uuid::Uuid> = (0..200)
        .map(|i| store.write(1, format!("old {i}")).unwrap().1)
        .collect();
    store.close().unwrap();
    let store = EventStore::open(dir.path(), small()).unwrap();
    let new: Vec<uuid::Uuid> = (0..200)
        .map(|i| store.write(2, format!("new {i}")).unwrap().1)
        .collect();
    let all: Vec<uuid::Uuid> = old.iter().chain(&new).copied().collect();
    let wins = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let (store, all, wins) = (&store, &all, &wins);
            s.spawn(move || {
                for id in all {
                    match store.remove(10 + t, *id) {
                        Ok(_) => {
                            wins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(Error::NoSuchItem { item_id }) => assert_eq!(item_id, *id),
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    assert_eq!(wins.into_inner(), all.len(), "one removal per item");
    let removals = store
        .events_from(0)
        .unwrap()
        .filter(|e| matches!(e.as_ref().unwrap().event(), Event::DataRemoved { .. }))
        .count();
    assert_eq!(removals, all.len(), "no duplicate DataRemoved event");
    assert_eq!(store.read(Consistency::Strong).unwrap().len(), 0);
    // Writer and remover in different threads, back to back.
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let store = &store;
        s.spawn(move || {
            for i in 0..500 {
                tx.send(store.write(3, format!("handed over {i}")).unwrap().1)
                    .unwrap();
            }
        });
        for id in rx {
            store.remove(4, id).unwrap();
        }
    });
    assert_eq!(store.read(Consistency::Strong).unwrap().len(), 0);
}

#[test]
fn close_reports_a_log_that_could_not_be_made_durable() {
    use mmlog::Durability;
    use mmlog::testing::{Fault, PowerLoss};

    let dir = tempfile::tempdir().unwrap();
    let machine = PowerLoss::new(dir.path(), 1).unwrap();
    let opts = small().durability(Durability::Buffered);
    let store = EventStore::open(dir.path(), opts.clone()).unwrap();
    store.write(1, "not yet durable").unwrap();
    // The disk dies: the flush at close fails, and close says so.
    machine.fail_op(1, Fault::Persistent);
    match store.close() {
        Err(Error::Poisoned { .. }) => {}
        other => panic!("expected Poisoned, got {other:?}"),
    }
    drop(machine);

    // A healthy close flushes: the write is there after a reopen.
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(dir.path(), opts.clone()).unwrap();
    let (seq, _) = store.write(1, "kept").unwrap();
    store.close().unwrap();
    let store = EventStore::open(dir.path(), opts).unwrap();
    assert_eq!(store.latest_sequence(), Some(seq));
}
