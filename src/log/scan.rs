//! Scanning the frames of a segment held in a byte buffer (a `pread` copy of the file): used
//! by recovery and by the read-only inspection tools. Pure: no I/O, never panics.

use crate::error::CorruptionKind;
use crate::format::frame::{self, Decoded, Frame};
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

/// Scans the frames of `segment` (the whole file, header included) from the first frame,
/// expecting sequence numbers from `base_seq`. Calls `on_frame(offset, frame)` for every valid
/// frame, padding included.
pub fn scan_frames(
    segment: &[u8],
    base_seq: u64,
    mut on_frame: impl FnMut(u64, &Frame<'_>),
) -> ScanOutcome {
    let mut offset = SEGMENT_HEADER_LEN;
    let mut out = ScanOutcome {
        end_offset: offset as u64,
        next_seq: base_seq,
        stop: ScanStop::Unwritten,
        first_ts: 0,
        max_ts: 0,
    };
    loop {
        out.end_offset = offset as u64;
        if offset >= segment.len() {
            out.stop = ScanStop::Full;
            return out;
        }
        let f = match frame::decode_at(segment, offset) {
            Ok(Decoded::End) => {
                // Fewer than 8 bytes left can only be the unused end of a full segment.
                let left = segment.len() - offset;
                out.stop = if left < 8 {
                    ScanStop::Full
                } else {
                    ScanStop::Unwritten
                };
                return out;
            }
            Ok(Decoded::EndOfSegment) => {
                out.stop = ScanStop::EndMarker;
                return out;
            }
            Ok(Decoded::Frame(f)) => f,
            Err(kind) => {
                out.stop = ScanStop::Bad(kind);
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
        on_frame(offset as u64, &f);
        if out.first_ts == 0 {
            out.first_ts = f.timestamp_ns;
        }
        out.max_ts = out.max_ts.max(f.timestamp_ns);
        out.next_seq += 1;
        offset += f.frame_len as usize;
    }
}

/// The end (exclusive) of the last non-zero byte at or after `from`, or `from` if all zero.
pub fn nonzero_extent(bytes: &[u8], from: usize) -> usize {
    let tail = bytes.get(from..).unwrap_or(&[]);
    tail.iter()
        .rposition(|&b| b != 0)
        .map_or(from, |i| from + i + 1)
}

/// Best-effort count of valid-looking frames in `bytes[from..]` (what a truncation drops).
/// Steps frame by frame where frames decode and 8 bytes at a time where they do not, and
/// stops checking CRCs after `crc_budget` bytes so hostile input cannot make it quadratic.
pub fn count_frames_after(bytes: &[u8], from: usize, mut crc_budget: usize) -> u64 {
    let mut offset = frame::align_up(from as u64) as usize;
    let mut count = 0;
    while offset + 8 <= bytes.len() && crc_budget > 0 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[offset..offset + 8]);
        match frame::decode_word(u64::from_le_bytes(w)) {
            Ok(frame::Word::Frame { payload_len, .. })
                if offset + 24 + payload_len as usize <= bytes.len() =>
            {
                crc_budget = crc_budget.saturating_sub(payload_len as usize + 24);
                if let Ok(Decoded::Frame(f)) = frame::decode_at(bytes, offset) {
                    count += 1;
                    offset += f.frame_len as usize;
                    continue;
                }
            }
            Ok(_) | Err(_) => {}
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
        let out = scan_frames(&seg, 10, |_, f| seen.push(f.payload.to_vec()));
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
        let full = scan_frames(&seg, 10, |_, _| {});
        // A frame survives a cut iff every non-zero byte of it lies before the cut (zeroing
        // bytes that were zero anyway changes nothing).
        let mut frames = Vec::new();
        scan_frames(&seg, 10, |o, f| frames.push((o, o + f.frame_len)));
        for cut in 128..=full.end_offset as usize {
            let mut damaged = seg.clone();
            damaged[cut..].fill(0);
            let out = scan_frames(&damaged, 10, |_, _| {});
            let survivors = frames
                .iter()
                .take_while(|&&(start, end)| {
                    nonzero_extent(&seg[..end as usize], start as usize) <= cut
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
        let out = scan_frames(&seg, 11, |_, _| {});
        assert!(matches!(
            out.stop,
            ScanStop::Bad(CorruptionKind::UnexpectedSeq { .. })
        ));
        assert_eq!(out.next_seq, 11);
    }

    #[test]
    fn extent_and_counting() {
        let seg = segment_with(&[b"a", b"b", b"c"], 4096);
        assert_eq!(nonzero_extent(&seg, 128), 128 + 2 * 32 + 25);
        assert_eq!(nonzero_extent(&seg, 1000), 1000);
        assert_eq!(count_frames_after(&seg, 128 + 32, 1 << 20), 2);
        assert_eq!(count_frames_after(&seg, 129, 1 << 20), 2);
    }
}
