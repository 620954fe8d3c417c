//! Compaction: takes the oldest sealed segments out of the live log when nothing needs them
//! any more, and archives or deletes them (see [`Retention`](crate::Retention)).
//!
//! Segments go strictly oldest first, one at a time, each in durable steps, so the live
//! segments are always a contiguous run of ids and a crash at any step leaves a log that
//! opens to the same records (the archive's leftovers are cleaned up at open). First, the
//! segment that is to become the first live one has its header and name made durable (the
//! flusher may not have reached it yet: recovery reads where the log starts from it). Then,
//! for each segment:
//!
//! 1. the segment's mapping is made, so readers that enter it meanwhile still can;
//! 2. `Move`: the file is renamed into `archive/` and both directories synced.
//!    `Compress`: a compressed copy is written to `archive/` (temporary name, `fsync`,
//!    rename, directory `fsync`); `Delete`: nothing yet;
//! 3. the live file is removed (unless moved) and the directory synced;
//! 4. the segment leaves the in-memory live set and drops its mapping: readers inside it
//!    keep theirs, and the disk space is freed when the last one lets go.

use std::sync::Arc;
use std::time::Duration;

use super::segment::Segment;
use super::shared::{Shared, lock};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::segment_header::{SEGMENT_HEADER_LEN, Seal};
use crate::options::{ArchiveMode, Retention};
use crate::storage::fs as sfs;

/// What one compaction did, and what stopped it from doing more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionReport {
    /// Segments taken out of the live log.
    pub segments_removed: usize,
    /// Of those, segments kept in the archive.
    pub segments_archived: usize,
    /// Bytes of segment files taken out of the live log.
    pub bytes_removed: u64,
    /// Records taken out of the live log.
    pub records_removed: u64,
    /// The first sequence number in the live log afterwards.
    pub first_seq: u64,
    /// Why the oldest remaining segment was kept (the segment being written always is).
    pub held_by: Option<HeldBy>,
}

/// What keeps the oldest remaining segment in the live log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeldBy {
    /// It is the segment being written, or is not sealed yet.
    Unsealed,
    /// It holds records after the latest checkpoint (or there is no checkpoint).
    Checkpoint,
    /// A registered consumer has not consumed all of it.
    Consumer(String),
    /// A keep rule of the retention policy (records, bytes or age).
    Retention,
}

/// A live segment, as the retention decision sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Sequence number of its first record.
    pub(crate) base_seq: u64,
    /// Bytes of its file (its capacity).
    pub(crate) bytes: u64,
    /// For a sealed segment: its record count and its largest timestamp. `None` for a
    /// segment not sealed yet.
    pub(crate) sealed: Option<SealedFacts>,
}

/// What a seal says that the retention decision needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SealedFacts {
    /// Sequence numbers used by the segment.
    pub(crate) record_count: u64,
    /// Its largest timestamp (ns since the Unix epoch).
    pub(crate) max_ts: u64,
}

impl Candidate {
    /// The facts of live segment `seg`.
    pub(crate) fn of(seg: &Segment) -> Candidate {
        let sealed = seg
            .completion()
            .filter(|_| seg.is_sealed())
            .map(|c| SealedFacts {
                record_count: c.record_count,
                max_ts: seg.sealed_max_ts().unwrap_or(u64::MAX),
            });
        Candidate {
            base_seq: seg.base_seq,
            bytes: seg.capacity,
            sealed,
        }
    }
}

/// Everything besides the segments that the retention decision depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Floors<'a> {
    /// The last record covered by the latest valid checkpoint, if any. Only consulted when
    /// the retention requires a checkpoint.
    pub(crate) checkpoint: Option<u64>,
    /// The consumer with the smallest position (the first by name among equals), and that
    /// position.
    pub(crate) consumer: Option<(&'a str, u64)>,
    /// The sequence number after the last committed record.
    pub(crate) next_seq: u64,
    /// The current time, ns since the Unix epoch (for [`Retention::keep_age`]).
    pub(crate) now_ns: u64,
}

/// Which segments compaction takes out of the live log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    /// How many of the oldest segments go.
    pub(crate) remove: usize,
    /// The first sequence number of the live log afterwards.
    pub(crate) first_seq: u64,
    /// Why the oldest remaining segment stays.
    pub(crate) held_by: Option<HeldBy>,
}

/// Decides which of the live segments `segments` (oldest first, the one being written last)
/// compaction removes under `policy`: a pure function of its inputs, shared by
/// [`compact`] and the read-only plan of [`crate::inspect::compaction_plan`].
///
/// Segments go oldest first while each is sealed, not the last one, wholly covered by the
/// checkpoint (when required), consumed by every consumer, and let go by every keep rule.
pub(crate) fn decide(segments: &[Candidate], policy: &Retention, floors: &Floors<'_>) -> Decision {
    let checkpoint_floor = if policy.require_checkpoint {
        floors.checkpoint.map_or(0, |seq| seq.saturating_add(1))
    } else {
        u64::MAX
    };
    let records_floor = policy
        .keep_records
        .map_or(u64::MAX, |n| floors.next_seq.saturating_sub(n));
    let age_cut = policy.keep_age.map(|d| {
        floors
            .now_ns
            .saturating_sub(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    });
    let mut newer_bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    let mut decision = Decision {
        remove: 0,
        first_seq: 0,
        held_by: None,
    };
    for (i, seg) in segments.iter().enumerate() {
        newer_bytes -= seg.bytes;
        // The segment being written (the last one) and any not yet sealed stay.
        let sealed = seg.sealed.filter(|_| i + 1 < segments.len());
        let held = match sealed {
            None => HeldBy::Unsealed,
            Some(c) => {
                let end = seg.base_seq + c.record_count;
                if end > checkpoint_floor {
                    HeldBy::Checkpoint
                } else if let Some((name, _)) = floors.consumer.filter(|(_, p)| end > *p) {
                    HeldBy::Consumer(name.to_owned())
                } else if end > records_floor
                    || policy.keep_bytes.is_some_and(|b| newer_bytes < b)
                    || age_cut.is_some_and(|cut| c.max_ts >= cut)
                {
                    HeldBy::Retention
                } else {
                    decision.remove += 1;
                    continue;
                }
            }
        };
        decision.held_by = Some(held);
        break;
    }
    decision.first_seq = segments.get(decision.remove).map_or(0, |s| s.base_seq);
    decision
}

/// Applies the retention policy now. Serialized with other compactions; never blocks
/// appends or readers.
pub(crate) fn compact(shared: &Shared) -> Result<CompactionReport> {
    let _one_at_a_time = lock(&shared.compaction);
    // Complete segments become removable once sealed: have the flusher seal them now (it
    // makes everything before the active segment durable, the one write a seal waits for).
    let active_base = shared.active().base_seq;
    if active_base > 0 {
        shared.flush.wait_durable(shared, active_base)?;
    }
    let segs = shared.segments();
    let policy = &shared.options.retention;
    let checkpoint = if policy.require_checkpoint {
        shared.checkpoints.floor()?
    } else {
        None
    };
    let next_seq = shared.advance_committed()?.next_seq;
    let now_ns = sfs::now_ns();
    let candidates: Vec<Candidate> = segs.iter().map(|s| Candidate::of(s)).collect();

    let mut consumers = shared.consumers.lock();
    let floors = Floors {
        checkpoint,
        consumer: consumers.floor(),
        next_seq,
        now_ns,
    };
    let decision = decide(&candidates, policy, &floors);
    let mut report = CompactionReport {
        first_seq: decision.first_seq,
        held_by: decision.held_by,
        ..CompactionReport::default()
    };
    let doomed = decision.remove;
    if doomed == 0 {
        return Ok(report);
    }
    // From here on no consumer may be registered, or moved, below the new start.
    consumers.protect_from(report.first_seq);
    drop(consumers);
    // The segment that becomes the first is on disk before the ones before it go: without
    // its header, recovery could not tell where the log's sequence numbers start.
    if let Some(first) = segs.get(doomed) {
        super::flusher::make_header_durable(first)?;
    }

    for seg in &segs[..doomed] {
        let seal = remove_segment(shared, seg, policy.mode)?;
        report.segments_removed += 1;
        report.segments_archived += usize::from(policy.mode != ArchiveMode::Delete);
        report.bytes_removed += seg.capacity;
        report.records_removed += seal.record_count;
    }
    Ok(report)
}

/// Takes the oldest live segment, `seg`, out of the live log (steps in the module docs).
fn remove_segment(shared: &Shared, seg: &Arc<Segment>, mode: ArchiveMode) -> Result<Seal> {
    let map = seg.mapping()?;
    // SAFETY: the segment is sealed, so nothing writes its header any more.
    let seal = unsafe { map.bytes(0, SEGMENT_HEADER_LEN as u64) }
        .and_then(Seal::decode)
        .ok_or_else(|| {
            let kind = CorruptionKind::BadHeaderField {
                field: "seal",
                value: 0,
            };
            seg.corrupt(64, kind)
        })?;
    crate::failpoint::hit("compact: segment chosen")?;
    match mode {
        ArchiveMode::Delete => {}
        ArchiveMode::Move => shared.archive.move_in(seg, seal)?,
        ArchiveMode::Compress => shared.archive.compress_in(seg, seal)?,
    }
    if mode != ArchiveMode::Move {
        match sfs::remove_file(&seg.path) {
            Ok(()) => {}
            // An earlier attempt removed it and failed after.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &seg.path, e)),
        }
        crate::failpoint::hit("compact: segment file removed")?;
        let _ = sfs::remove_file(sfs::index_path(&shared.segments_dir, seg.id));
        sfs::sync_dir(&shared.segments_dir)?;
    }
    shared.retire_oldest(seg);
    Ok(seal)
}

/// Body of the background compaction thread: compacts every `every` until shut down.
pub(crate) fn run(shared: &Shared, every: Duration) {
    while shared.compactor.sleep(every) {
        let outcome = compact(shared);
        shared.compactor.record(outcome);
    }
}
