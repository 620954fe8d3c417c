//! Read-only inspection of a log directory, for tools: statistics, verification and dumps.
//!
//! Everything here reads segment files with `pread` into private buffers: it takes no lock
//! and writes nothing, so it is safe to run against a log another process has open (it then
//! sees a recent, possibly incomplete, state of the unsealed tail). The only files it maps
//! are checkpoints, read-only: they are never written after they get their name.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{CorruptionKind, Error, Result};
use crate::format::frame::{self, Frame, FrameKind};
use crate::format::lock_file;
use crate::format::segment_header::{HeaderState, SEGMENT_HEADER_LEN, Seal, SegmentHeader};
use crate::log::archive::{Archive, ArchivedSegment};
use crate::log::checkpoints::{self, CheckpointInfo};
use crate::log::consumers;
use crate::log::scan::{self, ScanOutcome, ScanStop};
use crate::storage::fs::{self as sfs, SegmentName};
use archived::{Body, Listing, LiveStart};

mod archived;
mod plans;
pub use plans::{CompactionPlan, PlannedSegment, RecoveryPlan, compaction_plan, recovery_plan};

/// One segment file as found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// Segment id (from the file name).
    pub id: u64,
    /// The file.
    pub path: PathBuf,
    /// File length in bytes.
    pub capacity: u64,
    /// The header, if valid (`None` for a blank spare or a bad header).
    pub header: Option<SegmentHeader>,
    /// The seal, if the segment is sealed.
    pub seal: Option<Seal>,
    /// Frames found by the scan (records and padding), when scanned.
    pub frames: u64,
    /// Of which padding frames.
    pub padding: u64,
    /// Bytes of frames (end of the valid frames minus the header).
    pub bytes_used: u64,
    /// Smallest and largest timestamps seen.
    pub first_ts: u64,
    /// Largest timestamp seen.
    pub max_ts: u64,
}

/// A problem found by [`inspect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// Offset in the file.
    pub offset: u64,
    /// What is wrong (`None`: unpublished space followed by written bytes).
    pub kind: Option<CorruptionKind>,
    /// True when recovery would cut this off as a torn tail (not data loss of anything
    /// acknowledged); false for damage recovery refuses or a reader would report.
    pub torn_tail: bool,
}

/// What a directory holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inspection {
    /// Segment files in id order.
    pub segments: Vec<SegmentInfo>,
    /// Everything wrong that was found.
    pub problems: Vec<Problem>,
    /// First sequence number in the live segments (the archive's records come before it:
    /// see [`Inspection::first_readable_seq`]).
    pub first_seq: u64,
    /// Sequence number after the last valid frame.
    pub next_seq: u64,
    /// Total frames in the live segments (the archive's are counted in [`Inspection::archive`]).
    pub records: u64,
    /// Process id in the lock file and whether the lock is held right now.
    pub lock_owner: Option<(u32, bool)>,
    /// Valid checkpoints, oldest first (damaged ones are in `problems`).
    pub checkpoints: Vec<CheckpointInfo>,
    /// Registered consumers and their positions, by name (damaged files are in `problems`).
    pub consumers: Vec<(String, u64)>,
    /// Archived segments, oldest first (damaged files are in `problems`).
    pub archive: Vec<ArchivedSegment>,
}

impl Inspection {
    /// True when no problem other than a torn tail was found.
    pub fn is_clean(&self) -> bool {
        self.problems.iter().all(|p| p.torn_tail)
    }

    /// The first sequence number a read from the start reaches, archive included: the first
    /// record of the oldest archived segment before the live log, else [`first_seq`]
    /// (`first_seq`, `next_seq` and `records` describe the live segments only). Whether the
    /// archive holds every record from there to the live log is for [`dump`] to find as it
    /// reads (a hole is an error there).
    ///
    /// [`first_seq`]: Inspection::first_seq
    pub fn first_readable_seq(&self) -> u64 {
        let live_id = self.segments.first().map(|s| s.id);
        self.archive
            .iter()
            .find(|a| live_id.is_none_or(|id| a.id < id))
            .map_or(self.first_seq, |a| a.base_seq.min(self.first_seq))
    }

    /// The archived segments before the live log (the archive can also hold copies of live
    /// segments, left by an interrupted compaction, which are not part of the log).
    pub fn archive_before_live(&self) -> impl Iterator<Item = &ArchivedSegment> {
        let live_id = self.segments.first().map(|s| s.id);
        self.archive
            .iter()
            .filter(move |a| live_id.is_none_or(|id| a.id < id))
    }
}

/// Index density used while verifying archived segments (the index is thrown away).
const DEEP_INDEX_INTERVAL: u64 = 1 << 16;

/// Reads a log directory. With `deep`, sealed segments and archived segments are scanned and
/// checked too (every CRC of the log and its archive); without, they are summarised from
/// their seals.
pub fn inspect(dir: impl AsRef<Path>, deep: bool) -> Result<Inspection> {
    let dir = dir.as_ref();
    let segments_dir = sfs::existing_segments_dir(dir)?;
    let mut out = Inspection {
        lock_owner: lock_owner(dir),
        ..Inspection::default()
    };
    let mut ids = Vec::new();
    let rd =
        std::fs::read_dir(&segments_dir).map_err(|e| Error::io("read dir", &segments_dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read dir", &segments_dir, e))?;
        if let SegmentName::Segment(id) =
            sfs::parse_segment_name(&entry.file_name().to_string_lossy())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    let mut expected_base: Option<u64> = None;
    let mut prev_id: Option<u64> = None;
    for id in ids {
        let path = sfs::segment_path(&segments_dir, id);
        if let Some(p) = prev_id
            && id != p + 1
        {
            let kind = CorruptionKind::MissingSegment { segment_id: p + 1 };
            out.problems.push(Problem {
                path: path.clone(),
                offset: 0,
                kind: Some(kind),
                torn_tail: false,
            });
        }
        prev_id = Some(id);
        let info = inspect_segment(id, &path, deep, &mut expected_base, &mut out)?;
        out.segments.push(info);
    }
    mark_torn_tail(&mut out);
    out.first_seq = out
        .segments
        .iter()
        .find_map(|s| s.header.map(|h| h.base_seq))
        .unwrap_or(0);
    out.next_seq = expected_base.unwrap_or(out.first_seq);
    out.records = out.segments.iter().map(|s| s.frames).sum();
    inspect_beside_segments(dir, deep, &mut out)?;
    Ok(out)
}

/// Checkpoints, consumers and the archive; with `deep`, every archived frame too.
fn inspect_beside_segments(dir: &Path, deep: bool, out: &mut Inspection) -> Result<()> {
    let damage = |e: &Error| match e {
        Error::Corrupt { path, offset, kind } => Some(Problem {
            path: path.clone(),
            offset: *offset,
            kind: Some(*kind),
            torn_tail: false,
        }),
        _ => None,
    };
    for entry in checkpoints::list_dir(dir)? {
        match entry {
            Ok(info) => out.checkpoints.push(info),
            Err(skipped) => match damage(&skipped.error) {
                Some(p) => out.problems.push(p),
                None => return Err(skipped.error),
            },
        }
    }
    for (name, pos) in consumers::list_dir(dir) {
        match pos {
            Ok(p) => out.consumers.push((name, p)),
            Err(e) => match damage(&e) {
                Some(p) => out.problems.push(p),
                None => return Err(e),
            },
        }
    }
    let archive = Archive::new(dir);
    let (archived, mut damaged) = archive.list()?;
    if deep {
        let live_start = out
            .segments
            .iter()
            .find_map(|s| s.header.map(|h| (h.segment_id, h.base_seq)))
            .unwrap_or((0, 0));
        damaged = archive.verify(DEEP_INDEX_INTERVAL, live_start)?.problems;
    }
    out.archive = archived;
    for d in damaged {
        out.problems.push(Problem {
            path: d.path,
            offset: d.offset,
            kind: d.kind.or(Some(CorruptionKind::Truncated {
                what: "archive file (unreadable)",
            })),
            torn_tail: false,
        });
    }
    Ok(())
}

/// The process id in the lock file of the log in `dir`, and whether a process holds the lock
/// right now. Found in `/proc/locks`, not by trying the lock: inspection must not take it,
/// even for an instant (a `Log::open` racing with that instant would fail with `Locked`).
/// Only where `/proc/locks` cannot be read is the lock tried (shared, and let go at once).
pub(crate) fn lock_owner(dir: &Path) -> Option<(u32, bool)> {
    let path = dir.join(sfs::LOCK_FILE);
    let file = File::open(&path).ok()?;
    let mut buf = [0u8; lock_file::LOCK_FILE_LEN];
    sfs::read_at(&file, &path, 0, &mut buf).ok()?;
    let owner = lock_file::decode(&buf).ok()?;
    let held = match std::fs::read_to_string("/proc/locks") {
        Ok(locks) => {
            let md = file.metadata().ok()?;
            flock_listed(&locks, md.dev(), md.ino())
        }
        Err(_) => matches!(
            file.try_lock_shared(),
            Err(std::fs::TryLockError::WouldBlock)
        ),
    };
    Some((owner.pid, held))
}

/// Whether `/proc/locks` text `locks` lists an `flock` on the file `dev`/`ino`. Its lines
/// read `1: FLOCK  ADVISORY  WRITE 1234 08:02:131073 0 EOF`: device major and minor in hex,
/// inode in decimal (`->` lines are waiters, not holders).
fn flock_listed(locks: &str, dev: u64, ino: u64) -> bool {
    let id = format!(
        "{:02x}:{:02x}:{ino}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    );
    locks.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.nth(1) == Some("FLOCK") && words.any(|w| w == id)
    })
}

fn inspect_segment(
    id: u64,
    path: &Path,
    deep: bool,
    expected_base: &mut Option<u64>,
    out: &mut Inspection,
) -> Result<SegmentInfo> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let capacity = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    let mut info = SegmentInfo {
        id,
        path: path.into(),
        capacity,
        header: None,
        seal: None,
        frames: 0,
        padding: 0,
        bytes_used: 0,
        first_ts: 0,
        max_ts: 0,
    };
    let mut problem = |offset, kind| {
        out.problems.push(Problem {
            path: path.into(),
            offset,
            kind: Some(kind),
            torn_tail: false,
        });
    };
    let mut head = [0u8; SEGMENT_HEADER_LEN];
    if capacity < SEGMENT_HEADER_LEN as u64 {
        problem(
            capacity,
            CorruptionKind::Truncated {
                what: "segment header",
            },
        );
        return Ok(info);
    }
    sfs::read_at(&file, path, 0, &mut head)?;
    let header = match SegmentHeader::decode(&head) {
        Ok(HeaderState::Valid(h)) => h,
        Ok(HeaderState::Blank) => return Ok(info),
        Err(kind) => {
            problem(0, kind);
            return Ok(info);
        }
    };
    info.header = Some(header);
    info.seal = Seal::decode(&head).filter(|s| s.fits(capacity));
    if header.capacity != capacity {
        problem(
            capacity,
            CorruptionKind::Truncated {
                what: "segment file",
            },
        );
        return Ok(info);
    }
    if let Some(e) = *expected_base
        && e != header.base_seq
    {
        problem(
            32,
            CorruptionKind::SeqDiscontinuity {
                expected: e,
                found: header.base_seq,
            },
        );
    }
    if let (Some(seal), false) = (info.seal, deep) {
        info.frames = seal.record_count;
        info.bytes_used = seal.end_offset - SEGMENT_HEADER_LEN as u64;
        info.first_ts = seal.first_ts;
        info.max_ts = seal.max_ts;
        *expected_base = Some(header.base_seq + seal.record_count);
        return Ok(info);
    }
    let mut src = scan::FileSource::new(&file, path, capacity);
    let mut padding = 0;
    let scanned = scan::scan_frames(&mut src, header.base_seq, |_, f| {
        if f.kind == FrameKind::Padding {
            padding += 1;
        }
    });
    info.frames = scanned.next_seq - header.base_seq;
    info.padding = padding;
    info.bytes_used = scanned.end_offset - SEGMENT_HEADER_LEN as u64;
    info.first_ts = scanned.first_ts;
    info.max_ts = scanned.max_ts;
    *expected_base = Some(scanned.next_seq);
    let at_end = matches!(scanned.stop, ScanStop::EndMarker | ScanStop::Full);
    let keep = if at_end {
        (scanned.end_offset + 8).min(capacity)
    } else {
        scanned.end_offset
    };
    let garbage = scan::nonzero_extent(&mut src, keep) > keep;
    src.finish()?;
    match scanned.stop {
        ScanStop::Bad(kind) => problem(scanned.end_offset, kind),
        _ if garbage => out.problems.push(Problem {
            path: path.into(),
            offset: keep,
            kind: None,
            torn_tail: false,
        }),
        _ => {}
    }
    if let Some(seal) = info.seal
        && (seal.record_count != info.frames || seal.end_offset != scanned.end_offset)
    {
        let kind = CorruptionKind::BadHeaderField {
            field: "seal record_count",
            value: seal.record_count,
        };
        out.problems.push(Problem {
            path: path.into(),
            offset: 64,
            kind: Some(kind),
            torn_tail: false,
        });
    }
    Ok(info)
}

/// Problems in the unsealed segments at the end of the log are what recovery treats as a torn
/// tail; mark them so.
fn mark_torn_tail(out: &mut Inspection) {
    let first_unsealed = out
        .segments
        .iter()
        .rposition(|s| s.seal.is_some())
        .map_or(0, |i| i + 1);
    let last_valid = out.segments.iter().rposition(|s| s.header.is_some());
    for p in &mut out.problems {
        let Some(i) = out.segments.iter().position(|s| s.path == p.path) else {
            continue;
        };
        let structural = matches!(
            p.kind,
            Some(CorruptionKind::MissingSegment { .. } | CorruptionKind::SeqDiscontinuity { .. })
        );
        if structural || i < first_unsealed {
            continue;
        }
        p.torn_tail = if out.segments[i].header.is_none() {
            // As recovery: a torn header of ours is dropped only after the last valid segment.
            last_valid.is_none_or(|v| i > v)
                && matches!(
                    p.kind,
                    Some(
                        CorruptionKind::HeaderChecksum { .. }
                            | CorruptionKind::BadHeaderField { .. }
                    )
                )
        } else {
            true
        };
    }
}

/// One record as [`dump`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpRecord<'a> {
    /// Segment id (of a live or an archived segment).
    pub segment_id: u64,
    /// Offset of the frame in its segment (for a compressed archived segment, in the segment
    /// as decompressed: where it was in the live file).
    pub offset: u64,
    /// Sequence number.
    pub seq: u64,
    /// Timestamp, ns since the Unix epoch.
    pub timestamp_ns: u64,
    /// True for a padding frame.
    pub padding: bool,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> DumpRecord<'a> {
    /// The record of `frame`, found at `offset` in segment `segment_id`: what [`dump`] and
    /// [`Follower`] hand out for each frame they read, from a live or an archived segment.
    fn of_frame(segment_id: u64, offset: u64, frame: &Frame<'a>) -> DumpRecord<'a> {
        DumpRecord {
            segment_id,
            offset,
            seq: frame.seq,
            timestamp_ns: frame.timestamp_ns,
            padding: frame.kind == FrameKind::Padding,
            payload: frame.payload,
        }
    }
}

/// Calls `each` for every valid frame with `seq >= from_seq` and `timestamp >= since_ns`, in
/// order, until it returns false: first those of the archive (segments that compaction moved
/// or compressed into `archive/`; compressed ones are decompressed in memory), then those of
/// the live segments, as [`Log::read_from`](crate::Log::read_from) reads them. A `from_seq`
/// before the first record the log and its archive still hold starts at that record.
///
/// Stops quietly at the end of the valid frames. Damage is returned as an error naming the
/// file and offset, after `each` was given the records before it; so is a hole in the
/// records asked for (an archived segment missing, or damaged beyond reading its header).
pub fn dump(
    dir: impl AsRef<Path>,
    from_seq: u64,
    since_ns: u64,
    mut each: impl FnMut(&DumpRecord<'_>) -> bool,
) -> Result<()> {
    let dir = dir.as_ref();
    let found = inspect(dir, false)?;
    if !dump_archive(dir, &found, from_seq, since_ns, &mut each)? {
        return Ok(());
    }
    for seg in &found.segments {
        let (Some(h), Some(seal)) = (seg.header, seg.seal) else {
            if seg.header.is_none() {
                // A torn trailing header holds nothing recovery would keep; anything else
                // unreadable is damage the caller must hear about.
                let damage = found
                    .problems
                    .iter()
                    .find(|p| p.path == seg.path && !p.torn_tail);
                if let Some(p) = damage {
                    let kind = p.kind.unwrap_or(CorruptionKind::BadMagic);
                    return Err(Error::corrupt(&seg.path, p.offset, kind));
                }
                continue;
            }
            if !dump_segment(seg, from_seq, since_ns, &mut each)? {
                return Ok(());
            }
            continue;
        };
        if h.base_seq + seal.record_count <= from_seq || (seal.max_ts < since_ns && seal.max_ts > 0)
        {
            continue;
        }
        if !dump_segment(seg, from_seq, since_ns, &mut each)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Where the live log starts, for the archive to meet it.
fn live_start(found: &Inspection) -> Option<LiveStart<'_>> {
    found.segments.first().map(|s| LiveStart {
        id: s.id,
        path: &s.path,
        base_seq: s.header.map(|h| h.base_seq),
    })
}

/// The part of [`dump`] in the archive. Returns false when `each` asked to stop.
fn dump_archive(
    dir: &Path,
    found: &Inspection,
    from_seq: u64,
    since_ns: u64,
    each: &mut impl FnMut(&DumpRecord<'_>) -> bool,
) -> Result<bool> {
    let live = live_start(found);
    let listing = Listing::read(dir, live.map(|l| l.id))?;
    let span = listing.span(from_seq, live);
    let (whole, hole) = match span.hole {
        Some((n, error)) => (span.segments.get(..n).unwrap_or(&[]), Some(error)),
        None => (span.segments, None),
    };
    for e in whole {
        if e.max_ts_ns < since_ns && e.max_ts_ns > 0 {
            continue;
        }
        let mut go_on = true;
        archived::scan_segment(e, |offset, f| {
            if go_on && f.seq >= from_seq && f.timestamp_ns >= since_ns {
                go_on = each(&DumpRecord::of_frame(e.id, offset, f));
            }
        })?;
        if !go_on {
            return Ok(false);
        }
    }
    hole.map_or(Ok(true), Err)
}

fn dump_segment(
    seg: &SegmentInfo,
    from_seq: u64,
    since_ns: u64,
    each: &mut impl FnMut(&DumpRecord<'_>) -> bool,
) -> Result<bool> {
    let Some(h) = seg.header else { return Ok(true) };
    let file = File::open(&seg.path).map_err(|e| Error::io("open", &seg.path, e))?;
    let mut src = scan::FileSource::new(&file, &seg.path, seg.capacity);
    let mut go_on = true;
    let out = scan::scan_frames(&mut src, h.base_seq, |offset, f| {
        if go_on && f.seq >= from_seq && f.timestamp_ns >= since_ns {
            go_on = each(&DumpRecord::of_frame(seg.id, offset, f));
        }
    });
    src.finish()?;
    if let ScanStop::Bad(kind) = out.stop
        && seg.seal.is_some()
    {
        return Err(Error::corrupt(&seg.path, out.end_offset, kind));
    }
    Ok(go_on)
}

/// Bytes a [`Follower`] reads per `pread` once a poll finds new frames (more when one frame
/// is larger): polls of a log that grows by a few records read little more than they hold.
const FOLLOW_CHUNK: usize = 64 << 10;

/// How far past a frame that fails its check a [`Follower`] looks for a valid frame (which
/// makes the bad frame damage rather than a write in progress).
const FOLLOW_LOOKAHEAD: u64 = 1 << 20;

/// Reads the records of a log as they are committed, like `tail -f`: the read-only way to
/// follow a log that another process has open for writing.
///
/// A follower takes no lock and writes nothing. It remembers where it stopped (the segment
/// file, the offset in it and the next sequence number), and each [`Follower::poll`] reads
/// only the bytes after that point, with `pread`: an idle poll costs one 8-byte read. It
/// delivers committed records only, in order, each once: a scan stops at the first frame
/// whose commit word is not yet published. When a segment ends (an end marker, or frames up
/// to its last byte) and the next segment file has its header, it moves on to that file.
///
/// Records that compaction archived are read from the archive (a moved segment like any
/// segment file, a compressed one decompressed in memory), in order, before the live ones:
/// a follower started at an archived record reads through the archive into the live log,
/// and one that falls behind compaction finds the segments it has not read in the archive.
/// A segment missing from both (deleted by compaction, or lost) is an error, not a skip.
///
/// A frame that fails its check at the end of the unsealed tail is taken for a write still in
/// progress, or a torn write that recovery will cut off and write over: the follower waits
/// there and retries on the next poll. It is damage, reported as [`Error::Corrupt`], when
/// its segment is sealed, or when a valid frame follows it on two polls in a row.
///
/// ```
/// use mmlog::inspect::Follower;
/// # fn main() -> Result<(), mmlog::Error> {
/// # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
/// let log = mmlog::Log::open(dir.path(), mmlog::Options::default())?;
/// log.append(b"one")?;
/// let mut follower = Follower::new(dir.path(), 0)?;
/// let mut seen = Vec::new();
/// follower.poll(|rec| {
///     seen.push(rec.seq);
///     true
/// })?;
/// log.append(b"two")?;
/// follower.poll(|rec| {
///     seen.push(rec.seq);
///     true
/// })?;
/// assert_eq!(seen, vec![0, 1]);
/// assert_eq!(follower.next_seq(), 2);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Follower {
    /// The log directory.
    dir: PathBuf,
    segments_dir: PathBuf,
    /// Records before this one are read past but not delivered.
    from_seq: u64,
    /// Where the next poll reads (`None` until a segment with a valid header is found).
    at: Option<FollowPosition>,
    /// The archive as last listed (archived files never change: listed again only when a
    /// segment is not in it).
    archive: Option<Listing>,
}

/// The segment a [`Follower`] reads and its place in it.
#[derive(Debug)]
struct FollowPosition {
    id: u64,
    path: PathBuf,
    body: Body,
    /// Bytes of `body` (the capacity of a segment file).
    capacity: u64,
    /// For an archived segment, the sequence number after its last record: it is complete,
    /// and must hold every record up to there.
    archived_end: Option<u64>,
    /// Offset of the next frame.
    offset: u64,
    /// Its sequence number.
    seq: u64,
    /// A bad frame at this offset was followed by a valid one on the last poll.
    suspect: Option<u64>,
}

/// What one pass over the current segment ended with.
enum FollowStep {
    /// No more committed frames for now.
    Wait,
    /// The callback asked to stop.
    Stopped,
    /// The segment holds no more frames: the log goes on in the next one.
    SegmentEnd,
}

impl Follower {
    /// A follower of the log in `dir` that delivers the records from sequence number
    /// `from_seq` on: from the archive when compaction archived them, from the first record
    /// the log and its archive still hold when compaction deleted them, from the next one
    /// appended when `from_seq` is past the end.
    ///
    /// Fails with [`Error::NotALog`] when `dir` has no segment directory, and with
    /// [`Error::Corrupt`] when the records asked for start in a hole of the archive (a
    /// segment missing, or damaged). A log whose first segment is not written yet is fine:
    /// polls find nothing until it is.
    pub fn new(dir: impl AsRef<Path>, from_seq: u64) -> Result<Follower> {
        let dir = dir.as_ref();
        let segments_dir = sfs::existing_segments_dir(dir)?;
        let mut follower = Follower {
            dir: dir.into(),
            segments_dir,
            from_seq,
            at: None,
            archive: None,
        };
        follower.at = follower.find_start()?;
        Ok(follower)
    }

    /// The sequence number of the next record [`Follower::poll`] will deliver.
    pub fn next_seq(&self) -> u64 {
        self.at
            .as_ref()
            .map_or(self.from_seq, |at| at.seq.max(self.from_seq))
    }

    /// The id of the segment file being read (`None` until one is found).
    pub fn segment_id(&self) -> Option<u64> {
        self.at.as_ref().map(|at| at.id)
    }

    /// Calls `each` for every record committed since the last poll (padding frames
    /// included, flagged), in order, until it returns false; the next poll resumes after the
    /// record that returned false. Returns how many records `each` was given.
    ///
    /// Read errors and damage (see the type's docs) are errors, after `each` was given the
    /// records before them; the follower stays after the last record it delivered, so a later
    /// poll retries from there.
    pub fn poll(&mut self, mut each: impl FnMut(&DumpRecord<'_>) -> bool) -> Result<u64> {
        let mut delivered = 0;
        loop {
            if self.at.is_none() {
                self.at = self.find_start()?;
            }
            let Some(at) = self.at.as_mut() else {
                return Ok(delivered);
            };
            match at.read_new(self.from_seq, &mut each, &mut delivered)? {
                FollowStep::Wait | FollowStep::Stopped => return Ok(delivered),
                FollowStep::SegmentEnd => match self.next_segment()? {
                    Some(next) => self.at = Some(next),
                    None => return Ok(delivered),
                },
            }
        }
    }

    /// Whether segment file `id` is not in the live log (as opposed to there, but blank or
    /// not yet complete).
    fn is_missing(&self, id: u64) -> bool {
        let path = sfs::segment_path(&self.segments_dir, id);
        std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    }

    /// Whether the live log has a segment file after segment `id`.
    fn goes_on_after(&self, id: u64) -> Result<bool> {
        Ok(self.segment_ids()?.iter().any(|&other| other > id))
    }

    /// Segment ids in the directory, in order.
    fn segment_ids(&self) -> Result<Vec<u64>> {
        segment_ids(&self.segments_dir)
    }

    /// The segment holding `from_seq`: the last one with a valid header starting at or before
    /// it, else the first one with a valid header; in the archive when the live log starts
    /// after `from_seq` and the archive holds records at or after it.
    fn find_start(&mut self) -> Result<Option<FollowPosition>> {
        let mut chosen = None;
        let mut first_id = None;
        for id in self.segment_ids()? {
            first_id.get_or_insert(id);
            let Some(pos) = open_followed(&self.segments_dir, id)? else {
                continue;
            };
            let Ok(pos) = pos else { continue };
            if pos.seq > self.from_seq && chosen.is_some() {
                break;
            }
            chosen = Some(pos);
        }
        if chosen.as_ref().is_some_and(|c| c.seq <= self.from_seq) {
            return Ok(chosen);
        }
        // The archive, up to the live log: its first segment file, whose first record is
        // known when that file is `chosen`, the first with a valid header.
        let listing = Listing::read(&self.dir, first_id)?;
        let first_path = first_id.map(|id| sfs::segment_path(&self.segments_dir, id));
        let live = chosen.as_ref().map(|c| LiveStart {
            id: first_id.unwrap_or(c.id),
            path: first_path.as_deref().unwrap_or(&c.path),
            base_seq: (first_id == Some(c.id)).then_some(c.seq),
        });
        let span = listing.span(self.from_seq, live);
        let start = match span.hole {
            // The records asked for start in a hole; one further on is met when reached.
            Some((0, error)) => return Err(error),
            _ => span.segments.first().map(open_archived).transpose()?,
        };
        self.archive = Some(listing);
        Ok(start.or(chosen))
    }

    /// Archived segment `id`, if the archive holds it (listed again if the last listing does
    /// not); its damage, if the file is damaged.
    fn find_archived(&mut self, id: u64) -> Result<Option<FollowPosition>> {
        let listed = match &self.archive {
            Some(listing) => listing.find(id)?.is_some(),
            None => false,
        };
        if !listed {
            self.archive = Some(Listing::read(&self.dir, None)?);
        }
        match &self.archive {
            Some(listing) => listing.find(id)?.map(open_archived).transpose(),
            None => Ok(None),
        }
    }

    /// The segment after the current one, once it has its header; an error when the log
    /// cannot go on there.
    fn next_segment(&mut self) -> Result<Option<FollowPosition>> {
        let Some(at) = self.at.as_ref() else {
            return Ok(None);
        };
        let (id, at_path, at_offset, at_seq) = (at.id + 1, at.path.clone(), at.offset, at.seq);
        let followed = open_followed(&self.segments_dir, id)?;
        let followed = match followed {
            // Not a live segment, yet the log goes on after it: compaction archived it (the
            // archived copy is complete before the live file goes), or it is lost. Not so a
            // blank file: the spare that a rollover is activating, whose header is written
            // after the next spare may already have been made.
            None if self.goes_on_after(id)? && self.is_missing(id) => {
                match self.find_archived(id)? {
                    Some(next) => Some(Ok(next)),
                    None => {
                        let kind = CorruptionKind::MissingSegment { segment_id: id };
                        return Err(Error::corrupt(&at_path, at_offset, kind));
                    }
                }
            }
            other => other,
        };
        match followed {
            // Not there yet: a rollover under way.
            None => Ok(None),
            // A header being written, unless a later segment shows it was never finished.
            Some(Err((path, kind))) if self.goes_on_after(id)? => {
                Err(Error::corrupt(path, 0, kind))
            }
            Some(Err(_)) => Ok(None),
            Some(Ok(next)) if next.seq != at_seq => {
                let kind = CorruptionKind::SeqDiscontinuity {
                    expected: at_seq,
                    found: next.seq,
                };
                Err(Error::corrupt(&next.path, 32, kind))
            }
            Some(Ok(next)) => Ok(Some(next)),
        }
    }
}

/// The ids of the segment files in segment directory `dir`, in order.
pub(crate) fn segment_ids(dir: &Path) -> Result<Vec<u64>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("read dir", dir, e))?;
    let mut ids = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read dir", dir, e))?;
        if let SegmentName::Segment(id) =
            sfs::parse_segment_name(&entry.file_name().to_string_lossy())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// A failed segment header: the file and what is wrong with it.
type BadHeader = (PathBuf, CorruptionKind);

/// Segment `id` positioned at its first frame. `None` when the file is missing, blank (a
/// spare not yet in use) or shorter than a header (not yet created in full); `Some(Err)`
/// when its header fails its checks.
fn open_followed(
    segments_dir: &Path,
    id: u64,
) -> Result<Option<std::result::Result<FollowPosition, BadHeader>>> {
    let path = sfs::segment_path(segments_dir, id);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    let capacity = file
        .metadata()
        .map_err(|e| Error::io("stat", &path, e))?
        .len();
    if capacity < SEGMENT_HEADER_LEN as u64 {
        return Ok(None);
    }
    let mut head = [0u8; SEGMENT_HEADER_LEN];
    sfs::read_at(&file, &path, 0, &mut head)?;
    let header = match SegmentHeader::decode(&head) {
        Ok(HeaderState::Valid(h)) => h,
        Ok(HeaderState::Blank) => return Ok(None),
        Err(kind) => return Ok(Some(Err((path, kind)))),
    };
    if header.capacity != capacity {
        let kind = CorruptionKind::Truncated {
            what: "segment file",
        };
        return Err(Error::corrupt(&path, capacity, kind));
    }
    Ok(Some(Ok(FollowPosition {
        id,
        path,
        body: Body::File(file),
        capacity,
        archived_end: None,
        offset: SEGMENT_HEADER_LEN as u64,
        seq: header.base_seq,
        suspect: None,
    })))
}

/// Archived segment `e` positioned at its first frame.
fn open_archived(e: &ArchivedSegment) -> Result<FollowPosition> {
    let (path, body, capacity) = archived::open_body(e)?;
    Ok(FollowPosition {
        id: e.id,
        path,
        body,
        capacity,
        archived_end: Some(e.end_seq()),
        offset: SEGMENT_HEADER_LEN as u64,
        seq: e.base_seq,
        suspect: None,
    })
}

impl FollowPosition {
    /// Delivers the committed frames after `offset` (those from `from_seq` on) and moves past
    /// them.
    fn read_new(
        &mut self,
        from_seq: u64,
        each: &mut impl FnMut(&DumpRecord<'_>) -> bool,
        delivered: &mut u64,
    ) -> Result<FollowStep> {
        let file = match &self.body {
            Body::File(file) => file,
            Body::Decompressed(bytes) => {
                let mut src: &[u8] = bytes;
                let at = (self.offset, self.seq);
                let (out, consumed, go_on) =
                    deliver(&mut src, self.id, at, from_seq, each, delivered);
                (self.offset, self.seq) = consumed;
                return self.archived_step(go_on, &out);
            }
        };
        // The common case of an idle poll: the next commit word is still zero.
        if self.archived_end.is_none()
            && self.offset + frame::COMMIT_WORD_LEN as u64 <= self.capacity
        {
            let mut word = [0u8; frame::COMMIT_WORD_LEN];
            sfs::read_at(file, &self.path, self.offset, &mut word)?;
            if word == [0; frame::COMMIT_WORD_LEN] {
                return Ok(FollowStep::Wait);
            }
        }
        let capacity = self.capacity;
        let mut src = scan::FileSource::with_chunk(file, &self.path, capacity, FOLLOW_CHUNK);
        let at = (self.offset, self.seq);
        let (out, consumed, go_on) = deliver(&mut src, self.id, at, from_seq, each, delivered);
        // What was delivered is behind us, whatever happens next: a retry must not repeat it.
        (self.offset, self.seq) = consumed;
        // A read error ends a scan like the end of the frames would: it must not pass for one.
        src.finish()?;
        if self.archived_end.is_some() {
            return self.archived_step(go_on, &out);
        }
        if !go_on {
            return Ok(FollowStep::Stopped);
        }
        let ScanStop::Bad(kind) = out.stop else {
            self.suspect = None;
            return Ok(match out.stop {
                ScanStop::EndMarker | ScanStop::Full => FollowStep::SegmentEnd,
                _ => FollowStep::Wait,
            });
        };
        let window = capacity.min(out.end_offset.saturating_add(FOLLOW_LOOKAHEAD));
        let mut ahead = scan::FileSource::with_chunk(file, &self.path, window, FOLLOW_CHUNK);
        let bad_frame_followed =
            scan::count_frames_after(&mut ahead, out.end_offset + 8, FOLLOW_LOOKAHEAD) > 0;
        ahead.finish()?;
        let mut head = [0u8; SEGMENT_HEADER_LEN];
        sfs::read_at(file, &self.path, 0, &mut head)?;
        let sealed = Seal::decode(&head).is_some_and(|s| s.fits(capacity));
        let seen_before = self.suspect == Some(out.end_offset);
        self.suspect = bad_frame_followed.then_some(out.end_offset);
        if sealed || (bad_frame_followed && seen_before) {
            return Err(Error::corrupt(&self.path, out.end_offset, kind));
        }
        Ok(FollowStep::Wait)
    }

    /// The end of a pass over an archived segment, which is complete: its end once every
    /// record up to its seal's count was read, else damage.
    fn archived_step(&self, go_on: bool, out: &ScanOutcome) -> Result<FollowStep> {
        if !go_on {
            return Ok(FollowStep::Stopped);
        }
        if let Some(end_seq) = self.archived_end {
            archived::check_complete(&self.path, end_seq, out)?;
        }
        Ok(FollowStep::SegmentEnd)
    }
}

/// Scans `src` from frame `at` (offset and sequence number), giving `each` the frames from
/// `from_seq` on (as records of segment `id`) until it returns false, and counting them in
/// `delivered`. Returns the outcome of the scan, the frame after the last one passed (given
/// to `each`, or before `from_seq`) and whether `each` wants more.
fn deliver<S: scan::Source>(
    src: &mut S,
    id: u64,
    at: (u64, u64),
    from_seq: u64,
    each: &mut impl FnMut(&DumpRecord<'_>) -> bool,
    delivered: &mut u64,
) -> (ScanOutcome, (u64, u64), bool) {
    let mut go_on = true;
    let mut consumed = at;
    let out = scan::scan_frames_from(src, at.0, at.1, |offset, f| {
        if !go_on {
            return;
        }
        if f.seq >= from_seq {
            go_on = each(&DumpRecord::of_frame(id, offset, f));
            *delivered += 1;
        }
        consumed = (offset + f.frame_len, f.seq + 1);
    });
    (out, consumed, go_on)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_locks_lines() {
        let dev = rustix::fs::makedev(8, 0x2d);
        let locks = "1: POSIX  ADVISORY  WRITE 7 08:2d:99 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 1234 08:2d:131073 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 1235 08:2d:42 0 EOF\n";
        assert!(flock_listed(locks, dev, 131_073));
        assert!(
            !flock_listed(locks, dev, 99),
            "a POSIX lock is not the log's"
        );
        assert!(!flock_listed(locks, dev, 42), "a waiter does not hold it");
        assert!(!flock_listed(locks, dev, 1_310_730));
        assert!(!flock_listed("", dev, 131_073));
    }
    use crate::format::frame::encode_record;
    use crate::{Durability, Log, Options};
    use std::os::unix::fs::FileExt;

    fn collect(f: &mut Follower) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let n = f
            .poll(|r| {
                out.push((r.seq, r.payload.to_vec()));
                true
            })
            .unwrap();
        assert_eq!(n as usize, out.len());
        out
    }

    fn payload(i: u64) -> Vec<u8> {
        format!("record {i:05} of the follower test").into_bytes()
    }

    #[test]
    fn follows_appends_across_rollovers() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options::default()
            .segment_size(4096)
            .durability(Durability::Buffered);
        let log = Log::open(dir.path(), opts).unwrap();
        let mut f = Follower::new(dir.path(), 0).unwrap();
        assert!(collect(&mut f).is_empty());
        let mut seen = Vec::new();
        let mut next = 0;
        for round in 0..20u64 {
            for _ in 0..round * 3 {
                log.append(&payload(next)).unwrap();
                next += 1;
            }
            seen.extend(collect(&mut f));
            assert_eq!(seen.len() as u64, next, "round {round}");
        }
        let expected: Vec<_> = (0..next).map(|i| (i, payload(i))).collect();
        assert_eq!(seen, expected);
        assert!(f.segment_id().unwrap() > 5, "{:?}", f.segment_id());
        assert_eq!(f.next_seq(), next);
        // A follower started later, from the middle, and one past the end.
        let mut mid = Follower::new(dir.path(), next / 2).unwrap();
        let got = collect(&mut mid);
        assert_eq!(got, expected[(next / 2) as usize..].to_vec());
        let mut ahead = Follower::new(dir.path(), next + 2).unwrap();
        assert!(collect(&mut ahead).is_empty());
        for _ in 0..4 {
            log.append(&payload(next)).unwrap();
            next += 1;
        }
        let got: Vec<u64> = collect(&mut ahead).into_iter().map(|(s, _)| s).collect();
        assert_eq!(got, vec![next - 2, next - 1]);
        log.close().unwrap();
    }

    #[test]
    fn a_poll_stopped_by_the_callback_resumes_after_the_last_record_taken() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), Options::default().segment_size(4096)).unwrap();
        for i in 0..100 {
            log.append(&payload(i)).unwrap();
        }
        let mut f = Follower::new(dir.path(), 0).unwrap();
        let mut seen = Vec::new();
        loop {
            let mut taken = 0;
            let n = f
                .poll(|r| {
                    seen.push(r.seq);
                    taken += 1;
                    taken < 7
                })
                .unwrap();
            if n == 0 {
                break;
            }
        }
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        log.close().unwrap();
    }

    #[test]
    fn a_bad_frame_at_the_tail_waits_until_it_is_rewritten_or_proven_damage() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), Options::default()).unwrap();
        for i in 0..5 {
            log.append(&payload(i)).unwrap();
        }
        log.close().unwrap();
        let path = sfs::segment_path(&dir.path().join(sfs::SEGMENTS_DIR), 0);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let len = file.metadata().unwrap().len();
        let end = scan::scan_frames(&mut scan::FileSource::new(&file, &path, len), 0, |_, _| {})
            .end_offset;
        let frame_at = |seq: u64| {
            let mut buf = vec![0u8; 256];
            let n = encode_record(&mut buf, seq, 1, &payload(seq)).unwrap();
            buf.truncate(n as usize);
            buf
        };
        let good = frame_at(5);
        let mut bad = good.clone();
        bad[30] ^= 1;
        file.write_all_at(&bad, end).unwrap();

        let mut f = Follower::new(dir.path(), 0).unwrap();
        assert_eq!(collect(&mut f).len(), 5);
        assert!(
            collect(&mut f).is_empty(),
            "a bad last frame is not an error"
        );
        file.write_all_at(&good, end).unwrap();
        assert_eq!(collect(&mut f), vec![(5, payload(5))]);

        // A bad frame with a valid one after it is damage, once seen twice.
        let end = end + good.len() as u64;
        let mut bad = frame_at(6);
        let next = frame_at(7);
        bad[30] ^= 1;
        file.write_all_at(&bad, end).unwrap();
        file.write_all_at(&next, end + bad.len() as u64).unwrap();
        assert!(collect(&mut f).is_empty());
        let err = f.poll(|_| true).unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { offset, .. } if offset == end),
            "{err}"
        );
    }

    #[test]
    fn a_blank_next_segment_is_waited_for_even_with_a_spare_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), Options::default().segment_size(4096)).unwrap();
        let mut next = 0;
        while log.stats().segments < 2 {
            log.append(&payload(next)).unwrap();
            next += 1;
        }
        log.append(&payload(next)).unwrap();
        next += 1;
        log.close().unwrap();
        // A rollover caught in the middle: segment 1 still blank, the spare after it made.
        let segments = dir.path().join(sfs::SEGMENTS_DIR);
        let (one, two) = (
            sfs::segment_path(&segments, 1),
            sfs::segment_path(&segments, 2),
        );
        let aside = dir.path().join("one");
        std::fs::rename(&one, &aside).unwrap();
        std::fs::write(&one, vec![0u8; 4096]).unwrap();
        std::fs::write(&two, vec![0u8; 4096]).unwrap();
        let mut f = Follower::new(dir.path(), 0).unwrap();
        let first = collect(&mut f);
        assert!(!first.is_empty());
        assert!(
            collect(&mut f).is_empty(),
            "a blank segment is not a missing one"
        );
        std::fs::rename(&aside, &one).unwrap();
        let rest = collect(&mut f);
        assert_eq!(first.len() + rest.len(), next as usize);
        assert_eq!(rest.last().map(|r| r.0), Some(next - 1));
    }

    #[test]
    fn a_directory_that_is_not_a_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Follower::new(dir.path(), 0),
            Err(Error::NotALog { .. })
        ));
        assert!(matches!(
            Follower::new(dir.path().join("missing"), 0),
            Err(Error::NotALog { .. })
        ));
    }
}
