//! The spec's scenario 2, a read-heavy workload with read models: 10,000 items written
//! before, then for 1 s (x scale) 2 writer threads write bursts of 10 items with a 1 ms sleep
//! after each burst (the same pacing for both stores) while 8 reader threads read without
//! pause.
//!
//! On the event store two read models are subscribed ([`ItemsPerWriter`],
//! `RecentChanges::new(100)`, each fed by its own thread) and every reader cycles through five
//! queries: `Strong` (a reader catches the state up itself when it is behind), the cached state
//! with `Eventual`, the cached state with `BoundedStaleness(10 ms)` (each then `data(&id)` of
//! a random known item), `ItemsPerWriter::count` of a random writer, the newest
//! `RecentChanges` entry. Locked readers `get` a random known item. Measured: read latency per
//! query, reads/s, write latency, the oldest state each cached query was served
//! (`StateView::age` less the read's own duration: about its age when the read began), and
//! the read models' lag (events committed, not yet applied) sampled every millisecond: its
//! maximum, its value when the writers stop, and how long the models then take to catch up.
//! Then, single-threaded with the writers stopped, what a `Strong` read costs with nothing
//! new, and right after one new event (what a reader pays to reconstruct).

use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mmlog::events::{Consistency, EventStore, ItemsPerWriter, LockedStore, RecentChanges};
use uuid::Uuid;

use super::measure::{Hist, Metric, histogram, merge, nanos, ns};
use super::report::Report;
use super::{Ctx, log_options, payload};
use crate::demo::SplitMix;
use crate::demo::stores::Store;
use crate::failure::{CmdResult, Failure};
use crate::progress;
use crate::render::count;
use crate::sync::{StartLine, lock};

const WRITERS: usize = 2;
const READERS: usize = 8;
/// Items written before the run, which the readers read.
const PRELOAD: usize = 10_000;
/// Writers write this many items, then sleep [`PAUSE`].
const BURST: usize = 10;
const PAUSE: Duration = Duration::from_millis(1);
/// The bound of the bounded-staleness reads.
const BOUND: Duration = Duration::from_millis(10);
/// How long each store's phase runs at scale 1.
const RUN: Duration = Duration::from_secs(1);
/// The event store's queries: (name in the report, what it is).
const QUERIES: [(&str, &str); 5] = [
    ("read_strong", "Strong"),
    ("read_eventual", "cached, Eventual"),
    ("read_bounded_10ms", "cached, BoundedStaleness(10 ms)"),
    ("model_items_per_writer", "read model ItemsPerWriter.count"),
    ("model_recent_changes", "read model RecentChanges, newest"),
];
/// Single-threaded `Strong` reads after the concurrent phase, at scale 1.
const STRONG_READS: f64 = 200.0;
/// How long the read models may take to catch up.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(60);

/// What one store's phase measured.
struct Phase {
    writes: Hist,
    /// One histogram per query kind.
    reads: Vec<Hist>,
    /// The oldest state served, per query kind (cached queries only).
    max_age: Vec<Duration>,
    wall: Duration,
}

impl Phase {
    fn reads(&self) -> u64 {
        self.reads.iter().map(Hist::len).sum()
    }
}

/// Runs scenario 2.
pub fn run(ctx: &Ctx) -> CmdResult<Report> {
    let duration = RUN.mul_f64(ctx.scale).max(Duration::from_millis(50));
    let mut report = Report::new(
        "spec2",
        "read-heavy workload with read models",
        format!(
            "{} items written before; for {} on each store, {WRITERS} writer threads write \
             bursts of {BURST} with {} sleeps while {READERS} reader threads read without \
             pause (on the event store, cycling through {} queries, with 2 read models \
             subscribed)",
            count(PRELOAD as u64),
            ns(nanos(duration)),
            ns(nanos(PAUSE)),
            QUERIES.len()
        ),
    );
    let bar = progress::bar(2 * duration.as_millis() as u64, "spec2");

    let locked = LockedStore::new();
    let known = preload(&locked)?;
    let locked_run = phase(
        &known,
        1,
        duration,
        |w, d| {
            black_box(locked.write(w, d));
            Ok(())
        },
        |_, id, _| {
            if Store::get(&locked, id) {
                Ok(None)
            } else {
                Err(Failure::check(format!("a known item ({id}) is missing")))
            }
        },
        |ms| bar.set_position(ms),
    )
    .map_err(|f| f.context("spec2, locked"))?;
    drop(locked);

    let events = EventStore::open(ctx.root.join("spec2"), log_options())?;
    let known = preload(&events)?;
    let ipw = events.subscribe("items_per_writer", ItemsPerWriter::default())?;
    let recent = events.subscribe("recent_changes", RecentChanges::new(100))?;
    let latest = events.latest_sequence().unwrap_or(0);
    if !(ipw.wait_for(latest, CATCH_UP_LIMIT) && recent.wait_for(latest, CATCH_UP_LIMIT)) {
        return Err(Failure::check(
            "spec2: the read models did not catch up with the preloaded items",
        ));
    }
    events.read(Consistency::Strong)?;

    let max_lag = AtomicU64::new(0);
    let monitoring = AtomicBool::new(true);
    let events_run = thread::scope(|s| {
        // Samples the models' lag every millisecond while the readers run.
        let monitor = thread::Builder::new().spawn_scoped(s, || {
            while monitoring.load(Ordering::Relaxed) {
                let latest = events.latest_sequence();
                let lag = ipw.lag(latest).max(recent.lag(latest));
                max_lag.fetch_max(lag, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(1));
            }
        });
        let run = phase(
            &known,
            QUERIES.len(),
            duration,
            |w, d| {
                black_box(events.write(w, d)?);
                Ok(())
            },
            |kind, id, w| {
                let mode = match kind {
                    0 => Consistency::Strong,
                    1 => Consistency::Eventual,
                    2 => Consistency::BoundedStaleness(BOUND),
                    3 => {
                        black_box(ipw.read(|m| m.count(w)));
                        return Ok(None);
                    }
                    _ => {
                        black_box(recent.read(|m| m.changes().last().map(|c| c.seq)));
                        return Ok(None);
                    }
                };
                let view = events.read(mode)?;
                if black_box(view.data(id)).is_none() {
                    return Err(Failure::check(format!("a known item ({id}) is missing")));
                }
                Ok((kind > 0).then(|| view.age()))
            },
            |ms| bar.set_position(duration.as_millis() as u64 + ms),
        );
        monitoring.store(false, Ordering::Relaxed);
        match monitor {
            Ok(m) => {
                let _ = m.join();
                run
            }
            Err(e) => Err(Failure::usage(format!(
                "cannot start the lag monitor thread: {e}"
            ))),
        }
    })
    .map_err(|f| f.context("spec2, events"))?;
    bar.finish_and_clear();

    let latest = events.latest_sequence();
    let lag_at_stop = ipw.lag(latest).max(recent.lag(latest));
    max_lag.fetch_max(lag_at_stop, Ordering::Relaxed);
    let t = Instant::now();
    let latest = latest.unwrap_or(0);
    if !(ipw.wait_for(latest, CATCH_UP_LIMIT) && recent.wait_for(latest, CATCH_UP_LIMIT)) {
        return Err(Failure::check(format!(
            "spec2: the read models did not catch up within {}",
            ns(nanos(CATCH_UP_LIMIT))
        )));
    }
    let catch_up = t.elapsed();
    let written = PRELOAD as u64 + events_run.writes.len();
    let modelled = ipw.read(|m| m.counts().values().sum::<u64>());
    if modelled != written {
        return Err(Failure::check(format!(
            "spec2: ItemsPerWriter counts {modelled} items, {written} were written"
        )));
    }

    // Strong reads, one thread, writers stopped: with nothing new the cache is only
    // re-stamped; after one new event the reader catches up itself.
    let strong_reads = ctx.scaled(STRONG_READS, 20);
    let (mut strong_idle, mut strong_after_write) = (histogram(), histogram());
    let (mut idle_wall, mut after_wall) = (Duration::ZERO, Duration::ZERO);
    for i in 0..strong_reads as usize {
        let t = Instant::now();
        black_box(events.read(Consistency::Strong)?);
        let took = t.elapsed();
        idle_wall += took;
        strong_idle.saturating_record(nanos(took));
        let (seq, _) = events.write(0, payload(0, i))?;
        let t = Instant::now();
        let view = events.read(Consistency::Strong)?;
        let took = t.elapsed();
        after_wall += took;
        strong_after_write.saturating_record(nanos(took));
        if view.version() != Some(seq) {
            return Err(Failure::check(format!(
                "spec2: a Strong read after event {seq} returned version {:?}",
                view.version()
            )));
        }
    }
    let items_at_end = events.read(Consistency::Strong)?.len();
    ipw.stop()?;
    recent.stop()?;
    events.close()?;

    report.metrics.push(Metric::new(
        "locked",
        "write",
        locked_run.writes.len(),
        locked_run.wall,
        locked_run.writes.clone(),
    ));
    report.metrics.push(Metric::new(
        "locked",
        "get",
        locked_run.reads(),
        locked_run.wall,
        locked_run.reads.first().cloned().unwrap_or_else(histogram),
    ));
    report.metrics.push(Metric::new(
        "events",
        "write",
        events_run.writes.len(),
        events_run.wall,
        events_run.writes.clone(),
    ));
    for (k, (name, _)) in QUERIES.iter().enumerate() {
        let h = events_run.reads.get(k).cloned().unwrap_or_else(histogram);
        let mut m = Metric::new("events", name, h.len(), events_run.wall, h);
        if matches!(k, 1 | 2) {
            m = m.with("max_age_ns", nanos(events_run.max_age[k]));
        }
        report.metrics.push(m);
    }
    report.metrics.push(Metric::new(
        "events",
        "strong_nothing_new",
        strong_reads,
        idle_wall,
        strong_idle,
    ));
    report.metrics.push(
        Metric::new(
            "events",
            "strong_after_one_write",
            strong_reads,
            after_wall,
            strong_after_write,
        )
        .with("items", items_at_end),
    );

    let per_sec = |p: &Phase| p.reads() as f64 / p.wall.as_secs_f64().max(1e-9);
    for (store, p) in [("locked", &locked_run), ("events", &events_run)] {
        report.notes.push(format!(
            "{store}: {} reads/s in all, {} writes/s",
            crate::render::rate(per_sec(p)),
            crate::render::rate(p.writes.len() as f64 / p.wall.as_secs_f64().max(1e-9)),
        ));
    }
    for (k, (_, what)) in QUERIES.iter().enumerate().skip(1).take(2) {
        report.notes.push(format!(
            "events: the oldest state served to \"{what}\" was {} old",
            ns(nanos(events_run.max_age[k]))
        ));
    }
    let max_lag = max_lag.load(Ordering::Relaxed);
    report.notes.push(format!(
        "events: the read models' lag was at most {} events, {} when the writers stopped; \
         they caught up {} later",
        count(max_lag),
        count(lag_at_stop),
        ns(nanos(catch_up))
    ));
    report.notes.push(format!(
        "events: strong_nothing_new and strong_after_one_write are single-threaded Strong \
         reads with the writers stopped ({} live items)",
        count(items_at_end as u64)
    ));
    report.fact("writers", WRITERS);
    report.fact("readers", READERS);
    report.fact("preload", PRELOAD);
    report.fact("run_seconds", duration.as_secs_f64());
    report.fact("max_lag_events", max_lag);
    report.fact("lag_at_stop_events", lag_at_stop);
    report.fact("catch_up_ns", nanos(catch_up));
    report.fact("items_at_end", items_at_end);
    report.fact("locked_reads_per_sec", per_sec(&locked_run));
    report.fact("events_reads_per_sec", per_sec(&events_run));
    Ok(report)
}

/// Writes the items the readers read.
fn preload(store: &impl Store) -> CmdResult<Vec<Uuid>> {
    (0..PRELOAD)
        .map(|i| store.put(9_999, payload(9_999, i)))
        .collect()
}

/// Runs the read-heavy phase: `write(writer, data)` from the writers, `read(kind, id, writer)`
/// from the readers (each cycling through the `kinds` queries; it returns the age of the state
/// it was served, if any), until `duration` has passed; `tick(ms)` is told how far it is.
fn phase(
    known: &[Uuid],
    kinds: usize,
    duration: Duration,
    write: impl Fn(u32, String) -> CmdResult + Sync,
    read: impl Fn(usize, &Uuid, u32) -> CmdResult<Option<Duration>> + Sync,
    tick: impl Fn(u64),
) -> CmdResult<Phase> {
    let line = StartLine::default();
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<Failure>> = Mutex::new(None);
    let fail = |f: Failure| {
        lock(&failure).get_or_insert(f);
        stop.store(true, Ordering::Relaxed);
    };
    let (write, read, fail) = (&write, &read, &fail);
    let mut run = Phase {
        writes: histogram(),
        reads: (0..kinds).map(|_| histogram()).collect(),
        max_age: vec![Duration::ZERO; kinds],
        wall: Duration::ZERO,
    };
    thread::scope(|s| {
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (line, stop) = (&line, &stop);
            let spawned = thread::Builder::new().spawn_scoped(s, move || {
                let mut h = histogram();
                if !line.arrive() {
                    return h;
                }
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..BURST {
                        let d = payload(w, i);
                        i += 1;
                        let t = Instant::now();
                        let r = write(w as u32, d);
                        h.saturating_record(nanos(t.elapsed()));
                        if let Err(f) = r {
                            fail(f);
                            return h;
                        }
                    }
                    thread::sleep(PAUSE);
                }
                h
            });
            match spawned {
                Ok(h) => writers.push(h),
                Err(e) => fail(Failure::usage(format!("cannot start a writer thread: {e}"))),
            }
        }
        let mut readers = Vec::new();
        for r in 0..READERS {
            let (line, stop) = (&line, &stop);
            let spawned = thread::Builder::new().spawn_scoped(s, move || {
                let mut rng = SplitMix(100 + r as u64);
                let mut hs: Vec<Hist> = (0..kinds).map(|_| histogram()).collect();
                let mut max_age = vec![Duration::ZERO; kinds];
                if !line.arrive() {
                    return (hs, max_age);
                }
                // Readers start at different queries so that all kinds run at once.
                let mut kind = r % kinds;
                while !stop.load(Ordering::Relaxed) {
                    let id = &known[rng.below(known.len())];
                    let w = rng.below(WRITERS) as u32;
                    let t = Instant::now();
                    let age = read(kind, id, w);
                    let took = t.elapsed();
                    hs[kind].saturating_record(nanos(took));
                    match age {
                        // The state's age when the read began, about: a reader preempted
                        // inside or just after the read does not make the state look older.
                        Ok(Some(age)) => {
                            max_age[kind] = max_age[kind].max(age.saturating_sub(took));
                        }
                        Ok(None) => {}
                        Err(f) => {
                            fail(f);
                            break;
                        }
                    }
                    kind = (kind + 1) % kinds;
                }
                (hs, max_age)
            });
            match spawned {
                Ok(h) => readers.push(h),
                Err(e) => fail(Failure::usage(format!("cannot start a reader thread: {e}"))),
            }
        }
        if lock(&failure).is_none() && !line.start(writers.len() + readers.len()) {
            fail(Failure::usage("the threads did not get ready in time"));
        }
        line.call_off();
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) && start.elapsed() < duration {
            thread::sleep(Duration::from_millis(20).min(duration));
            tick(start.elapsed().min(duration).as_millis() as u64);
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            match w.join() {
                Ok(h) => merge(&mut run.writes, &h),
                Err(_) => fail(Failure::check("a writer thread panicked")),
            }
        }
        for r in readers {
            match r.join() {
                Ok((hs, ages)) => {
                    for (k, h) in hs.iter().enumerate() {
                        merge(&mut run.reads[k], h);
                        run.max_age[k] = run.max_age[k].max(ages[k]);
                    }
                }
                Err(_) => fail(Failure::check("a reader thread panicked")),
            }
        }
        run.wall = start.elapsed();
    });
    match lock(&failure).take() {
        Some(f) => Err(f),
        None => Ok(run),
    }
}
