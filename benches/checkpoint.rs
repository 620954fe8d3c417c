//! Checkpoints and compaction.
//!
//! - `checkpoint_write/64MiB`: `Log::checkpoint` of a 64 MiB blob on a small log
//!   (`keep_checkpoints(2)`, so each call also prunes the checkpoint two before it), against
//!   `write_fsync/64MiB`: what any atomic file write costs, in the same directory tree: std
//!   `File::create` + `write_all` of the same 64 MiB + `sync_data` + `rename` + directory
//!   `fsync`. Bytes/s. Before each checkpoint one record is appended, untimed, so every
//!   checkpoint covers a new record and gets a new file, as in use; the checkpoint waits for
//!   that record to be durable (one small `msync`) and removes the checkpoint two before it
//!   (an unlink and a directory `fsync`), both part of its cost. The baseline's files are
//!   removed between iterations, untimed. Either way the file system reuses blocks freed
//!   moments before; on the development VM, writing 64 MiB to blocks not freed recently costs
//!   several times more, for both.
//! - `rebuild/from_checkpoint_plus_10k` and `rebuild/replay_10M`: the state is the wrapping
//!   sum of 8-byte `u64` payloads. One log of 10,000,000 such records (five 64 MiB segments,
//!   `Buffered`) is built once per run, untimed, with a checkpoint holding the sum of every
//!   record up to 10,000 before the end. Timed: `read_from_checkpoint()` and the fold of the
//!   10,000 records after it, against `read_from(0)` and the fold of all 10,000,000 (records/s).
//!   Both must give the same sum (checked once, untimed). Warm page cache.
//! - `archive/{compress,move,delete}_segment`: `Log::compact` of a log of 4 MiB segments
//!   holding about 2.5 segments of 100-byte JSON-like records (two sealed segments covered by a
//!   checkpoint at the last record, the third active), with `ArchiveMode::Compress`, `Move` and
//!   `Delete`: both sealed segments leave the live log (bytes/s of segment files removed). A
//!   fresh log per iteration (`iter_batched`); building it, checkpointing and syncing it are
//!   not timed, and neither is closing it. The compression ratio (archive bytes over segment
//!   bytes) is printed once on stderr.
//!
//! The slow benchmarks (a 64 MiB `fsync`, a full replay, a fresh log per compaction) sample
//! flat: every sample runs the same few iterations, so the file stays well under three
//! minutes on two cores.
//!
//! Logs and files go in temporary directories under `MMLOG_BENCH_DIR` if set, else under the
//! system temporary directory: put them on the file system the logs live on.

mod common;
use common::{SplitMix, bench_base, main_config};
use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};
use criterion::{criterion_group, criterion_main};
use mmlog::{ArchiveMode, CompactionReport, Durability, Log, Options, Retention};
use tempfile::TempDir;

const BLOB: usize = 64 << 20;

fn sync_dir(dir: &Path) {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("fsync dir");
}

/// The baseline: an atomic file write as any program does it, the steps `checkpoint` takes
/// without its header, CRC, durability wait and pruning.
fn write_fsync(dir: &Path, n: u64, blob: &[u8]) {
    let tmp = dir.join(format!("{n:020}.tmp"));
    let mut f = File::create(&tmp).expect("create");
    f.write_all(blob).expect("write");
    f.sync_data().expect("fdatasync");
    drop(f);
    std::fs::rename(&tmp, dir.join(format!("{n:020}.ckpt"))).expect("rename");
    sync_dir(dir);
}

fn checkpoint_write(c: &mut Criterion) {
    let root = tempfile::tempdir_in(bench_base()).expect("tempdir");
    let baseline_dir = root.path().join("baseline");
    std::fs::create_dir(&baseline_dir).expect("mkdir");
    let log = Log::open(
        root.path().join("log"),
        Options::default()
            .durability(Durability::Buffered)
            .keep_checkpoints(2),
    )
    .expect("open");
    for i in 0..16u64 {
        log.append(&i.to_le_bytes()).expect("append");
    }
    // Incompressible, and every page written, so no file system can take a shortcut.
    let mut rng = SplitMix(1);
    let blob: Vec<u8> = (0..BLOB / 8)
        .flat_map(|_| rng.next().to_le_bytes())
        .collect();

    let mut g = c.benchmark_group("checkpoint_write");
    // Tens of milliseconds an iteration, mostly `fdatasync`: flat sampling runs a few per
    // sample instead of criterion's linear 1, 2, ... 10 iterations.
    g.sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(BLOB as u64));
    g.bench_function("64MiB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let seq = log.append(b"tick").expect("append");
                let t0 = Instant::now();
                black_box(log.checkpoint(seq, &blob).expect("checkpoint"));
                total += t0.elapsed();
            }
            total
        });
    });
    g.finish();
    let (kept, damaged) = log.checkpoints().expect("list checkpoints");
    assert!(
        kept.len() <= 2 && damaged.is_empty(),
        "{kept:?} {damaged:?}"
    );

    let mut g = c.benchmark_group("write_fsync");
    g.sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(BLOB as u64));
    let mut n = 0u64;
    g.bench_function("64MiB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let t0 = Instant::now();
                write_fsync(&baseline_dir, n, &blob);
                total += t0.elapsed();
                std::fs::remove_file(baseline_dir.join(format!("{n:020}.ckpt"))).expect("rm");
            }
            total
        });
    });
    g.finish();
    drop(log);
}

/// Records in the rebuild log, and how many follow its checkpoint.
const REBUILD_RECORDS: u64 = 10_000_000;
const AFTER_CHECKPOINT: u64 = 10_000;

/// The payload of record `i`: spread over all 64 bits so the sum wraps.
fn value(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Folds the records a reader returns into `state`; returns the state and the records folded.
fn fold(mut reader: mmlog::Reader, mut state: u64) -> (u64, u64) {
    let mut n = 0u64;
    while let Some(rec) = reader.next() {
        let rec = rec.expect("record");
        let v = u64::from_le_bytes(rec.payload().try_into().expect("8-byte payload"));
        state = state.wrapping_add(v);
        n += 1;
    }
    (state, n)
}

fn from_checkpoint(log: &Log) -> (u64, u64) {
    let (cp, reader) = log.read_from_checkpoint().expect("read from checkpoint");
    let cp = cp.expect("a checkpoint");
    let state = u64::from_le_bytes(cp.data().try_into().expect("8-byte state"));
    fold(reader, state)
}

fn replay(log: &Log) -> (u64, u64) {
    fold(log.read_from(0).expect("reader"), 0)
}

fn rebuild(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(bench_base()).expect("tempdir");
    let log = Log::open(
        dir.path(),
        Options::default().durability(Durability::Buffered),
    )
    .expect("open");
    let at = REBUILD_RECORDS - AFTER_CHECKPOINT - 1;
    let t0 = Instant::now();
    let mut sum = 0u64;
    let mut sum_at = 0u64;
    for i in 0..REBUILD_RECORDS {
        assert_eq!(log.append(&value(i).to_le_bytes()).expect("append"), i);
        sum = sum.wrapping_add(value(i));
        if i == at {
            sum_at = sum;
        }
    }
    let appended = t0.elapsed();
    // Waits for records up to `at` to be durable: the sealed segments already are.
    log.checkpoint(at, &sum_at.to_le_bytes())
        .expect("checkpoint");
    eprintln!(
        "rebuild: {REBUILD_RECORDS} records in {} segments appended in {appended:.2?}, \
         checkpoint at {at} after {:.2?}",
        log.stats().segments,
        t0.elapsed(),
    );
    assert_eq!(from_checkpoint(&log), (sum, AFTER_CHECKPOINT));
    assert_eq!(replay(&log), (sum, REBUILD_RECORDS));

    let mut g = c.benchmark_group("rebuild");
    g.throughput(Throughput::Elements(AFTER_CHECKPOINT));
    g.bench_function("from_checkpoint_plus_10k", |b| {
        b.iter(|| from_checkpoint(&log));
    });
    // About 150 ms an iteration: a couple per sample.
    g.sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(REBUILD_RECORDS));
    g.bench_function("replay_10M", |b| b.iter(|| replay(&log)));
    g.finish();
}

const ARCHIVE_SEGMENT: u64 = 4 << 20;
const JSON_LEN: usize = 100;
/// Frames of a 100-byte payload: 24 bytes of header, payload padded to 8.
const JSON_FRAME: u64 = 128;

/// A JSON-like event of exactly `JSON_LEN` bytes, numbers drawn from `rng`.
fn json_record(i: u64, rng: &mut SplitMix) -> Vec<u8> {
    let r = rng.next();
    let mut s = format!(
        r#"{{"id":{i},"user":"u{}","op":"{}","qty":{},"amount":{}.{:02},"ts":{}}}"#,
        r % 50_000,
        ["buy", "sell", "hold", "cancel"][(r >> 20) as usize % 4],
        (r >> 16) % 500,
        (r >> 24) % 10_000,
        (r >> 40) % 100,
        1_790_000_000_000 + i * 37 + (r >> 56),
    )
    .into_bytes();
    assert!(s.len() <= JSON_LEN, "{}", s.len());
    s.resize(JSON_LEN, b' ');
    s
}

/// A fresh log of 4 MiB segments with two full sealed segments and half of a third, every
/// record covered by a checkpoint and durable: ready for `compact` to remove two segments.
fn archive_log(mode: ArchiveMode) -> (TempDir, Log) {
    let dir = tempfile::tempdir_in(bench_base()).expect("tempdir");
    let log = Log::open(
        dir.path(),
        Options::default()
            .segment_size(ARCHIVE_SEGMENT)
            .durability(Durability::Buffered)
            .retention(Retention::default().archive(mode)),
    )
    .expect("open");
    let per_segment = (ARCHIVE_SEGMENT - 128) / JSON_FRAME;
    let mut rng = SplitMix(7);
    let mut last = 0;
    for i in 0..per_segment * 5 / 2 {
        last = log.append(&json_record(i, &mut rng)).expect("append");
    }
    log.checkpoint(last, &last.to_le_bytes())
        .expect("checkpoint");
    log.sync().expect("sync");
    assert_eq!(log.stats().segments, 3);
    (dir, log)
}

fn compact(input: (TempDir, Log)) -> (TempDir, Log, CompactionReport) {
    let (dir, log) = input;
    let report = log.compact().expect("compact");
    // Returned, so closing the log and removing the directory are not timed.
    (dir, log, report)
}

fn archive(c: &mut Criterion) {
    let modes = [
        ("compress_segment", ArchiveMode::Compress),
        ("move_segment", ArchiveMode::Move),
        ("delete_segment", ArchiveMode::Delete),
    ];
    for (name, mode) in modes {
        let (_dir, log, report) = compact(archive_log(mode));
        assert_eq!(report.segments_removed, 2, "{report:?}");
        let archived = log.disk_usage().archive;
        let ratio = match archived {
            0 => String::new(),
            a => format!(
                " ({:.3} of the segment bytes)",
                a as f64 / report.bytes_removed as f64
            ),
        };
        eprintln!(
            "archive/{name}: {} segments, {} records, {} segment bytes -> {archived} archive \
             bytes{ratio}",
            report.segments_removed, report.records_removed, report.bytes_removed,
        );
        let (archived, damaged) = log.archived_segments().expect("archive");
        assert!(damaged.is_empty(), "{damaged:?}");
        assert_eq!(
            archived.len(),
            if mode == ArchiveMode::Delete { 0 } else { 2 }
        );
    }

    let mut g = c.benchmark_group("archive");
    // Building a log takes longer than compacting it: a few iterations per sample.
    g.sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(2 * ARCHIVE_SEGMENT));
    for (name, mode) in modes {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(|| archive_log(mode), compact, BatchSize::PerIteration);
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = main_config();
    targets = checkpoint_write, rebuild, archive
}
criterion_main!(benches);
