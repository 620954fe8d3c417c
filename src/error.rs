//! The one public error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Shorthand for `Result<T, mmlog::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in mmlog.
///
/// Variants carry what a caller needs to act: the file and offset of damage, the path and
/// operation of an I/O failure, the limits a request broke.
///
/// ```
/// # fn main() -> Result<(), mmlog::Error> {
/// let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
/// let log = mmlog::Log::open(dir.path(), mmlog::Options::default())?;
/// match mmlog::Log::open(dir.path(), mmlog::Options::default()) {
///     Err(mmlog::Error::Locked { .. }) => {} // one owner at a time
///     other => panic!("expected Locked, got {other:?}"),
/// }
/// # drop(log); Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    Io {
        /// What mmlog was doing (`"open"`, `"fallocate"`, `"msync"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Stored bytes failed a check: the file, the offset and what was wrong.
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage in that file.
        offset: u64,
        /// What check failed.
        kind: CorruptionKind,
    },
    /// Another process (or another handle in this one) owns the log.
    Locked {
        /// The directory of the log.
        path: PathBuf,
        /// The owner's process id, when the lock file names one.
        owner_pid: Option<u32>,
    },
    /// A payload (or batch) that cannot fit in one segment.
    RecordTooLarge {
        /// Bytes requested (frames included for a batch).
        len: u64,
        /// The most a single segment accepts.
        max: u64,
    },
    /// The filesystem has no room for the next segment. Nothing was lost; the log stays
    /// readable, and appends work again once space is freed.
    NoSpace {
        /// The segment file that could not be allocated.
        path: PathBuf,
    },
    /// A flush to stable storage failed earlier. After such a failure the kernel may have
    /// dropped the dirty pages, so the log accepts no more writes: reopen it to recover from
    /// what is on disk.
    Poisoned {
        /// The failure that poisoned the log.
        cause: String,
    },
    /// A file was written by a newer release of mmlog.
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in it.
        found: u32,
        /// The version this release supports.
        supported: u32,
    },
    /// The directory exists but is not an mmlog log (and is not empty).
    NotALog {
        /// The directory.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// An option or argument is out of range.
    InvalidArgument {
        /// What is wrong with it.
        reason: String,
    },
    /// The log was closed.
    Closed,
    /// A record of an event store is not an event this release can read.
    BadEvent {
        /// The record's sequence number.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A record of an event store holds an event type (or a schema version of one) this
    /// release does not know: written by a newer release.
    UnknownEvent {
        /// The record's sequence number.
        seq: u64,
        /// The event type found.
        event_type: u8,
        /// Its schema version.
        version: u8,
    },
    /// The item is not in the event store's state (never written, or removed).
    NoSuchItem {
        /// The item asked for.
        item_id: uuid::Uuid,
    },
}

/// What check stored bytes failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The file does not start with the expected magic.
    BadMagic,
    /// The format version is not one this release knows.
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// A header's CRC does not match its bytes.
    HeaderChecksum {
        /// Stored CRC.
        expected: u32,
        /// CRC of the bytes.
        actual: u32,
    },
    /// A header field holds an impossible value.
    BadHeaderField {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A CRC does not match its bytes: a frame's, a checkpoint blob's or a compressed archive block's.
    ChecksumMismatch {
        /// Stored CRC.
        expected: u32,
        /// CRC of the bytes.
        actual: u32,
    },
    /// A frame's length runs past the end of its segment.
    LengthOutOfBounds {
        /// The payload length found.
        len: u64,
    },
    /// A frame kind that does not exist.
    UnknownFrameKind {
        /// The kind found.
        found: u8,
    },
    /// A commit word of kind "end of segment" with the wrong bits.
    BadEndMarker {
        /// The word found.
        found: u64,
    },
    /// A frame carries a sequence number other than the next one.
    UnexpectedSeq {
        /// The sequence number expected there.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// A segment file that should be there is missing.
    MissingSegment {
        /// Its id.
        segment_id: u64,
    },
    /// Two consecutive segments disagree about where one ends and the next begins.
    SeqDiscontinuity {
        /// The base sequence number the next segment should have.
        expected: u64,
        /// The one it has.
        found: u64,
    },
    /// A file is shorter than its header says.
    Truncated {
        /// What was cut short.
        what: &'static str,
    },
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Corrupt`].
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, kind: CorruptionKind) -> Error {
        match kind {
            CorruptionKind::UnsupportedVersion { found } => Error::UnsupportedVersion {
                path: path.into(),
                found,
                supported: crate::format::FORMAT_VERSION,
            },
            kind => Error::Corrupt {
                path: path.into(),
                offset,
                kind,
            },
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            Error::Corrupt { path, offset, kind } => {
                write!(
                    f,
                    "corrupt log file {} at offset {offset}: {kind}",
                    path.display()
                )
            }
            Error::Locked {
                path,
                owner_pid: Some(pid),
            } => {
                write!(
                    f,
                    "log {} is locked by another owner (pid {pid})",
                    path.display()
                )
            }
            Error::Locked {
                path,
                owner_pid: None,
            } => {
                write!(f, "log {} is locked by another owner", path.display())
            }
            Error::RecordTooLarge { len, max } => {
                write!(
                    f,
                    "record of {len} bytes is larger than a segment accepts ({max} bytes)"
                )
            }
            Error::NoSpace { path } => {
                write!(f, "no space left on device for segment {}", path.display())
            }
            Error::Poisoned { cause } => write!(
                f,
                "log refuses writes after a failed flush to stable storage ({cause}); reopen it"
            ),
            Error::UnsupportedVersion {
                path,
                found,
                supported,
            } => write!(
                f,
                "unsupported format version {found} in {} (this release supports {supported})",
                path.display()
            ),
            Error::NotALog { path, reason } => {
                write!(f, "{} is not an mmlog log: {reason}", path.display())
            }
            Error::InvalidArgument { reason } => write!(f, "invalid argument: {reason}"),
            Error::Closed => write!(f, "log is closed"),
            Error::BadEvent { seq, reason } => {
                write!(f, "record {seq} is not a readable event: {reason}")
            }
            Error::UnknownEvent {
                seq,
                event_type,
                version,
            } => write!(
                f,
                "record {seq} holds event type {event_type} version {version}, which this release does not know"
            ),
            Error::NoSuchItem { item_id } => write!(f, "no live item {item_id}"),
        }
    }
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptionKind::BadMagic => write!(f, "bad magic number"),
            CorruptionKind::UnsupportedVersion { found } => {
                write!(f, "unsupported format version {found}")
            }
            CorruptionKind::HeaderChecksum { expected, actual } => {
                write!(
                    f,
                    "header checksum mismatch (stored {expected:#010x}, computed {actual:#010x})"
                )
            }
            CorruptionKind::BadHeaderField { field, value } => {
                write!(f, "header field {field} has impossible value {value}")
            }
            CorruptionKind::ChecksumMismatch { expected, actual } => {
                write!(
                    f,
                    "checksum mismatch (stored {expected:#010x}, computed {actual:#010x})"
                )
            }
            CorruptionKind::LengthOutOfBounds { len } => {
                write!(f, "frame length {len} runs past the end of the segment")
            }
            CorruptionKind::UnknownFrameKind { found } => write!(f, "unknown frame kind {found}"),
            CorruptionKind::BadEndMarker { found } => {
                write!(f, "malformed end marker {found:#018x}")
            }
            CorruptionKind::UnexpectedSeq { expected, found } => {
                write!(f, "sequence number {found} where {expected} was expected")
            }
            CorruptionKind::MissingSegment { segment_id } => {
                write!(f, "segment {segment_id} is missing")
            }
            CorruptionKind::SeqDiscontinuity { expected, found } => {
                write!(
                    f,
                    "segment starts at sequence {found} where {expected} was expected"
                )
            }
            CorruptionKind::Truncated { what } => write!(f, "{what} is truncated"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
