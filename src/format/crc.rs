//! The one checksum of the format: CRC-32C (Castagnoli, also called CRC-32/ISCSI), as
//! LevelDB, RocksDB, Kafka and ext4 use.
//!
//! Every checksum in every mmlog file goes through this module, so the algorithm is named in
//! exactly one place. CRC-32C detects every single-bit error and every burst of up to 32 bits.
//! The implementation is `crc-fast`, which folds with carry-less multiplication (PCLMULQDQ /
//! PMULL) and the CRC32 instructions: measured here, about twice as fast on a 4 KiB frame as
//! the CRC32 instruction alone (65 ns against 144 ns), and faster on small frames too.

use crc_fast::{CrcAlgorithm, Digest};

const ALGORITHM: CrcAlgorithm = CrcAlgorithm::Crc32Iscsi;

/// CRC-32C of `bytes`.
#[inline]
pub fn checksum(bytes: &[u8]) -> u32 {
    crc_fast::checksum(ALGORITHM, bytes) as u32
}

/// Continues a CRC-32C started by [`checksum`] over further bytes: the CRC of the
/// concatenation.
#[inline]
pub fn checksum_append(crc: u32, bytes: &[u8]) -> u32 {
    // The finalized CRC is the running state with every bit inverted.
    let mut digest = Digest::new_with_init_state(ALGORITHM, u64::from(!crc));
    digest.update(bytes);
    digest.finalize() as u32
}

/// CRC-32C of `first` followed by `second`.
#[inline]
pub fn checksum_pair(first: &[u8], second: &[u8]) -> u32 {
    let mut digest = Digest::new(ALGORITHM);
    digest.update(first);
    digest.update(second);
    digest.finalize() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // The standard check value of CRC-32C: crc("123456789") = 0xE3069283.
        assert_eq!(checksum(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn append_and_pair_equal_whole() {
        let whole = checksum(b"hello, world");
        assert_eq!(checksum_append(checksum(b"hello"), b", world"), whole);
        assert_eq!(checksum_pair(b"hello", b", world"), whole);
        assert_eq!(checksum_append(checksum(b""), b"hello, world"), whole);
        let big: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(checksum_pair(&big[..4], &big[4..]), checksum(&big));
    }
}
