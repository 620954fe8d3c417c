//! Soak: appends continuously with retention on while background compaction runs. Every
//! 20,000 records the writer itself compacts and checks that the segment files take at most
//! the configured bound plus two segments (the oldest kept one, which straddles the bound,
//! and the pre-allocated spare); at the end, that what is kept is exactly the newest records.
//! Between compactions disk use grows with the write rate; the largest figure seen by a
//! monitor thread is printed.
//!
//! Sized by `MMLOG_SOAK_RECORDS` (default 1,000,000, a few seconds); run it longer with, e.g.,
//! `MMLOG_SOAK_RECORDS=100000000 cargo test --release --test it soak -- --nocapture`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mmlog::{ArchiveMode, Durability, Log, Options, Retention};

const SEGMENT: u64 = 256 << 10;
const KEEP_BYTES: u64 = 2 << 20;

fn records() -> u64 {
    std::env::var("MMLOG_SOAK_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

#[test]
fn soak_disk_use_stays_bounded_with_retention() {
    let n = records();
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        Options::default()
            .segment_size(SEGMENT)
            .durability(Durability::Periodic(Duration::from_millis(20)))
            .keep_checkpoints(2)
            .retention(
                Retention::default()
                    .keep_bytes(KEEP_BYTES)
                    .require_checkpoint(false)
                    .archive(ArchiveMode::Delete)
                    .every(Duration::from_millis(50)),
            ),
    )
    .unwrap();
    // Live segment files may reach the bound plus the oldest kept segment plus the spare;
    // index files and checkpoints come on top.
    let bound = KEEP_BYTES + 2 * SEGMENT;
    let done = AtomicBool::new(false);
    let max_seen = AtomicU64::new(0);
    let started = Instant::now();
    let checks = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut body = [0u8; 100];
            for i in 0..n {
                body[..8].copy_from_slice(&i.to_le_bytes());
                assert_eq!(log.append(&body).unwrap(), i);
                // A checkpoint of "the state" now and then, as an application would.
                if i % 50_000 == 49_999 {
                    log.checkpoint(i, &i.to_le_bytes()).unwrap();
                }
                if i % 20_000 == 19_999 {
                    log.compact().unwrap();
                    let used = segment_file_bytes(&log);
                    assert!(
                        used <= bound,
                        "segment files take {used} bytes after compaction, bound {bound}"
                    );
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            }
            done.store(true, Ordering::Release);
        });
        // Continuous observation, for the report.
        s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                max_seen.fetch_max(log.disk_usage().segments, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    });
    log.compact().unwrap();
    let stats = log.stats();
    assert!(segment_file_bytes(&log) <= bound);
    assert_eq!(stats.background_compaction_error, None);
    // What is kept is the newest records, intact and in order, up to the last one.
    let first = stats.first_seq;
    let mut r = log.read_from(first).unwrap();
    let mut next = first;
    while let Some(rec) = r.next() {
        let rec = rec.unwrap();
        assert_eq!(rec.seq(), next);
        assert_eq!(&rec.payload()[..8], &next.to_le_bytes());
        next += 1;
    }
    assert_eq!(next, n);
    assert!((n - first) * 128 >= KEEP_BYTES.min(n * 128) - SEGMENT);
    println!(
        "soak: {n} records in {:.1} s, {} segments compacted ({} background compactions); \
         bound {bound} held at {} checks; segment files at most {} bytes seen between them",
        started.elapsed().as_secs_f64(),
        stats.segments_compacted,
        stats.background_compactions,
        checks.load(Ordering::Relaxed),
        max_seen.load(Ordering::Relaxed),
    );
}

/// Bytes of segment files (`.seg`, spare included) in the live directory.
fn segment_file_bytes(log: &Log) -> u64 {
    std::fs::read_dir(log.path().join("segments"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            (name.ends_with(".seg") || name.ends_with(".seg.tmp")).then(|| e.metadata().ok())?
        })
        .map(|m| m.len())
        .sum()
}
