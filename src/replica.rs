//! Read replicas: following a log that another process owns and writes, without a lock.
//!
//! One process owns a log directory (it holds the `flock` on `<dir>/LOCK`) and writes it; any
//! number of other processes can open it with [`LogReplica::open`] and read it while it
//! grows. A replica takes no lock, runs no recovery and writes nothing: no file, no
//! directory, no index, no consumer position. It reads committed records only, every one
//! checked against its CRC, in sequence order; it follows the tail across segment rollovers,
//! reads what compaction archived through the archive, and reads checkpoints. The event
//! store's replica ([`EventStoreReplica`](crate::events::EventStoreReplica)) is built on it.
//!
//! ```
//! use std::time::Duration;
//! use mmlog::replica::LogReplica;
//! # fn main() -> Result<(), mmlog::Error> {
//! # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
//! // The owner: usually another process.
//! let log = mmlog::Log::open(dir.path(), mmlog::Options::default())?;
//! log.append(b"one")?;
//!
//! let replica = LogReplica::open(dir.path())?; // no lock, nothing written
//! let mut reader = replica.read_from(0)?;
//! assert_eq!(reader.next().expect("a record")?.payload(), b"one");
//! assert!(reader.next().is_none()); // nothing more right now
//! log.append(b"two")?;
//! assert!(reader.wait(Duration::from_secs(10)));
//! assert_eq!(reader.next().expect("a record")?.payload(), b"two");
//! # Ok(()) }
//! ```
//!
//! # Reading with `pread`, not through a shared mapping
//!
//! A replica reads segment files with `pread` into buffers of its own (through
//! [`Follower`], the reader of the tools), and checkpoints too, never through a mapping of
//! them. That is what makes it sound and keeps it alive:
//!
//! - **No reference into memory another process writes.** In the owner, a record's payload
//!   is a `&[u8]` into the mapping, which is sound because the owner never writes a
//!   published byte again (the mapping contract in `storage/mmap.rs`). That contract binds
//!   the owner process only. After a crash, the next owner's recovery writes zeros over the
//!   tail from the first frame that is not published, and a program outside the engine may
//!   truncate or rewrite a file. A replica's copy is its own: nothing changes it under the
//!   `&[u8]` a [`Record`] lends.
//! - **Errors, not signals.** A media error under a mapped page, or a page past the end of a
//!   truncated file, ends the process with SIGBUS. `pread` returns `EIO` or a short read,
//!   which the replica returns as an [`Error`].
//! - **Torn copies are caught.** The owner publishes a frame by storing its commit word (CRC
//!   and length) after the rest of it; a `pread` that races with the writer may copy the
//!   frame half-written. A frame is taken only when the CRC of the copy matches and its
//!   sequence number is the next one. At the end of the unsealed tail, a frame that fails is
//!   read again on the next poll (a write in progress); it is damage when its segment is
//!   sealed, or when a valid frame follows it on two polls in a row.
//! - **Nothing it read is taken back by a crash of the owner.** A replica stops at the first
//!   frame not yet published, so what it delivers is the contiguous published prefix: what a
//!   process crash leaves in the page cache and what recovery keeps (it cuts the unsealed
//!   tail at the first frame that is unpublished or fails its check). The replica waits at
//!   that point, and the new owner appends there. (A crash of the machine ends the replicas
//!   too; opened again, they read what the disk held.)
//! - **Files keep their bytes under an open descriptor.** The engine never shrinks a segment
//!   file (it is allocated at full length; a clean close punches holes but keeps the size;
//!   spares and compacted segments are deleted or renamed whole), so a replica inside a
//!   segment that compaction removes reads it to its end through its descriptor.
//!
//! The price is a copy of every record (read 64 KiB at a time) and polling instead of a
//! wake-up: an idle poll is one 8-byte `pread`, and [`ReplicaReader::wait`] polls at most
//! every 2 ms.
//!
//! # Compaction and crashes of the owner
//!
//! The owner may compact while a replica reads. Archived segments are read from the archive.
//! A reader that falls behind compaction (the records it needs next were deleted) gets an
//! error saying so; start again from the newest checkpoint, which covers what compaction
//! deleted ([`LogReplica::read_from_checkpoint`]; the event store's replica does it by
//! itself). When the owner crashes, readers wait at the end of what was committed; once a
//! new owner has opened the log (recovery), they read its records as they come.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{CorruptionKind, Error, Result};
use crate::format::segment_header::{HeaderState, SEGMENT_HEADER_LEN, SegmentHeader};
use crate::inspect::{self, DumpRecord, Follower};
use crate::log::checkpoints;
use crate::log::{Checkpoint, Record, Records};
use crate::storage::fs as sfs;

/// How many times opening a reader is tried when compaction moves the start of the log
/// between finding the start and reading it.
const START_ATTEMPTS: usize = 4;
/// Records a [`ReplicaReader`] reads ahead at most (fewer when they are large).
const BATCH_RECORDS: usize = 4096;
/// Payload bytes a [`ReplicaReader`] reads ahead at most (more for one larger record).
const BATCH_BYTES: usize = 1 << 20;
/// The first pause of [`ReplicaReader::wait`] between two polls; each pause doubles up to
/// [`MAX_NAP`].
pub(crate) const FIRST_NAP: Duration = Duration::from_micros(100);
/// The longest pause of [`ReplicaReader::wait`] between two polls.
pub(crate) const MAX_NAP: Duration = Duration::from_millis(2);

/// A log that another process owns, opened read-only (see the [module docs](self)).
///
/// A `LogReplica` is only a place: it holds no file open and no lock. Each
/// [`ReplicaReader`] follows the log on its own.
#[derive(Clone, Debug)]
pub struct LogReplica {
    dir: PathBuf,
    segments_dir: PathBuf,
}

impl LogReplica {
    /// Opens the log in `dir` read-only. Takes no lock, runs no recovery, writes nothing;
    /// works whether or not a process owns the log.
    ///
    /// Fails with [`Error::NotALog`] when `dir` is missing or holds no log (no `segments/`
    /// directory, or a first segment file that is not one), and with [`Error::Corrupt`] when
    /// the first segment's header is damaged or of a newer format version.
    pub fn open(dir: impl AsRef<Path>) -> Result<LogReplica> {
        let dir = dir.as_ref();
        let segments_dir = sfs::existing_segments_dir(dir)?;
        check_first_segment(dir, &segments_dir)?;
        Ok(LogReplica {
            dir: dir.into(),
            segments_dir,
        })
    }

    /// The log directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The process id of the log's owner, if a process holds the log's lock now: found in
    /// `/proc/locks`, without taking the lock (only where that file cannot be read is the
    /// lock tried, shared, and let go at once).
    pub fn owner_pid(&self) -> Option<u32> {
        match inspect::lock_owner(&self.dir) {
            Some((pid, true)) => Some(pid),
            _ => None,
        }
    }

    /// A reader positioned at `seq` (or, if `seq` is not written yet, waiting for it):
    /// through the archive when compaction archived it.
    ///
    /// Fails with [`Error::InvalidArgument`] when the records from `seq` were compacted away
    /// (deleted): start from a checkpoint instead ([`LogReplica::read_from_checkpoint`]).
    pub fn read_from(&self, seq: u64) -> Result<ReplicaReader> {
        let mut first = seq;
        for _ in 0..START_ATTEMPTS {
            match self.try_read_from(seq)? {
                Ok(reader) => return Ok(reader),
                Err(starts_at) => first = starts_at,
            }
        }
        Err(Error::invalid(format!(
            "sequence number {seq} was compacted away: the log and its archive start at {first}"
        )))
    }

    /// A reader at `seq`, or where the log starts when that is after `seq`.
    fn try_read_from(&self, seq: u64) -> Result<std::result::Result<ReplicaReader, u64>> {
        let reader = self.follow_from(seq)?;
        let starts_at = reader.follower.next_seq();
        Ok(if starts_at > seq {
            Err(starts_at)
        } else {
            Ok(reader)
        })
    }

    /// A reader at `seq` that finds out only when it reads whether the records from `seq` are
    /// still there (see [`ReplicaReader::fell_behind`]).
    pub(crate) fn follow_from(&self, seq: u64) -> Result<ReplicaReader> {
        Ok(ReplicaReader {
            follower: Follower::new(&self.dir, seq)?,
            segments_dir: self.segments_dir.clone(),
            expected: seq,
            batch: Vec::new(),
            bytes: Vec::new(),
            pos: 0,
            pending: None,
            behind: false,
        })
    }

    /// The newest valid checkpoint and a reader at the first record after it (at record 0
    /// without a checkpoint), as [`Log::read_from_checkpoint`](crate::Log::read_from_checkpoint):
    /// the way to start when the start of the log was compacted away, since compaction
    /// deletes only what the newest checkpoint covers (unless the owner's retention does
    /// not require a checkpoint).
    pub fn read_from_checkpoint(&self) -> Result<(Option<Checkpoint>, ReplicaReader)> {
        let mut first = 0;
        for _ in 0..START_ATTEMPTS {
            // A newer checkpoint and a compaction between the two steps leave the reader
            // before the start of the log: then again, from the newer checkpoint.
            let cp = self.latest_checkpoint()?;
            let from = cp.as_ref().map_or(0, |c| c.seq().saturating_add(1));
            match self.try_read_from(from)? {
                Ok(reader) => return Ok((cp, reader)),
                Err(starts_at) => first = starts_at,
            }
        }
        Err(Error::invalid(format!(
            "the log and its archive start at {first}, after the newest checkpoint"
        )))
    }

    /// The newest valid checkpoint, if any. Its blob is a private copy, read with `pread`
    /// and checked; damaged checkpoint files passed over are in [`Checkpoint::skipped`].
    pub fn latest_checkpoint(&self) -> Result<Option<Checkpoint>> {
        checkpoints::newest_copied_in(&self.dir, u64::MAX, |_| true)
    }

    /// The newest valid checkpoint covering no record after `seq`.
    pub fn checkpoint_at_or_before(&self, seq: u64) -> Result<Option<Checkpoint>> {
        checkpoints::newest_copied_in(&self.dir, seq, |_| true)
    }

    /// The newest valid checkpoint whose last record is no later than `time`.
    pub fn checkpoint_at_or_before_time(&self, time: SystemTime) -> Result<Option<Checkpoint>> {
        let ts = sfs::time_ns(time);
        checkpoints::newest_copied_in(&self.dir, u64::MAX, |c| c.timestamp_ns <= ts)
    }
}

/// Checks that the first segment file in `segments_dir`, if there is one with a header yet,
/// is a segment of a format this release reads.
fn check_first_segment(dir: &Path, segments_dir: &Path) -> Result<()> {
    let Some(&id) = inspect::segment_ids(segments_dir)?.first() else {
        return Ok(());
    };
    let path = sfs::segment_path(segments_dir, id);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        // Compacted away since it was listed: the log goes on after it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", &path, e))?
        .len();
    if len < SEGMENT_HEADER_LEN as u64 {
        // Being created.
        return Ok(());
    }
    let mut head = [0u8; SEGMENT_HEADER_LEN];
    sfs::read_at(&file, &path, 0, &mut head)?;
    match SegmentHeader::decode(&head) {
        Ok(HeaderState::Valid(_) | HeaderState::Blank) => Ok(()),
        Err(CorruptionKind::BadMagic) => Err(Error::NotALog {
            path: dir.into(),
            reason: format!("{} is not a segment file", path.display()),
        }),
        Err(kind @ CorruptionKind::UnsupportedVersion { .. }) => {
            Err(Error::corrupt(&path, 8, kind))
        }
        Err(kind) => Err(Error::corrupt(&path, 0, kind)),
    }
}

/// Iterates the committed records of a log another process owns, in sequence order,
/// following the tail (see [`LogReplica::read_from`]).
///
/// Like the log's own [`Reader`](crate::Reader), it is not a snapshot: `next()` returning
/// `None` means "nothing more right now", and [`ReplicaReader::wait`] waits for more. Every
/// record's CRC is checked before it is returned; padding left by abandoned reservations is
/// skipped. A [`Record`]'s payload is a slice of the reader's own copy, valid until the next
/// call.
///
/// Errors are returned after the records before them. A read error or damage leaves the
/// reader after the last record it returned, and the next call tries again. A reader whose
/// next records were compacted away (deleted) before it reached them returns that error from
/// then on ([`ReplicaReader::fell_behind`]).
pub struct ReplicaReader {
    follower: Follower,
    segments_dir: PathBuf,
    /// The sequence number of the next frame (padding included) the follower must deliver.
    expected: u64,
    /// Records read ahead, in order; their payloads are in `bytes`.
    batch: Vec<Copied>,
    bytes: Vec<u8>,
    /// The next record of `batch` to return.
    pos: usize,
    /// An error met after the records of `batch`, returned once they are.
    pending: Option<Error>,
    /// The records from `expected` on were compacted away before the follower reached them.
    behind: bool,
}

/// A record read ahead by a [`ReplicaReader`]: its payload is `bytes[start..end]`.
#[derive(Clone, Copy, Debug)]
struct Copied {
    seq: u64,
    timestamp_ns: u64,
    start: usize,
    end: usize,
}

impl ReplicaReader {
    /// The next committed record, `None` if there is none yet, or an error.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Record<'_>>> {
        if !self.has_more() {
            self.fill();
            if !self.has_more() {
                return None;
            }
        }
        if let Some(c) = self.batch.get(self.pos).copied() {
            self.pos += 1;
            let payload = self.bytes.get(c.start..c.end).unwrap_or_default();
            return Some(Ok(Record::new(c.seq, c.timestamp_ns, payload)));
        }
        if self.behind {
            return Some(Err(Error::invalid(format!(
                "records from {} on were compacted away before this replica read them",
                self.expected
            ))));
        }
        self.pending.take().map(Err)
    }

    /// Waits up to `timeout` for a record (or an error) to read; returns true if
    /// [`ReplicaReader::next`] now has one. Polls the log, pausing between polls (at most
    /// 2 ms).
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut nap = FIRST_NAP;
        loop {
            if self.has_more() {
                return true;
            }
            self.fill();
            if self.has_more() {
                return true;
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => nap,
            };
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(nap.min(left));
            nap = (nap * 2).min(MAX_NAP);
        }
    }

    /// [`ReplicaReader::wait`] then [`ReplicaReader::next`].
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<Record<'_>>> {
        if self.wait(timeout) {
            self.next()
        } else {
            None
        }
    }

    /// The sequence number of the next record this reader can return (it may be a later one
    /// if that one was abandoned as padding).
    pub fn next_seq(&self) -> u64 {
        self.batch.get(self.pos).map_or(self.expected, |c| c.seq)
    }

    /// True when the records this reader needs next were compacted away (deleted) before it
    /// reached them: it can go no further, and returns that error from then on.
    pub fn fell_behind(&self) -> bool {
        self.behind && self.pos >= self.batch.len()
    }

    /// Whether `next` has a record or an error to return without polling.
    fn has_more(&self) -> bool {
        self.pos < self.batch.len() || self.pending.is_some() || self.behind
    }

    /// Reads ahead what the owner has committed since the last poll (all of `batch` was
    /// returned).
    fn fill(&mut self) {
        self.batch.clear();
        self.bytes.clear();
        self.pos = 0;
        let (batch, bytes, expected) = (&mut self.batch, &mut self.bytes, &mut self.expected);
        let mut out_of_order = None;
        let polled = self.follower.poll(|rec: &DumpRecord<'_>| {
            if rec.seq != *expected {
                out_of_order = Some((rec.segment_id, rec.offset, rec.seq));
                return false;
            }
            *expected = rec.seq.saturating_add(1);
            if !rec.padding {
                let start = bytes.len();
                bytes.extend_from_slice(rec.payload);
                batch.push(Copied {
                    seq: rec.seq,
                    timestamp_ns: rec.timestamp_ns,
                    start,
                    end: bytes.len(),
                });
            }
            batch.len() < BATCH_RECORDS && bytes.len() < BATCH_BYTES
        });
        match (out_of_order, polled) {
            // The follower starts at the first record the log and its archive hold when the
            // ones asked for are gone, and goes on without a gap after that.
            (Some((_, _, found)), _) if found > self.expected => self.behind = true,
            (Some((segment_id, offset, found)), _) => {
                let path = sfs::segment_path(&self.segments_dir, segment_id);
                let kind = CorruptionKind::UnexpectedSeq {
                    expected: self.expected,
                    found,
                };
                self.pending = Some(Error::corrupt(path, offset, kind));
            }
            (None, Ok(_)) => {}
            (None, Err(e)) if self.compacted_away(&e) => self.behind = true,
            (None, Err(e)) => self.pending = Some(e),
        }
    }

    /// Whether `e`, a segment missing from both the live log and the archive, is one that
    /// compaction deleted: the live log now starts after it (compaction removes the oldest
    /// segments first).
    fn compacted_away(&self, e: &Error) -> bool {
        let Error::Corrupt {
            kind: CorruptionKind::MissingSegment { segment_id },
            ..
        } = e
        else {
            return false;
        };
        inspect::segment_ids(&self.segments_dir)
            .is_ok_and(|ids| ids.first().is_some_and(|first| first > segment_id))
    }
}

impl Records for ReplicaReader {
    fn next_record(&mut self) -> Option<Result<Record<'_>>> {
        self.next()
    }

    fn next_seq(&self) -> u64 {
        ReplicaReader::next_seq(self)
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        ReplicaReader::wait(self, timeout)
    }
}

impl std::fmt::Debug for ReplicaReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaReader")
            .field("segment", &self.follower.segment_id())
            .field("next_seq", &self.next_seq())
            .field("fell_behind", &self.behind)
            .finish()
    }
}
