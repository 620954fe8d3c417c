//! Steps a and b: concurrent appends with Buffered durability, while a reader started before
//! the writers follows the tail and checks it sees every record exactly once, in order.

use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mmlog::{Durability, Log, Reader};

use super::{PAYLOAD_LEN, Summary, options};
use crate::failure::{CmdResult, Failure};
use crate::output::say;
use crate::render::{count, duration, rate};

/// A reader that sees nothing new for this long while writers are done has lost records.
const STALL_LIMIT: Duration = Duration::from_secs(10);

/// Template of a payload: `writer WWW record IIIIIIIIII`, then filler. Readable in `mmlog dump`,
/// and both numbers are there so the reader can check each writer's order.
const TEMPLATE: &[u8; PAYLOAD_LEN] =
    b"writer 000 record 0000000000 appended by the mmlog demo writers.";
/// Where the writer number's three digits sit in [`TEMPLATE`].
const WRITER_DIGITS: std::ops::Range<usize> = 7..10;
/// Where the record index's ten digits sit in [`TEMPLATE`].
const INDEX_DIGITS: std::ops::Range<usize> = 18..28;

/// Payload `index` of writer `writer`. Digits are filled in by hand rather than with
/// `format!`, which would cost the writers more than the append being measured.
fn payload(writer: u64, index: u64) -> [u8; PAYLOAD_LEN] {
    let mut p = *TEMPLATE;
    put_digits(&mut p[WRITER_DIGITS], writer);
    put_digits(&mut p[INDEX_DIGITS], index);
    p
}

fn put_digits(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The writer number and record index in a payload, if it has the demo's shape.
fn parse_payload(p: &[u8]) -> Option<(u64, u64)> {
    let digits = |r: std::ops::Range<usize>| {
        p.get(r)?.iter().try_fold(0u64, |v, &b| {
            b.is_ascii_digit().then(|| v * 10 + u64::from(b - b'0'))
        })
    };
    Some((digits(WRITER_DIGITS)?, digits(INDEX_DIGITS)?))
}

/// What the tailing reader observed.
struct TailReport {
    seen: u64,
    problem: Option<String>,
    finished: Instant,
}

/// What one run of writers racing a reader measured.
struct Race {
    /// From the start signal until the last writer finished.
    elapsed: Duration,
    /// When the last writer was seen finished.
    writers_done: Instant,
    tail: TailReport,
}

/// Runs steps a and b on a new log in `dir`.
pub fn run(dir: &Path, writers: usize, records: u64, summary: &mut Summary) -> CmdResult {
    say!(
        "\n[a] {writers} writer threads append {} records of {PAYLOAD_LEN} bytes (Buffered durability)",
        count(records)
    );
    say!("[b] meanwhile a reader, started before the writers, follows the tail");
    let log = Log::open(dir, options(Durability::Buffered))?;
    let reader = log.read_from(0)?;
    let Race {
        elapsed,
        writers_done,
        tail,
    } = race(&log, reader, writers, records)?;
    let segments = log.stats().segments;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let payload_mb = records as f64 * PAYLOAD_LEN as f64 / 1e6 / secs;
    say!(
        "    appended {} records in {}: {} appends/s, {payload_mb:.1} MB/s of payload; {segments} segments",
        count(records),
        duration(elapsed),
        rate(records as f64 / secs),
    );
    let t_close = Instant::now();
    log.close()?;
    let close = t_close.elapsed();
    say!(
        "    closed the log (flushing it to disk) in {}",
        duration(close)
    );
    summary.add(
        "a. append, Buffered",
        format!(
            "{} x {PAYLOAD_LEN} B by {writers} threads in {}: {} appends/s, {payload_mb:.1} MB/s, {segments} segments",
            count(records),
            duration(elapsed),
            rate(records as f64 / secs)
        ),
    );
    if let Some(problem) = tail.problem {
        return Err(Failure::check(format!("tailing reader: {problem}")));
    }
    let lag = tail.finished.saturating_duration_since(writers_done);
    say!(
        "    reader saw all {} sequence numbers exactly once, in order, each writer's records in \
         its own order; caught up {} after the last append",
        count(tail.seen),
        duration(lag)
    );
    summary.add(
        "b. tailing reader",
        format!(
            "{} records, each once, in order; caught up {} after writers",
            count(tail.seen),
            duration(lag)
        ),
    );
    Ok(())
}

/// Starts the reader, then `writers` threads that append `records` in total, released
/// together so the clock measures only the appends.
fn race(log: &Log, reader: Reader, writers: usize, records: u64) -> CmdResult<Race> {
    let barrier = Barrier::new(writers + 1);
    let failed = AtomicBool::new(false);
    thread::scope(|s| {
        let tail = s.spawn(|| follow(reader, writers as u64, records, &failed));
        let handles: Vec<_> = (0..writers as u64)
            .map(|w| {
                let n = records / writers as u64 + u64::from(w < records % writers as u64);
                let (barrier, failed) = (&barrier, &failed);
                s.spawn(move || {
                    barrier.wait();
                    let r = append_share(log, w, n);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        let mut result = Ok(());
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(Failure::usage("a writer thread panicked")));
            result = result.and(r);
        }
        let elapsed = t0.elapsed();
        let writers_done = Instant::now();
        let tail = tail
            .join()
            .map_err(|_| Failure::usage("the reader thread panicked"));
        result.and(tail).map(|tail| Race {
            elapsed,
            writers_done,
            tail,
        })
    })
}

/// Writer `w`'s share of the appends.
fn append_share(log: &Log, w: u64, n: u64) -> CmdResult {
    for i in 0..n {
        log.append(&payload(w, i))
            .map_err(|e| Failure::from(e).context(&format!("writer {w}")))?;
    }
    Ok(())
}

/// Follows the tail until `total` records are seen, checking sequence numbers and each
/// writer's order; stops early on the first violation, or if nothing arrives for a long
/// time (or at all once a writer failed).
fn follow(mut reader: Reader, writers: u64, total: u64, failed: &AtomicBool) -> TailReport {
    let mut next_index = vec![0u64; writers as usize];
    let mut expected = 0u64;
    let mut last_progress = Instant::now();
    let stop = |expected: u64, problem: String| TailReport {
        seen: expected,
        problem: Some(problem),
        finished: Instant::now(),
    };
    while expected < total {
        let rec = match reader.next() {
            Some(Ok(rec)) => rec,
            Some(Err(e)) => return stop(expected, format!("read error at seq {expected}: {e}")),
            None => {
                if failed.load(Ordering::Relaxed) {
                    return stop(expected, "a writer failed".into());
                }
                if last_progress.elapsed() > STALL_LIMIT {
                    return stop(
                        expected,
                        format!("stalled: seq {expected} never became visible"),
                    );
                }
                reader.wait(Duration::from_millis(100));
                continue;
            }
        };
        last_progress = Instant::now();
        if rec.seq() != expected {
            return stop(
                expected,
                format!("got seq {} where {expected} was expected", rec.seq()),
            );
        }
        let p = rec.payload();
        let ids = parse_payload(p);
        match ids {
            Some((w, i)) if w < writers && next_index[w as usize] == i && p == payload(w, i) => {
                next_index[w as usize] += 1;
            }
            _ => {
                return stop(
                    expected,
                    format!("seq {expected} has an unexpected payload"),
                );
            }
        }
        expected += 1;
    }
    TailReport {
        seen: expected,
        problem: None,
        finished: Instant::now(),
    }
}
