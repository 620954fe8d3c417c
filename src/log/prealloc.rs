//! Preparing the next segment ahead of need, on a background thread, so a rollover only swaps
//! a pointer and never makes writers wait on file creation.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::storage::fs as sfs;
use crate::storage::mmap::Mapping;

/// A segment file allocated, synced, named and mapped, with a blank header.
pub(crate) struct Prepared {
    pub(crate) id: u64,
    pub(crate) path: PathBuf,
    pub(crate) capacity: u64,
    pub(crate) map: Arc<Mapping>,
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
    shutdown: bool,
}

/// The hand-off between the preparing thread and the rollover.
pub(crate) struct SpareSlot {
    state: Mutex<SpareState>,
    cv: Condvar,
}

fn prepare(segments_dir: &Path, id: u64, capacity: u64) -> Result<Prepared> {
    let file = sfs::create_segment_file(segments_dir, id, capacity)?;
    let path = sfs::segment_path(segments_dir, id);
    let map =
        Mapping::map(&file, capacity, true, false).map_err(|e| Error::io("mmap", &path, e))?;
    let map = Arc::new(map);
    Ok(Prepared {
        id,
        path,
        capacity,
        map,
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
                shutdown: false,
            }),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SpareState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Body of the preparing thread.
    pub(crate) fn run(&self, segments_dir: &Path) {
        let mut st = self.lock();
        loop {
            if st.shutdown {
                return;
            }
            if st.prepared.is_none() && st.error.is_none() {
                let (id, capacity) = (st.next_id, st.capacity);
                st.preparing = true;
                drop(st);
                let result = prepare(segments_dir, id, capacity);
                // Fault the pages in writable after handing the segment over (below), so a
                // writer that catches up never waits for it: it then faults a page itself.
                let to_populate = result.as_ref().ok().map(|p| Arc::clone(&p.map));
                st = self.lock();
                match result {
                    Ok(p) if st.shutdown => {
                        let _ = std::fs::remove_file(&p.path);
                    }
                    Ok(p) => st.prepared = Some(p),
                    Err(e) => st.error = Some(e),
                }
                st.attempts += 1;
                st.preparing = false;
                self.cv.notify_all();
                if let Some(map) = to_populate {
                    drop(st);
                    self.populate(&map, capacity);
                    st = self.lock();
                }
                continue;
            }
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Faults in a handed-over segment chunk by chunk, stopping early at shutdown.
    fn populate(&self, map: &Mapping, capacity: u64) {
        const CHUNK: u64 = 4 << 20;
        let mut at = 0;
        while at < capacity && !self.lock().shutdown {
            map.populate_write(at, CHUNK.min(capacity - at));
            at += CHUNK;
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
                    st.next_id = id + 1;
                    self.cv.notify_all();
                    return Ok(p);
                }
                // Prepared for another position (cannot happen while ids advance one by one);
                // discard it rather than activate a segment out of order.
                let _ = std::fs::remove_file(&p.path);
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

    pub(crate) fn shutdown(&self) {
        let mut st = self.lock();
        st.shutdown = true;
        // An unused spare is removed; the next open would remove it anyway.
        if let Some(p) = st.prepared.take() {
            let _ = std::fs::remove_file(&p.path);
        }
        self.cv.notify_all();
    }
}
