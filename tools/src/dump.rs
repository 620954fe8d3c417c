//! `mmlog dump DIR`: one line per record, straight from the files.

use std::path::Path;

use mmlog::inspect::{DumpRecord, dump, inspect};
use serde_json::json;

use crate::failure::{CmdResult, EXIT_CORRUPT, Failure};
use crate::findings::{Finding, judge};
use crate::output::Out;
use crate::render;
use crate::timefmt::format_ns;

/// Payload bytes shown per record unless `--full`.
pub const PAYLOAD_PREVIEW: usize = 64;

/// Which records to show and how.
#[derive(Clone, Debug)]
pub struct DumpArgs {
    /// First sequence number shown.
    pub from: u64,
    /// Only records with a timestamp at or after this (ns since the epoch).
    pub since_ns: u64,
    /// Stop after this many records.
    pub limit: Option<u64>,
    /// Show whole payloads.
    pub full: bool,
    /// JSON lines instead of text.
    pub json: bool,
}

/// Runs `mmlog dump`.
pub fn run(dir: &Path, args: &DumpArgs) -> CmdResult {
    // `dump` passes over segments it cannot read (an unreadable header, say) without a word:
    // look first, so that skipped records are at least announced and fail the command.
    let ins = inspect(dir, false)?;
    let damaged: Vec<String> = judge(&ins)
        .iter()
        .filter(|f| !f.torn_tail)
        .map(Finding::location)
        .collect();
    for d in &damaged {
        eprintln!("warning: {d}");
    }
    let limit = args.limit.unwrap_or(u64::MAX);
    if limit == 0 {
        return damage_result(&damaged);
    }
    let preview = (!args.full).then_some(PAYLOAD_PREVIEW);
    let mut out = Out::new();
    let mut shown = 0u64;
    let mut write_error: Option<Failure> = None;
    let result = dump(dir, args.from, args.since_ns, |rec| {
        let line = if args.json {
            json_line(rec, preview)
        } else {
            text_line(rec, preview)
        };
        match out.line(&line) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                write_error = Some(e);
                return false;
            }
        }
        shown += 1;
        shown < limit
    });
    // Flush the records before any damage first, so they are not lost behind the error.
    out.finish()?;
    if let Some(e) = write_error {
        return Err(e);
    }
    result.map_err(|e| match Failure::from(e) {
        f if f.code == EXIT_CORRUPT => f.context(&format!("dump stopped after {shown} records")),
        f => f,
    })?;
    damage_result(&damaged)
}

fn damage_result(damaged: &[String]) -> CmdResult {
    if damaged.is_empty() {
        return Ok(());
    }
    Err(Failure::check(format!(
        "the log is damaged in {} place(s) (see the warnings above); records there were not \
         shown: run `mmlog verify` for a full check",
        damaged.len()
    )))
}

fn text_line(rec: &DumpRecord<'_>, preview: Option<usize>) -> String {
    let body = if rec.padding {
        "(padding)".to_string()
    } else {
        render::payload(rec.payload, preview).for_humans()
    };
    format!(
        "seq={} time={} seg={} off={} len={} {body}",
        rec.seq,
        format_ns(rec.timestamp_ns),
        rec.segment_id,
        rec.offset,
        rec.payload.len()
    )
}

fn json_line(rec: &DumpRecord<'_>, preview: Option<usize>) -> String {
    let shown = render::payload(rec.payload, preview);
    json!({
        "seq": rec.seq,
        "timestamp": format_ns(rec.timestamp_ns),
        "timestamp_ns": rec.timestamp_ns,
        "segment": rec.segment_id,
        "offset": rec.offset,
        "len": rec.payload.len(),
        "padding": rec.padding,
        "encoding": shown.encoding.name(),
        "payload": shown.text,
        "omitted_bytes": shown.omitted,
    })
    .to_string()
}
