//! Opening a log directory: what is trusted, what is scanned, what is cut off.
//!
//! Recovery runs once, with the directory lock held, before any append. Its rules:
//!
//! | found | trusted as | action |
//! |-------|------------|--------|
//! | `*.seg.tmp` | a segment whose preparation never finished | removed |
//! | blank header (or an empty or all-zero file shorter than a header) after the last valid segment | a spare that never became active | removed (re-made in the background) |
//! | torn header after the last valid segment | a segment activated but never flushed: it cannot hold an acknowledged record | removed, reported |
//! | blank or torn header followed only by unsealed segments (in segment 0, or after the first segment) | a power cut during a rollover: the header never reached the disk, later pages did; nothing from it on was acknowledged | the log ends before it: it and every later segment removed, their frames reported dropped |
//! | bad header before a valid segment | damage to data that may be acknowledged | error, with file and offset |
//! | header of a newer format version | | `UnsupportedVersion` error |
//! | a gap in segment ids | a missing segment | `Corrupt(MissingSegment)` error |
//! | valid seal | every frame durable when it was written | trusted without a scan |
//! | no valid seal | the unsealed tail | scanned with `pread` (a media error is an `EIO`, not a SIGBUS) |
//! | scanned segment ending in an end marker that meets the next one | complete | sealed now |
//! | first bad frame, or a zero commit word followed by more bytes | the end of the log | the rest is reported and zeroed (never truncated: files stay their full length), later segments removed |
//!
//! Why the first bad frame in the unsealed tail is the end and not an error: the flusher makes
//! frames durable strictly in log order and writes a segment's seal only after all of its
//! frames are durable, and records are acknowledged only below that point. So a bad frame in
//! an unsealed segment is a torn or never-finished write past what was acknowledged, or
//! damage that this format cannot tell apart from one (the report says what was dropped).
//! Damage inside a sealed segment is never cut off: a reader or `verify` reports it.
//!
//! Everything recovery keeps is made durable (`fdatasync`) before the log accepts appends, so
//! a record acknowledged later can never sit after a hole left by pages of the previous run
//! that had not yet reached the disk. Recovery is idempotent: a crash during it leaves a
//! directory that recovers to the same log.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::scan::{self, ScanStop};
use super::segment::{Completion, IndexEntry, Segment, SegmentIndex};
use crate::error::{CorruptionKind, Error, Result};
use crate::format::segment_header::{HeaderState, SEGMENT_HEADER_LEN, Seal, SegmentHeader};
use crate::storage::fs::{self as sfs, SegmentName};
use crate::storage::mmap::Mapping;

/// What opening a log found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Segments in the log after recovery.
    pub segments: usize,
    /// Segments trusted through their seal, without a scan.
    pub sealed_segments_trusted: usize,
    /// Segments scanned frame by frame.
    pub segments_scanned: usize,
    /// Bytes scanned.
    pub bytes_scanned: u64,
    /// The sequence number the next append gets.
    pub next_seq: u64,
    /// Where the log was cut, if it was.
    pub truncation: Option<Truncation>,
    /// Files removed because they were damaged or dropped: unfinished (`.tmp`) segments,
    /// segments with a torn header, segments after the end of the log.
    pub removed_files: Vec<PathBuf>,
    /// Pre-allocated spare segments that never became active, removed (routine after any
    /// shutdown; they are made again in the background).
    pub removed_spares: Vec<PathBuf>,
    /// Unsealed segments found shorter than their header says, re-extended to full length
    /// (the cut-off part is then treated as a torn tail).
    pub extended_files: Vec<PathBuf>,
    /// Temporary files of interrupted writes, removed: unfinished checkpoints, consumer
    /// positions and segment indexes. Routine, like spares: what they were replacing is
    /// intact, and nothing in them was acknowledged.
    pub removed_temporary: Vec<PathBuf>,
    /// The log was created by this open.
    pub created: bool,
}

/// Where recovery ended the log and what it dropped after that point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The segment file holding the end of the log.
    pub path: PathBuf,
    /// Offset in that file where the log ends now.
    pub offset: u64,
    /// Why it ends there: the check the next frame failed, or `None` for an unwritten frame
    /// followed by written bytes (a reservation that was never published).
    pub reason: Option<CorruptionKind>,
    /// Frames that looked valid after the cut (best effort), in every dropped file together.
    pub records_dropped: u64,
    /// Non-zero bytes cleared after the cut, in every dropped file together.
    pub bytes_dropped: u64,
}

impl RecoveryReport {
    /// True when nothing had to be cut off, removed (spares aside) or repaired.
    pub fn is_clean(&self) -> bool {
        self.truncation.is_none() && self.removed_files.is_empty() && self.extended_files.is_empty()
    }
}

/// Whether recovery repairs what it finds, or only reports what it would do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Opening the log, with the directory lock held: everything the report names is done.
    Repair,
    /// A dry run (see [`assess`]): files are opened read-only and nothing is written,
    /// removed, synced or mapped; the report names what [`Mode::Repair`] would do.
    Assess,
}

/// A segment file found at open.
struct Found {
    id: u64,
    path: PathBuf,
    file: File,
    /// The length recovery works with: the header's capacity once a short tail is extended.
    len: u64,
    /// The length of the file on disk (less than `len` for a short tail that an assessment
    /// only pretends to extend: the rest reads as zeros, as it would after `fallocate`).
    disk_len: u64,
    header: std::result::Result<HeaderState, CorruptionKind>,
    seal: Option<Seal>,
}

/// The recovered log, ready to be opened.
pub(crate) struct Recovered {
    pub(crate) segments: Vec<Arc<Segment>>,
    /// The tail segment is complete: the next segment must be created before appending.
    pub(crate) tail_complete: bool,
    pub(crate) max_ts: u64,
    pub(crate) report: RecoveryReport,
}

/// Checks that `dir` is a log (or can become one) and creates what is missing.
pub(crate) fn prepare_dir(dir: &Path) -> Result<bool> {
    let segments = dir.join(sfs::SEGMENTS_DIR);
    match std::fs::metadata(dir) {
        Ok(md) if !md.is_dir() => {
            return Err(Error::NotALog {
                path: dir.into(),
                reason: "not a directory".into(),
            });
        }
        Ok(_) => {
            if segments.is_dir() {
                return Ok(false);
            }
            let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io("read dir", dir, e))?;
            let foreign = entries.any(|e| e.is_ok_and(|e| e.file_name() != sfs::LOCK_FILE));
            if foreign {
                return Err(Error::NotALog {
                    path: dir.into(),
                    reason: "directory is not empty and has no segments/ directory".into(),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("stat", dir, e)),
    }
    sfs::create_dir_all(&segments).map_err(|e| Error::io("create dir", &segments, e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sfs::sync_dir(parent)?;
    }
    sfs::sync_dir(dir)?;
    Ok(true)
}

/// Recovers the segments in `segments_dir`. The caller holds the directory lock.
pub(crate) fn recover(segments_dir: &Path, index_interval: u64) -> Result<Recovered> {
    run(segments_dir, index_interval, Mode::Repair)
}

/// What [`recover`] would do to `segments_dir`, and the segments it would leave, without
/// doing any of it: reads only (`pread`), takes no lock, writes nothing. It fails where
/// recovery would, with the same error. On a log another process has open, it describes
/// what recovery would do if that process stopped now.
pub(crate) fn assess(segments_dir: &Path) -> Result<Recovered> {
    // The index density only shapes the in-memory index, which an assessment throws away.
    run(segments_dir, 1 << 16, Mode::Assess)
}

fn run(segments_dir: &Path, index_interval: u64, mode: Mode) -> Result<Recovered> {
    let mut report = RecoveryReport::default();
    let (mut found, indexes) = list_segments(segments_dir, &mut report, mode)?;
    drop_trailing_non_segments(&mut found, &mut report, mode)?;
    let unflushed = split_off_unflushed(&mut found);
    extend_short_tail(&mut found, &mut report, mode)?;
    check_identities(&found)?;

    let first_unsealed = found
        .iter()
        .position(|f| f.seal.is_none())
        .unwrap_or(found.len());
    let mut segments = Vec::with_capacity(found.len());
    let mut max_ts = 0;
    let mut found = found.into_iter().enumerate().peekable();
    while let Some((i, f)) = found.next() {
        let Ok(HeaderState::Valid(header)) = f.header else {
            continue;
        };
        let next_base = found.peek().and_then(|(_, n)| match n.header {
            Ok(HeaderState::Valid(h)) => Some(h.base_seq),
            _ => None,
        });
        if i < first_unsealed {
            let seal = f.seal.unwrap_or_default();
            if let Some(nb) = next_base
                && header.base_seq + seal.record_count != nb
            {
                let kind = CorruptionKind::SeqDiscontinuity {
                    expected: header.base_seq + seal.record_count,
                    found: nb,
                };
                return Err(Error::corrupt(&f.path, 0, kind));
            }
            max_ts = max_ts.max(seal.max_ts);
            report.sealed_segments_trusted += 1;
            segments.push(Arc::new(Segment::from_seal(header, seal, f.path, None)));
            continue;
        }
        let scanned = scan_segment(&f, header, index_interval, next_base, &mut report, mode)?;
        max_ts = max_ts.max(scanned.max_ts);
        let ends_log = scanned.ends_log;
        segments.push(Arc::new(scanned.segment));
        if ends_log {
            for (_, dropped) in found.by_ref() {
                drop_segment_file(&dropped, &mut report, mode)?;
            }
        }
    }
    drop_unflushed(unflushed, &mut report, mode)?;
    if mode == Mode::Repair {
        remove_stale_indexes(&segments, indexes);
        // Removals, and the names of kept segments that the previous owner may never have
        // synced, become durable before anything new is acknowledged.
        sfs::sync_dir(segments_dir)?;
    }
    let tail_complete = segments.last().is_some_and(|s| s.completion().is_some());
    report.segments = segments.len();
    report.next_seq = segments
        .last()
        .map_or(0, |s| s.base_seq + s.tail.load().count);
    Ok(Recovered {
        segments,
        tail_complete,
        max_ts,
        report,
    })
}

/// Index files found in the segment directory: segment id and path.
type IndexFiles = Vec<(u64, PathBuf)>;

/// The segment files in id order, and the index files found beside them.
fn list_segments(
    segments_dir: &Path,
    report: &mut RecoveryReport,
    mode: Mode,
) -> Result<(Vec<Found>, IndexFiles)> {
    let rd = std::fs::read_dir(segments_dir).map_err(|e| Error::io("read dir", segments_dir, e))?;
    let mut found = Vec::new();
    let mut indexes = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read dir", segments_dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        match sfs::parse_segment_name(&name.to_string_lossy()) {
            SegmentName::Temporary => {
                if mode == Mode::Repair {
                    sfs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                }
                report.removed_files.push(path);
            }
            SegmentName::IndexTemporary => {
                if mode == Mode::Repair {
                    let _ = sfs::remove_file(&path);
                }
                report.removed_temporary.push(path);
            }
            SegmentName::Segment(id) => found.push(read_found(id, path, mode)?),
            SegmentName::Index(id) => indexes.push((id, path)),
            SegmentName::Other => {}
        }
    }
    found.sort_by_key(|f| f.id);
    Ok((found, indexes))
}

/// Index files are derived data: the one of a segment that recovery dropped (or that is not
/// sealed) must not outlive it. Failing to remove one is harmless: it names the segment's
/// creation time, so it can never be taken for a later segment's index.
fn remove_stale_indexes(segments: &[Arc<Segment>], indexes: IndexFiles) {
    for (id, path) in indexes {
        let kept = segments.iter().any(|s| s.id == id && s.is_sealed());
        if !kept {
            let _ = sfs::remove_file(path);
        }
    }
}

fn read_found(id: u64, path: PathBuf, mode: Mode) -> Result<Found> {
    let file = OpenOptions::new()
        .read(true)
        .write(mode == Mode::Repair)
        .open(&path)
        .map_err(|e| Error::io("open segment", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", &path, e))?
        .len();
    let mut buf = [0u8; SEGMENT_HEADER_LEN];
    let (header, seal) = if len < SEGMENT_HEADER_LEN as u64 {
        // A crash can leave a new segment's name on disk without its length (the name was
        // made durable, the allocation not yet): an empty or all-zero file is a blank
        // spare like any other. Anything else this short is not a segment of ours.
        let short = &mut buf[..len as usize];
        sfs::read_at(&file, &path, 0, short)?;
        let header = if short.iter().all(|&b| b == 0) {
            Ok(HeaderState::Blank)
        } else {
            Err(CorruptionKind::Truncated {
                what: "segment header",
            })
        };
        (header, None)
    } else {
        sfs::read_at(&file, &path, 0, &mut buf)?;
        (
            SegmentHeader::decode(&buf),
            Seal::decode(&buf).filter(|s| s.fits(len)),
        )
    };
    if let Err(CorruptionKind::UnsupportedVersion { found }) = header {
        return Err(Error::corrupt(
            &path,
            8,
            CorruptionKind::UnsupportedVersion { found },
        ));
    }
    Ok(Found {
        id,
        path,
        file,
        len,
        disk_len: len,
        header,
        seal,
    })
}

/// Removes blank spares and torn, never-flushed headers after the last valid segment.
fn drop_trailing_non_segments(
    found: &mut Vec<Found>,
    report: &mut RecoveryReport,
    mode: Mode,
) -> Result<()> {
    while let Some(last) = found.last() {
        // Only a blank spare or a torn header of our own (right magic, failed check) is
        // removed; a file that is not ours (wrong magic, wrong size) is left for
        // `check_identities` to report, and so is the first live segment of a compacted log
        // (see `split_off_unflushed`).
        if !never_flushed(last) || (found.len() == 1 && last.id != 0) {
            break;
        }
        if let Some(f) = found.pop() {
            if mode == Mode::Repair {
                sfs::remove_file(&f.path).map_err(|e| Error::io("remove", &f.path, e))?;
            }
            if matches!(f.header, Ok(HeaderState::Blank)) {
                report.removed_spares.push(f.path);
            } else {
                report.removed_files.push(f.path);
            }
        }
    }
    Ok(())
}

/// A blank spare, or a header of our own (right magic) that failed its check: a segment
/// whose header never reached the disk.
fn never_flushed(f: &Found) -> bool {
    matches!(
        f.header,
        Ok(HeaderState::Blank)
            | Err(CorruptionKind::HeaderChecksum { .. } | CorruptionKind::BadHeaderField { .. })
    )
}

/// Splits off the segments after the end of the log that a power cut in the middle of a
/// rollover leaves: a segment whose header never reached the disk (blank or torn), followed
/// by later segments whose headers the kernel happened to write back. The flusher makes
/// segments durable strictly in order, header first, and seals each before any frame of
/// the next is acknowledged; so when segment N's header is not on disk, nothing from N on
/// was acknowledged, and every later segment is unsealed. A seal after it, or a file that is
/// not ours, is damage instead: then nothing is split off and `check_identities` reports it.
///
/// The first live segment is never split off unless it is segment 0: compaction makes the
/// header of the segment that becomes first durable before it removes the ones before it,
/// so after compaction a first segment without a header is damage, and the log's sequence
/// numbers could not be recovered without it.
fn split_off_unflushed(found: &mut Vec<Found>) -> Vec<Found> {
    let Some(first) = found.iter().position(never_flushed) else {
        return Vec::new();
    };
    if first == 0 && found[0].id != 0 {
        return Vec::new();
    }
    let droppable = found[first..].iter().all(|f| {
        f.seal.is_none() && (never_flushed(f) || matches!(f.header, Ok(HeaderState::Valid(_))))
    });
    if !droppable {
        return Vec::new();
    }
    found.split_off(first)
}

/// Removes what [`split_off_unflushed`] split off. Segments with a header of their own may
/// hold frames written back without a sync: the log is reported cut where the first of them
/// begins, and their frames counted as dropped.
fn drop_unflushed(unflushed: Vec<Found>, report: &mut RecoveryReport, mode: Mode) -> Result<()> {
    let Some(first) = unflushed.first() else {
        return Ok(());
    };
    if report.truncation.is_none() {
        report.truncation = Some(Truncation {
            path: first.path.clone(),
            offset: 0,
            reason: first.header.as_ref().err().cloned(),
            records_dropped: 0,
            bytes_dropped: 0,
        });
    }
    // Last first: a crash in between leaves a run that recovers the same way.
    for f in unflushed.iter().rev() {
        if matches!(f.header, Ok(HeaderState::Valid(_))) {
            drop_segment_file(f, report, mode)?;
        } else {
            if mode == Mode::Repair {
                sfs::remove_file(&f.path).map_err(|e| Error::io("remove", &f.path, e))?;
            }
            report.removed_files.push(f.path.clone());
        }
    }
    Ok(())
}

/// An unsealed last segment shorter than its capacity (cut by a copy or a tool) is made
/// whole again with `fallocate`, so it can be mapped without SIGBUS; the cut-off frames then
/// read as a torn tail. A short sealed segment stays an error (`check_identities`).
fn extend_short_tail(found: &mut [Found], report: &mut RecoveryReport, mode: Mode) -> Result<()> {
    let Some(last) = found.last_mut() else {
        return Ok(());
    };
    let Ok(HeaderState::Valid(h)) = last.header else {
        return Ok(());
    };
    if last.seal.is_some() || last.len >= h.capacity || h.capacity > crate::SEGMENT_SIZE_MAX {
        return Ok(());
    }
    if mode == Mode::Repair {
        rustix::fs::fallocate(
            &last.file,
            rustix::fs::FallocateFlags::empty(),
            0,
            h.capacity,
        )
        .map_err(|e| Error::io("fallocate", &last.path, e.into()))?;
        sfs::sync_file(&last.file, &last.path)?;
        last.disk_len = h.capacity;
    }
    last.len = h.capacity;
    report.extended_files.push(last.path.clone());
    Ok(())
}

/// Headers must be valid, match their file, and have consecutive ids.
fn check_identities(found: &[Found]) -> Result<()> {
    let mut prev: Option<u64> = None;
    for f in found {
        let h = match f.header {
            Ok(HeaderState::Valid(h)) => h,
            Ok(HeaderState::Blank) => {
                let kind = CorruptionKind::BadHeaderField {
                    field: "magic (blank header)",
                    value: 0,
                };
                return Err(Error::corrupt(&f.path, 0, kind));
            }
            Err(kind) => return Err(Error::corrupt(&f.path, 0, kind)),
        };
        if h.segment_id != f.id {
            let kind = CorruptionKind::BadHeaderField {
                field: "segment_id",
                value: h.segment_id,
            };
            return Err(Error::corrupt(&f.path, 16, kind));
        }
        if h.capacity != f.len || h.capacity < SEGMENT_HEADER_LEN as u64 {
            let kind = CorruptionKind::Truncated {
                what: "segment file",
            };
            return Err(Error::corrupt(&f.path, f.len, kind));
        }
        if let Some(p) = prev
            && f.id != p + 1
        {
            let kind = CorruptionKind::MissingSegment { segment_id: p + 1 };
            return Err(Error::corrupt(&f.path, 0, kind));
        }
        prev = Some(f.id);
    }
    Ok(())
}

struct Scanned {
    segment: Segment,
    ends_log: bool,
    max_ts: u64,
}

/// Scans an unsealed segment; seals it if complete, cuts the log in it otherwise.
fn scan_segment(
    f: &Found,
    header: SegmentHeader,
    index_interval: u64,
    next_base: Option<u64>,
    report: &mut RecoveryReport,
    mode: Mode,
) -> Result<Scanned> {
    let mut src = ZeroExtended {
        file: scan::FileSource::new(&f.file, &f.path, f.disk_len.min(f.len)),
        disk_len: f.disk_len.min(f.len),
        len: f.len,
        buf: Vec::new(),
    };
    report.segments_scanned += 1;
    report.bytes_scanned += f.len;
    let mut index = SegmentIndex::empty(SEGMENT_HEADER_LEN as u64, header.base_seq);
    let out = scan::scan_frames(&mut src, header.base_seq, |offset, frame| {
        if (frame.seq - header.base_seq).is_multiple_of(index_interval) {
            let max_ts_before = index.max_ts;
            index.entries.push(IndexEntry {
                seq: frame.seq,
                offset,
                max_ts_before,
            });
        }
        if index.first_ts == 0 {
            index.first_ts = frame.timestamp_ns;
        }
        index.max_ts = index.max_ts.max(frame.timestamp_ns);
    });
    index.scanned_offset = out.end_offset;
    index.scanned_next_seq = out.next_seq;
    let at_end = matches!(out.stop, ScanStop::EndMarker | ScanStop::Full);
    let complete = at_end.then_some(Completion {
        record_count: out.next_seq - header.base_seq,
        end_offset: out.end_offset,
    });
    // A complete segment must meet the next one exactly; anything else ends the log here.
    let meets_next = next_base.is_none_or(|nb| complete.is_some() && out.next_seq == nb);
    let keep_end = if at_end {
        (out.end_offset + 8).min(f.len)
    } else {
        out.end_offset
    };
    let extent = scan::nonzero_extent(&mut src, keep_end);
    let dropped = if extent > keep_end || !meets_next {
        scan::count_frames_after(&mut src, keep_end, f.len.saturating_mul(4))
    } else {
        0
    };
    // A read error must not pass for the end of the frames.
    src.finish()?;
    // Bytes after an end marker are cleared but do not end the log; anything else does.
    let ends_log = !meets_next || (!at_end && extent > keep_end);
    if extent > keep_end || !meets_next {
        let reason = match out.stop {
            ScanStop::Bad(kind) => Some(kind),
            _ => None,
        };
        report.truncation = Some(Truncation {
            path: f.path.clone(),
            offset: keep_end,
            reason,
            records_dropped: dropped,
            bytes_dropped: extent - keep_end,
        });
        if mode == Mode::Repair {
            zero_range(&f.file, &f.path, keep_end, extent)?;
        }
    }
    if mode == Mode::Repair {
        // `fsync`, not `fdatasync`: the previous owner may have died before syncing the
        // segment's allocation, which new acknowledgements in it will rely on.
        sfs::sync_file(&f.file, &f.path)?;
    }

    let mut sealed = false;
    if let Some(c) = complete.filter(|_| meets_next && next_base.is_some()) {
        if mode == Mode::Repair {
            write_seal(&f.file, &f.path, c, out.first_ts, out.max_ts)?;
        }
        sealed = true;
    }
    let writable_tail = !sealed && (ends_log || next_base.is_none());
    let map = if writable_tail && mode == Mode::Repair {
        sfs::ensure_allocated(&f.file, &f.path, f.len)?;
        Some(Mapping::map(&f.file, f.len, true, false).map_err(|e| Error::io("mmap", &f.path, e))?)
    } else {
        None
    };
    let segment = Segment::recovered(
        header,
        f.path.clone(),
        map,
        out.next_seq,
        out.end_offset,
        complete,
        sealed,
        index,
    );
    if sealed {
        segment.mark_sealed(out.max_ts);
        if mode == Mode::Repair {
            segment.save_index();
        }
    }
    Ok(Scanned {
        segment,
        ends_log: ends_log && next_base.is_some(),
        max_ts: out.max_ts,
    })
}

/// Writes the seal of a complete segment whose frames are durable, and syncs it.
pub(crate) fn write_seal(
    file: &File,
    path: &Path,
    c: Completion,
    first_ts: u64,
    max_ts: u64,
) -> Result<()> {
    let seal = Seal {
        record_count: c.record_count,
        end_offset: c.end_offset,
        first_ts,
        max_ts,
    };
    sfs::write_at(file, path, 64, &seal.encode())?;
    sfs::sync_file_data(file, path)
}

fn zero_range(file: &File, path: &Path, from: u64, to: u64) -> Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        sfs::write_at(file, path, at, &zeros[..n])?;
        at += n as u64;
    }
    Ok(())
}

fn drop_segment_file(f: &Found, report: &mut RecoveryReport, mode: Mode) -> Result<()> {
    if let Some(t) = report.truncation.as_mut() {
        let mut src = scan::FileSource::new(&f.file, &f.path, f.len);
        let start = SEGMENT_HEADER_LEN as u64;
        t.bytes_dropped += scan::nonzero_extent(&mut src, start) - start;
        t.records_dropped += scan::count_frames_after(&mut src, start, f.len.saturating_mul(4));
    }
    if mode == Mode::Repair {
        sfs::remove_file(&f.path).map_err(|e| Error::io("remove", &f.path, e))?;
    }
    report.removed_files.push(f.path.clone());
    Ok(())
}

/// A segment file read by recovery. An assessment does not extend a short tail the way a
/// repair does (`extend_short_tail`), so the bytes past the end of the file read as the
/// zeros that `fallocate` would add; everything else comes from the file.
struct ZeroExtended<'a> {
    file: scan::FileSource<'a>,
    /// Where the file ends (`file` covers exactly this much).
    disk_len: u64,
    /// The length recovery works with.
    len: u64,
    /// Bytes handed out for a range that runs past `disk_len`.
    buf: Vec<u8>,
}

impl ZeroExtended<'_> {
    /// The first read error, as [`scan::FileSource::finish`].
    fn finish(self) -> Result<()> {
        self.file.finish()
    }
}

impl scan::Source for ZeroExtended<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn get(&mut self, offset: u64, len: u64) -> Option<&[u8]> {
        let end = offset.checked_add(len).filter(|&e| e <= self.len)?;
        if end <= self.disk_len {
            return self.file.get(offset, len);
        }
        self.buf.clear();
        self.buf.resize(usize::try_from(len).ok()?, 0);
        if offset < self.disk_len {
            let have = self.disk_len - offset;
            let part = self.file.get(offset, have)?;
            self.buf[..part.len()].copy_from_slice(part);
        }
        Some(&self.buf)
    }
}
