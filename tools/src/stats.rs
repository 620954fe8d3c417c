//! `mmlog stats DIR`: what a log holds, from segment seals and a scan of the unsealed tail.
//! `records`, `first_seq` and `next_seq` describe the live segments; the archive (segments
//! compaction moved or compressed into `archive/`) is summarised apart, with its own count.

use std::fmt::Write as _;
use std::path::Path;

use mmlog::inspect::{Inspection, SegmentInfo};
use serde_json::{Value, json};

use crate::failure::CmdResult;
use crate::findings::{Finding, judge};
use crate::output::emit;
use crate::render::{bytes, count};
use crate::timefmt::format_ns;

/// What kind of file a segment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SegmentState {
    /// Complete and sealed: summarised from its seal.
    Sealed,
    /// Has a valid header but no seal: the segment being written, or a torn tail.
    Unsealed,
    /// All-zero header: pre-allocated for a future rollover.
    Spare,
    /// Unreadable header.
    Damaged,
}

fn state(seg: &SegmentInfo, ins: &Inspection) -> SegmentState {
    match (seg.header, seg.seal) {
        (Some(_), Some(_)) => SegmentState::Sealed,
        (Some(_), None) => SegmentState::Unsealed,
        // `inspect` reports a problem for an unreadable header and none for a blank one.
        (None, _) if ins.problems.iter().any(|p| p.path == seg.path) => SegmentState::Damaged,
        (None, _) => SegmentState::Spare,
    }
}

/// Totals over the segments.
#[derive(Debug, Default)]
struct Totals {
    sealed: usize,
    unsealed: usize,
    spare: usize,
    damaged: usize,
    bytes_used: u64,
    bytes_allocated: u64,
    padding: u64,
    first_ts: Option<u64>,
    last_ts: Option<u64>,
}

impl Totals {
    fn of(ins: &Inspection) -> Totals {
        let mut t = Totals::default();
        for seg in &ins.segments {
            match state(seg, ins) {
                SegmentState::Sealed => t.sealed += 1,
                SegmentState::Unsealed => t.unsealed += 1,
                SegmentState::Spare => t.spare += 1,
                SegmentState::Damaged => t.damaged += 1,
            }
            t.bytes_used += seg.bytes_used;
            t.bytes_allocated += seg.capacity;
            t.padding += seg.padding;
            // 0 is what a segment without frames reports.
            if seg.first_ts > 0 {
                t.first_ts = Some(t.first_ts.map_or(seg.first_ts, |f| f.min(seg.first_ts)));
            }
            if seg.max_ts > 0 {
                t.last_ts = Some(t.last_ts.map_or(seg.max_ts, |l| l.max(seg.max_ts)));
            }
        }
        t
    }
}

/// Runs `mmlog stats`.
pub fn run(dir: &Path, as_json: bool) -> CmdResult {
    let ins = crate::guard::inspect(dir, false)?;
    let totals = Totals::of(&ins);
    let findings = judge(&ins);
    if as_json {
        let text = serde_json::to_string_pretty(&to_json(dir, &ins, &totals, &findings))
            .map_err(|e| crate::failure::Failure::usage(format!("encoding JSON: {e}")))?;
        emit(&text)?;
    } else {
        emit(&to_text(dir, &ins, &totals, &findings))?;
    }
    let corrupt = findings.iter().filter(|f| !f.torn_tail).count();
    if corrupt > 0 {
        // The statistics are printed; the exit code says the log is damaged (1).
        return Err(crate::failure::Failure::check(format!(
            "{corrupt} problem(s) found, the first in {}; run `mmlog verify {}` for a full check",
            findings
                .iter()
                .find(|f| !f.torn_tail)
                .map_or_else(String::new, Finding::location),
            dir.display()
        )));
    }
    Ok(())
}

fn to_text(dir: &Path, ins: &Inspection, t: &Totals, findings: &[Finding<'_>]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "log          {}", dir.display());
    let _ = write!(
        s,
        "segments     {}: {} sealed, {} unsealed, {} spare",
        ins.segments.len(),
        t.sealed,
        t.unsealed,
        t.spare
    );
    if t.damaged > 0 {
        let _ = write!(s, ", {} with a damaged header", t.damaged);
    }
    s.push('\n');
    // `records` counts the live segments; the archive's are counted on its own line.
    let in_live = if archived_records(ins) > 0 {
        " in the live log"
    } else {
        ""
    };
    if ins.next_seq > ins.first_seq {
        let _ = write!(
            s,
            "records      {}{in_live} (sequence numbers {} to {})",
            count(ins.records),
            count(ins.first_seq),
            count(ins.next_seq - 1)
        );
        if t.padding > 0 {
            let _ = write!(s, ", {} of them padding", count(t.padding));
        }
        s.push('\n');
    } else {
        let _ = writeln!(s, "records      0{in_live}");
    }
    let _ = writeln!(s, "next seq     {}", count(ins.next_seq));
    let pct = if t.bytes_allocated > 0 {
        100.0 * t.bytes_used as f64 / t.bytes_allocated as f64
    } else {
        0.0
    };
    let _ = writeln!(
        s,
        "bytes used   {} of {} allocated ({pct:.1}%)",
        bytes(t.bytes_used),
        bytes(t.bytes_allocated)
    );
    match (t.first_ts, t.last_ts) {
        (Some(f), Some(l)) => {
            let _ = writeln!(s, "time range   {} to {}", format_ns(f), format_ns(l));
        }
        _ => {
            let _ = writeln!(s, "time range   none (no records)");
        }
    }
    let lock = match ins.lock_owner {
        Some((pid, true)) => format!("held by pid {pid}: the log is open"),
        Some((pid, false)) => format!("not held (last opened by pid {pid})"),
        None => "no lock file".to_string(),
    };
    let _ = writeln!(s, "lock         {lock}");
    match ins.checkpoints.last() {
        Some(cp) => {
            let _ = writeln!(
                s,
                "checkpoints  {}; the newest covers records 0 to {} ({}, {})",
                ins.checkpoints.len(),
                count(cp.seq),
                format_ns(cp.timestamp_ns),
                bytes(cp.data_len)
            );
        }
        None => {
            let _ = writeln!(s, "checkpoints  none");
        }
    }
    if !ins.consumers.is_empty() {
        let list: Vec<String> = ins
            .consumers
            .iter()
            .map(|(n, p)| format!("{n} at {}", count(*p)))
            .collect();
        let _ = writeln!(s, "consumers    {}", list.join(", "));
    }
    let archived: Vec<_> = ins.archive_before_live().collect();
    if let (Some(first), Some(last)) = (archived.first(), archived.last()) {
        let compressed = archived.iter().filter(|a| a.compressed).count();
        let on_disk: u64 = archived.iter().map(|a| a.file_bytes).sum();
        let _ = writeln!(
            s,
            "archive      {} segments ({compressed} compressed): {} records (sequence numbers \
             {} to {}), {} on disk",
            archived.len(),
            count(archived_records(ins)),
            count(first.base_seq),
            count(last.end_seq().saturating_sub(1)),
            bytes(on_disk)
        );
    }
    let leftovers = ins.archive.len() - archived.len();
    if leftovers > 0 {
        let _ = writeln!(
            s,
            "             and {leftovers} archived copies of live segments, left by an \
             interrupted compaction (removed when the log is next opened)"
        );
    }
    if findings.is_empty() {
        let _ = writeln!(
            s,
            "problems     none (stats trusts seals; `mmlog verify` checks every CRC)"
        );
    } else {
        let _ = writeln!(s, "problems     {}", findings.len());
        for f in findings {
            let tag = if f.torn_tail { "torn tail" } else { "CORRUPT" };
            let _ = writeln!(s, "  {tag}: {}", f.location());
        }
    }
    s
}

/// Records in the archived segments that come before the live log.
fn archived_records(ins: &Inspection) -> u64 {
    ins.archive_before_live().map(|a| a.record_count).sum()
}

fn to_json(dir: &Path, ins: &Inspection, t: &Totals, findings: &[Finding<'_>]) -> Value {
    let segments: Vec<Value> = ins
        .segments
        .iter()
        .map(|seg| {
            json!({
                "id": seg.id,
                "path": seg.path.display().to_string(),
                "state": format!("{:?}", state(seg, ins)).to_lowercase(),
                "capacity": seg.capacity,
                "base_seq": seg.header.map(|h| h.base_seq),
                "records": seg.frames,
                "bytes_used": seg.bytes_used,
                "first_ts_ns": seg.first_ts,
                "max_ts_ns": seg.max_ts,
            })
        })
        .collect();
    json!({
        "dir": dir.display().to_string(),
        "segments": {
            "total": ins.segments.len(),
            "sealed": t.sealed,
            "unsealed": t.unsealed,
            "spare": t.spare,
            "damaged": t.damaged,
        },
        "records": ins.records,
        "padding_records": t.padding,
        "archived_records": archived_records(ins),
        "first_readable_seq": ins.first_readable_seq(),
        "first_seq": ins.first_seq,
        "next_seq": ins.next_seq,
        "bytes_used": t.bytes_used,
        "bytes_allocated": t.bytes_allocated,
        "time_range": {
            "first": t.first_ts.map(format_ns),
            "last": t.last_ts.map(format_ns),
            "first_ns": t.first_ts,
            "last_ns": t.last_ts,
        },
        "lock": ins.lock_owner.map(|(pid, held)| json!({ "pid": pid, "held": held })),
        "checkpoints": ins.checkpoints.iter().map(|c| json!({
            "seq": c.seq,
            "timestamp_ns": c.timestamp_ns,
            "bytes": c.data_len,
            "path": c.path.display().to_string(),
        })).collect::<Vec<_>>(),
        "consumers": ins.consumers.iter().map(|(n, p)| json!({ "name": n, "next_seq": p })).collect::<Vec<_>>(),
        "archive": ins.archive.iter().map(|a| json!({
            "id": a.id,
            "base_seq": a.base_seq,
            "records": a.record_count,
            "compressed": a.compressed,
            "file_bytes": a.file_bytes,
            "path": a.path.display().to_string(),
        })).collect::<Vec<_>>(),
        "problems": findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
        "segment_list": segments,
    })
}
