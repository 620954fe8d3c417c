//! `mmlog state DIR --at TIME | --seq N`: the event store's state at a point of its past,
//! rebuilt read-only from the files (the newest usable snapshot at or before the point, then
//! the events after it, read through the archive when compaction archived them). Safe on a
//! log another process is writing: no lock, nothing written.

use std::path::{Path, PathBuf};

use clap::Args;
use mmlog::CheckpointInfo;
use mmlog::events::{Item, State, StoredEvent};
use mmlog::format::checkpoint::{self, CHECKPOINT_HEADER_LEN};
use mmlog::inspect::{Inspection, dump};
use serde_json::json;
use uuid::Uuid;

use crate::dump::{PAYLOAD_PREVIEW, quoted_data, truncated};
use crate::failure::{CmdResult, Failure};
use crate::output::emit;
use crate::timefmt::{format_ns, parse_time};

/// Arguments of `mmlog state`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("point").required(true).args(["at", "seq"])))]
pub struct StateArgs {
    /// The log directory.
    pub dir: PathBuf,
    /// The state as of TIME (every event stamped at or before it): RFC 3339
    /// (2024-05-01T12:00:00Z) or nanoseconds since the Unix epoch.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<u64>,
    /// The state as of sequence number N (every event up to and including it).
    #[arg(long, value_name = "N")]
    pub seq: Option<u64>,
    /// List at most N items (by item id).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Show whole item data (by default, the first 64 bytes).
    #[arg(long)]
    pub full: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The point of the past asked for.
#[derive(Clone, Copy, Debug)]
enum Point {
    /// Every event with a sequence number up to this one.
    Seq(u64),
    /// Every event up to the first one stamped after this (ns since the epoch).
    Time(u64),
}

impl Point {
    /// True when record `seq`, stamped `ts`, is past the point.
    fn is_past(self, seq: u64, ts: u64) -> bool {
        match self {
            Point::Seq(n) => seq > n,
            Point::Time(t) => ts > t,
        }
    }

    /// True when snapshot `c` covers no event past the point.
    fn admits(self, c: &CheckpointInfo) -> bool {
        !self.is_past(c.seq, c.timestamp_ns)
    }
}

/// The state rebuilt, and how.
struct Rebuilt {
    state: State,
    snapshot: Option<CheckpointInfo>,
    replayed: u64,
}

/// Runs `mmlog state`.
pub fn run(args: &StateArgs) -> CmdResult {
    let point = match (args.seq, args.at) {
        (Some(n), _) => Point::Seq(n),
        (None, Some(t)) => Point::Time(t),
        (None, None) => return Err(Failure::usage("give --seq N or --at TIME")),
    };
    let found = crate::guard::inspect(&args.dir, false)?;
    let working = crate::progress::spinner("rebuilding the state");
    let rebuilt = rebuild(&args.dir, &found, point);
    working.finish_and_clear();
    let rebuilt = rebuilt?;
    let preview = (!args.full).then_some(PAYLOAD_PREVIEW);
    let text = if args.json {
        json_report(&rebuilt, args.limit, preview)
    } else {
        text_report(&rebuilt, args.limit, preview)
    };
    emit(&text)
}

/// The newest usable snapshot at or before `point` and the events after it, applied.
fn rebuild(dir: &Path, found: &Inspection, point: Point) -> CmdResult<Rebuilt> {
    let mut candidates: Vec<&CheckpointInfo> = found
        .checkpoints
        .iter()
        .filter(|c| point.admits(c))
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.seq));
    let mut base = None;
    for c in candidates {
        match load_snapshot(c) {
            Ok(state) => {
                base = Some((state, c.clone()));
                break;
            }
            Err(why) => eprintln!(
                "warning: snapshot {} (seq {}) could not be loaded: {why}; trying an older one",
                c.path.display(),
                c.seq
            ),
        }
    }
    let used_seq = base.as_ref().map(|(_, c)| c.seq);
    warn_damaged_snapshots(found, point, used_seq);
    let (state, snapshot) = match base {
        Some((state, c)) => (state, Some(c)),
        None => (State::default(), None),
    };
    let from = snapshot.as_ref().map_or(0, |c| c.seq + 1);
    let needs_gap = match point {
        Point::Seq(n) => n >= from,
        Point::Time(_) => true,
    };
    // The events from `from` on are read from the archive when compaction archived them.
    let first = found.first_readable_seq();
    if from < first && needs_gap {
        let covered = match &snapshot {
            Some(c) => format!("the newest usable snapshot covers records up to {}", c.seq),
            None => "no usable snapshot covers them".to_string(),
        };
        let kept = if first < found.first_seq {
            "the log and its archive start"
        } else {
            "the log starts"
        };
        return Err(Failure::usage(format!(
            "cannot rebuild the state: {kept} at record {first} (the records before were \
             compacted away) and {covered}"
        )));
    }
    let mut rebuilt = Rebuilt {
        state,
        snapshot,
        replayed: 0,
    };
    let mut not_an_event: Option<Failure> = None;
    dump(dir, from, 0, |rec| {
        if point.is_past(rec.seq, rec.timestamp_ns) {
            return false;
        }
        if rec.padding {
            // An abandoned reservation: not an event.
            return true;
        }
        match StoredEvent::decode(rec.seq, rec.timestamp_ns, rec.payload) {
            Ok(ev) => {
                rebuilt.state.apply(&ev);
                rebuilt.replayed += 1;
                true
            }
            Err(e) => {
                not_an_event = Some(Failure::check(e.to_string()));
                false
            }
        }
    })
    .map_err(|e| Failure::from(e).context("replaying the events"))?;
    match not_an_event {
        Some(f) => Err(f.context("replaying the events")),
        None => Ok(rebuilt),
    }
}

/// The state in snapshot `c`, read from its file and checked.
fn load_snapshot(c: &CheckpointInfo) -> Result<State, String> {
    let mut bytes = std::fs::read(&c.path).map_err(|e| format!("reading it: {e}"))?;
    let header = checkpoint::decode(&bytes)
        .map(|(h, _)| h)
        .map_err(|kind| kind.to_string())?;
    if header.next_seq != c.seq.wrapping_add(1) {
        return Err(format!(
            "it covers records before {}, not up to {}",
            header.next_seq, c.seq
        ));
    }
    // `decode` checked that the blob is exactly the bytes after the header.
    bytes.drain(..CHECKPOINT_HEADER_LEN);
    bytes.truncate(usize::try_from(header.blob_len).unwrap_or(usize::MAX));
    State::from_snapshot_blob(bytes, c.seq).map_err(|e| e.to_string())
}

/// Tells about damaged snapshot files (which `inspect` skipped) that might have been used.
fn warn_damaged_snapshots(found: &Inspection, point: Point, used_seq: Option<u64>) {
    for p in &found.problems {
        let Some(name) = p.path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(seq) = name
            .strip_suffix(".ckpt")
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let relevant = used_seq.is_none_or(|u| seq > u)
            && match point {
                Point::Seq(n) => seq <= n,
                Point::Time(_) => true,
            };
        if relevant {
            let what = p.kind.map_or("damaged".to_string(), |k| k.to_string());
            eprintln!(
                "warning: snapshot {} is damaged ({what}) and was not used",
                p.path.display()
            );
        }
    }
}

/// Up to `limit` live items, by item id.
fn listed(state: &State, limit: usize) -> Vec<(Uuid, Item<'_>)> {
    let mut items: Vec<(Uuid, Item<'_>)> = state.items().collect();
    if limit < items.len() {
        items.select_nth_unstable_by_key(limit, |(id, _)| *id);
        items.truncate(limit);
    }
    items.sort_unstable_by_key(|(id, _)| *id);
    items
}

fn text_report(r: &Rebuilt, limit: usize, preview: Option<usize>) -> String {
    let mut out = String::new();
    let version = r
        .state
        .version()
        .map_or("none (no event at or before the point)".to_string(), |v| {
            v.to_string()
        });
    out.push_str(&format!("version: {version}\n"));
    out.push_str(&format!("items: {}\n", r.state.len()));
    match &r.snapshot {
        Some(c) => out.push_str(&format!("snapshot: seq {} ({})\n", c.seq, c.path.display())),
        None => out.push_str("snapshot: none (replayed from the first event)\n"),
    }
    out.push_str(&format!("replayed: {} events\n", r.replayed));
    let items = listed(&r.state, limit);
    for (id, item) in &items {
        out.push_str(&format!(
            "{id} writer={} seq={} time={} data={}\n",
            item.writer_id,
            item.seq,
            format_ns(item.timestamp_ns),
            quoted_data(item.data, preview)
        ));
    }
    let more = r.state.len().saturating_sub(items.len());
    if more > 0 {
        out.push_str(&format!("({more} more items not listed: see --limit)\n"));
    }
    out
}

fn json_report(r: &Rebuilt, limit: usize, preview: Option<usize>) -> String {
    let items: Vec<_> = listed(&r.state, limit)
        .into_iter()
        .map(|(id, item)| {
            let (data, omitted) = truncated(item.data, preview);
            json!({
                "item_id": id.to_string(),
                "writer_id": item.writer_id,
                "seq": item.seq,
                "timestamp": format_ns(item.timestamp_ns),
                "timestamp_ns": item.timestamp_ns,
                "data": data,
                "omitted_bytes": omitted,
            })
        })
        .collect();
    json!({
        "version": r.state.version(),
        "items": r.state.len(),
        "snapshot_seq": r.snapshot.as_ref().map(|c| c.seq),
        "snapshot_path": r.snapshot.as_ref().map(|c| c.path.display().to_string()),
        "replayed": r.replayed,
        "listed": items,
    })
    .to_string()
}
