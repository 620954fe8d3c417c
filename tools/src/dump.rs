//! `mmlog dump DIR`: one line per record, straight from the files.

use std::path::Path;

use mmlog::events::{Event, StoredEvent};
use mmlog::inspect::{DumpRecord, dump};
use serde_json::{Value, json};

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
    /// Decode each record as an event-store event.
    pub events: bool,
}

/// How each record is shown, for `dump` and `tail`.
#[derive(Clone, Copy, Debug)]
pub struct LineStyle {
    /// Payload (or event data) bytes shown; `None`: all of it.
    pub preview: Option<usize>,
    /// JSON lines instead of text.
    pub json: bool,
    /// Decode each record as an event-store event.
    pub events: bool,
}

impl LineStyle {
    /// The line for `rec`.
    pub fn line(&self, rec: &DumpRecord<'_>) -> String {
        match (self.events, self.json) {
            (false, false) => text_line(rec, self.preview),
            (false, true) => json_line(rec, self.preview),
            (true, false) => event_text_line(rec, self.preview),
            (true, true) => event_json_line(rec, self.preview),
        }
    }
}

/// Runs `mmlog dump`.
pub fn run(dir: &Path, args: &DumpArgs) -> CmdResult {
    // `dump` passes over segments it cannot read (an unreadable header, say) without a word:
    // look first, so that skipped records fail the command (one `error:` line at the end).
    let ins = crate::guard::inspect(dir, false)?;
    let damaged: Vec<String> = judge(&ins)
        .iter()
        .filter(|f| !f.torn_tail)
        .map(Finding::location)
        .collect();
    let limit = args.limit.unwrap_or(u64::MAX);
    if limit == 0 {
        return damage_result(&damaged);
    }
    let style = LineStyle {
        preview: (!args.full).then_some(PAYLOAD_PREVIEW),
        json: args.json,
        events: args.events,
    };
    let mut out = Out::new();
    let mut shown = 0u64;
    let mut write_error: Option<Failure> = None;
    let result = dump(dir, args.from, args.since_ns, |rec| {
        let line = style.line(rec);
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
    let first = damaged.first().map_or("", String::as_str);
    Err(Failure::check(format!(
        "the log is damaged in {} place(s), the first in {first}; records there were not \
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
        "{} time={} seg={} off={} len={} {body}",
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

/// Event data for a human: quoted (with escapes), at most `preview` bytes of it (never
/// splitting a character), with a note of what was left out.
pub fn quoted_data(data: &str, preview: Option<usize>) -> String {
    let (shown, omitted) = truncated(data, preview);
    if omitted > 0 {
        format!("{shown:?}... (+{omitted} bytes)")
    } else {
        format!("{shown:?}")
    }
}

/// At most `preview` bytes of `data` (never splitting a character) and how many were left.
pub fn truncated(data: &str, preview: Option<usize>) -> (&str, usize) {
    let mut end = preview.unwrap_or(usize::MAX).min(data.len());
    while !data.is_char_boundary(end) {
        end -= 1;
    }
    (&data[..end], data.len() - end)
}

fn event_text_line(rec: &DumpRecord<'_>, preview: Option<usize>) -> String {
    let head = format!("{} time={}", rec.seq, format_ns(rec.timestamp_ns));
    if rec.padding {
        return format!("{head} (padding)");
    }
    match StoredEvent::decode(rec.seq, rec.timestamp_ns, rec.payload) {
        Ok(ev) => match ev.event() {
            Event::DataWritten {
                writer_id,
                item_id,
                data,
            } => format!(
                "{head} DataWritten writer={writer_id} item={item_id} data={}",
                quoted_data(data, preview)
            ),
            Event::DataRemoved { writer_id, item_id } => {
                format!("{head} DataRemoved writer={writer_id} item={item_id}")
            }
            other => format!("{head} {other:?}"),
        },
        Err(e) => format!("{head} error: {e}"),
    }
}

fn event_json_line(rec: &DumpRecord<'_>, preview: Option<usize>) -> String {
    let mut obj = json!({
        "seq": rec.seq,
        "timestamp": format_ns(rec.timestamp_ns),
        "timestamp_ns": rec.timestamp_ns,
    });
    let fields: Value = if rec.padding {
        json!({ "type": "padding" })
    } else {
        match StoredEvent::decode(rec.seq, rec.timestamp_ns, rec.payload) {
            Ok(ev) => match ev.event() {
                Event::DataWritten {
                    writer_id,
                    item_id,
                    data,
                } => {
                    let (shown, omitted) = truncated(data, preview);
                    json!({
                        "type": "DataWritten",
                        "writer_id": writer_id,
                        "item_id": item_id.to_string(),
                        "data": shown,
                        "omitted_bytes": omitted,
                    })
                }
                Event::DataRemoved { writer_id, item_id } => json!({
                    "type": "DataRemoved",
                    "writer_id": writer_id,
                    "item_id": item_id.to_string(),
                    "data": null,
                }),
                other => json!({
                    "type": format!("{other:?}"),
                    "writer_id": ev.writer_id(),
                    "item_id": ev.item_id().to_string(),
                }),
            },
            Err(e) => json!({ "type": null, "error": e.to_string() }),
        }
    };
    if let (Value::Object(o), Value::Object(f)) = (&mut obj, fields) {
        o.extend(f);
    }
    obj.to_string()
}
