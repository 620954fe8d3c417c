//! Exhaustive damage to a small log: every single-bit flip and every truncation of its one
//! segment, each reopened from scratch. Whatever the damage, recovery never hands back a
//! record that differs from what was written, and it never drops records silently: it either
//! refuses with an error, or keeps a prefix and says in its report what it cut or removed.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use mmlog::{Durability, Error, Log, Options};

use crate::support::payload;

const SEG: u64 = 4096;

fn opts() -> Options {
    Options::default()
        .segment_size(SEG)
        .durability(Durability::Buffered)
}

/// A scratch directory on tmpfs when there is one: each case syncs files on open.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

/// A log of `n` records in one unsealed segment: its bytes, the records, and where each
/// frame's last non-zero byte is.
fn reference(n: usize) -> (Vec<u8>, Vec<Vec<u8>>, Vec<usize>) {
    let dir = scratch();
    let log = Log::open(dir.path(), opts()).unwrap();
    let records: Vec<Vec<u8>> = (0..n).map(|i| payload(3, i, 5 + i % 23)).collect();
    for r in &records {
        log.append(r).unwrap();
    }
    log.close().unwrap();
    let bytes = std::fs::read(dir.path().join("segments/00000000000000000000.seg")).unwrap();
    assert_eq!(bytes.len() as u64, SEG);
    let mut ends = Vec::new();
    let mut at = 128;
    for r in &records {
        let frame = (24 + r.len()).div_ceil(8) * 8;
        ends.push(at + 24 + r.len());
        at += frame;
    }
    (bytes, records, ends)
}

/// Opens a log whose only segment holds `bytes` (a fresh directory each time) and reads it.
fn recover(dir: &Path, bytes: &[u8]) -> Result<(Vec<Vec<u8>>, bool), Error> {
    let segs: PathBuf = dir.join("segments");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(&segs).unwrap();
    std::fs::write(segs.join("00000000000000000000.seg"), bytes).unwrap();
    let log = Log::open(dir, opts())?;
    let clean = log.recovery_report().is_clean();
    let mut out = Vec::new();
    let mut r = log.read_from(0)?;
    while let Some(rec) = r.next() {
        out.push(rec?.payload().to_vec());
    }
    Ok((out, clean))
}

fn assert_honest(case: &str, got: &Result<(Vec<Vec<u8>>, bool), Error>, records: &[Vec<u8>]) {
    match got {
        Ok((got, clean)) => {
            assert!(
                got.len() <= records.len(),
                "{case}: more records than written"
            );
            assert_eq!(
                got.as_slice(),
                &records[..got.len()],
                "{case}: a record came back different"
            );
            assert!(
                got.len() == records.len() || !clean,
                "{case}: records dropped silently"
            );
        }
        Err(Error::Corrupt { .. } | Error::UnsupportedVersion { .. }) => {}
        Err(e) => panic!("{case}: unexpected error {e}"),
    }
}

#[test]
fn every_bit_flip_of_a_small_log() {
    let (bytes, records, ends) = reference(12);
    let used = *ends.last().unwrap();
    let scratch = scratch();
    let dir = scratch.path().join("log");
    let mut cut_or_refused = 0;
    for bit in 0..used * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        let got = recover(&dir, &damaged);
        assert_honest(&format!("bit {bit}"), &got, &records);
        if !matches!(&got, Ok((r, _)) if r.len() == records.len()) {
            cut_or_refused += 1;
        }
    }
    // Flips in frames lose the frame and what follows; flips in the unused seal and in padding
    // lose nothing. Either way most flips must have been noticed.
    assert!(
        cut_or_refused > used * 8 / 2,
        "only {cut_or_refused} flips noticed"
    );
    println!(
        "bit flips in an unsealed segment: {} tried, {cut_or_refused} cut the log or were \
         refused, none returned a record that differs",
        used * 8
    );
}

#[test]
fn every_truncation_of_a_small_log() {
    let (bytes, records, ends) = reference(12);
    let scratch = scratch();
    let dir = scratch.path().join("log");
    for cut in 128..=*ends.last().unwrap() {
        let got = recover(&dir, &bytes[..cut]);
        // A frame survives a cut iff all its bytes up to its last payload byte are kept
        // (zeros after a cut read back as zeros, so trailing zero bytes do not matter).
        let nonzero_end = |i: usize| {
            let start = if i == 0 {
                128
            } else {
                ends[i - 1].div_ceil(8) * 8
            };
            bytes[start..ends[i]]
                .iter()
                .rposition(|&b| b != 0)
                .map_or(start, |p| start + p + 1)
        };
        let expect = (0..records.len())
            .take_while(|&i| nonzero_end(i) <= cut)
            .count();
        match &got {
            Ok((got, _)) => assert_eq!(got.as_slice(), &records[..expect], "cut at {cut}"),
            Err(e) => panic!("cut at {cut}: {e}"),
        }
        let file = dir.join("segments/00000000000000000000.seg");
        let len = OpenOptions::new()
            .read(true)
            .open(file)
            .unwrap()
            .metadata()
            .unwrap()
            .len();
        assert_eq!(
            len, SEG,
            "cut at {cut}: the segment was not made whole again"
        );
    }
}

#[test]
fn every_bit_flip_in_the_first_kib_of_a_sealed_segment() {
    // Two segments: the first full and sealed, so recovery trusts it without a scan; damage
    // in it must then be reported by the reader (with file and offset), never returned.
    let src = scratch();
    let log = Log::open(src.path(), opts()).unwrap();
    let mut records = Vec::new();
    while log.stats().segments < 2 {
        let r = payload(4, records.len(), 7 + records.len() % 19);
        log.append(&r).unwrap();
        records.push(r);
    }
    log.close().unwrap();
    let seg0 = std::fs::read(src.path().join("segments/00000000000000000000.seg")).unwrap();
    let seg1 = std::fs::read(src.path().join("segments/00000000000000000001.seg")).unwrap();
    let scratch = scratch();
    let dir = scratch.path().join("log");
    for bit in 0..1024 * 8 {
        let mut damaged = seg0.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        let segs = dir.join("segments");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&segs).unwrap();
        std::fs::write(segs.join("00000000000000000000.seg"), &damaged).unwrap();
        std::fs::write(segs.join("00000000000000000001.seg"), &seg1).unwrap();
        let got = (|| {
            let log = Log::open(&dir, opts())?;
            let mut out = Vec::new();
            let mut r = log.read_from(0)?;
            while let Some(rec) = r.next() {
                out.push(rec?.payload().to_vec());
            }
            Ok((out, true))
        })();
        assert_honest(&format!("bit {bit} of the sealed segment"), &got, &records);
    }
    println!(
        "bit flips in a sealed segment: {} tried, none returned a record that differs",
        1024 * 8
    );
}
