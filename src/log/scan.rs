//! Scanning the frames of a segment file: used by recovery and by the read-only inspection
//! tools. Reads go through a [`Source`]: a byte slice (tests, fuzzing) or a [`FileSource`]
//! that reads the file with `pread` through one reused buffer, so a media error is an `EIO`
//! (never a SIGBUS) and scanning a segment costs neither a mapping nor a buffer its size.
//! Never panics, whatever the bytes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{CorruptionKind, Error, Result};
use crate::format::frame::{self, Frame, Word};
use crate::format::segment_header::SEGMENT_HEADER_LEN;

/// Why a scan stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanStop {
    /// A zero commit word: the clean end of the written frames.
    Unwritten,
    /// An end-of-segment marker.
    EndMarker,
    /// The frames fill the segment exactly.
    Full,
    /// A frame failed a check.
    Bad(CorruptionKind),
}

/// The outcome of a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Where the valid frames end (the offset of the stop).
    pub end_offset: u64,
    /// The sequence number after the last valid frame.
    pub next_seq: u64,
    /// Why the scan stopped.
    pub stop: ScanStop,
    /// Timestamp of the first valid frame (0 if none).
    pub first_ts: u64,
    /// Largest timestamp of the valid frames (0 if none).
    pub max_ts: u64,
}

/// Where a scan reads a segment's bytes from.
pub trait Source {
    /// Length of the segment file.
    fn len(&self) -> u64;
    /// The bytes `offset..offset + len`, or `None` when they are not all inside the file (or,
    /// for a file, could not be read: see [`FileSource::finish`]).
    fn get(&mut self, offset: u64, len: u64) -> Option<&[u8]>;
}

impl Source for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn get(&mut self, offset: u64, len: u64) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        <[u8]>::get(self, start..end)
    }
}

/// A segment file read with `pread` through one buffer, refilled as the scan moves on.
pub struct FileSource<'a> {
    file: &'a File,
    path: &'a Path,
    len: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    start: u64,
    filled: usize,
    /// Bytes read per `pread` (more when a single frame is larger).
    chunk: usize,
    error: Option<Error>,
}

impl<'a> FileSource<'a> {
    /// Bytes read per `pread` (more when a single frame is larger).
    pub const CHUNK: usize = 1 << 20;

    /// A source over the first `len` bytes of `file`.
    pub fn new(file: &'a File, path: &'a Path, len: u64) -> FileSource<'a> {
        FileSource::with_chunk(file, path, len, Self::CHUNK)
    }

    /// A source over the first `len` bytes of `file` that reads `chunk` bytes per `pread`
    /// (more when a single frame is larger): a follower polling for a few new frames reads
    /// little more than they hold.
    pub fn with_chunk(file: &'a File, path: &'a Path, len: u64, chunk: usize) -> FileSource<'a> {
        FileSource {
            file,
            path,
            len,
            buf: Vec::new(),
            start: 0,
            filled: 0,
            chunk: chunk.max(frame::COMMIT_WORD_LEN),
            error: None,
        }
    }

    /// The first read error, if any: a scan that stopped early because of it must not be
    /// mistaken for the end of the frames.
    pub fn finish(self) -> Result<()> {
        self.error.map_or(Ok(()), Err)
    }
}

impl Source for FileSource<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn get(&mut self, offset: u64, len: u64) -> Option<&[u8]> {
        let end = offset.checked_add(len).filter(|&e| e <= self.len)?;
        if self.error.is_some() {
            return None;
        }
        let buffered = offset >= self.start && end <= self.start + self.filled as u64;
        if !buffered {
            let want = usize::try_from((self.len - offset).min(len.max(self.chunk as u64))).ok()?;
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            if let Err(e) = self.file.read_exact_at(&mut self.buf[..want], offset) {
                self.error = Some(Error::io("read", self.path, e));
                return None;
            }
            self.start = offset;
            self.filled = want;
        }
        let at = usize::try_from(offset - self.start).ok()?;
        self.buf.get(at..at + usize::try_from(len).ok()?)
    }
}

/// Scans the frames of a segment (the whole file, header included) from the first frame,
/// expecting sequence numbers from `base_seq`. Calls `on_frame(offset, frame)` for every valid
/// frame, padding included.
pub fn scan_frames<S: Source>(
    src: &mut S,
    base_seq: u64,
    on_frame: impl FnMut(u64, &Frame<'_>),
) -> ScanOutcome {
    scan_frames_from(src, SEGMENT_HEADER_LEN as u64, base_seq, on_frame)
}

/// [`scan_frames`] from the frame at `offset` (a frame boundary), expecting sequence numbers
/// from `seq`: resumes a scan where an earlier one stopped. `first_ts` and `max_ts` of the
/// outcome cover only the frames of this call.
pub fn scan_frames_from<S: Source>(
    src: &mut S,
    offset: u64,
    seq: u64,
    mut on_frame: impl FnMut(u64, &Frame<'_>),
) -> ScanOutcome {
    let mut offset = offset;
    let mut out = ScanOutcome {
        end_offset: offset,
        next_seq: seq,
        stop: ScanStop::Unwritten,
        first_ts: 0,
        max_ts: 0,
    };
    loop {
        out.end_offset = offset;
        let f = match frame_at(src, offset) {
            Ok(Some(f)) => f,
            Ok(None) => {
                // Fewer than 8 bytes left can only be the unused end of a full segment.
                let full = src.len().saturating_sub(offset) < frame::COMMIT_WORD_LEN as u64;
                out.stop = if full {
                    ScanStop::Full
                } else {
                    ScanStop::Unwritten
                };
                return out;
            }
            Err(stop) => {
                out.stop = stop;
                return out;
            }
        };
        if f.seq != out.next_seq {
            let kind = CorruptionKind::UnexpectedSeq {
                expected: out.next_seq,
                found: f.seq,
            };
            out.stop = ScanStop::Bad(kind);
            return out;
        }
        on_frame(offset, &f);
        if out.first_ts == 0 {
            out.first_ts = f.timestamp_ns;
        }
        out.max_ts = out.max_ts.max(f.timestamp_ns);
        out.next_seq += 1;
        offset += f.frame_len;
    }
}

/// The checked frame at `offset`; `Ok(None)` for a zero commit word or the end of the file.
fn frame_at<S: Source>(
    src: &mut S,
    offset: u64,
) -> std::result::Result<Option<Frame<'_>>, ScanStop> {
    let Some(w) = src.get(offset, frame::COMMIT_WORD_LEN as u64) else {
        return Ok(None);
    };
    let mut word = [0u8; 8];
    word.copy_from_slice(w);
    match frame::decode_word(u64::from_le_bytes(word)) {
        Ok(Word::Unwritten) => Ok(None),
        Ok(Word::EndOfSegment) => Err(ScanStop::EndMarker),
        Err(kind) => Err(ScanStop::Bad(kind)),
        Ok(Word::Frame {
            kind,
            payload_len,
            crc,
        }) => {
            let covered_at = offset + frame::LEN_KIND_OFFSET as u64;
            let Some(covered) = src.get(covered_at, frame::covered_len(payload_len)) else {
                let len = u64::from(payload_len);
                return Err(ScanStop::Bad(CorruptionKind::LengthOutOfBounds { len }));
            };
            frame::check_body(kind, payload_len, crc, covered)
                .map(Some)
                .map_err(ScanStop::Bad)
        }
    }
}

/// The end (exclusive) of the last non-zero byte at or after `from`, or `from` if all zero.
pub fn nonzero_extent<S: Source>(src: &mut S, from: u64) -> u64 {
    let mut extent = from;
    let mut at = from;
    while at < src.len() {
        let n = (src.len() - at).min(FileSource::CHUNK as u64);
        let Some(chunk) = src.get(at, n) else { break };
        if let Some(end) = last_nonzero_end(chunk) {
            extent = at + end as u64;
        }
        at += n;
    }
    extent
}

/// One past the last non-zero byte of `bytes`. Tests whole 256-byte blocks by OR-ing their
/// 8-byte words (which the compiler unrolls and vectorises) first: recovery runs this over the
/// unused, zero, part of a segment, so the all-zero case is the one that must be fast.
fn last_nonzero_end(bytes: &[u8]) -> Option<usize> {
    const BLOCK: usize = 256;
    let whole = bytes.len() / BLOCK * BLOCK;
    if let Some(i) = bytes[whole..].iter().rposition(|&b| b != 0) {
        return Some(whole + i + 1);
    }
    let zero = |block: &[u8]| {
        let (words, _) = block.as_chunks::<8>();
        words.iter().fold(0, |acc, w| acc | u64::from_le_bytes(*w)) == 0
    };
    let last = bytes[..whole].chunks_exact(BLOCK).rposition(|b| !zero(b))?;
    let block = &bytes[last * BLOCK..(last + 1) * BLOCK];
    block
        .iter()
        .rposition(|&b| b != 0)
        .map(|i| last * BLOCK + i + 1)
}

/// Best-effort count of valid-looking frames at or after `from` (what a truncation drops).
/// Steps frame by frame where frames decode and 8 bytes at a time where they do not, and
/// stops checking CRCs after `crc_budget` bytes so hostile input cannot make it quadratic.
pub fn count_frames_after<S: Source>(src: &mut S, from: u64, mut crc_budget: u64) -> u64 {
    let mut offset = frame::align_up(from);
    let mut count = 0;
    while offset + 8 <= src.len() && crc_budget > 0 {
        let word = src.get(offset, 8).map(|w| {
            let mut x = [0u8; 8];
            x.copy_from_slice(w);
            u64::from_le_bytes(x)
        });
        if let Some(Ok(Word::Frame { payload_len, .. })) = word.map(frame::decode_word) {
            let len = frame::frame_len(u64::from(payload_len));
            if offset + len <= src.len() {
                crc_budget = crc_budget.saturating_sub(len);
                if let Ok(Some(f)) = frame_at(src, offset) {
                    count += 1;
                    offset += f.frame_len;
                    continue;
                }
            }
        }
        offset += 8;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::frame::encode_record;

    fn segment_with(records: &[&[u8]], capacity: usize) -> Vec<u8> {
        let mut seg = vec![0u8; capacity];
        let mut at = SEGMENT_HEADER_LEN;
        for (i, r) in records.iter().enumerate() {
            at += encode_record(&mut seg[at..], 10 + i as u64, 100 + i as u64, r).unwrap() as usize;
        }
        seg
    }

    #[test]
    fn clean_scan() {
        let seg = segment_with(&[b"a", b"bb", b"ccc"], 4096);
        let mut seen = Vec::new();
        let out = scan_frames(&mut &seg[..], 10, |_, f| seen.push(f.payload.to_vec()));
        assert_eq!(seen, vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]);
        assert_eq!(out.next_seq, 13);
        assert_eq!(out.stop, ScanStop::Unwritten);
        assert_eq!(out.end_offset, 128 + 3 * 32);
        assert_eq!((out.first_ts, out.max_ts), (100, 102));
    }

    #[test]
    fn every_truncation_gives_the_longest_valid_prefix() {
        let records: Vec<Vec<u8>> = (1..=20u8).map(|i| vec![i; usize::from(i)]).collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let seg = segment_with(&refs, 4096);
        let full = scan_frames(&mut &seg[..], 10, |_, _| {});
        // A frame survives a cut iff every non-zero byte of it lies before the cut (zeroing
        // bytes that were zero anyway changes nothing).
        let mut frames = Vec::new();
        scan_frames(&mut &seg[..], 10, |o, f| frames.push((o, o + f.frame_len)));
        for cut in 128..=full.end_offset as usize {
            let mut damaged = seg.clone();
            damaged[cut..].fill(0);
            let out = scan_frames(&mut &damaged[..], 10, |_, _| {});
            let survivors = frames
                .iter()
                .take_while(|&&(start, end)| {
                    nonzero_extent(&mut &seg[..end as usize], start) <= cut as u64
                })
                .count();
            assert_eq!(out.next_seq, 10 + survivors as u64, "cut at {cut}");
            let end = if survivors == 0 {
                128
            } else {
                frames[survivors - 1].1
            };
            assert_eq!(out.end_offset, end, "cut at {cut}");
        }
    }

    #[test]
    fn wrong_sequence_stops_the_scan() {
        let seg = segment_with(&[b"a", b"b"], 4096);
        let out = scan_frames(&mut &seg[..], 11, |_, _| {});
        assert!(matches!(
            out.stop,
            ScanStop::Bad(CorruptionKind::UnexpectedSeq { .. })
        ));
        assert_eq!(out.next_seq, 11);
    }

    #[test]
    fn last_nonzero_end_finds_the_last_byte_anywhere() {
        for len in [0usize, 1, 63, 64, 65, 200, 255, 256, 257, 600, 4096] {
            assert_eq!(last_nonzero_end(&vec![0u8; len]), None);
            for at in 0..len {
                // Every position in short slices; a sample (block edges included) in long ones.
                if len > 600 && at % 61 != 0 && at % 256 != 255 {
                    continue;
                }
                let mut b = vec![0u8; len];
                b[at] = 9;
                assert_eq!(last_nonzero_end(&b), Some(at + 1), "len {len} at {at}");
                // A non-zero byte earlier does not change the answer.
                b[0] = 1;
                assert_eq!(last_nonzero_end(&b), Some(at + 1), "len {len} at {at}");
            }
        }
    }

    #[test]
    fn extent_and_counting() {
        let seg = segment_with(&[b"a", b"b", b"c"], 4096);
        assert_eq!(nonzero_extent(&mut &seg[..], 128), 128 + 2 * 32 + 25);
        assert_eq!(nonzero_extent(&mut &seg[..], 1000), 1000);
        assert_eq!(count_frames_after(&mut &seg[..], 128 + 32, 1 << 20), 2);
        assert_eq!(count_frames_after(&mut &seg[..], 129, 1 << 20), 2);
    }
}
