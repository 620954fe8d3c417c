//! Partitioned logs (`mmlog::partitioned`): routing, cuts as of a time, merged reads, the
//! partition count kept across reopens, and concurrent writers.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use mmlog::partitioned::{Cut, PartitionedLog, Position};
use mmlog::{Options, Timestamps};

fn opts() -> Options {
    Options::default()
        .segment_size(64 << 10)
        .timestamps(Timestamps::Precise)
}

#[test]
fn keys_stay_in_their_partition_and_every_partition_gets_some() {
    let tmp = tempfile::tempdir().unwrap();
    let log = PartitionedLog::open(tmp.path().join("p"), 4, opts()).unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut per_partition = [0u64; 4];
    for i in 0..400 {
        let key = format!("item-{}", i % 50);
        let at = log
            .append(key.as_bytes(), format!("{i}").as_bytes())
            .unwrap();
        assert_eq!(at.seq, per_partition[at.partition], "dense per partition");
        per_partition[at.partition] += 1;
        let first = *seen.entry(key.clone()).or_insert(at.partition);
        assert_eq!(first, at.partition, "{key} moved partitions");
    }
    assert!(per_partition.iter().all(|&n| n > 0), "{per_partition:?}");
    // Each partition is an ordinary log, in order.
    for (p, &count) in per_partition.iter().enumerate() {
        let mut r = log.partition(p).unwrap().read_from(0).unwrap();
        let mut n = 0;
        while let Some(rec) = r.next() {
            assert_eq!(rec.unwrap().seq(), n);
            n += 1;
        }
        assert_eq!(n, count);
    }
    assert!(log.append_to(4, b"x").is_err());
}

#[test]
fn the_partition_count_is_kept_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    {
        let log = PartitionedLog::open(&dir, 3, opts()).unwrap();
        log.append(b"k", b"v").unwrap();
    }
    let err = PartitionedLog::open(&dir, 2, opts())
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds 3 partitions, not 2"), "{err}");
    assert!(PartitionedLog::open(&dir, 0, opts()).is_err());
    let log = PartitionedLog::open(&dir, 3, opts()).unwrap();
    assert_eq!(log.cut().unwrap().records(), 1);
    drop(log);
    std::fs::write(dir.join("PARTITIONS"), b"garbage").unwrap();
    let err = PartitionedLog::open(&dir, 3, opts())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a partition manifest"), "{err}");
}

/// A cut as of T holds, in every partition, exactly the records stamped at or before T (one
/// writer, so stamps rise with sequence numbers), and a merged read up to it returns them in
/// timestamp order.
#[test]
fn a_cut_as_of_a_time_holds_what_was_appended_by_then() {
    let tmp = tempfile::tempdir().unwrap();
    let log = PartitionedLog::open(tmp.path().join("p"), 3, opts()).unwrap();
    let mut appended: Vec<(Position, SystemTime)> = Vec::new();
    let mut marks = Vec::new();
    for round in 0..5 {
        for i in 0..30 {
            let key = format!("k{}", (round * 31 + i) % 17);
            let at = log.append(key.as_bytes(), key.as_bytes()).unwrap();
            appended.push((at, SystemTime::now()));
        }
        std::thread::sleep(Duration::from_millis(2));
        marks.push((SystemTime::now(), appended.len()));
        std::thread::sleep(Duration::from_millis(2));
    }
    for (t, count) in marks {
        let cut = log.cut_at_time(t).unwrap();
        assert_eq!(cut.records(), count as u64, "cut at {t:?}: {cut:?}");
        for (at, _) in &appended[..count] {
            assert!(cut.contains(*at), "{at:?} missing from {cut:?}");
        }
        for (at, _) in &appended[count..] {
            assert!(!cut.contains(*at), "{at:?} is after {t:?} but in {cut:?}");
        }
        let merged: Vec<_> = log
            .read_merged(&log.start(), &cut)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(merged.len(), count);
        assert!(
            merged
                .windows(2)
                .all(|w| w[0].timestamp_ns <= w[1].timestamp_ns)
        );
        // One writer: timestamp order is append order.
        let order: Vec<Position> = merged.iter().map(|r| r.position).collect();
        let expected: Vec<Position> = appended[..count].iter().map(|(p, _)| *p).collect();
        assert_eq!(order, expected);
    }
    // Between two cuts: only what lies between them.
    let early = log.cut_at_time(SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(early, log.start());
    let all = log.cut().unwrap();
    let n = log.read_merged(&early, &all).unwrap().count();
    assert_eq!(n, appended.len());
    assert!(log.read_merged(&Cut::new(vec![0]), &all).is_err());
}

#[test]
fn concurrent_writers_on_partitions_lose_nothing_and_survive_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let log = PartitionedLog::open(&dir, 2, opts()).unwrap();
    std::thread::scope(|s| {
        for w in 0..4u32 {
            let log = &log;
            s.spawn(move || {
                for i in 0..2_000u32 {
                    let key = w.to_le_bytes();
                    log.append(&key, &[w.to_le_bytes(), i.to_le_bytes()].concat())
                        .unwrap();
                }
            });
        }
    });
    log.sync().unwrap();
    let cut = log.cut().unwrap();
    assert_eq!(cut.records(), 8_000);
    drop(log);
    let log = PartitionedLog::open(&dir, 2, opts()).unwrap();
    assert_eq!(log.cut().unwrap(), cut);
    // Each writer's records, in its own order, in the one partition its key routes to.
    let mut next = [0u32; 4];
    for rec in log.read_merged(&log.start(), &cut).unwrap() {
        let rec = rec.unwrap();
        let w = u32::from_le_bytes(rec.payload[..4].try_into().unwrap()) as usize;
        let i = u32::from_le_bytes(rec.payload[4..8].try_into().unwrap());
        assert_eq!(i, next[w], "writer {w} out of order");
        assert_eq!(rec.position.partition, log.route(&(w as u32).to_le_bytes()));
        next[w] += 1;
    }
    assert_eq!(next, [2_000; 4]);
}

/// The partitioned event store: concurrent writers and removers over 3 partitions; the union
/// of the partitions' states equals a hand replay, now, as of times in the past and as of the
/// cut each view reports, and after a reopen.
#[test]
fn a_partitioned_event_store_is_the_union_of_its_partitions() {
    use mmlog::events::{Consistency, EventStoreOptions, PartitionedEventStore};
    use std::sync::Mutex;
    use uuid::Uuid;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store_opts = EventStoreOptions {
        snapshot_every_events: 100,
        ..EventStoreOptions::default()
    };
    let store = PartitionedEventStore::open(&dir, 3, opts(), store_opts.clone()).unwrap();
    // What each writer did, with the time after each call returned.
    type Done = (SystemTime, Uuid, Option<String>);
    let done: Mutex<Vec<Done>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..4u32 {
            let (store, done) = (&store, &done);
            s.spawn(move || {
                let mut mine = Vec::new();
                for i in 0..150u32 {
                    if i % 4 == 3 {
                        let id = mine.remove(0);
                        store.remove(w, id).unwrap();
                        done.lock().unwrap().push((SystemTime::now(), id, None));
                    } else {
                        let data = format!("w{w}-{i}");
                        let (at, id) = store.write(w, &data).unwrap();
                        assert_eq!(at.partition, store.route(&id));
                        mine.push(id);
                        done.lock()
                            .unwrap()
                            .push((SystemTime::now(), id, Some(data)));
                    }
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap();
    done.sort_by_key(|d| d.0);
    // Then one writer, with pauses: the times between rounds are points with nothing in
    // flight, where "as of T" has one right answer.
    let mut marks = Vec::new();
    let mut live: Vec<Uuid> = Vec::new();
    for round in 0..4 {
        for i in 0..25 {
            if i % 3 == 2 && !live.is_empty() {
                let id = live.swap_remove(i % live.len());
                store.remove(9, id).unwrap();
                done.push((SystemTime::now(), id, None));
            } else {
                let data = format!("r{round}-{i}");
                let (_, id) = store.write(9, &data).unwrap();
                live.push(id);
                done.push((SystemTime::now(), id, Some(data)));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
        marks.push((SystemTime::now(), done.len()));
        std::thread::sleep(Duration::from_millis(2));
    }
    let replay = |upto: usize| {
        let mut m: HashMap<Uuid, String> = HashMap::new();
        for (_, id, data) in &done[..upto] {
            match data {
                Some(d) => m.insert(*id, d.clone()),
                None => m.remove(id),
            };
        }
        m
    };
    let check = |view: &mmlog::events::PartitionedView, model: &HashMap<Uuid, String>| {
        assert_eq!(view.len(), model.len());
        for (id, data) in model {
            assert_eq!(view.data(id), Some(data.as_str()));
        }
    };
    let now = store.read(Consistency::Strong).unwrap();
    check(&now, &replay(done.len()));
    for &(t, upto) in &marks {
        let then = store.state_at_time(t).unwrap();
        check(&then, &replay(upto));
        // The cut a view reports gives the same state back.
        let again = store.state_at_cut(&then.cut()).unwrap();
        check(&again, &replay(upto));
    }
    assert_eq!(
        store.state_at_cut(&Cut::new(vec![0, 0, 0])).unwrap().len(),
        0
    );
    store.close().unwrap();
    let store = PartitionedEventStore::open(&dir, 3, opts(), store_opts.clone()).unwrap();
    check(
        &store.read(Consistency::Strong).unwrap(),
        &replay(done.len()),
    );
    assert!(PartitionedEventStore::open(&dir, 2, opts(), store_opts).is_err());
}
