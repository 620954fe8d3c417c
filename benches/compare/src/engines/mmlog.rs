//! mmlog: `Log::append` from every thread on one shared `Log`; `Durability::Buffered` for the
//! no-sync workloads, `Durability::Immediate` (group commit) for `durable_4t`; reads with
//! `read_from(0)` and `Reader::next`, which checks every frame's CRC-32C.
//!
//! Every other option is mmlog's default (64 MiB segments). `MMLOG_COMPARE_SEGMENT_SIZE`
//! (bytes) overrides the segment size, to see how much of a run is segment rollover.

use std::path::Path;

use mmlog::{Durability, Log, Options};

use crate::harness::{self, Outcome, Writer, ctx};
use crate::workload::{Kind, Workload};

struct W<'a>(&'a Log);

impl Writer for W<'_> {
    #[inline]
    fn append(&mut self, payload: &[u8]) -> Result<(), String> {
        self.0
            .append(payload)
            .map(drop)
            .map_err(ctx("mmlog append"))
    }

    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<(), String> {
        self.0
            .append_batch(payloads)
            .map(drop)
            .map_err(ctx("mmlog append_batch"))
    }
}

/// The open workloads: write (untimed), close, then time `Log::open`.
fn open_workload(
    w: &Workload,
    dir: &Path,
    options: Options,
    cold: bool,
) -> Result<Outcome, String> {
    let log = Log::open(dir, options.clone()).map_err(ctx("mmlog open"))?;
    harness::load(W(&log), w.records, w.size)?;
    log.sync().map_err(ctx("mmlog sync"))?;
    log.close().map_err(ctx("mmlog close"))?;
    let (seconds, log) = harness::timed_open(dir, cold, || {
        Log::open(dir, options).map_err(ctx("mmlog reopen"))
    })?;
    if log.last_seq() != w.records.checked_sub(1) {
        return Err(format!(
            "mmlog: last_seq {:?} after reopening",
            log.last_seq()
        ));
    }
    let report = log.recovery_report();
    let detail = format!(
        "{} segments; the open scanned {} of them ({} MiB)",
        log.stats().segments,
        report.segments_scanned,
        report.bytes_scanned >> 20
    );
    log.close().map_err(ctx("mmlog close"))?;
    Ok(Outcome::Measured {
        records: w.records,
        seconds,
        note: None,
        detail: Some(detail),
    })
}

pub fn run(w: &Workload, dir: &Path) -> Result<Outcome, String> {
    let durability = if w.durable() {
        Durability::Immediate
    } else {
        Durability::Buffered
    };
    let mut options = Options::default().durability(durability);
    if let Ok(v) = std::env::var("MMLOG_COMPARE_SEGMENT_SIZE") {
        let bytes = v
            .parse()
            .map_err(|_| format!("bad MMLOG_COMPARE_SEGMENT_SIZE {v:?}"))?;
        options = options.segment_size(bytes);
    }
    let segment_size = options.get_segment_size();
    if let Kind::Open { cold } = w.kind {
        return open_workload(w, dir, options, cold);
    }
    let log = Log::open(dir, options).map_err(ctx("mmlog open"))?;
    harness::settle();
    let seconds = match w.kind {
        Kind::Append { .. } => {
            let writers = (0..w.threads).map(|_| W(&log)).collect();
            harness::drive(writers, w.per_thread(), w.size, w.batch)?
        }
        Kind::Read => {
            harness::load(W(&log), w.records, w.size)?;
            log.sync().map_err(ctx("mmlog sync"))?;
            harness::timed_read(w.records, w.size, || {
                let mut reader = log.read_from(0).map_err(ctx("mmlog read_from"))?;
                let (mut n, mut bytes) = (0u64, 0u64);
                while let Some(rec) = reader.next() {
                    let rec = rec.map_err(ctx("mmlog next"))?;
                    n += 1;
                    bytes += std::hint::black_box(rec.payload()).len() as u64;
                }
                Ok((n, bytes))
            })?
        }
        Kind::Open { .. } => return Err("open workloads are run by open_workload".to_string()),
    };
    // Untimed sanity check: every record got its sequence number.
    if log.last_seq() != w.records.checked_sub(1) {
        return Err(format!(
            "mmlog: last_seq {:?} after {} appends",
            log.last_seq(),
            w.records
        ));
    }
    let stats = log.stats();
    let mut detail = format!(
        "{} segment files of {} MiB at the end",
        stats.segments,
        segment_size >> 20
    );
    if w.durable() && stats.msync_count > 0 {
        detail.push_str(&format!(
            ", {} msyncs ({:.1} appends per msync)",
            stats.msync_count,
            w.records as f64 / stats.msync_count as f64
        ));
    }
    log.close().map_err(ctx("mmlog close"))?;
    Ok(Outcome::Measured {
        records: w.records,
        seconds,
        note: None,
        detail: Some(detail),
    })
}
