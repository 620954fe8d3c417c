//! State shared by the `Log` handle, its readers and its background threads, and the append
//! path: reserve, copy, publish, roll over.

use std::path::PathBuf;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use std::time::Duration;

use super::archive::{self, Archive};
use super::checkpoints::CheckpointStore;
use super::compaction::CompactionReport;
use super::consumers::Consumers;
use super::flusher::FlushShared;
use super::prealloc::SpareSlot;
use super::segment::{Completion, Segment};
use crate::error::{Error, Result};
use crate::format::segment_header::SegmentHeader;
use crate::options::{Durability, Options, Timestamps};
use crate::storage::fs as sfs;
use crate::storage::mmap::Mapping;

const STATE_OPEN: u8 = 0;
const STATE_POISONED: u8 = 1;
const STATE_CLOSED: u8 = 2;

/// The contiguous committed prefix: every frame before `offset` of `segment` is published.
#[derive(Clone)]
pub(crate) struct CommitPoint {
    pub(crate) segment: Arc<Segment>,
    pub(crate) offset: u64,
    pub(crate) next_seq: u64,
}

pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) segments_dir: PathBuf,
    pub(crate) options: Options,
    /// The segment writers reserve in: always a segment owned by `segments`.
    active: AtomicPtr<Segment>,
    /// Every segment of this `Log`, in id order (ids are consecutive).
    ///
    /// Invariant: a `Segment` that has been active is never dropped while `Shared` lives, so
    /// `active` can be a plain pointer that writers load without touching a reference count
    /// (a shared count would bounce between the writers' cores on every append). Whatever
    /// later removes old segments from this list must keep their `Segment` values alive (it
    /// may release their mappings: a writer never touches the mapping of a complete segment).
    segments: RwLock<Vec<Arc<Segment>>>,
    /// Segments compaction took out of `segments`, kept alive for the invariant above (each
    /// has released its mapping and index: a few hundred bytes apiece).
    retired: Mutex<Vec<Arc<Segment>>>,
    /// Serializes compactions.
    pub(crate) compaction: Mutex<()>,
    pub(crate) compactor: Compactor,
    pub(crate) checkpoints: CheckpointStore,
    pub(crate) consumers: Consumers,
    pub(crate) archive: Archive,
    /// Serializes rollovers (never taken on the append path itself).
    rollover: Mutex<()>,
    state: AtomicU8,
    poison_cause: Mutex<Option<String>>,
    /// Timestamps are never below this: the largest timestamp recovered from the log.
    clock_floor: u64,
    /// Where the committed-prefix scan has got to.
    commit: Mutex<Arc<Segment>>,
    pub(crate) committed_next: AtomicU64,
    /// Readers waiting for new frames sleep here.
    tail_lock: Mutex<()>,
    tail_cv: Condvar,
    pub(crate) flush: FlushShared,
    pub(crate) spare: SpareSlot,
    /// Test-only failpoint: the flusher's next `msync` fails as a disk error would.
    #[cfg(test)]
    pub(crate) fail_next_msync: std::sync::atomic::AtomicBool,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        dir: PathBuf,
        segments_dir: PathBuf,
        options: Options,
        segments: Vec<Arc<Segment>>,
        commit_from: Arc<Segment>,
        clock_floor: u64,
        durable_next: u64,
        stores: Stores,
    ) -> Result<Shared> {
        let Some(active) = segments.last().cloned() else {
            return Err(Error::invalid("a log needs at least one segment"));
        };
        let spare = SpareSlot::new(active.id + 1, options.segment_size);
        Ok(Shared {
            dir,
            segments_dir,
            options,
            active: AtomicPtr::new(Arc::as_ptr(&active).cast_mut()),
            segments: RwLock::new(segments),
            retired: Mutex::new(Vec::new()),
            compaction: Mutex::new(()),
            compactor: Compactor::default(),
            checkpoints: stores.checkpoints,
            consumers: stores.consumers,
            archive: stores.archive,
            rollover: Mutex::new(()),
            state: AtomicU8::new(STATE_OPEN),
            poison_cause: Mutex::new(None),
            clock_floor,
            commit: Mutex::new(commit_from),
            committed_next: AtomicU64::new(durable_next),
            tail_lock: Mutex::new(()),
            tail_cv: Condvar::new(),
            flush: FlushShared::new(durable_next),
            spare,
            #[cfg(test)]
            fail_next_msync: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Nanoseconds since the Unix epoch, never below the largest recovered timestamp.
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        let now = match self.options.timestamps {
            Timestamps::Coarse => sfs::coarse_now_ns(),
            Timestamps::Precise => sfs::now_ns(),
        };
        now.max(self.clock_floor)
    }

    /// Fails unless the log accepts writes.
    #[inline]
    pub(crate) fn check_writable(&self) -> Result<()> {
        match self.state.load(Ordering::Relaxed) {
            STATE_OPEN => Ok(()),
            STATE_POISONED => Err(Error::Poisoned {
                cause: self.poison_cause(),
            }),
            _ => Err(Error::Closed),
        }
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.state.load(Ordering::Acquire) == STATE_POISONED
    }

    pub(crate) fn poison_cause(&self) -> String {
        lock(&self.poison_cause).clone().unwrap_or_default()
    }

    /// Refuses all further writes after a failed flush (see `Error::Poisoned`).
    pub(crate) fn poison(&self, cause: &Error) {
        *lock(&self.poison_cause) = Some(cause.to_string());
        let _ = self.state.compare_exchange(
            STATE_OPEN,
            STATE_POISONED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.flush.wake_waiters();
    }

    pub(crate) fn mark_closed(&self) {
        let _ = self.state.compare_exchange(
            STATE_OPEN,
            STATE_CLOSED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    pub(crate) fn segments(&self) -> Vec<Arc<Segment>> {
        self.segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn segment_by_id(&self, id: u64) -> Option<Arc<Segment>> {
        let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
        live_at(&segs, id).cloned()
    }

    /// Segment `id` and its mapping, for a reader entering it: from the live set (the mapping
    /// taken while the segment is certainly live), or from the archive for ids before it.
    pub(crate) fn segment_for_read(&self, id: u64) -> Result<Option<(Arc<Segment>, Arc<Mapping>)>> {
        let first_live = {
            let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
            if let Some(seg) = live_at(&segs, id) {
                let map = seg.mapping()?;
                return Ok(Some((Arc::clone(seg), map)));
            }
            segs.first().map_or(0, |s| s.id)
        };
        if id >= first_live {
            return Ok(None);
        }
        match self.archive.find_id(id)? {
            Some(entry) => {
                let seg = archive::open_segment(&entry)?;
                let map = seg.mapping()?;
                Ok(Some((seg, map)))
            }
            None => Err(Error::invalid(format!(
                "segment {id} was compacted away and is not in the archive"
            ))),
        }
    }

    /// Segments compaction took out of the live set since open.
    pub(crate) fn retired_count(&self) -> usize {
        lock(&self.retired).len()
    }

    /// Whether a segment follows segment `id` (live, or archived before the live ones).
    pub(crate) fn next_segment_exists(&self, id: u64) -> bool {
        let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
        let next = id + 1;
        segs.first().is_some_and(|first| next < first.id) || live_at(&segs, next).is_some()
    }

    /// Takes `seg`, the oldest live segment, out of the live set (compaction) and drops its
    /// mapping; the `Segment` value stays alive in `retired`.
    pub(crate) fn retire_oldest(&self, seg: &Arc<Segment>) {
        {
            let mut segs = self.segments.write().unwrap_or_else(|p| p.into_inner());
            if segs.first().is_some_and(|s| s.id == seg.id) {
                let old = segs.remove(0);
                lock(&self.retired).push(old);
            }
        }
        seg.retire();
    }

    /// The active segment.
    #[inline]
    pub(crate) fn active(&self) -> &Segment {
        // SAFETY: `active` always points at a segment owned by `self.segments`, and segments
        // are never dropped while `self` lives (see the invariant on `segments`), so the
        // pointee outlives the returned reference.
        unsafe { &*self.active.load(Ordering::Acquire) }
    }

    /// Reserves `frames` frames of `bytes` bytes in the active segment, rolling over as needed.
    /// Returns the segment, the first reserved offset and the first sequence number.
    #[inline]
    pub(crate) fn reserve(&self, frames: u64, bytes: u64) -> Result<(&Segment, u64, u64)> {
        loop {
            let seg = self.active();
            if seg.completion().is_none() {
                let r = seg.tail.reserve(frames, bytes);
                if r.offset + bytes <= seg.capacity {
                    if seg.prefault.wants(r.offset + bytes) {
                        self.spare.ask_prefault(&seg.prefault);
                    }
                    if r.waiter {
                        self.wake_readers(seg);
                    }
                    return Ok((seg, r.offset, seg.base_seq + r.count));
                }
                if r.offset <= seg.capacity {
                    // The first reservation that does not fit seals the segment: its start is
                    // where the frames end, and the count before it is the segment's count.
                    seg.publish_end_marker(r.offset);
                    seg.complete(Completion {
                        record_count: r.count,
                        end_offset: r.offset,
                    });
                    self.wake_readers(seg);
                }
            }
            self.roll_over(seg)?;
        }
    }

    /// Makes the segment after `full` the active one, unless another writer already did.
    #[cold]
    fn roll_over(&self, full: &Segment) -> Result<()> {
        let completion = wait_for_completion(full);
        let _guard = lock(&self.rollover);
        if self.active().id != full.id {
            return Ok(());
        }
        self.check_writable()?;
        let next = self.activate_next(full.id + 1, full.base_seq + completion.record_count)?;
        let next_ptr = Arc::as_ptr(&next).cast_mut();
        // The list owns the segment before `active` points at it (see `active`).
        self.segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(next);
        self.active.store(next_ptr, Ordering::Release);
        self.wake_readers(full);
        self.flush.request_seal();
        Ok(())
    }

    /// Takes the prepared segment `id` and makes it active at `base_seq`.
    pub(crate) fn activate_next(&self, id: u64, base_seq: u64) -> Result<Arc<Segment>> {
        let prepared = self.spare.take(id)?;
        let header = SegmentHeader {
            segment_id: id,
            capacity: prepared.capacity,
            base_seq,
            created_ns: self.now_ns(),
        };
        Ok(Arc::new(Segment::activate(
            prepared.path,
            prepared.map,
            header,
            prepared.filled,
        )?))
    }

    /// At a clean close, once no writer is left: drops the zero pages put in the page cache
    /// ahead of the writers past the tail's last frame, so that nothing writes them back to
    /// disk (the next open's `fsync` of the tail would otherwise write up to a segment of
    /// zeros). See [`sfs::discard_unused`].
    pub(crate) fn discard_unused_tail(&self) {
        let seg = self.active();
        if seg.completion().is_some() || seg.writer_map().is_none() {
            return;
        }
        let from = seg.tail.load().offset.div_ceil(4096) * 4096;
        sfs::discard_unused(&seg.path, from, seg.capacity);
    }

    /// Faults in pages ahead of the active segment's writers (on the preparing thread).
    pub(crate) fn prefault_active(&self) {
        let seg = self.active();
        if let Some(map) = seg.writer_map() {
            seg.prefault.run(
                map,
                seg.capacity,
                || seg.tail.load().offset,
                || seg.completion().is_some() || self.spare.is_shut_down(),
            );
        }
    }

    /// Wakes readers waiting for new frames. Clears the waiter flag first, so a reader that
    /// registers after the clear is either woken by this notification or seen by a later
    /// writer.
    pub(crate) fn wake_readers(&self, seg: &Segment) {
        seg.tail.clear_waiter();
        let _g = lock(&self.tail_lock);
        self.tail_cv.notify_all();
    }

    pub(crate) fn tail_lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.tail_lock)
    }

    pub(crate) fn tail_cv(&self) -> &Condvar {
        &self.tail_cv
    }

    /// Advances the committed prefix over every frame published since the last call (it
    /// stops at the first reservation not yet published) and returns it.
    pub(crate) fn advance_committed(&self) -> Result<CommitPoint> {
        let mut cur = lock(&self.commit);
        loop {
            let (offset, next_seq) = cur.extend_index(self.options.index_interval, false)?;
            let at_end = cur.completion().is_some_and(|c| offset >= c.end_offset);
            if at_end && let Some(next) = self.segment_by_id(cur.id + 1) {
                *cur = next;
                continue;
            }
            self.committed_next.fetch_max(next_seq, Ordering::AcqRel);
            return Ok(CommitPoint {
                segment: Arc::clone(&cur),
                offset,
                next_seq,
            });
        }
    }

    /// The sequence number after the last one reserved so far (published or not).
    pub(crate) fn reserved_next(&self) -> u64 {
        let seg = self.active();
        let count = match seg.completion() {
            Some(c) => c.record_count,
            None => seg.tail.load().count,
        };
        seg.base_seq + count
    }

    pub(crate) fn durability(&self) -> Durability {
        self.options.durability
    }
}

/// Live segment `id` in `segs` (the live segments, consecutive ids in order).
fn live_at(segs: &[Arc<Segment>], id: u64) -> Option<&Arc<Segment>> {
    let first = segs.first()?.id;
    let seg = segs.get(usize::try_from(id.checked_sub(first)?).ok()?)?;
    debug_assert_eq!(seg.id, id);
    Some(seg)
}

/// The checkpoint, consumer and archive stores of a log, opened before its `Shared`.
pub(crate) struct Stores {
    pub(crate) checkpoints: CheckpointStore,
    pub(crate) consumers: Consumers,
    pub(crate) archive: Archive,
}

/// The background compaction thread's controls and its record.
#[derive(Default)]
pub(crate) struct Compactor {
    stop: Mutex<bool>,
    cv: Condvar,
    pub(crate) runs: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
}

impl Compactor {
    /// Sleeps `every` (or until shutdown); returns false on shutdown.
    pub(crate) fn sleep(&self, every: Duration) -> bool {
        let stop = lock(&self.stop);
        let (stop, _) = self
            .cv
            .wait_timeout_while(stop, every, |s| !*s)
            .unwrap_or_else(|p| p.into_inner());
        !*stop
    }

    pub(crate) fn record(&self, outcome: Result<CompactionReport>) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_error) = outcome.err().map(|e| e.to_string());
    }

    pub(crate) fn shutdown(&self) {
        *lock(&self.stop) = true;
        self.cv.notify_all();
    }
}

/// The writer that sealed `seg` records its completion right after its reservation, with
/// nothing in between that can block; wait for it.
fn wait_for_completion(seg: &Segment) -> Completion {
    let mut spins = 0u32;
    loop {
        if let Some(c) = seg.completion() {
            return c;
        }
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

pub(crate) use crate::sync::lock;
