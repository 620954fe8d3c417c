//! Step e: a checkpoint of state rebuilt from the log, a rebuild from that checkpoint, and
//! compaction of everything it covers into a compressed archive that stays readable.

use std::path::Path;
use std::time::Instant;

use mmlog::{ArchiveMode, Durability, Log, Retention};

use super::{Summary, options};
use crate::failure::{CmdResult, Failure};
use crate::output::say;
use crate::render::{bytes, count, duration};

/// Records replayed after the checkpoint.
const TAIL: u64 = 10_000;

/// The state the demo rebuilds: how many records, and a checksum of their payloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct State {
    records: u64,
    hash: u64,
}

impl State {
    fn apply(&mut self, payload: &[u8]) {
        self.records += 1;
        for chunk in payload.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.hash = (self.hash ^ u64::from_le_bytes(w)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn encode(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.records.to_le_bytes());
        b[8..].copy_from_slice(&self.hash.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<State> {
        Some(State {
            records: u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
            hash: u64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
        })
    }
}

/// Runs step e on the log in `dir`.
pub fn run(dir: &Path, summary: &mut Summary) -> CmdResult {
    let opts = options(Durability::Buffered)
        .retention(Retention::default().archive(ArchiveMode::Compress));
    let log = Log::open(dir, opts)?;
    let Some(last) = log.last_seq() else {
        return Err(Failure::check("the log is empty after the append steps"));
    };
    let at = last.saturating_sub(TAIL);
    say!(
        "\n[e] checkpoint at record {}, rebuild from it, compact into a compressed archive",
        count(at)
    );

    // The state from a full replay, and the state as of `at` on the way.
    let t = Instant::now();
    let mut full = State::default();
    let mut as_of_at = State::default();
    let mut reader = log.read_from(0)?;
    while let Some(rec) = reader.next() {
        let rec = rec?;
        full.apply(rec.payload());
        if rec.seq() == at {
            as_of_at = full;
        }
    }
    let replay = t.elapsed();
    let t = Instant::now();
    let info = log.checkpoint(at, &as_of_at.encode())?;
    let write = t.elapsed();

    let t = Instant::now();
    let (cp, mut reader) = log.read_from_checkpoint()?;
    let cp = cp.ok_or_else(|| Failure::check("no checkpoint right after writing one"))?;
    let mut rebuilt = State::decode(cp.data())
        .ok_or_else(|| Failure::check("the checkpoint does not hold a state"))?;
    while let Some(rec) = reader.next() {
        rebuilt.apply(rec?.payload());
    }
    let rebuild = t.elapsed();
    if rebuilt != full {
        return Err(Failure::check(format!(
            "state rebuilt from the checkpoint {rebuilt:?} differs from a full replay {full:?}"
        )));
    }
    let speedup = replay.as_secs_f64() / rebuild.as_secs_f64().max(1e-9);
    say!(
        "    checkpoint written in {} ({}, fsynced); rebuild: {} from it + {} records, \
         {} for a full replay of {} ({speedup:.0}x)",
        duration(write),
        info.path.display(),
        duration(rebuild),
        count(last - at),
        duration(replay),
        count(last + 1)
    );

    let t = Instant::now();
    let report = log.compact()?;
    let compact = t.elapsed();
    let archived = log.disk_usage().archive;
    let ratio = report.bytes_removed as f64 / archived.max(1) as f64;
    say!(
        "    compaction: {} segments ({} records, {}) archived as {} of LZ4 ({ratio:.1}x) in {}; \
         the live log now starts at record {}",
        report.segments_archived,
        count(report.records_removed),
        bytes(report.bytes_removed),
        bytes(archived),
        duration(compact),
        count(report.first_seq)
    );
    let check = log.verify_archive()?;
    if !check.is_clean() {
        return Err(Failure::check(format!(
            "archive verification: {:?}",
            check.problems
        )));
    }
    let mut first = log.read_from(0)?;
    let oldest = first
        .next()
        .ok_or_else(|| Failure::check("record 0 is not readable after compaction"))??;
    say!(
        "    the archive verifies ({} records, every CRC), and record {} still reads through it",
        count(check.records),
        oldest.seq()
    );
    drop(first);
    log.close()?;
    summary.add(
        "e. rebuild from checkpoint",
        format!(
            "{} vs {} full replay ({speedup:.0}x)",
            duration(rebuild),
            duration(replay)
        ),
    );
    summary.add(
        "   compaction",
        format!(
            "{} segments archived, LZ4 {ratio:.1}x, {}",
            report.segments_archived,
            duration(compact)
        ),
    );
    Ok(())
}
