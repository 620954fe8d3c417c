//! How a log is opened: segment size, durability, index density.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::frame::{FRAME_HEADER_LEN, PAYLOAD_LEN_MAX};
use crate::format::segment_header::SEGMENT_HEADER_LEN;

/// The smallest segment accepted (4 KiB).
pub const SEGMENT_SIZE_MIN: u64 = 4 << 10;
/// The largest segment accepted (1 GiB).
pub const SEGMENT_SIZE_MAX: u64 = 1 << 30;
/// The default segment size (64 MiB).
pub const SEGMENT_SIZE_DEFAULT: u64 = 64 << 20;

/// When an appended record reaches stable storage.
///
/// Whatever the mode, a record that a reader or [`Log::last_seq`](crate::Log::last_seq) has
/// seen survives the *process* crashing (it is in the page cache). The modes differ in what
/// survives the *machine* crashing:
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The OS writes pages back when it likes; [`Log::sync`](crate::Log::sync) makes every
    /// earlier append durable. Fastest.
    Buffered,
    /// A background flusher makes everything appended durable every interval, so at most one
    /// interval of appends is lost when the machine crashes.
    Periodic(Duration),
    /// `append` returns only once the record is on stable storage. Concurrent appenders share
    /// one `msync` (group commit).
    Immediate,
}

/// How records are timestamped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Timestamps {
    /// The kernel's coarse wall clock (`CLOCK_REALTIME_COARSE`): the time of the last timer
    /// tick, 1 to 4 ms of resolution, for a few nanoseconds per append. The default: log
    /// timestamps serve time travel ("the state at 3 PM"), where milliseconds are plenty.
    #[default]
    Coarse,
    /// The precise wall clock (`CLOCK_REALTIME`), nanosecond resolution, at the cost of a
    /// clock read per append (25-40 ns on a virtual machine).
    Precise,
}

/// Options for [`Log::open`](crate::Log::open). Built with chained calls:
///
/// ```
/// use mmlog::{Durability, Options};
/// let options = Options::default().segment_size(4 << 20).durability(Durability::Immediate);
/// assert_eq!(options.get_segment_size(), 4 << 20);
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) segment_size: u64,
    pub(crate) durability: Durability,
    pub(crate) index_interval: u64,
    pub(crate) timestamps: Timestamps,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_size: SEGMENT_SIZE_DEFAULT,
            durability: Durability::Periodic(Duration::from_millis(100)),
            index_interval: 64,
            timestamps: Timestamps::default(),
        }
    }
}

impl Options {
    /// Bytes per segment file, a multiple of 4 KiB from 4 KiB to 1 GiB (default 64 MiB).
    /// Segments that already exist keep their size.
    #[must_use]
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// When appends reach stable storage (default: `Periodic(100 ms)`).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// One sparse-index entry every this many records (default 64; 1 to 65,536). Smaller
    /// means faster seeks and more memory.
    #[must_use]
    pub fn index_interval(mut self, records: u64) -> Self {
        self.index_interval = records;
        self
    }

    /// How records are timestamped (default: [`Timestamps::Coarse`]).
    #[must_use]
    pub fn timestamps(mut self, timestamps: Timestamps) -> Self {
        self.timestamps = timestamps;
        self
    }

    /// The segment size these options ask for.
    pub fn get_segment_size(&self) -> u64 {
        self.segment_size
    }

    /// The durability these options ask for.
    pub fn get_durability(&self) -> Durability {
        self.durability
    }

    /// The largest payload a segment of `segment_size` bytes accepts.
    pub fn payload_len_max(segment_size: u64) -> u64 {
        segment_size
            .saturating_sub((SEGMENT_HEADER_LEN + FRAME_HEADER_LEN) as u64)
            .min(PAYLOAD_LEN_MAX)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let s = self.segment_size;
        if !(SEGMENT_SIZE_MIN..=SEGMENT_SIZE_MAX).contains(&s)
            || !s.is_multiple_of(SEGMENT_SIZE_MIN)
        {
            return Err(Error::invalid(format!(
                "segment size {s} must be a multiple of 4 KiB between 4 KiB and 1 GiB"
            )));
        }
        if !(1..=65_536).contains(&self.index_interval) {
            return Err(Error::invalid(
                "index interval must be between 1 and 65536 records",
            ));
        }
        if let Durability::Periodic(d) = self.durability
            && d.is_zero()
        {
            return Err(Error::invalid(
                "periodic durability needs a non-zero interval",
            ));
        }
        Ok(())
    }
}
