//! The tail word of a segment: one `AtomicU64` from which a single `fetch_add` reserves both
//! dense sequence numbers and a byte range (the Aeron term-appender idea, laid out like sled's
//! bit-packed header).
//!
//! ```text
//!  63                          37  36  35                                   0
//! +------------------------------+---+--------------------------------------+
//! |  count (27 bits)             | W |  offset (36 bits)                    |
//! +------------------------------+---+--------------------------------------+
//! ```
//!
//! - `offset`: the next free byte of the segment file. Writers add their frame length.
//! - `count`: frames reserved in this segment; a writer's sequence number is the segment's
//!   base sequence number plus the count it found.
//! - `W`, the waiter flag: a reader that found nothing to read sets it before going to sleep;
//!   the next writer to reserve sees it in the value its `fetch_add` returns, and wakes the
//!   reader once its frame is published. So a writer pays nothing for readers that wait,
//!   beyond testing one bit of a value it already has.
//!
//! Transitions:
//! - reserve `n` frames of `b` bytes: `{count, W, offset}` -> `{count + n, W, offset + b}`;
//!   the old value is the reservation. A reservation that runs past the capacity seals the
//!   segment if it started at or before the capacity (it is the first that did not fit), and
//!   is void otherwise; either way the writer retries in the next segment.
//! - a reader registers: `W` -> 1 (`fetch_or`), and learns the reserved offset in the same step.
//! - a writer that saw `W = 1` clears it (`fetch_and`) and then wakes the readers.
//!
//! Offsets stay far below 2^36 (segments are at most 1 GiB and writers stop reserving once a
//! segment is full), so the addition never carries into `W`. Counts stay far below 2^27 (a
//! frame is at least 24 bytes).

use crate::sync::{AtomicU64, Ordering};

const OFFSET_BITS: u32 = 36;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;
const WAITER_BIT: u64 = 1 << OFFSET_BITS;
const COUNT_SHIFT: u32 = OFFSET_BITS + 1;

/// A decoded tail word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TailState {
    /// Frames reserved so far in this segment.
    pub(crate) count: u64,
    /// Next free byte.
    pub(crate) offset: u64,
    /// A reader is waiting for the next frame.
    pub(crate) waiter: bool,
}

const fn pack(count: u64, offset: u64) -> u64 {
    (count << COUNT_SHIFT) | (offset & OFFSET_MASK)
}

const fn unpack(word: u64) -> TailState {
    TailState {
        count: word >> COUNT_SHIFT,
        offset: word & OFFSET_MASK,
        waiter: word & WAITER_BIT != 0,
    }
}

/// The tail word of one segment.
pub(crate) struct Tail(AtomicU64);

impl Tail {
    /// A tail at `count` frames and `offset` bytes. Both come from checked values (recovery
    /// checks seals with `Seal::fits` and scans the rest), so they are far inside the fields.
    pub(crate) fn new(count: u64, offset: u64) -> Tail {
        debug_assert!(
            offset <= OFFSET_MASK / 2,
            "segment offset {offset} out of range"
        );
        debug_assert!(
            count < 1 << (64 - COUNT_SHIFT),
            "segment count {count} out of range"
        );
        Tail(AtomicU64::new(pack(count, offset)))
    }

    /// Reserves `frames` frames totalling `bytes` bytes; returns the state before.
    #[inline]
    pub(crate) fn reserve(&self, frames: u64, bytes: u64) -> TailState {
        debug_assert!(bytes <= OFFSET_MASK / 4);
        // AcqRel: the reservation itself publishes nothing (the commit word does), but keeping
        // the read-modify-write ordered costs nothing on x86 and keeps the model simple.
        unpack(self.0.fetch_add(pack(frames, bytes), Ordering::AcqRel))
    }

    /// The broken twin of [`Tail::reserve`], for the loom model that must catch it: a load
    /// and a separate store, so two writers can be handed the same bytes.
    #[cfg(loom)]
    pub(crate) fn reserve_racy(&self, frames: u64, bytes: u64) -> TailState {
        let before = self.0.load(Ordering::Acquire);
        self.0
            .store(before + pack(frames, bytes), Ordering::Release);
        unpack(before)
    }

    /// The current state.
    #[inline]
    pub(crate) fn load(&self) -> TailState {
        unpack(self.0.load(Ordering::Acquire))
    }

    /// Sets the waiter flag; returns the state before.
    pub(crate) fn register_waiter(&self) -> TailState {
        unpack(self.0.fetch_or(WAITER_BIT, Ordering::SeqCst))
    }

    /// Clears the waiter flag (before waking the waiters, so that a reader registering after
    /// this point is either woken by that wake-up or seen by a later writer).
    pub(crate) fn clear_waiter(&self) {
        self.0.fetch_and(!WAITER_BIT, Ordering::SeqCst);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn reserve_packs_count_and_offset() {
        let t = Tail::new(5, 128);
        assert_eq!(
            t.reserve(1, 32),
            TailState {
                count: 5,
                offset: 128,
                waiter: false
            }
        );
        assert_eq!(
            t.reserve(3, 96),
            TailState {
                count: 6,
                offset: 160,
                waiter: false
            }
        );
        assert_eq!(
            t.load(),
            TailState {
                count: 9,
                offset: 256,
                waiter: false
            }
        );
        t.register_waiter();
        assert_eq!(
            t.reserve(1, 8),
            TailState {
                count: 9,
                offset: 256,
                waiter: true
            }
        );
        t.clear_waiter();
        assert_eq!(
            t.load(),
            TailState {
                count: 10,
                offset: 264,
                waiter: false
            }
        );
    }

    #[test]
    fn overshoot_never_reaches_the_waiter_bit() {
        // A full 1 GiB segment followed by a thousand writers each overshooting by 1 MiB.
        let t = Tail::new(0, 1 << 30);
        for _ in 0..1000 {
            t.reserve(1, 1 << 20);
        }
        let s = t.load();
        assert!(!s.waiter);
        assert_eq!(s.count, 1000);
        assert_eq!(s.offset, (1 << 30) + 1000 * (1 << 20));
    }
}
