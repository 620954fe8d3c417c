//! The `LOCK` file: held with an exclusive `flock` while a process owns the log. Its bytes only
//! say who holds it (for error messages and tools); the lock itself is the `flock`.

use super::crc::checksum;
use super::{FORMAT_VERSION, LOCK_MAGIC, check_identity, le_u32, le_u64};
use crate::error::CorruptionKind;

/// Length of the lock file.
pub const LOCK_FILE_LEN: usize = 32;
/// Offset of the format version (`u32`).
pub const VERSION_OFFSET: usize = 8;
/// Offset of the owner's process id (`u32`).
pub const PID_OFFSET: usize = 12;
/// Offset of the time the owner opened the log (`u64`, ns since the Unix epoch).
pub const OPENED_OFFSET: usize = 16;
/// Offset of the CRC (`u32`) over bytes `0..24`.
pub const CRC_OFFSET: usize = 24;

/// Who holds (or last held) the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockOwner {
    /// Process id of the owner.
    pub pid: u32,
    /// When it opened the log (ns since the Unix epoch).
    pub opened_ns: u64,
}

/// Encodes the lock file's contents.
pub fn encode(owner: LockOwner) -> [u8; LOCK_FILE_LEN] {
    let mut b = [0u8; LOCK_FILE_LEN];
    b[..8].copy_from_slice(&LOCK_MAGIC);
    b[VERSION_OFFSET..VERSION_OFFSET + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[PID_OFFSET..PID_OFFSET + 4].copy_from_slice(&owner.pid.to_le_bytes());
    b[OPENED_OFFSET..OPENED_OFFSET + 8].copy_from_slice(&owner.opened_ns.to_le_bytes());
    let crc = checksum(&b[..CRC_OFFSET]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes the lock file's contents.
pub fn decode(bytes: &[u8]) -> Result<LockOwner, CorruptionKind> {
    let Some(b) = bytes.get(..LOCK_FILE_LEN) else {
        return Err(CorruptionKind::Truncated { what: "lock file" });
    };
    check_identity(b, &LOCK_MAGIC, CRC_OFFSET)?;
    Ok(LockOwner {
        pid: le_u32(b, PID_OFFSET),
        opened_ns: le_u64(b, OPENED_OFFSET),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let owner = LockOwner {
            pid: 4242,
            opened_ns: 7,
        };
        assert_eq!(decode(&encode(owner)).unwrap(), owner);
        assert!(decode(&[0u8; 32]).is_err());
    }
}
