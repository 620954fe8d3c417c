//! The log: open and recover, append from many threads, read, make durable.
//!
//! Invariants (each is checked by a test or an assertion):
//! - Sequence numbers are dense and increase in file order, across segments and restarts.
//! - A frame is visible to readers only once its commit word is published (release store);
//!   readers and the flusher only trust the contiguous published prefix.
//! - The durable watermark covers only that prefix, and segments become durable in order.
//! - Nothing mmlog hands out as `&[u8]` is ever written again while the file exists.

pub(crate) mod archive;
pub(crate) mod checkpoints;
pub(crate) mod compaction;
pub(crate) mod consumers;
mod flusher;
#[cfg(all(test, loom))]
mod loom_model;
mod prealloc;
mod reader;
pub(crate) mod recovery;
mod reservation;
pub(crate) mod scan;
mod segment;
mod shared;
mod tail;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::SystemTime;

pub use archive::{ArchiveCheck, ArchivedSegment, DamagedArchiveFile};
pub use checkpoints::{Checkpoint, CheckpointInfo, SkippedCheckpoint};
pub use compaction::{CompactionReport, HeldBy};
pub use consumers::CONSUMER_NAME_MAX;
pub(crate) use reader::Records;
pub use reader::{Reader, Record};
pub use recovery::{RecoveryReport, Truncation};
pub use reservation::Reservation;

use crate::error::{CorruptionKind, Error, Result};
use crate::format::frame::{self, FRAME_HEADER_LEN};
use crate::format::segment_header::{SEGMENT_HEADER_LEN, SegmentHeader};
use crate::options::{Durability, Options};
use crate::storage::fs as sfs;
use crate::storage::mmap::Mapping;
use archive::Archive;
use checkpoints::CheckpointStore;
use consumers::Consumers;
use segment::Segment;
use shared::{Shared, Stores};

/// An open log: a directory of segment files owned by this process.
///
/// `Log` is `Send + Sync`: share it (`&Log` or `Arc<Log>`) between threads; every method takes
/// `&self`, and appends from many threads never wait on a lock.
///
/// ```
/// use mmlog::{Durability, Log, Options};
/// # fn main() -> Result<(), mmlog::Error> {
/// # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
/// let log = Log::open(dir.path(), Options::default().durability(Durability::Immediate))?;
/// let seq = log.append(b"payload")?;          // durable when this returns
/// let first = log.append_batch(&[b"a".as_slice(), b"b".as_slice()])?;
/// assert_eq!((seq, first), (0, 1));
/// assert_eq!(log.last_seq(), Some(2));
/// let mut reader = log.read_from(0)?;
/// while let Some(rec) = reader.next() {
///     let rec = rec?;
///     println!("{} {:?} {} bytes", rec.seq(), rec.timestamp(), rec.payload().len());
/// }
/// # Ok(()) }
/// ```
pub struct Log {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
    preparer: Option<JoinHandle<()>>,
    compactor: Option<JoinHandle<()>>,
    report: RecoveryReport,
    /// Holds the directory's `flock` until the log is closed. Readers may outlive the log:
    /// they keep their mappings, and a later owner never rewrites bytes a reader was given.
    lock_file: Option<std::fs::File>,
}

/// Counters describing an open log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogStats {
    /// Live segment files.
    pub segments: usize,
    /// Sequence number of the first record in the live log (compaction may have archived or
    /// deleted the records before it).
    pub first_seq: u64,
    /// Sequence number after the last committed record.
    pub committed_next: u64,
    /// Sequence number after the last durable record.
    pub durable_next: u64,
    /// `msync` calls made by the flusher since open.
    pub msync_count: u64,
    /// Segments taken out of the live log by compaction since open.
    pub segments_compacted: usize,
    /// Background compactions run since open.
    pub background_compactions: u64,
    /// The error of the last background compaction, if it failed.
    pub background_compaction_error: Option<String>,
}

/// Bytes a log takes on disk, by directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskUsage {
    /// Live segment files, the pre-allocated spare and index files included.
    pub segments: u64,
    /// Checkpoint files.
    pub checkpoints: u64,
    /// Archived segments.
    pub archive: u64,
}

impl Log {
    /// Opens the log in `dir`, creating it if the directory is missing or empty, recovering
    /// it otherwise (see [`Log::recovery_report`]).
    ///
    /// Fails with [`Error::Locked`] if another handle, in this process or another, has it
    /// open; with [`Error::NotALog`] for a non-empty directory that is not a log; with
    /// [`Error::UnsupportedVersion`] for a log written by a newer release; with
    /// [`Error::Corrupt`] for damage that recovery must not cut off.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Log> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let created = recovery::prepare_dir(&dir)?;
        let lock_file = sfs::acquire_lock(&dir)?;
        let segments_dir = dir.join(sfs::SEGMENTS_DIR);
        let mut rec = recovery::recover(&segments_dir, options.index_interval)?;
        rec.report.created = created;
        let stores = open_stores(&dir, &options, &mut rec)?;
        if rec.tail_complete || rec.segments.is_empty() {
            let seg = start_segment(&segments_dir, rec.segments.last(), options.segment_size)?;
            rec.segments.push(seg);
            rec.report.segments = rec.segments.len();
        }
        let commit_from = rec.segments.iter().find(|s| !s.is_sealed()).cloned();
        let Some(commit_from) = commit_from.or_else(|| rec.segments.last().cloned()) else {
            return Err(Error::invalid("log has no segments"));
        };
        let next_seq = rec.report.next_seq;
        let floor = rec.max_ts;
        let shared = Arc::new(Shared::new(
            dir.clone(),
            segments_dir,
            options,
            rec.segments,
            Arc::clone(&commit_from),
            floor,
            next_seq,
            stores,
        )?);
        let mut log = Log {
            shared,
            flusher: None,
            preparer: None,
            compactor: None,
            report: rec.report,
            lock_file: Some(lock_file),
        };
        log.start_threads(commit_from)?;
        Ok(log)
    }

    fn start_threads(&mut self, commit_from: Arc<Segment>) -> Result<()> {
        let s = Arc::clone(&self.shared);
        self.flusher = Some(
            std::thread::Builder::new()
                .name("mmlog-flusher".into())
                .spawn(move || flusher::run(&s, commit_from))
                .map_err(|e| Error::io("spawn flusher", &self.shared.dir, e))?,
        );
        let s = Arc::clone(&self.shared);
        self.preparer = Some(
            std::thread::Builder::new()
                .name("mmlog-prealloc".into())
                .spawn(move || {
                    s.spare.run(&s.segments_dir, || s.prefault_active());
                })
                .map_err(|e| Error::io("spawn preallocator", &self.shared.dir, e))?,
        );
        if let Some(every) = self.shared.options.retention.every {
            let s = Arc::clone(&self.shared);
            self.compactor = Some(
                std::thread::Builder::new()
                    .name("mmlog-compactor".into())
                    .spawn(move || compaction::run(&s, every))
                    .map_err(|e| Error::io("spawn compactor", &self.shared.dir, e))?,
            );
        }
        Ok(())
    }

    /// Appends one record; returns its sequence number (the first record of a log gets 0).
    ///
    /// Never waits on a lock: one atomic operation reserves the sequence number and the bytes.
    /// With [`Durability::Immediate`] it returns once the record is on stable storage.
    #[inline]
    pub fn append(&self, payload: &[u8]) -> Result<u64> {
        self.shared.check_writable()?;
        let frame_len = self.frame_len(payload.len())?;
        let (seg, offset, seq) = self.shared.reserve(1, frame_len)?;
        let ts = self.shared.now_ns();
        // SAFETY: `reserve` handed this thread `offset..offset + frame_len` of `seg`, which
        // nobody else writes and no reader looks at until the commit word is published.
        unsafe { seg.publish_record(offset, seq, ts, payload) };
        self.after_publish(seq + 1)?;
        Ok(seq)
    }

    /// Appends several records with contiguous sequence numbers, reserved in one atomic
    /// operation; returns the first one's. The batch must fit in one segment.
    pub fn append_batch(&self, payloads: &[&[u8]]) -> Result<u64> {
        self.shared.check_writable()?;
        if payloads.is_empty() {
            return Err(Error::invalid("empty batch"));
        }
        let mut total = 0u64;
        for p in payloads {
            total += self.frame_len(p.len())?;
        }
        let max = self.shared.options.segment_size - SEGMENT_HEADER_LEN as u64;
        if total > max {
            return Err(Error::RecordTooLarge { len: total, max });
        }
        let (seg, mut offset, first) = self.shared.reserve(payloads.len() as u64, total)?;
        let ts = self.shared.now_ns();
        for (i, p) in payloads.iter().enumerate() {
            // SAFETY: as in `append`: each frame lies inside this thread's reservation.
            unsafe { seg.publish_record(offset, first + i as u64, ts, p) };
            offset += frame::frame_len(p.len() as u64);
        }
        self.after_publish(first + payloads.len() as u64)?;
        Ok(first)
    }

    /// Reserves a record of `len` bytes to be written in place (zero-copy) and committed with
    /// [`Reservation::commit`]. Dropping the reservation uncommitted leaves a padding frame.
    pub fn reserve(&self, len: usize) -> Result<Reservation<'_>> {
        self.shared.check_writable()?;
        let frame_len = self.frame_len(len)?;
        let (seg, offset, seq) = self.shared.reserve(1, frame_len)?;
        Ok(Reservation::new(&self.shared, seg, offset, seq, len as u32))
    }

    #[inline]
    fn frame_len(&self, payload_len: usize) -> Result<u64> {
        let max = Options::payload_len_max(self.shared.options.segment_size);
        let len = payload_len as u64;
        if len > max {
            return Err(Error::RecordTooLarge { len, max });
        }
        Ok(frame::frame_len(len))
    }

    #[inline]
    fn after_publish(&self, next: u64) -> Result<()> {
        if self.shared.durability() == Durability::Immediate {
            self.shared.flush.wait_durable(&self.shared, next)?;
        }
        Ok(())
    }

    /// Makes every record appended before this call durable.
    pub fn sync(&self) -> Result<()> {
        self.shared.check_writable()?;
        let target = self.shared.reserved_next();
        self.shared.flush.wait_durable(&self.shared, target)
    }

    /// The sequence number of the last record of the contiguous committed prefix (`None` for
    /// an empty log). Every record up to it can be read.
    pub fn last_seq(&self) -> Option<u64> {
        let next = match self.shared.advance_committed() {
            Ok(c) => c.next_seq,
            Err(_) => self.shared.committed_next.load(Ordering::Acquire),
        };
        next.checked_sub(1)
    }

    /// [`Log::last_seq`] once every append that began before this call has published its
    /// record: an append that returned is then covered even if an earlier one, started by
    /// another thread, was still copying its payload. Waits for those appends (they take
    /// microseconds; a [`Reservation`] held open is waited for until it is committed or
    /// dropped).
    pub fn last_seq_settled(&self) -> Result<Option<u64>> {
        let target = self.shared.reserved_next();
        let mut spins = 0u32;
        loop {
            let committed = self.shared.advance_committed()?.next_seq;
            if committed >= target {
                return Ok(committed.checked_sub(1));
            }
            if self.shared.check_writable().is_err() {
                // A closed or poisoned log publishes nothing more: what is there is final.
                return Ok(committed.checked_sub(1));
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// The sequence number of the last durable record (`None` if none is durable yet).
    pub fn durable_seq(&self) -> Option<u64> {
        self.shared
            .flush
            .durable_next
            .load(Ordering::Acquire)
            .checked_sub(1)
    }

    /// A reader positioned at `seq` (or, if `seq` is not written yet, waiting for it).
    pub fn read_from(&self, seq: u64) -> Result<Reader> {
        Reader::at_seq(Arc::clone(&self.shared), seq)
    }

    /// A reader positioned at the first record whose timestamp is at or after `time`.
    ///
    /// Timestamps come from the wall clock when each record is appended. Concurrent writers
    /// can commit a record with a slightly earlier timestamp after a later one; "first" means
    /// first in sequence order, as Kafka's `offsetsForTimes` does.
    pub fn read_from_time(&self, time: SystemTime) -> Result<Reader> {
        Reader::at_time(Arc::clone(&self.shared), sfs::time_ns(time))
    }

    /// Writes a checkpoint: `data`, an opaque state that reflects records `0..=seq`.
    ///
    /// First makes records up to `seq` durable (a checkpoint must never describe records a
    /// crash could lose), then writes the file atomically: temporary file, `fsync`, rename,
    /// directory `fsync`. Keeps the newest [`Options::keep_checkpoints`] checkpoints. Writers
    /// are not stopped.
    ///
    /// Fails with [`Error::InvalidArgument`] if record `seq` is not committed yet.
    pub fn checkpoint(&self, seq: u64, data: &[u8]) -> Result<CheckpointInfo> {
        match self.last_seq() {
            Some(last) if seq <= last => {}
            last => {
                return Err(Error::invalid(format!(
                    "cannot checkpoint at {seq}: the last committed record is {last:?}"
                )));
            }
        }
        self.shared.flush.wait_durable(&self.shared, seq + 1)?;
        let ts = reader::timestamp_of(Arc::clone(&self.shared), seq)?;
        self.shared.checkpoints.write(seq, ts, data)
    }

    /// The newest valid checkpoint, or `None`. Damaged checkpoint files are skipped (see
    /// [`Checkpoint::skipped`]), never trusted.
    pub fn latest_checkpoint(&self) -> Result<Option<Checkpoint>> {
        self.shared.checkpoints.newest(u64::MAX, |_| true)
    }

    /// The newest valid checkpoint covering no record after `seq`.
    pub fn checkpoint_at_or_before(&self, seq: u64) -> Result<Option<Checkpoint>> {
        self.shared.checkpoints.newest(seq, |_| true)
    }

    /// The newest valid checkpoint whose last record is no later than `time`.
    pub fn checkpoint_at_or_before_time(&self, time: SystemTime) -> Result<Option<Checkpoint>> {
        let ts = sfs::time_ns(time);
        self.shared
            .checkpoints
            .newest(u64::MAX, |c| c.timestamp_ns <= ts)
    }

    /// Every checkpoint file, oldest first: the valid ones, and the damaged ones with what
    /// is wrong with them.
    pub fn checkpoints(&self) -> Result<(Vec<CheckpointInfo>, Vec<SkippedCheckpoint>)> {
        let mut valid = Vec::new();
        let mut damaged = Vec::new();
        for entry in checkpoints::list_dir(&self.shared.dir)? {
            match entry {
                Ok(info) => valid.push(info),
                Err(skipped) => damaged.push(skipped),
            }
        }
        Ok((valid, damaged))
    }

    /// The newest valid checkpoint and a reader at the first record after it: rebuilding
    /// state costs only the records since the checkpoint. Without a checkpoint, the reader
    /// starts at record 0.
    ///
    /// ```
    /// # fn main() -> Result<(), mmlog::Error> {
    /// # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
    /// let log = mmlog::Log::open(dir.path(), mmlog::Options::default())?;
    /// for i in 1..=100u64 {
    ///     log.append(&i.to_le_bytes())?;
    /// }
    /// let sum: u64 = (1..=50).sum();
    /// log.checkpoint(49, &sum.to_le_bytes())?; // state after records 0..=49
    ///
    /// let (cp, mut reader) = log.read_from_checkpoint()?;
    /// let mut state = cp.map_or(0, |c| u64::from_le_bytes(c.data().try_into().unwrap()));
    /// while let Some(rec) = reader.next() {
    ///     state += u64::from_le_bytes(rec?.payload().try_into().unwrap());
    /// }
    /// assert_eq!(state, (1..=100u64).sum::<u64>());
    /// # Ok(()) }
    /// ```
    pub fn read_from_checkpoint(&self) -> Result<(Option<Checkpoint>, Reader)> {
        let cp = self.latest_checkpoint()?;
        let from = cp.as_ref().map_or(0, |c| c.seq() + 1);
        let reader = self.read_from(from)?;
        Ok((cp, reader))
    }

    /// Applies the retention policy now (see [`Retention`](crate::Retention)): the oldest
    /// sealed segments that nothing needs any more leave the live log, archived or deleted.
    /// Appends and readers go on meanwhile; a reader inside a segment being removed keeps
    /// reading it.
    ///
    /// Everything after the latest checkpoint stays readable with [`Log::read_from`], before
    /// and after a reopen.
    pub fn compact(&self) -> Result<CompactionReport> {
        compaction::compact(&self.shared)
    }

    /// Registers a named consumer at position `next_seq` (the first record it has not
    /// consumed), unless it exists; returns its position. Compaction keeps every record
    /// from the smallest consumer position on, across restarts.
    pub fn register_consumer(&self, name: &str, next_seq: u64) -> Result<u64> {
        self.check_position(next_seq)?;
        self.shared.consumers.register(name, next_seq)
    }

    /// Stores consumer `name`'s position durably: it has consumed every record before
    /// `next_seq`.
    pub fn commit_consumer(&self, name: &str, next_seq: u64) -> Result<()> {
        self.check_position(next_seq)?;
        self.shared.consumers.commit(name, next_seq)
    }

    /// The position of consumer `name`, if registered.
    pub fn consumer_position(&self, name: &str) -> Option<u64> {
        self.shared.consumers.position(name)
    }

    /// Removes consumer `name`; returns whether it existed.
    pub fn remove_consumer(&self, name: &str) -> Result<bool> {
        self.shared.consumers.remove(name)
    }

    /// Every registered consumer and its position, by name.
    pub fn consumers(&self) -> Vec<(String, u64)> {
        self.shared.consumers.list()
    }

    fn check_position(&self, next_seq: u64) -> Result<()> {
        let end = self.last_seq().map_or(0, |s| s + 1);
        if next_seq > end {
            return Err(Error::invalid(format!(
                "position {next_seq} is after the end of the log ({end})"
            )));
        }
        Ok(())
    }

    /// The archived segments, oldest first, and a description of each archive file that
    /// failed its header checks.
    pub fn archived_segments(&self) -> Result<(Vec<ArchivedSegment>, Vec<DamagedArchiveFile>)> {
        self.shared.archive.list()
    }

    /// Bytes on disk: live segment files (spare and index files included), checkpoints, and
    /// the archive. Reads the directories.
    pub fn disk_usage(&self) -> DiskUsage {
        let segments = std::fs::read_dir(&self.shared.segments_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        DiskUsage {
            segments,
            checkpoints: self.shared.checkpoints.disk_bytes(),
            archive: self.shared.archive.disk_bytes(),
        }
    }

    /// Reads every archived segment in full, checking each frame's CRC and sequence number
    /// and that the archive is contiguous and meets the live log. Slow on a large archive.
    pub fn verify_archive(&self) -> Result<ArchiveCheck> {
        let live_start = self
            .shared
            .segments()
            .first()
            .map_or((0, 0), |s| (s.id, s.base_seq));
        self.shared
            .archive
            .verify(self.shared.options.index_interval, live_start)
    }

    /// What recovery found and did when this log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Counters describing the log.
    pub fn stats(&self) -> LogStats {
        let segs = self.shared.segments();
        LogStats {
            segments: segs.len(),
            first_seq: segs.first().map_or(0, |s| s.base_seq),
            committed_next: self.last_seq().map_or(0, |s| s + 1),
            durable_next: self.shared.flush.durable_next.load(Ordering::Acquire),
            msync_count: self.shared.flush.msync_count.load(Ordering::Relaxed),
            segments_compacted: self.shared.retired_count(),
            background_compactions: self.shared.compactor.runs.load(Ordering::Relaxed),
            background_compaction_error: shared::lock(&self.shared.compactor.last_error).clone(),
        }
    }

    /// The log's directory.
    pub fn path(&self) -> &Path {
        &self.shared.dir
    }

    /// Flushes everything committed, stops the background threads and releases the log.
    /// Dropping the log does the same but cannot report a failure.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        let running = self.flusher.is_some();
        if let Some(h) = self.compactor.take() {
            self.shared.compactor.shutdown();
            let _ = h.join();
        }
        if let Some(h) = self.flusher.take() {
            self.shared.flush.shutdown();
            let _ = h.join();
        }
        if let Some(h) = self.preparer.take() {
            self.shared.spare.shutdown();
            let _ = h.join();
        }
        if running && !self.shared.is_poisoned() {
            // No writer is left (closing takes the `Log`; a `Reservation` borrows it).
            self.shared.discard_unused_tail();
        }
        self.shared.mark_closed();
        self.lock_file = None;
        if self.shared.is_poisoned() {
            return Err(Error::Poisoned {
                cause: self.shared.poison_cause(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
impl Log {
    /// Makes the flusher's next `msync` fail (tests of the poisoning path).
    pub(crate) fn fail_next_msync(&self) {
        self.shared.fail_next_msync.store(true, Ordering::SeqCst);
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("path", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

/// Opens the checkpoint, consumer and archive stores, and clears what an interrupted
/// checkpoint, compaction or archival left behind (reported in `rec.report.removed_files`).
fn open_stores(dir: &Path, options: &Options, rec: &mut recovery::Recovered) -> Result<Stores> {
    let next_seq = rec.report.next_seq;
    // Listed first: opening the stores removes them.
    let mut temporary = checkpoints::temporary_files(dir);
    temporary.extend(consumers::temporary_files(dir));
    let checkpoints = CheckpointStore::open(dir, options.keep_checkpoints)?;
    // A checkpoint is written only once the records it covers are durable, so one that
    // covers records the log no longer has describes a log that is gone.
    let beyond = checkpoints.remove_beyond(next_seq)?;
    rec.report.removed_files.extend(beyond);
    let archive = Archive::new(dir);
    let first_live = rec.segments.first().map(|s| s.id);
    let leftovers = archive_leftovers(dir, &archive, first_live, Archive::clean_up)?;
    rec.report.removed_files.extend(leftovers);
    let first_seq = rec.segments.first().map_or(0, |s| s.base_seq);
    let consumers = Consumers::open(dir, first_seq)?;
    rec.report.removed_temporary.extend(temporary);
    Ok(Stores {
        checkpoints,
        consumers,
        archive,
    })
}

/// What an interrupted archival left in the `archive` of the log in `dir`, whose first live
/// segment is `first_live`: found by `leftovers` (removed by [`Archive::clean_up`] at open,
/// listed by [`Archive::leftovers`] in an assessment), so that [`assess_open`] reports what
/// [`open_stores`] does. Fails when the log has no live segment while the archive holds some:
/// compaction always leaves a live segment after the last one it archives, so that one is
/// missing.
fn archive_leftovers(
    dir: &Path,
    archive: &Archive,
    first_live: Option<u64>,
    leftovers: impl FnOnce(&Archive, u64) -> Result<Vec<PathBuf>>,
) -> Result<Vec<PathBuf>> {
    if let Some(first) = first_live {
        return leftovers(archive, first);
    }
    match archive.list()?.0.last() {
        Some(last) => {
            let kind = CorruptionKind::MissingSegment {
                segment_id: last.id + 1,
            };
            Err(Error::corrupt(dir.join(sfs::SEGMENTS_DIR), 0, kind))
        }
        None => Ok(Vec::new()),
    }
}

/// What [`Log::open`] would find and do in a log directory, found without doing any of it.
pub(crate) struct OpenAssessment {
    /// The live segments `open` would start with, oldest first: id, file and what compaction
    /// needs to know. When `open` would start a new segment, it is the last one (its file
    /// does not exist yet; it is given the capacity of the segment before it).
    pub(crate) segments: Vec<(u64, PathBuf, compaction::Candidate)>,
    /// The recovery report `open` would return.
    pub(crate) report: RecoveryReport,
}

/// What [`Log::open`] would do to the log in `dir`, as its [`RecoveryReport`], and the live
/// segments it would leave: read-only, without the lock, writing nothing. Fails where `open`
/// would, and for a directory that is not a log yet (where `open` would create one).
pub(crate) fn assess_open(dir: &Path) -> Result<OpenAssessment> {
    let segments_dir = sfs::existing_segments_dir(dir)?;
    let mut rec = recovery::assess(&segments_dir)?;
    // As `open_stores`, in the same order, reading only.
    let next_seq = rec.report.next_seq;
    let mut temporary = checkpoints::temporary_files(dir);
    temporary.extend(consumers::temporary_files(dir));
    let beyond = checkpoints::beyond_in(dir, next_seq)?;
    rec.report.removed_files.extend(beyond);
    let archive = Archive::new(dir);
    let first_live = rec.segments.first().map(|s| s.id);
    let leftovers = archive_leftovers(dir, &archive, first_live, Archive::leftovers)?;
    rec.report.removed_files.extend(leftovers);
    for (_, position) in consumers::list_dir(dir) {
        position?;
    }
    rec.report.removed_temporary.extend(temporary);
    let mut segments: Vec<_> = rec
        .segments
        .iter()
        .map(|s| (s.id, s.path.clone(), compaction::Candidate::of(s)))
        .collect();
    if rec.tail_complete || rec.segments.is_empty() {
        let (id, bytes) = rec
            .segments
            .last()
            .map_or((0, crate::SEGMENT_SIZE_DEFAULT), |s| (s.id + 1, s.capacity));
        let candidate = compaction::Candidate {
            base_seq: next_seq,
            bytes,
            sealed: None,
        };
        segments.push((id, sfs::segment_path(&segments_dir, id), candidate));
        rec.report.segments += 1;
    }
    Ok(OpenAssessment {
        segments,
        report: rec.report,
    })
}

/// Creates and activates the segment that follows `prev` (or the first one of a new log).
fn start_segment(dir: &Path, prev: Option<&Arc<Segment>>, capacity: u64) -> Result<Arc<Segment>> {
    let (id, base_seq) = match prev {
        Some(p) => (
            p.id + 1,
            p.base_seq + p.completion().map_or(0, |c| c.record_count),
        ),
        None => (0, 0),
    };
    let file = sfs::create_segment_file(dir, id, capacity)?;
    let path: PathBuf = sfs::segment_path(dir, id);
    let map =
        Mapping::map(&file, capacity, true, false).map_err(|e| Error::io("mmap", &path, e))?;
    let header = SegmentHeader {
        segment_id: id,
        capacity,
        base_seq,
        created_ns: sfs::now_ns(),
    };
    Ok(Arc::new(Segment::activate(
        path,
        Arc::new(map),
        header,
        false,
    )?))
}

const _: () = assert!(FRAME_HEADER_LEN + SEGMENT_HEADER_LEN < 4096);

/// `Log` is shared between threads, and readers move between them.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    const fn assert_send<T: Send>() {}
    assert_send_sync::<Log>();
    assert_send::<Reader>();
};
