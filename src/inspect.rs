//! Read-only inspection of a log directory, for tools: statistics, verification and dumps.
//!
//! Everything here reads segment files with `pread` into private buffers: it takes no lock
//! and writes nothing, so it is safe to run against a log another process has open (it then
//! sees a recent, possibly incomplete, state of the unsealed tail). The only files it maps
//! are checkpoints, read-only: they are never written after they get their name.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{CorruptionKind, Error, Result};
use crate::format::frame::FrameKind;
use crate::format::lock_file;
use crate::format::segment_header::{HeaderState, SEGMENT_HEADER_LEN, Seal, SegmentHeader};
use crate::log::archive::{Archive, ArchivedSegment};
use crate::log::checkpoints::{self, CheckpointInfo};
use crate::log::consumers;
use crate::log::scan::{self, ScanStop};
use crate::storage::fs::{self as sfs, SegmentName};

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
    /// First sequence number in the log.
    pub first_seq: u64,
    /// Sequence number after the last valid frame.
    pub next_seq: u64,
    /// Total frames.
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
}

/// Index density used while verifying archived segments (the index is thrown away).
const DEEP_INDEX_INTERVAL: u64 = 1 << 16;

/// Reads a log directory. With `deep`, sealed segments and archived segments are scanned and
/// checked too (every CRC of the log and its archive); without, they are summarised from
/// their seals.
pub fn inspect(dir: impl AsRef<Path>, deep: bool) -> Result<Inspection> {
    let dir = dir.as_ref();
    let segments_dir = dir.join(sfs::SEGMENTS_DIR);
    if !segments_dir.is_dir() {
        let reason = if dir.is_dir() {
            "no segments/ directory"
        } else {
            "no such directory"
        };
        return Err(Error::NotALog {
            path: dir.into(),
            reason: reason.into(),
        });
    }
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

fn lock_owner(dir: &Path) -> Option<(u32, bool)> {
    let file = File::open(dir.join(sfs::LOCK_FILE)).ok()?;
    let mut buf = [0u8; lock_file::LOCK_FILE_LEN];
    let owner = sfs::read_at(&file, dir, 0, &mut buf)
        .ok()
        .and_then(|()| lock_file::decode(&buf).ok())?;
    let held = matches!(
        file.try_lock_shared(),
        Err(std::fs::TryLockError::WouldBlock)
    );
    Some((owner.pid, held))
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
    /// Segment id.
    pub segment_id: u64,
    /// Offset of the frame in its file.
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

/// Calls `each` for every valid frame with `seq >= from_seq` and `timestamp >= since_ns`, in
/// order, until it returns false. Stops quietly at the end of the valid frames; damage is
/// returned as an error naming the file and offset.
pub fn dump(
    dir: impl AsRef<Path>,
    from_seq: u64,
    since_ns: u64,
    mut each: impl FnMut(&DumpRecord<'_>) -> bool,
) -> Result<()> {
    let dir = dir.as_ref();
    let found = inspect(dir, false)?;
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
            go_on = each(&DumpRecord {
                segment_id: seg.id,
                offset,
                seq: f.seq,
                timestamp_ns: f.timestamp_ns,
                padding: f.kind == FrameKind::Padding,
                payload: f.payload,
            });
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
