//! Atomics used by the lock-free protocols, swapped for loom's under `cfg(loom)` so the same
//! code can be model-checked.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Locks `m`, taking the data over from a thread that panicked while holding it: every
/// mutex in mmlog guards data that stays consistent between statements, so a poisoned lock
/// is no reason to fail every later caller.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The stop signal of a background thread that works in rounds: it sleeps between rounds
/// with [`Stopper::pause`], and [`Stopper::stop_and_join`] wakes it and waits for it to end.
#[derive(Debug, Default)]
pub(crate) struct Stopper {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stopper {
    /// Sleeps up to `round`; `false` once the thread is asked to stop.
    pub(crate) fn pause(&self, round: Duration) -> bool {
        let stopped = lock(&self.stopped);
        let (stopped, _) = self
            .wake
            .wait_timeout_while(stopped, round, |s| !*s)
            .unwrap_or_else(|p| p.into_inner());
        !*stopped
    }

    /// Asks the thread to stop, then waits for `thread` (if it still runs) to end.
    pub(crate) fn stop_and_join(&self, thread: &mut Option<JoinHandle<()>>) {
        if let Some(h) = thread.take() {
            *lock(&self.stopped) = true;
            self.wake.notify_all();
            // A thread that panicked has stopped all the same.
            let _ = h.join();
        }
    }
}
