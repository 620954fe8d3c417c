//! The sparse index file of a sealed segment (pure encode and decode).
//!
//! An index file only saves work: every entry can be rebuilt by scanning the segment, and a
//! reader checks every frame it reaches through the index (CRC and sequence number). So it is
//! written without an `fsync`, and any index file that fails a check is ignored and rebuilt.

use super::crc::checksum_pair;
use super::{FORMAT_VERSION, INDEX_MAGIC, le_u32, le_u64};
use crate::error::CorruptionKind;

/// Bytes of header in front of the entries.
pub const INDEX_HEADER_LEN: usize = 48;
/// Offset of the format version (`u32`).
pub const VERSION_OFFSET: usize = 8;
/// Offset of the entry size (`u32`, 24 in version 1).
pub const ENTRY_LEN_OFFSET: usize = 12;
/// Offset of the segment id (`u64`).
pub const SEGMENT_ID_OFFSET: usize = 16;
/// Offset of the segment's `created_ns` (`u64`): tells this segment from an earlier one that
/// had the same id and was dropped by recovery.
pub const CREATED_OFFSET: usize = 24;
/// Offset of the entry count (`u64`).
pub const ENTRY_COUNT_OFFSET: usize = 32;
/// Offset of the CRC (`u32`) of bytes `0..40` followed by every entry.
pub const CRC_OFFSET: usize = 40;
/// Bytes per entry: `seq u64 | offset u64 | max_ts_before u64`.
pub const ENTRY_LEN: usize = 24;

const _: () = assert!(CRC_OFFSET + 8 == INDEX_HEADER_LEN);

/// One entry: frame `seq` starts at `offset`; every frame before it in the segment has a
/// timestamp of at most `max_ts_before`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexFileEntry {
    /// Sequence number of the frame.
    pub seq: u64,
    /// Its offset in the segment file.
    pub offset: u64,
    /// Largest timestamp of the frames before it in the segment.
    pub max_ts_before: u64,
}

/// Encodes an index file.
pub fn encode(segment_id: u64, created_ns: u64, entries: &[IndexFileEntry]) -> Vec<u8> {
    let mut out = vec![0u8; INDEX_HEADER_LEN + entries.len() * ENTRY_LEN];
    out[..8].copy_from_slice(&INDEX_MAGIC);
    out[VERSION_OFFSET..VERSION_OFFSET + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[ENTRY_LEN_OFFSET..ENTRY_LEN_OFFSET + 4].copy_from_slice(&(ENTRY_LEN as u32).to_le_bytes());
    out[SEGMENT_ID_OFFSET..SEGMENT_ID_OFFSET + 8].copy_from_slice(&segment_id.to_le_bytes());
    out[CREATED_OFFSET..CREATED_OFFSET + 8].copy_from_slice(&created_ns.to_le_bytes());
    let count = entries.len() as u64;
    out[ENTRY_COUNT_OFFSET..ENTRY_COUNT_OFFSET + 8].copy_from_slice(&count.to_le_bytes());
    for (i, e) in entries.iter().enumerate() {
        let at = INDEX_HEADER_LEN + i * ENTRY_LEN;
        out[at..at + 8].copy_from_slice(&e.seq.to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&e.offset.to_le_bytes());
        out[at + 16..at + 24].copy_from_slice(&e.max_ts_before.to_le_bytes());
    }
    let crc = checksum_pair(&out[..CRC_OFFSET], &out[INDEX_HEADER_LEN..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes an index file, checking it belongs to segment `segment_id` created at
/// `created_ns`, and that its entries increase and lie inside `capacity`.
pub fn decode(
    bytes: &[u8],
    segment_id: u64,
    created_ns: u64,
    capacity: u64,
) -> Result<Vec<IndexFileEntry>, CorruptionKind> {
    let Some(h) = bytes.get(..INDEX_HEADER_LEN) else {
        return Err(CorruptionKind::Truncated {
            what: "index header",
        });
    };
    if h[..8] != INDEX_MAGIC {
        return Err(CorruptionKind::BadMagic);
    }
    let version = le_u32(h, VERSION_OFFSET);
    if version != FORMAT_VERSION {
        return Err(CorruptionKind::UnsupportedVersion { found: version });
    }
    let count = usize::try_from(le_u64(h, ENTRY_COUNT_OFFSET)).unwrap_or(usize::MAX);
    let body = count
        .checked_mul(ENTRY_LEN)
        .and_then(|n| bytes.get(INDEX_HEADER_LEN..INDEX_HEADER_LEN.checked_add(n)?))
        .ok_or(CorruptionKind::Truncated {
            what: "index entries",
        })?;
    let expected = le_u32(h, CRC_OFFSET);
    let actual = checksum_pair(&h[..CRC_OFFSET], body);
    if expected != actual {
        return Err(CorruptionKind::HeaderChecksum { expected, actual });
    }
    let field = |field, value| Err(CorruptionKind::BadHeaderField { field, value });
    if le_u32(h, ENTRY_LEN_OFFSET) as usize != ENTRY_LEN || le_u32(h, CRC_OFFSET + 4) != 0 {
        return field("entry_len", le_u32(h, ENTRY_LEN_OFFSET).into());
    }
    if le_u64(h, SEGMENT_ID_OFFSET) != segment_id || le_u64(h, CREATED_OFFSET) != created_ns {
        return field("segment_id", le_u64(h, SEGMENT_ID_OFFSET));
    }
    let mut entries = Vec::with_capacity(count);
    for chunk in body.chunks_exact(ENTRY_LEN) {
        let e = IndexFileEntry {
            seq: le_u64(chunk, 0),
            offset: le_u64(chunk, 8),
            max_ts_before: le_u64(chunk, 16),
        };
        let increasing = entries.last().is_none_or(|p: &IndexFileEntry| {
            e.seq > p.seq && e.offset > p.offset && e.max_ts_before >= p.max_ts_before
        });
        if !increasing || e.offset >= capacity || !e.offset.is_multiple_of(8) {
            return field("entry", e.offset);
        }
        entries.push(e);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<IndexFileEntry> {
        vec![
            IndexFileEntry {
                seq: 10,
                offset: 128,
                max_ts_before: 0,
            },
            IndexFileEntry {
                seq: 13,
                offset: 224,
                max_ts_before: 5,
            },
        ]
    }

    #[test]
    fn round_trip_and_every_flip_or_cut_is_refused() {
        let file = encode(3, 77, &sample());
        assert_eq!(decode(&file, 3, 77, 4096).unwrap(), sample());
        assert!(
            decode(&file, 4, 77, 4096).is_err(),
            "another segment's index"
        );
        assert!(
            decode(&file, 3, 78, 4096).is_err(),
            "an earlier segment with the same id"
        );
        assert!(
            decode(&file, 3, 77, 200).is_err(),
            "entries past the capacity"
        );
        for cut in 0..file.len() {
            assert!(decode(&file[..cut], 3, 77, 4096).is_err(), "cut at {cut}");
        }
        for bit in 0..file.len() * 8 {
            let mut b = file.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&b, 3, 77, 4096).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        let mut file = encode(3, 77, &[]);
        file[ENTRY_COUNT_OFFSET..ENTRY_COUNT_OFFSET + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&file, 3, 77, 4096).is_err());
    }
}
