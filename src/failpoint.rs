//! Named steps inside mmlog's multi-step file operations (checkpoint writes, compaction,
//! archival), where a crash test can stop the process.
//!
//! Disarmed, a step costs one relaxed atomic load; none of them is on the append or read path.
//! A test arms the N-th step to come: in a child process with [`arm_kill`] (the process sends
//! itself `SIGKILL` there, a real crash), or in-process with [`arm_error`] (the operation
//! returns an error at that step without cleaning up, which leaves the same files behind).
//! Running a workload with N = 1, 2, 3, ... until it finishes untouched visits every step.
//!
//! This module is public for mmlog's own crash tests; it is not part of the stable API.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::error::{Error, Result};

const DISARMED: u8 = 0;
const KILL: u8 = 1;
const ERROR: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(DISARMED);
/// Steps still to pass before the armed one.
static COUNTDOWN: AtomicU64 = AtomicU64::new(0);
/// Steps passed since the process started.
static HITS: AtomicU64 = AtomicU64::new(0);

/// Kills this process with `SIGKILL` at the `n`-th step from now (`n >= 1`).
pub fn arm_kill(n: u64) {
    COUNTDOWN.store(n, Ordering::SeqCst);
    MODE.store(KILL, Ordering::SeqCst);
}

/// Makes the `n`-th step from now (`n >= 1`) fail with an I/O error naming the step.
pub fn arm_error(n: u64) {
    COUNTDOWN.store(n, Ordering::SeqCst);
    MODE.store(ERROR, Ordering::SeqCst);
}

/// Disarms; returns true if the armed step was not reached.
pub fn disarm() -> bool {
    MODE.swap(DISARMED, Ordering::SeqCst) != DISARMED
}

/// Steps passed since the process started, armed or not.
pub fn hits() -> u64 {
    HITS.load(Ordering::SeqCst)
}

/// Marks a step. Returns an error if it is the armed one in error mode; does not return if
/// it is the armed one in kill mode.
#[inline]
pub(crate) fn hit(step: &'static str) -> Result<()> {
    HITS.fetch_add(1, Ordering::Relaxed);
    if MODE.load(Ordering::Relaxed) == DISARMED {
        return Ok(());
    }
    if COUNTDOWN.fetch_sub(1, Ordering::SeqCst) != 1 {
        return Ok(());
    }
    match MODE.swap(DISARMED, Ordering::SeqCst) {
        KILL => {
            // SAFETY: `kill` and `getpid` have no memory-safety preconditions.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            // SIGKILL cannot be caught; this is only reached if delivery is delayed.
            loop {
                std::thread::park();
            }
        }
        ERROR => Err(Error::io(
            "failpoint",
            step,
            std::io::Error::other(format!("injected failure at step {step:?}")),
        )),
        _ => Ok(()),
    }
}
