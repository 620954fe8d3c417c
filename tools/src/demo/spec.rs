//! Steps 1 and 2: the spec's first two scenarios on the event store, side by side with the
//! traditional store (`LockedStore`, a `RwLock<HashMap>`) under the same load.
//!
//! 1. Many writer threads write and remove items while two readers read: the event store's
//!    writers append and never wait; the locked store's writers queue behind the lock.
//! 2. A paced writer keeps writing while readers read in each consistency mode and two read
//!    models follow the stream: what each read costs, and how stale each answer is.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mmlog::events::{
    Consistency, EventStore, EventStoreOptions, ItemsPerWriter, LockedStore, RecentChanges,
};
use uuid::Uuid;

use super::stores::Store;
use super::{Matrix, Summary, percentile};
use crate::failure::{CmdResult, Failure};
use crate::output::say;
use crate::progress;
use crate::render::{count, duration, rate};
use crate::sync::{StartLine, lock};

/// Stack of each of the many writer threads: they only call the stores.
const WRITER_STACK: usize = 256 << 10;
/// Every this many writes, a writer removes one of its items.
const REMOVE_EVERY: u64 = 4;
/// How long scenario 2 runs.
const S2_RUN: Duration = Duration::from_millis(1200);
/// Scenario 2's writer: a burst of this many writes...
const S2_BURST: u64 = 10;
/// ...then this pause.
const S2_PAUSE: Duration = Duration::from_millis(1);
/// The staleness bound of scenario 2's bounded reader.
pub const S2_BOUND: Duration = Duration::from_millis(10);

/// What one store did under scenario 1.
pub struct S1Run {
    /// Every write's latency, sorted.
    pub writes: Vec<Duration>,
    /// Every removal's latency, sorted.
    pub removes: Vec<Duration>,
    /// From the start signal until the last writer finished.
    pub elapsed: Duration,
    /// Reads the two readers completed meanwhile.
    pub reads: u64,
}

impl S1Run {
    /// Writes and removals per second.
    pub fn ops_per_sec(&self) -> f64 {
        (self.writes.len() + self.removes.len()) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `p50 / p99 / max` of sorted latencies.
pub fn lat(sorted: &[Duration]) -> String {
    format!(
        "p50 {} / p99 {} / max {}",
        duration(percentile(sorted, 0.50)),
        duration(percentile(sorted, 0.99)),
        duration(percentile(sorted, 1.0))
    )
}

/// Scenario 1 on `store`: `writers` threads share `events` writes (and a removal every
/// [`REMOVE_EVERY`] writes) while two threads read known items as fast as they can.
fn scenario_1(store: &dyn Store, writers: usize, events: u64) -> CmdResult<S1Run> {
    let per_writer = (events / writers as u64).max(1);
    let bar = progress::bar(per_writer * writers as u64, store.name());
    let start = StartLine::default();
    let done = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let known: Mutex<Vec<Uuid>> = Mutex::new(Vec::new());
    let results: Mutex<Vec<(Vec<Duration>, Vec<Duration>)>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<Failure>> = Mutex::new(None);
    let mut elapsed = Duration::ZERO;
    thread::scope(|s| -> CmdResult {
        for _ in 0..2 {
            let reader = thread::Builder::new().spawn_scoped(s, || {
                let mut i = 0usize;
                while !done.load(Ordering::Relaxed) {
                    let id = lock(&known).get(i).copied();
                    i = i.wrapping_add(7);
                    match id {
                        Some(id) => {
                            store.get(&id);
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {
                            i = 0;
                            thread::yield_now();
                        }
                    }
                }
            });
            if let Err(e) = reader {
                done.store(true, Ordering::Relaxed);
                return Err(Failure::usage(format!("cannot start a reader thread: {e}")));
            }
        }
        let mut handles = Vec::with_capacity(writers);
        for w in 0..writers {
            let (start, bar, results, failure, known) = (&start, &bar, &results, &failure, &known);
            let spawned = thread::Builder::new()
                .stack_size(WRITER_STACK)
                .spawn_scoped(s, move || {
                    let mut writes = Vec::with_capacity(per_writer as usize);
                    let mut removes = Vec::new();
                    let mut mine = Vec::new();
                    if !start.arrive() {
                        return;
                    }
                    for i in 0..per_writer {
                        let data = format!("writer {w} item {i}");
                        let t = Instant::now();
                        let put = store.put(w as u32, data);
                        writes.push(t.elapsed());
                        match put {
                            Ok(id) => mine.push(id),
                            Err(f) => {
                                lock(failure).get_or_insert(f);
                                break;
                            }
                        }
                        if i % REMOVE_EVERY == REMOVE_EVERY - 1
                            && let Some(id) = mine.pop()
                        {
                            let t = Instant::now();
                            let removed = store.remove(w as u32, id);
                            removes.push(t.elapsed());
                            if let Err(f) = removed {
                                lock(failure).get_or_insert(f);
                                break;
                            }
                        }
                        bar.inc(1);
                    }
                    if let Some(&id) = mine.first() {
                        lock(known).push(id);
                    }
                    lock(results).push((writes, removes));
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The threads already waiting are let go without writing.
                    lock(failure).get_or_insert(Failure::usage(format!(
                        "cannot start writer thread {w} of {writers}: {e}"
                    )));
                    break;
                }
            }
        }
        if handles.len() < writers {
            start.call_off();
        } else if !start.start(writers) {
            lock(&failure).get_or_insert(Failure::check("the writer threads did not all start"));
        }
        let t0 = Instant::now();
        for h in handles {
            if h.join().is_err() {
                lock(&failure).get_or_insert(Failure::check("a writer thread panicked"));
            }
        }
        elapsed = t0.elapsed();
        done.store(true, Ordering::Relaxed);
        Ok(())
    })?;
    bar.finish_and_clear();
    if let Some(f) = lock(&failure).take() {
        return Err(f.context(store.name()));
    }
    let (mut writes, mut removes) = (Vec::new(), Vec::new());
    for (w, r) in lock(&results).drain(..) {
        writes.extend(w);
        removes.extend(r);
    }
    writes.sort();
    removes.sort();
    Ok(S1Run {
        writes,
        removes,
        elapsed,
        reads: reads.load(Ordering::Relaxed),
    })
}

/// The event store's log in the demo: small segments, so that archiving has whole sealed
/// segments to move, and a recent window of 2,000 events kept live.
pub fn events_options() -> mmlog::Options {
    mmlog::Options::default()
        .segment_size(1 << 20)
        .durability(mmlog::Durability::Buffered)
        .retention(
            mmlog::Retention::default()
                .keep_records(2_000)
                .archive(mmlog::ArchiveMode::Compress),
        )
}

/// The event store's options in the demo: a snapshot every 5,000 events.
pub fn store_options() -> EventStoreOptions {
    EventStoreOptions {
        snapshot_every_events: 5_000,
        snapshot_every: Some(Duration::from_secs(10)),
        refresh_every: Duration::from_millis(5),
    }
}

/// Step 1: scenario 1 on both stores, on a new event store in `dir`.
pub fn step_1(
    dir: &Path,
    writers: usize,
    events: u64,
    summary: &mut Summary,
    matrix: &mut Matrix,
) -> CmdResult<(EventStore, LockedStore)> {
    say!(
        "\n[1] the spec's scenario 1: {writers} writer threads write {} items (removing every \
         {REMOVE_EVERY}th) while 2 threads read, on the traditional store (a RwLock<HashMap>) \
         and then on the event store",
        count(events)
    );
    let locked = LockedStore::new();
    let l = scenario_1(&locked, writers, events)?;
    say!(
        "    locked: {} ops in {} ({} ops/s), {} reads meanwhile",
        count((l.writes.len() + l.removes.len()) as u64),
        duration(l.elapsed),
        rate(l.ops_per_sec()),
        count(l.reads)
    );
    say!("            write {}", lat(&l.writes));
    let store = EventStore::open_with(dir, events_options(), store_options())?;
    let e = scenario_1(&store, writers, events)?;
    say!(
        "    events: {} ops in {} ({} ops/s), {} reads meanwhile",
        count((e.writes.len() + e.removes.len()) as u64),
        duration(e.elapsed),
        rate(e.ops_per_sec()),
        count(e.reads)
    );
    say!("            write {}", lat(&e.writes));
    say!(
        "            remove {} (checked live against the store's record of its own appends, else the cache)",
        lat(&e.removes)
    );

    // Same operations, same outcome: as many live items, and one dense sequence number per
    // event, each given once.
    let now = store.read(Consistency::Strong)?;
    if now.len() != locked.len() {
        return Err(Failure::check(format!(
            "the event store holds {} items, the locked store {}",
            now.len(),
            locked.len()
        )));
    }
    let ops = (e.writes.len() + e.removes.len()) as u64;
    if store.latest_sequence() != Some(ops - 1) {
        return Err(Failure::check(format!(
            "{ops} events appended but the last sequence number is {:?}",
            store.latest_sequence()
        )));
    }
    let mut seqs = 0u64;
    for (i, ev) in store.events_from(0)?.enumerate() {
        if ev?.seq() != i as u64 {
            return Err(Failure::check(format!("sequence number {i} is missing")));
        }
        seqs += 1;
    }
    if seqs != ops {
        return Err(Failure::check(format!(
            "{seqs} events read back, {ops} appended"
        )));
    }
    let p99 = |v: &[Duration]| percentile(v, 0.99).as_secs_f64().max(1e-9);
    say!(
        "    both hold {} live items; sequence numbers 0..{} dense and unique; write p99 \
         {:.0}x lower on the event store",
        count(now.len() as u64),
        count(ops),
        p99(&l.writes) / p99(&e.writes)
    );
    summary.add(
        "1. spec scenario 1",
        format!(
            "{writers} writers: write p99 {} (events) vs {} (locked)",
            duration(percentile(&e.writes, 0.99)),
            duration(percentile(&l.writes, 0.99))
        ),
    );
    matrix.write_latency = Some((lat(&l.writes), lat(&e.writes)));
    matrix.throughput = Some((l.ops_per_sec(), e.ops_per_sec()));
    Ok((store, locked))
}

/// Step 2: scenario 2 on the event store from step 1; the same writer also writes to the
/// locked store, which one more reader reads.
pub fn step_2(
    store: &EventStore,
    locked: &LockedStore,
    summary: &mut Summary,
    matrix: &mut Matrix,
) -> CmdResult {
    say!(
        "\n[2] the spec's scenario 2: a writer keeps writing ({S2_BURST} every {}) for {} while \
         readers read in each consistency mode and two read models follow the stream",
        duration(S2_PAUSE),
        duration(S2_RUN)
    );
    let per_writer = store.subscribe("demo-items-per-writer", ItemsPerWriter::default())?;
    let recent = store.subscribe("demo-recent", RecentChanges::new(5))?;
    let modes = [
        ("Strong", Consistency::Strong),
        ("Eventual", Consistency::Eventual),
        (
            "BoundedStaleness(10 ms)",
            Consistency::BoundedStaleness(S2_BOUND),
        ),
    ];
    let done = AtomicBool::new(false);
    let known: Vec<Uuid> = store
        .read(Consistency::Strong)?
        .items()
        .map(|(id, _)| id)
        .take(1_000)
        .collect();
    let mut outcome: Vec<(&str, Vec<Duration>, Duration, u64)> = Vec::new();
    let mut locked_reads: Vec<Duration> = Vec::new();
    let mut model_lag = 0u64;
    let writer_failure: Mutex<Option<Failure>> = Mutex::new(None);
    thread::scope(|s| {
        let readers: Vec<_> = modes
            .iter()
            .map(|&(name, mode)| {
                let done = &done;
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let (mut oldest, mut behind) = (Duration::ZERO, 0u64);
                    while !done.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let Ok(view) = store.read(mode) else { break };
                        lat.push(t.elapsed());
                        // How old the state was when the read began: what the bound
                        // promises (time spent since, preempted say, is not staleness).
                        let (age, since) = (view.age(), t.elapsed());
                        oldest = oldest.max(age.saturating_sub(since));
                        let latest = store.latest_sequence().unwrap_or(0);
                        behind = behind.max(latest.saturating_sub(view.version().unwrap_or(0)));
                    }
                    (name, lat, oldest, behind)
                })
            })
            .collect();
        let locked_reader = s.spawn(|| {
            // The locked store's items have other ids: read the ones it holds.
            let ids: Vec<Uuid> = (0..1_000).map(|_| locked.write(8, "read me")).collect();
            let mut lat = Vec::new();
            let mut k = 0;
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                let _ = locked.get(&ids[k % ids.len()]);
                lat.push(t.elapsed());
                k += 1;
            }
            lat
        });
        let t0 = Instant::now();
        let mut i = 0u64;
        while t0.elapsed() < S2_RUN {
            for _ in 0..S2_BURST {
                if let Err(e) = store.write(9, format!("paced item {i}")) {
                    lock(&writer_failure).get_or_insert(e.into());
                }
                locked.write(9, format!("paced item {i}"));
                i += 1;
            }
            model_lag = model_lag.max(per_writer.lag(store.latest_sequence()));
            thread::sleep(S2_PAUSE);
        }
        done.store(true, Ordering::Relaxed);
        for r in readers {
            if let Ok(mut got) = r.join() {
                got.1.sort();
                outcome.push(got);
            }
        }
        if let Ok(lat) = locked_reader.join() {
            locked_reads = lat;
        }
    });
    locked_reads.sort();
    let sample = known.first().copied();
    if let Some(id) = sample
        && store.read(Consistency::Eventual)?.data(&id).is_none()
    {
        return Err(Failure::check(format!("item {id} vanished")));
    }
    if let Some(f) = lock(&writer_failure).take() {
        return Err(f.context("scenario 2 writer"));
    }
    say!(
        "    {:<24} {} reads, {} (a RwLock read, while the same writer writes)",
        "locked get",
        count(locked_reads.len() as u64),
        self::lat(&locked_reads)
    );
    for (name, lat, oldest, behind) in &outcome {
        say!(
            "    {name:<24} {} reads, {}; oldest answer {} ({} events behind at most)",
            count(lat.len() as u64),
            self::lat(lat),
            duration(*oldest),
            count(*behind)
        );
        if *name == "BoundedStaleness(10 ms)" && *oldest > S2_BOUND {
            return Err(Failure::check(format!(
                "a bounded-staleness read served a state {} old",
                duration(*oldest)
            )));
        }
    }
    let latest = store.latest_sequence().unwrap_or(0);
    let t = Instant::now();
    let caught_up = per_writer.wait_for(latest, Duration::from_secs(10))
        && recent.wait_for(latest, Duration::from_secs(10));
    if !caught_up {
        return Err(Failure::check(
            "the read models did not catch up within 10 s",
        ));
    }
    let live = store.read(Consistency::Strong)?.len() as u64;
    let modelled: u64 = per_writer.read(|m| m.counts().values().sum());
    if modelled != live {
        return Err(Failure::check(format!(
            "ItemsPerWriter counts {modelled} items, the state holds {live}"
        )));
    }
    say!(
        "    read models: ItemsPerWriter (writer 9 has {} items) and RecentChanges were at most \
         {} events behind; caught up {} after the writer stopped; their counts match the state",
        count(per_writer.read(|m| m.count(9))),
        count(model_lag),
        duration(t.elapsed())
    );
    recent.read(|m| {
        if let Some(c) = m.changes().last() {
            say!("    newest change: #{} by writer {}", c.seq, c.writer_id);
        }
    });
    let read_row = outcome
        .iter()
        .map(|(name, lat, _, _)| format!("{name} p50 {}", duration(percentile(lat, 0.5))))
        .collect::<Vec<_>>()
        .join(", ");
    summary.add("2. spec scenario 2", read_row.clone());
    matrix.read_latency = Some((format!("get {}", lat(&locked_reads)), read_row));
    matrix.staleness = outcome
        .iter()
        .map(|(name, _, oldest, _)| format!("{name} up to {}", duration(*oldest)))
        .collect::<Vec<_>>()
        .join(", ");
    per_writer.stop()?;
    recent.stop()?;
    Ok(())
}
