//! Appending a record and reading one back allocate nothing on the heap.
//!
//! A counting global allocator counts the allocations made by the test thread while counting
//! is switched on (a thread-local flag): the log's background threads (flusher, preallocator)
//! and the test harness are not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use mmlog::{Durability, Log, Options};

struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation() {
    // `try_with`: the flag may be gone while the thread's locals are being destroyed.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; counting has no effect on the memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations made by this thread while running `f`.
fn allocations_in<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.load(Ordering::Relaxed) - before, out)
}

const RECORDS: u64 = 10_000;

#[test]
fn append_and_read_allocate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .segment_size(64 << 20)
        .durability(Durability::Buffered);
    let log = Log::open(dir.path(), options).unwrap();

    // The counter works (and the flag is per thread).
    let (n, v) = allocations_in(|| vec![1u8; 16]);
    assert_eq!((n, v.len()), (1, 16), "the counting allocator counts");

    // Warm up: first use of per-thread state on the append and read paths.
    let payload = [0x5Au8; 64];
    for _ in 0..16 {
        log.append(&payload).unwrap();
    }
    let mut reader = log.read_from(0).unwrap();
    let mut warm = 0;
    while let Some(rec) = reader.next() {
        assert_eq!(rec.unwrap().payload(), &payload);
        warm += 1;
    }
    assert_eq!(warm, 16);

    let (appends_allocs, ()) = allocations_in(|| {
        for _ in 0..RECORDS {
            log.append(&payload).unwrap();
        }
    });
    assert_eq!(
        log.stats().segments,
        1,
        "no rollover in the counted appends"
    );

    let (read_allocs, (read, bytes)) = allocations_in(|| {
        let (mut read, mut bytes) = (0u64, 0u64);
        while let Some(rec) = reader.next() {
            let rec = rec.unwrap();
            read += 1;
            bytes += rec.payload().len() as u64;
        }
        (read, bytes)
    });
    assert_eq!((read, bytes), (RECORDS, RECORDS * 64));

    assert_eq!(
        appends_allocs, 0,
        "heap allocations across {RECORDS} appends"
    );
    assert_eq!(
        read_allocs, 0,
        "heap allocations across reading {RECORDS} records"
    );
    log.close().unwrap();
}
