//! The record frame: how one appended payload sits in a segment (pure encode and decode).
//!
//! See the byte table in [`crate::format`]. This module never touches a file or a mapping: it
//! turns values into bytes and bytes (from anywhere, trusted or not) into values, checking
//! every length against the bytes at hand before slicing.

use super::crc::{checksum, checksum_pair};
use crate::error::CorruptionKind;

/// Every frame starts at a multiple of this many bytes, so the commit word is always an aligned
/// `u64` that can be loaded and stored atomically inside the mapping.
pub const FRAME_ALIGN: u64 = 8;
/// Offset of the `crc` field (`u32`).
pub const CRC_OFFSET: usize = 0;
/// Offset of the `len_kind` field (`u32`): payload length in bits 0..30, kind in bits 30..32.
/// It comes right after the CRC so that everything the CRC covers (from here to the end of
/// the payload) is contiguous: a reader checks a frame with one CRC pass.
pub const LEN_KIND_OFFSET: usize = CRC_OFFSET + 4;
/// Offset of the `seq` field (`u64`).
pub const SEQ_OFFSET: usize = LEN_KIND_OFFSET + 4;
/// Offset of the `timestamp_ns` field (`u64`).
pub const TIMESTAMP_OFFSET: usize = SEQ_OFFSET + 8;
/// Offset of the payload.
pub const PAYLOAD_OFFSET: usize = TIMESTAMP_OFFSET + 8;
/// Bytes of frame header in front of the payload.
pub const FRAME_HEADER_LEN: usize = PAYLOAD_OFFSET;
/// The commit word is the first 8 bytes: `len_kind` and `crc`, stored last, in one atomic store.
pub const COMMIT_WORD_LEN: usize = 8;
/// Bits of `len_kind` that hold the payload length.
pub const LEN_BITS: u32 = 30;
/// The largest payload length the frame can express (1 GiB - 1).
pub const PAYLOAD_LEN_MAX: u64 = (1 << LEN_BITS) - 1;

const LEN_MASK: u32 = (1 << LEN_BITS) - 1;

const _: () = {
    assert!(FRAME_HEADER_LEN == 24);
    assert!((FRAME_HEADER_LEN as u64).is_multiple_of(FRAME_ALIGN));
    assert!(COMMIT_WORD_LEN == LEN_KIND_OFFSET + 4);
};

/// What a frame is. Kind 0 is reserved: zero-filled, pre-allocated space means "not written".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A record: a payload the user appended.
    Record = 1,
    /// Padding: a reservation whose writer gave up before completing it. It keeps its sequence
    /// number (readers skip it) so sequence numbers stay dense in the file.
    Padding = 2,
    /// End of segment: no frame follows in this file; the log continues in the next segment.
    /// Only the 8-byte commit word is written.
    EndOfSegment = 3,
}

/// Total bytes a frame with `payload_len` bytes of payload occupies, padding included.
#[inline]
pub const fn frame_len(payload_len: u64) -> u64 {
    align_up(FRAME_HEADER_LEN as u64 + payload_len)
}

/// Rounds `n` up to the frame alignment.
#[inline]
pub const fn align_up(n: u64) -> u64 {
    (n + FRAME_ALIGN - 1) & !(FRAME_ALIGN - 1)
}

/// Packs a kind and a payload length into the `len_kind` field.
#[inline]
pub const fn len_kind(kind: FrameKind, payload_len: u32) -> u32 {
    debug_assert!(payload_len <= LEN_MASK);
    ((kind as u32) << LEN_BITS) | (payload_len & LEN_MASK)
}

/// The commit word as a little-endian `u64`: `crc` in the low half, `len_kind` in the high half.
#[inline]
pub const fn commit_word(len_kind: u32, crc: u32) -> u64 {
    (crc as u64) | ((len_kind as u64) << 32)
}

/// The commit word of an end-of-segment marker. Its CRC covers the 4 `len_kind` bytes.
pub const END_OF_SEGMENT_WORD: u64 = {
    let lk = len_kind(FrameKind::EndOfSegment, 0);
    commit_word(lk, crc32c_const(&lk.to_le_bytes()))
};

/// CRC of a record: `len_kind`, then `body`, the frame's bytes from offset 8 to the end of the
/// payload (`seq`, `timestamp_ns`, payload), which lie contiguous in the frame.
#[inline]
pub fn record_crc(len_kind: u32, body: &[u8]) -> u32 {
    checksum_pair(&len_kind.to_le_bytes(), body)
}

/// CRC of a padding frame: `len_kind`, `seq` and `timestamp_ns` (its payload bytes are not
/// covered: they hold whatever the abandoned writer had copied).
#[inline]
pub fn padding_crc(len_kind: u32, seq_ts: &[u8; 16]) -> u32 {
    checksum_pair(&len_kind.to_le_bytes(), seq_ts)
}

/// The 16 bytes of `seq` and `timestamp_ns` as they sit in the frame.
#[inline]
pub fn seq_ts_bytes(seq: u64, timestamp_ns: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&seq.to_le_bytes());
    out[8..].copy_from_slice(&timestamp_ns.to_le_bytes());
    out
}

/// A decoded commit word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Word {
    /// All zero: nothing has been published here (yet).
    Unwritten,
    /// The end-of-segment marker.
    EndOfSegment,
    /// A record or padding frame with this payload length and stored CRC.
    Frame {
        /// Record or padding.
        kind: FrameKind,
        /// Payload length in bytes.
        payload_len: u32,
        /// The stored CRC.
        crc: u32,
    },
}

/// Decodes a commit word. Fails on a kind that does not exist or a malformed end marker.
pub fn decode_word(word: u64) -> Result<Word, CorruptionKind> {
    if word == 0 {
        return Ok(Word::Unwritten);
    }
    let crc = word as u32;
    let lk = (word >> 32) as u32;
    let payload_len = lk & LEN_MASK;
    match lk >> LEN_BITS {
        1 => Ok(Word::Frame {
            kind: FrameKind::Record,
            payload_len,
            crc,
        }),
        2 => Ok(Word::Frame {
            kind: FrameKind::Padding,
            payload_len,
            crc,
        }),
        3 if word == END_OF_SEGMENT_WORD => Ok(Word::EndOfSegment),
        3 => Err(CorruptionKind::BadEndMarker { found: word }),
        _ => Err(CorruptionKind::UnknownFrameKind {
            found: (lk >> LEN_BITS) as u8,
        }),
    }
}

/// A frame that decoded and passed its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Record or padding.
    pub kind: FrameKind,
    /// Sequence number.
    pub seq: u64,
    /// Nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// The payload (empty for padding).
    pub payload: &'a [u8],
    /// Bytes the whole frame occupies, padding included.
    pub frame_len: u64,
}

/// Bytes from `len_kind` to the end of the payload: what a reader hands to [`check_body`].
#[inline]
pub const fn covered_len(payload_len: u32) -> u64 {
    (PAYLOAD_OFFSET - LEN_KIND_OFFSET) as u64 + payload_len as u64
}

/// Checks a frame whose commit word decoded to `Word::Frame`.
///
/// `covered` holds the frame's bytes from `len_kind` (offset 4) on: `len_kind`, `seq`,
/// `timestamp_ns` and the payload (it may be longer; the rest is ignored). They are exactly
/// what the CRC covers, so the check is one CRC pass.
pub fn check_body<'a>(
    kind: FrameKind,
    payload_len: u32,
    stored_crc: u32,
    covered: &'a [u8],
) -> Result<Frame<'a>, CorruptionKind> {
    const SEQ: usize = SEQ_OFFSET - LEN_KIND_OFFSET;
    const PAYLOAD: usize = PAYLOAD_OFFSET - LEN_KIND_OFFSET;
    let payload_end = PAYLOAD + payload_len as usize;
    let crc_end = if kind == FrameKind::Record {
        payload_end
    } else {
        PAYLOAD
    };
    let (Some(head), Some(crc_bytes)) = (covered.get(..PAYLOAD), covered.get(..crc_end)) else {
        return Err(CorruptionKind::LengthOutOfBounds {
            len: u64::from(payload_len),
        });
    };
    let Some(payload) = covered.get(PAYLOAD..payload_end) else {
        return Err(CorruptionKind::LengthOutOfBounds {
            len: u64::from(payload_len),
        });
    };
    if head[..4] != len_kind(kind, payload_len).to_le_bytes() {
        // The caller decoded `kind` and `payload_len` from these very bytes; a mismatch means
        // it passed the wrong slice.
        return Err(CorruptionKind::LengthOutOfBounds {
            len: u64::from(payload_len),
        });
    }
    let actual = checksum(crc_bytes);
    if actual != stored_crc {
        return Err(CorruptionKind::ChecksumMismatch {
            expected: stored_crc,
            actual,
        });
    }
    let mut seq = [0u8; 8];
    let mut ts = [0u8; 8];
    seq.copy_from_slice(&head[SEQ..SEQ + 8]);
    ts.copy_from_slice(&head[SEQ + 8..SEQ + 16]);
    Ok(Frame {
        kind,
        seq: u64::from_le_bytes(seq),
        timestamp_ns: u64::from_le_bytes(ts),
        payload: if kind == FrameKind::Record {
            payload
        } else {
            &payload[..0]
        },
        frame_len: frame_len(u64::from(payload_len)),
    })
}

/// What [`decode_at`] found at an offset of a byte buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// Zero commit word, or fewer than 8 bytes left: nothing more in this buffer.
    End,
    /// An end-of-segment marker.
    EndOfSegment,
    /// A frame that passed its checks.
    Frame(Frame<'a>),
}

/// Decodes the frame at `offset` of `bytes` (a whole segment file, or any prefix of one),
/// checking bounds and the CRC. Never panics, whatever the bytes.
pub fn decode_at(bytes: &[u8], offset: usize) -> Result<Decoded<'_>, CorruptionKind> {
    let Some(word_bytes) = bytes.get(offset..offset.saturating_add(COMMIT_WORD_LEN)) else {
        return Ok(Decoded::End);
    };
    let mut w = [0u8; 8];
    w.copy_from_slice(word_bytes);
    match decode_word(u64::from_le_bytes(w))? {
        Word::Unwritten => Ok(Decoded::End),
        Word::EndOfSegment => Ok(Decoded::EndOfSegment),
        Word::Frame {
            kind,
            payload_len,
            crc,
        } => {
            let covered = bytes.get(offset + LEN_KIND_OFFSET..).unwrap_or(&[]);
            check_body(kind, payload_len, crc, covered).map(Decoded::Frame)
        }
    }
}

/// Writes a complete record frame into `out` (which must hold `frame_len(payload.len())` bytes).
/// Used by tests, fixtures and tools; the engine writes frames in place through the mapping.
pub fn encode_record(out: &mut [u8], seq: u64, timestamp_ns: u64, payload: &[u8]) -> Option<u64> {
    let payload_len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| u64::from(l) <= PAYLOAD_LEN_MAX)?;
    let total = frame_len(u64::from(payload_len));
    let out = out.get_mut(..usize::try_from(total).ok()?)?;
    let lk = len_kind(FrameKind::Record, payload_len);
    out[8..24].copy_from_slice(&seq_ts_bytes(seq, timestamp_ns));
    out[24..24 + payload.len()].copy_from_slice(payload);
    out[24 + payload.len()..].fill(0);
    let crc = record_crc(lk, &out[SEQ_OFFSET..PAYLOAD_OFFSET + payload.len()]);
    out[..COMMIT_WORD_LEN].copy_from_slice(&commit_word(lk, crc).to_le_bytes());
    Some(total)
}

/// CRC-32C computed bit by bit at compile time (only for constants such as the end marker).
const fn crc32c_const(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    let mut i = 0;
    while i < bytes.len() {
        crc ^= bytes[i] as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        i += 1;
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn const_crc_matches_runtime_crc() {
        assert_eq!(crc32c_const(b"123456789"), checksum(b"123456789"));
        let lk = len_kind(FrameKind::EndOfSegment, 0);
        assert_eq!(END_OF_SEGMENT_WORD as u32, checksum(&lk.to_le_bytes()));
        assert_eq!((END_OF_SEGMENT_WORD >> 32) as u32, lk);
    }

    #[test]
    fn round_trip_record() {
        let mut buf = vec![0u8; 64];
        let n = encode_record(&mut buf, 7, 1234, b"hello").unwrap();
        assert_eq!(n, 32);
        match decode_at(&buf, 0).unwrap() {
            Decoded::Frame(f) => {
                assert_eq!(f.kind, FrameKind::Record);
                assert_eq!(f.seq, 7);
                assert_eq!(f.timestamp_ns, 1234);
                assert_eq!(f.payload, b"hello");
                assert_eq!(f.frame_len, 32);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(decode_at(&buf, 32).unwrap(), Decoded::End);
    }

    #[test]
    fn empty_payload_still_has_nonzero_commit_word() {
        let mut buf = vec![0u8; 24];
        encode_record(&mut buf, 0, 0, b"").unwrap();
        assert_ne!(&buf[..8], &[0u8; 8]);
        assert!(matches!(decode_at(&buf, 0), Ok(Decoded::Frame(f)) if f.payload.is_empty()));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut clean = vec![0u8; 48];
        encode_record(&mut clean, 42, 99, b"0123456789abcdef").unwrap();
        for bit in 0..(40 * 8) {
            let mut b = clean.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            match decode_at(&b, 0) {
                Ok(Decoded::Frame(f)) => panic!("flip of bit {bit} accepted: {f:?}"),
                Ok(Decoded::End | Decoded::EndOfSegment) | Err(_) => {}
            }
        }
    }

    #[test]
    fn hostile_lengths_never_panic() {
        for len in [0u32, 1, 8, LEN_MASK] {
            for kind in [1u32, 2, 3] {
                let lk = (kind << LEN_BITS) | len;
                let word = commit_word(lk, 0xdead_beef);
                let mut buf = word.to_le_bytes().to_vec();
                buf.extend_from_slice(&[0xAB; 40]);
                let _ = decode_at(&buf, 0);
                let _ = decode_at(&buf, usize::MAX - 3);
            }
        }
    }
}
