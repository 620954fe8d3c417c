//! `mmlog compact DIR` and `mmlog archive DIR`: apply a retention policy now, deleting the
//! oldest sealed segments (`compact`) or moving them into the archive (`archive`); with
//! `--dry-run`, say what would go, read-only.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use mmlog::inspect::CompactionPlan;
use mmlog::{ArchiveMode, CompactionReport, HeldBy, RecoveryReport, Retention};
use serde_json::{Value, json};

use crate::failure::{CmdResult, Failure};
use crate::output::emit;
use crate::recover;
use crate::render::{bytes, count};
use crate::timefmt::format_ns;
use crate::units;

/// The retention flags and output options shared by `compact` and `archive`.
#[derive(Debug, Args)]
pub struct KeepArgs {
    /// Keep at least the last N records.
    #[arg(long, value_name = "N")]
    pub keep_records: Option<u64>,
    /// Keep at least the newest BYTES of segment files (whole segments, the one being
    /// written included): a number with an optional unit, K, M, G, T (powers of 1024; KiB,
    /// MiB... too) or KB, MB, GB, TB (powers of 1000).
    #[arg(long, value_name = "BYTES", value_parser = units::parse_bytes)]
    pub keep_bytes: Option<u64>,
    /// Keep at least the records younger than DURATION: a number and a unit, e.g. 90s, 15m,
    /// 12h, 7d, 1h30m (units: ns, us, ms, s, m, h, d, w).
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    pub keep_age: Option<Duration>,
    /// Also remove records that no checkpoint covers (by default only records covered by the
    /// latest valid checkpoint may go).
    #[arg(long)]
    pub no_require_checkpoint: bool,
    /// Only say what would be removed: reads only, takes no lock, works while another
    /// process has the log open.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl KeepArgs {
    /// The retention these flags describe, with `mode` for the segments that go.
    fn retention(&self, mode: ArchiveMode) -> Retention {
        let mut r = Retention::default()
            .archive(mode)
            .require_checkpoint(!self.no_require_checkpoint);
        if let Some(n) = self.keep_records {
            r = r.keep_records(n);
        }
        if let Some(b) = self.keep_bytes {
            r = r.keep_bytes(b);
        }
        if let Some(age) = self.keep_age {
            r = r.keep_age(age);
        }
        r
    }

    fn retention_json(&self) -> Value {
        json!({
            "keep_records": self.keep_records,
            "keep_bytes": self.keep_bytes,
            "keep_age_ns": self.keep_age.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            "require_checkpoint": !self.no_require_checkpoint,
        })
    }
}

/// Arguments of `mmlog compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The log directory.
    pub dir: PathBuf,
    /// Retention and output.
    #[command(flatten)]
    pub keep: KeepArgs,
}

/// How `mmlog archive` keeps the segments it takes out of the live log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ArchiveHow {
    /// LZ4-compressed copies (`archive/<id>.seg.lz4`).
    Compress,
    /// The segment files themselves, moved (`archive/<id>.seg`).
    Move,
}

/// Arguments of `mmlog archive`.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The log directory.
    pub dir: PathBuf,
    /// How archived segments are stored.
    #[arg(long, value_enum, default_value_t = ArchiveHow::Compress)]
    pub mode: ArchiveHow,
    /// Retention and output.
    #[command(flatten)]
    pub keep: KeepArgs,
}

/// Runs `mmlog compact`: removed segments are deleted.
pub fn run_compact(args: &CompactArgs) -> CmdResult {
    run(&args.dir, &args.keep, ArchiveMode::Delete)
}

/// Runs `mmlog archive`: removed segments go into the archive, where they stay readable.
pub fn run_archive(args: &ArchiveArgs) -> CmdResult {
    let mode = match args.mode {
        ArchiveHow::Compress => ArchiveMode::Compress,
        ArchiveHow::Move => ArchiveMode::Move,
    };
    run(&args.dir, &args.keep, mode)
}

/// A segment that left (or would leave) the live log.
#[derive(Debug)]
struct Removed {
    id: u64,
    path: PathBuf,
    base_seq: u64,
    records: u64,
    bytes: u64,
    max_ts_ns: u64,
    /// Its file in the archive (none when deleted).
    archive_path: Option<PathBuf>,
    /// Size of that file, once written.
    archive_bytes: Option<u64>,
}

/// What a compaction did, or would do: the same shape for both.
#[derive(Debug)]
struct Outcome {
    dry_run: bool,
    mode: ArchiveMode,
    segments: Vec<Removed>,
    report: CompactionReport,
    checkpoint_seq: Option<u64>,
    consumers: Vec<(String, u64)>,
    next_seq: u64,
    /// What opening the log repaired (or would repair) first.
    recovery: RecoveryReport,
    lock: Option<(u32, bool)>,
}

fn run(dir: &Path, keep: &KeepArgs, mode: ArchiveMode) -> CmdResult {
    let retention = keep.retention(mode);
    let working = crate::progress::spinner(if keep.dry_run {
        "planning"
    } else {
        "compacting"
    });
    let outcome = if keep.dry_run {
        mmlog::inspect::compaction_plan(dir, &retention)
            .map_err(Into::into)
            .map(planned)
    } else {
        performed(dir, retention, mode)
    };
    working.finish_and_clear();
    let outcome = outcome?;
    let text = if keep.json {
        let v = to_json(dir, keep, &outcome);
        serde_json::to_string_pretty(&v)
            .map_err(|e| Failure::usage(format!("encoding JSON: {e}")))?
    } else {
        to_text(dir, &outcome)
    };
    emit(&text)
}

fn planned(plan: CompactionPlan) -> Outcome {
    let report = plan.report();
    let segments = plan
        .segments
        .into_iter()
        .map(|s| Removed {
            id: s.id,
            path: s.path,
            base_seq: s.base_seq,
            records: s.record_count,
            bytes: s.bytes,
            max_ts_ns: s.max_ts_ns,
            archive_path: s.archive_path,
            archive_bytes: None,
        })
        .collect();
    Outcome {
        dry_run: true,
        mode: plan.mode,
        segments,
        report,
        checkpoint_seq: plan.checkpoint_seq,
        consumers: plan.consumers,
        next_seq: plan.next_seq,
        recovery: plan.recovery,
        lock: plan.lock_owner,
    }
}

fn performed(dir: &Path, retention: Retention, mode: ArchiveMode) -> CmdResult<Outcome> {
    let (log, ins) = recover::open_existing(dir, Some(retention))?;
    let recovery = log.recovery_report().clone();
    let report = log.compact()?;
    let checkpoint_seq = log.latest_checkpoint()?.map(|c| c.seq());
    let archived = if mode == ArchiveMode::Delete {
        Vec::new()
    } else {
        log.archived_segments()?.0
    };
    let consumers = log.consumers();
    let next_seq = log.stats().committed_next;
    log.close()?;
    // Compaction takes the oldest live segments, which recovery never touches: they are the
    // first ones `inspect` saw.
    let segments = ins
        .segments
        .iter()
        .filter_map(|s| s.header.map(|h| (s, h)))
        .take(report.segments_removed)
        .map(|(s, h)| {
            let in_archive = archived.iter().find(|a| a.id == s.id);
            Removed {
                id: s.id,
                path: s.path.clone(),
                base_seq: h.base_seq,
                records: s.seal.map_or(s.frames, |seal| seal.record_count),
                bytes: s.capacity,
                max_ts_ns: s.max_ts,
                archive_path: in_archive.map(|a| a.path.clone()),
                archive_bytes: in_archive.map(|a| a.file_bytes),
            }
        })
        .collect();
    Ok(Outcome {
        dry_run: false,
        mode,
        segments,
        report,
        checkpoint_seq,
        consumers,
        next_seq,
        recovery,
        lock: None,
    })
}

fn mode_name(mode: ArchiveMode) -> &'static str {
    match mode {
        ArchiveMode::Delete => "delete",
        ArchiveMode::Move => "move",
        ArchiveMode::Compress => "compress",
    }
}

/// The reason in `held_by` as a word, and the consumer's name for a consumer.
fn held_by_parts(held: Option<&HeldBy>) -> (Option<&'static str>, Option<&str>) {
    match held {
        None => (None, None),
        Some(HeldBy::Unsealed) => (Some("unsealed"), None),
        Some(HeldBy::Checkpoint) => (Some("checkpoint"), None),
        Some(HeldBy::Consumer(name)) => (Some("consumer"), Some(name.as_str())),
        Some(HeldBy::Retention) => (Some("retention"), None),
        Some(_) => (Some("other"), None),
    }
}

fn to_json(dir: &Path, keep: &KeepArgs, o: &Outcome) -> Value {
    let (held_by, held_by_consumer) = held_by_parts(o.report.held_by.as_ref());
    let archived: Option<u64> = (o.mode != ArchiveMode::Delete && !o.dry_run)
        .then(|| o.segments.iter().filter_map(|s| s.archive_bytes).sum());
    json!({
        "dir": dir.display().to_string(),
        "dry_run": o.dry_run,
        "mode": mode_name(o.mode),
        "retention": keep.retention_json(),
        "segments_removed": o.report.segments_removed,
        "segments_archived": o.report.segments_archived,
        "records_removed": o.report.records_removed,
        "bytes_removed": o.report.bytes_removed,
        "archive_bytes": archived,
        "first_seq": o.report.first_seq,
        "held_by": held_by,
        "held_by_consumer": held_by_consumer,
        "checkpoint_seq": o.checkpoint_seq,
        "next_seq": o.next_seq,
        "segments": o.segments.iter().map(|s| json!({
            "id": s.id,
            "path": s.path.display().to_string(),
            "base_seq": s.base_seq,
            "records": s.records,
            "bytes": s.bytes,
            "max_ts_ns": s.max_ts_ns,
            "archive_path": s.archive_path.as_ref().map(|p| p.display().to_string()),
            "archive_bytes": s.archive_bytes,
        })).collect::<Vec<_>>(),
        "recovery": recover::report_json(&o.recovery),
        "lock": o.lock.map(|(pid, held)| json!({ "pid": pid, "held": held })),
    })
}

/// `a to b` for the records of `n` sequence numbers from `base`.
fn range(base: u64, n: u64) -> String {
    match n {
        0 => "no records".to_string(),
        1 => format!("record {}", count(base)),
        _ => format!("records {} to {}", count(base), count(base + n - 1)),
    }
}

fn to_text(dir: &Path, o: &Outcome) -> String {
    let mut s = String::new();
    if o.dry_run {
        let _ = writeln!(s, "dry run: nothing was changed");
        if let Some((pid, true)) = o.lock {
            let _ = writeln!(
                s,
                "note: the log is open in process {pid}; this is the plan for the log as it \
                 is now"
            );
        }
    }
    let repairs = recover::actions(&o.recovery, o.dry_run, "  ");
    if !repairs.is_empty() {
        let lead = if o.dry_run {
            "opening the log would first repair it:"
        } else {
            "opening the log first repaired it:"
        };
        let _ = writeln!(s, "{lead}");
        s.push_str(&repairs);
    }
    let (verb, whither) = match (o.mode, o.dry_run) {
        (ArchiveMode::Delete, true) => ("would delete", ""),
        (ArchiveMode::Delete, false) => ("deleted", ""),
        (ArchiveMode::Move, true) => ("would move", " into the archive"),
        (ArchiveMode::Move, false) => ("moved", " into the archive"),
        (ArchiveMode::Compress, true) => ("would compress", " into the archive"),
        (ArchiveMode::Compress, false) => ("compressed", " into the archive"),
    };
    let n = o.segments.len().max(o.report.segments_removed);
    let r = &o.report;
    if n == 0 {
        let _ = writeln!(s, "{}: nothing to remove", dir.display());
    } else {
        let first = o.segments.first().map_or(0, |x| x.base_seq);
        let _ = write!(
            s,
            "{}: {verb} {n} segment(s){whither}: {}, {}",
            dir.display(),
            range(first, r.records_removed),
            bytes(r.bytes_removed)
        );
        let archived: u64 = o.segments.iter().filter_map(|x| x.archive_bytes).sum();
        if o.mode == ArchiveMode::Compress && !o.dry_run {
            let _ = write!(s, " (now {} compressed)", bytes(archived));
        }
        s.push('\n');
        for seg in &o.segments {
            let _ = write!(
                s,
                "  segment {:<6} {:<28} {:>10}  up to {}",
                seg.id,
                range(seg.base_seq, seg.records),
                bytes(seg.bytes),
                format_ns(seg.max_ts_ns)
            );
            if let Some(p) = &seg.archive_path {
                let _ = write!(s, "  -> {}", p.display());
            }
            s.push('\n');
        }
    }
    let _ = writeln!(
        s,
        "first seq    {} (the first record {} in the live log)",
        count(r.first_seq),
        if o.dry_run { "that would stay" } else { "left" }
    );
    if let Some(why) = held_by_text(o) {
        let _ = writeln!(s, "held back by {why}");
    }
    s
}

/// Why the oldest segment that stays, stays, in words.
fn held_by_text(o: &Outcome) -> Option<String> {
    let text = match o.report.held_by.as_ref()? {
        HeldBy::Unsealed => "the segment being written, which always stays".to_string(),
        HeldBy::Checkpoint => match o.checkpoint_seq {
            Some(c) => format!(
                "the latest checkpoint, which covers records up to {}: later ones stay until a \
                 checkpoint covers them (or pass --no-require-checkpoint)",
                count(c)
            ),
            None => "no checkpoint: records stay until a checkpoint covers them (write one, or \
                     pass --no-require-checkpoint)"
                .to_string(),
        },
        HeldBy::Consumer(name) => {
            let at = o
                .consumers
                .iter()
                .find(|(n, _)| n == name)
                .map_or(String::new(), |(_, p)| format!(", at record {}", count(*p)));
            format!("consumer {name:?}{at}: it has not consumed all of the next segment")
        }
        HeldBy::Retention => {
            "the keep rules (--keep-records, --keep-bytes, --keep-age)".to_string()
        }
        other => format!("{other:?}"),
    };
    Some(text)
}
