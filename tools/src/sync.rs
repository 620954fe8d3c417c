//! Starting threads together, and keeping them alive until all are done, without a
//! `std::sync::Barrier`: a barrier waits for a fixed number of threads, so one that could not
//! be started (or set up) would leave the others waiting for ever. Here the coordinator says
//! how many to wait for, can call a start off, and gives up after a timeout.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the coordinator waits for threads to arrive, and threads for each other.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Locks `m`, taking over the value of a thread that panicked while holding it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where worker threads wait so that they all start at once.
#[derive(Default)]
pub struct StartLine {
    /// Threads arrived; then, once decided, whether to go ahead.
    state: Mutex<(usize, Option<bool>)>,
    changed: Condvar,
}

impl StartLine {
    /// Called by a worker when it is ready: waits for the start. True to go ahead, false when
    /// the start was called off.
    pub fn arrive(&self) -> bool {
        let mut state = lock(&self.state);
        state.0 += 1;
        self.changed.notify_all();
        loop {
            if let Some(go) = state.1 {
                return go;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits until `n` workers have arrived, then lets them go. False (and the start called
    /// off) if they did not all arrive within [`PATIENCE`].
    pub fn start(&self, n: usize) -> bool {
        let deadline = Instant::now() + PATIENCE;
        let mut state = lock(&self.state);
        while state.0 < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                state.1 = Some(false);
                self.changed.notify_all();
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .map_or_else(|p| p.into_inner().0, |(s, _)| s);
        }
        state.1 = Some(true);
        self.changed.notify_all();
        true
    }

    /// Calls the start off: every worker, waiting or still to come, goes home without working.
    /// (A start already given stands.)
    pub fn call_off(&self) {
        lock(&self.state).1.get_or_insert(false);
        self.changed.notify_all();
    }
}

/// A count down that threads wait on until it reaches zero.
pub struct Latch {
    left: Mutex<usize>,
    zero: Condvar,
}

impl Latch {
    /// A latch waiting for `n` threads.
    pub fn new(n: usize) -> Latch {
        Latch {
            left: Mutex::new(n),
            zero: Condvar::new(),
        }
    }

    /// Counts `n` off without waiting (for threads that were never started).
    pub fn forgive(&self, n: usize) {
        let mut left = lock(&self.left);
        *left = left.saturating_sub(n);
        if *left == 0 {
            self.zero.notify_all();
        }
    }

    /// Counts the calling thread off, then waits until every other has (at most
    /// [`PATIENCE`]).
    pub fn done_and_wait(&self) {
        let deadline = Instant::now() + PATIENCE;
        let mut left = lock(&self.left);
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.zero.notify_all();
        }
        while *left > 0 {
            let rest = deadline.saturating_duration_since(Instant::now());
            if rest.is_zero() {
                return;
            }
            left = self
                .zero
                .wait_timeout(left, rest)
                .map_or_else(|p| p.into_inner().0, |(l, _)| l);
        }
    }
}
