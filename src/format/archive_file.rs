//! A compressed archived segment, `archive/<id:020>.seg.lz4` (pure encode and decode).
//!
//! The segment's 128-byte header (identity and seal) is stored as is, so a listing of the
//! archive reads one small header per file; the rest of the segment's data (its frames and
//! end marker, up to `raw_len`) is one LZ4 block. Bytes from `raw_len` to the segment's
//! capacity are zero and not stored.

use super::crc::checksum;
use super::segment_header::SEGMENT_HEADER_LEN;
use super::{ARCHIVE_MAGIC, FORMAT_VERSION, check_identity, le_u32, le_u64};
use crate::error::CorruptionKind;

/// Bytes of archive header in front of the segment header.
pub const ARCHIVE_HEADER_LEN: usize = 48;
/// Offset of the format version (`u32`).
pub const VERSION_OFFSET: usize = 8;
/// Offset of the codec (`u32`): 1 is an LZ4 block.
pub const CODEC_OFFSET: usize = 12;
/// Offset of `raw_len` (`u64`): segment bytes stored, header included.
pub const RAW_LEN_OFFSET: usize = 16;
/// Offset of `compressed_len` (`u64`): length of the LZ4 block.
pub const COMPRESSED_LEN_OFFSET: usize = 24;
/// Offset of the CRC (`u32`) of the LZ4 block.
pub const COMPRESSED_CRC_OFFSET: usize = 32;
/// Offset of the header CRC (`u32`) over bytes `0..44`.
pub const HEADER_CRC_OFFSET: usize = 44;
/// Offset of the copy of the segment header.
pub const SEGMENT_HEADER_AT: usize = ARCHIVE_HEADER_LEN;
/// Offset of the LZ4 block.
pub const BLOCK_AT: usize = ARCHIVE_HEADER_LEN + SEGMENT_HEADER_LEN;
/// The one codec of version 1.
pub const CODEC_LZ4_BLOCK: u32 = 1;

/// The archive header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveHeader {
    /// Segment bytes stored, from offset 0 (at least the segment header).
    pub raw_len: u64,
    /// Length of the LZ4 block that holds bytes `128..raw_len`.
    pub compressed_len: u64,
    /// CRC of the LZ4 block.
    pub compressed_crc: u32,
}

/// Encodes the archive header for `block`, the compressed bytes `128..raw_len` of a segment.
pub fn encode_header(raw_len: u64, block: &[u8]) -> [u8; ARCHIVE_HEADER_LEN] {
    let mut b = [0u8; ARCHIVE_HEADER_LEN];
    b[..8].copy_from_slice(&ARCHIVE_MAGIC);
    b[VERSION_OFFSET..VERSION_OFFSET + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[CODEC_OFFSET..CODEC_OFFSET + 4].copy_from_slice(&CODEC_LZ4_BLOCK.to_le_bytes());
    b[RAW_LEN_OFFSET..RAW_LEN_OFFSET + 8].copy_from_slice(&raw_len.to_le_bytes());
    let clen = block.len() as u64;
    b[COMPRESSED_LEN_OFFSET..COMPRESSED_LEN_OFFSET + 8].copy_from_slice(&clen.to_le_bytes());
    b[COMPRESSED_CRC_OFFSET..COMPRESSED_CRC_OFFSET + 4]
        .copy_from_slice(&checksum(block).to_le_bytes());
    let crc = checksum(&b[..HEADER_CRC_OFFSET]);
    b[HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes and checks an archive header (the first 48 bytes of the file).
pub fn decode_header(bytes: &[u8]) -> Result<ArchiveHeader, CorruptionKind> {
    let Some(b) = bytes.get(..ARCHIVE_HEADER_LEN) else {
        return Err(CorruptionKind::Truncated {
            what: "archive header",
        });
    };
    check_identity(b, &ARCHIVE_MAGIC, HEADER_CRC_OFFSET)?;
    let codec = le_u32(b, CODEC_OFFSET);
    if codec != CODEC_LZ4_BLOCK {
        return Err(CorruptionKind::BadHeaderField {
            field: "codec",
            value: codec.into(),
        });
    }
    if b[36..44] != [0; 8] {
        return Err(CorruptionKind::BadHeaderField {
            field: "reserved",
            value: 0,
        });
    }
    let h = ArchiveHeader {
        raw_len: le_u64(b, RAW_LEN_OFFSET),
        compressed_len: le_u64(b, COMPRESSED_LEN_OFFSET),
        compressed_crc: le_u32(b, COMPRESSED_CRC_OFFSET),
    };
    if h.raw_len < SEGMENT_HEADER_LEN as u64 {
        return Err(CorruptionKind::BadHeaderField {
            field: "raw_len",
            value: h.raw_len,
        });
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_damage() {
        let h = encode_header(4096, b"block");
        let d = decode_header(&h).unwrap();
        assert_eq!(d.raw_len, 4096);
        assert_eq!(d.compressed_len, 5);
        assert_eq!(d.compressed_crc, checksum(b"block"));
        for i in 0..h.len() {
            let mut x = h;
            x[i] ^= 1;
            assert!(decode_header(&x).is_err(), "flip in byte {i} accepted");
        }
    }
}
