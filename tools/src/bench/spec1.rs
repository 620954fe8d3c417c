//! The spec's scenario 1, high write throughput: 1,000 writer threads, released together,
//! each write items of 56 bytes and, after every fourth write, remove one of their own, while
//! 2 reader threads read items written before at random (locked: `get`; events:
//! `read(Consistency::Eventual)` then `data(&id)`).
//!
//! Three cases, each run in rounds (in a rotating order, so that none always follows the same
//! one) and pooled: the locked store; the event store opened [`SETTLE`] before the release (its
//! log's background thread has pre-faulted the active segment and prepared the next one); the
//! event store opened just before the release. Each writer thread also counts its context
//! switches over its operations (`getrusage(RUSAGE_THREAD)`): a voluntary one is the thread
//! blocking (a futex wait on a lock: the store's, or the allocator's), so that count is
//! "writers waited", measured; involuntary ones are preemptions, whatever the store.
//!
//! The harness keeps its own noise out of the timings: each writer makes its payloads and its
//! latency buffers and touches its stack before the start, and no writer thread exits until
//! all are done (an exiting thread unmaps its stack, which takes the address-space lock that
//! every page fault needs).

use std::hint::black_box;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mmlog::events::{Consistency, EventStore, LockedStore};
use uuid::Uuid;

use super::measure::{Hist, Lat, Metric, from_values, histogram, merge, nanos, ns};
use super::report::Report;
use super::{Ctx, log_options, payload};
use crate::demo::SplitMix;
use crate::demo::stores::Store;
use crate::failure::{CmdResult, Failure};
use crate::progress;
use crate::render::count;
use crate::sync::{Latch, StartLine, lock};

/// Writer threads, as in the spec.
pub const WRITERS: usize = 1_000;
/// Writes per writer at scale 1.
const WRITES: f64 = 20.0;
/// After every this many writes, a writer removes one of its items.
const REMOVE_EVERY: usize = 4;
const READERS: usize = 2;
/// Items written before the run, which the readers read.
const KNOWN: usize = 1_000;
/// Each case runs once per round (fewer below scale 1).
const ROUNDS: usize = 5;
/// How long the settled event store is left alone between opening and the release.
const SETTLE: Duration = Duration::from_millis(500);
/// Stack of a writer thread: 1,000 of them at the default 2 MiB would map 2 GiB for nothing.
const WRITER_STACK: usize = 256 << 10;
/// The cases, by their store name in the report.
const CASES: [&str; 3] = ["locked", "events", "events_just_opened"];

/// What one case measured, pooled over its rounds.
struct Case {
    writes: Hist,
    removes: Hist,
    reads: Hist,
    /// From the first writer's first operation to the last writer's last, summed over rounds.
    wall: Duration,
    /// How long the readers read, summed over rounds (they start with the writers and stop
    /// once all writers are done).
    read_wall: Duration,
    /// Summed over the writer threads, over their operations.
    voluntary: u64,
    /// The voluntary ones during removals.
    remove_voluntary: u64,
    involuntary: u64,
    /// Writer threads that switched out voluntarily at least once.
    writers_that_blocked: usize,
    /// Write p99 and p99.9 of each round.
    rounds: Vec<(u64, u64)>,
}

impl Case {
    fn new() -> Case {
        Case {
            writes: histogram(),
            removes: histogram(),
            reads: histogram(),
            wall: Duration::ZERO,
            read_wall: Duration::ZERO,
            voluntary: 0,
            remove_voluntary: 0,
            involuntary: 0,
            writers_that_blocked: 0,
            rounds: Vec::new(),
        }
    }

    fn add(&mut self, round: Case) {
        let l = Lat::of(&round.writes);
        self.rounds.push((l.p99, l.p999));
        merge(&mut self.writes, &round.writes);
        merge(&mut self.removes, &round.removes);
        merge(&mut self.reads, &round.reads);
        self.wall += round.wall;
        self.read_wall += round.read_wall;
        self.voluntary += round.voluntary;
        self.remove_voluntary += round.remove_voluntary;
        self.involuntary += round.involuntary;
        self.writers_that_blocked += round.writers_that_blocked;
    }
}

/// Runs scenario 1.
pub fn run(ctx: &Ctx) -> CmdResult<Report> {
    let per_writer = ctx.scaled(WRITES, REMOVE_EVERY as u64) as usize;
    let rounds = if ctx.scale >= 1.0 {
        ROUNDS
    } else {
        ((ROUNDS as f64 * ctx.scale).round() as usize).clamp(1, ROUNDS)
    };
    let writes = WRITERS * per_writer;
    let removes = WRITERS * (per_writer / REMOVE_EVERY);
    let mut report = Report::new(
        "spec1",
        "high write throughput",
        format!(
            "{WRITERS} writer threads x {per_writer} writes of 56 B (after every \
             {REMOVE_EVERY}th, a removal of one of the writer's items), released together, \
             while {READERS} reader threads read {KNOWN} items written before at random; \
             {rounds} round(s) of each case, pooled. \"events\" starts {} after opening the \
             store, \"events_just_opened\" at once",
            ns(nanos(SETTLE))
        ),
    );
    let bar = progress::bar((rounds * CASES.len()) as u64, "spec1");
    let mut cases: Vec<Case> = CASES.iter().map(|_| Case::new()).collect();
    for round in 0..rounds {
        for k in 0..CASES.len() {
            let case = (round + k) % CASES.len();
            let run = if case == 0 {
                one_round(
                    per_writer,
                    Duration::ZERO,
                    || {
                        let store = LockedStore::new();
                        let known = preload(&store)?;
                        Ok((store, known))
                    },
                    |store| {
                        let live = KNOWN + writes - removes;
                        if store.len() != live {
                            return Err(Failure::check(format!(
                                "the locked store holds {} items, not {live}",
                                store.len()
                            )));
                        }
                        Ok(())
                    },
                )
            } else {
                let dir = ctx.root.join(format!("spec1-{round}-{case}"));
                let settle = if case == 1 { SETTLE } else { Duration::ZERO };
                one_round(
                    per_writer,
                    settle,
                    || {
                        let store = EventStore::open(&dir, log_options())?;
                        let known = preload(&store)?;
                        // The readers read `Eventual`: the cache must hold the known items.
                        store.read(Consistency::Strong)?;
                        Ok((store, known))
                    },
                    |store| {
                        // Natural ordering: every event got its own sequence number, densely.
                        let events = (KNOWN + writes + removes) as u64;
                        if store.latest_sequence() != Some(events - 1) {
                            return Err(Failure::check(format!(
                                "{events} events appended, but the last sequence number is {:?}",
                                store.latest_sequence()
                            )));
                        }
                        let live = store.read(Consistency::Strong)?.len();
                        if live != KNOWN + writes - removes {
                            return Err(Failure::check(format!(
                                "the event store holds {live} items, not {}",
                                KNOWN + writes - removes
                            )));
                        }
                        store.close()?;
                        Ok(())
                    },
                )
            }
            .map_err(|f| f.context(&format!("spec1, {}", CASES[case])))?;
            cases[case].add(run);
            bar.inc(1);
        }
        // The round's logs are not needed any more.
        for case in 1..CASES.len() {
            let _ = std::fs::remove_dir_all(ctx.root.join(format!("spec1-{round}-{case}")));
        }
    }
    bar.finish_and_clear();

    for (name, c) in CASES.iter().zip(&cases) {
        let per_1000 = |waits: u64, ops: u64| waits as f64 * 1000.0 / ops.max(1) as f64;
        let write_waits = per_1000(
            c.voluntary.saturating_sub(c.remove_voluntary),
            c.writes.len(),
        );
        let remove_waits = per_1000(c.remove_voluntary, c.removes.len());
        report.metrics.push(
            Metric::new(name, "write", c.writes.len(), c.wall, c.writes.clone())
                .with(
                    "voluntary_switches",
                    c.voluntary.saturating_sub(c.remove_voluntary),
                )
                .with("waits_per_1000", write_waits)
                .with("involuntary_switches_all_ops", c.involuntary)
                .with("writers_that_blocked", c.writers_that_blocked)
                .with(
                    "round_p99_ns",
                    c.rounds.iter().map(|r| r.0).collect::<Vec<_>>(),
                )
                .with(
                    "round_p999_ns",
                    c.rounds.iter().map(|r| r.1).collect::<Vec<_>>(),
                ),
        );
        report.metrics.push(
            Metric::new(name, "remove", c.removes.len(), c.wall, c.removes.clone())
                .with("voluntary_switches", c.remove_voluntary)
                .with("waits_per_1000", remove_waits),
        );
        report.metrics.push(Metric::new(
            name,
            "read",
            c.reads.len(),
            c.read_wall,
            c.reads.clone(),
        ));
        let by_round: Vec<String> = c
            .rounds
            .iter()
            .map(|&(p99, p999)| format!("{}/{}", ns(p99), ns(p999)))
            .collect();
        report.notes.push(format!(
            "{name}: write p99/p99.9 by round {}; writers switched out {} times voluntarily \
             (blocked: {write_waits:.1} times per 1,000 writes, {remove_waits:.1} per 1,000 \
             removals; {} of {} writer threads at least once), {} times involuntarily \
             (preempted)",
            by_round.join(", "),
            count(c.voluntary),
            count(c.writers_that_blocked as u64),
            count((WRITERS * rounds) as u64),
            count(c.involuntary),
        ));
    }
    let l = Lat::of(&cases[0].writes);
    for (name, c) in CASES.iter().zip(&cases).skip(1) {
        let e = Lat::of(&c.writes);
        report.notes.push(format!(
            "write latency, locked / {name}: p99 {:.1}x, p99.9 {:.1}x",
            l.p99 as f64 / e.p99.max(1) as f64,
            l.p999 as f64 / e.p999.max(1) as f64,
        ));
    }
    report.fact("writers", WRITERS);
    report.fact("writes_per_writer", per_writer);
    report.fact("remove_every", REMOVE_EVERY);
    report.fact("readers", READERS);
    report.fact("known_items", KNOWN);
    report.fact("rounds", rounds);
    Ok(report)
}

/// Writes the items the readers read.
fn preload(store: &impl Store) -> CmdResult<Vec<Uuid>> {
    (0..KNOWN)
        .map(|i| store.put(9_999, payload(9_999, i)))
        .collect()
}

/// What a writer thread hands back.
struct WriterOut {
    writes: Vec<u64>,
    removes: Vec<u64>,
    voluntary: u64,
    remove_voluntary: u64,
    involuntary: u64,
    /// When it started and finished its operations (`None`: it did not start).
    span: Option<(Instant, Instant)>,
}

/// One round of one case: spawns the threads, then sets the store up (so "just opened" is
/// just that), waits `settle`, releases everyone, and checks the store after.
fn one_round<S: Store + Send>(
    per_writer: usize,
    settle: Duration,
    setup: impl FnOnce() -> CmdResult<(S, Vec<Uuid>)>,
    check: impl FnOnce(S) -> CmdResult,
) -> CmdResult<Case> {
    let cell: OnceLock<(S, Vec<Uuid>)> = OnceLock::new();
    let line = StartLine::default();
    let all_done = Latch::new(WRITERS);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<Failure>> = Mutex::new(None);
    let fail = |f: Failure| {
        lock(&failure).get_or_insert(f);
    };
    let mut round = Case::new();
    thread::scope(|s| {
        let mut readers = Vec::with_capacity(READERS);
        for r in 0..READERS {
            let (cell, line, stop, fail) = (&cell, &line, &stop, &fail);
            let spawned = thread::Builder::new().spawn_scoped(s, move || {
                let mut h = histogram();
                let mut rng = SplitMix(r as u64 + 1);
                if !line.arrive() {
                    return (h, Duration::ZERO);
                }
                let Some((store, known)) = cell.get() else {
                    return (h, Duration::ZERO);
                };
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let id = &known[rng.below(known.len())];
                    let t = Instant::now();
                    let found = store.get(id);
                    h.saturating_record(nanos(t.elapsed()));
                    if !found {
                        fail(Failure::check(format!("a known item ({id}) is missing")));
                        break;
                    }
                }
                (h, start.elapsed())
            });
            match spawned {
                Ok(h) => readers.push(h),
                Err(e) => fail(Failure::usage(format!("cannot start a reader thread: {e}"))),
            }
        }
        let mut writers = Vec::with_capacity(WRITERS);
        for w in 0..WRITERS {
            let (cell, line, all_done, fail) = (&cell, &line, &all_done, &fail);
            let spawned = thread::Builder::new()
                .stack_size(WRITER_STACK)
                .spawn_scoped(s, move || {
                    let data: Vec<String> = (0..per_writer).map(|i| payload(w, i)).collect();
                    // Written now, so that no page of them is first touched during the run.
                    let mut writes = vec![0u64; per_writer];
                    let mut removes = vec![0u64; per_writer / REMOVE_EVERY];
                    let mut mine: Vec<Uuid> = Vec::with_capacity(per_writer);
                    touch_stack();
                    let mut out = WriterOut {
                        writes: Vec::new(),
                        removes: Vec::new(),
                        voluntary: 0,
                        remove_voluntary: 0,
                        involuntary: 0,
                        span: None,
                    };
                    if line.arrive()
                        && let Some((store, _)) = cell.get()
                    {
                        let (v0, i0) = context_switches();
                        let start = Instant::now();
                        let (mut r, mut remove_voluntary) = (0, 0);
                        for (i, (d, l)) in data.into_iter().zip(&mut writes).enumerate() {
                            let t = Instant::now();
                            let put = store.put(w as u32, d);
                            *l = nanos(t.elapsed());
                            match put {
                                Ok(id) => mine.push(black_box(id)),
                                Err(f) => {
                                    fail(f);
                                    break;
                                }
                            }
                            if i % REMOVE_EVERY == REMOVE_EVERY - 1
                                && let Some(id) = mine.pop()
                            {
                                // The waits of removals are counted apart (outside the
                                // timed region).
                                let (rv0, _) = context_switches();
                                let t = Instant::now();
                                let removed = store.remove(w as u32, id);
                                removes[r] = nanos(t.elapsed());
                                remove_voluntary += context_switches().0.saturating_sub(rv0);
                                r += 1;
                                if let Err(f) = removed {
                                    fail(f);
                                    break;
                                }
                            }
                        }
                        let end = Instant::now();
                        let (v1, i1) = context_switches();
                        out = WriterOut {
                            writes,
                            removes,
                            voluntary: v1.saturating_sub(v0),
                            remove_voluntary,
                            involuntary: i1.saturating_sub(i0),
                            span: Some((start, end)),
                        };
                    }
                    // No thread exits (unmapping its stack) while others still work.
                    all_done.done_and_wait();
                    out
                });
            match spawned {
                Ok(h) => writers.push(h),
                Err(e) => {
                    fail(Failure::usage(format!(
                        "cannot start writer thread {w} of {WRITERS}: {e}"
                    )));
                    all_done.forgive(WRITERS - w);
                    break;
                }
            }
        }
        if lock(&failure).is_none() {
            match setup() {
                Ok(v) => {
                    let _ = cell.set(v);
                    thread::sleep(settle);
                    if !line.start(readers.len() + writers.len()) {
                        fail(Failure::usage("the threads did not get ready in time"));
                    }
                }
                Err(f) => fail(f),
            }
        }
        line.call_off();
        let mut span: Option<(Instant, Instant)> = None;
        for w in writers {
            match w.join() {
                Ok(out) => {
                    merge(&mut round.writes, &from_values(out.writes));
                    merge(&mut round.removes, &from_values(out.removes));
                    round.voluntary += out.voluntary;
                    round.remove_voluntary += out.remove_voluntary;
                    round.involuntary += out.involuntary;
                    round.writers_that_blocked += usize::from(out.voluntary > 0);
                    if let Some((a, b)) = out.span {
                        span = Some(span.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
                    }
                }
                Err(_) => fail(Failure::check("a writer thread panicked")),
            }
        }
        round.wall = span.map_or(Duration::ZERO, |(a, b)| b - a);
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            match r.join() {
                Ok((h, took)) => {
                    merge(&mut round.reads, &h);
                    round.read_wall = round.read_wall.max(took);
                }
                Err(_) => fail(Failure::check("a reader thread panicked")),
            }
        }
    });
    if let Some(f) = lock(&failure).take() {
        return Err(f);
    }
    let Some((store, _)) = cell.into_inner() else {
        return Err(Failure::usage("the store was not set up"));
    };
    check(store)?;
    Ok(round)
}

/// Touches the top half of a writer's stack, so that no operation of the run takes a page
/// fault on a stack page the thread never used (the event store's path runs deeper than the
/// locked store's).
#[inline(never)]
fn touch_stack() {
    let buf = [1u8; WRITER_STACK / 2];
    black_box(&buf);
}

/// Context switches of the calling thread so far: (voluntary, involuntary); zeros where they
/// cannot be had.
fn context_switches() -> (u64, u64) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `rusage` is plain integers, for which all-zero bytes are a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable `rusage`; RUSAGE_THREAD reports on the calling
        // thread.
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } == 0 {
            return (ru.ru_nvcsw as u64, ru.ru_nivcsw as u64);
        }
    }
    (0, 0)
}
