//! The flusher: one background thread that makes the committed prefix durable, one `msync`
//! for every writer waiting at that moment (group commit), and seals complete segments.
//!
//! Invariants:
//! - The durable watermark (`durable_next`) only ever covers the contiguous committed prefix,
//!   so no record after an unpublished reservation is acknowledged.
//! - Segments are made durable strictly in order, and a segment's seal is written (and
//!   synced) only after all of its frames are durable and before any frame of a later segment
//!   is acknowledged. Recovery relies on this: no valid seal means nothing after it was
//!   acknowledged.
//! - A failed `msync` poisons the log and is never retried: the kernel may already have
//!   dropped the pages it failed to write.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::thread::futex;

use super::segment::Segment;
use super::shared::{Shared, lock};
use crate::error::{Error, Result};
use crate::format::segment_header::{SEAL_OFFSET, SEGMENT_HEADER_LEN, Seal};
use crate::options::Durability;
use crate::storage::fs as sfs;
use crate::storage::sim;

const PAGE: u64 = 4096;
/// How many times group commit yields to writers still copying before it syncs anyway.
const GATHER_ROUNDS_MAX: u32 = 64;
/// The longest group commit waits for the writers of the previous batch to come back.
const HERD_WAIT_MAX: Duration = Duration::from_millis(20);

struct FlushState {
    /// Make every sequence number below this durable.
    want: u64,
    /// A segment was completed: sync and seal it.
    seal_pending: bool,
    shutdown: bool,
    /// Writers that started waiting since the current batch was cut.
    arrivals: usize,
    /// How many writers the next batch can expect: those the previous `msync` released
    /// plus those that were already waiting for the next one.
    last_batch: usize,
    /// How long the previous flush took.
    last_flush: Duration,
}

/// The flusher's hand-off with writers and `sync`.
pub(crate) struct FlushShared {
    state: Mutex<FlushState>,
    work_cv: Condvar,
    /// The flusher has stopped; nothing more will become durable.
    stopped: AtomicBool,
    /// Every sequence number below this is on stable storage.
    pub(crate) durable_next: AtomicU64,
    /// `msync` calls made, for group-commit statistics.
    pub(crate) msync_count: AtomicU64,
    /// Bumped each time the durable watermark moves (or the log stops): writers waiting for
    /// it sleep on this word (a futex), so one system call wakes them all.
    epoch: AtomicU32,
    /// Writers sleeping on `epoch` or about to.
    waiting: AtomicUsize,
}

impl FlushShared {
    pub(crate) fn new(durable_next: u64) -> FlushShared {
        FlushShared {
            state: Mutex::new(FlushState {
                want: 0,
                seal_pending: false,
                shutdown: false,
                arrivals: 0,
                last_batch: 0,
                last_flush: Duration::ZERO,
            }),
            work_cv: Condvar::new(),
            stopped: AtomicBool::new(false),
            durable_next: AtomicU64::new(durable_next),
            msync_count: AtomicU64::new(0),
            epoch: AtomicU32::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FlushState> {
        lock(&self.state)
    }

    pub(crate) fn request_seal(&self) {
        self.lock().seal_pending = true;
        self.work_cv.notify_one();
    }

    /// Wakes the writers waiting for the durable watermark (called after it moved, or once the
    /// log is poisoned or the flusher stopped): one `futex` wake for all of them, so the
    /// flusher does not make a system call per writer before it can start the next `msync`.
    /// Each writer checks its own target and sleeps again if it is not reached yet.
    ///
    /// No wake-up is lost: the watermark is stored (by the caller) before `epoch` is bumped
    /// and `waiting` is read, all sequentially consistent, and a writer counts itself in
    /// `waiting` before it reads `epoch` and the watermark. So either this call sees the
    /// writer and wakes it, or the writer sees the new watermark (or epoch) and does not sleep.
    pub(crate) fn wake_waiters(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        // A read-modify-write, not a load: it reads the latest count in `waiting`'s
        // modification order whatever the memory model, pairing with the writer's
        // `fetch_add(0)` of `epoch` (see the loom model `loom_model_group_commit_*`).
        let waiting = self.waiting.fetch_add(0, Ordering::SeqCst);
        // The next batch is worth holding open for every writer waiting now: those released
        // by this wake-up will be back with their next record, and the rest wait for it.
        self.lock().last_batch = waiting;
        if waiting > 0 {
            // The count is an `int` in the kernel: `i32::MAX` means all of them.
            let _ = futex::wake(&self.epoch, futex::Flags::PRIVATE, i32::MAX as u32);
        }
    }

    pub(crate) fn shutdown(&self) {
        self.lock().shutdown = true;
        self.work_cv.notify_one();
    }

    /// Waits until every sequence number below `next` is durable.
    pub(crate) fn wait_durable(&self, shared: &Shared, next: u64) -> Result<()> {
        if self.durable_next.load(Ordering::Acquire) >= next {
            return Ok(());
        }
        let mut st = self.lock();
        st.arrivals += 1;
        let first = st.want <= self.durable_next.load(Ordering::Acquire);
        st.want = st.want.max(next);
        // Wake the flusher for the first request, and again once as many writers wait as the
        // previous batch had (it may be holding the batch open for them).
        if first || st.arrivals == st.last_batch {
            self.work_cv.notify_one();
        }
        drop(st);
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let outcome = loop {
            // A read-modify-write (see `wake_waiters`).
            let epoch = self.epoch.fetch_add(0, Ordering::SeqCst);
            if self.durable_next.load(Ordering::SeqCst) >= next {
                break Ok(());
            }
            if shared.is_poisoned() {
                break Err(Error::Poisoned {
                    cause: shared.poison_cause(),
                });
            }
            if self.stopped.load(Ordering::SeqCst) {
                break Err(Error::Closed);
            }
            // Returns at once if `epoch` moved since it was read (`EAGAIN`), and on a signal
            // (`EINTR`); the loop checks again either way.
            let _ = futex::wait(&self.epoch, futex::Flags::PRIVATE, epoch, None);
        };
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        outcome
    }
}

/// Body of the flusher thread.
pub(crate) fn run(shared: &Shared, first_unsealed: Arc<Segment>) {
    let flush = &shared.flush;
    let mut cursor = first_unsealed;
    loop {
        let (want, shutdown) = wait_for_work(shared);
        if shared.durability() == Durability::Immediate {
            gather(shared);
        }
        let started = Instant::now();
        match flush_committed(shared, &mut cursor) {
            Ok(durable) => {
                flush.durable_next.fetch_max(durable, Ordering::SeqCst);
                flush.lock().last_flush = started.elapsed();
                flush.wake_waiters();
            }
            Err(e) => {
                shared.poison(&e);
                break;
            }
        }
        if shutdown {
            break;
        }
        if want > flush.durable_next.load(Ordering::Acquire) {
            // A reservation before `want` is still being written: give it a moment.
            std::thread::yield_now();
        }
    }
    flush.stopped.store(true, Ordering::SeqCst);
    flush.wake_waiters();
}

fn wait_for_work(shared: &Shared) -> (u64, bool) {
    let flush = &shared.flush;
    let mut st = flush.lock();
    loop {
        let durable = flush.durable_next.load(Ordering::Acquire);
        if st.shutdown || st.seal_pending || st.want > durable {
            break;
        }
        st = match shared.durability() {
            Durability::Periodic(every) => {
                let (g, timeout) = flush
                    .work_cv
                    .wait_timeout(st, every)
                    .unwrap_or_else(|p| p.into_inner());
                if timeout.timed_out() {
                    let mut g = g;
                    g.want = g.want.max(shared.reserved_next());
                    g
                } else {
                    g
                }
            }
            _ => flush.work_cv.wait(st).unwrap_or_else(|p| p.into_inner()),
        };
    }
    if shared.durability() == Durability::Immediate {
        st = wait_for_herd(flush, st);
    }
    st.seal_pending = false;
    (st.want, st.shutdown)
}

/// Group commit, part one: the writers the previous `msync` released are busy appending
/// their next record and will be back soon. Hold the batch open until as many have arrived,
/// or until arrivals pause for a few flush times (nobody else is coming), and never
/// longer than `HERD_WAIT_MAX`; then cut it. With many more threads than cores the herd
/// takes far longer to come back than a flush, which is why the pause, not a fixed time,
/// decides.
fn wait_for_herd<'a>(
    flush: &'a FlushShared,
    mut st: MutexGuard<'a, FlushState>,
) -> MutexGuard<'a, FlushState> {
    let start = Instant::now();
    let pause = (st.last_flush * 4).clamp(Duration::from_micros(200), Duration::from_millis(5));
    let mut seen = st.arrivals;
    let mut quiet_until = start + pause;
    while st.arrivals < st.last_batch && !st.shutdown {
        let now = Instant::now();
        if st.arrivals > seen {
            seen = st.arrivals;
            quiet_until = now + pause;
        }
        let until = quiet_until.min(start + HERD_WAIT_MAX);
        if now >= until {
            break;
        }
        st = flush
            .work_cv
            .wait_timeout(st, until - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    st.arrivals = 0;
    st
}

/// Group commit, part two: writers that have reserved but not yet published are a few
/// instructions from publishing; waiting for them (briefly) lets one `msync` cover them too.
fn gather(shared: &Shared) {
    for _ in 0..GATHER_ROUNDS_MAX {
        let Ok(commit) = shared.advance_committed() else {
            return;
        };
        if shared.reserved_next() <= commit.next_seq {
            return;
        }
        std::thread::yield_now();
    }
}

/// Makes the committed prefix durable; returns the new durable watermark.
fn flush_committed(shared: &Shared, cursor: &mut Arc<Segment>) -> Result<u64> {
    let commit = shared.advance_committed()?;
    loop {
        let seg = Arc::clone(cursor);
        let completion = seg.completion().filter(|_| seg.id < commit.segment.id);
        let end = match completion {
            Some(c) => seg.data_end(c),
            None => commit.offset,
        };
        sync_range(shared, &seg, end)?;
        let Some(c) = completion else { break };
        if !seg.is_sealed() {
            write_seal(shared, &seg, c)?;
        }
        match shared.segment_by_id(seg.id + 1) {
            Some(next) => *cursor = next,
            None => break,
        }
    }
    Ok(commit.next_seq)
}

/// `msync` of the part of `seg` below `end` not yet synced (the header too, on first use).
fn sync_range(shared: &Shared, seg: &Segment, end: u64) -> Result<()> {
    let synced = seg.synced_offset.load(Ordering::Acquire);
    if end <= synced {
        return Ok(());
    }
    if synced == 0 {
        sfs::sync_new_segment(&seg.path)?;
    }
    let from = synced - synced % PAGE;
    let map = seg.mapping()?;
    #[cfg(test)]
    if shared.fail_next_msync.swap(false, Ordering::SeqCst) {
        let e = std::io::Error::from_raw_os_error(libc::EIO);
        return Err(Error::io("msync", &seg.path, e));
    }
    // Frames below `end` are published and never written again; in a complete segment
    // nothing is. Unmapping those pages first spares the writeback a TLB flush per page.
    let release_to = if seg.completion().is_some() {
        seg.capacity
    } else {
        end
    };
    map.release_pages(from, release_to - from);
    sim::before("msync", &seg.path)
        .and_then(|()| map.flush_range(from, end - from))
        .and_then(|()| sim::synced_data(&seg.path, from, end - from))
        .map_err(|e| Error::io("msync", &seg.path, e))?;
    shared.flush.msync_count.fetch_add(1, Ordering::Relaxed);
    seg.synced_offset.store(end, Ordering::Release);
    Ok(())
}

/// `msync` of the header of `seg` (and of its seal, once written).
pub(crate) fn msync_header(seg: &Segment) -> Result<()> {
    let map = seg.mapping()?;
    sim::before("msync", &seg.path)
        .and_then(|()| map.flush_range(0, SEGMENT_HEADER_LEN as u64))
        .and_then(|()| sim::synced_data(&seg.path, 0, SEGMENT_HEADER_LEN as u64))
        .map_err(|e| Error::io("msync", &seg.path, e))
}

/// Makes the header and the name of `seg` durable, if the flusher has not yet. Compaction
/// calls this for the segment that becomes the first one: recovery needs its header to know
/// where the log's sequence numbers start. (The flush pass that seals a segment reaches the
/// next one's header too, so this is normally one atomic load; it makes the guarantee
/// compaction's own rather than a property of that pass.)
pub(crate) fn make_header_durable(seg: &Segment) -> Result<()> {
    if seg.synced_offset.load(Ordering::Acquire) > 0 {
        return Ok(());
    }
    sfs::sync_new_segment(&seg.path)?;
    msync_header(seg)
}

/// Writes the seal of a complete segment whose frames are all durable, and syncs it.
fn write_seal(shared: &Shared, seg: &Segment, c: super::segment::Completion) -> Result<()> {
    let (first_ts, max_ts) = seg.index_times();
    let seal = Seal {
        record_count: c.record_count,
        end_offset: c.end_offset,
        first_ts,
        max_ts,
    };
    let map = seg.mapping()?;
    // SAFETY: bytes 64..128 of the header are written only here, once, by the flusher thread,
    // and no reference to them is ever formed (readers use the in-memory completion).
    if !unsafe { map.write(SEAL_OFFSET as u64, &seal.encode()) } {
        return Err(seg.corrupt(
            0,
            crate::error::CorruptionKind::Truncated { what: "segment" },
        ));
    }
    msync_header(seg)?;
    shared.flush.msync_count.fetch_add(1, Ordering::Relaxed);
    seg.mark_sealed(max_ts);
    seg.save_index();
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{Durability, Error, Log, Options};

    /// A failed msync must poison the log: no acknowledgement after it, no retry as if
    /// nothing happened, and a reopen recovers what is on disk.
    #[test]
    fn failed_msync_poisons_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(
            dir.path(),
            Options::default().durability(Durability::Immediate),
        )
        .unwrap();
        assert_eq!(log.append(b"durable").unwrap(), 0);
        log.fail_next_msync();
        match log.append(b"lost") {
            Err(Error::Poisoned { cause }) => assert!(cause.contains("msync"), "{cause}"),
            other => panic!("expected Poisoned, got {other:?}"),
        }
        assert!(matches!(
            log.append(b"refused"),
            Err(Error::Poisoned { .. })
        ));
        assert!(matches!(log.sync(), Err(Error::Poisoned { .. })));
        assert_eq!(log.durable_seq(), Some(0));
        // Readers still work on what was committed.
        let mut r = log.read_from(0).unwrap();
        assert_eq!(r.next().unwrap().unwrap().payload(), b"durable");
        assert!(matches!(log.close(), Err(Error::Poisoned { .. })));
        let log = Log::open(dir.path(), Options::default()).unwrap();
        let mut r = log.read_from(0).unwrap();
        assert_eq!(r.next().unwrap().unwrap().payload(), b"durable");
        assert_eq!(log.append(b"again").unwrap(), log.last_seq().unwrap());
    }
}
