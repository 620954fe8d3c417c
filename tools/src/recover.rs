//! `mmlog recover DIR`: open a log, so that recovery repairs it, and say what it did; with
//! `--dry-run`, say what it would do, read-only.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use mmlog::inspect::Inspection;
use mmlog::{CorruptionKind, Log, Options, RecoveryReport, Retention};
use serde_json::{Value, json};

use crate::failure::{CmdResult, Failure};
use crate::guard;
use crate::output::emit;
use crate::render::{bytes, count};

/// Arguments of `mmlog recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The log directory.
    pub dir: PathBuf,
    /// Only say what recovery would repair: reads only, takes no lock, works while another
    /// process has the log open (then it is what recovery would do if that process stopped
    /// now).
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `mmlog recover`: exit 0 when there was nothing to repair or recovery repaired it,
/// 1 when the log holds damage that recovery refuses to repair (the error names the file
/// and offset), 2 when it cannot be opened (locked, not a log, newer version, I/O).
pub fn run(args: &RecoverArgs) -> CmdResult {
    let working = crate::progress::spinner("recovering");
    let outcome = recover(args);
    working.finish_and_clear();
    let (report, lock) = outcome?;
    finish(args, &report, lock)
}

/// Runs recovery (or its assessment): the report, and who holds the lock.
fn recover(args: &RecoverArgs) -> CmdResult<(mmlog::RecoveryReport, Option<(u32, bool)>)> {
    let dir = &args.dir;
    Ok(if args.dry_run {
        let plan = mmlog::inspect::recovery_plan(dir)?;
        (plan.report, plan.lock_owner)
    } else {
        let (log, _) = open_existing(dir, None)?;
        let report = log.recovery_report().clone();
        log.close()?;
        (report, None)
    })
}

/// Prints what recovery did (or would do).
fn finish(
    args: &RecoverArgs,
    report: &mmlog::RecoveryReport,
    lock: Option<(u32, bool)>,
) -> CmdResult {
    let dir = &args.dir;
    let text = if args.json {
        let mut v = report_json(report);
        v["dir"] = json!(dir.display().to_string());
        v["dry_run"] = json!(args.dry_run);
        v["result"] = json!(match (report.is_clean(), args.dry_run) {
            (true, _) => "clean",
            (false, true) => "would_repair",
            (false, false) => "repaired",
        });
        v["lock"] = json!(lock.map(|(pid, held)| json!({ "pid": pid, "held": held })));
        serde_json::to_string_pretty(&v)
            .map_err(|e| Failure::usage(format!("encoding JSON: {e}")))?
    } else {
        to_text(dir, report, args.dry_run, lock)
    };
    emit(&text)
}

/// Opens the existing log in `dir` for writing, with the segment size its segments have (so
/// that a segment recovery starts matches the others) and `retention` if given. Unlike
/// [`Log::open`], never creates a log: a missing directory or one that is not a log fails
/// with exit code 2. Also returns what `inspect` saw just before.
pub fn open_existing(dir: &Path, retention: Option<Retention>) -> CmdResult<(Log, Inspection)> {
    let ins = guard::inspect(dir, false)?;
    let size = ins
        .segments
        .iter()
        .rev()
        .find_map(|s| s.header.map(|h| h.capacity))
        .filter(|c| {
            (mmlog::SEGMENT_SIZE_MIN..=mmlog::SEGMENT_SIZE_MAX).contains(c)
                && c.is_multiple_of(mmlog::SEGMENT_SIZE_MIN)
        })
        .unwrap_or(mmlog::SEGMENT_SIZE_DEFAULT);
    let mut options = Options::default().segment_size(size);
    if let Some(r) = retention {
        options = options.retention(r);
    }
    let log = Log::open(dir, options)?;
    Ok((log, ins))
}

/// The name of a corruption kind's variant (`"ChecksumMismatch"`), for JSON.
fn kind_name(kind: CorruptionKind) -> String {
    let debug = format!("{kind:?}");
    let end = debug.find([' ', '{', '(']).unwrap_or(debug.len());
    debug[..end].to_string()
}

fn paths(list: &[PathBuf]) -> Vec<String> {
    list.iter().map(|p| p.display().to_string()).collect()
}

/// Why recovery cut the log where it did, in words.
fn reason(kind: Option<CorruptionKind>) -> String {
    match kind {
        Some(k) => k.to_string(),
        None => "an unwritten frame followed by written bytes".to_string(),
    }
}

/// A recovery report (done or planned) as a JSON object.
pub fn report_json(r: &RecoveryReport) -> Value {
    json!({
        "clean": r.is_clean(),
        "truncation": r.truncation.as_ref().map(|t| json!({
            "path": t.path.display().to_string(),
            "offset": t.offset,
            "reason": reason(t.reason),
            "kind": t.reason.map(kind_name),
            "records_dropped": t.records_dropped,
            "bytes_dropped": t.bytes_dropped,
        })),
        "removed_files": paths(&r.removed_files),
        "extended_files": paths(&r.extended_files),
        "removed_temporary": paths(&r.removed_temporary),
        "removed_spares": paths(&r.removed_spares),
        "segments": r.segments,
        "sealed_segments_trusted": r.sealed_segments_trusted,
        "segments_scanned": r.segments_scanned,
        "bytes_scanned": r.bytes_scanned,
        "next_seq": r.next_seq,
    })
}

/// What recovery did (or would do), one line per action, each prefixed with `indent`.
/// Empty when there was nothing to do but routine clean-up.
pub fn actions(r: &RecoveryReport, dry_run: bool, indent: &str) -> String {
    let mut s = String::new();
    let (cut, remove, extend) = if dry_run {
        ("would cut", "would remove", "would extend")
    } else {
        ("cut", "removed", "extended")
    };
    if let Some(t) = &r.truncation {
        let _ = writeln!(
            s,
            "{indent}{cut} the log in {} at offset {}: {}; {} record(s) and {} after it dropped",
            t.path.display(),
            t.offset,
            reason(t.reason),
            count(t.records_dropped),
            bytes(t.bytes_dropped)
        );
    }
    for p in &r.removed_files {
        let _ = writeln!(s, "{indent}{remove} {}", p.display());
    }
    for p in &r.extended_files {
        let _ = writeln!(
            s,
            "{indent}{extend} {} to its full length (it was cut short)",
            p.display()
        );
    }
    s
}

fn to_text(dir: &Path, r: &RecoveryReport, dry_run: bool, lock: Option<(u32, bool)>) -> String {
    let mut s = String::new();
    if dry_run {
        let _ = writeln!(s, "dry run: nothing was changed");
        if let Some((pid, true)) = lock {
            let _ = writeln!(
                s,
                "note: the log is open in process {pid}; this is what recovery would do if \
                 that process stopped now"
            );
        }
    }
    let _ = writeln!(
        s,
        "log          {}: {} segments ({} trusted by their seal, {} scanned, {}), next seq {}",
        dir.display(),
        r.segments,
        r.sealed_segments_trusted,
        r.segments_scanned,
        bytes(r.bytes_scanned),
        count(r.next_seq)
    );
    s.push_str(&actions(r, dry_run, "repair       "));
    let remove = if dry_run { "would remove" } else { "removed" };
    if !r.removed_temporary.is_empty() {
        let _ = writeln!(
            s,
            "routine      {remove} {} temporary file(s) of interrupted writes",
            r.removed_temporary.len()
        );
    }
    if !r.removed_spares.is_empty() {
        let _ = writeln!(
            s,
            "routine      {remove} {} pre-allocated spare segment(s)",
            r.removed_spares.len()
        );
    }
    let verdict = match (r.is_clean(), dry_run) {
        (true, _) => "clean: nothing to repair".to_string(),
        (false, true) => format!(
            "recovery would repair this log: run `mmlog recover {}`",
            dir.display()
        ),
        (false, false) => "repaired".to_string(),
    };
    let _ = writeln!(s, "result       {verdict}");
    s
}
