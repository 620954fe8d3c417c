//! Atomics used by the lock-free protocols, swapped for loom's under `cfg(loom)` so the same
//! code can be model-checked.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
