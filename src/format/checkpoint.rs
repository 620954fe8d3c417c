//! The checkpoint file: an opaque state blob tagged with the position of the log it covers
//! (pure encode and decode).

use super::crc::checksum;
use super::{CHECKPOINT_MAGIC, FORMAT_VERSION, check_identity, le_u32, le_u64};
use crate::error::CorruptionKind;

/// Bytes of header in front of the blob.
pub const CHECKPOINT_HEADER_LEN: usize = 48;
/// Offset of the 8-byte magic.
pub const MAGIC_OFFSET: usize = 0;
/// Offset of the format version (`u32`).
pub const VERSION_OFFSET: usize = 8;
/// Offset of the header length (`u32`, 48 in version 1).
pub const HEADER_LEN_OFFSET: usize = 12;
/// Offset of `next_seq` (`u64`): the state reflects every record with a smaller sequence number.
pub const NEXT_SEQ_OFFSET: usize = 16;
/// Offset of the timestamp (`u64`, ns since the Unix epoch) of the last record covered.
pub const TIMESTAMP_OFFSET: usize = 24;
/// Offset of the blob length (`u64`).
pub const BLOB_LEN_OFFSET: usize = 32;
/// Offset of the blob CRC (`u32`).
pub const BLOB_CRC_OFFSET: usize = 40;
/// Offset of the header CRC (`u32`) over bytes `0..44`.
pub const HEADER_CRC_OFFSET: usize = 44;

const _: () = assert!(HEADER_CRC_OFFSET + 4 == CHECKPOINT_HEADER_LEN);

/// A checkpoint's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointHeader {
    /// The blob reflects every record with a sequence number below this one.
    pub next_seq: u64,
    /// Timestamp of the last record covered (ns since the Unix epoch).
    pub timestamp_ns: u64,
    /// Length of the blob in bytes.
    pub blob_len: u64,
}

/// Encodes a whole checkpoint file: header followed by `blob`.
pub fn encode(next_seq: u64, timestamp_ns: u64, blob: &[u8]) -> Vec<u8> {
    let mut out = encode_header(next_seq, timestamp_ns, blob).to_vec();
    out.extend_from_slice(blob);
    out
}

/// Encodes the header of a checkpoint file holding `blob` (the blob follows it).
pub fn encode_header(next_seq: u64, timestamp_ns: u64, blob: &[u8]) -> [u8; CHECKPOINT_HEADER_LEN] {
    let mut out = [0u8; CHECKPOINT_HEADER_LEN];
    out[..8].copy_from_slice(&CHECKPOINT_MAGIC);
    out[VERSION_OFFSET..VERSION_OFFSET + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let hl = CHECKPOINT_HEADER_LEN as u32;
    out[HEADER_LEN_OFFSET..HEADER_LEN_OFFSET + 4].copy_from_slice(&hl.to_le_bytes());
    out[NEXT_SEQ_OFFSET..NEXT_SEQ_OFFSET + 8].copy_from_slice(&next_seq.to_le_bytes());
    out[TIMESTAMP_OFFSET..TIMESTAMP_OFFSET + 8].copy_from_slice(&timestamp_ns.to_le_bytes());
    let len = blob.len() as u64;
    out[BLOB_LEN_OFFSET..BLOB_LEN_OFFSET + 8].copy_from_slice(&len.to_le_bytes());
    out[BLOB_CRC_OFFSET..BLOB_CRC_OFFSET + 4].copy_from_slice(&checksum(blob).to_le_bytes());
    let crc = checksum(&out[..HEADER_CRC_OFFSET]);
    out[HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes and checks a whole checkpoint file; returns the header and the blob.
pub fn decode(bytes: &[u8]) -> Result<(CheckpointHeader, &[u8]), CorruptionKind> {
    let header = decode_header(bytes)?;
    let blob = usize::try_from(header.blob_len)
        .ok()
        .and_then(|len| bytes.get(CHECKPOINT_HEADER_LEN..CHECKPOINT_HEADER_LEN.checked_add(len)?))
        .ok_or(CorruptionKind::Truncated {
            what: "checkpoint blob",
        })?;
    let stored = le_u32(bytes, BLOB_CRC_OFFSET);
    let actual = checksum(blob);
    if stored != actual {
        return Err(CorruptionKind::ChecksumMismatch {
            expected: stored,
            actual,
        });
    }
    Ok((header, blob))
}

/// Decodes and checks the header of a checkpoint file (not the blob).
pub fn decode_header(bytes: &[u8]) -> Result<CheckpointHeader, CorruptionKind> {
    let Some(h) = bytes.get(..CHECKPOINT_HEADER_LEN) else {
        return Err(CorruptionKind::Truncated {
            what: "checkpoint header",
        });
    };
    check_identity(h, &CHECKPOINT_MAGIC, HEADER_CRC_OFFSET)?;
    let header_len = le_u32(h, HEADER_LEN_OFFSET);
    if header_len as usize != CHECKPOINT_HEADER_LEN {
        return Err(CorruptionKind::BadHeaderField {
            field: "header_len",
            value: header_len.into(),
        });
    }
    let next_seq = le_u64(h, NEXT_SEQ_OFFSET);
    if next_seq == 0 {
        return Err(CorruptionKind::BadHeaderField {
            field: "next_seq",
            value: 0,
        });
    }
    Ok(CheckpointHeader {
        next_seq,
        timestamp_ns: le_u64(h, TIMESTAMP_OFFSET),
        blob_len: le_u64(h, BLOB_LEN_OFFSET),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_truncation_fails() {
        let file = encode(10, 20, b"state");
        let (h, blob) = decode(&file).unwrap();
        assert_eq!(
            h,
            CheckpointHeader {
                next_seq: 10,
                timestamp_ns: 20,
                blob_len: 5
            }
        );
        assert_eq!(blob, b"state");
        for cut in 0..file.len() {
            assert!(decode(&file[..cut]).is_err(), "cut at {cut}");
        }
    }
}
