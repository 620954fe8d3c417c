//! The log engine underneath the event store: `append` (concurrent appends with `Buffered`
//! and `Immediate` durability) and `read` (a full sequential read-back, every record's CRC
//! checked).
//!
//! Every append configuration opens a fresh log and waits until its background preparer has
//! gone idle (active segment faulted in, the next one prepared), then times the writers from
//! a common start to the last writer's end. Timing each `Buffered` append would cost about
//! as much as the append, so only every [`SAMPLE_EVERY`]th is timed (the latency
//! percentiles are of that sample; the throughput is of all appends, untouched).
//!
//! Before a finished log is closed its segment files are hole-punched, which drops their
//! dirty pages: otherwise closing (which msyncs everything, even in `Buffered` mode) would
//! spend more time writing to the disk than the benchmark did appending.

use std::fs::{self, OpenOptions};
use std::hint::black_box;
use std::path::Path;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use mmlog::{Durability, Log, Options};

use super::Ctx;
use super::measure::{Hist, Metric, from_values, histogram, merge, nanos};
use super::report::Report;
use crate::failure::{CmdResult, Failure};
use crate::progress;
use crate::render::{bytes, count};
use crate::sync::{StartLine, lock};

/// With `Buffered` durability, and when reading, one operation in this many is timed.
const SAMPLE_EVERY: u64 = 16;
/// How long to wait for a new log's background preparer to go idle.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// One append configuration.
struct AppendCase {
    op: &'static str,
    durability: Durability,
    payload: usize,
    threads: usize,
    /// Appends at scale 1, all threads together.
    records: f64,
    segment_size: u64,
}

const APPEND_CASES: [AppendCase; 5] = [
    AppendCase {
        op: "buffered_64b_x1",
        durability: Durability::Buffered,
        payload: 64,
        threads: 1,
        records: 2_000_000.0,
        segment_size: 256 << 20,
    },
    AppendCase {
        op: "buffered_64b_x4",
        durability: Durability::Buffered,
        payload: 64,
        threads: 4,
        records: 2_000_000.0,
        segment_size: 256 << 20,
    },
    AppendCase {
        op: "buffered_4k_x1",
        durability: Durability::Buffered,
        payload: 4096,
        threads: 1,
        records: 32_768.0,
        segment_size: 256 << 20,
    },
    AppendCase {
        op: "buffered_4k_x4",
        durability: Durability::Buffered,
        payload: 4096,
        threads: 4,
        records: 32_768.0,
        segment_size: 256 << 20,
    },
    AppendCase {
        op: "immediate_64b_x64",
        durability: Durability::Immediate,
        payload: 64,
        threads: 64,
        records: 64.0 * 200.0,
        segment_size: 64 << 20,
    },
];

/// Runs the `append` scenario.
pub fn run_append(ctx: &Ctx) -> CmdResult<Report> {
    let mut report = Report::new(
        "append",
        "engine appends",
        format!(
            "fresh logs; Buffered: 64 B and 4 KiB records from 1 and 4 threads (every \
             {SAMPLE_EVERY}th append timed); Immediate: 64 threads, every append timed and \
             waiting until its record is durable (group commit: appends per msync). {} \
             appends of 64 B, {} of 4 KiB, {} Immediate",
            count(ctx.scaled(APPEND_CASES[0].records, 1000)),
            count(ctx.scaled(APPEND_CASES[2].records, 100)),
            count(ctx.scaled(APPEND_CASES[4].records, 640)),
        ),
    );
    let bar = progress::bar(APPEND_CASES.len() as u64, "append");
    for (i, case) in APPEND_CASES.iter().enumerate() {
        let min = if case.payload > 64 { 100 } else { 1000 };
        let records = ctx.scaled(case.records, min.max(10 * case.threads as u64));
        let dir = ctx.root.join(format!("append-{i}"));
        let m = append_case(case, records, &dir).map_err(|f| f.context(case.op))?;
        let _ = fs::remove_dir_all(&dir);
        if case.durability == Durability::Immediate {
            let per_msync = m
                .extra
                .get("appends_per_msync")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0);
            report.notes.push(format!(
                "{}: {per_msync:.1} appends per msync ({} threads waiting at once at most)",
                case.op, case.threads
            ));
        }
        report.metrics.push(m);
        bar.inc(1);
    }
    bar.finish_and_clear();
    report.notes.push(format!(
        "Buffered latencies are of every {SAMPLE_EVERY}th append; payload bytes/s are in the \
         JSON output"
    ));
    Ok(report)
}

/// Opens a fresh log in `dir` and runs `case.threads` threads appending `records` in all.
fn append_case(case: &AppendCase, records: u64, dir: &Path) -> CmdResult<Metric> {
    let log = Log::open(
        dir,
        Options::default()
            .segment_size(case.segment_size)
            .durability(case.durability),
    )?;
    wait_spare_ready(dir);
    let sample = if case.durability == Durability::Immediate {
        1
    } else {
        SAMPLE_EVERY
    };
    let msyncs_before = log.stats().msync_count;
    let payload = vec![0xA5u8; case.payload];
    let line = StartLine::default();
    let failure: Mutex<Option<Failure>> = Mutex::new(None);
    let mut hist = histogram();
    let mut span: Option<(Instant, Instant)> = None;
    thread::scope(|s| {
        let mut handles = Vec::new();
        for t in 0..case.threads as u64 {
            let n = records / case.threads as u64 + u64::from(t < records % case.threads as u64);
            let (log, line, payload) = (&log, &line, &payload);
            let spawned = thread::Builder::new()
                .stack_size(256 << 10)
                .spawn_scoped(s, move || {
                    let mut lat = Vec::with_capacity((n / sample + 1) as usize);
                    if !line.arrive() {
                        return Ok((lat, None));
                    }
                    let start = Instant::now();
                    for i in 0..n {
                        if i % sample == 0 {
                            let t = Instant::now();
                            log.append(payload)?;
                            lat.push(nanos(t.elapsed()));
                        } else {
                            log.append(payload)?;
                        }
                    }
                    Ok::<_, Failure>((lat, Some((start, Instant::now()))))
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    lock(&failure).get_or_insert(Failure::usage(format!(
                        "cannot start a writer thread: {e}"
                    )));
                }
            }
        }
        if lock(&failure).is_none() && !line.start(handles.len()) {
            lock(&failure).get_or_insert(Failure::usage("the threads did not get ready in time"));
        }
        line.call_off();
        for h in handles {
            match h.join() {
                Ok(Ok((lat, Some((a, b))))) => {
                    merge(&mut hist, &from_values(lat));
                    span = Some(span.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
                }
                Ok(Ok((_, None))) => {}
                Ok(Err(f)) => {
                    lock(&failure).get_or_insert(f);
                }
                Err(_) => {
                    lock(&failure).get_or_insert(Failure::check("a writer thread panicked"));
                }
            }
        }
    });
    if let Some(f) = lock(&failure).take() {
        return Err(f);
    }
    let stats = log.stats();
    if stats.committed_next != records {
        return Err(Failure::check(format!(
            "{records} appends returned, but {} records are committed",
            stats.committed_next
        )));
    }
    if case.durability == Durability::Immediate && stats.durable_next < stats.committed_next {
        return Err(Failure::check(format!(
            "after every Immediate append returned, only {} of {} records are durable",
            stats.durable_next, stats.committed_next
        )));
    }
    let msyncs = stats.msync_count.saturating_sub(msyncs_before);
    discard_segments(dir);
    // The log is thrown away: its content is gone with the hole punching anyway.
    drop(log);
    let wall = span.map_or(Duration::ZERO, |(a, b)| b - a);
    let mut m = Metric::new("engine", case.op, records, wall, hist)
        .with("threads", case.threads)
        .with("payload_bytes", case.payload)
        .with(
            "payload_bytes_per_sec",
            (records * case.payload as u64) as f64 / wall.as_secs_f64().max(1e-9),
        )
        .with("latency_sample_every", sample)
        .with("segments", stats.segments)
        .with("msyncs", msyncs);
    if case.durability == Durability::Immediate {
        m = m.with("appends_per_msync", records as f64 / msyncs.max(1) as f64);
    }
    Ok(m)
}

/// One read-back configuration: (name, records at scale 1, payload length).
const READ_CASES: [(&str, f64, usize); 2] =
    [("scan_64b", 2_000_000.0, 64), ("scan_4k", 32_768.0, 4096)];
/// Full scans of each log.
const PASSES: u64 = 3;
/// Segment size of the logs read back.
const READ_SEGMENT: u64 = 64 << 20;

/// Runs the `read` scenario.
pub fn run_read(ctx: &Ctx) -> CmdResult<Report> {
    let sizes: Vec<u64> = READ_CASES
        .iter()
        .map(|&(_, n, len)| ctx.scaled(n, if len > 64 { 100 } else { 1000 }))
        .collect();
    let mut report = Report::new(
        "read",
        "sequential read-back",
        format!(
            "logs of {} records of 64 B and {} of 4 KiB ({} segments, written untimed), each \
             read from sequence number 0 to the end {PASSES} times by a fresh reader, every \
             record's CRC checked (every {SAMPLE_EVERY}th record's read timed)",
            count(sizes[0]),
            count(sizes[1]),
            bytes(READ_SEGMENT)
        ),
    );
    for (i, (&(op, _, len), &records)) in READ_CASES.iter().zip(&sizes).enumerate() {
        let dir = ctx.root.join(format!("read-{i}"));
        let m = read_case(op, records, len, &dir).map_err(|f| f.context(op))?;
        let _ = fs::remove_dir_all(&dir);
        report.metrics.push(m);
    }
    report.notes.push(format!(
        "latencies are of every {SAMPLE_EVERY}th record; payload bytes/s are in the JSON output"
    ));
    Ok(report)
}

/// Writes `records` records of `len` bytes to a new log in `dir`, then reads it back.
fn read_case(op: &str, records: u64, len: usize, dir: &Path) -> CmdResult<Metric> {
    let log = Log::open(
        dir,
        Options::default()
            .segment_size(READ_SEGMENT)
            .durability(Durability::Buffered),
    )?;
    let bar = progress::bar(records + PASSES * records, op);
    let mut payload = vec![0u8; len];
    for i in 0..records {
        payload[..8].copy_from_slice(&i.to_le_bytes());
        log.append(&payload)?;
        if i % 4096 == 0 {
            bar.set_position(i);
        }
    }
    let mut hist = histogram();
    let mut wall = Duration::ZERO;
    for pass in 0..PASSES {
        let (n, sum, took) = scan(&log, &mut hist)?;
        wall += took;
        if (n, sum) != (records, records * len as u64) {
            return Err(Failure::check(format!(
                "read back {n} records ({sum} payload bytes) of {records} ({} bytes)",
                records * len as u64
            )));
        }
        bar.set_position(records * (pass + 2));
    }
    bar.finish_and_clear();
    let segments = log.stats().segments;
    discard_segments(dir);
    // The log is thrown away: its content is gone with the hole punching anyway.
    drop(log);
    let ops = records * PASSES;
    Ok(Metric::new("engine", op, ops, wall, hist)
        .with("records", records)
        .with("passes", PASSES)
        .with("payload_bytes", len)
        .with(
            "payload_bytes_per_sec",
            (ops * len as u64) as f64 / wall.as_secs_f64().max(1e-9),
        )
        .with("latency_sample_every", SAMPLE_EVERY)
        .with("segments", segments))
}

/// Reads the whole log from sequence number 0, timing every [`SAMPLE_EVERY`]th record;
/// returns (records, payload bytes, time taken).
fn scan(log: &Log, hist: &mut Hist) -> CmdResult<(u64, u64, Duration)> {
    let start = Instant::now();
    let mut reader = log.read_from(0)?;
    let (mut records, mut sum) = (0u64, 0u64);
    loop {
        let timed = (records % SAMPLE_EVERY == 0).then(Instant::now);
        let Some(rec) = reader.next() else { break };
        let len = black_box(rec?.payload()).len() as u64;
        if let Some(t) = timed {
            hist.saturating_record(nanos(t.elapsed()));
        }
        records += 1;
        sum += len;
    }
    Ok((records, sum, start.elapsed()))
}

/// Drops the page cache of every segment file of the log at `dir` (dirty pages included) by
/// punching a hole over the whole file, keeping its size. Only for logs about to be thrown
/// away: their content is gone afterwards.
fn discard_segments(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir.join("segments")) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(file) = OpenOptions::new().write(true).open(entry.path()) else {
            continue;
        };
        let len = file.metadata().map_or(0, |m| m.len());
        let mode = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        // Best effort: on a file system without hole punching the pages are written back.
        let _ = rustix::fs::fallocate(&file, mode, 0, len);
    }
}

/// Waits (at most [`SETTLE_LIMIT`]) until the preparer has made segment 1 (file in place,
/// mapped, pre-faulted), so that it does not compete with the writers for the CPU at the
/// start of the timed part. On Linux it looks at the `mmlog-prealloc` thread in
/// `/proc/self/task`; elsewhere it waits for the file and a little more.
fn wait_spare_ready(dir: &Path) {
    let spare = dir.join("segments").join(format!("{:020}.seg", 1));
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut idle_polls = 0;
    while Instant::now() < deadline {
        if spare.exists() && thread_sleeping("mmlog-prealloc").unwrap_or(true) {
            idle_polls += 1;
            if idle_polls >= 3 {
                return;
            }
        } else {
            idle_polls = 0;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// `Some(true)` if every thread of this process named `name` is sleeping (state `S`), `None`
/// if that cannot be told.
fn thread_sleeping(name: &str) -> Option<bool> {
    let mut seen = false;
    for task in fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        seen = true;
        let stat = fs::read_to_string(path.join("stat")).unwrap_or_default();
        // The state is the first field after the parenthesised command name.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if state != Some('S') {
            return Some(false);
        }
    }
    seen.then_some(true)
}
