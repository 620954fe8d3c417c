//! Zero-copy appends: reserve a frame, write the payload straight into the mapping, commit.

use std::sync::Arc;

use super::segment::Segment;
use super::shared::Shared;
use crate::error::{Error, Result};
use crate::format::frame::{self, FrameKind, PAYLOAD_OFFSET};
use crate::options::Durability;

/// A frame reserved in the log, to be filled in place and committed.
///
/// The sequence number is fixed at reservation. Until [`Reservation::commit`], readers stop
/// in front of it, and no later record becomes durable: hold a reservation only as long as
/// it takes to fill it. Dropping it uncommitted, including by a panic while
/// filling it, turns it into a padding frame that readers skip, so the log never wedges.
///
/// ```
/// # fn main() -> Result<(), mmlog::Error> {
/// # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
/// let log = mmlog::Log::open(dir.path(), mmlog::Options::default())?;
/// let mut r = log.reserve(5)?;
/// r.payload_mut().copy_from_slice(b"hello");
/// let seq = r.commit()?;
/// assert_eq!(log.read_from(seq)?.next().expect("record")?.payload(), b"hello");
/// # Ok(()) }
/// ```
pub struct Reservation<'a> {
    shared: &'a Arc<Shared>,
    seg: &'a Segment,
    offset: u64,
    seq: u64,
    payload_len: u32,
    done: bool,
}

impl<'a> Reservation<'a> {
    pub(crate) fn new(
        shared: &'a Arc<Shared>,
        seg: &'a Segment,
        offset: u64,
        seq: u64,
        payload_len: u32,
    ) -> Self {
        Reservation {
            shared,
            seg,
            offset,
            seq,
            payload_len,
            done: false,
        }
    }

    /// The sequence number this record will have.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The payload bytes, in the mapping, initially zero. Write the record here.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let Some(map) = self.seg.writer_map() else {
            return &mut [];
        };
        let at = self.offset + PAYLOAD_OFFSET as u64;
        // SAFETY: this range was reserved for this `Reservation` alone and is unpublished, so
        // no other reference to it exists; `&mut self` makes the returned slice unique, and
        // the segment (which outlives the log borrow `'a`) keeps the mapping alive.
        unsafe { map.bytes_mut(at, u64::from(self.payload_len)) }.unwrap_or_default()
    }

    /// Publishes the record; with `Durability::Immediate`, returns once it is durable.
    pub fn commit(mut self) -> Result<u64> {
        // A segment being written always has a writer mapping; if not, `Drop` pads the frame.
        let Some(map) = self.seg.writer_map() else {
            return Err(Error::invalid(
                "reservation in a segment without a writable mapping",
            ));
        };
        let ts = self.shared.now_ns();
        // SAFETY: the header bytes of the reservation are ours and unpublished.
        unsafe {
            map.write(
                self.offset + frame::SEQ_OFFSET as u64,
                &frame::seq_ts_bytes(self.seq, ts),
            )
        };
        let lk = frame::len_kind(FrameKind::Record, self.payload_len);
        super::segment::publish_commit_word(map, self.offset, lk);
        self.done = true;
        if self.shared.durability() == Durability::Immediate {
            self.shared.flush.wait_durable(self.shared, self.seq + 1)?;
        }
        Ok(self.seq)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.done {
            let ts = self.shared.now_ns();
            // SAFETY: the reservation was never published, so its range is still ours.
            unsafe {
                self.seg
                    .publish_padding(self.offset, self.seq, ts, self.payload_len)
            };
        }
    }
}

impl std::fmt::Debug for Reservation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("seq", &self.seq)
            .field("len", &self.payload_len)
            .finish()
    }
}
