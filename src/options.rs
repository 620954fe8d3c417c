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

/// What compaction does with a segment that leaves the live window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ArchiveMode {
    /// Delete it: its disk space is freed (once no open reader still maps it).
    #[default]
    Delete,
    /// Move it to `<dir>/archive/` unchanged. It stays readable through the same reader API.
    Move,
    /// Compress it (LZ4) into `<dir>/archive/`. It stays readable through the same reader API;
    /// entering it costs a decompression.
    Compress,
}

/// Which records compaction may drop from the live log, and when it runs.
///
/// Compaction removes whole sealed segments, oldest first. A segment goes only when
/// - every record in it is covered by the latest valid checkpoint (unless
///   [`Retention::require_checkpoint`] is turned off),
/// - every registered consumer has consumed it ([`Log::register_consumer`](crate::Log::register_consumer)),
/// - and every *keep* rule that is set lets it go: the last N records, the newest N bytes of
///   segment files, the records younger than T. Rules combine: a record is kept if any rule
///   keeps it.
///
/// With nothing but the defaults, compaction drops what the latest checkpoint covers.
///
/// ```
/// use std::time::Duration;
/// use mmlog::{ArchiveMode, Options, Retention};
/// let options = Options::default().retention(
///     Retention::default()
///         .keep_records(1_000_000)
///         .keep_age(Duration::from_secs(24 * 3600))
///         .archive(ArchiveMode::Compress)
///         .every(Duration::from_secs(60)),
/// );
/// # let _ = options;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    pub(crate) keep_records: Option<u64>,
    pub(crate) keep_bytes: Option<u64>,
    pub(crate) keep_age: Option<Duration>,
    pub(crate) require_checkpoint: bool,
    pub(crate) mode: ArchiveMode,
    pub(crate) every: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_records: None,
            keep_bytes: None,
            keep_age: None,
            require_checkpoint: true,
            mode: ArchiveMode::Delete,
            every: None,
        }
    }
}

impl Retention {
    /// Keep at least the last `n` records.
    #[must_use]
    pub fn keep_records(mut self, n: u64) -> Self {
        self.keep_records = Some(n);
        self
    }

    /// Keep at least the newest `bytes` of segment files (whole segments, the active one
    /// included): live segments then take at most `bytes` plus two segments of disk.
    #[must_use]
    pub fn keep_bytes(mut self, bytes: u64) -> Self {
        self.keep_bytes = Some(bytes);
        self
    }

    /// Keep at least the records younger than `age` (by their timestamps).
    #[must_use]
    pub fn keep_age(mut self, age: Duration) -> Self {
        self.keep_age = Some(age);
        self
    }

    /// Whether records not covered by a checkpoint are kept (default `true`). Turn it off for
    /// a log used as a plain retention-bounded stream, with no checkpoints.
    #[must_use]
    pub fn require_checkpoint(mut self, yes: bool) -> Self {
        self.require_checkpoint = yes;
        self
    }

    /// What happens to segments that leave the live window (default: [`ArchiveMode::Delete`]).
    #[must_use]
    pub fn archive(mut self, mode: ArchiveMode) -> Self {
        self.mode = mode;
        self
    }

    /// Runs compaction in a background thread at this interval (default: only when
    /// [`Log::compact`](crate::Log::compact) is called).
    #[must_use]
    pub fn every(mut self, interval: Duration) -> Self {
        self.every = Some(interval);
        self
    }
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
    pub(crate) retention: Retention,
    pub(crate) keep_checkpoints: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_size: SEGMENT_SIZE_DEFAULT,
            durability: Durability::Periodic(Duration::from_millis(100)),
            index_interval: 64,
            timestamps: Timestamps::default(),
            retention: Retention::default(),
            keep_checkpoints: 3,
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

    /// What compaction may drop, and when it runs (default: [`Retention::default`]).
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How many checkpoints to keep (default 3, at least 1); older ones are removed after
    /// each new checkpoint.
    #[must_use]
    pub fn keep_checkpoints(mut self, n: usize) -> Self {
        self.keep_checkpoints = n;
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
    #[inline]
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
        if self.keep_checkpoints == 0 {
            return Err(Error::invalid("keep_checkpoints must be at least 1"));
        }
        if self.retention.every.is_some_and(|d| d.is_zero()) {
            return Err(Error::invalid(
                "background compaction needs a non-zero interval",
            ));
        }
        Ok(())
    }
}
