//! The event store on a log of 1,000,000 events: the rebuild and time-travel targets.
//!
//! One log is built once per run, untimed: 1,000,000 events from one thread, `Buffered`
//! (every 10th a `DataRemoved` of a random live item, the rest `DataWritten` of a new item
//! with about 20 bytes of data: 800,000 items live at the end), with a snapshot after every
//! 100,000 events up to 900,000 and one 10,000 events before the end (the default
//! `snapshot_every_events`, so the most a cold start replays by default).
//!
//! - `events_1M/open/log_only`: `Log::open` of that directory: what the engine's recovery
//!   costs before the event store does anything (the floor of the next two).
//! - `events_1M/open/from_snapshot`: `EventStore::open` of it: the log, the newest snapshot
//!   read in place, and the 10,000 events after it replayed.
//! - `events_1M/open/from_scratch`: the same on a copy without its snapshots: all 1,000,000
//!   events replayed. Throughput in events/s (the target is 10 M/s).
//! - `events_1M/rebuild/{from_snapshot,from_scratch}`: the same two rebuilds on a store
//!   already open, without the log's recovery: `state_at_seq` of the second-to-last event,
//!   which is before the cached state and so is built from the newest snapshot (already
//!   read once: the store keeps the snapshots it read) plus the 9,999 events after it, or,
//!   on the copy without snapshots, from all 999,999 events before it. Throughput in events
//!   of the log.
//! - `events_1M/time_travel/{at_seq,at_time}`: `state_at_seq` / `state_at_time` at random
//!   points of the whole log (a fixed sequence of points, cycled), on a store kept open: the
//!   nearest snapshot (the store keeps the last four it read) and the events after it.
//! - `events_1M/time_travel/farthest_from_a_snapshot`: `state_at_seq` of the event just
//!   before the second snapshot: the first snapshot (already read) and the 99,999 events
//!   after it, the longest replay any point of this log needs.
//! - `events_1M/read/{eventual,bounded_fresh}`: `read(Eventual)` and
//!   `read(BoundedStaleness(1 s))` with a fresh cache: no log access (the target is 1 µs).
//!
//! Each open is timed up to the store being ready (`open_with` returns after catching up);
//! closing is not timed. Warm page cache. Logs go under `MMLOG_BENCH_DIR` if set.

mod common;
use common::{SplitMix, bench_base, main_config};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, Throughput};
use criterion::{criterion_group, criterion_main};
use mmlog::events::{Consistency, EventStore, EventStoreOptions};
use mmlog::{Durability, Log, Options};

const EVENTS: u64 = 1_000_000;
const SNAPSHOT_EVERY: u64 = 100_000;
/// The last snapshot is this many events before the end.
const TAIL: u64 = 10_000;
const REMOVE_EVERY: u64 = 10;
const POINTS: usize = 64;

fn options() -> Options {
    Options::default()
        .durability(Durability::Buffered)
        .keep_checkpoints(16)
}

/// Snapshots only when the bench asks; the background thread stays out of the timings.
fn store_options() -> EventStoreOptions {
    EventStoreOptions {
        snapshot_every_events: 0,
        snapshot_every: None,
        refresh_every: Duration::from_secs(3600),
    }
}

/// Builds the log; returns when the first and last events were stamped.
fn build(dir: &Path) -> (SystemTime, SystemTime) {
    let store = EventStore::open_with(dir, options(), store_options()).expect("open");
    let mut rng = SplitMix(4);
    let mut live = Vec::new();
    let from = SystemTime::now();
    for i in 0..EVENTS {
        if i % REMOVE_EVERY == REMOVE_EVERY - 1 {
            let id = live.swap_remove(rng.below(live.len()));
            store.remove(1, id).expect("remove");
        } else {
            let (_, id) = store
                .write((i % 16) as u32, format!("item number {i:08}"))
                .expect("write");
            live.push(id);
        }
        let done = i + 1;
        if (done % SNAPSHOT_EVERY == 0 && done < EVENTS) || done == EVENTS - TAIL {
            assert_eq!(store.snapshot().expect("snapshot"), Some(i));
        }
    }
    let to = SystemTime::now();
    assert_eq!(
        store.read(Consistency::Strong).expect("read").len(),
        live.len()
    );
    store.close().expect("close");
    (from, to)
}

fn copy_without_snapshots(from: &Path, to: &Path) {
    for sub in ["segments", "consumers"] {
        std::fs::create_dir_all(to.join(sub)).expect("mkdir");
        for entry in std::fs::read_dir(from.join(sub)).expect("read dir") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), to.join(sub).join(entry.file_name())).expect("copy");
        }
    }
}

fn events_1m(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(bench_base()).expect("tempdir");
    let with = dir.path().join("with-snapshots");
    let without = dir.path().join("without-snapshots");
    let (first, last) = build(&with);
    copy_without_snapshots(&with, &without);
    let live = (EVENTS - 2 * (EVENTS / REMOVE_EVERY)) as usize;

    let mut g = c.benchmark_group("events_1M");
    g.throughput(Throughput::Elements(EVENTS));
    g.bench_function("open/log_only", |b| {
        b.iter_batched(
            || (),
            |()| Log::open(&with, options()).expect("open"),
            BatchSize::PerIteration,
        )
    });
    for (name, path) in [
        ("open/from_snapshot", &with),
        ("open/from_scratch", &without),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || (),
                |()| {
                    let store =
                        EventStore::open_with(path, options(), store_options()).expect("open");
                    assert_eq!(store.read(Consistency::Eventual).expect("read").len(), live);
                    store
                },
                BatchSize::PerIteration,
            )
        });
    }

    for (name, path) in [
        ("rebuild/from_snapshot", &with),
        ("rebuild/from_scratch", &without),
    ] {
        let store = EventStore::open_with(path, options(), store_options()).expect("open");
        g.bench_function(name, |b| {
            b.iter(|| {
                let view = store.state_at_seq(EVENTS - 2).expect("state_at_seq");
                assert_eq!(view.version(), Some(EVENTS - 2));
                view
            })
        });
    }

    let store = EventStore::open_with(&with, options(), store_options()).expect("open");
    let mut rng = SplitMix(5);
    let seqs: Vec<u64> = (0..POINTS).map(|_| rng.next() % EVENTS).collect();
    let span = last
        .duration_since(first)
        .expect("clock went back")
        .as_nanos() as u64;
    let times: Vec<SystemTime> = (0..POINTS)
        .map(|_| first + Duration::from_nanos(rng.next() % span.max(1)))
        .collect();
    g.throughput(Throughput::Elements(1));
    let mut k = 0;
    g.bench_function("time_travel/at_seq", |b| {
        b.iter(|| {
            k = (k + 1) % POINTS;
            let view = store.state_at_seq(seqs[k]).expect("state_at_seq");
            assert_eq!(view.version(), Some(seqs[k]));
            view
        })
    });
    g.bench_function("time_travel/at_time", |b| {
        b.iter(|| {
            k = (k + 1) % POINTS;
            store.state_at_time(times[k]).expect("state_at_time")
        })
    });
    let farthest = 2 * SNAPSHOT_EVERY - 2;
    g.bench_function("time_travel/farthest_from_a_snapshot", |b| {
        b.iter(|| store.state_at_seq(farthest).expect("state_at_seq"))
    });
    store.read(Consistency::Strong).expect("read");
    g.bench_function("read/eventual", |b| {
        b.iter(|| black_box(store.read(Consistency::Eventual).expect("read")))
    });
    g.bench_function("read/bounded_fresh", |b| {
        b.iter(|| {
            black_box(
                store
                    .read(Consistency::BoundedStaleness(Duration::from_secs(1)))
                    .expect("read"),
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = main_config();
    targets = events_1m
}
criterion_main!(benches);
