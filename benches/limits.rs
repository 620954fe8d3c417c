//! The physical limits the append and read benchmarks are measured against, in the same run
//! on the same machine, so that their numbers read as ratios.
//!
//! - `limits/memcpy_64b`, `limits/memcpy_4k`: copying payloads into a shared mapping of a
//!   fallocated file whose pages were all written once before (so no page faults), at
//!   successive frame positions (payload plus the 24-byte frame header, 8-byte aligned), the
//!   16,384 x 64 B or 256 x 4 KiB per iteration.
//! - `limits/crc32c_*` (mmlog's CRC-32C, `mmlog::format::crc`), `limits/crc32fast_*` (CRC-32): one
//!   CRC over a 64 B or 4 KiB buffer;
//!   `crc32c_frame_*` is the CRC of a frame as mmlog computes it: the 4-byte length and kind
//!   word, then the 16-byte sequence number and timestamp and the payload, contiguous (two
//!   chained calls).
//! - `limits/crc_stream_64b`, `limits/crc_stream_4k`: the CRC work of a full scan, streaming
//!   from memory: the frame CRC (two calls, as above) of every frame of a 256 MiB pre-faulted
//!   mapping laid out as frames of 64 B or 4 KiB payloads (records/s and payload bytes/s). A
//!   reader cannot check every record faster than this.
//! - `limits/msync_4k_fresh`: dirty one 4 KiB page of a shared mapping and `msync` it, a
//!   different page of a fallocated (never written) file each time, as the flusher does;
//!   `limits/msync_4k_overwrite`: the same on pages already written and synced.
//! - `limits/pwrite_fdatasync_4k_fresh` / `_overwrite`: `pwrite` of 4 KiB then `fdatasync`,
//!   likewise.
//! - `limits/fetch_add_shared/{1,2}`: `fetch_add` on one shared `AtomicU64` (what every
//!   append does to its segment's tail word) by 1 and 2 threads: the ceiling that cache-line
//!   transfers between cores put on appends from several threads (operations/s, all threads
//!   together).
//! - `limits/reserve_copy_crc_64b/{1,2}`: the bare minimum of an append, by 1 and 2 threads
//!   into one pre-faulted shared mapping: `fetch_add` of the frame length on a shared word,
//!   copy of the 16-byte sequence number and timestamp and of the 64-byte payload, CRC-32C of
//!   the length word and then of those 80 bytes read back from the mapping (as mmlog does),
//!   release store of the commit word. No segment, no checks, no clock: what `Log::append` costs beyond this is
//!   the library's overhead. With 2 threads, neighbouring frames share cache lines, as in a log.
//!
//! Files go in a temporary directory under `MMLOG_BENCH_DIR` if set, else under the system
//! temporary directory: put them on the file system the logs live on.

mod common;
use common::{bench_base, main_config};
use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_utils::CachePadded;
use memmap2::MmapMut;

const PAGE: usize = 4096;
/// Bytes of the 24-byte frame header that precede a payload.
const FRAME_HEADER: usize = 24;

/// A new file of `len` bytes, allocated with `fallocate` (like a segment), and its directory.
fn fallocated(len: u64) -> (tempfile::TempDir, File) {
    let dir = tempfile::tempdir_in(bench_base()).expect("tempdir");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.path().join("file"))
        .expect("create");
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len).expect("fallocate");
    file.sync_all().expect("fsync");
    (dir, file)
}

/// A shared mapping of a fallocated file with every page written once (pre-faulted, dirty).
fn prefaulted_mapping(len: usize) -> (tempfile::TempDir, MmapMut) {
    let (dir, file) = fallocated(len as u64);
    // SAFETY: the file was just created in a private temporary directory; nothing else maps,
    // truncates or writes it while the mapping lives.
    let mut map = unsafe { MmapMut::map_mut(&file) }.expect("mmap");
    for page in map.chunks_mut(PAGE) {
        page[0] = 1;
    }
    (dir, map)
}

/// Copies `payload` `batch` times to successive frame positions of `map`, starting at
/// `*cursor` and wrapping around at the end.
fn copy_batch(map: &mut [u8], cursor: &mut usize, payload: &[u8], batch: usize) {
    let stride = (payload.len() + FRAME_HEADER).next_multiple_of(8);
    for _ in 0..batch {
        if *cursor + stride > map.len() {
            *cursor = 0;
        }
        let at = *cursor + FRAME_HEADER;
        map[at..at + payload.len()].copy_from_slice(payload);
        *cursor += stride;
    }
    black_box(&mut *map);
}

fn memcpy(c: &mut Criterion) {
    let mut g = c.benchmark_group("limits");
    let (_dir, mut map) = prefaulted_mapping(256 << 20);
    for (name, len, batch) in [
        ("memcpy_64b", 64usize, 16_384usize),
        ("memcpy_4k", 4096, 256),
    ] {
        let payload = vec![0xA5u8; len];
        let bytes = (len * batch) as u64;
        g.throughput(Throughput::ElementsAndBytes {
            elements: batch as u64,
            bytes,
        });
        let mut cursor = 0;
        g.bench_function(name, |b| {
            b.iter(|| copy_batch(&mut map, &mut cursor, black_box(&payload), batch));
        });
    }
    g.finish();
}

fn crc_stream(c: &mut Criterion) {
    let mut g = c.benchmark_group("limits");
    let (_dir, map) = prefaulted_mapping(256 << 20);
    for (name, len) in [("crc_stream_64b", 64usize), ("crc_stream_4k", 4096)] {
        let stride = (len + FRAME_HEADER).next_multiple_of(8);
        let frames = map.len() / stride;
        let len_kind = (len as u32).to_le_bytes();
        g.throughput(Throughput::ElementsAndBytes {
            elements: frames as u64,
            bytes: (frames * len) as u64,
        });
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut acc = 0u32;
                for frame in map.chunks_exact(stride) {
                    // The bytes after the commit word: sequence number, timestamp, payload.
                    let body = &frame[8..FRAME_HEADER + len];
                    let crc = mmlog::format::crc::checksum(&len_kind);
                    acc ^= mmlog::format::crc::checksum_append(crc, black_box(body));
                }
                acc
            });
        });
    }
    g.finish();
}

fn crc(c: &mut Criterion) {
    let mut g = c.benchmark_group("limits");
    for (name, len) in [("64b", 64usize), ("4k", 4096)] {
        let buf: Vec<u8> = (0..len).map(|i| i as u8).collect();
        g.throughput(Throughput::ElementsAndBytes {
            elements: 1,
            bytes: len as u64,
        });
        g.bench_function(format!("crc32c_{name}"), |b| {
            b.iter(|| mmlog::format::crc::checksum(black_box(&buf)));
        });
        g.bench_function(format!("crc32c_frame_{name}"), |b| {
            let len_kind = (len as u32).to_le_bytes();
            let body: Vec<u8> = (0..16 + len).map(|i| i as u8).collect();
            b.iter(|| {
                let crc = mmlog::format::crc::checksum(black_box(&len_kind));
                mmlog::format::crc::checksum_append(crc, black_box(&body))
            });
        });
        g.bench_function(format!("crc32fast_{name}"), |b| {
            b.iter(|| crc32fast::hash(black_box(&buf)));
        });
    }
    g.finish();
}

/// Pages in the files of the sync benchmarks: more than a run gets through, so the `fresh`
/// variants never come back to a page.
const SYNC_PAGES: usize = 16_384;
/// Pages cycled through by the `overwrite` variants (written and synced beforehand).
const OVERWRITE_PAGES: usize = 1024;

/// A file of `pages` allocated pages to sync, written and synced once first if `prewrite`
/// (the `overwrite` variants), so only the write under test is dirty.
fn sync_target(pages: usize, prewrite: bool) -> (tempfile::TempDir, std::fs::File) {
    let (dir, file) = fallocated((pages * PAGE) as u64);
    if prewrite {
        file.write_all_at(&vec![0x11u8; pages * PAGE], 0)
            .expect("prewrite");
        file.sync_all().expect("fsync");
    }
    (dir, file)
}

fn sync(c: &mut Criterion) {
    let mut g = c.benchmark_group("limits");
    g.throughput(Throughput::Elements(1));

    for (name, pages, prewrite) in [
        ("fresh", SYNC_PAGES, false),
        ("overwrite", OVERWRITE_PAGES, true),
    ] {
        let (_dir, file) = sync_target(pages, prewrite);
        // SAFETY: as in `prefaulted_mapping`: a private file nobody else touches.
        let mut map = unsafe { MmapMut::map_mut(&file) }.expect("mmap");
        let mut page = 0usize;
        g.bench_function(format!("msync_4k_{name}"), |b| {
            b.iter(|| {
                let at = page * PAGE;
                map[at..at + 8].copy_from_slice(&(page as u64 + 1).to_le_bytes());
                map.flush_range(at, PAGE).expect("msync");
                page = (page + 1) % pages;
            });
        });
    }

    let buf = vec![0x77u8; PAGE];
    for (name, pages, prewrite) in [
        ("fresh", SYNC_PAGES, false),
        ("overwrite", OVERWRITE_PAGES, true),
    ] {
        let (_dir, file) = sync_target(pages, prewrite);
        let mut page = 0usize;
        g.bench_function(format!("pwrite_fdatasync_4k_{name}"), |b| {
            b.iter(|| {
                file.write_all_at(&buf, (page * PAGE) as u64)
                    .expect("pwrite");
                file.sync_data().expect("fdatasync");
                page = (page + 1) % pages;
            });
        });
    }
    g.finish();
}

/// `fetch_add`s per timed iteration (split evenly across the threads).
const FETCH_ADD_BATCH: u64 = 1 << 20;

fn fetch_add_shared(c: &mut Criterion) {
    let mut g = c.benchmark_group("limits");
    g.throughput(Throughput::Elements(FETCH_ADD_BATCH));
    for threads in [1u64, 2] {
        let id = BenchmarkId::new("fetch_add_shared", threads);
        g.bench_with_input(id, &threads, |b, &t| {
            b.iter_custom(|iters| {
                let word = CachePadded::new(AtomicU64::new(0));
                timed_threads(t, iters * FETCH_ADD_BATCH / t, |_| {
                    // Same operation as a reservation: add a frame length.
                    black_box(word.fetch_add(88, Ordering::AcqRel));
                })
            });
        });
    }
    g.finish();
}

/// Runs `threads` threads that each call `op` `per_thread` times, from a common start; returns
/// the time from the first start to the last end.
fn timed_threads(threads: u64, per_thread: u64, op: impl Fn(u64) + Sync) -> Duration {
    let barrier = Barrier::new(threads as usize);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..per_thread {
                        op(i);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let start = spans.iter().map(|s| s.0).min().expect("a thread");
    let end = spans.iter().map(|s| s.1).max().expect("a thread");
    end - start
}

fn reserve_copy_crc(c: &mut Criterion) {
    const FRAME: u64 = 88; // 24-byte header + 64-byte payload
    let mut g = c.benchmark_group("limits");
    g.throughput(Throughput::ElementsAndBytes {
        elements: FETCH_ADD_BATCH,
        bytes: FETCH_ADD_BATCH * 64,
    });
    let (_dir, map) = prefaulted_mapping(256 << 20);
    // Whole frames only; a position past the end wraps to the start.
    let span = (map.len() as u64 / FRAME - 1) * FRAME;
    let base = map.as_ptr() as usize;
    let payload = [0xA5u8; 64];
    for threads in [1u64, 2] {
        let tail = CachePadded::new(AtomicU64::new(0));
        let id = BenchmarkId::new("reserve_copy_crc_64b", threads);
        g.bench_with_input(id, &threads, |b, &t| {
            b.iter_custom(|iters| {
                timed_threads(t, iters * FETCH_ADD_BATCH / t, |i| {
                    let at = (tail.fetch_add(FRAME, Ordering::AcqRel) % span) as usize;
                    let mut seq_ts = [0u8; 16];
                    seq_ts[..8].copy_from_slice(&i.to_le_bytes());
                    let frame = (base + at) as *mut u8;
                    // SAFETY: `at + FRAME <= span < map.len()`, the mapping outlives the
                    // threads, and each frame is accessed only by the thread that reserved it
                    // (its commit word through an atomic, 8-aligned as `at` and the mapping
                    // are). Reservations in flight together are a few frames apart in the
                    // counter, so never the same frame after the modulo.
                    unsafe {
                        std::ptr::copy_nonoverlapping(seq_ts.as_ptr(), frame.add(8), 16);
                        std::ptr::copy_nonoverlapping(payload.as_ptr(), frame.add(24), 64);
                        let body = std::slice::from_raw_parts(frame.add(8), 80);
                        let crc = mmlog::format::crc::checksum(&64u32.to_le_bytes());
                        let crc = mmlog::format::crc::checksum_append(crc, body);
                        let word = &*frame.cast::<AtomicU64>();
                        word.store(u64::from(crc) << 32 | 64, Ordering::Release);
                    }
                })
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = main_config();
    targets = memcpy, crc, crc_stream, sync, fetch_add_shared, reserve_copy_crc
}
criterion_main!(benches);
