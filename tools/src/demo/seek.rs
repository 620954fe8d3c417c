//! Step d: positioning readers by sequence number (`read_from`) and by timestamp
//! (`read_from_time`), and a full sequential scan for comparison.

use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use mmlog::{Durability, Log};

use super::{SplitMix, Summary, options};
use crate::failure::{CmdResult, Failure};
use crate::output::say;
use crate::render::{count, duration, rate};

/// Random positions sought.
const SEEKS: usize = 1000;

/// Runs step d on the log in `dir`.
pub fn run(dir: &Path, summary: &mut Summary) -> CmdResult {
    let log = Log::open(dir, options(Durability::Buffered))?;
    let Some(last) = log.last_seq() else {
        return Err(Failure::check("the log is empty after the append steps"));
    };
    let n = last + 1;
    say!(
        "\n[d] seeks over {} records: {SEEKS} random sequence numbers, then their timestamps",
        count(n)
    );

    let mut rng = SplitMix(0x6d6d_6c6f_6720_6465);
    let targets: Vec<u64> = (0..SEEKS).map(|_| rng.next_u64() % n).collect();
    let (cold, stamps) = seek_seqs(&log, &targets)?;
    let (warm, _) = seek_seqs(&log, &targets)?;
    say!(
        "    by seq: first pass {} per seek (loads each sealed segment's sparse index file, \
         or rebuilds it with a CRC-checked scan, on first touch), then {} per seek",
        duration(cold / SEEKS as u32),
        duration(warm / SEEKS as u32)
    );
    let by_time = seek_times(&log, &targets, &stamps)?;
    say!(
        "    by time: {} per seek, each landing on the first record at or after the time",
        duration(by_time / SEEKS as u32)
    );

    let (scanned, scan_time) = scan_all(&log)?;
    if scanned != n {
        return Err(Failure::check(format!(
            "full scan read {scanned} records, the log holds {n}"
        )));
    }
    let scan_rate = scanned as f64 / scan_time.as_secs_f64().max(1e-9);
    say!(
        "    full scan: {} records in {} ({} records/s, every CRC checked)",
        count(scanned),
        duration(scan_time),
        rate(scan_rate)
    );
    log.close()?;
    summary.add(
        "d. seek by seq",
        format!(
            "{} per seek ({} on first touch of a segment)",
            duration(warm / SEEKS as u32),
            duration(cold / SEEKS as u32)
        ),
    );
    summary.add(
        "   seek by time",
        format!("{} per seek", duration(by_time / SEEKS as u32)),
    );
    summary.add("   full scan", format!("{} records/s", rate(scan_rate)));
    Ok(())
}

/// Seeks to each target and reads one record; returns the total time and each record's
/// timestamp.
fn seek_seqs(log: &Log, targets: &[u64]) -> CmdResult<(Duration, Vec<u64>)> {
    let mut stamps = Vec::with_capacity(targets.len());
    let t0 = Instant::now();
    for &seq in targets {
        let mut reader = log.read_from(seq)?;
        match reader.next() {
            Some(Ok(rec)) if rec.seq() == seq => stamps.push(rec.timestamp_ns()),
            Some(Ok(rec)) => {
                return Err(Failure::check(format!(
                    "read_from({seq}) returned seq {}",
                    rec.seq()
                )));
            }
            Some(Err(e)) => return Err(Failure::from(e).context(&format!("read_from({seq})"))),
            None => return Err(Failure::check(format!("read_from({seq}) found no record"))),
        }
    }
    Ok((t0.elapsed(), stamps))
}

/// Seeks to each timestamp (timed), then checks the record found is the first in sequence
/// order with a timestamp at or after it (not timed).
fn seek_times(log: &Log, targets: &[u64], stamps: &[u64]) -> CmdResult<Duration> {
    let mut total = Duration::ZERO;
    for (&seq, &ts) in targets.iter().zip(stamps) {
        let t0 = Instant::now();
        let mut reader = log.read_from_time(UNIX_EPOCH + Duration::from_nanos(ts))?;
        let found = match reader.next() {
            Some(Ok(rec)) => (rec.seq(), rec.timestamp_ns()),
            Some(Err(e)) => return Err(Failure::from(e).context("read_from_time")),
            None => {
                return Err(Failure::check(format!(
                    "read_from_time({ts}) found no record"
                )));
            }
        };
        total += t0.elapsed();
        if found.0 > seq || found.1 < ts {
            return Err(Failure::check(format!(
                "read_from_time({ts}) returned seq {} (ts {}), but seq {seq} has that timestamp",
                found.0, found.1
            )));
        }
        if found.0 > log.stats().first_seq {
            let mut before = log.read_from(found.0 - 1)?;
            if let Some(Ok(prev)) = before.next()
                && prev.timestamp_ns() >= ts
            {
                return Err(Failure::check(format!(
                    "read_from_time({ts}) returned seq {}, but seq {} is at or after that time too",
                    found.0,
                    prev.seq()
                )));
            }
        }
    }
    Ok(total)
}

/// Reads the whole log from the start.
fn scan_all(log: &Log) -> CmdResult<(u64, Duration)> {
    let t0 = Instant::now();
    let mut reader = log.read_from(log.stats().first_seq)?;
    let mut n = 0u64;
    while let Some(rec) = reader.next() {
        rec.map_err(|e| Failure::from(e).context("full scan"))?;
        n += 1;
    }
    Ok((n, t0.elapsed()))
}
