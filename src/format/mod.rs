//! # The mmlog on-disk format, version 1
//!
//! This module is the format specification; the code in it is the only code that turns values
//! into bytes and back. It does no I/O, holds no locks and contains no `unsafe`. The tests at
//! the bottom pin every offset in the tables below and the exact bytes of a small log, so this
//! text and the code cannot drift apart.
//!
//! **All multi-byte integers are little-endian.** Every checksum is CRC-32C (Castagnoli).
//! Every file starts with an 8-byte magic in the style of PNG (a high-bit byte, a name, and
//! line-ending bytes that text-mode mangling would break) followed by the format version.
//! A reader that meets a version it does not know fails with
//! [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion), never with garbage.
//!
//! ## Directory layout
//!
//! ```text
//! <dir>/LOCK                        held with an exclusive flock by the owning process
//! <dir>/segments/<id:020>.seg       pre-allocated segment files, memory-mapped
//! <dir>/segments/<id:020>.seg.tmp   a segment being prepared (removed at open)
//! <dir>/segments/<id:020>.idx       the sparse index of a sealed segment (derived data)
//! <dir>/checkpoints/<seq:020>.ckpt  a checkpoint: state covering records 0..=seq
//! <dir>/checkpoints/<seq:020>.ckpt.tmp  a checkpoint being written (removed at open)
//! <dir>/consumers/<name>.pos        a registered consumer's position
//! <dir>/consumers/<name>.pos.tmp    a position being written (removed at open)
//! <dir>/archive/<id:020>.seg        a segment compaction moved out of the live log, unchanged
//! <dir>/archive/<id:020>.seg.lz4    the same, compressed
//! <dir>/archive/<id:020>.idx        its sparse index (derived data)
//! <dir>/archive/*.tmp               an archive file being written (removed at open)
//! ```
//!
//! Segment ids are consecutive; the file name's 20-digit id makes a directory listing sort in
//! log order. Compaction removes the oldest live segments, so the live ids start wherever
//! compaction stopped; the archive holds (some of) the ids before them.
//!
//! ## Segment file
//!
//! A segment is a file of fixed `capacity` bytes, allocated with `fallocate` before it is mapped
//! (never sparse: writing a hole through a mapping on a full disk is a SIGBUS). A 128-byte
//! header is followed by frames, each starting at a multiple of 8 bytes. Unwritten space is
//! zero.
//!
//! ```text
//!  offset  0        8        16       24       32       40       48       56       64
//!          +--------+----+---+--------+--------+--------+--------+----+---+----+---+
//!          | magic  |ver |hl | seg id |capacity|base seq|created |rsvd    |hcrc|
//!          +--------+----+---+--------+--------+--------+--------+--------+----+---+
//!  offset  64       72       80       88       96                        124    128
//!          +--------+--------+--------+--------+--------------------------+------+
//!          | count  |end off |first ts| max ts |  reserved (zero)         |scrc  |
//!          +--------+--------+--------+--------+--------------------------+------+
//! ```
//!
//! | offset | size | field | meaning |
//! |-------:|-----:|-------|---------|
//! | 0   | 8 | `magic`      | `89 4D 4D 4C 53 45 47 0A` (`\x89MMLSEG\n`) |
//! | 8   | 4 | `version`    | format version, `1` |
//! | 12  | 4 | `header_len` | `128` |
//! | 16  | 8 | `segment_id` | position in the file sequence (also in the file name) |
//! | 24  | 8 | `capacity`   | file length in bytes |
//! | 32  | 8 | `base_seq`   | sequence number of the first frame |
//! | 40  | 8 | `created_ns` | when the segment became active, ns since the Unix epoch |
//! | 48  | 12| reserved     | zero |
//! | 60  | 4 | `header_crc` | CRC of bytes 0..60 |
//! | 64  | 8 | `record_count` | seal: sequence numbers used by this segment |
//! | 72  | 8 | `end_offset` | seal: offset of the end marker, or `capacity` |
//! | 80  | 8 | `first_ts`   | seal: timestamp of the first frame (0 if none) |
//! | 88  | 8 | `max_ts`     | seal: largest timestamp in the segment (0 if none) |
//! | 96  | 28| reserved     | zero |
//! | 124 | 4 | `seal_crc`   | CRC of bytes 64..124 |
//!
//! A spare segment (pre-allocated, never active) has an all-zero header. The identity (bytes
//! 0..64) is written when the segment becomes active and reaches the disk with the segment's
//! first flush. The seal (bytes 64..128) is written once, only after every frame of the segment
//! is durable: a segment with a valid seal is trusted by recovery without a scan, one without
//! (or with a torn seal, whose CRC fails) is scanned. Reserved bytes must be zero; a seal whose
//! fields are impossible for the file (end offset outside `128..=capacity` or not a multiple
//! of 8, more records than fit) is treated as no seal.
//!
//! ## Record frame
//!
//! ```text
//!  offset  0        4        8                16               24
//!          +--------+--------+----------------+----------------+----------------------+
//!          |  crc   |len_kind|      seq       |  timestamp_ns  | payload ... | pad to 8
//!          +--------+--------+----------------+----------------+----------------------+
//!          \_____ commit word _____/
//!                   \__________ covered by the crc: bytes 4 .. 24+len ___________/
//! ```
//!
//! | offset | size | field | meaning |
//! |-------:|-----:|-------|---------|
//! | 0  | 4 | `crc`      | record: CRC of bytes 4 .. 24+len (`len_kind`, `seq`, `timestamp_ns`, payload); padding: CRC of bytes 4..24 |
//! | 4  | 4 | `len_kind` | bits 0..30: payload length; bits 30..32: kind (1 record, 2 padding, 3 end of segment; 0 is never written) |
//! | 8  | 8 | `seq`      | sequence number |
//! | 16 | 8 | `timestamp_ns` | nanoseconds since the Unix epoch when the record was appended |
//! | 24 | len | payload  | the bytes appended |
//! | 24+len | 0..7 | padding | written as zero, up to the next multiple of 8; not covered by the CRC and ignored by readers |
//!
//! The first 8 bytes (`crc` and `len_kind`) form the **commit word**. A writer fills bytes
//! `8..` first, then stores the commit word in one aligned 8-byte store with release ordering;
//! a reader loads it with acquire ordering. Because the kind is never 0, a published commit
//! word is never zero, while unwritten (pre-allocated, zero-filled) space always reads as zero:
//! a zero commit word is the clean end of the written frames. `len_kind` sits right before
//! `seq`, so everything the CRC covers is contiguous and a reader checks a frame in one pass.
//!
//! An **end-of-segment marker** is a lone commit word, `len_kind = 0xC000_0000` and `crc` =
//! CRC of those 4 bytes, i.e. the `u64` `0xC000_0000_8BEA_6D03` (see
//! [`frame::END_OF_SEGMENT_WORD`]). It is written where the first frame that did not fit would
//! have started (when at least 8 bytes remain). The frames of a segment end at its end marker
//! or at `capacity`; the log continues in segment `id + 1`, whose `base_seq` is this segment's
//! `base_seq + record_count`.
//!
//! A **padding frame** (kind 2) replaces a reservation whose writer gave up before finishing it.
//! It keeps its sequence number and length, so the frame grammar stays intact; readers skip it.
//!
//! The frame stream of a segment, as a grammar:
//!
//! ```text
//! segment := header frame* (end_marker | <capacity reached>) zero*
//! frame   := record | padding        (seq = previous seq + 1, the first = base_seq)
//! ```
//!
//! ## Checkpoint file
//!
//! | offset | size | field | meaning |
//! |-------:|-----:|-------|---------|
//! | 0  | 8 | `magic`      | `89 4D 4D 4C 43 4B 50 0A` (`\x89MMLCKP\n`) |
//! | 8  | 4 | `version`    | `1` |
//! | 12 | 4 | `header_len` | `48` |
//! | 16 | 8 | `next_seq`   | the blob reflects every record with a smaller sequence number |
//! | 24 | 8 | `timestamp_ns` | timestamp of the last record covered |
//! | 32 | 8 | `blob_len`   | length of the blob |
//! | 40 | 4 | `blob_crc`   | CRC of the blob |
//! | 44 | 4 | `header_crc` | CRC of bytes 0..44 |
//! | 48 | blob_len | blob | opaque state |
//!
//! A checkpoint is written to a temporary file, synced, renamed into place, and the directory
//! is synced; a checkpoint that fails any check is skipped, never trusted.
//!
//! ## Index file
//!
//! `segments/<id:020>.idx` holds the sparse index of a sealed segment, so that a seek into a
//! segment from an earlier run costs a read of its index, not a scan of the segment. It is
//! derived data: written without an `fsync`, ignored when it fails any check (and the segment
//! scanned instead), removed with its segment.
//!
//! | offset | size | field | meaning |
//! |-------:|-----:|-------|---------|
//! | 0  | 8 | `magic`       | `89 4D 4D 4C 49 44 58 0A` (`\x89MMLIDX\n`) |
//! | 8  | 4 | `version`     | `1` |
//! | 12 | 4 | `entry_len`   | `24` |
//! | 16 | 8 | `segment_id`  | the segment indexed |
//! | 24 | 8 | `created_ns`  | that segment's `created_ns` (tells it from an earlier segment with the same id) |
//! | 32 | 8 | `entry_count` | number of entries |
//! | 40 | 4 | `crc`         | CRC of bytes 0..40 followed by every entry |
//! | 44 | 4 | reserved      | zero |
//! | 48 | 24 each | entries | `seq u64`, `offset u64`, `max_ts_before u64`: frame `seq` starts at `offset`, and every frame before it in the segment has a timestamp of at most `max_ts_before` |
//!
//! Entries are strictly increasing in `seq` and `offset`, and non-decreasing in
//! `max_ts_before`.
//!
//! ## Lock file
//!
//! | offset | size | field | meaning |
//! |-------:|-----:|-------|---------|
//! | 0  | 8 | `magic`   | `89 4D 4D 4C 4C 43 4B 0A` (`\x89MMLLCK\n`) |
//! | 8  | 4 | `version` | `1` |
//! | 12 | 4 | `pid`     | process id of the owner |
//! | 16 | 8 | `opened_ns` | when the owner opened the log |
//! | 24 | 4 | `crc`     | CRC of bytes 0..24 |
//! | 28 | 4 | reserved  | zero |
//!
//! The lock is the `flock` on this file, not its contents: a lock left by a killed process
//! disappears with the process. The contents only name the owner in error messages.
//!
//! ## Version changes
//!
//! - Version 1: the first format.
//!
//! ## Assumptions about the storage media
//!
//! - A successful `msync(MS_SYNC)` / `fdatasync` means the bytes it covered are on stable
//!   storage (the device honours cache flushes). Nothing else orders writes: pages reach the
//!   disk in any order and may be torn, so every frame carries a CRC and a sequence number,
//!   and recovery trusts only the longest valid prefix of the unsealed segments.
//! - After a failed `msync`/`fsync` the kernel may have dropped the dirty pages: the log stops
//!   accepting writes and must be reopened, which recovers from what is on disk.
//! - The filesystem is local (flock works) and supports `fallocate`.

pub mod archive_file;
pub mod checkpoint;
pub mod consumer_file;
pub mod crc;
pub mod frame;
pub mod index_file;
pub mod lock_file;
pub mod segment_header;

use crate::error::CorruptionKind;

/// The format version this release reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Magic of a segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"\x89MMLSEG\n";
/// Magic of a checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"\x89MMLCKP\n";
/// Magic of a segment's sparse index file.
pub const INDEX_MAGIC: [u8; 8] = *b"\x89MMLIDX\n";
/// Magic of a consumer position file.
pub const CONSUMER_MAGIC: [u8; 8] = *b"\x89MMLPOS\n";
/// Magic of a compressed archived segment.
pub const ARCHIVE_MAGIC: [u8; 8] = *b"\x89MMLARZ\n";
/// Magic of the lock file.
pub const LOCK_MAGIC: [u8; 8] = *b"\x89MMLLCK\n";

/// Checks what every mmlog file starts with: the `magic` for its kind, the format version
/// (checked before the CRC: a newer release may lay the rest out differently), then the CRC
/// stored at `crc_at` over the bytes before it. `b` holds at least `crc_at + 4` bytes.
fn check_identity(b: &[u8], magic: &[u8; 8], crc_at: usize) -> Result<(), CorruptionKind> {
    if b[..8] != magic[..] {
        return Err(CorruptionKind::BadMagic);
    }
    let version = le_u32(b, 8);
    if version != FORMAT_VERSION {
        return Err(CorruptionKind::UnsupportedVersion { found: version });
    }
    let expected = le_u32(b, crc_at);
    let actual = crc::checksum(&b[..crc_at]);
    if expected != actual {
        return Err(CorruptionKind::HeaderChecksum { expected, actual });
    }
    Ok(())
}

/// Reads a little-endian `u32` at `at`; the caller has checked that 4 bytes are there.
fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

/// Reads a little-endian `u64` at `at`; the caller has checked that 8 bytes are there.
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

#[cfg(test)]
mod tests {
    use super::frame::*;
    use super::segment_header::*;
    use super::*;

    /// Every offset in the byte tables above, pinned.
    #[test]
    fn documented_offsets() {
        assert_eq!(SEGMENT_HEADER_LEN, 128);
        assert_eq!(segment_header::MAGIC_OFFSET, 0);
        assert_eq!(segment_header::VERSION_OFFSET, 8);
        assert_eq!(segment_header::HEADER_LEN_OFFSET, 12);
        assert_eq!(SEGMENT_ID_OFFSET, 16);
        assert_eq!(CAPACITY_OFFSET, 24);
        assert_eq!(BASE_SEQ_OFFSET, 32);
        assert_eq!(CREATED_OFFSET, 40);
        assert_eq!(segment_header::HEADER_CRC_OFFSET, 60);
        assert_eq!(SEAL_COUNT_OFFSET, 64);
        assert_eq!(SEAL_END_OFFSET, 72);
        assert_eq!(SEAL_FIRST_TS_OFFSET, 80);
        assert_eq!(SEAL_MAX_TS_OFFSET, 88);
        assert_eq!(SEAL_CRC_OFFSET, 124);

        assert_eq!(frame::CRC_OFFSET, 0);
        assert_eq!(LEN_KIND_OFFSET, 4);
        assert_eq!(SEQ_OFFSET, 8);
        assert_eq!(frame::TIMESTAMP_OFFSET, 16);
        assert_eq!(PAYLOAD_OFFSET, 24);
        assert_eq!(FRAME_ALIGN, 8);
        assert_eq!(len_kind(FrameKind::EndOfSegment, 0), 0xC000_0000);
        assert_eq!(END_OF_SEGMENT_WORD, 0xC000_0000_8BEA_6D03);

        assert_eq!(checkpoint::CHECKPOINT_HEADER_LEN, 48);
        assert_eq!(checkpoint::NEXT_SEQ_OFFSET, 16);
        assert_eq!(checkpoint::TIMESTAMP_OFFSET, 24);
        assert_eq!(checkpoint::BLOB_LEN_OFFSET, 32);
        assert_eq!(checkpoint::BLOB_CRC_OFFSET, 40);
        assert_eq!(checkpoint::HEADER_CRC_OFFSET, 44);

        assert_eq!(consumer_file::CONSUMER_FILE_LEN, 40);
        assert_eq!(consumer_file::NEXT_SEQ_OFFSET, 16);
        assert_eq!(consumer_file::UPDATED_OFFSET, 24);
        assert_eq!(consumer_file::CRC_OFFSET, 32);

        assert_eq!(archive_file::ARCHIVE_HEADER_LEN, 48);
        assert_eq!(archive_file::CODEC_OFFSET, 12);
        assert_eq!(archive_file::RAW_LEN_OFFSET, 16);
        assert_eq!(archive_file::COMPRESSED_LEN_OFFSET, 24);
        assert_eq!(archive_file::COMPRESSED_CRC_OFFSET, 32);
        assert_eq!(archive_file::HEADER_CRC_OFFSET, 44);
        assert_eq!(archive_file::SEGMENT_HEADER_AT, 48);
        assert_eq!(archive_file::BLOCK_AT, 176);
        assert_eq!(
            &CONSUMER_MAGIC,
            &[0x89, 0x4D, 0x4D, 0x4C, 0x50, 0x4F, 0x53, 0x0A]
        );
        assert_eq!(
            &ARCHIVE_MAGIC,
            &[0x89, 0x4D, 0x4D, 0x4C, 0x41, 0x52, 0x5A, 0x0A]
        );

        assert_eq!(lock_file::LOCK_FILE_LEN, 32);
        assert_eq!(lock_file::PID_OFFSET, 12);
        assert_eq!(lock_file::OPENED_OFFSET, 16);
        assert_eq!(lock_file::CRC_OFFSET, 24);

        assert_eq!(
            &SEGMENT_MAGIC,
            &[0x89, 0x4D, 0x4D, 0x4C, 0x53, 0x45, 0x47, 0x0A]
        );
        assert_eq!(
            &CHECKPOINT_MAGIC,
            &[0x89, 0x4D, 0x4D, 0x4C, 0x43, 0x4B, 0x50, 0x0A]
        );
        assert_eq!(
            &LOCK_MAGIC,
            &[0x89, 0x4D, 0x4D, 0x4C, 0x4C, 0x43, 0x4B, 0x0A]
        );
    }

    /// The exact bytes of the small fixed-layout files: a change is a format change.
    #[test]
    fn golden_bytes_of_checkpoint_consumer_and_archive_headers() {
        let cp = checkpoint::encode(8, 9, b"st");
        let pos = consumer_file::encode(consumer_file::ConsumerPosition {
            next_seq: 5,
            updated_ns: 6,
        });
        let arz = archive_file::encode_header(4096, b"lz");
        assert_eq!(
            hex(&cp),
            concat!(
                "894d4d4c434b500a",
                "01000000",
                "30000000",
                "0800000000000000",
                "0900000000000000",
                "0200000000000000",
                "dec8ddcc",
                "3cc48f68",
                "7374"
            )
        );
        assert_eq!(
            hex(&pos),
            concat!(
                "894d4d4c504f530a",
                "01000000",
                "00000000",
                "0500000000000000",
                "0600000000000000",
                "6ba4c77a",
                "00000000"
            )
        );
        assert_eq!(
            hex(&arz),
            concat!(
                "894d4d4c41525a0a",
                "01000000",
                "01000000",
                "0010000000000000",
                "0200000000000000",
                "858c19b8",
                "0000000000000000",
                "92359bd1"
            )
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The exact bytes of a segment header and a record: a change to either is a format change.
    #[test]
    fn golden_bytes() {
        let header = SegmentHeader {
            segment_id: 1,
            capacity: 4096,
            base_seq: 2,
            created_ns: 3,
        }
        .encode();
        assert_eq!(
            hex(&header),
            concat!(
                "894d4d4c5345470a",
                "0100000080000000",
                "0100000000000000",
                "0010000000000000",
                "0200000000000000",
                "0300000000000000",
                "0000000000000000",
                "00000000",
                "42f0c0ff"
            )
        );
        let seal = Seal {
            record_count: 4,
            end_offset: 160,
            first_ts: 5,
            max_ts: 6,
        }
        .encode();
        assert_eq!(
            hex(&seal),
            concat!(
                "0400000000000000",
                "a000000000000000",
                "0500000000000000",
                "0600000000000000",
                "00000000000000000000000000000000000000000000000000000000",
                "c185671d"
            )
        );
        let mut rec = [0u8; 32];
        encode_record(&mut rec, 2, 3, b"hi!").unwrap();
        assert_eq!(
            hex(&rec),
            concat!(
                "c1ebdc3d",
                "03000040",
                "0200000000000000",
                "0300000000000000",
                "6869210000000000"
            )
        );
    }
}
