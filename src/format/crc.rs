//! The one checksum of the format: CRC-32C (Castagnoli), as LevelDB, RocksDB and Kafka use.
//!
//! Every checksum in every mmlog file goes through this module, so the algorithm is named in
//! exactly one place. CRC-32C detects every single-bit error and every burst of up to 32 bits,
//! and runs on the SSE 4.2 / ARMv8 CRC instructions where the processor has them.

/// CRC-32C of `bytes`.
#[inline]
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Continues a CRC-32C started by [`checksum`] over further bytes.
#[inline]
pub fn checksum_append(crc: u32, bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, bytes)
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
    fn append_equals_whole() {
        let whole = checksum(b"hello, world");
        let split = checksum_append(checksum(b"hello"), b", world");
        assert_eq!(whole, split);
    }
}
