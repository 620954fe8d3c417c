//! Damaged directories: each case gives a truncation with a report, or a clear error; never a
//! panic, never a record that differs from what was written.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use mmlog::{CorruptionKind, Durability, Error, Log, Options};

use crate::support::{open, payload, read_all};

const SEG: u64 = 4096;

fn opts() -> Options {
    Options::default()
        .segment_size(SEG)
        .durability(Durability::Buffered)
}

/// Writes `n` records to a fresh log in `dir` and closes it cleanly.
fn write_log(dir: &Path, n: usize) -> Vec<(u64, Vec<u8>)> {
    let log = open(dir, opts());
    for i in 0..n {
        log.append(&payload(0, i, 40 + i % 60)).unwrap();
    }
    let all = read_all(&log);
    log.close().unwrap();
    all
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, offset).unwrap();
    b
}

/// The offsets of the frames of an unsealed segment, by walking lengths from the header.
fn frame_offsets(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 128usize;
    let mut out = Vec::new();
    while at + 8 <= bytes.len() {
        let lk = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        if lk >> 30 != 1 {
            break;
        }
        out.push(at as u64);
        at += (24 + (lk & 0x3FFF_FFFF) as usize).div_ceil(8) * 8;
    }
    out
}

fn assert_prefix(got: &[(u64, Vec<u8>)], all: &[(u64, Vec<u8>)]) {
    assert!(got.len() <= all.len());
    assert_eq!(
        got,
        &all[..got.len()],
        "recovered records differ from what was written"
    );
}

#[test]
fn flipped_byte_in_the_tail_truncates_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let all = write_log(dir.path(), 200);
    let tail = segment_files(dir.path()).pop().unwrap();
    let frames = frame_offsets(&tail);
    assert!(frames.len() >= 3, "tail segment should hold several frames");
    let victim = frames[frames.len() - 2];
    let b = read_at(&tail, victim + 30, 1);
    patch(&tail, victim + 30, &[b[0] ^ 0x10]);

    let log = open(dir.path(), opts());
    let report = log.recovery_report().clone();
    let t = report.truncation.expect("a truncation");
    assert_eq!(t.path, tail);
    assert_eq!(t.offset, victim);
    assert!(
        matches!(t.reason, Some(CorruptionKind::ChecksumMismatch { .. })),
        "{t:?}"
    );
    assert!(t.records_dropped >= 1 && t.bytes_dropped > 0, "{t:?}");
    let got = read_all(&log);
    assert_eq!(got.len(), all.len() - 2);
    assert_prefix(&got, &all);
    // What was cut is gone for good: appending and reopening never brings it back.
    log.append(b"new").unwrap();
    log.close().unwrap();
    let log = open(dir.path(), opts());
    assert!(
        log.recovery_report().is_clean(),
        "{:?}",
        log.recovery_report()
    );
    let again = read_all(&log);
    assert_eq!(again.len(), got.len() + 1);
    assert_eq!(again.last().unwrap().1, b"new");
}

#[test]
fn zeroed_tail_ends_the_log_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let all = write_log(dir.path(), 200);
    let tail = segment_files(dir.path()).pop().unwrap();
    let frames = frame_offsets(&tail);
    let from = frames[frames.len() / 2];
    patch(&tail, from, &vec![0u8; (SEG - from) as usize]);
    let log = open(dir.path(), opts());
    assert!(log.recovery_report().truncation.is_none());
    let got = read_all(&log);
    assert_eq!(got.len(), all.len() - (frames.len() - frames.len() / 2));
    assert_prefix(&got, &all);
}

#[test]
fn an_unpublished_frame_before_published_ones_cuts_the_log_there() {
    // A writer reserved a frame and died before publishing it; later writers published theirs.
    let dir = tempfile::tempdir().unwrap();
    let all = write_log(dir.path(), 200);
    let tail = segment_files(dir.path()).pop().unwrap();
    let frames = frame_offsets(&tail);
    let hole = frames[1];
    patch(&tail, hole, &[0u8; 8]);
    let log = open(dir.path(), opts());
    let t = log
        .recovery_report()
        .truncation
        .clone()
        .expect("a truncation");
    assert_eq!((t.offset, t.reason), (hole, None));
    assert_eq!(t.records_dropped as usize, frames.len() - 2);
    let got = read_all(&log);
    assert_eq!(got.len(), all.len() - (frames.len() - 1));
    assert_prefix(&got, &all);
}

#[test]
fn file_cut_mid_record_is_reported_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let all = write_log(dir.path(), 200);
    let tail = segment_files(dir.path()).pop().unwrap();
    let frames = frame_offsets(&tail);
    let cut = frames[frames.len() - 1] + 10;
    OpenOptions::new()
        .write(true)
        .open(&tail)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let log = open(dir.path(), opts());
    let t = log
        .recovery_report()
        .truncation
        .clone()
        .expect("a truncation");
    assert_eq!(t.offset, frames[frames.len() - 1]);
    let got = read_all(&log);
    assert_eq!(got.len(), all.len() - 1);
    assert_prefix(&got, &all);
    // The segment is whole again: appends fill it without SIGBUS.
    for i in 0..200 {
        log.append(&payload(9, i, 50)).unwrap();
    }
    assert_eq!(std::fs::metadata(&tail).unwrap().len(), SEG);
}

#[test]
fn cut_sealed_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 300);
    let first = segment_files(dir.path()).remove(0);
    OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(1000)
        .unwrap();
    match Log::open(dir.path(), opts()) {
        Err(Error::Corrupt {
            path,
            kind: CorruptionKind::Truncated { .. },
            ..
        }) => {
            assert_eq!(path, first)
        }
        other => panic!("expected Corrupt(Truncated), got {other:?}"),
    }
}

#[test]
fn garbage_header_in_the_middle_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 300);
    let segs = segment_files(dir.path());
    assert!(segs.len() >= 4);
    patch(&segs[1], 0, b"garbage!garbage!");
    match Log::open(dir.path(), opts()) {
        Err(Error::Corrupt {
            path,
            offset: 0,
            kind: CorruptionKind::BadMagic,
        }) => {
            assert_eq!(path, segs[1])
        }
        other => panic!("expected Corrupt(BadMagic), got {other:?}"),
    }
}

#[test]
fn torn_header_of_the_last_segment_is_removed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 300);
    let segs = segment_files(dir.path());
    let last = segs.last().unwrap();
    patch(last, 20, &[0xFF; 4]);
    let log = open(dir.path(), opts());
    assert!(log.recovery_report().removed_files.contains(last));
    let got = read_all(&log);
    assert!(!got.is_empty());
    let next = log.append(b"after").unwrap();
    assert_eq!(next, got.len() as u64);
}

#[test]
fn unknown_format_version_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 10);
    let seg = segment_files(dir.path()).remove(0);
    patch(&seg, 8, &9u32.to_le_bytes());
    match Log::open(dir.path(), opts()) {
        Err(
            e @ Error::UnsupportedVersion {
                found: 9,
                supported: 1,
                ..
            },
        ) => {
            assert!(
                e.to_string().contains("unsupported format version 9"),
                "{e}"
            );
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn missing_segment_in_the_middle_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 300);
    let segs = segment_files(dir.path());
    std::fs::remove_file(&segs[2]).unwrap();
    match Log::open(dir.path(), opts()) {
        Err(Error::Corrupt {
            kind: CorruptionKind::MissingSegment { segment_id: 2 },
            ..
        }) => {}
        other => panic!("expected MissingSegment, got {other:?}"),
    }
}

#[test]
fn damage_inside_a_sealed_segment_is_reported_on_read_never_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let all = write_log(dir.path(), 300);
    let segs = segment_files(dir.path());
    let b = read_at(&segs[1], 200, 1);
    patch(&segs[1], 200, &[b[0] ^ 0x01]);
    let log = open(dir.path(), opts());
    // Sealed segments are trusted at open (that keeps open time proportional to the tail)...
    assert!(log.recovery_report().truncation.is_none());
    assert_eq!(log.last_seq(), Some(all.len() as u64 - 1));
    // ...and a reader reports the damage with file and offset instead of skipping it.
    let mut r = log.read_from(0).unwrap();
    let mut ok = 0;
    let err = loop {
        match r.next() {
            Some(Ok(_)) => ok += 1,
            Some(Err(e)) => break e,
            None => panic!("damage was not reported"),
        }
    };
    match err {
        Error::Corrupt { path, offset, .. } => {
            assert_eq!(path, segs[1]);
            assert!(offset <= 200, "offset {offset}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(ok > 0);
    let report = mmlog::inspect::inspect(dir.path(), true).unwrap();
    assert!(!report.is_clean());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.path == segs[1] && !p.torn_tail)
    );
}

#[test]
fn recovery_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let all = write_log(dir.path(), 200);
    let tail = segment_files(dir.path()).pop().unwrap();
    let frames = frame_offsets(&tail);
    patch(&tail, frames[2] + 5, &[0xAA]);
    let first = {
        let log = open(dir.path(), opts());
        read_all(&log)
    };
    assert_prefix(&first, &all);
    let log = open(dir.path(), opts());
    assert!(
        log.recovery_report().is_clean(),
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(read_all(&log), first);
}

#[test]
fn leftover_temporary_and_spare_files_are_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let all = write_log(dir.path(), 50);
    let segs = segment_files(dir.path());
    let next_id = segs.len();
    let tmp = dir.path().join(format!("segments/{next_id:020}.seg.tmp"));
    std::fs::write(&tmp, [1u8; 100]).unwrap();
    let spare = dir.path().join(format!("segments/{next_id:020}.seg"));
    std::fs::write(&spare, vec![0u8; SEG as usize]).unwrap();
    let log = open(dir.path(), opts());
    let removed = &log.recovery_report().removed_files;
    assert!(removed.contains(&tmp), "{removed:?}");
    assert!(log.recovery_report().removed_spares.contains(&spare));
    assert_eq!(read_all(&log), all);
}

#[test]
fn garbage_files_never_panic() {
    // Random bytes as segment files of several sizes: open returns a log or an error.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("segments")).unwrap();
        let len = [0usize, 7, 128, 4096, 5000][round % 5];
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(dir.path().join("segments/00000000000000000000.seg"), &bytes).unwrap();
        if let Ok(log) = Log::open(dir.path(), opts()) {
            let _ = read_all(&log);
        }
        let _ = mmlog::inspect::inspect(dir.path(), true);
    }
}

#[test]
fn a_foreign_file_named_like_a_segment_is_reported_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 50);
    let next = segment_files(dir.path()).len();
    let foreign = dir.path().join(format!("segments/{next:020}.seg"));
    std::fs::write(&foreign, b"not a segment, somebody's notes").unwrap();
    match Log::open(dir.path(), opts()) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, foreign),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(foreign.exists());
    let found = mmlog::inspect::inspect(dir.path(), true).unwrap();
    assert!(!found.is_clean());
}

#[test]
fn index_files_speed_up_seeks_and_a_bad_one_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let all = write_log(dir.path(), 400);
    let idx: Vec<PathBuf> = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    let sealed = segment_files(dir.path()).len() - 1;
    assert_eq!(
        idx.len(),
        sealed,
        "one index file per sealed segment: {idx:?}"
    );
    let seek_all = |log: &Log| {
        for start in (0..all.len() as u64).step_by(7) {
            let mut r = log.read_from(start).unwrap();
            let rec = r.next().unwrap().unwrap();
            assert_eq!(
                (rec.seq(), rec.payload()),
                (start, all[start as usize].1.as_slice())
            );
        }
    };
    seek_all(&open(dir.path(), opts()));
    // Garbage, a truncated file and another segment's index: each is ignored (the segment is
    // scanned instead), and the seeks give the same answers.
    std::fs::write(&idx[0], b"garbage").unwrap();
    let other = std::fs::read(&idx[2]).unwrap();
    std::fs::write(&idx[1], &other).unwrap();
    let third = std::fs::read(&idx[2]).unwrap();
    std::fs::write(&idx[2], &third[..third.len() - 5]).unwrap();
    seek_all(&open(dir.path(), opts()));
}

/// Zeros inside a sealed segment (trusted at open without a scan) are an error for a reader
/// that reaches them, never a silent end of the log.
#[test]
fn zeroed_frames_in_a_sealed_segment_are_an_error_not_an_end() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), Options::default().segment_size(4096)).unwrap();
        for i in 0..500u64 {
            log.append(&i.to_le_bytes()).unwrap();
        }
    }
    let seg = dir.path().join("segments/00000000000000000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[2048..2048 + 256].fill(0);
    std::fs::write(&seg, &bytes).unwrap();
    let log = Log::open(dir.path(), Options::default().segment_size(4096)).unwrap();
    let mut r = log.read_from(0).unwrap();
    let mut read = 0u64;
    let outcome = loop {
        match r.next() {
            Some(Ok(rec)) => {
                assert_eq!(rec.seq(), read);
                read += 1;
            }
            Some(Err(e)) => break Some(e),
            None => break None,
        }
    };
    assert!(
        matches!(outcome, Some(mmlog::Error::Corrupt { .. })),
        "after {read} records: {outcome:?}"
    );
    assert!(read > 123 && read < 500, "{read}");
}

/// The base sequence number in a segment's header.
fn base_seq_of(path: &Path) -> u64 {
    u64::from_le_bytes(read_at(path, 32, 8).try_into().unwrap())
}

/// What a power cut in the middle of rollovers can leave: the header of segment `blank` never
/// reached the disk (all zeros, or no length at all), while the kernel wrote back the
/// headers and some frames of the segments after it, none of them sealed.
/// Opening the log in `dir` must fail with damage reported in the file `want`.
fn expect_corrupt_at(dir: &Path, want: &Path) {
    match Log::open(dir, opts()) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, want),
        other => panic!("expected Corrupt naming {want:?}, got {other:?}"),
    }
}

/// `blank` indexes the segment files present now.
fn cut_mid_rollover(dir: &Path, blank: usize, empty_file: bool) -> Vec<PathBuf> {
    let segs = segment_files(dir);
    if empty_file {
        std::fs::write(&segs[blank], b"").unwrap();
    } else {
        patch(&segs[blank], 0, &[0u8; 128]);
    }
    for later in &segs[blank + 1..] {
        patch(later, 64, &[0u8; 64]);
    }
    segs
}

#[test]
fn blank_header_then_written_back_segments_ends_the_log_before_it() {
    for empty_file in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let all = write_log(dir.path(), 300);
        let segs = segment_files(dir.path());
        assert!(segs.len() >= 5, "{segs:?}");
        let end = base_seq_of(&segs[2]);
        cut_mid_rollover(dir.path(), 2, empty_file);
        let log = open(dir.path(), opts());
        let report = log.recovery_report().clone();
        // Everything before segment 2 is there, nothing from it on.
        assert_eq!(read_all(&log), all[..end as usize].to_vec());
        assert_eq!(report.next_seq, end);
        for dropped in &segs[2..] {
            assert!(report.removed_files.contains(dropped), "{report:?}");
        }
        let t = report.truncation.expect("the cut is reported");
        assert_eq!(t.path, segs[2]);
        assert!(
            t.records_dropped > 0,
            "written-back frames are counted: {t:?}"
        );
        // The log goes on from there, and recovers cleanly the next time.
        assert_eq!(log.append(b"after").unwrap(), end);
        log.close().unwrap();
        let log = open(dir.path(), opts());
        assert!(
            log.recovery_report().is_clean(),
            "{:?}",
            log.recovery_report()
        );
        assert_eq!(read_all(&log).len() as u64, end + 1);
    }
}

#[test]
fn blank_first_segment_then_written_back_segments_is_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 300);
    let segs = cut_mid_rollover(dir.path(), 0, true);
    let log = open(dir.path(), opts());
    assert!(read_all(&log).is_empty());
    assert_eq!(log.recovery_report().next_seq, 0);
    assert_eq!(log.recovery_report().removed_files.len(), segs.len());
    assert_eq!(log.append(b"first").unwrap(), 0);
}

#[test]
fn blank_header_before_a_sealed_segment_is_an_error_not_a_cut() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 300);
    let segs = segment_files(dir.path());
    // Segment 3 is still sealed: segment 2 was durable once, so this is damage.
    patch(&segs[2], 0, &[0u8; 128]);
    expect_corrupt_at(dir.path(), &segs[2]);
    assert_eq!(segment_files(dir.path()), segs, "nothing was removed");
}

#[test]
fn blank_first_segment_of_a_compacted_log_is_an_error_not_a_new_log() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 300);
    let segs = segment_files(dir.path());
    // As if compaction had removed segments 0 and 1: segment 2 holds where the log starts.
    std::fs::remove_file(&segs[0]).unwrap();
    std::fs::remove_file(&segs[1]).unwrap();
    cut_mid_rollover(dir.path(), 0, false);
    expect_corrupt_at(dir.path(), &segs[2]);
    // Also when it is the only segment left.
    for later in &segs[3..] {
        std::fs::remove_file(later).unwrap();
    }
    expect_corrupt_at(dir.path(), &segs[2]);
}
