//! Steps 3 to 6 on the event store of steps 1 and 2: snapshots and a cold start, the spec's
//! scenario 3 (time travel) with the audit trail, old events archived while history still
//! answers, and the migration path from the traditional store.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mmlog::events::{
    Consistency, Event, EventStore, LockedStore, Migration, MigrationPhase, StoredEvent,
};
use uuid::Uuid;

use super::{Matrix, Summary};
use crate::failure::{CmdResult, Failure};
use crate::output::say;
use crate::render::{bytes, count, duration};

/// Items the migration step starts from in the traditional store.
const MIGRATED_ITEMS: u32 = 2_000;

/// The live items after the events up to and including `at` (or up to `until_ns`), applied
/// one by one: what every answer below is checked against.
fn replay(events: &[StoredEvent], keep: impl Fn(&StoredEvent) -> bool) -> HashMap<Uuid, String> {
    let mut live = HashMap::new();
    for ev in events.iter().take_while(|e| keep(e)) {
        match ev.event() {
            Event::DataWritten { item_id, data, .. } => {
                live.insert(*item_id, data.clone());
            }
            Event::DataRemoved { item_id, .. } => {
                live.remove(item_id);
            }
            _ => {}
        }
    }
    live
}

fn same(view: &mmlog::events::State, model: &HashMap<Uuid, String>) -> bool {
    view.len() == model.len()
        && model
            .iter()
            .all(|(id, data)| view.data(id) == Some(data.as_str()))
}

/// Step 3: snapshots, then a cold start from the newest one. Returns the reopened store.
pub fn step_3(
    dir: &Path,
    store: EventStore,
    summary: &mut Summary,
    matrix: &mut Matrix,
) -> CmdResult<EventStore> {
    say!("\n[3] snapshots (every 5,000 events, by a background thread) and a cold start");
    let background = store.snapshots_taken();
    let t = Instant::now();
    let version = store.snapshot()?.unwrap_or(0);
    let took = t.elapsed();
    let before = store.read(Consistency::Strong)?.len();
    // A few events after the snapshot, for the cold start to replay.
    for i in 0..500 {
        store.write(3, format!("after the snapshot {i}"))?;
    }
    let expected = store.read(Consistency::Strong)?;
    let (items, last) = (expected.len(), store.latest_sequence().unwrap_or(0));
    drop(expected);
    let snapshot = store
        .log()
        .latest_checkpoint()?
        .ok_or_else(|| Failure::check("no snapshot after snapshot()"))?;
    say!(
        "    {background} snapshots taken in the background so far; snapshot() at #{version} \
         took {} ({} items, {} on disk, read in place when loaded)",
        duration(took),
        count(before as u64),
        bytes(snapshot.info().data_len)
    );
    drop(snapshot);
    store.close()?;
    let t = Instant::now();
    let store = EventStore::open_with(
        dir,
        super::spec::events_options(),
        super::spec::store_options(),
    )?;
    let opened = t.elapsed();
    let now = store.read(Consistency::Eventual)?;
    if now.len() != items || now.version() != Some(last) {
        return Err(Failure::check(format!(
            "after reopening: {} items at {:?}, expected {items} at #{last}",
            now.len(),
            now.version()
        )));
    }
    say!(
        "    reopened in {}: loaded the snapshot at #{version} and replayed only the {} events \
         after it; {} items at #{last}, as before",
        duration(opened),
        last - version,
        count(items as u64)
    );
    summary.add(
        "3. snapshots, cold start",
        format!(
            "snapshot of {} items in {}; reopened in {}",
            count(before as u64),
            duration(took),
            duration(opened)
        ),
    );
    matrix.cold_start = Some(duration(opened));
    Ok(store)
}

/// Step 4: the spec's scenario 3, time travel, and the audit trail; each answer checked
/// against a replay of the events from the first.
pub fn step_4(store: &EventStore, summary: &mut Summary, matrix: &mut Matrix) -> CmdResult {
    say!(
        "\n[4] the spec's scenario 3: time travel (\"the state as of 3 PM yesterday\") and the audit trail"
    );
    let events: Vec<StoredEvent> = store.events_from(0)?.collect::<Result<_, _>>()?;
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Err(Failure::check("no events to travel through"));
    };
    let span = last.timestamp_ns().saturating_sub(first.timestamp_ns());
    let mut seq_times = Vec::new();
    for k in 1..=3u64 {
        let at = last.seq() * k / 4;
        let t = Instant::now();
        let then = store.state_at_seq(at)?;
        seq_times.push(t.elapsed());
        if !same(&then, &replay(&events, |e| e.seq() <= at)) {
            return Err(Failure::check(format!(
                "state_at_seq({at}) differs from a replay"
            )));
        }
    }
    let mut time_times = Vec::new();
    let mut shown = None;
    for k in 1..=3u64 {
        let at_ns = first.timestamp_ns() + span * k / 4;
        let at = SystemTime::UNIX_EPOCH + Duration::from_nanos(at_ns);
        let t = Instant::now();
        let then = store.state_at_time(at)?;
        time_times.push(t.elapsed());
        if !same(&then, &replay(&events, |e| e.timestamp_ns() <= at_ns)) {
            return Err(Failure::check("state_at_time differs from a replay"));
        }
        if k == 2 {
            shown = Some((then.len(), then.version()));
        }
    }
    if let Some((len, version)) = shown {
        say!(
            "    halfway through the run: {} items, as of event #{}",
            count(len as u64),
            version.unwrap_or(0)
        );
    }
    let worst = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    say!(
        "    state_at_seq at 3 points: slowest {}; state_at_time at 3 points: slowest {}; each \
         equal to a replay from the first event",
        duration(worst(&seq_times)),
        duration(worst(&time_times))
    );
    // The audit trail: the full history of one removed item, and who changed what in a window.
    let removed = events.iter().find_map(|e| match e.event() {
        Event::DataRemoved { item_id, .. } => Some(*item_id),
        _ => None,
    });
    if let Some(item) = removed {
        let history = store.history(item)?;
        let told: Vec<String> = history
            .iter()
            .map(|e| match e.event() {
                Event::DataWritten { writer_id, .. } => {
                    format!("#{} written by {writer_id}", e.seq())
                }
                Event::DataRemoved { writer_id, .. } => {
                    format!("#{} removed by {writer_id}", e.seq())
                }
                _ => format!("#{}", e.seq()),
            })
            .collect();
        if history.len() != 2 {
            return Err(Failure::check(format!("history of {item}: {told:?}")));
        }
        say!("    history of item {item}: {}", told.join(", "));
    }
    let from = SystemTime::UNIX_EPOCH + Duration::from_nanos(first.timestamp_ns() + span / 2);
    let to = from + Duration::from_millis(5);
    let window = store.changes_between(from, to)?;
    let mut writers: Vec<u32> = window.iter().map(StoredEvent::writer_id).collect();
    writers.sort_unstable();
    writers.dedup();
    say!(
        "    changes in a 5 ms window halfway: {} events by {} writers",
        count(window.len() as u64),
        writers.len()
    );
    summary.add(
        "4. spec scenario 3",
        format!(
            "time travel {} (slowest of 6), every answer equal to a replay",
            duration(worst(&seq_times).max(worst(&time_times)))
        ),
    );
    matrix.history = Some(format!(
        "state at any sequence number or time: slowest of 6 queries {}; full history of an item",
        duration(worst(&seq_times).max(worst(&time_times)))
    ));
    Ok(())
}

/// Step 5: old events leave the live log for a compressed archive; history still answers.
pub fn step_5(store: &EventStore, summary: &mut Summary) -> CmdResult {
    say!("\n[5] storage growth: old events go to a compressed archive, a recent window stays");
    let before = store.log().disk_usage();
    let all_before = store.events_from(0)?.count();
    store.snapshot()?;
    let report = store.log().compact()?;
    let after = store.log().disk_usage();
    let (archived, damaged) = store.log().archived_segments()?;
    let too_young = matches!(
        report.held_by,
        Some(mmlog::HeldBy::Retention | mmlog::HeldBy::Unsealed)
    );
    if report.segments_archived == 0 && too_young {
        say!(
            "    nothing to archive yet: all {} events fit in the recent window the retention \
             keeps or in the segment still being written (run with more --events)",
            count(all_before as u64)
        );
        summary.add("5. archive", "nothing old enough to archive".into());
        return Ok(());
    }
    if report.segments_archived == 0 || !damaged.is_empty() {
        return Err(Failure::check(format!(
            "compaction archived nothing: {report:?}"
        )));
    }
    let all_after = store.events_from(0)?.count();
    if all_after != all_before {
        return Err(Failure::check(format!(
            "{all_before} events before archiving, {all_after} after"
        )));
    }
    let early = store.state_at_seq(10)?;
    if early.version() != Some(10) {
        return Err(Failure::check("time travel into the archive failed"));
    }
    say!(
        "    {} segments archived (LZ4); the live log now starts at #{}; {} events still read \
         back from #0 through the archive, and time travel to #10 still answers",
        report.segments_archived,
        report.first_seq,
        count(all_after as u64)
    );
    say!(
        "    disk: segments {} -> {}, archive {} -> {} ({} files), snapshots {}",
        bytes(before.segments),
        bytes(after.segments),
        bytes(before.archive),
        bytes(after.archive),
        archived.len(),
        bytes(after.checkpoints)
    );
    summary.add(
        "5. archive",
        format!(
            "{} segments archived; all {} events still readable",
            report.segments_archived,
            count(all_after as u64)
        ),
    );
    Ok(())
}

/// Step 6: the spec's migration path, from a traditional store to the event store.
pub fn step_6(dir: &Path, summary: &mut Summary) -> CmdResult {
    say!("\n[6] the migration path: dual write, read migration, full migration");
    let locked = Arc::new(LockedStore::new());
    let ids: Vec<Uuid> = (0..MIGRATED_ITEMS)
        .map(|i| locked.write(i % 10, format!("legacy item {i}")))
        .collect();
    let store = EventStore::open_with(
        dir,
        super::spec::events_options(),
        super::spec::store_options(),
    )?;
    let migration = Migration::start(Arc::clone(&locked), store)?;
    let mut written = Vec::new();
    for i in 0..200 {
        written.push(migration.write(1, &format!("dual-written {i}"))?);
    }
    migration.remove(1, ids[0])?;
    if migration.advance() != MigrationPhase::ReadMigration {
        return Err(Failure::check("expected the read-migration phase"));
    }
    for id in ids.iter().chain(&written) {
        migration.read(id)?;
    }
    let stats = migration.stats();
    if stats.mismatches != 0 {
        return Err(Failure::check(format!(
            "{} reads disagreed",
            stats.mismatches
        )));
    }
    if migration.advance() != MigrationPhase::Full {
        return Err(Failure::check("expected the full migration"));
    }
    let store = migration.into_store();
    let live = store.read(Consistency::Strong)?.len();
    let expected = MIGRATED_ITEMS as usize - 1 + written.len();
    if live != expected {
        return Err(Failure::check(format!(
            "{live} items after migrating, expected {expected}"
        )));
    }
    say!(
        "    {} items backfilled as events; 200 writes to both stores; {} reads compared with \
         0 mismatches; the locked store dropped: {} items, all in the event store",
        count(stats.backfilled),
        count(stats.compared_reads),
        count(live as u64)
    );
    store.close()?;
    summary.add(
        "6. migration",
        format!(
            "{} reads compared, 0 mismatches",
            count(stats.compared_reads)
        ),
    );
    Ok(())
}
