//! The archive as the read-only inspection reads it: the segments compaction moved or
//! compressed into `archive/`, in sequence order before the live segments.
//!
//! Like the rest of [`crate::inspect`], this reads with `pread` into private buffers, takes
//! no lock and writes nothing: a moved segment is read like any sealed segment file, a
//! compressed one is decompressed into memory by the archive's own reader. Archived
//! segments are sealed and never written again, so they are read whole and checked against
//! their seals: any frame that fails its check is damage.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{CorruptionKind, Error, Result};
use crate::format::frame::Frame;
use crate::log::archive::{self, Archive, ArchivedSegment, DamagedArchiveFile};
use crate::log::scan::{self, ScanOutcome, ScanStop};

/// What a read from some sequence number finds in the archive: see [`Listing::span`].
pub(super) struct Span<'a> {
    /// The archived segments, in order.
    pub(super) segments: &'a [ArchivedSegment],
    /// The first hole in them, after how many of `segments`.
    pub(super) hole: Option<(usize, Error)>,
}

/// Where the live log starts: its first segment file's id, path and (when its header is
/// valid) first sequence number.
#[derive(Clone, Copy, Debug)]
pub(super) struct LiveStart<'a> {
    pub(super) id: u64,
    pub(super) path: &'a Path,
    pub(super) base_seq: Option<u64>,
}

/// The archive of a log, as far as it comes before the live log (archived copies of live
/// segments, left by an interrupted compaction, are not part of the log: opening it removes
/// them).
#[derive(Debug)]
pub(super) struct Listing {
    /// Archived segments by id.
    pub(super) segments: Vec<ArchivedSegment>,
    /// Archive files that failed their checks.
    pub(super) damaged: Vec<DamagedArchiveFile>,
}

impl Listing {
    /// Lists the archive of `dir`, up to the live segment `live_id` (everything when the live
    /// log has no segment).
    pub(super) fn read(dir: &Path, live_id: Option<u64>) -> Result<Listing> {
        let (mut segments, mut damaged) = Archive::new(dir).list()?;
        let before_live = |id: u64| live_id.is_none_or(|live| id < live);
        segments.retain(|e| before_live(e.id));
        damaged.retain(|d| file_id(&d.path).is_some_and(before_live));
        Ok(Listing { segments, damaged })
    }

    /// The archived segments a read from `from_seq` goes through, in order: the one holding
    /// `from_seq` (or the oldest, when the archive starts after it) and every one after it
    /// before the live log. None when `from_seq` is in the live log.
    ///
    /// They must follow one another and meet the live log: a segment missing in between, a
    /// damaged archive file there, or a gap in the sequence numbers is a hole, reported as an
    /// error naming the file after it (the damaged file itself, for damage), in
    /// [`Span::hole`] with the number of segments before it.
    pub(super) fn span(&self, from_seq: u64, live: Option<LiveStart<'_>>) -> Span<'_> {
        let segs = &self.segments;
        if live
            .and_then(|l| l.base_seq)
            .is_some_and(|base| from_seq >= base)
        {
            return Span {
                segments: &[],
                hole: None,
            };
        }
        let start = segs
            .iter()
            .position(|e| e.end_seq() > from_seq)
            .unwrap_or(segs.len());
        let segments = segs.get(start..).unwrap_or(&[]);
        // Each boundary from the one before `start` on: the segment before it (none at the
        // oldest) and the one after it (the live log's first, after the last).
        for i in start..=segs.len() {
            let next = match segs.get(i) {
                Some(e) => Some((e.id, Some(e.base_seq), e.path.as_path())),
                None => live.map(|l| (l.id, l.base_seq, l.path)),
            };
            let Some((next_id, next_base, next_path)) = next else {
                break;
            };
            // A boundary with no record asked for behind it cannot hide one.
            if next_base.is_some_and(|b| from_seq >= b) {
                continue;
            }
            let prev = i.checked_sub(1).and_then(|p| segs.get(p));
            if let Some(error) = self.hole_between(prev, next_id, next_base, next_path) {
                return Span {
                    segments,
                    hole: Some((i - start, error)),
                };
            }
        }
        Span {
            segments,
            hole: None,
        }
    }

    /// The hole between archived segment `prev` (none: the start of the archive) and the
    /// segment `next_id`, if there is one.
    fn hole_between(
        &self,
        prev: Option<&ArchivedSegment>,
        next_id: u64,
        next_base: Option<u64>,
        next_path: &Path,
    ) -> Option<Error> {
        let prev_id = prev.map(|p| p.id);
        let damaged = self.damaged.iter().find(|d| {
            file_id(&d.path).is_some_and(|id| prev_id.is_none_or(|p| id > p) && id < next_id)
        });
        if let Some(d) = damaged {
            return Some(damage_error(d));
        }
        // Before the oldest archived segment, the records are gone for good (deleted by an
        // earlier compaction), as a live log can start after record 0.
        let prev = prev?;
        let kind = if prev.id.checked_add(1) != Some(next_id) {
            CorruptionKind::MissingSegment {
                segment_id: prev.id.saturating_add(1),
            }
        } else {
            match next_base {
                Some(b) if b != prev.end_seq() => CorruptionKind::SeqDiscontinuity {
                    expected: prev.end_seq(),
                    found: b,
                },
                _ => return None,
            }
        };
        Some(Error::corrupt(next_path, 0, kind))
    }

    /// The archived segment `id`, if the archive holds it; its damage, if the file is
    /// damaged.
    pub(super) fn find(&self, id: u64) -> Result<Option<&ArchivedSegment>> {
        if let Some(d) = self.damaged.iter().find(|d| file_id(&d.path) == Some(id)) {
            return Err(damage_error(d));
        }
        Ok(self.segments.iter().find(|e| e.id == id))
    }
}

/// The error for a damaged archive file, as the archive's check found it.
fn damage_error(d: &DamagedArchiveFile) -> Error {
    let kind = d.kind.unwrap_or(CorruptionKind::Truncated {
        what: "archive file (unreadable)",
    });
    Error::corrupt(&d.path, d.offset, kind)
}

/// The segment id in the name of archive file `path`.
fn file_id(path: &Path) -> Option<u64> {
    path.file_name()?.to_str()?.get(..20)?.parse().ok()
}

/// Calls `on_frame(offset, frame)` for every frame of archived segment `e` (padding
/// included), in order; offsets are in the segment as it was live (as decompressed, for a
/// compressed one). Then checks that the frames are all the seal counts: a frame that fails
/// its check, or one missing, is an error naming the archive file.
pub(super) fn scan_segment(
    e: &ArchivedSegment,
    on_frame: impl FnMut(u64, &Frame<'_>),
) -> Result<()> {
    let out = if e.compressed {
        let bytes = archive::read_compressed(e)?;
        let mut src: &[u8] = &bytes;
        scan::scan_frames(&mut src, e.base_seq, on_frame)
    } else {
        let file = File::open(&e.path).map_err(|err| Error::io("open archive", &e.path, err))?;
        let mut src = scan::FileSource::new(&file, &e.path, e.capacity);
        let out = scan::scan_frames(&mut src, e.base_seq, on_frame);
        src.finish()?;
        out
    };
    check_complete(&e.path, e.end_seq(), &out)
}

/// The end of a scan of a whole archived segment (file `path`, records before `end_seq`):
/// an error unless it ended cleanly after the last record.
pub(super) fn check_complete(path: &Path, end_seq: u64, out: &ScanOutcome) -> Result<()> {
    if let ScanStop::Bad(kind) = out.stop {
        return Err(Error::corrupt(path, out.end_offset, kind));
    }
    if out.next_seq != end_seq {
        let kind = CorruptionKind::UnexpectedSeq {
            expected: end_seq,
            found: out.next_seq,
        };
        return Err(Error::corrupt(path, out.end_offset, kind));
    }
    Ok(())
}

/// An archived segment's bytes as a follower reads them: a moved segment's file, or a
/// compressed one's frames decompressed.
pub(super) enum Body {
    /// A segment file (live, or moved into the archive), read with `pread`.
    File(File),
    /// A compressed archived segment, decompressed: its bytes from offset 0.
    Decompressed(Vec<u8>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::File(file) => f.debug_tuple("File").field(file).finish(),
            Body::Decompressed(bytes) => write!(f, "Decompressed({} bytes)", bytes.len()),
        }
    }
}

/// Opens archived segment `e` for a follower: its path, body and capacity.
pub(super) fn open_body(e: &ArchivedSegment) -> Result<(PathBuf, Body, u64)> {
    if e.compressed {
        let bytes = archive::read_compressed(e)?;
        let len = bytes.len() as u64;
        return Ok((e.path.clone(), Body::Decompressed(bytes), len));
    }
    let file = File::open(&e.path).map_err(|err| Error::io("open archive", &e.path, err))?;
    Ok((e.path.clone(), Body::File(file), e.capacity))
}
