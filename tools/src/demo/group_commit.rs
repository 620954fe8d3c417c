//! Step c: Immediate durability. Every append waits until its record is on stable storage;
//! appenders that wait at the same moment share one msync (group commit).

use std::path::Path;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use mmlog::{Durability, Log};

use super::{PAYLOAD_LEN, Summary, options, percentile};
use crate::failure::{CmdResult, Failure};
use crate::output::say;
use crate::render::{bytes, count, duration, rate};

/// Concurrent appenders.
const THREADS: usize = 64;
/// Appends per thread.
const APPENDS_PER_THREAD: usize = 200;

/// Runs step c on the log in `dir`.
pub fn run(dir: &Path, summary: &mut Summary) -> CmdResult {
    let total = (THREADS * APPENDS_PER_THREAD) as u64;
    say!(
        "\n[c] Immediate durability: {THREADS} threads x {APPENDS_PER_THREAD} appends, each \
         returning once its record is on disk"
    );
    let t_open = Instant::now();
    let log = Log::open(dir, options(Durability::Immediate))?;
    let open = t_open.elapsed();
    let rep = log.recovery_report().clone();
    say!(
        "    reopened the log in {}: {} segments, {} trusted from their seals, {} scanned ({})",
        duration(open),
        rep.segments,
        rep.sealed_segments_trusted,
        rep.segments_scanned,
        bytes(rep.bytes_scanned)
    );
    let msyncs_before = log.stats().msync_count;
    let (elapsed, mut latencies) = append_timed(&log)?;
    let stats = log.stats();
    let msyncs = stats.msync_count.saturating_sub(msyncs_before);
    if stats.durable_next < stats.committed_next {
        return Err(Failure::check(format!(
            "after every Immediate append returned, only {} of {} records are durable",
            stats.durable_next, stats.committed_next
        )));
    }
    log.close()?;
    latencies.sort_unstable();
    let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
    let max = latencies.last().copied().unwrap_or(Duration::ZERO);
    let per_msync = total as f64 / msyncs.max(1) as f64;
    let per_sec = total as f64 / elapsed.as_secs_f64().max(1e-9);
    say!(
        "    {} appends in {} ({} appends/s) took {} msyncs: {per_msync:.1} appends per msync",
        count(total),
        duration(elapsed),
        rate(per_sec),
        count(msyncs)
    );
    say!(
        "    append latency: p50 {}, p99 {}, max {}",
        duration(p50),
        duration(p99),
        duration(max)
    );
    summary.add(
        "c. append, Immediate",
        format!(
            "{} by {THREADS} threads: {per_msync:.1} appends/msync, p50 {}, p99 {}, {} appends/s",
            count(total),
            duration(p50),
            duration(p99),
            rate(per_sec)
        ),
    );
    summary.add(
        "   reopen after close",
        format!(
            "{} ({} segments trusted from seals)",
            duration(open),
            rep.sealed_segments_trusted
        ),
    );
    Ok(())
}

/// Every thread's appends, released together; returns the wall time and every append's
/// latency.
fn append_timed(log: &Log) -> CmdResult<(Duration, Vec<Duration>)> {
    let total = THREADS * APPENDS_PER_THREAD;
    let barrier = Barrier::new(THREADS + 1);
    thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (log, barrier) = (log, &barrier);
                s.spawn(move || {
                    let mut lat = Vec::with_capacity(APPENDS_PER_THREAD);
                    barrier.wait();
                    for i in 0..APPENDS_PER_THREAD {
                        let mut p = format!("group commit thread {t} append {i} ").into_bytes();
                        p.resize(PAYLOAD_LEN, b'.');
                        let t0 = Instant::now();
                        log.append(&p)
                            .map_err(|e| Failure::from(e).context("immediate append"))?;
                        lat.push(t0.elapsed());
                    }
                    Ok::<_, Failure>(lat)
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        let mut all = Vec::with_capacity(total);
        let mut result = Ok(());
        for h in handles {
            match h
                .join()
                .unwrap_or_else(|_| Err(Failure::usage("an appender thread panicked")))
            {
                Ok(lat) => all.extend(lat),
                Err(e) => result = result.and(Err(e)),
            }
        }
        result.map(|()| (t0.elapsed(), all))
    })
}
