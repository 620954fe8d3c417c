//! Read-side costs.
//!
//! - `scan/64b`, `scan/4k`: a full sequential scan of a log (about 180 MB of 64-byte records,
//!   about 135 MB of 4 KiB records, 64 MiB segments) with a fresh reader from sequence number
//!   0 to the end: `read_from(0)`, then `next()` until `None`, each record's CRC checked by the
//!   reader and its payload length summed (records/s and payload bytes/s).
//! - `open_unclean/1GiB_64b`, `open_unclean/1GiB_4k`: `Log::open` of a 1 GiB log (16 segments
//!   of 64 MiB, the last one 90% full and unsealed) copied while its writer still had it open,
//!   as after a crash: 15 sealed segments trusted from their seals, the tail scanned, the
//!   spare segment found blank and removed. Warm page cache, clean pages. Only `open` is timed;
//!   between two opens the log is put back as it was.
//!
//! The logs are built once per run, untimed, in a temporary directory under `MMLOG_BENCH_DIR`
//! if set, else under the system temporary directory.

mod common;
use common::{bench_base, main_config};
use std::fs::File;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mmlog::{Durability, Log, Options};
use tempfile::TempDir;

const SEGMENT: u64 = 64 << 20;

fn options() -> Options {
    Options::default()
        .segment_size(SEGMENT)
        .durability(Durability::Buffered)
}

/// Opens a new log in a temporary directory and appends `count` records of `len` bytes.
fn build_log(count: u64, len: usize) -> (TempDir, Log) {
    let dir = tempfile::tempdir_in(bench_base()).expect("tempdir");
    let log = Log::open(dir.path(), options()).expect("open");
    let mut payload = vec![0u8; len];
    for i in 0..count {
        payload[..8].copy_from_slice(&i.to_le_bytes());
        log.append(&payload).expect("append");
    }
    log.sync().expect("sync");
    (dir, log)
}

/// Reads the whole log from sequence number 0; returns (records, payload bytes).
fn scan(log: &Log) -> (u64, u64) {
    let mut reader = log.read_from(0).expect("reader");
    let (mut records, mut bytes) = (0u64, 0u64);
    while let Some(rec) = reader.next() {
        let rec = rec.expect("record");
        records += 1;
        bytes += black_box(rec.payload()).len() as u64;
    }
    (records, bytes)
}

fn full_scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("scan");
    for (name, count, len) in [("64b", 2_000_000u64, 64usize), ("4k", 32_768, 4096)] {
        let (_dir, log) = build_log(count, len);
        let (records, bytes) = scan(&log);
        assert_eq!((records, bytes), (count, count * len as u64));
        eprintln!(
            "scan/{name}: {records} records in {} segments",
            log.stats().segments
        );
        g.throughput(Throughput::ElementsAndBytes {
            elements: records,
            bytes,
        });
        g.bench_function(name, |b| b.iter(|| scan(&log)));
    }
    g.finish();
}

/// A copy of a log taken while its writer had it open, and the pieces `Log::open` changes in
/// it, to put it back between opens.
struct Crashed {
    _root: TempDir,
    /// The copy that is opened.
    work: PathBuf,
    /// Pristine copies of the tail segment and of the lock file.
    tail_name: std::ffi::OsString,
    saved_tail: PathBuf,
    saved_lock: PathBuf,
    /// Name of the blank spare segment, which recovery removes.
    spare_name: std::ffi::OsString,
    /// Segments in the log.
    segments: usize,
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .expect("read segments")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    files
}

fn copy_synced(from: &Path, to: &Path) {
    std::fs::copy(from, to).expect("copy");
    File::open(to)
        .and_then(|f| f.sync_all())
        .expect("fsync copy");
}

/// Builds a 16-segment log of `len`-byte records with the last segment 90% full and copies it
/// while it is open. Sealed segments never change again, so the copy hard-links them (no
/// gigabyte of copying and writing back); the tail and the lock file are copied, and a blank
/// spare is put in place by [`Crashed::restore`].
fn build_crashed(len: usize) -> Crashed {
    let root = tempfile::tempdir_in(bench_base()).expect("tempdir");
    let live = root.path().join("live");
    let work = root.path().join("work");
    let saved = root.path().join("saved");
    for d in [&work.join("segments"), &saved] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let log = Log::open(&live, options()).expect("open");
    let payload = vec![0x42u8; len];
    let per_segment = (SEGMENT - 128) / (len as u64 + 24).next_multiple_of(8);
    let count = 15 * per_segment + per_segment * 9 / 10;
    for _ in 0..count {
        log.append(&payload).expect("append");
    }
    // Everything durable, and every full segment sealed, as the flusher leaves them.
    log.sync().expect("sync");
    let segments = log.stats().segments;
    assert_eq!(segments, 16);
    // The spare is prepared in the background: wait until it exists.
    let deadline = Instant::now() + Duration::from_secs(30);
    while segment_files(&live).len() <= segments && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }

    let files = segment_files(&live);
    assert_eq!(files.len(), segments + 1, "16 segments and a spare");
    // Sealed segments are linked, the tail is copied; the spare is made by `restore`.
    for (i, f) in files.iter().enumerate().take(segments) {
        let name = f.file_name().expect("file name");
        let to = work.join("segments").join(name);
        if i + 1 < segments {
            std::fs::hard_link(f, &to).expect("link sealed segment");
        } else {
            copy_synced(f, &to);
            copy_synced(f, &saved.join(name));
        }
    }
    copy_synced(&live.join("LOCK"), &work.join("LOCK"));
    copy_synced(&live.join("LOCK"), &saved.join("LOCK"));
    let tail_name = files[segments - 1].file_name().expect("name").to_owned();
    let spare_name = files[segments].file_name().expect("name").to_owned();
    drop(log);
    Crashed {
        saved_tail: saved.join(&tail_name),
        saved_lock: saved.join("LOCK"),
        _root: root,
        work,
        tail_name,
        spare_name,
        segments,
    }
}

impl Crashed {
    /// Puts back what the last open changed: the lock file, the spare it removed, and the
    /// tail if recovery cut it.
    fn restore(&self, tail_changed: bool) {
        let segs = self.work.join("segments");
        if tail_changed {
            copy_synced(&self.saved_tail, &segs.join(&self.tail_name));
        }
        copy_synced(&self.saved_lock, &self.work.join("LOCK"));
        // A blank spare: recovery only reads its header, finds it zero and removes it.
        let spare = segs.join(&self.spare_name);
        let f = File::create(&spare).expect("create spare");
        f.set_len(SEGMENT).expect("size spare");
        f.sync_all().expect("fsync spare");
        File::open(&segs)
            .and_then(|d| d.sync_all())
            .expect("fsync dir");
    }

    /// Opens the copy; returns how long `Log::open` took and whether it cut the tail.
    fn open_once(&self) -> (Duration, bool) {
        let t0 = Instant::now();
        let log = Log::open(&self.work, options()).expect("open after crash");
        let took = t0.elapsed();
        let report = log.recovery_report();
        assert_eq!(report.segments, self.segments);
        assert_eq!(report.sealed_segments_trusted, self.segments - 1);
        assert_eq!(report.segments_scanned, 1);
        let cut = report.truncation.is_some();
        drop(log);
        (took, cut)
    }
}

fn open_unclean(c: &mut Criterion) {
    let mut g = c.benchmark_group("open_unclean");
    for (name, len) in [("1GiB_64b", 64usize), ("1GiB_4k", 4096)] {
        let crashed = build_crashed(len);
        crashed.restore(false);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (took, cut) = crashed.open_once();
                    total += took;
                    crashed.restore(cut);
                }
                total
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = main_config();
    targets = full_scan, open_unclean
}
criterion_main!(benches);
