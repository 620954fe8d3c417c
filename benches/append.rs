//! Append throughput.
//!
//! - `append_64b/buffered/{1,2,4,16}`: 64-byte payloads, `Durability::Buffered`, 1 to 16
//!   writer threads (elements/s, all threads together).
//! - `append_4k/buffered/{1,2}`: 4 KiB payloads, 1 and 2 writers (payload bytes/s).
//! - `append_64b/immediate/{4,64,1000}`: `Durability::Immediate` with W concurrent writers
//!   (appends/s); after each configuration the appends per `msync` (group commit) are printed
//!   on stderr, from `LogStats::msync_count`.
//!
//! Every timed call (`iter_custom`) opens a fresh log in a temporary directory, waits until
//! the background preallocator has gone idle (active segment faulted in, spare segment
//! prepared), then times the writers from a
//! common start (barrier) to the last writer's end. Segments are large (256 MiB / 1 GiB) so a
//! sample is mostly appends, but rollovers (with the flusher sealing the full segment and the
//! preallocator preparing the next) fall where they fall and are part of the numbers. Opening,
//! waiting and closing (which msyncs everything, even in Buffered mode) are not timed.
//!
//! With `MMLOG_BENCH_VERBOSE` set, every timed run is printed on stderr, with the segments it
//! used, the msyncs and the page faults the writer threads took.
//!
//! The logs go in a temporary directory under `MMLOG_BENCH_DIR` if set, else under the system
//! temporary directory (`TMPDIR`, default `/tmp`). What that file system is matters: on ext4
//! a write to a page of a shared file mapping that is not yet (or no longer, after an msync)
//! writable takes a page fault that goes through the file system (`page_mkwrite`); on tmpfs
//! it does not.
//!
//! Before a finished log is closed its segment files are hole-punched, which drops their dirty
//! pages: otherwise closing (which msyncs all that a sample wrote) would spend most of the
//! benchmark's wall time writing gigabytes to the disk, untimed, and the dirty pages of one
//! sample would throttle the writers of the next.

mod common;
use common::{bench_base, main_config};
use std::cell::Cell;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mmlog::{Durability, Log, Options};

/// Appends per timed iteration for 64-byte payloads (split evenly across the writers): 88 MiB
/// of frames, so that a sample of several iterations fills a 256 MiB segment or more.
const BATCH_64: u64 = 1 << 20;
/// Appends per timed iteration for 4 KiB payloads: 256 MiB of payload.
const BATCH_4K: u64 = 64 << 10;

/// Drops the page cache of every segment file in the log at `dir` (dirty pages included) by
/// punching a hole over the whole file, keeping its size. Only for logs about to be thrown
/// away: their content is gone afterwards.
fn discard_segments(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir.join("segments")) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(file) = std::fs::OpenOptions::new().write(true).open(entry.path()) else {
            continue;
        };
        let len = file.metadata().map_or(0, |m| m.len());
        let mode = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        // Best effort: a file system without hole punching just writes the pages back.
        let _ = rustix::fs::fallocate(&file, mode, 0, len);
    }
}

/// Opens a fresh log in `dir` and waits until its background threads are idle.
fn open_fresh(dir: &Path, durability: Durability, segment_size: u64) -> Log {
    let log = Log::open(
        dir,
        Options::default()
            .segment_size(segment_size)
            .durability(durability),
    )
    .expect("open log");
    wait_spare_ready(dir);
    log
}

/// Waits until the preallocator has prepared segment 1 (file renamed into place, mapped and
/// pre-faulted), so that it does not compete with the writers for the CPU at the start of
/// the timed part. Linux only: looks at the state of the `mmlog-prealloc` thread in
/// `/proc/self/task`; elsewhere it sleeps a little.
fn wait_spare_ready(dir: &Path) {
    let spare = dir.join("segments").join(format!("{:020}.seg", 1));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut idle_polls = 0;
    while Instant::now() < deadline {
        if spare.exists() && thread_sleeping("mmlog-prealloc").unwrap_or(true) {
            idle_polls += 1;
            if idle_polls >= 3 {
                return;
            }
        } else {
            idle_polls = 0;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("preallocator still busy after 30 s");
}

/// `Some(true)` if every thread of this process named `name` is sleeping (state `S`),
/// `None` if that cannot be told.
fn thread_sleeping(name: &str) -> Option<bool> {
    let mut seen = false;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        seen = true;
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // The state is the first field after the parenthesised command name.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if state != Some('S') {
            return Some(false);
        }
    }
    seen.then_some(true)
}

/// Minor page faults taken by the calling thread so far.
fn thread_minor_faults() -> u64 {
    // SAFETY: `getrusage` only writes the `rusage` it is given; all-zero is a valid `rusage`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    if rc == 0 { usage.ru_minflt as u64 } else { 0 }
}

/// What one timed run did.
struct Run {
    elapsed: Duration,
    appends: u64,
    msyncs: u64,
}

/// Opens a fresh log and runs `writers` threads that each append `per_writer` copies of
/// `payload`, timed from a common start to the last writer's end. Threads are spawned with a
/// small stack so that a thousand of them are cheap.
fn run_writers(
    durability: Durability,
    segment_size: u64,
    writers: usize,
    per_writer: u64,
    payload: &[u8],
) -> Run {
    let dir = tempfile::tempdir_in(bench_base()).expect("tempdir");
    let log = open_fresh(dir.path(), durability, segment_size);
    let start_barrier = Barrier::new(writers + 1);
    let msync_before = log.stats().msync_count;
    // Each writer notes when it started (after the barrier) and when it finished; the run
    // lasts from the first start to the last finish.
    let spans: Vec<(Instant, Instant, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let (log, start_barrier) = (&log, &start_barrier);
                std::thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn_scoped(s, move || {
                        start_barrier.wait();
                        let faults = thread_minor_faults();
                        let start = Instant::now();
                        for _ in 0..per_writer {
                            log.append(payload).expect("append");
                        }
                        (start, Instant::now(), thread_minor_faults() - faults)
                    })
                    .expect("spawn writer")
            })
            .collect();
        start_barrier.wait();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect()
    });
    let start = spans.iter().map(|s| s.0).min().expect("a writer");
    let end = spans.iter().map(|s| s.1).max().expect("a writer");
    let writer_faults: u64 = spans.iter().map(|s| s.2).sum();
    let stats = log.stats();
    let appends = writers as u64 * per_writer;
    assert_eq!(stats.committed_next, appends, "every append committed");
    let run = Run {
        elapsed: end - start,
        appends,
        msyncs: stats.msync_count - msync_before,
    };
    if std::env::var_os("MMLOG_BENCH_VERBOSE").is_some() {
        let secs = run.elapsed.as_secs_f64();
        eprintln!(
            "  {writers} writers x {per_writer} appends of {} B: {:.3} ms, {:.2} M appends/s, \
             {:.2} GiB/s payload, {} segments, {} msyncs, {} page faults in writers",
            payload.len(),
            secs * 1e3,
            appends as f64 / secs / 1e6,
            (appends * payload.len() as u64) as f64 / secs / f64::from(1 << 30),
            stats.segments,
            run.msyncs,
            writer_faults,
        );
    }
    discard_segments(dir.path());
    drop(log);
    drop(dir);
    run
}

fn buffered_64b(c: &mut Criterion) {
    let payload = [0xA5u8; 64];
    let mut g = c.benchmark_group("append_64b");
    let bytes = BATCH_64 * payload.len() as u64;
    g.throughput(Throughput::ElementsAndBytes {
        elements: BATCH_64,
        bytes,
    });
    for writers in [1usize, 2, 4, 16] {
        g.bench_with_input(
            BenchmarkId::new("buffered", writers),
            &writers,
            |b, &writers| {
                b.iter_custom(|iters| {
                    let per_writer = iters * BATCH_64 / writers as u64;
                    run_writers(
                        Durability::Buffered,
                        256 << 20,
                        writers,
                        per_writer,
                        &payload,
                    )
                    .elapsed
                });
            },
        );
    }
    g.finish();
}

fn buffered_4k(c: &mut Criterion) {
    let payload = vec![0x5Au8; 4096];
    let mut g = c.benchmark_group("append_4k");
    let bytes = BATCH_4K * payload.len() as u64;
    g.throughput(Throughput::ElementsAndBytes {
        elements: BATCH_4K,
        bytes,
    });
    for writers in [1usize, 2] {
        g.bench_with_input(
            BenchmarkId::new("buffered", writers),
            &writers,
            |b, &writers| {
                b.iter_custom(|iters| {
                    let per_writer = iters * BATCH_4K / writers as u64;
                    run_writers(Durability::Buffered, 1 << 30, writers, per_writer, &payload)
                        .elapsed
                });
            },
        );
    }
    g.finish();
}

fn immediate(c: &mut Criterion) {
    let payload = [0xC3u8; 64];
    let mut g = c.benchmark_group("append_64b");
    // One iteration: every writer appends ROUNDS times, each append waiting until it is
    // durable. Enough rounds that the ramp at the start (the flusher does not know yet how
    // many writers there are) and at the end (threads finish one by one) do not dominate.
    const ROUNDS: u64 = 50;
    for writers in [4usize, 64, 1000] {
        g.throughput(Throughput::Elements(writers as u64 * ROUNDS));
        let totals = Cell::new((0u64, 0u64));
        g.bench_with_input(
            BenchmarkId::new("immediate", writers),
            &writers,
            |b, &writers| {
                b.iter_custom(|iters| {
                    let run = run_writers(
                        Durability::Immediate,
                        64 << 20,
                        writers,
                        iters * ROUNDS,
                        &payload,
                    );
                    let (a, m) = totals.get();
                    totals.set((a + run.appends, m + run.msyncs));
                    run.elapsed
                });
            },
        );
        let (appends, msyncs) = totals.get();
        if appends == 0 {
            continue; // filtered out
        }
        let per_msync = appends as f64 / msyncs.max(1) as f64;
        let target = 0.7 * writers as f64;
        eprintln!(
            "append_64b/immediate/{writers}: {appends} appends, {msyncs} msyncs, \
             {per_msync:.1} appends per msync (target >= {target:.1}: {})",
            if per_msync >= target { "met" } else { "MISSED" }
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = main_config();
    targets = buffered_64b, buffered_4k, immediate
}
criterion_main!(benches);
