//! Append throughput of partitioned logs against one shared tail.
//!
//! `partitions_64b/buffered/{fresh,steady,steady_pinned}/{1,2}`: 4 writer threads append
//! 64-byte payloads (`Durability::Buffered`) to a `PartitionedLog` of 1 partition (every
//! writer on the one tail) or 2 (writer `w` on partition `w % 2`: two writers per tail).
//! Elements/s, all writers together. Every timed call
//! opens fresh logs, waits until each partition's next segment is prepared, then times the
//! writers from a common start to the last one's end. Opening and closing are not timed.
//!
//! - `fresh`: the writers start in a new log's first segment, so they also pay for the
//!   kernel faulting in and zeroing every page they touch, which costs the same whatever
//!   the partitioning.
//! - `steady`: each partition is first written (untimed) into its third segment, which the
//!   preparer filled ahead of the writers as it does for any fast writer: the timed appends
//!   take no page fault, and what is left is the tails and the copies.
//! - `steady_pinned`: `steady` with writer `w` pinned to CPU `w % 2`, so that with two
//!   partitions each partition's writers share one core and no tail moves between caches.

mod common;
use common::{bench_base, main_config};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mmlog::partitioned::PartitionedLog;
use mmlog::{Durability, Options};

const WRITERS: usize = 4;
/// Appends per timed iteration, all writers together.
const BATCH: u64 = 1 << 20;

fn open_fresh(dir: &std::path::Path, partitions: usize) -> PartitionedLog {
    let opts = Options::default()
        .segment_size(128 << 20)
        .durability(Durability::Buffered);
    let log = PartitionedLog::open(dir, partitions, opts).expect("open");
    // The next segment of every partition is prepared in the background: let that finish.
    let deadline = Instant::now() + Duration::from_secs(30);
    for p in 0..partitions {
        let spare = log
            .path()
            .join(format!("partition-{p:04}"))
            .join("segments")
            .join(format!("{:020}.seg", 1));
        while !spare.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    log
}

/// Fills each partition until it writes its third segment: the preparer fills a fast
/// writer's next segment with `pwrite` before handing it over, so the third one is resident
/// and the timed appends that follow take no page fault (they fit in it).
fn warm_up(log: &PartitionedLog, partitions: usize) {
    let payload = [7u8; 64];
    for p in 0..partitions {
        while log.partition(p).expect("partition").stats().segments < 3 {
            for _ in 0..10_000 {
                log.append_to(p, &payload).expect("append");
            }
        }
    }
    // Let the preparers finish the spares they started on the way.
    std::thread::sleep(Duration::from_millis(100));
}

/// Keeps the calling thread on CPU `cpu` (modulo the CPUs there are).
fn pin_to(cpu: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu % cpus);
    rustix::thread::sched_setaffinity(None, &set).expect("pin");
}

fn run(partitions: usize, per_writer: u64, steady: bool, pinned: bool) -> Duration {
    let dir = tempfile::tempdir_in(bench_base()).expect("tempdir");
    let log = open_fresh(&dir.path().join("p"), partitions);
    let before = log.cut().expect("cut").records();
    if steady {
        warm_up(&log, partitions);
    }
    let before = if steady {
        log.cut().expect("cut").records()
    } else {
        before
    };
    let payload = [7u8; 64];
    let barrier = Barrier::new(WRITERS + 1);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (log, barrier) = (&log, &barrier);
                s.spawn(move || {
                    if pinned {
                        // Writer w on CPU w % 2: with two partitions, each partition's
                        // writers share one core and its tail stays in that core's cache.
                        pin_to(w % 2);
                    }
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..per_writer {
                        log.append_to(w % partitions, &payload).expect("append");
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        barrier.wait();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect()
    });
    let start = spans.iter().map(|s| s.0).min().expect("a writer");
    let end = spans.iter().map(|s| s.1).max().expect("a writer");
    assert_eq!(
        log.cut().expect("cut").records() - before,
        WRITERS as u64 * per_writer
    );
    end - start
}

fn partitions(c: &mut Criterion) {
    let mut g = c.benchmark_group("partitions_64b/buffered");
    g.throughput(Throughput::Elements(BATCH));
    let variants = [
        ("fresh", false, false),
        ("steady", true, false),
        ("steady_pinned", true, true),
    ];
    for (name, steady, pinned) in variants {
        for p in [1usize, 2] {
            g.bench_with_input(BenchmarkId::new(name, p), &p, |b, &p| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| run(p, BATCH / WRITERS as u64, steady, pinned))
                        .sum::<Duration>()
                });
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = main_config();
    targets = partitions
}
criterion_main!(benches);
