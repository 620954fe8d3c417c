//! Dry runs: what opening a log would repair, and what compacting it would remove, found
//! without doing either. Like the rest of [`crate::inspect`], these read with `pread`, take
//! no lock and write nothing, so they work on a log another process has open for writing.
//!
//! Both run the engine's own decisions, not a copy of them: the plan of recovery is recovery
//! itself with every write left out, and the plan of compaction feeds the segments that
//! recovery would leave to the function [`Log::compact`](crate::Log::compact) uses.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::log::archive::Archive;
use crate::log::compaction::{self, Floors};
use crate::log::{HeldBy, RecoveryReport, assess_open, checkpoints, consumers};
use crate::options::{ArchiveMode, Retention};
use crate::storage::fs as sfs;
use crate::{CompactionReport, Error};

/// What [`Log::open`](crate::Log::open) would do to a log, found by [`recovery_plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryPlan {
    /// The report `Log::open` would return if it opened the log now: where it would cut the
    /// log, which files it would remove or extend.
    /// [`RecoveryReport::is_clean`] says whether there is anything to repair.
    pub report: RecoveryReport,
    /// Process id in the lock file and whether the lock is held right now. While it is held,
    /// the plan is what recovery would do if that process stopped now.
    pub lock_owner: Option<(u32, bool)>,
}

/// What opening the log in `dir` would repair, without opening it: recovery's own decisions
/// with every write, removal and sync left out (reads only, no lock).
///
/// Fails where [`Log::open`](crate::Log::open) would, with the same error (damage that
/// recovery refuses to cut off is an [`Error::Corrupt`] naming the file and offset), and
/// with [`Error::NotALog`] for a directory that is missing or not a log (where `open` would
/// create one).
///
/// ```
/// # fn main() -> Result<(), mmlog::Error> {
/// # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
/// let log = mmlog::Log::open(dir.path(), mmlog::Options::default())?;
/// log.append(b"one")?;
/// log.close()?;
/// let plan = mmlog::inspect::recovery_plan(dir.path())?;
/// assert!(plan.report.is_clean());
/// assert_eq!(plan.report.next_seq, 1);
/// # Ok(()) }
/// ```
pub fn recovery_plan(dir: impl AsRef<Path>) -> Result<RecoveryPlan> {
    let dir = dir.as_ref();
    let assessed = assess_open(dir)?;
    Ok(RecoveryPlan {
        report: assessed.report,
        lock_owner: super::lock_owner(dir),
    })
}

/// A segment that [`compaction_plan`] says compaction would take out of the live log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlannedSegment {
    /// Segment id.
    pub id: u64,
    /// The segment file.
    pub path: PathBuf,
    /// Sequence number of its first record.
    pub base_seq: u64,
    /// Records in it (sequence numbers it uses).
    pub record_count: u64,
    /// Size of its file.
    pub bytes: u64,
    /// Its largest timestamp (ns since the Unix epoch).
    pub max_ts_ns: u64,
    /// The file it would become in the archive (`None` with [`ArchiveMode::Delete`]).
    pub archive_path: Option<PathBuf>,
}

/// What [`Log::compact`](crate::Log::compact) would do to a log, found by
/// [`compaction_plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionPlan {
    /// The segments that would leave the live log, oldest first.
    pub segments: Vec<PlannedSegment>,
    /// Records in those segments.
    pub records: u64,
    /// Bytes of their files.
    pub bytes: u64,
    /// The first sequence number of the live log afterwards.
    pub first_seq: u64,
    /// Why the oldest segment that stays would stay.
    pub held_by: Option<HeldBy>,
    /// What would happen to the segments that go.
    pub mode: ArchiveMode,
    /// The last record covered by the latest valid checkpoint, if any.
    pub checkpoint_seq: Option<u64>,
    /// The registered consumers and their positions, by name.
    pub consumers: Vec<(String, u64)>,
    /// The sequence number after the last record.
    pub next_seq: u64,
    /// What opening the log would repair first (compaction runs on an open log).
    pub recovery: RecoveryReport,
    /// Process id in the lock file and whether the lock is held right now.
    pub lock_owner: Option<(u32, bool)>,
}

impl CompactionPlan {
    /// The report [`Log::compact`](crate::Log::compact) would return, given the same
    /// retention, on the log as it is now.
    pub fn report(&self) -> CompactionReport {
        CompactionReport {
            segments_removed: self.segments.len(),
            segments_archived: if self.mode == ArchiveMode::Delete {
                0
            } else {
                self.segments.len()
            },
            bytes_removed: self.bytes,
            records_removed: self.records,
            first_seq: self.first_seq,
            held_by: self.held_by.clone(),
        }
    }
}

/// What compacting the log in `dir` with `retention` would remove, and what would hold the
/// rest back, without opening it: reads only, no lock.
///
/// The plan is made for the log as [`Log::open`](crate::Log::open) would leave it (see
/// [`recovery_plan`]), by the same decision [`Log::compact`](crate::Log::compact) takes,
/// from the same inputs: the live segments' seals, the latest valid checkpoint, the
/// consumers' positions, the retention and the time now. If `open` would have to start a new
/// segment, it is assumed to be as large as the last one. On a log another process has open,
/// it is the plan for the log as it is at this moment.
///
/// Fails where `open` would, and with [`Error::NotALog`] for a directory that is missing or
/// not a log.
///
/// ```
/// use mmlog::{HeldBy, Log, Options, Retention};
/// # fn main() -> Result<(), mmlog::Error> {
/// # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
/// let log = Log::open(dir.path(), Options::default().segment_size(4096))?;
/// for i in 0..500u32 {
///     log.append(&i.to_le_bytes())?;
/// }
/// log.checkpoint(299, b"state")?;
/// let plan = mmlog::inspect::compaction_plan(dir.path(), &Retention::default())?;
/// assert_eq!(plan.held_by, Some(HeldBy::Checkpoint));
/// assert!(plan.first_seq <= 300);
/// assert_eq!(log.compact()?, plan.report());
/// # Ok(()) }
/// ```
pub fn compaction_plan(dir: impl AsRef<Path>, retention: &Retention) -> Result<CompactionPlan> {
    let dir = dir.as_ref();
    let assessed = assess_open(dir)?;
    let next_seq = assessed.report.next_seq;
    let checkpoint_seq = checkpoints::floor_in(dir, next_seq)?;
    let mut positions = Vec::new();
    for (name, position) in consumers::list_dir(dir) {
        positions.push((name, position?));
    }
    // As `consumers::State::floor`: the smallest position, the first by name among equals.
    let consumer = positions
        .iter()
        .min_by_key(|(_, p)| *p)
        .map(|(n, p)| (n.as_str(), *p));
    let candidates: Vec<_> = assessed.segments.iter().map(|(_, _, c)| *c).collect();
    let floors = Floors {
        checkpoint: checkpoint_seq,
        consumer,
        next_seq,
        now_ns: sfs::now_ns(),
    };
    let decision = compaction::decide(&candidates, retention, &floors);
    let archive = Archive::new(dir);
    let mut segments = Vec::with_capacity(decision.remove);
    for (id, path, c) in assessed.segments.iter().take(decision.remove) {
        // `decide` removes sealed segments only.
        let Some(sealed) = c.sealed else {
            return Err(Error::invalid(format!(
                "compaction plan: segment {id} is not sealed"
            )));
        };
        segments.push(PlannedSegment {
            id: *id,
            path: path.clone(),
            base_seq: c.base_seq,
            record_count: sealed.record_count,
            bytes: c.bytes,
            max_ts_ns: sealed.max_ts,
            archive_path: archive.file_for(*id, retention.mode),
        });
    }
    Ok(CompactionPlan {
        records: segments.iter().map(|s| s.record_count).sum(),
        bytes: segments.iter().map(|s| s.bytes).sum(),
        segments,
        first_seq: decision.first_seq,
        held_by: decision.held_by,
        mode: retention.mode,
        checkpoint_seq,
        consumers: positions,
        next_seq,
        recovery: assessed.report,
        lock_owner: super::lock_owner(dir),
    })
}
