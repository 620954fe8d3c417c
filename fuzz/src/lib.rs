//! Property checks for mmlog's decoders and recovery, shared by the fuzz targets in
//! `fuzz/fuzz_targets/` and by the root crate's `tests/fuzz_corpus.rs` (which includes this
//! file with `#[path]`, so `cargo test` runs the same checks over deterministic inputs).
//!
//! Every function takes arbitrary bytes and returns normally unless mmlog breaks a property:
//! a panic here is a finding. Only mmlog's public API is used.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mmlog::format::archive_file::{self, ARCHIVE_HEADER_LEN, BLOCK_AT, SEGMENT_HEADER_AT};
use mmlog::format::crc::{checksum, checksum_append};
use mmlog::format::frame::{self, Decoded, FrameKind};
use mmlog::format::segment_header::{
    self, HeaderState, SEAL_OFFSET, SEGMENT_HEADER_LEN, Seal, SegmentHeader,
};
use mmlog::format::{ARCHIVE_MAGIC, FORMAT_VERSION, checkpoint, consumer_file};
use mmlog::{ArchiveMode, ArchivedSegment, Durability, Log, Options, Retention};

/// Largest segment body [`segment_scan`] writes: keeps every input quick.
const MAX_SEGMENT_BODY: usize = 1 << 14;

/// `frame_decode`: `decode_at` at every 8-aligned offset (and a few hostile ones) never panics,
/// and what it returns agrees with the bytes; a record re-encodes to the same bytes.
pub fn frame_decode(data: &[u8]) {
    for offset in (0..=data.len()).step_by(8) {
        check_frame_at(data, offset);
    }
    for offset in [1, data.len().saturating_sub(3), usize::MAX - 3, usize::MAX] {
        check_frame_at(data, offset);
    }
}

fn check_frame_at(data: &[u8], offset: usize) {
    let word = data
        .get(offset..offset.saturating_add(8))
        .map(|w| le_u64(w, 0));
    match frame::decode_at(data, offset) {
        Ok(Decoded::End) => assert!(matches!(word, None | Some(0)), "End at {offset}"),
        Ok(Decoded::EndOfSegment) => assert_eq!(word, Some(frame::END_OF_SEGMENT_WORD)),
        Ok(Decoded::Frame(f)) => {
            // The payload length in the commit word (a padding frame returns no payload).
            let len = match frame::decode_word(word.unwrap_or(0)) {
                Ok(frame::Word::Frame { payload_len, .. }) => payload_len as usize,
                other => panic!("decode_at returned a frame for the word {other:?}"),
            };
            let covered = frame::FRAME_HEADER_LEN + len;
            let bytes = &data[offset..offset + covered];
            assert_eq!(f.frame_len, frame::frame_len(len as u64));
            assert_eq!(f.seq, le_u64(bytes, frame::SEQ_OFFSET));
            assert_eq!(f.timestamp_ns, le_u64(bytes, frame::TIMESTAMP_OFFSET));
            match f.kind {
                FrameKind::Record => {
                    assert_eq!(f.payload, &bytes[frame::PAYLOAD_OFFSET..]);
                    let mut out = vec![0xEE; f.frame_len as usize];
                    let n = frame::encode_record(&mut out, f.seq, f.timestamp_ns, f.payload);
                    assert_eq!(n, Some(f.frame_len), "encode_record of a decoded record");
                    assert_eq!(
                        &out[..covered],
                        bytes,
                        "record at {offset} re-encodes differently"
                    );
                    // The padding after the payload is not covered by the CRC and readers
                    // ignore it (see the format spec): it need not re-encode identically.
                }
                FrameKind::Padding => assert!(f.payload.is_empty()),
                FrameKind::EndOfSegment => panic!("decode_at returned an end marker as a frame"),
            }
        }
        Err(_) => {}
    }
}

/// `segment_header_decode`: `SegmentHeader::decode` and `Seal::decode` never panic; a valid
/// header re-encodes to the first 64 bytes, a blank one is all zero, a seal re-encodes to
/// bytes 64..128.
pub fn segment_header_decode(data: &[u8]) {
    match SegmentHeader::decode(data) {
        Ok(HeaderState::Valid(h)) => {
            let input = data[..SEAL_OFFSET].to_vec();
            let canonical = h.encode();
            assert_eq!(&canonical[..], &input[..], "header re-encodes differently");
        }
        Ok(HeaderState::Blank) => assert!(data[..SEAL_OFFSET].iter().all(|&b| b == 0)),
        Err(_) => {}
    }
    if let Some(seal) = Seal::decode(data) {
        let input = &data[SEAL_OFFSET..SEGMENT_HEADER_LEN];
        let canonical = seal.encode();
        assert_eq!(&canonical[..], input, "seal re-encodes differently");
    }
}

/// `checkpoint_decode`: `checkpoint::decode` never panics; success means that
/// `encode(next_seq, timestamp, blob)` is a prefix of the input.
pub fn checkpoint_decode(data: &[u8]) {
    let Ok((h, blob)) = checkpoint::decode(data) else {
        return;
    };
    assert_eq!(h.blob_len, blob.len() as u64);
    let encoded = checkpoint::encode(h.next_seq, h.timestamp_ns, blob);
    assert!(
        encoded.len() <= data.len(),
        "checkpoint longer than its input"
    );
    assert_eq!(
        encoded,
        &data[..encoded.len()],
        "checkpoint re-encodes differently"
    );
}

/// `segment_scan`: the input becomes the frames of segment 0 of a log directory (behind a valid
/// header: base_seq 0, capacity = file length), then:
///
/// - `inspect::inspect(dir, deep)` succeeds for both `deep` values, without panicking;
/// - on a copy, `Log::open` succeeds (for an unsealed segment: recovery cuts a bad tail, it
///   never fails) or fails cleanly (sealed), and a reader from 0 yields exactly the records of
///   the segment's valid prefix, as `frame::decode_at` finds them (a prefix of them when the
///   segment carries a seal, which recovery trusts), then one append gets the next sequence
///   number and reads back.
///
/// Input layout: byte 0 holds flags. Bit 0: write a seal built from the next 32 bytes (four
/// little-endian `u64`: record count, end offset, first and max timestamp). Bits 2..8: how
/// many frames at the start of the body to make valid (dense sequence numbers, right CRCs),
/// so that the fuzzer reaches deep into recovery without having to forge CRCs. The rest is the
/// body, cut to 16 KiB and zero-padded to a multiple of 8.
pub fn segment_scan(data: &[u8]) -> ScanSummary {
    let Some((&flags, rest)) = data.split_first() else {
        return ScanSummary::default();
    };
    let (seal, body) = match (flags & 1 != 0, rest.get(..32)) {
        (true, Some(s)) => (Some(s), &rest[32..]),
        _ => (None, rest),
    };
    let body = &body[..body.len().min(MAX_SEGMENT_BODY)];
    let len = SEGMENT_HEADER_LEN + frame::align_up(body.len() as u64) as usize;
    let mut file = vec![0u8; len];
    let header = SegmentHeader {
        segment_id: 0,
        capacity: len as u64,
        base_seq: 0,
        created_ns: 1,
    };
    file[..SEAL_OFFSET].copy_from_slice(&header.encode());
    file[SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN + body.len()].copy_from_slice(body);
    fix_frames(&mut file, usize::from(flags >> 2));
    let seal = seal.map(|s| plausible_seal(s, len as u64));
    if let Some(seal) = seal {
        file[SEAL_OFFSET..SEGMENT_HEADER_LEN].copy_from_slice(&seal.encode());
    }
    check_segment_file(&file, seal.is_some())
}

/// What [`segment_scan`] went through (for the deterministic test's coverage checks).
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanSummary {
    /// The segment carried a seal.
    pub sealed: bool,
    /// Frames in the valid prefix (records and padding).
    pub frames: u64,
    /// `Log::open` succeeded.
    pub opened: bool,
    /// Recovery cut the log (`RecoveryReport::truncation`).
    pub truncated: bool,
    /// Records the reader returned.
    pub records_read: usize,
    /// The append after recovery succeeded.
    pub appended: bool,
}

/// Runs the `segment_scan` checks on one segment file (header included).
pub fn check_segment_file(file: &[u8], sealed: bool) -> ScanSummary {
    let mut summary = ScanSummary {
        sealed,
        ..ScanSummary::default()
    };
    let (expected, next_seq) = valid_prefix(file);
    summary.frames = next_seq;
    let tmp = scratch_dir();
    let inspected = tmp.path().join("inspected");
    let opened = tmp.path().join("opened");
    for dir in [&inspected, &opened] {
        let segments = dir.join("segments");
        fs::create_dir_all(&segments).expect("create segments dir");
        fs::write(segments.join("00000000000000000000.seg"), file).expect("write segment");
    }

    for deep in [false, true] {
        let found = mmlog::inspect::inspect(&inspected, deep).expect("inspect");
        assert_eq!(found.segments.len(), 1);
        if deep {
            assert_eq!(
                found.next_seq, next_seq,
                "inspect --deep disagrees with decode_at"
            );
        }
    }

    let options = Options::default()
        .segment_size(4096)
        .durability(Durability::Buffered);
    let log = match Log::open(&opened, options) {
        Ok(log) => log,
        Err(_) if sealed => return summary,
        Err(e) => panic!("open of an unsealed tail failed: {e}"),
    };
    summary.opened = true;
    summary.truncated = log.recovery_report().truncation.is_some();
    let next = log.recovery_report().next_seq;
    if !sealed {
        assert_eq!(next, next_seq, "recovery disagrees with decode_at");
    }
    let mut got = Vec::new();
    let mut failed = false;
    if let Ok(mut reader) = log.read_from(0) {
        while got.len() <= expected.len() {
            match reader.next() {
                Some(Ok(r)) => got.push((r.seq(), r.payload().to_vec())),
                Some(Err(_)) => {
                    failed = true;
                    break;
                }
                None => break,
            }
        }
    } else {
        failed = true;
    }
    if sealed {
        assert!(
            expected.starts_with(&got),
            "reader returned records the file does not hold"
        );
    } else {
        assert!(!failed, "reader failed on a recovered unsealed tail");
        assert_eq!(got, expected, "reader disagrees with decode_at");
    }
    summary.records_read = got.len();
    if let Ok(seq) = log.append(b"fuzz") {
        summary.appended = true;
        assert_eq!(seq, next, "first append after recovery");
        let mut reader = log.read_from(seq).expect("reader at the appended record");
        let rec = reader
            .next()
            .expect("the appended record")
            .expect("a valid record");
        assert_eq!((rec.seq(), rec.payload()), (seq, &b"fuzz"[..]));
    } else {
        assert!(sealed, "append after recovering an unsealed tail failed");
    }
    let _ = log.close();
    summary
}

/// The records of the valid prefix of a segment file as `decode_at` walks it (dense sequence
/// numbers from 0), and the sequence number after the last valid frame, padding included.
fn valid_prefix(file: &[u8]) -> (Vec<(u64, Vec<u8>)>, u64) {
    let (mut offset, mut seq) = (SEGMENT_HEADER_LEN, 0);
    let mut records = Vec::new();
    while let Ok(Decoded::Frame(f)) = frame::decode_at(file, offset) {
        if f.seq != seq {
            break;
        }
        if f.kind == FrameKind::Record {
            records.push((f.seq, f.payload.to_vec()));
        }
        offset += f.frame_len as usize;
        seq += 1;
    }
    (records, seq)
}

/// Makes the first `count` frames of the segment valid: whatever their commit words say about
/// kind (record or padding) and length, their sequence numbers become dense from 0 and their
/// CRCs right. Stops at the first word that is not a record or padding frame inside the file.
pub fn fix_frames(file: &mut [u8], count: usize) {
    let (mut offset, mut seq) = (SEGMENT_HEADER_LEN, 0u64);
    for _ in 0..count {
        let Some(w) = file.get(offset..offset + 8) else {
            return;
        };
        let len_kind = (le_u64(w, 0) >> (8 * frame::LEN_KIND_OFFSET)) as u32;
        let payload_len = u64::from(len_kind & ((1 << frame::LEN_BITS) - 1));
        let end = offset as u64 + frame::frame_len(payload_len);
        let kind = len_kind >> frame::LEN_BITS;
        if !(1..=2).contains(&kind) || end > file.len() as u64 {
            return;
        }
        file[offset + 8..offset + 16].copy_from_slice(&seq.to_le_bytes());
        let body_end = if kind == 1 {
            offset + 24 + payload_len as usize
        } else {
            offset + 24
        };
        let crc = checksum_append(
            checksum(&len_kind.to_le_bytes()),
            &file[offset + 8..body_end],
        );
        file[offset..offset + 8].copy_from_slice(&frame::commit_word(len_kind, crc).to_le_bytes());
        offset = end as usize;
        seq += 1;
    }
}

/// The seal the fuzzer asked for: as given when its record count is odd (impossible fields
/// must be refused cleanly), otherwise clamped to fields that fit the file, so that the
/// fuzzer also reaches the paths that trust a seal.
fn plausible_seal(s: &[u8], capacity: u64) -> Seal {
    let mut seal = Seal {
        record_count: le_u64(s, 0),
        end_offset: le_u64(s, 8),
        first_ts: le_u64(s, 16),
        max_ts: le_u64(s, 24),
    };
    if seal.record_count.is_multiple_of(2) {
        let header = SEGMENT_HEADER_LEN as u64;
        let room = capacity - header;
        seal.end_offset = header + frame::align_up(seal.end_offset % (room + 1)).min(room);
        let max_frames = (seal.end_offset - header) / frame::FRAME_HEADER_LEN as u64;
        seal.record_count %= max_frames + 1;
    }
    seal
}

/// `small_files_decode`: `consumer_file::decode` and `archive_file::decode_header` never panic.
///
/// - A consumer position file that decodes re-encodes to the input, and no single bit flip of
///   it decodes.
/// - An archive header that decodes has the documented bytes at the documented offsets (magic,
///   version, codec, the fields returned, zero reserved bytes, the header CRC), re-encodes to
///   the same block-independent prefix, and no single bit flip of its 48 bytes decodes.
pub fn small_files_decode(data: &[u8]) {
    if let Ok(p) = consumer_file::decode(data) {
        let canonical = consumer_file::encode(p);
        assert_eq!(&canonical[..], data, "consumer file re-encodes differently");
        assert_single_flips_rejected(data, |b| consumer_file::decode(b).is_ok(), "consumer");
    }
    let Ok(h) = archive_file::decode_header(data) else {
        return;
    };
    let b = &data[..ARCHIVE_HEADER_LEN];
    assert_eq!(b[..8], ARCHIVE_MAGIC, "archive header magic");
    assert_eq!(le_u32(b, archive_file::VERSION_OFFSET), FORMAT_VERSION);
    assert_eq!(
        le_u32(b, archive_file::CODEC_OFFSET),
        archive_file::CODEC_LZ4_BLOCK
    );
    assert_eq!(h.raw_len, le_u64(b, archive_file::RAW_LEN_OFFSET));
    assert_eq!(
        h.compressed_len,
        le_u64(b, archive_file::COMPRESSED_LEN_OFFSET)
    );
    assert_eq!(
        h.compressed_crc,
        le_u32(b, archive_file::COMPRESSED_CRC_OFFSET)
    );
    let reserved = archive_file::COMPRESSED_CRC_OFFSET + 4..archive_file::HEADER_CRC_OFFSET;
    assert!(b[reserved].iter().all(|&x| x == 0), "reserved bytes set");
    assert_eq!(
        le_u32(b, archive_file::HEADER_CRC_OFFSET),
        checksum(&b[..archive_file::HEADER_CRC_OFFSET]),
        "archive header CRC"
    );
    assert!(
        h.raw_len >= SEGMENT_HEADER_LEN as u64,
        "raw_len below a segment header"
    );
    // The bytes before `compressed_len` do not depend on the block.
    let prefix = archive_file::COMPRESSED_LEN_OFFSET;
    let canonical = archive_file::encode_header(h.raw_len, &[]);
    assert_eq!(
        canonical[..prefix],
        b[..prefix],
        "archive header re-encodes differently"
    );
    assert_eq!(
        archive_file::decode_header(b),
        Ok(h),
        "bytes after the header changed it"
    );
    assert_single_flips_rejected(
        b,
        |x| archive_file::decode_header(x).is_ok(),
        "archive header",
    );
}

fn assert_single_flips_rejected(valid: &[u8], decodes: impl Fn(&[u8]) -> bool, what: &str) {
    let mut b = valid.to_vec();
    for i in 0..b.len() * 8 {
        b[i / 8] ^= 1 << (i % 8);
        assert!(
            !decodes(&b),
            "{what}: flip of bit {} in byte {} accepted",
            i % 8,
            i / 8
        );
        b[i / 8] ^= 1 << (i % 8);
    }
}

/// Records in the log [`archive_open`] damages: 8-byte payloads, their own sequence numbers.
const TEMPLATE_RECORDS: u64 = 400;
/// Segment size of that log: about 120 records a segment.
const TEMPLATE_SEGMENT_SIZE: u64 = 4096;

/// `archive_open` control byte 1, bit 0: splice the input into the archive file at the offset
/// in control bytes 2..4 (little-endian; modulo the file length + 1 if beyond it) instead of
/// replacing the whole file with it. An offset within the file is taken as is, so that what
/// it hits does not change with the file's length (which changes from one process to the
/// next, with the timestamps LZ4 compresses).
pub const ARCHIVE_SPLICE: u8 = 1;
/// Bit 1 (with bit 0): cut the file after the spliced bytes.
pub const ARCHIVE_TRUNCATE: u8 = 2;
/// Bit 2: then set `compressed_len` to the length of what follows the segment header.
pub const ARCHIVE_FIX_LEN: u8 = 4;
/// Bit 3: then make every CRC of the file right (block, archive header, segment identity and
/// seal), so that the damage gets past the checksums into the LZ4 decoder and the readers.
pub const ARCHIVE_FIX_CRCS: u8 = 8;

/// `archive_open`: a small log (400 records of 4 KiB segments, the first three compacted into
/// `archive/*.seg.lz4`, built once per process) gets one of its archive files damaged by the
/// input, and is opened again. Then:
///
/// - `Log::open` succeeds (the archive is not read at open); `archived_segments` and
///   `verify_archive` return `Ok` (damage is reported inside, never as a failure of the call);
/// - the other archive files are listed exactly as before; the damaged one is either listed,
///   with the fields its headers hold, or named as damaged, never both; a file whose headers
///   fail their checks is not listed; a damaged file makes `verify_archive` report problems;
/// - a reader from 0, one from the end of the damaged segment and one from inside it return
///   records in increasing sequence order, each one that was written (payload = its sequence
///   number, the timestamp it got), unless the damaged file itself holds that record as a
///   valid frame (which the fuzzer can forge); iteration ends within a bound, and ends with
///   an error unless it got to the last record (`None`, "nothing more yet", is the end of
///   this closed log: damage must not pass for it);
/// - when `verify_archive` finds nothing wrong, a reader from 0 gets to the last record;
/// - when the damaged file is named as damaged, the records before it are all readable,
///   exactly, and then the reader fails; unless the file is listed with other fields than
///   before, the records after it are all readable, exactly; when the file is unchanged,
///   everything is as before the damage.
///
/// Input layout: byte 0 picks the archive file (modulo their number), byte 1 holds the
/// `ARCHIVE_*` flags above, bytes 2..4 the splice offset; the rest is the bytes written.
///
/// The log's timestamps (in its frames, headers and seals) come from the clock, and LZ4
/// compresses them, so the archive files differ a little from one process to the next: an
/// input that damages the block at a fixed offset, or whose outcome depends on the bytes it
/// did not overwrite, may not reproduce. Damage to the headers with `ARCHIVE_FIX_CRCS`, and
/// whole-file replacements, do.
pub fn archive_open(data: &[u8]) -> ArchiveSummary {
    let Some((ctl, rest)) = data.split_at_checked(4) else {
        return ArchiveSummary::default();
    };
    let t = template();
    let k = usize::from(ctl[0]) % t.archived.len();
    let original = &t.files[t.archived[k]].1;
    let offset = usize::from(u16::from_le_bytes([ctl[2], ctl[3]]));
    let file = damage_archive_file(original, ctl[1], offset, rest);
    check_archive_file(k, &file)
}

/// The archive files of the `archive_open` log, by segment id (for building inputs).
pub fn archived_files() -> Vec<Vec<u8>> {
    let t = template();
    t.archived.iter().map(|&i| t.files[i].1.clone()).collect()
}

/// What [`archive_open`] went through (for the deterministic test's coverage checks).
#[derive(Clone, Copy, Debug, Default)]
pub struct ArchiveSummary {
    /// The archive file was left as it was.
    pub unchanged: bool,
    /// `archived_segments` listed it.
    pub listed: bool,
    /// `archived_segments` named it as damaged.
    pub damaged: bool,
    /// `verify_archive` found nothing wrong.
    pub clean: bool,
    /// Records a reader from 0 returned before its first error.
    pub records_read: usize,
    /// The reader from 0 failed (at `read_from` or with an error from `next`).
    pub read_failed: bool,
    /// Records returned that were never written but that the damaged file holds.
    pub forged: usize,
}

/// Applies the damage `archive_open` describes to `original`.
fn damage_archive_file(original: &[u8], flags: u8, offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut f = if flags & ARCHIVE_SPLICE == 0 {
        bytes.to_vec()
    } else {
        let mut f = original.to_vec();
        let at = if offset <= f.len() {
            offset
        } else {
            offset % (f.len() + 1)
        };
        let end = at + bytes.len();
        if f.len() < end {
            f.resize(end, 0);
        }
        f[at..end].copy_from_slice(bytes);
        if flags & ARCHIVE_TRUNCATE != 0 {
            f.truncate(end);
        }
        f
    };
    if f.len() < BLOCK_AT {
        return f;
    }
    if flags & ARCHIVE_FIX_LEN != 0 {
        let len = (f.len() - BLOCK_AT) as u64;
        let at = archive_file::COMPRESSED_LEN_OFFSET;
        f[at..at + 8].copy_from_slice(&len.to_le_bytes());
    }
    if flags & ARCHIVE_FIX_CRCS != 0 {
        let crc = checksum(&f[BLOCK_AT..]);
        put_crc(&mut f, archive_file::COMPRESSED_CRC_OFFSET, crc);
        let crc = checksum(&f[..archive_file::HEADER_CRC_OFFSET]);
        put_crc(&mut f, archive_file::HEADER_CRC_OFFSET, crc);
        let h = SEGMENT_HEADER_AT;
        let crc = checksum(&f[h..h + segment_header::HEADER_CRC_OFFSET]);
        put_crc(&mut f, h + segment_header::HEADER_CRC_OFFSET, crc);
        let crc = checksum(&f[h + SEAL_OFFSET..h + segment_header::SEAL_CRC_OFFSET]);
        put_crc(&mut f, h + segment_header::SEAL_CRC_OFFSET, crc);
    }
    f
}

fn put_crc(f: &mut [u8], at: usize, crc: u32) {
    f[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Runs the `archive_open` checks with `file` in place of archive file `k` (by position in
/// the archive, which is also its segment id).
pub fn check_archive_file(k: usize, file: &[u8]) -> ArchiveSummary {
    let t = template();
    let (name, original) = {
        let (path, bytes) = &t.files[t.archived[k]];
        (path.file_name().expect("file name").to_owned(), bytes)
    };
    let before = t.entries[k];
    let mut summary = ArchiveSummary {
        unchanged: file == &original[..],
        ..ArchiveSummary::default()
    };
    let tmp = scratch_dir();
    let dir = tmp.path().join("log");
    for (path, contents) in &t.files {
        let to = dir.join(path);
        fs::create_dir_all(to.parent().expect("parent")).expect("create dir");
        let bytes = if path.file_name() == Some(&name) {
            file
        } else {
            contents
        };
        fs::write(&to, bytes).expect("write log file");
    }
    let log = Log::open(&dir, archive_options())
        .unwrap_or_else(|e| panic!("open failed over a damaged archive file: {e}"));

    let (entries, damaged) = log.archived_segments().expect("archived_segments");
    let listed = entries.iter().find(|e| e.id == before.id);
    summary.listed = listed.is_some();
    summary.damaged = damaged.iter().any(|d| d.path.file_name() == Some(&name));
    assert_eq!(
        damaged.len(),
        usize::from(summary.damaged),
        "undamaged files named as damaged: {damaged:?}"
    );
    assert!(
        summary.listed != summary.damaged,
        "the file is listed: {}, named as damaged: {}",
        summary.listed,
        summary.damaged
    );
    let others: Vec<EntryFields> = entries
        .iter()
        .filter(|e| e.id != before.id)
        .map(EntryFields::of)
        .collect();
    let expected: Vec<EntryFields> = t
        .entries
        .iter()
        .copied()
        .filter(|e| e.id != before.id)
        .collect();
    assert_eq!(
        others, expected,
        "the undamaged archive files are listed differently"
    );
    if let Some(e) = listed {
        check_listed(e, file);
    }
    if summary.unchanged {
        assert_eq!(listed.map(EntryFields::of), Some(before), "unchanged file");
    }

    let check = log.verify_archive().expect("verify_archive");
    summary.clean = check.is_clean();
    if summary.damaged {
        assert!(!summary.clean, "verify_archive misses the damaged file");
    }
    if summary.unchanged {
        assert!(
            summary.clean,
            "an intact archive fails to verify: {:?}",
            check.problems
        );
    }

    let from_zero = read_checked(&log, 0, file);
    summary.records_read = from_zero.seqs.len();
    summary.read_failed = from_zero.failed;
    let (start, end) = (before.base_seq, before.base_seq + before.record_count);
    let mid = start + before.record_count / 2 + 1;
    let after = read_checked(&log, end, file);
    let inside = read_checked(&log, mid, file);
    summary.forged = from_zero.forged + after.forged + inside.forged;
    if summary.clean {
        // What verifies reads back: every record, through to the end.
        assert!(
            !from_zero.failed && from_zero.ended,
            "verify_archive finds nothing wrong, but a reader from 0 fails after record {:?}",
            from_zero.last
        );
    }
    if summary.unchanged {
        let all: Vec<u64> = (0..TEMPLATE_RECORDS).collect();
        assert_eq!(from_zero.seqs, all, "reader from 0");
        assert!(!from_zero.failed && from_zero.ended);
        assert_eq!(inside.seqs, (mid..TEMPLATE_RECORDS).collect::<Vec<_>>());
    }
    if summary.damaged {
        // Everything before the damaged segment reads back, then the reader stops on an error.
        assert_eq!(
            from_zero.seqs,
            (0..start).collect::<Vec<_>>(),
            "reader from 0 over damaged archive segment {}",
            before.id
        );
        assert!(
            from_zero.failed,
            "reader from 0 passed a damaged segment without an error"
        );
    }
    // Readers look archived segments up by the fields listed: unless those changed, the
    // damaged segment cannot get in the way of the ones after it.
    if listed.is_none_or(|e| EntryFields::of(e) == before) {
        assert_eq!(
            after.seqs,
            (end..TEMPLATE_RECORDS).collect::<Vec<_>>(),
            "reader from {end}, after the damaged segment"
        );
        assert!(!after.failed && after.ended, "reader from {end} failed");
    }
    let _ = log.close();
    summary
}

/// A listed archived segment agrees with the headers in its file.
fn check_listed(e: &ArchivedSegment, file: &[u8]) {
    assert!(
        archive_file::decode_header(file).is_ok(),
        "listed with a bad archive header"
    );
    let h = &file[SEGMENT_HEADER_AT..BLOCK_AT];
    assert!(
        matches!(SegmentHeader::decode(h), Ok(HeaderState::Valid(_))),
        "listed with a bad segment header"
    );
    let seal = Seal::decode(h).expect("listed without a seal");
    assert!(e.compressed);
    assert_eq!(e.file_bytes, file.len() as u64);
    assert_eq!(e.id, le_u64(h, segment_header::SEGMENT_ID_OFFSET));
    assert_eq!(e.base_seq, le_u64(h, segment_header::BASE_SEQ_OFFSET));
    assert_eq!(e.capacity, le_u64(h, segment_header::CAPACITY_OFFSET));
    assert_eq!(
        (e.record_count, e.first_ts_ns, e.max_ts_ns),
        (seal.record_count, seal.first_ts, seal.max_ts)
    );
}

/// What a reader returned.
#[derive(Default)]
struct ReadOutcome {
    /// Records before the first error.
    seqs: Vec<u64>,
    /// `read_from` or `next` failed.
    failed: bool,
    /// `next` returned `None`.
    ended: bool,
    /// Records that were not written but that `file` holds as valid frames.
    forged: usize,
    /// The last record returned.
    last: Option<u64>,
}

/// Reads from `from` until `None`, three errors, or more items than the log can hold; checks
/// every record (see [`archive_open`]).
fn read_checked(log: &Log, from: u64, file: &[u8]) -> ReadOutcome {
    let t = template();
    let mut out = ReadOutcome::default();
    let Ok(mut reader) = log.read_from(from) else {
        out.failed = true;
        return out;
    };
    let mut last = None;
    let mut errors = 0;
    // Every record written, every frame the damaged file could hold, a few errors.
    let bound = TEMPLATE_RECORDS as usize + (file.len() + 1) * 256 / 24 + 8;
    for _ in 0..bound {
        match reader.next() {
            None => {
                // The log is closed: `None` ("nothing more yet") means its end, never a
                // segment that lost records.
                assert_eq!(
                    out.last,
                    Some(TEMPLATE_RECORDS - 1),
                    "reader from {from} reports the end of the log early, without an error"
                );
                out.ended = true;
                return out;
            }
            Some(Err(_)) => {
                out.failed = true;
                errors += 1;
                if errors == 3 {
                    return out;
                }
            }
            Some(Ok(r)) => {
                let seq = r.seq();
                assert!(seq >= from, "reader from {from} returned record {seq}");
                if let Some(prev) = last {
                    assert!(seq > prev, "record {seq} after record {prev}");
                }
                last = Some(seq);
                out.last = last;
                let written = seq < TEMPLATE_RECORDS
                    && r.payload() == seq.to_le_bytes()
                    && r.timestamp_ns() == t.timestamps[seq as usize];
                if !written {
                    assert!(
                        frame_in_archive_file(file, seq, r.timestamp_ns(), r.payload()),
                        "reader returned record {seq} (timestamp {}, payload {:02x?}), which \
                         was never written and is no valid frame of the damaged file",
                        r.timestamp_ns(),
                        r.payload()
                    );
                    out.forged += 1;
                }
                if !out.failed {
                    out.seqs.push(seq);
                }
            }
        }
    }
    panic!("reader from {from} returned more than {bound} items");
}

/// Whether the segment that archive file `file` decompresses to holds the record frame
/// `(seq, timestamp, payload)` with a valid CRC at some 8-aligned offset.
fn frame_in_archive_file(file: &[u8], seq: u64, ts: u64, payload: &[u8]) -> bool {
    let Some(header) = file.get(SEGMENT_HEADER_AT..BLOCK_AT) else {
        return false;
    };
    let block = &file[BLOCK_AT..];
    let raw_len = le_u64(file, archive_file::RAW_LEN_OFFSET);
    // LZ4 expands at most 255 times: a larger buffer changes nothing.
    let cap = block.len() as u64 * 256 + 64;
    let body_len = raw_len.saturating_sub(SEGMENT_HEADER_LEN as u64).min(cap);
    let mut segment = vec![0u8; SEGMENT_HEADER_LEN + body_len as usize];
    segment[..SEGMENT_HEADER_LEN].copy_from_slice(header);
    if lz4_flex::block::decompress_into(block, &mut segment[SEGMENT_HEADER_LEN..]).is_err() {
        return false;
    }
    (SEGMENT_HEADER_LEN..segment.len()).step_by(8).any(|at| {
        matches!(frame::decode_at(&segment, at), Ok(Decoded::Frame(f))
            if f.kind == FrameKind::Record
                && (f.seq, f.timestamp_ns, f.payload) == (seq, ts, payload))
    })
}

/// The comparable fields of an [`ArchivedSegment`] (its path is in a different directory for
/// every input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntryFields {
    id: u64,
    base_seq: u64,
    record_count: u64,
    first_ts_ns: u64,
    max_ts_ns: u64,
    compressed: bool,
    file_bytes: u64,
    capacity: u64,
}

impl EntryFields {
    fn of(e: &ArchivedSegment) -> EntryFields {
        EntryFields {
            id: e.id,
            base_seq: e.base_seq,
            record_count: e.record_count,
            first_ts_ns: e.first_ts_ns,
            max_ts_ns: e.max_ts_ns,
            compressed: e.compressed,
            file_bytes: e.file_bytes,
            capacity: e.capacity,
        }
    }
}

/// The `archive_open` log, closed, as files in memory.
struct Template {
    /// Every file: path relative to the log directory, contents.
    files: Vec<(PathBuf, Vec<u8>)>,
    /// Positions in `files` of the compressed archive files, by segment id.
    archived: Vec<usize>,
    /// The archived segments as listed before closing, by id.
    entries: Vec<EntryFields>,
    /// The timestamp of every record, by sequence number.
    timestamps: Vec<u64>,
}

fn archive_options() -> Options {
    Options::default()
        .segment_size(TEMPLATE_SEGMENT_SIZE)
        .durability(Durability::Buffered)
        .retention(Retention::default().archive(ArchiveMode::Compress))
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(build_template)
}

/// Writes the log, checkpoints it near the end, compacts it into a compressed archive, reads
/// it all back, closes it and keeps its files.
fn build_template() -> Template {
    let tmp = scratch_dir();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, archive_options()).expect("open the template log");
    for seq in 0..TEMPLATE_RECORDS {
        assert_eq!(log.append(&seq.to_le_bytes()).expect("append"), seq);
    }
    log.checkpoint(TEMPLATE_RECORDS - 10, b"template")
        .expect("checkpoint");
    let report = log.compact().expect("compact");
    assert!(report.segments_archived >= 2, "{report:?}");
    let mut timestamps = Vec::new();
    let mut reader = log.read_from(0).expect("reader");
    while let Some(r) = reader.next() {
        let r = r.expect("template record");
        assert_eq!(r.payload(), (timestamps.len() as u64).to_le_bytes());
        timestamps.push(r.timestamp_ns());
    }
    assert_eq!(timestamps.len() as u64, TEMPLATE_RECORDS);
    drop(reader);
    let (listed, damaged) = log.archived_segments().expect("archived_segments");
    assert!(damaged.is_empty() && log.verify_archive().expect("verify").is_clean());
    let entries: Vec<EntryFields> = listed.iter().map(EntryFields::of).collect();
    assert!(
        entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.id == i as u64 && e.compressed)
    );
    log.close().expect("close the template log");

    let mut files = Vec::new();
    collect_files(&dir, Path::new(""), &mut files);
    files.sort();
    let archived = listed
        .iter()
        .map(|e| {
            let rel = e.path.strip_prefix(&dir).expect("archive file in the log");
            files
                .iter()
                .position(|(p, _)| p == rel)
                .expect("archive file")
        })
        .collect();
    Template {
        files,
        archived,
        entries,
        timestamps,
    }
}

fn collect_files(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("dir entry");
        let (path, rel) = (entry.path(), rel.join(entry.file_name()));
        if path.is_dir() {
            collect_files(&path, &rel, out);
        } else {
            out.push((rel, fs::read(&path).expect("read log file")));
        }
    }
}

/// A fresh directory for one input, on tmpfs when there is one (recovery syncs files).
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("mmlog-fuzz-")
        .tempdir_in(base)
        .expect("scratch dir")
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

/// Most records or events [`event_store_open`] writes.
const MAX_EVENTS: usize = 48;

/// What [`event_store_open`] went through (for the deterministic test's coverage checks).
#[derive(Clone, Copy, Debug, Default)]
pub struct EventStoreSummary {
    /// The records were well-formed events, written through `EventStore::append`.
    pub scripted: bool,
    /// A snapshot blob from the input was stored as the newest checkpoint.
    pub hostile_snapshot: bool,
    /// `EventStore::open_with` succeeded.
    pub opened: bool,
    /// The state was compared with a model of the events and matched.
    pub checked_against_model: bool,
}

/// `event_store_open`: an event store over arbitrary records, or over well-formed events,
/// and with an arbitrary snapshot blob as its newest checkpoint (written through the log's
/// public API, so every checksum is valid) opens or fails with an error, never a panic; so do
/// reads, time travel to every point and the audit trail. Without a foreign snapshot, a
/// store whose records all decode holds exactly the state the events describe, now and at
/// every point.
///
/// Input: `flags`, `count`, then `count` records (scripted: 3 bytes each, `kind writer id`;
/// raw: a length byte and that many bytes), then the snapshot blob. Flags: bit 0 stores the
/// blob as a checkpoint at the last record, bit 1 scripts the events, bit 2 takes a real
/// snapshot halfway (scripted only).
pub fn event_store_open(data: &[u8]) -> EventStoreSummary {
    use mmlog::events::{Consistency, Event, EventStore, EventStoreOptions};

    let (Some(&flags), Some(&count)) = (data.first(), data.get(1)) else {
        return EventStoreSummary::default();
    };
    let mut rest = &data[2..];
    let count = usize::from(count) % (MAX_EVENTS + 1);
    let mut summary = EventStoreSummary {
        scripted: flags & 2 != 0,
        ..EventStoreSummary::default()
    };
    let tmp = scratch_dir();
    let dir = tmp.path().join("store");
    let options = || Options::default().segment_size(mmlog::SEGMENT_SIZE_MIN * 4);
    let store_options = || EventStoreOptions {
        snapshot_every_events: 0,
        snapshot_every: None,
        refresh_every: std::time::Duration::from_secs(3600),
    };
    let id = |b: u8| uuid::Uuid::from_bytes([b % 8; 16]);
    let mut appended = 0u64;
    if summary.scripted {
        let store = EventStore::open_with(&dir, options(), store_options()).expect("open");
        for (i, op) in rest.chunks_exact(3).take(count).enumerate() {
            let event = if op[0] % 3 == 0 {
                Event::DataRemoved {
                    writer_id: u32::from(op[1]),
                    item_id: id(op[2]),
                }
            } else {
                Event::DataWritten {
                    writer_id: u32::from(op[1]),
                    item_id: id(op[2]),
                    data: format!("{i}-{}", op[0]),
                }
            };
            assert_eq!(store.append(&event).expect("append"), appended);
            appended += 1;
            if flags & 4 != 0 && i == count / 2 {
                store.snapshot().expect("snapshot");
            }
        }
        rest = &rest[(3 * count).min(rest.len())..];
        store.close().expect("close");
    } else {
        let log = Log::open(&dir, options()).expect("open");
        for _ in 0..count {
            let Some((&len, tail)) = rest.split_first() else {
                break;
            };
            let record = &tail[..usize::from(len).min(tail.len())];
            rest = &tail[record.len()..];
            assert_eq!(log.append(record).expect("append"), appended);
            appended += 1;
        }
        log.close().expect("close");
    }
    if flags & 1 != 0 && appended > 0 {
        let log = Log::open(&dir, options()).expect("reopen");
        log.checkpoint(appended - 1, rest).expect("checkpoint");
        log.close().expect("close");
        summary.hostile_snapshot = true;
    }

    let Ok(store) = EventStore::open_with(&dir, options(), store_options()) else {
        assert!(
            !summary.scripted || summary.hostile_snapshot,
            "well-formed events must open"
        );
        return summary;
    };
    summary.opened = true;
    let events: Vec<_> = match store.events_from(0) {
        Ok(events) => events.collect(),
        Err(_) => Vec::new(),
    };
    let all_decode = events.len() as u64 == appended && events.iter().all(|e| e.is_ok());
    if summary.scripted {
        assert!(all_decode, "every scripted event reads back");
    }
    let now = store.read(Consistency::Strong);
    for seq in 0..appended {
        let _ = store
            .state_at_seq(seq)
            .map(|s| (s.len(), s.items().count()));
    }
    for b in 0..8 {
        let _ = store.history(id(b));
    }
    let _ = store.changes_between(std::time::UNIX_EPOCH, std::time::SystemTime::now());
    if !all_decode || summary.hostile_snapshot {
        return summary;
    }
    // The model: the events applied one by one.
    let events: Vec<_> = events.into_iter().flatten().collect();
    let mut model = std::collections::HashMap::new();
    let mut at = Vec::new();
    for ev in &events {
        match ev.event() {
            Event::DataWritten { item_id, data, .. } => {
                model.insert(*item_id, (data.clone(), ev.seq()));
            }
            Event::DataRemoved { item_id, .. } => {
                model.remove(item_id);
            }
            _ => {}
        }
        at.push(model.clone());
    }
    let same = |state: &mmlog::events::State,
                model: &std::collections::HashMap<_, (String, u64)>| {
        state.len() == model.len()
            && state.items().count() == model.len()
            && state
                .items()
                .all(|(id, item)| model.get(&id) == Some(&(item.data.to_owned(), item.seq)))
    };
    let now = now.expect("a strong read of well-formed events");
    assert!(
        same(&now, &model),
        "the state differs from the events' model"
    );
    for (seq, expected) in at.iter().enumerate() {
        let then = store.state_at_seq(seq as u64).expect("state_at_seq");
        assert!(
            same(&then, expected),
            "state_at_seq({seq}) differs from the model"
        );
    }
    summary.checked_against_model = true;
    summary
}

/// What [`log_ops`] exercised.
#[derive(Clone, Debug, Default)]
pub struct LogOpsSummary {
    /// Operations run.
    pub ops: usize,
    /// Simulated power cuts (each followed by a restart on what the disk held).
    pub crashes: usize,
    /// Crashes armed inside an operation that then failed.
    pub crashes_inside_ops: usize,
    /// Records checked against the model after a crash.
    pub records_checked: u64,
}

/// `log_ops`: a model-based run over arbitrary operation sequences with simulated power cuts
/// (`mmlog::testing::PowerLoss`). Each input byte is one operation, with arguments drawn
/// from the bytes after it: append (0..=255 bytes), batch, sync, checkpoint, compact, clean
/// reopen, a power cut now, or a power cut armed a few storage operations ahead. After every
/// cut the log is opened on what the disk could hold and must contain every acknowledged
/// record and otherwise only a prefix of the attempted ones, byte for byte; the run then
/// goes on from there. Never a panic, never an error from an open.
pub fn log_ops(data: &[u8]) -> LogOpsSummary {
    use mmlog::testing::PowerLoss;

    const MAX_OPS: usize = 96;
    let immediate = data.first().is_some_and(|b| b & 1 == 1);
    let options = || {
        Options::default()
            .segment_size(mmlog::SEGMENT_SIZE_MIN)
            .durability(if immediate {
                Durability::Immediate
            } else {
                Durability::Buffered
            })
            .index_interval(2)
            .keep_checkpoints(2)
            .retention(
                Retention::default()
                    .keep_records(16)
                    .archive(ArchiveMode::Move),
            )
    };
    let tmp = scratch_dir();
    let mut summary = LogOpsSummary::default();
    let mut generation = 0u32;
    let dir_of = |g: u32| tmp.path().join(format!("gen{g}"));
    // The model: what each record may be, and how many are acknowledged as durable.
    let mut attempted: Vec<Vec<u8>> = Vec::new();
    let mut durable = 0usize;
    let mut machine = PowerLoss::new(dir_of(0), 0).expect("simulate");
    let mut log = Some(Log::open(dir_of(0), options()).expect("open a new log"));
    let mut bytes = data.iter().skip(1).copied();
    let mut arg = move || bytes.next();
    let mut seed = 1u64;
    while summary.ops < MAX_OPS {
        let Some(op) = arg() else { break };
        summary.ops += 1;
        let Some(l) = log.as_ref() else { break };
        let ok = match op % 10 {
            0..=2 => {
                let len = usize::from(arg().unwrap_or(0));
                let seq = attempted.len() as u64;
                attempted.push(payload_for(seq, len));
                match l.append(&attempted[seq as usize]) {
                    Ok(s) => {
                        assert_eq!(s, seq, "append returned the wrong sequence number");
                        if immediate {
                            durable = attempted.len();
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
            3 => {
                let n = 1 + usize::from(arg().unwrap_or(0) % 6);
                let first = attempted.len();
                for i in 0..n {
                    let len = usize::from(arg().unwrap_or(0) % 64);
                    attempted.push(payload_for((first + i) as u64, len));
                }
                let batch: Vec<&[u8]> = attempted[first..].iter().map(Vec::as_slice).collect();
                match l.append_batch(&batch) {
                    Ok(s) => {
                        assert_eq!(s, first as u64, "batch returned the wrong sequence number");
                        if immediate {
                            durable = attempted.len();
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
            4 => {
                let ok = l.sync().is_ok();
                if ok {
                    durable = attempted.len();
                }
                ok
            }
            5 => match attempted.len().checked_sub(1) {
                Some(last) => {
                    let seq = u64::from(arg().unwrap_or(0)) % (last as u64 + 1);
                    match l.checkpoint(seq, &seq.to_le_bytes()) {
                        Ok(_) => {
                            durable = durable.max(seq as usize + 1);
                            true
                        }
                        Err(_) => false,
                    }
                }
                None => true,
            },
            6 => l.compact().is_ok(),
            7 => {
                let closed = log.take().map(Log::close);
                if matches!(closed, Some(Ok(()))) {
                    durable = attempted.len();
                }
                match Log::open(dir_of(generation), options()) {
                    Ok(l) => {
                        log = Some(l);
                        true
                    }
                    Err(_) => false,
                }
            }
            8 => false, // a power cut now
            _ => {
                // A power cut a few storage operations ahead, inside whatever comes next.
                let n = 1 + u64::from(arg().unwrap_or(0) % 8);
                machine.crash_before_op(n, dir_of(generation + 1));
                true
            }
        };
        let crashed = machine.crashed().is_some();
        if ok && !crashed {
            continue;
        }
        // The machine goes off (now, or it already did inside the operation), then restarts
        // on what the disk held.
        if crashed {
            summary.crashes_inside_ops += 1;
        }
        // Also when an armed crash came first: then this returns that one.
        let image = machine
            .crash_now(dir_of(generation + 1))
            .expect("write the crash image");
        assert_eq!(image.dir, dir_of(generation + 1));
        drop(log.take());
        generation += 1;
        seed += 1;
        machine = PowerLoss::new(dir_of(generation), seed).expect("simulate");
        let restarted = Log::open(dir_of(generation), options()).unwrap_or_else(|e| {
            panic!("open after a power cut failed: {e} ({e:?})");
        });
        let found = check_against_model(&restarted, &attempted, durable);
        summary.crashes += 1;
        summary.records_checked += found as u64;
        // Recovery made what it kept durable: that is the model from now on.
        attempted.truncate(found);
        durable = found;
        log = Some(restarted);
    }
    drop(log);
    drop(machine);
    summary
}

fn payload_for(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i * 7) as u8)
        .collect()
}

/// Reads the whole log (through the archive): records `0..durable` must be there, and every
/// record must be the attempted one with its sequence number. Returns how many there are.
fn check_against_model(log: &Log, attempted: &[Vec<u8>], durable: usize) -> usize {
    let mut reader = log.read_from(0).expect("read from 0 after a power cut");
    let mut found = 0usize;
    while let Some(rec) = reader.next() {
        let rec = rec.unwrap_or_else(|e| panic!("record {found} after a power cut: {e}"));
        assert_eq!(rec.seq(), found as u64, "sequence numbers not dense");
        let want = attempted
            .get(found)
            .unwrap_or_else(|| panic!("record {found} was never appended"));
        assert_eq!(rec.payload(), want.as_slice(), "record {found} differs");
        found += 1;
    }
    assert!(
        found >= durable,
        "acknowledged records lost: {found} found, {durable} acknowledged"
    );
    found
}
