//! # mmlog
//!
//! An embeddable, durable log on pre-allocated, memory-mapped segment files.
//!
//! - **Writers never wait on a lock.** One atomic `fetch_add` on a segment's tail word
//!   reserves a dense sequence number and a byte range; the writer copies its payload, computes
//!   a CRC and publishes the frame with a release store.
//! - **Readers copy nothing.** A [`Record`]'s payload is a slice of the mapping. Readers see
//!   committed records only, check every CRC, and can follow the tail.
//! - **Durability is a choice per log** ([`Durability`]): buffered, periodic, or immediate with
//!   group commit (one `msync` for every writer waiting at that moment).
//! - **Recovery is cheap and strict.** Sealed segments are trusted without a scan; the
//!   unsealed tail is scanned and cut at its first bad frame, with a [`RecoveryReport`] of what
//!   was dropped. Damage anywhere else is an error naming the file and offset.
//!
//! ```
//! use mmlog::{Durability, Log, Options};
//! # fn main() -> Result<(), mmlog::Error> {
//! # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
//! let log = Log::open(dir.path(), Options::default().durability(Durability::Immediate))?;
//! std::thread::scope(|s| {
//!     for t in 0..4 {
//!         let log = &log;
//!         s.spawn(move || log.append(format!("writer {t}").as_bytes()));
//!     }
//! });
//! let mut reader = log.read_from(0)?;
//! let mut n = 0;
//! while let Some(rec) = reader.next() {
//!     assert!(rec?.payload().starts_with(b"writer "));
//!     n += 1;
//! }
//! assert_eq!(n, 4);
//! # Ok(()) }
//! ```
//!
//! The on-disk format is specified byte by byte in [`mod@format`].

#![deny(missing_docs)]

mod error;
pub mod events;
#[doc(hidden)]
pub mod failpoint;
pub mod format;
pub mod inspect;
mod log;
mod options;
pub mod partitioned;
// tokio has no networking under loom, and the loom models do not need it.
#[cfg(all(feature = "raft", not(loom)))]
pub mod raft;
pub mod replica;
mod storage;
pub(crate) mod sync;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{CorruptionKind, Error, Result};
pub use log::{
    ArchiveCheck, ArchivedSegment, CONSUMER_NAME_MAX, Checkpoint, CheckpointInfo, CompactionReport,
    DamagedArchiveFile, DiskUsage, HeldBy, Log, LogStats, Reader, Record, RecoveryReport,
    Reservation, SkippedCheckpoint, Truncation,
};
pub use options::{
    ArchiveMode, Durability, Options, Retention, SEGMENT_SIZE_DEFAULT, SEGMENT_SIZE_MAX,
    SEGMENT_SIZE_MIN, Timestamps,
};
