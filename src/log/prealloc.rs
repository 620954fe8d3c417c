//! Preparing the next segment ahead of need, on a background thread, so a rollover only swaps
//! a pointer and never makes writers wait on file creation; and keeping the pages just ahead
//! of the writers faulted in, so they rarely take a page fault.
//!
//! # Faulting pages in ahead of the writers, not the whole segment
//!
//! A page of a fresh segment costs the kernel an allocation and zeroing on its first touch,
//! and `MADV_POPULATE_WRITE` also marks it dirty. Faulting in a whole 64 MiB segment up front
//! would make the kernel write 64 MiB of zeros back to disk for a writer that fills it
//! slowly (and again after every open, for the tail segment), and would pin that much dirty
//! memory. So the preparing thread keeps only [`AHEAD`] bytes past the writers faulted in, in
//! steps of [`STEP`]: a writer whose reservation ends past [`Prefault::ask_at`] asks for the
//! next step (one relaxed load and compare per append; the ask itself happens once per
//! step). A writer that outruns the thread just takes the faults itself.
//!
//! # Filling whole segments for fast writers
//!
//! When the segment before lasted less than [`FAST_FILL`], the writer is fast enough to
//! overwrite a whole segment of zero pages long before the kernel would write them back, and
//! the next segment is prepared differently: its zeros are written with `pwrite` before it is
//! mapped or handed over ([`sfs::fill_page_cache`]), which puts its pages in the page cache
//! about three times faster than faulting them in, and no window is kept for it (the writer's
//! first touch of a page that is already in the page cache is cheap). Nobody else can see a
//! spare before it is handed over, so writing into the file there races with no one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::storage::fs as sfs;
use crate::storage::mmap::Mapping;

/// A segment file allocated, synced, named and mapped, with a blank header.
pub(crate) struct Prepared {
    pub(crate) id: u64,
    pub(crate) path: PathBuf,
    pub(crate) capacity: u64,
    pub(crate) map: Arc<Mapping>,
    /// Every page is already in the page cache ([`sfs::fill_page_cache`]): writers fault them
    /// in cheaply themselves, and the window ahead of them is not needed.
    pub(crate) filled: bool,
}

/// Bytes kept faulted in past the writers of the active segment.
const AHEAD: u64 = 16 << 20;
/// Bytes faulted in per step (and per ask).
const STEP: u64 = 4 << 20;
/// A segment filled faster than this is followed by one whose pages are all put in the page
/// cache (zeroed, dirty) before writers get it, at about three times the speed of faulting
/// them in (see [`sfs::fill_page_cache`]). A slower writer gets the window instead: dirty
/// zero pages that sit longer than the kernel's write-back delay (30 s by default) are
/// written to disk before the writer overwrites them.
const FAST_FILL: Duration = Duration::from_secs(5);

/// How far a segment's pages are faulted in, and when its writers ask for more.
pub(crate) struct Prefault {
    /// Pages below this offset have been faulted in writable (a hint: nothing depends on it).
    done: AtomicU64,
    /// A reservation ending past this offset asks for more; `u64::MAX`: nothing to ask for.
    ask_at: AtomicU64,
}

impl Prefault {
    /// A segment that writers will fill from `offset`: the first reservation asks.
    pub(crate) fn from(offset: u64) -> Prefault {
        Prefault {
            done: AtomicU64::new(offset),
            ask_at: AtomicU64::new(0),
        }
    }

    /// A segment whose pages need nothing faulted in ahead of writers: nobody writes it, or
    /// its pages are all in the page cache already.
    pub(crate) fn never() -> Prefault {
        Prefault {
            done: AtomicU64::new(u64::MAX),
            ask_at: AtomicU64::new(u64::MAX),
        }
    }

    /// Whether a reservation ending at `end` should ask for more pages.
    #[inline]
    pub(crate) fn wants(&self, end: u64) -> bool {
        end > self.ask_at.load(Ordering::Relaxed)
    }

    /// Claims the ask (so of the writers that cross the mark, one asks).
    fn claim(&self) -> bool {
        self.ask_at.swap(u64::MAX, Ordering::Relaxed) != u64::MAX
    }

    /// Faults in `map` up to [`AHEAD`] past `writer` (the writers' next free byte, read again
    /// between steps), then sets the next mark. `stop` is checked between steps.
    pub(crate) fn run(
        &self,
        map: &Mapping,
        capacity: u64,
        writer: impl Fn() -> u64,
        stop: impl Fn() -> bool,
    ) {
        loop {
            let at = writer();
            let target = at.saturating_add(AHEAD).min(capacity);
            let from = self.done.load(Ordering::Relaxed).max(at / 4096 * 4096);
            if from >= target || stop() {
                break;
            }
            let to = from.saturating_add(STEP).min(target);
            map.populate_write(from, to - from);
            self.done.store(to, Ordering::Relaxed);
        }
        let done = self.done.load(Ordering::Relaxed);
        let next = if done >= capacity {
            u64::MAX
        } else {
            done.saturating_sub(AHEAD - STEP)
        };
        self.ask_at.store(next, Ordering::Relaxed);
    }
}

struct SpareState {
    /// Id of the segment to prepare next.
    next_id: u64,
    capacity: u64,
    prepared: Option<Prepared>,
    /// The last preparation failed (handed to a taker).
    error: Option<Error>,
    /// Preparations finished so far, successful or not.
    attempts: u64,
    /// An attempt is under way (its outcome may predate a taker's call).
    preparing: bool,
    /// A writer of the active segment asked for more pages faulted in.
    prefault_asked: bool,
    /// When the active segment became active (a take, or the open), and whether the one
    /// before it lasted less than [`FAST_FILL`]: then the next segment's pages are all put in
    /// the page cache up front.
    last_take: Instant,
    fill_next: bool,
    shutdown: bool,
}

/// The hand-off between the preparing thread and the rollover.
pub(crate) struct SpareSlot {
    state: Mutex<SpareState>,
    cv: Condvar,
}

fn prepare(segments_dir: &Path, id: u64, capacity: u64, fill: bool) -> Result<Prepared> {
    let file = sfs::create_segment_file(segments_dir, id, capacity)?;
    let path = sfs::segment_path(segments_dir, id);
    // Best effort: a failure here leaves the pages to be faulted in the slower way.
    let filled = fill && sfs::fill_page_cache(&file, capacity).is_ok();
    let map =
        Mapping::map(&file, capacity, true, false).map_err(|e| Error::io("mmap", &path, e))?;
    let map = Arc::new(map);
    Ok(Prepared {
        id,
        path,
        capacity,
        map,
        filled,
    })
}

impl SpareSlot {
    pub(crate) fn new(next_id: u64, capacity: u64) -> SpareSlot {
        SpareSlot {
            state: Mutex::new(SpareState {
                next_id,
                capacity,
                prepared: None,
                error: None,
                attempts: 0,
                preparing: false,
                // The active segment at open gets its first pages without asking.
                prefault_asked: true,
                last_take: Instant::now(),
                fill_next: false,
                shutdown: false,
            }),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SpareState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Body of the preparing thread. `prefault_active` faults in pages ahead of the active
    /// segment's writers (see [`Prefault::run`]); it comes first, since writers are in that
    /// segment now.
    pub(crate) fn run(&self, segments_dir: &Path, prefault_active: impl Fn()) {
        let mut st = self.lock();
        loop {
            if st.shutdown {
                return;
            }
            if st.prefault_asked {
                st.prefault_asked = false;
                drop(st);
                prefault_active();
                st = self.lock();
                continue;
            }
            if st.prepared.is_none() && st.error.is_none() {
                let (id, capacity, fill) = (st.next_id, st.capacity, st.fill_next);
                st.preparing = true;
                drop(st);
                let result = prepare(segments_dir, id, capacity, fill);
                // Fault in the first pages after handing the segment over (below), so a
                // writer that catches up never waits for it: it then faults a page itself.
                let to_populate = result
                    .as_ref()
                    .ok()
                    .filter(|p| !p.filled)
                    .map(|p| Arc::clone(&p.map));
                st = self.lock();
                match result {
                    Ok(p) if st.shutdown => {
                        let _ = sfs::remove_file(&p.path);
                    }
                    Ok(p) => st.prepared = Some(p),
                    Err(e) => st.error = Some(e),
                }
                st.attempts += 1;
                st.preparing = false;
                self.cv.notify_all();
                if let Some(map) = to_populate {
                    drop(st);
                    // The segment's first frames start after its header, in the first page.
                    let first = Prefault::from(0);
                    first.run(&map, capacity, || 0, || self.interrupted());
                    st = self.lock();
                }
                continue;
            }
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Whether work that can wait should stop: shutdown, or writers asking for pages.
    fn interrupted(&self) -> bool {
        let st = self.lock();
        st.shutdown || st.prefault_asked
    }

    /// Called by a writer whose reservation crossed `prefault`'s mark.
    #[cold]
    pub(crate) fn ask_prefault(&self, prefault: &Prefault) {
        if prefault.claim() {
            self.lock().prefault_asked = true;
            self.cv.notify_all();
        }
    }

    /// Takes the prepared segment `id`, waiting for the preparing thread if it is still at
    /// work. If preparation fails, returns the error of an attempt made after this call began:
    /// an older failure (say, a full disk) may no longer hold.
    pub(crate) fn take(&self, id: u64) -> Result<Prepared> {
        let mut st = self.lock();
        // Only an attempt that starts after this call can speak for the disk as it is now.
        let since = st.attempts + u64::from(st.preparing);
        loop {
            if let Some(p) = st.prepared.take() {
                if p.id == id {
                    let now = Instant::now();
                    st.fill_next = now - st.last_take < FAST_FILL;
                    st.last_take = now;
                    st.next_id = id + 1;
                    self.cv.notify_all();
                    return Ok(p);
                }
                // Prepared for another position (cannot happen while ids advance one by one);
                // discard it rather than activate a segment out of order.
                let _ = sfs::remove_file(&p.path);
                st.next_id = id;
                self.cv.notify_all();
            }
            if st.error.is_some() {
                if st.attempts > since {
                    st.next_id = id;
                    self.cv.notify_all();
                    return Err(st.error.take().unwrap_or(Error::Closed));
                }
                // A stale failure: discarding it makes the preparing thread try again.
                st.error = None;
                self.cv.notify_all();
            }
            if st.shutdown {
                return Err(Error::Closed);
            }
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.lock().shutdown
    }

    pub(crate) fn shutdown(&self) {
        let mut st = self.lock();
        st.shutdown = true;
        // An unused spare is removed; the next open would remove it anyway.
        if let Some(p) = st.prepared.take() {
            let _ = sfs::remove_file(&p.path);
        }
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A preparing thread over `dir`, stopped when the returned guard drops.
    fn preparer(dir: &Path) -> (Arc<SpareSlot>, std::thread::JoinHandle<()>) {
        let slot = Arc::new(SpareSlot::new(1, 4 << 20));
        let (s, d) = (Arc::clone(&slot), dir.to_path_buf());
        let handle = std::thread::spawn(move || s.run(&d, || {}));
        (slot, handle)
    }

    #[test]
    fn a_segment_filled_quickly_is_followed_by_a_filled_spare() {
        let dir = tempfile::tempdir().unwrap();
        let (slot, handle) = preparer(dir.path());
        // The spare prepared at open: nothing is known about the writer yet, so its pages
        // are left to the window.
        let first = slot.take(1).unwrap();
        assert!(!first.filled);
        // The first segment lasted well under FAST_FILL (it became active at the open): the
        // writer is fast, and the next spare is filled.
        let second = slot.take(2).unwrap();
        assert!(
            second.filled,
            "a segment filled quickly: the next spare is filled"
        );
        slot.shutdown();
        handle.join().unwrap();
    }

    #[test]
    fn fill_page_cache_leaves_the_file_zero_and_its_length_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let file = sfs::create_segment_file(dir.path(), 7, 3 << 20).unwrap();
        sfs::fill_page_cache(&file, 3 << 20).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 3 << 20);
        let bytes = std::fs::read(sfs::segment_path(dir.path(), 7)).unwrap();
        assert!(bytes.iter().all(|&b| b == 0));
    }
}
