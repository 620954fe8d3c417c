//! The three "Example Scenarios" of the event-sourced reader-writer spec
//! (`event-sourced-reader-writer.md`), each run against both stores it compares:
//!
//! - the traditional store, [`LockedStore`]: a `HashMap` behind a `std::sync::RwLock`, writers
//!   take it exclusively, readers share it;
//! - the event store, [`EventStore`] on a log with `Durability::Buffered` (an append is a copy
//!   into the page cache, no `msync`), default [`EventStoreOptions`] unless said otherwise.
//!
//! The spec's claims are about waiting ("writers never block"), which shows in the tail of the
//! latency distribution, not in a mean: so this is not a criterion benchmark but one pass that
//! records every operation's latency in nanoseconds in an HdrHistogram and prints p50, p99,
//! p99.9 and max. Every timed region holds exactly one store call, each store's natural one
//! (`LockedStore::get` copies the item out under the read lock; the event store lends a
//! `&str` from the shared state); payloads, ids and random choices are made before the clock
//! starts.
//!
//! 1. **High write throughput.** 1,000 writer threads, released together by a barrier, each
//!    write 20 items (x scale) of 56 bytes, while 2 reader threads read items at random from
//!    1,000 written before (locked: `get`; events: `read(Consistency::Eventual)` then
//!    `data(&id)`). Three cases, each run in 5 rounds (in a rotating order, so none always
//!    follows the same one) and pooled: the locked store; the event store opened 500 ms
//!    before the release (its log's background thread has pre-faulted the active segment and
//!    prepared the next one); the event store opened just before the release. Per-write
//!    latency (and each round's p99 and p99.9: runs on two cores are noisy), write
//!    throughput (all writes over the time from the first writer's first write to the last
//!    writer's last), read latency. Each writer thread also counts its context switches over
//!    its writes (`getrusage(RUSAGE_THREAD)`): a voluntary one is the thread blocking (a futex
//!    wait on a lock: the store's, or the allocator's), so that count is "writers waited",
//!    measured; involuntary ones are preemptions, whatever the store. On two cores 1,000
//!    threads mostly wait for a core, so the whole-run throughput is set by the scheduler
//!    more than by either store. The harness keeps its own noise out of the writes: each
//!    writer fills its payloads and its latency buffer and touches its stack before the
//!    barrier, and no writer thread exits until all are done (an exiting thread unmaps its
//!    stack, and that holds the address-space lock every page fault needs).
//! 2. **Read-heavy workload with read models.** 10,000 items written before, then for 1 s
//!    (x scale) 2 writer threads write bursts of 10 items with a 1 ms sleep after each burst
//!    (the same pacing for both stores) while 8 reader threads read without pause. On the
//!    event store two read models are subscribed ([`ItemsPerWriter`],
//!    `RecentChanges::new(100)`, each fed by its own thread) and every reader cycles through
//!    four queries: cached state with `Eventual`, cached state with `BoundedStaleness(10 ms)`
//!    (each then `data(&id)` of a random known item), `ItemsPerWriter::count` of a random
//!    writer, the newest `RecentChanges` entry. Locked readers `get` a random known item.
//!    Read latency per query, reads/s, write latency, the oldest state each cached query was
//!    served (`StateView::age` less the read's own duration: about its age when the read
//!    began), and the read models' lag (events committed, not yet applied) sampled every
//!    millisecond: its maximum, its value when the writers stop, and how long the models then
//!    take to catch up. Then, single-threaded with the writers stopped, what a
//!    `Consistency::Strong` read costs: with nothing new, and right after one new event (what
//!    a reader pays to reconstruct).
//! 3. **Time travel.** 20,000 events (x scale) from one thread, every 10th a removal of a
//!    random live item, with `store.snapshot()` after every 1,000 events (automatic snapshots
//!    off, so they are evenly spaced; `keep_checkpoints` high enough to keep them all). The
//!    same operations go to a `LockedStore`, so the build also compares single-threaded write
//!    and remove latency. Then, on three copies of the same closed log (every snapshot kept;
//!    only the newest 3, what `keep_checkpoints`' default of 3 would have left; none, so every
//!    query replays from event 0, the baseline that shows what snapshots buy), each opened 3
//!    times (cold start: the newest snapshot plus the events after it): 100 (x scale)
//!    `state_at_seq` at random sequence numbers, 100 `state_at_time` at random times within
//!    the build, and `state_at_seq` at each snapshot's own sequence number (no event to
//!    replay where a snapshot exists). The copies must give the same answers (checked). The
//!    locked store cannot answer a time-travel query at all: it keeps no history.
//!
//! At the end a Markdown table fills the spec's Comparison Matrix with the numbers measured.
//!
//! Sizes suit a 2-core machine: the whole run takes about 15 s. Run it with
//! `cargo bench --bench spec_scenarios`; `MMLOG_SPEC_SCALE=N` (a whole number, default 1)
//! multiplies the writes per writer (scenario 1), the duration (scenario 2), and the events
//! and queries (scenario 3), e.g. `MMLOG_SPEC_SCALE=10 cargo bench --bench spec_scenarios`.
//! The writer and reader counts stay those of the spec.
//!
//! Logs go in temporary directories under `MMLOG_BENCH_DIR` if set, else under the system
//! temporary directory: put them on the file system the logs live on.

#[allow(dead_code)] // `main_config` serves the criterion benchmarks.
mod common;
use common::{SplitMix, bench_base};

use std::fmt;
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use mmlog::events::{
    Consistency, EventStore, EventStoreOptions, ItemsPerWriter, LockedStore, RecentChanges,
};
use mmlog::{Durability, Options};
use uuid::Uuid;

fn main() {
    let scale = match std::env::var("MMLOG_SPEC_SCALE") {
        Ok(s) => s
            .parse::<u64>()
            .ok()
            .filter(|&n| n >= 1)
            .unwrap_or_else(|| panic!("MMLOG_SPEC_SCALE must be a whole number >= 1, not {s:?}")),
        Err(_) => 1,
    };
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let root = tempfile::tempdir_in(bench_base()).expect("tempdir");
    println!("# Event-sourced reader-writer: the spec's scenarios, measured");
    println!(
        "scale {scale} (MMLOG_SPEC_SCALE), {cores} cores, logs under {}",
        root.path().display()
    );
    let started = Instant::now();
    let s1 = scenario_1(scale, root.path());
    let s2 = scenario_2(scale, root.path());
    let s3 = scenario_3(scale, root.path());
    matrix(&s1, &s2, &s3);
    println!("\ntotal time {:.1?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// A histogram of nanoseconds, from 1 ns to 100 s at 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("histogram bounds")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn from_values(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
    let mut h = histogram();
    for v in values {
        h.saturating_record(v);
    }
    h
}

/// The percentiles of one histogram, for printing.
#[derive(Clone, Copy)]
struct Lat {
    n: u64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
}

impl Lat {
    fn of(h: &Histogram<u64>) -> Lat {
        Lat {
            n: h.len(),
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }

    /// "p50 X, p99 Y": the short form for the matrix.
    fn short(&self) -> String {
        format!("p50 {}, p99 {}", Ns(self.p50), Ns(self.p99))
    }

    /// "p50 / p99 / p99.9 / max".
    fn long(&self) -> String {
        format!(
            "p50 {} / p99 {} / p99.9 {} / max {}",
            Ns(self.p50),
            Ns(self.p99),
            Ns(self.p999),
            Ns(self.max)
        )
    }
}

impl fmt::Display for Lat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n {:>9}  p50 {:>9}  p99 {:>9}  p99.9 {:>9}  max {:>9}  mean {:>9}",
            self.n,
            Ns(self.p50).to_string(),
            Ns(self.p99).to_string(),
            Ns(self.p999).to_string(),
            Ns(self.max).to_string(),
            Ns(self.mean as u64).to_string(),
        )
    }
}

/// Nanoseconds, printed in a readable unit.
struct Ns(u64);

impl fmt::Display for Ns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        match ns {
            0..1_000 => write!(f, "{ns} ns"),
            1_000..1_000_000 => write!(f, "{:.1} µs", ns as f64 / 1e3),
            1_000_000..1_000_000_000 => write!(f, "{:.2} ms", ns as f64 / 1e6),
            _ => write!(f, "{:.2} s", ns as f64 / 1e9),
        }
    }
}

/// Operations per second, printed with thousands separators.
fn per_sec(ops: u64, wall: Duration) -> String {
    let rate = (ops as f64 / wall.as_secs_f64()).round() as u64;
    let digits = rate.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out}/s")
}

/// Context switches of the calling thread so far: (voluntary, involuntary).
fn context_switches() -> (u64, u64) {
    // SAFETY: `rusage` is plain integers, for which all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable `rusage`; RUSAGE_THREAD reports on the calling thread.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    (ru.ru_nvcsw as u64, ru.ru_nivcsw as u64)
}

/// An item's data: 56 bytes, unique per writer and item.
fn payload(writer: usize, item: usize) -> String {
    format!("writer {writer:04} item {item:07} ................................")
}

fn log_options() -> Options {
    Options::default().durability(Durability::Buffered)
}

fn open_events(dir: &Path) -> EventStore {
    EventStore::open(dir, log_options()).expect("open event store")
}

/// The two operations scenarios 1 and 2 time on both stores, each the store's natural call:
/// `LockedStore::get` returns an owned `String` (a copy made under the read lock), the event
/// store hands out a `&str` into the shared state.
trait Kv: Sync {
    fn put(&self, writer: u32, data: String) -> Uuid;
    /// Reads item `id`; returns whether it was found.
    fn get(&self, id: &Uuid) -> bool;
}

impl Kv for LockedStore {
    fn put(&self, writer: u32, data: String) -> Uuid {
        LockedStore::write(self, writer, data)
    }

    fn get(&self, id: &Uuid) -> bool {
        black_box(LockedStore::get(self, id)).is_some()
    }
}

impl Kv for EventStore {
    fn put(&self, writer: u32, data: String) -> Uuid {
        EventStore::write(self, writer, data).expect("write").1
    }

    fn get(&self, id: &Uuid) -> bool {
        let view = self.read(Consistency::Eventual).expect("read");
        black_box(view.data(id)).is_some()
    }
}

fn preload(store: &impl Kv, items: usize) -> Vec<Uuid> {
    (0..items)
        .map(|i| store.put(9_999, payload(9_999, i)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Scenario 1: high write throughput

const S1_WRITERS: usize = 1_000;
/// Writes per writer at scale 1.
const S1_WRITES: usize = 20;
const S1_READERS: usize = 2;
/// Items written before the run, which the readers read.
const S1_KNOWN: usize = 1_000;
/// Each case runs once per round, in a rotating order.
const S1_ROUNDS: usize = 5;
/// How long a settled event store is left alone between opening and the writers' start: its
/// log's background thread pre-faults the active segment and prepares the next one meanwhile
/// (about 60 ms on an idle development VM).
const S1_SETTLE: Duration = Duration::from_millis(500);
/// Stack of a writer thread: 1,000 of them at the default 2 MiB would map 2 GiB for nothing.
const WRITER_STACK: usize = 256 << 10;
const S1_CASES: [&str; 3] = ["locked", "events", "events, just opened"];

struct S1Run {
    writes: Histogram<u64>,
    reads: Histogram<u64>,
    /// From the first writer's first write to the last writer's last, summed over rounds.
    wall: Duration,
    /// Summed over the writer threads, over their writes.
    voluntary: u64,
    involuntary: u64,
    /// Writer threads that switched out voluntarily at least once.
    writers_that_blocked: usize,
    /// Write p99 and p99.9 of each round.
    rounds: Vec<(u64, u64)>,
}

impl S1Run {
    fn new() -> S1Run {
        S1Run {
            writes: histogram(),
            reads: histogram(),
            wall: Duration::ZERO,
            voluntary: 0,
            involuntary: 0,
            writers_that_blocked: 0,
            rounds: Vec::new(),
        }
    }

    fn add(&mut self, round: S1Run) {
        let l = Lat::of(&round.writes);
        self.rounds.push((l.p99, l.p999));
        self.writes.add(&round.writes).expect("merge");
        self.reads.add(&round.reads).expect("merge");
        self.wall += round.wall;
        self.voluntary += round.voluntary;
        self.involuntary += round.involuntary;
        self.writers_that_blocked += round.writers_that_blocked;
    }
}

struct S1 {
    /// By `S1_CASES`.
    cases: Vec<S1Run>,
    per_writer: usize,
}

fn scenario_1(scale: u64, root: &Path) -> S1 {
    let per_writer = S1_WRITES * scale as usize;
    let total = S1_KNOWN + S1_WRITERS * per_writer;
    println!(
        "\n## Scenario 1: high write throughput\n{S1_WRITERS} writer threads x {per_writer} \
         writes of 56 B, released together, while {S1_READERS} reader threads read {S1_KNOWN} \
         items written before at random; {S1_ROUNDS} rounds of each case, pooled. \"events\" \
         starts writing {S1_SETTLE:?} after opening the store, \"just opened\" at once"
    );
    let mut cases: Vec<S1Run> = S1_CASES.iter().map(|_| S1Run::new()).collect();
    for round in 0..S1_ROUNDS {
        for k in 0..S1_CASES.len() {
            let case = (round + k) % S1_CASES.len();
            let run = if case == 0 {
                s1_run(
                    per_writer,
                    Duration::ZERO,
                    || {
                        let store = LockedStore::new();
                        let known = preload(&store, S1_KNOWN);
                        (store, known)
                    },
                    |store| assert_eq!(store.len(), total),
                )
            } else {
                let dir = root.join(format!("s1-{round}-{case}"));
                let settle = if case == 1 { S1_SETTLE } else { Duration::ZERO };
                s1_run(
                    per_writer,
                    settle,
                    || {
                        let store = open_events(&dir);
                        let known = preload(&store, S1_KNOWN);
                        // The readers read `Eventual`: the cache must hold the known items.
                        store.read(Consistency::Strong).expect("catch up");
                        (store, known)
                    },
                    |store| {
                        // Natural ordering: every append got its own sequence number, densely.
                        assert_eq!(store.latest_sequence(), Some(total as u64 - 1));
                        let state = store.read(Consistency::Strong).expect("read");
                        assert_eq!(state.len(), total);
                    },
                )
            };
            cases[case].add(run);
        }
    }

    for (name, r) in S1_CASES.iter().zip(&cases) {
        let rounds: Vec<String> = r
            .rounds
            .iter()
            .map(|&(p99, p999)| format!("{}/{}", Ns(p99), Ns(p999)))
            .collect();
        println!("{name}:");
        println!("  write  {}", Lat::of(&r.writes));
        println!(
            "         write p99/p99.9 by round: {}; {} writes overall",
            rounds.join(", "),
            per_sec(r.writes.len(), r.wall)
        );
        println!(
            "         writers switched out {} times voluntarily (blocked; {} of {} writer \
             threads at least once), {} times involuntarily (preempted)",
            r.voluntary,
            r.writers_that_blocked,
            S1_WRITERS * S1_ROUNDS,
            r.involuntary,
        );
        println!("  read   {}", Lat::of(&r.reads));
    }
    let l = Lat::of(&cases[0].writes);
    for (name, r) in S1_CASES.iter().zip(&cases).skip(1) {
        let e = Lat::of(&r.writes);
        println!(
            "write latency locked / {name}: p99 {:.1}x, p99.9 {:.1}x",
            l.p99 as f64 / e.p99 as f64,
            l.p999 as f64 / e.p999 as f64,
        );
    }
    S1 { cases, per_writer }
}

/// One round of one case: spawns the threads, then sets the store up (so "just opened" is
/// just that), waits `settle`, releases everyone, and checks the store after.
fn s1_run<S: Kv + Send>(
    per_writer: usize,
    settle: Duration,
    setup: impl FnOnce() -> (S, Vec<Uuid>),
    check: impl FnOnce(&S),
) -> S1Run {
    let cell: OnceLock<(S, Vec<Uuid>)> = OnceLock::new();
    let barrier = Barrier::new(S1_WRITERS + S1_READERS + 1);
    let done = Barrier::new(S1_WRITERS);
    let stop = AtomicBool::new(false);
    let run = thread::scope(|s| {
        let readers: Vec<_> = (0..S1_READERS)
            .map(|r| {
                let (cell, barrier, stop) = (&cell, &barrier, &stop);
                s.spawn(move || {
                    let mut rng = SplitMix(r as u64 + 1);
                    let mut h = histogram();
                    barrier.wait();
                    let (store, known) = cell.get().expect("set up before the release");
                    while !stop.load(Ordering::Relaxed) {
                        let id = &known[rng.below(known.len())];
                        let t = Instant::now();
                        let found = store.get(id);
                        h.saturating_record(nanos(t.elapsed()));
                        assert!(found, "a known item is missing");
                    }
                    h
                })
            })
            .collect();
        let writers: Vec<_> = (0..S1_WRITERS)
            .map(|w| {
                let (cell, barrier, done) = (&cell, &barrier, &done);
                thread::Builder::new()
                    .stack_size(WRITER_STACK)
                    .spawn_scoped(s, move || {
                        let data: Vec<String> = (0..per_writer).map(|i| payload(w, i)).collect();
                        // Written now, so that no page of it is first touched during the run.
                        let mut lat = vec![0u64; per_writer];
                        touch_stack();
                        barrier.wait();
                        let (store, _) = cell.get().expect("set up before the release");
                        let (v0, i0) = context_switches();
                        let start = Instant::now();
                        for (d, l) in data.into_iter().zip(&mut lat) {
                            let t = Instant::now();
                            black_box(store.put(w as u32, d));
                            *l = nanos(t.elapsed());
                        }
                        let end = Instant::now();
                        let (v1, i1) = context_switches();
                        // No thread exits (unmapping its stack, which takes the address
                        // space lock every page fault needs) while others still write.
                        done.wait();
                        (lat, v1 - v0, i1 - i0, start, end)
                    })
                    .expect("spawn writer")
            })
            .collect();
        assert!(cell.set(setup()).is_ok(), "set up twice");
        thread::sleep(settle);
        barrier.wait();
        let mut run = S1Run::new();
        let mut span: Option<(Instant, Instant)> = None;
        for w in writers {
            let (lat, vol, invol, start, end) = w.join().expect("writer");
            run.writes.add(from_values(lat)).expect("merge");
            run.voluntary += vol;
            run.involuntary += invol;
            run.writers_that_blocked += usize::from(vol > 0);
            span = Some(span.map_or((start, end), |(a, b)| (a.min(start), b.max(end))));
        }
        let (start, end) = span.expect("writers");
        run.wall = end - start;
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            run.reads.add(r.join().expect("reader")).expect("merge");
        }
        run
    });
    let (store, _) = cell.into_inner().expect("set up");
    check(&store);
    run
}

/// Touches the top half of a writer's stack, so that no write of the run takes a page fault
/// on a stack page the thread never used (the event store's write path runs deeper than the
/// locked store's).
#[inline(never)]
fn touch_stack() {
    let buf = [1u8; WRITER_STACK / 2];
    black_box(&buf);
}

// ---------------------------------------------------------------------------------------------
// Scenario 2: read-heavy workload with read models

const S2_WRITERS: usize = 2;
const S2_READERS: usize = 8;
const S2_PRELOAD: usize = 10_000;
/// Writers write this many items, then sleep `S2_PAUSE`.
const S2_BURST: usize = 10;
const S2_PAUSE: Duration = Duration::from_millis(1);
const S2_BOUND: Duration = Duration::from_millis(10);
const S2_EVENT_QUERIES: [&str; 4] = [
    "cached, Eventual",
    "cached, BoundedStaleness(10 ms)",
    "model ItemsPerWriter.count",
    "model RecentChanges newest",
];
/// Single-threaded `Strong` reads measured after the concurrent phase.
const S2_STRONG_READS: usize = 200;

struct S2Run {
    writes: Histogram<u64>,
    /// One histogram per query kind.
    reads: Vec<Histogram<u64>>,
    /// The oldest state served, per query kind (cached queries only).
    max_age: Vec<Duration>,
    wall: Duration,
}

impl S2Run {
    fn all_reads(&self) -> Histogram<u64> {
        let mut h = histogram();
        for r in &self.reads {
            h.add(r).expect("merge");
        }
        h
    }
}

struct S2 {
    locked: S2Run,
    events: S2Run,
    max_lag: u64,
    catch_up: Duration,
    strong_after_write: Histogram<u64>,
    items_at_end: usize,
}

fn scenario_2(scale: u64, root: &Path) -> S2 {
    let duration = Duration::from_secs(scale);
    println!(
        "\n## Scenario 2: read-heavy workload with read models\n{S2_PRELOAD} items written \
         before; for {duration:?}, {S2_WRITERS} writer threads write bursts of {S2_BURST} \
         with {S2_PAUSE:?} sleeps while {S2_READERS} reader threads read without pause"
    );

    let locked = LockedStore::new();
    let known = preload(&locked, S2_PRELOAD);
    let locked_run = s2_run(
        &known,
        1,
        duration,
        |w, d| {
            black_box(locked.write(w, d));
        },
        |_, id, _| {
            assert!(Kv::get(&locked, id), "a known item is missing");
            None
        },
    );
    drop(locked);

    let events = open_events(&root.join("s2"));
    let known = preload(&events, S2_PRELOAD);
    let ipw = events
        .subscribe("items_per_writer", ItemsPerWriter::default())
        .expect("subscribe");
    let recent = events
        .subscribe("recent_changes", RecentChanges::new(100))
        .expect("subscribe");
    let latest = events.latest_sequence().expect("events");
    assert!(ipw.wait_for(latest, Duration::from_secs(30)), "model stuck");
    assert!(
        recent.wait_for(latest, Duration::from_secs(30)),
        "model stuck"
    );
    events.read(Consistency::Strong).expect("catch up");

    let max_lag = AtomicU64::new(0);
    let monitoring = AtomicBool::new(true);
    let events_run = thread::scope(|s| {
        // Samples the models' lag every millisecond while the readers run.
        s.spawn(|| {
            while monitoring.load(Ordering::Relaxed) {
                let latest = events.latest_sequence();
                let lag = ipw.lag(latest).max(recent.lag(latest));
                max_lag.fetch_max(lag, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(1));
            }
        });
        let run = s2_run(
            &known,
            S2_EVENT_QUERIES.len(),
            duration,
            |w, d| {
                black_box(events.write(w, d).expect("write"));
            },
            |kind, id, w| match kind {
                0 | 1 => {
                    let c = if kind == 0 {
                        Consistency::Eventual
                    } else {
                        Consistency::BoundedStaleness(S2_BOUND)
                    };
                    let view = events.read(c).expect("read");
                    assert!(
                        black_box(view.data(id)).is_some(),
                        "a known item is missing"
                    );
                    Some(view.age())
                }
                2 => {
                    black_box(ipw.read(|m| m.count(w)));
                    None
                }
                _ => {
                    black_box(recent.read(|m| m.changes().last().map(|c| c.seq)));
                    None
                }
            },
        );
        monitoring.store(false, Ordering::Relaxed);
        run
    });
    let latest = events.latest_sequence();
    let lag_at_stop = ipw.lag(latest).max(recent.lag(latest));
    max_lag.fetch_max(lag_at_stop, Ordering::Relaxed);
    let t = Instant::now();
    let latest = latest.expect("events");
    assert!(ipw.wait_for(latest, Duration::from_secs(60)), "model stuck");
    assert!(
        recent.wait_for(latest, Duration::from_secs(60)),
        "model stuck"
    );
    let catch_up = t.elapsed();
    let written = S2_PRELOAD as u64 + events_run.writes.len();
    assert_eq!(ipw.read(|m| m.counts().values().sum::<u64>()), written);

    // Strong reads, one thread, writers stopped: with nothing new the cache is only re-stamped;
    // after one new event the reader catches up itself.
    let mut strong_idle = histogram();
    let mut strong_after_write = histogram();
    for i in 0..S2_STRONG_READS {
        let t = Instant::now();
        black_box(events.read(Consistency::Strong).expect("read"));
        strong_idle.saturating_record(nanos(t.elapsed()));
        let (seq, _) = events.write(0, payload(0, i)).expect("write");
        let t = Instant::now();
        let view = events.read(Consistency::Strong).expect("read");
        strong_after_write.saturating_record(nanos(t.elapsed()));
        assert_eq!(view.version(), Some(seq));
    }
    let items_at_end = events.read(Consistency::Strong).expect("read").len();
    drop((ipw, recent, events));

    let reads = [
        ("locked", &locked_run, &["get"][..]),
        ("events", &events_run, &S2_EVENT_QUERIES[..]),
    ];
    for (name, r, kinds) in reads {
        for (kind, h) in kinds.iter().zip(&r.reads) {
            println!("{name:>6} read   {}  {kind}", Lat::of(h));
        }
        let all = r.all_reads();
        if r.reads.len() > 1 {
            println!("{name:>6} read   {}  all queries", Lat::of(&all));
        }
        println!("{name:>6}        {} reads", per_sec(all.len(), r.wall));
    }
    for (kind, age) in S2_EVENT_QUERIES.iter().zip(&events_run.max_age).take(2) {
        println!("events         oldest state served to \"{kind}\": {age:.1?}");
    }
    for (name, r) in [("locked", &locked_run), ("events", &events_run)] {
        println!(
            "{name:>6} write  {}  ({} writes)",
            Lat::of(&r.writes),
            per_sec(r.writes.len(), r.wall)
        );
    }
    println!(
        "events         read models' lag: max {max_lag} events, {lag_at_stop} when the writers \
         stopped, caught up {catch_up:.1?} later",
        max_lag = max_lag.load(Ordering::Relaxed),
    );
    println!("events Strong  {}  nothing new", Lat::of(&strong_idle));
    println!(
        "events Strong  {}  after 1 new event, {items_at_end} live items",
        Lat::of(&strong_after_write)
    );
    S2 {
        locked: locked_run,
        events: events_run,
        max_lag: max_lag.load(Ordering::Relaxed),
        catch_up,
        strong_after_write,
        items_at_end,
    }
}

/// Runs the read-heavy phase: `write(writer, data)` from the writers, `read(kind, id, writer)`
/// from the readers (each cycling through the `kinds` queries; it returns the age of the state
/// it was served, if any), until `duration` has passed.
fn s2_run(
    known: &[Uuid],
    kinds: usize,
    duration: Duration,
    write: impl Fn(u32, String) + Sync,
    read: impl Fn(usize, &Uuid, u32) -> Option<Duration> + Sync,
) -> S2Run {
    let barrier = Barrier::new(S2_WRITERS + S2_READERS + 1);
    let stop = AtomicBool::new(false);
    let (write, read) = (&write, &read);
    thread::scope(|s| {
        let writers: Vec<_> = (0..S2_WRITERS)
            .map(|w| {
                let (barrier, stop) = (&barrier, &stop);
                s.spawn(move || {
                    let mut lat = Vec::new();
                    barrier.wait();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..S2_BURST {
                            let d = payload(w, i);
                            i += 1;
                            let t = Instant::now();
                            write(w as u32, d);
                            lat.push(nanos(t.elapsed()));
                        }
                        thread::sleep(S2_PAUSE);
                    }
                    lat
                })
            })
            .collect();
        let readers: Vec<_> = (0..S2_READERS)
            .map(|r| {
                let (barrier, stop) = (&barrier, &stop);
                s.spawn(move || {
                    let mut rng = SplitMix(100 + r as u64);
                    let mut hs: Vec<_> = (0..kinds).map(|_| histogram()).collect();
                    let mut max_age = vec![Duration::ZERO; kinds];
                    barrier.wait();
                    // Readers start at different queries so that all kinds run at once.
                    let mut kind = r % kinds;
                    while !stop.load(Ordering::Relaxed) {
                        let id = &known[rng.below(known.len())];
                        let w = rng.below(S2_WRITERS) as u32;
                        let t = Instant::now();
                        let age = read(kind, id, w);
                        let took = t.elapsed();
                        hs[kind].saturating_record(nanos(took));
                        // The state's age when the read began, about: a reader preempted
                        // inside or just after the read does not make the state look older.
                        if let Some(age) = age {
                            max_age[kind] = max_age[kind].max(age.saturating_sub(took));
                        }
                        kind = (kind + 1) % kinds;
                    }
                    (hs, max_age)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        let mut run = S2Run {
            writes: histogram(),
            reads: (0..kinds).map(|_| histogram()).collect(),
            max_age: vec![Duration::ZERO; kinds],
            wall: Duration::ZERO,
        };
        for w in writers {
            run.writes
                .add(from_values(w.join().expect("writer")))
                .expect("merge");
        }
        for r in readers {
            let (hs, ages) = r.join().expect("reader");
            for (k, h) in hs.iter().enumerate() {
                run.reads[k].add(h).expect("merge");
                run.max_age[k] = run.max_age[k].max(ages[k]);
            }
        }
        run.wall = start.elapsed();
        run
    })
}

// ---------------------------------------------------------------------------------------------
// Scenario 3: time travel

/// Events at scale 1.
const S3_EVENTS: u64 = 20_000;
const S3_SNAPSHOT_EVERY: u64 = 1_000;
/// Every this many events, one is a removal.
const S3_REMOVE_EVERY: u64 = 10;
/// Queries of each kind per copy, at scale 1.
const S3_QUERIES: usize = 100;
/// The default of `Options::keep_checkpoints`.
const DEFAULT_KEPT: usize = 3;
/// Each copy is opened (and closed) this many times; the last one answers the queries.
const S3_OPENS: usize = 3;

struct S3Variant {
    name: String,
    /// Each open, in order.
    opens: Vec<Duration>,
    at_seq: Histogram<u64>,
    at_time: Histogram<u64>,
    /// `state_at_seq` at the sequence number of each snapshot taken.
    at_snapshots: Histogram<u64>,
}

impl S3Variant {
    fn median_open(&self) -> Duration {
        let mut o = self.opens.clone();
        o.sort();
        o[o.len() / 2]
    }
}

struct S3 {
    events: u64,
    locked_write: Histogram<u64>,
    locked_remove: Histogram<u64>,
    event_write: Histogram<u64>,
    event_remove: Histogram<u64>,
    snapshot: Histogram<u64>,
    variants: Vec<S3Variant>,
}

fn scenario_3(scale: u64, root: &Path) -> S3 {
    let total = S3_EVENTS * scale;
    let queries = S3_QUERIES * scale as usize;
    let snapshots = (total / S3_SNAPSHOT_EVERY) as usize;
    println!(
        "\n## Scenario 3: time travel\n{total} events from one thread (every \
         {S3_REMOVE_EVERY}th a removal), a snapshot every {S3_SNAPSHOT_EVERY} events; then \
         {queries} state_at_seq and {queries} state_at_time queries at random points"
    );
    let all_dir = root.join("s3-all-snapshots");
    let store_options = EventStoreOptions {
        snapshot_every_events: 0,
        snapshot_every: None,
        ..EventStoreOptions::default()
    };
    let keep_all = log_options().keep_checkpoints(snapshots + 1);
    let events = EventStore::open_with(&all_dir, keep_all.clone(), store_options.clone())
        .expect("open event store");
    let locked = LockedStore::new();
    let (mut live_events, mut live_locked) = (Vec::new(), Vec::new());
    let (mut event_write, mut event_remove) = (histogram(), histogram());
    let (mut locked_write, mut locked_remove) = (histogram(), histogram());
    let mut snapshot = histogram();
    let mut rng = SplitMix(3);
    let built_from = SystemTime::now();
    for i in 0..total {
        if i % S3_REMOVE_EVERY == S3_REMOVE_EVERY - 1 {
            // The same item position in both stores: their live sets stay the same shape.
            let k = rng.below(live_events.len());
            let id = live_events.swap_remove(k);
            let t = Instant::now();
            events.remove(1, id).expect("remove");
            event_remove.saturating_record(nanos(t.elapsed()));
            let id = live_locked.swap_remove(k);
            let t = Instant::now();
            assert!(locked.remove(&id));
            locked_remove.saturating_record(nanos(t.elapsed()));
        } else {
            let d = payload(1, i as usize);
            let d2 = d.clone();
            let t = Instant::now();
            let (_, id) = events.write(1, d).expect("write");
            event_write.saturating_record(nanos(t.elapsed()));
            live_events.push(id);
            let t = Instant::now();
            let id = locked.write(1, d2);
            locked_write.saturating_record(nanos(t.elapsed()));
            live_locked.push(id);
        }
        if (i + 1) % S3_SNAPSHOT_EVERY == 0 {
            let t = Instant::now();
            assert_eq!(events.snapshot().expect("snapshot"), Some(i));
            snapshot.saturating_record(nanos(t.elapsed()));
        }
    }
    let built_until = SystemTime::now();
    assert_eq!(events.latest_sequence(), Some(total - 1));
    let (kept, _) = events.log().checkpoints().expect("checkpoints");
    assert_eq!(kept.len(), snapshots);
    let snapshot_bytes = kept.last().map_or(0, |c| c.data_len);
    let live = events.read(Consistency::Strong).expect("read").len();
    assert_eq!(live, locked.len());
    drop((events, locked));

    // The same log three ways: copies of the closed log's directory, with checkpoint files
    // removed (`<dir>/checkpoints/<seq>.ckpt`, the layout `mmlog::log::checkpoints` documents).
    let newest_dir = root.join("s3-newest-3");
    let none_dir = root.join("s3-no-snapshot");
    copy_dir(&all_dir, &newest_dir);
    keep_newest_checkpoints(&newest_dir, DEFAULT_KEPT);
    copy_dir(&all_dir, &none_dir);
    keep_newest_checkpoints(&none_dir, 0);

    let span = built_until
        .duration_since(built_from)
        .expect("clock went back");
    let seqs: Vec<u64> = (0..queries).map(|_| rng.next() % total).collect();
    let times: Vec<SystemTime> = (0..queries)
        .map(|_| built_from + Duration::from_nanos(rng.next() % nanos(span).max(1)))
        .collect();
    let copies = [
        (format!("all {snapshots} snapshots"), &all_dir, keep_all),
        (
            format!("newest {DEFAULT_KEPT} snapshots (the default keep_checkpoints)"),
            &newest_dir,
            log_options(),
        ),
        (
            "no snapshot (full replay)".to_owned(),
            &none_dir,
            log_options(),
        ),
    ];
    let mut variants = Vec::new();
    let mut answers: Option<Vec<(Option<u64>, usize)>> = None;
    let snapshot_seqs: Vec<u64> = (1..=total / S3_SNAPSHOT_EVERY)
        .map(|k| k * S3_SNAPSHOT_EVERY - 1)
        .collect();
    for (name, dir, options) in copies {
        let mut opens = Vec::new();
        let store = loop {
            let t = Instant::now();
            let store =
                EventStore::open_with(dir, options.clone(), store_options.clone()).expect("open");
            opens.push(t.elapsed());
            if opens.len() == S3_OPENS {
                break store;
            }
        };
        let mut at_snapshots = histogram();
        for &seq in &snapshot_seqs {
            let t = Instant::now();
            let view = store.state_at_seq(seq).expect("state_at_seq");
            at_snapshots.saturating_record(nanos(t.elapsed()));
            assert_eq!(view.version(), Some(seq));
        }
        let mut at_seq = histogram();
        let mut at_time = histogram();
        let mut mine = Vec::with_capacity(2 * queries);
        for &seq in &seqs {
            let t = Instant::now();
            let view = store.state_at_seq(seq).expect("state_at_seq");
            at_seq.saturating_record(nanos(t.elapsed()));
            assert_eq!(view.version(), Some(seq));
            mine.push((view.version(), view.len()));
        }
        for &time in &times {
            let t = Instant::now();
            let view = store.state_at_time(time).expect("state_at_time");
            at_time.saturating_record(nanos(t.elapsed()));
            mine.push((view.version(), view.len()));
        }
        // Every copy holds the same events: the answers must not depend on the snapshots.
        match &answers {
            Some(a) => assert!(a == &mine, "{name}: answers differ from the first copy's"),
            None => answers = Some(mine),
        }
        variants.push(S3Variant {
            name,
            opens,
            at_seq,
            at_time,
            at_snapshots,
        });
    }

    println!("build, one thread ({live} live items at the end):");
    println!("locked write  {}", Lat::of(&locked_write));
    println!("events write  {}", Lat::of(&event_write));
    println!("locked remove {}", Lat::of(&locked_remove));
    println!("events remove {}", Lat::of(&event_remove));
    println!(
        "events snapshot() {}  (the newest is {snapshot_bytes} B)",
        Lat::of(&snapshot)
    );
    println!("queries:");
    for v in &variants {
        println!("  {} (open: {:.1?})", v.name, v.opens);
        println!("    state_at_seq  {}", Lat::of(&v.at_seq));
        println!("    state_at_time {}", Lat::of(&v.at_time));
        println!(
            "    state_at_seq  {}  at the {} snapshot points",
            Lat::of(&v.at_snapshots),
            snapshot_seqs.len()
        );
    }
    println!("locked: impossible (no history is kept)");
    S3 {
        events: total,
        locked_write,
        locked_remove,
        event_write,
        event_remove,
        snapshot,
        variants,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Removes all but the newest `keep` checkpoint files of the (closed) log in `dir`.
fn keep_newest_checkpoints(dir: &Path, keep: usize) {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("checkpoints"))
        .expect("read checkpoints")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .collect();
    // Named by zero-padded sequence number: the name order is the age order.
    files.sort();
    let drop_count = files.len().saturating_sub(keep);
    for f in &files[..drop_count] {
        std::fs::remove_file(f).expect("remove checkpoint");
    }
}

// ---------------------------------------------------------------------------------------------
// The Comparison Matrix

fn matrix(s1: &S1, s2: &S2, s3: &S3) {
    let (locked1, events1, opened1) = (&s1.cases[0], &s1.cases[1], &s1.cases[2]);
    // Voluntary context switches (blocking waits) per 1,000 writes.
    let waits = |r: &S1Run| r.voluntary as f64 * 1000.0 / r.writes.len() as f64;
    let e2 = |k: usize| Lat::of(&s2.events.reads[k]).short();
    let (all, newest, none) = (&s3.variants[0], &s3.variants[1], &s3.variants[2]);
    let history = |v: &S3Variant| {
        format!(
            "`state_at_seq` {}, `state_at_time` {}",
            Lat::of(&v.at_seq).short(),
            Lat::of(&v.at_time).short()
        )
    };

    println!("\n## Comparison Matrix, measured\n");
    println!("| Aspect | Traditional RW Lock | Event Sourced |");
    println!("|--------|---------------------|---------------|");
    println!(
        "| Write Latency (S1: {S1_WRITERS} writer threads x {}, {S1_READERS} readers, \
         {S1_ROUNDS} rounds) | {} | {}; right after open {} |",
        s1.per_writer,
        Lat::of(&locked1.writes).long(),
        Lat::of(&events1.writes).long(),
        Lat::of(&opened1.writes).long(),
    );
    println!(
        "| Write Latency (S3: one thread) | write {}; remove {} | write {}; remove {} |",
        Lat::of(&s3.locked_write).short(),
        Lat::of(&s3.locked_remove).short(),
        Lat::of(&s3.event_write).short(),
        Lat::of(&s3.event_remove).short(),
    );
    println!(
        "| Read Latency (S2: {S2_READERS} readers, {S2_WRITERS} paced writers) | `get` {} | \
         cached `Eventual` {}; cached `BoundedStaleness(10ms)` {}; read model `ItemsPerWriter` \
         {}; read model `RecentChanges` {}; `Strong` right after a write {} ({} items) |",
        Lat::of(&s2.locked.reads[0]).short(),
        e2(0),
        e2(1),
        e2(2),
        e2(3),
        Lat::of(&s2.strong_after_write).short(),
        s2.items_at_end,
    );
    println!(
        "| Staleness (S2) | none: a read sees every write that returned | `Eventual` served \
         state up to {:.0?} old, `BoundedStaleness(10ms)` up to {:.1?}; read models up to {} \
         events behind, caught up {:.1?} after the writers stopped |",
        s2.events.max_age[0], s2.events.max_age[1], s2.max_lag, s2.catch_up,
    );
    println!(
        "| History (S3: {} events, a snapshot every {S3_SNAPSHOT_EVERY}) | impossible: no \
         history is kept | {} (every snapshot kept); {} (newest {DEFAULT_KEPT} kept, the \
         default); {} (no snapshot: replay from 0). `snapshot()` {} |",
        s3.events,
        history(all),
        history(newest),
        history(none),
        Lat::of(&s3.snapshot).short(),
    );
    println!(
        "| Cold start (S3: open, median of {S3_OPENS}) | nothing to rebuild (and nothing \
         survives a restart) | {:.1?} from the newest snapshot; {:.1?} replaying every event |",
        all.median_open(),
        none.median_open(),
    );
    println!(
        "| Conflict Resolution (S1) | blocking: {:.1} waits per 1,000 writes | {:.1} waits \
         per 1,000 writes; sequence numbers dense and unique (checked) |",
        waits(locked1),
        waits(events1),
    );
    println!(
        "| Scalability (one 2-core machine; horizontal not measured) | S1 {} writes; S2 {} \
         reads, {} writes | S1 {} writes; S2 {} reads, {} writes |",
        per_sec(locked1.writes.len(), locked1.wall),
        per_sec(s2.locked.all_reads().len(), s2.locked.wall),
        per_sec(s2.locked.writes.len(), s2.locked.wall),
        per_sec(events1.writes.len(), events1.wall),
        per_sec(s2.events.all_reads().len(), s2.events.wall),
        per_sec(s2.events.writes.len(), s2.events.wall),
    );
    println!("| Complexity | not measured | not measured |");
}
