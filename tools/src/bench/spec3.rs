//! The spec's scenario 3, time travel: 20,000 events (x scale) from one thread, every 10th a
//! removal of a random live item, with `store.snapshot()` after every 1,000 events (automatic
//! snapshots off, so that they are evenly spaced; `keep_checkpoints` high enough to keep them
//! all). The same operations go to a `LockedStore`, so the build also compares
//! single-threaded write and remove latency.
//!
//! Then, on three copies of the same closed log (every snapshot kept; only the newest 3, what
//! `keep_checkpoints`' default of 3 would have left; none, so that every query replays from
//! event 0, the baseline that shows what snapshots buy), each opened 3 times (a cold start:
//! the newest snapshot plus the events after it): 100 (x scale) `state_at_seq` at random
//! sequence numbers, 100 `state_at_time` at random times within the build, and `state_at_seq`
//! at each snapshot's own sequence number (no event to replay where a snapshot is). The copies
//! must give the same answers. The locked store cannot answer a time-travel query at all: it
//! keeps no history.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use mmlog::events::{Consistency, EventStore, EventStoreOptions, LockedStore};

use super::measure::{Hist, Metric, histogram, nanos};
use super::report::Report;
use super::{Ctx, log_options, payload};
use crate::demo::SplitMix;
use crate::failure::{CmdResult, Failure};
use crate::progress;
use crate::render::{bytes, count};

/// Events at scale 1.
const EVENTS: f64 = 20_000.0;
const SNAPSHOT_EVERY: u64 = 1_000;
/// Every this many events, one is a removal.
const REMOVE_EVERY: u64 = 10;
/// Queries of each kind per copy, at scale 1.
const QUERIES: f64 = 100.0;
/// The default of `Options::keep_checkpoints`.
const DEFAULT_KEPT: usize = 3;
/// Each copy is opened (and closed) this many times; the last one answers the queries.
const OPENS: usize = 3;

/// A failed check of scenario 3.
fn check(what: String) -> Failure {
    Failure::check(format!("spec3: {what}"))
}

/// Runs scenario 3.
pub fn run(ctx: &Ctx) -> CmdResult<Report> {
    let total = ctx.scaled(EVENTS, 2 * SNAPSHOT_EVERY);
    let queries = ctx.scaled(QUERIES, 10) as usize;
    let snapshots = (total / SNAPSHOT_EVERY) as usize;
    let mut report = Report::new(
        "spec3",
        "time travel",
        format!(
            "{} events from one thread (every {REMOVE_EVERY}th a removal), a snapshot every \
             {} events, the same operations on a locked store; then, on copies of the log \
             with every snapshot, the newest {DEFAULT_KEPT}, and none, each opened {OPENS} \
             times: {queries} state_at_seq and {queries} state_at_time at random points, and \
             state_at_seq at each snapshot",
            count(total),
            count(SNAPSHOT_EVERY)
        ),
    );
    let root = ctx.root;
    let all_dir = root.join("spec3-all-snapshots");
    let store_options = EventStoreOptions {
        snapshot_every_events: 0,
        snapshot_every: None,
        ..EventStoreOptions::default()
    };
    let keep_all = log_options().keep_checkpoints(snapshots + 1);
    let events = EventStore::open_with(&all_dir, keep_all.clone(), store_options.clone())?;
    let locked = LockedStore::new();
    let (mut live_events, mut live_locked) = (Vec::new(), Vec::new());
    let (mut event_write, mut event_remove) = (histogram(), histogram());
    let (mut locked_write, mut locked_remove) = (histogram(), histogram());
    let mut snapshot = histogram();
    let mut walls = [Duration::ZERO; 5];
    let mut rng = SplitMix(3);
    let bar = progress::bar(total, "build");
    let built_from = SystemTime::now();
    for i in 0..total {
        if i % REMOVE_EVERY == REMOVE_EVERY - 1 && !live_events.is_empty() {
            // The same item position in both stores: their live sets stay the same shape.
            let k = rng.below(live_events.len());
            let id = live_events.swap_remove(k);
            let t = Instant::now();
            events.remove(1, id)?;
            let took = t.elapsed();
            event_remove.saturating_record(nanos(took));
            walls[1] += took;
            let id = live_locked.swap_remove(k);
            let t = Instant::now();
            let removed = locked.remove(&id);
            let took = t.elapsed();
            locked_remove.saturating_record(nanos(took));
            walls[3] += took;
            if !removed {
                return Err(check(format!("the locked store did not hold item {id}")));
            }
        } else {
            let d = payload(1, i as usize);
            let d2 = d.clone();
            let t = Instant::now();
            let (_, id) = events.write(1, d)?;
            let took = t.elapsed();
            event_write.saturating_record(nanos(took));
            walls[0] += took;
            live_events.push(id);
            let t = Instant::now();
            let id = locked.write(1, d2);
            let took = t.elapsed();
            locked_write.saturating_record(nanos(took));
            walls[2] += took;
            live_locked.push(id);
        }
        if (i + 1) % SNAPSHOT_EVERY == 0 {
            let t = Instant::now();
            let taken = events.snapshot()?;
            let took = t.elapsed();
            snapshot.saturating_record(nanos(took));
            walls[4] += took;
            if taken != Some(i) {
                return Err(check(format!(
                    "the snapshot after event {i} covers {taken:?}"
                )));
            }
        }
        if i % 1024 == 0 {
            bar.set_position(i);
        }
    }
    let built_until = SystemTime::now();
    bar.finish_and_clear();
    if events.latest_sequence() != Some(total - 1) {
        return Err(check(format!(
            "{total} events appended, but the last sequence number is {:?}",
            events.latest_sequence()
        )));
    }
    let (kept, _) = events.log().checkpoints()?;
    if kept.len() != snapshots {
        return Err(check(format!(
            "{} snapshots kept, {snapshots} taken",
            kept.len()
        )));
    }
    let snapshot_bytes = kept.last().map_or(0, |c| c.data_len);
    let live = events.read(Consistency::Strong)?.len();
    if live != locked.len() {
        return Err(check(format!(
            "the event store holds {live} items, the locked store {}",
            locked.len()
        )));
    }
    events.close()?;
    drop(locked);

    // The same log three ways: copies of the closed log's directory, with checkpoint files
    // removed (`<dir>/checkpoints/<seq>.ckpt`, the layout `mmlog::log::checkpoints` documents).
    let newest_dir = root.join("spec3-newest-3");
    let none_dir = root.join("spec3-no-snapshot");
    copy_dir(&all_dir, &newest_dir)?;
    keep_newest_checkpoints(&newest_dir, DEFAULT_KEPT)?;
    copy_dir(&all_dir, &none_dir)?;
    keep_newest_checkpoints(&none_dir, 0)?;

    let span = built_until
        .duration_since(built_from)
        .unwrap_or(Duration::ZERO);
    let seqs: Vec<u64> = (0..queries).map(|_| rng.next_u64() % total).collect();
    let times: Vec<SystemTime> = (0..queries)
        .map(|_| built_from + Duration::from_nanos(rng.next_u64() % nanos(span).max(1)))
        .collect();
    let snapshot_seqs: Vec<u64> = (1..=total / SNAPSHOT_EVERY)
        .map(|k| k * SNAPSHOT_EVERY - 1)
        .collect();
    let copies = [
        ("events_all_snapshots", &all_dir, keep_all),
        ("events_newest_3", &newest_dir, log_options()),
        ("events_no_snapshot", &none_dir, log_options()),
    ];
    let per_copy = (OPENS + snapshot_seqs.len() + 2 * queries) as u64;
    let bar = progress::bar(per_copy * copies.len() as u64, "queries");
    let mut answers: Option<Vec<(Option<u64>, usize)>> = None;
    let mut opens_by_copy = Vec::new();
    for (name, dir, options) in copies {
        let mut opens = histogram();
        let mut open_wall = Duration::ZERO;
        let mut store = None;
        for _ in 0..OPENS {
            drop(store.take());
            let t = Instant::now();
            let s = EventStore::open_with(dir, options.clone(), store_options.clone())?;
            let took = t.elapsed();
            opens.saturating_record(nanos(took));
            open_wall += took;
            opens_by_copy.push((name, took));
            store = Some(s);
            bar.inc(1);
        }
        let Some(store) = store else {
            return Err(check(format!("{name} was never opened")));
        };
        let timed = |h: &mut Hist, wall: &mut Duration, seq: u64| {
            let t = Instant::now();
            let view = store.state_at_seq(seq)?;
            let took = t.elapsed();
            h.saturating_record(nanos(took));
            *wall += took;
            if view.version() != Some(seq) {
                return Err(check(format!(
                    "{name}: state_at_seq({seq}) has version {:?}",
                    view.version()
                )));
            }
            bar.inc(1);
            Ok::<_, Failure>((view.version(), view.len()))
        };
        let (mut at_snapshots, mut snap_wall) = (histogram(), Duration::ZERO);
        for &seq in &snapshot_seqs {
            timed(&mut at_snapshots, &mut snap_wall, seq)?;
        }
        let (mut at_seq, mut seq_wall) = (histogram(), Duration::ZERO);
        let mut mine = Vec::with_capacity(2 * queries);
        for &seq in &seqs {
            mine.push(timed(&mut at_seq, &mut seq_wall, seq)?);
        }
        let (mut at_time, mut time_wall) = (histogram(), Duration::ZERO);
        for &time in &times {
            let t = Instant::now();
            let view = store.state_at_time(time)?;
            let took = t.elapsed();
            at_time.saturating_record(nanos(took));
            time_wall += took;
            mine.push((view.version(), view.len()));
            bar.inc(1);
        }
        store.close()?;
        // Every copy holds the same events: the answers must not depend on the snapshots.
        match &answers {
            Some(a) if a != &mine => {
                return Err(check(format!(
                    "{name}: the answers differ from those of every snapshot kept"
                )));
            }
            Some(_) => {}
            None => answers = Some(mine),
        }
        report
            .metrics
            .push(Metric::new(name, "open", OPENS as u64, open_wall, opens));
        report.metrics.push(Metric::new(
            name,
            "state_at_seq",
            queries as u64,
            seq_wall,
            at_seq,
        ));
        report.metrics.push(Metric::new(
            name,
            "state_at_time",
            queries as u64,
            time_wall,
            at_time,
        ));
        report.metrics.push(Metric::new(
            name,
            "state_at_snapshot",
            snapshot_seqs.len() as u64,
            snap_wall,
            at_snapshots,
        ));
    }
    bar.finish_and_clear();

    let mut build = vec![
        Metric::new(
            "locked",
            "write",
            locked_write.len(),
            walls[2],
            locked_write,
        ),
        Metric::new(
            "locked",
            "remove",
            locked_remove.len(),
            walls[3],
            locked_remove,
        ),
        Metric::new("events", "write", event_write.len(), walls[0], event_write),
        Metric::new(
            "events",
            "remove",
            event_remove.len(),
            walls[1],
            event_remove,
        ),
        Metric::new("events", "snapshot", snapshot.len(), walls[4], snapshot)
            .with("newest_snapshot_bytes", snapshot_bytes),
    ];
    build.append(&mut report.metrics);
    report.metrics = build;
    report.notes.push(format!(
        "build: {} live items at the end; the newest snapshot is {}; the seconds of each \
         operation are the sum of its latencies",
        count(live as u64),
        bytes(snapshot_bytes)
    ));
    let opens: Vec<String> = opens_by_copy
        .iter()
        .map(|(name, d)| format!("{name} {}", super::measure::ns(nanos(*d))))
        .collect();
    report.notes.push(format!("opens: {}", opens.join(", ")));
    report
        .notes
        .push("locked: time travel is impossible (no history is kept)".into());
    report.fact("events", total);
    report.fact("snapshot_every", SNAPSHOT_EVERY);
    report.fact("snapshots", snapshots);
    report.fact("default_kept", DEFAULT_KEPT);
    report.fact("opens", OPENS);
    report.fact("queries", queries);
    report.fact("live_items", live);
    report.fact("snapshot_bytes", snapshot_bytes);
    Ok(report)
}

/// An I/O failure on `path`.
fn io(what: &str, path: &Path, e: std::io::Error) -> Failure {
    Failure::usage(format!("{what} {}: {e}", path.display()))
}

/// Copies the directory tree `from` to `to`.
fn copy_dir(from: &Path, to: &Path) -> CmdResult {
    fs::create_dir_all(to).map_err(|e| io("cannot create", to, e))?;
    for entry in fs::read_dir(from).map_err(|e| io("cannot read", from, e))? {
        let entry = entry.map_err(|e| io("cannot read", from, e))?;
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| io("cannot look at", &entry.path(), e))?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).map_err(|e| io("cannot copy", &entry.path(), e))?;
        }
    }
    Ok(())
}

/// Removes all but the newest `keep` checkpoint files of the (closed) log in `dir`.
fn keep_newest_checkpoints(dir: &Path, keep: usize) -> CmdResult {
    let ckpts = dir.join("checkpoints");
    let mut files = Vec::new();
    for entry in fs::read_dir(&ckpts).map_err(|e| io("cannot read", &ckpts, e))? {
        let path = entry.map_err(|e| io("cannot read", &ckpts, e))?.path();
        if path.extension().is_some_and(|e| e == "ckpt") {
            files.push(path);
        }
    }
    // Named by zero-padded sequence number: the name order is the age order.
    files.sort();
    let drop_count = files.len().saturating_sub(keep);
    for f in &files[..drop_count] {
        fs::remove_file(f).map_err(|e| io("cannot remove", f, e))?;
    }
    Ok(())
}
