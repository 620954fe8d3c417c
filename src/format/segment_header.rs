//! The segment file header: identity, format version, base sequence number and, once the
//! segment is complete and durable, its seal (pure encode and decode).

use super::crc::checksum;
use super::frame::FRAME_HEADER_LEN;
use super::{FORMAT_VERSION, SEGMENT_MAGIC, check_identity, le_u32, le_u64};
use crate::error::CorruptionKind;

/// Bytes of header at the start of every segment file; frames start right after it.
pub const SEGMENT_HEADER_LEN: usize = 128;
/// Offset of the 8-byte magic.
pub const MAGIC_OFFSET: usize = 0;
/// Offset of the format version (`u32`).
pub const VERSION_OFFSET: usize = MAGIC_OFFSET + 8;
/// Offset of the header length (`u32`, always 128 in version 1).
pub const HEADER_LEN_OFFSET: usize = VERSION_OFFSET + 4;
/// Offset of the segment id (`u64`): its position in the file sequence, also in its file name.
pub const SEGMENT_ID_OFFSET: usize = HEADER_LEN_OFFSET + 4;
/// Offset of the capacity (`u64`): the file's length in bytes.
pub const CAPACITY_OFFSET: usize = SEGMENT_ID_OFFSET + 8;
/// Offset of the base sequence number (`u64`): the sequence number of the first frame.
pub const BASE_SEQ_OFFSET: usize = CAPACITY_OFFSET + 8;
/// Offset of the creation time (`u64`, nanoseconds since the Unix epoch).
pub const CREATED_OFFSET: usize = BASE_SEQ_OFFSET + 8;
/// Offset of the reserved bytes `48..60` (zero).
pub const RESERVED_OFFSET: usize = CREATED_OFFSET + 8;
/// Offset of the identity CRC (`u32`) over bytes `0..60`.
pub const HEADER_CRC_OFFSET: usize = 60;
/// Offset of the seal: written once, after every frame of the segment is durable.
pub const SEAL_OFFSET: usize = 64;
/// Offset of the sealed record count (`u64`): sequence numbers used by this segment.
pub const SEAL_COUNT_OFFSET: usize = SEAL_OFFSET;
/// Offset of the sealed end offset (`u64`): where the end marker sits, or the capacity.
pub const SEAL_END_OFFSET: usize = SEAL_COUNT_OFFSET + 8;
/// Offset of the first record's timestamp (`u64`; 0 when the segment holds no frame).
pub const SEAL_FIRST_TS_OFFSET: usize = SEAL_END_OFFSET + 8;
/// Offset of the largest timestamp in the segment (`u64`).
pub const SEAL_MAX_TS_OFFSET: usize = SEAL_FIRST_TS_OFFSET + 8;
/// Offset of the seal's reserved bytes `96..124` (zero).
pub const SEAL_RESERVED_OFFSET: usize = SEAL_MAX_TS_OFFSET + 8;
/// Offset of the seal CRC (`u32`) over bytes `64..124`.
pub const SEAL_CRC_OFFSET: usize = 124;
/// Length of the seal, CRC included.
pub const SEAL_LEN: usize = SEGMENT_HEADER_LEN - SEAL_OFFSET;

const _: () = {
    assert!(CREATED_OFFSET + 8 <= HEADER_CRC_OFFSET);
    assert!(SEAL_MAX_TS_OFFSET + 8 <= SEAL_CRC_OFFSET);
    assert!(SEAL_CRC_OFFSET + 4 == SEGMENT_HEADER_LEN);
    assert!(SEGMENT_HEADER_LEN.is_multiple_of(8));
};

/// The identity part of a segment header (bytes `0..64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Position of this segment in the file sequence.
    pub segment_id: u64,
    /// File length in bytes.
    pub capacity: u64,
    /// Sequence number of the first frame.
    pub base_seq: u64,
    /// When the segment became the active one (ns since the Unix epoch).
    pub created_ns: u64,
}

/// The seal of a complete segment (bytes `64..128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Seal {
    /// Sequence numbers used by the segment (records and padding).
    pub record_count: u64,
    /// Offset of the end marker, or the capacity when the frames fill the file exactly.
    pub end_offset: u64,
    /// Timestamp of the first frame (0 when there is none).
    pub first_ts: u64,
    /// Largest timestamp of any frame (0 when there is none).
    pub max_ts: u64,
}

/// What the first 64 bytes of a segment file hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderState {
    /// All zero: a pre-allocated spare that never became active.
    Blank,
    /// A valid header.
    Valid(SegmentHeader),
}

impl SegmentHeader {
    /// Encodes bytes `0..64` of the header.
    pub fn encode(&self) -> [u8; SEAL_OFFSET] {
        let mut b = [0u8; SEAL_OFFSET];
        b[MAGIC_OFFSET..MAGIC_OFFSET + 8].copy_from_slice(&SEGMENT_MAGIC);
        b[VERSION_OFFSET..VERSION_OFFSET + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let header_len = SEGMENT_HEADER_LEN as u32;
        b[HEADER_LEN_OFFSET..HEADER_LEN_OFFSET + 4].copy_from_slice(&header_len.to_le_bytes());
        b[SEGMENT_ID_OFFSET..SEGMENT_ID_OFFSET + 8].copy_from_slice(&self.segment_id.to_le_bytes());
        b[CAPACITY_OFFSET..CAPACITY_OFFSET + 8].copy_from_slice(&self.capacity.to_le_bytes());
        b[BASE_SEQ_OFFSET..BASE_SEQ_OFFSET + 8].copy_from_slice(&self.base_seq.to_le_bytes());
        b[CREATED_OFFSET..CREATED_OFFSET + 8].copy_from_slice(&self.created_ns.to_le_bytes());
        let crc = checksum(&b[..HEADER_CRC_OFFSET]);
        b[HEADER_CRC_OFFSET..HEADER_CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes bytes `0..64` (a longer slice is fine). Checks magic, version, length and CRC.
    pub fn decode(bytes: &[u8]) -> Result<HeaderState, CorruptionKind> {
        let Some(b) = bytes.get(..SEAL_OFFSET) else {
            return Err(CorruptionKind::Truncated {
                what: "segment header",
            });
        };
        if b.iter().all(|&x| x == 0) {
            return Ok(HeaderState::Blank);
        }
        check_identity(b, &SEGMENT_MAGIC, HEADER_CRC_OFFSET)?;
        if let Some(i) = b[RESERVED_OFFSET..HEADER_CRC_OFFSET]
            .iter()
            .position(|&x| x != 0)
        {
            let value = b[RESERVED_OFFSET + i].into();
            return Err(CorruptionKind::BadHeaderField {
                field: "reserved",
                value,
            });
        }
        let header_len = le_u32(b, HEADER_LEN_OFFSET);
        if header_len as usize != SEGMENT_HEADER_LEN {
            return Err(CorruptionKind::BadHeaderField {
                field: "header_len",
                value: header_len.into(),
            });
        }
        let h = SegmentHeader {
            segment_id: le_u64(b, SEGMENT_ID_OFFSET),
            capacity: le_u64(b, CAPACITY_OFFSET),
            base_seq: le_u64(b, BASE_SEQ_OFFSET),
            created_ns: le_u64(b, CREATED_OFFSET),
        };
        // A segment holds fewer frames than bytes, so `base_seq + capacity` bounds every
        // sequence number in it: keeping that sum in range keeps all sequence arithmetic on
        // a valid header from overflowing.
        if h.base_seq.checked_add(h.capacity).is_none() {
            return Err(CorruptionKind::BadHeaderField {
                field: "base_seq",
                value: h.base_seq,
            });
        }
        Ok(HeaderState::Valid(h))
    }
}

impl Seal {
    /// Encodes bytes `64..128` of the header.
    pub fn encode(&self) -> [u8; SEAL_LEN] {
        let mut b = [0u8; SEAL_LEN];
        b[0..8].copy_from_slice(&self.record_count.to_le_bytes());
        b[8..16].copy_from_slice(&self.end_offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.first_ts.to_le_bytes());
        b[24..32].copy_from_slice(&self.max_ts.to_le_bytes());
        let crc_at = SEAL_CRC_OFFSET - SEAL_OFFSET;
        let crc = checksum(&b[..crc_at]);
        b[crc_at..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes the seal from a whole header (bytes `0..128`). `None` when the segment is not
    /// sealed, or when the seal was torn (its CRC fails, or its reserved bytes are not zero):
    /// either way the segment gets scanned. Check [`Seal::fits`] before trusting the fields.
    pub fn decode(header: &[u8]) -> Option<Seal> {
        let b = header.get(SEAL_OFFSET..SEGMENT_HEADER_LEN)?;
        let crc_at = SEAL_CRC_OFFSET - SEAL_OFFSET;
        if le_u32(b, crc_at) != checksum(&b[..crc_at]) || b.iter().all(|&x| x == 0) {
            return None;
        }
        if b[SEAL_RESERVED_OFFSET - SEAL_OFFSET..crc_at]
            .iter()
            .any(|&x| x != 0)
        {
            return None;
        }
        Some(Seal {
            record_count: le_u64(b, 0),
            end_offset: le_u64(b, 8),
            first_ts: le_u64(b, 16),
            max_ts: le_u64(b, 24),
        })
    }
}

impl Seal {
    /// True when the fields are possible for a segment of `capacity` bytes: the frames end
    /// at an 8-aligned offset between the header and the capacity, and there are no more of
    /// them than fit. A seal that passes its CRC but fails this is treated as no seal.
    pub fn fits(&self, capacity: u64) -> bool {
        let start = SEGMENT_HEADER_LEN as u64;
        (start..=capacity).contains(&self.end_offset)
            && self.end_offset.is_multiple_of(8)
            && self.record_count <= (self.end_offset - start) / FRAME_HEADER_LEN as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentHeader {
        SegmentHeader {
            segment_id: 3,
            capacity: 1 << 20,
            base_seq: 1000,
            created_ns: 55,
        }
    }

    #[test]
    fn round_trip() {
        let b = sample().encode();
        assert_eq!(
            SegmentHeader::decode(&b).unwrap(),
            HeaderState::Valid(sample())
        );
        assert_eq!(
            SegmentHeader::decode(&[0u8; 64]).unwrap(),
            HeaderState::Blank
        );
        let seal = Seal {
            record_count: 9,
            end_offset: 4000,
            first_ts: 1,
            max_ts: 2,
        };
        let mut full = [0u8; SEGMENT_HEADER_LEN];
        full[..64].copy_from_slice(&b);
        assert_eq!(Seal::decode(&full), None);
        full[64..].copy_from_slice(&seal.encode());
        assert_eq!(Seal::decode(&full), Some(seal));
    }

    #[test]
    fn implausible_seals_do_not_fit() {
        let ok = Seal {
            record_count: 3,
            end_offset: 128 + 72,
            first_ts: 1,
            max_ts: 2,
        };
        assert!(ok.fits(4096));
        for bad in [
            Seal {
                end_offset: 0,
                ..ok
            },
            Seal {
                end_offset: 4104,
                ..ok
            },
            Seal {
                end_offset: 1 << 40,
                ..ok
            },
            Seal {
                end_offset: 201,
                ..ok
            },
            Seal {
                record_count: 4,
                ..ok
            },
            Seal {
                record_count: u64::MAX,
                ..ok
            },
        ] {
            assert!(!bad.fits(4096), "{bad:?}");
        }
    }

    #[test]
    fn newer_version_is_reported_as_such() {
        let mut b = sample().encode();
        b[VERSION_OFFSET..VERSION_OFFSET + 4].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(
            SegmentHeader::decode(&b),
            Err(CorruptionKind::UnsupportedVersion { found: 7 })
        );
    }

    #[test]
    fn every_bit_flip_in_the_identity_is_detected() {
        let clean = sample().encode();
        for bit in 0..(64 * 8) {
            let mut b = clean;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&b).is_err(), "bit {bit}");
        }
    }
}
