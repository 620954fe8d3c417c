//! A consumer position file, `consumers/<name>.pos`: how far a named, registered consumer has
//! got (pure encode and decode). Compaction keeps every record from that position on.

use super::crc::checksum;
use super::{CONSUMER_MAGIC, FORMAT_VERSION, check_identity, le_u64};
use crate::error::CorruptionKind;

/// Length of the file.
pub const CONSUMER_FILE_LEN: usize = 40;
/// Offset of the format version (`u32`).
pub const VERSION_OFFSET: usize = 8;
/// Offset of `next_seq` (`u64`): the first record the consumer has not yet consumed.
pub const NEXT_SEQ_OFFSET: usize = 16;
/// Offset of the time of the last update (`u64`, ns since the Unix epoch).
pub const UPDATED_OFFSET: usize = 24;
/// Offset of the CRC (`u32`) over bytes `0..32`.
pub const CRC_OFFSET: usize = 32;

/// A consumer's stored position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumerPosition {
    /// The first record the consumer has not yet consumed.
    pub next_seq: u64,
    /// When the position was last stored (ns since the Unix epoch).
    pub updated_ns: u64,
}

/// Encodes a position file.
pub fn encode(p: ConsumerPosition) -> [u8; CONSUMER_FILE_LEN] {
    let mut b = [0u8; CONSUMER_FILE_LEN];
    b[..8].copy_from_slice(&CONSUMER_MAGIC);
    b[VERSION_OFFSET..VERSION_OFFSET + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[NEXT_SEQ_OFFSET..NEXT_SEQ_OFFSET + 8].copy_from_slice(&p.next_seq.to_le_bytes());
    b[UPDATED_OFFSET..UPDATED_OFFSET + 8].copy_from_slice(&p.updated_ns.to_le_bytes());
    let crc = checksum(&b[..CRC_OFFSET]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes and checks a position file.
pub fn decode(bytes: &[u8]) -> Result<ConsumerPosition, CorruptionKind> {
    if bytes.len() != CONSUMER_FILE_LEN {
        return Err(CorruptionKind::Truncated {
            what: "consumer position file",
        });
    }
    check_identity(bytes, &CONSUMER_MAGIC, CRC_OFFSET)?;
    if bytes[12..16] != [0; 4] || bytes[36..40] != [0; 4] {
        return Err(CorruptionKind::BadHeaderField {
            field: "reserved",
            value: 0,
        });
    }
    Ok(ConsumerPosition {
        next_seq: le_u64(bytes, NEXT_SEQ_OFFSET),
        updated_ns: le_u64(bytes, UPDATED_OFFSET),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let p = ConsumerPosition {
            next_seq: 42,
            updated_ns: 7,
        };
        let b = encode(p);
        assert_eq!(decode(&b).unwrap(), p);
        for i in 0..b.len() {
            let mut d = b;
            d[i] ^= 0x10;
            assert!(decode(&d).is_err(), "flip in byte {i} accepted");
        }
        assert!(decode(&b[..39]).is_err());
    }
}
