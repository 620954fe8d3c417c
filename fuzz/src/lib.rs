//! Property checks for mmlog's decoders and recovery, shared by the fuzz targets in
//! `fuzz/fuzz_targets/` and by the root crate's `tests/fuzz_corpus.rs` (which includes this
//! file with `#[path]`, so `cargo test` runs the same checks over deterministic inputs).
//!
//! Every function takes arbitrary bytes and returns normally unless mmlog breaks a property:
//! a panic here is a finding. Only mmlog's public API is used.

use std::fs;
use std::path::Path;

use mmlog::format::checkpoint;
use mmlog::format::crc::{checksum, checksum_append};
use mmlog::format::frame::{self, Decoded, FrameKind};
use mmlog::format::segment_header::{
    HeaderState, SEAL_OFFSET, SEGMENT_HEADER_LEN, Seal, SegmentHeader,
};
use mmlog::{Durability, Log, Options};

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
