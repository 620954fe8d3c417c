//! Checkpoints: opaque state blobs tagged with the last sequence number they cover, one file
//! each in `<dir>/checkpoints/`, written atomically and handed back zero-copy.
//!
//! A checkpoint file is immutable once it has its final name: it is written as
//! `<seq>.ckpt.tmp`, synced, renamed, and the directory synced. Nothing opens it for writing
//! again, which is what makes handing out `&[u8]` into its read-only mapping sound (the
//! mapping contract in `storage::mmap`). A file that fails any check is skipped and reported,
//! never trusted.
//!
//! A process that reads a log another process owns (a replica) does not map them: it reads
//! each one with `pread` into private memory it checks there ([`newest_copied_in`]), so a
//! read error is an error, never a SIGBUS.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::shared::lock;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::checkpoint::{self, CHECKPOINT_HEADER_LEN};
use crate::storage::fs as sfs;
use crate::storage::mmap::Mapping;

/// Name of the checkpoint directory inside a log directory.
pub(crate) const CHECKPOINTS_DIR: &str = "checkpoints";
const SUFFIX: &str = ".ckpt";
const TMP_SUFFIX: &str = ".ckpt.tmp";

/// A checkpoint read back from disk: the state blob and the position it covers.
///
/// The blob is a slice of a read-only mapping of the checkpoint file (no copy); its CRC was
/// checked when the checkpoint was fetched.
///
/// ```
/// # fn main() -> Result<(), mmlog::Error> {
/// # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
/// let log = mmlog::Log::open(dir.path(), mmlog::Options::default())?;
/// for i in 0..10u32 {
///     log.append(&i.to_le_bytes())?;
/// }
/// log.checkpoint(9, b"sum=45")?;
/// let cp = log.latest_checkpoint()?.expect("a checkpoint");
/// assert_eq!((cp.seq(), cp.data()), (9, &b"sum=45"[..]));
/// # Ok(()) }
/// ```
pub struct Checkpoint {
    info: CheckpointInfo,
    map: Arc<Mapping>,
    skipped: Vec<SkippedCheckpoint>,
}

/// What a checkpoint file says about itself (from its header).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointInfo {
    /// The last sequence number the state covers: it reflects records `0..=seq`.
    pub seq: u64,
    /// Timestamp of record `seq` (ns since the Unix epoch).
    pub timestamp_ns: u64,
    /// Length of the state blob in bytes.
    pub data_len: u64,
    /// The checkpoint file.
    pub path: PathBuf,
}

/// A checkpoint file that failed a check, and why. It was skipped, never trusted.
#[derive(Debug)]
#[non_exhaustive]
pub struct SkippedCheckpoint {
    /// The file.
    pub path: PathBuf,
    /// What was wrong with it.
    pub error: Error,
}

impl Checkpoint {
    /// The last sequence number the state covers: it reflects records `0..=seq`. Replay from
    /// `seq + 1`.
    pub fn seq(&self) -> u64 {
        self.info.seq
    }

    /// The state blob, zero-copy.
    pub fn data(&self) -> &[u8] {
        // SAFETY: a checkpoint file is never written after it gets its final name (module
        // docs), nor is a private copy of one after it was filled (`copy_checked`); `fetch`
        // and `copy_checked` checked that the mapping holds the whole blob.
        unsafe {
            self.map
                .bytes(CHECKPOINT_HEADER_LEN as u64, self.info.data_len)
        }
        .unwrap_or_default()
    }

    /// Timestamp of record [`Checkpoint::seq`].
    pub fn timestamp(&self) -> SystemTime {
        crate::storage::fs::ns_time(self.info.timestamp_ns)
    }

    /// The header fields and the file.
    pub fn info(&self) -> &CheckpointInfo {
        &self.info
    }

    /// Newer checkpoint files that were skipped because they failed a check, newest first.
    pub fn skipped(&self) -> &[SkippedCheckpoint] {
        &self.skipped
    }
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("info", &self.info)
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// The checkpoint directory of one log.
pub(crate) struct CheckpointStore {
    dir: PathBuf,
    /// Checkpoints kept; older ones are removed after each write.
    keep: usize,
    /// Serializes writes and pruning.
    write: Mutex<()>,
    /// The newest checkpoint checked in full by [`CheckpointStore::floor`] (files are
    /// immutable, so it need not be checked again).
    verified: Mutex<Option<u64>>,
}

impl CheckpointStore {
    /// Opens (creating if needed) `<log_dir>/checkpoints`, removing unfinished writes.
    pub(crate) fn open(log_dir: &Path, keep: usize) -> Result<CheckpointStore> {
        let dir = log_dir.join(CHECKPOINTS_DIR);
        if !dir.is_dir() {
            sfs::create_dir(&dir).map_err(|e| Error::io("create dir", &dir, e))?;
            sfs::sync_dir(log_dir)?;
        }
        let store = CheckpointStore {
            dir,
            keep: keep.max(1),
            write: Mutex::new(()),
            verified: Mutex::new(None),
        };
        for (_, path) in store.files(TMP_SUFFIX)? {
            sfs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
        }
        Ok(store)
    }

    fn files(&self, suffix: &str) -> Result<Vec<(u64, PathBuf)>> {
        files(&self.dir, suffix)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}{SUFFIX}"))
    }

    /// Writes a checkpoint covering records `0..=seq`; the caller made them durable.
    pub(crate) fn write(&self, seq: u64, timestamp_ns: u64, data: &[u8]) -> Result<CheckpointInfo> {
        let next_seq = seq
            .checked_add(1)
            .ok_or_else(|| Error::invalid("checkpoint sequence number out of range"))?;
        let _guard = lock(&self.write);
        let path = self.path(seq);
        let tmp = path.with_extension("ckpt.tmp");
        let header = checkpoint::encode_header(next_seq, timestamp_ns, data);
        sfs::write_temporary(&tmp, &[&header, data], true)?;
        crate::failpoint::hit("checkpoint: written, not renamed")?;
        sfs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))?;
        crate::failpoint::hit("checkpoint: renamed, directory not synced")?;
        sfs::sync_dir(&self.dir)?;
        self.prune()?;
        Ok(CheckpointInfo {
            seq,
            timestamp_ns,
            data_len: data.len() as u64,
            path,
        })
    }

    /// Removes the oldest checkpoints beyond the `keep` newest valid ones. Damaged files
    /// newer than the oldest kept one stay (for inspection); older ones go too.
    fn prune(&self) -> Result<()> {
        let files = self.files(SUFFIX)?;
        let mut valid = 0;
        let mut cut = None;
        for (i, (_, path)) in files.iter().enumerate().rev() {
            if check_header(path).is_ok() {
                valid += 1;
                if valid == self.keep {
                    cut = Some(i);
                    break;
                }
            }
        }
        let Some(cut) = cut else { return Ok(()) };
        for (_, path) in &files[..cut] {
            crate::failpoint::hit("checkpoint: pruning")?;
            sfs::remove_file(path).map_err(|e| Error::io("remove", path, e))?;
        }
        if cut > 0 {
            sfs::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// The newest valid checkpoint whose header satisfies `wanted`, checked in full; the
    /// damaged files passed over on the way are reported in [`Checkpoint::skipped`].
    /// `max_seq` bounds the candidates by file name before anything is read.
    pub(crate) fn newest(
        &self,
        max_seq: u64,
        wanted: impl Fn(&CheckpointInfo) -> bool,
    ) -> Result<Option<Checkpoint>> {
        let mut skipped = Vec::new();
        for (seq, path) in self.files(SUFFIX)?.into_iter().rev() {
            if seq > max_seq {
                continue;
            }
            // The header decides whether the file is wanted; only a wanted one is read whole.
            match header_info(seq, &path) {
                Ok(info) if wanted(&info) => {}
                Ok(_) => continue,
                Err(s) => {
                    skipped.push(s);
                    continue;
                }
            }
            match fetch(seq, &path) {
                Ok(mut cp) => {
                    cp.skipped = skipped;
                    return Ok(Some(cp));
                }
                Err(s) => skipped.push(s),
            }
        }
        Ok(None)
    }

    /// The last record covered by the newest valid checkpoint, for compaction: like
    /// [`CheckpointStore::newest`], but a checkpoint already checked in full by this process
    /// is not read again.
    pub(crate) fn floor(&self) -> Result<Option<u64>> {
        for (seq, path) in self.files(SUFFIX)?.into_iter().rev() {
            if *lock(&self.verified) == Some(seq) {
                return Ok(Some(seq));
            }
            if fetch(seq, &path).is_ok() {
                *lock(&self.verified) = Some(seq);
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }

    /// Removes checkpoints that cover records at or after `next_seq`: the log they describe
    /// was cut shorter than they are (recovery). Returns the files removed.
    pub(crate) fn remove_beyond(&self, next_seq: u64) -> Result<Vec<PathBuf>> {
        let removed = beyond(&self.dir, next_seq)?;
        for path in &removed {
            sfs::remove_file(path).map_err(|e| Error::io("remove", path, e))?;
        }
        if !removed.is_empty() {
            sfs::sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Bytes used by checkpoint files.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.files(SUFFIX)
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, p)| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// The checkpoint files in checkpoint directory `dir` that cover records at or after
/// `next_seq` (what [`CheckpointStore::remove_beyond`] removes).
fn beyond(dir: &Path, next_seq: u64) -> Result<Vec<PathBuf>> {
    Ok(files(dir, SUFFIX)?
        .into_iter()
        .filter(|(seq, _)| *seq >= next_seq)
        .map(|(_, path)| path)
        .collect())
}

/// The checkpoint files of the log in `log_dir` that recovery would remove because they cover
/// records at or after `next_seq`, found read-only.
pub(crate) fn beyond_in(log_dir: &Path, next_seq: u64) -> Result<Vec<PathBuf>> {
    let dir = log_dir.join(CHECKPOINTS_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    beyond(&dir, next_seq)
}

/// Unfinished checkpoint writes in `log_dir`, which [`CheckpointStore::open`] removes.
pub(crate) fn temporary_files(log_dir: &Path) -> Vec<PathBuf> {
    files(&log_dir.join(CHECKPOINTS_DIR), TMP_SUFFIX)
        .map(|f| f.into_iter().map(|(_, p)| p).collect())
        .unwrap_or_default()
}

/// The last record covered by the newest valid checkpoint in `log_dir` among those covering
/// records before `below`, read-only: what [`CheckpointStore::floor`] finds once recovery has
/// removed the checkpoints beyond the end of the log.
pub(crate) fn floor_in(log_dir: &Path, below: u64) -> Result<Option<u64>> {
    let dir = log_dir.join(CHECKPOINTS_DIR);
    if !dir.is_dir() {
        return Ok(None);
    }
    for (seq, path) in files(&dir, SUFFIX)?.into_iter().rev() {
        if seq < below && fetch(seq, &path).is_ok() {
            return Ok(Some(seq));
        }
    }
    Ok(None)
}

/// Files in `dir` named `<seq:020><suffix>`, by ascending `seq`.
fn files(dir: &Path, suffix: &str) -> Result<Vec<(u64, PathBuf)>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("read dir", dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read dir", dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(suffix)) else {
            continue;
        };
        if stem.len() == 20
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(seq) = stem.parse()
        {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Every checkpoint file in log directory `log_dir`, oldest first, each checked in full;
/// reads only, so inspection tools use it too. A log without a checkpoint directory has none.
pub(crate) fn list_dir(
    log_dir: &Path,
) -> Result<Vec<std::result::Result<CheckpointInfo, SkippedCheckpoint>>> {
    let dir = log_dir.join(CHECKPOINTS_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    Ok(files(&dir, SUFFIX)?
        .into_iter()
        .map(|(seq, path)| fetch(seq, &path).map(|c| c.info))
        .collect())
}

/// Reads and checks the header of a checkpoint file (not its blob).
fn check_header(path: &Path) -> Result<checkpoint::CheckpointHeader> {
    let file = File::open(path).map_err(|e| Error::io("open checkpoint", path, e))?;
    check_header_of(&file, path)
}

/// [`check_header`] of checkpoint file `path`, open as `file`.
fn check_header_of(file: &File, path: &Path) -> Result<checkpoint::CheckpointHeader> {
    let mut buf = [0u8; CHECKPOINT_HEADER_LEN];
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    if len < CHECKPOINT_HEADER_LEN as u64 {
        let kind = CorruptionKind::Truncated {
            what: "checkpoint header",
        };
        return Err(Error::corrupt(path, len, kind));
    }
    sfs::read_at(file, path, 0, &mut buf)?;
    let h = checkpoint::decode_header(&buf).map_err(|k| Error::corrupt(path, 0, k))?;
    if (CHECKPOINT_HEADER_LEN as u64).checked_add(h.blob_len) != Some(len) {
        let kind = CorruptionKind::Truncated {
            what: "checkpoint blob",
        };
        return Err(Error::corrupt(path, len, kind));
    }
    Ok(h)
}

/// The header of checkpoint file `path` (named for `seq`), checked, as a `CheckpointInfo`.
fn header_info(seq: u64, path: &Path) -> std::result::Result<CheckpointInfo, SkippedCheckpoint> {
    let skip = |error| SkippedCheckpoint {
        path: path.to_path_buf(),
        error,
    };
    let h = check_header(path).map_err(skip)?;
    info_of(seq, path, &h).map_err(skip)
}

/// What checked header `h` of checkpoint file `path` (named for `seq`) says, once its
/// `next_seq` is found to match the name.
fn info_of(seq: u64, path: &Path, h: &checkpoint::CheckpointHeader) -> Result<CheckpointInfo> {
    if h.next_seq != seq.wrapping_add(1) {
        let kind = CorruptionKind::BadHeaderField {
            field: "next_seq (does not match the file name)",
            value: h.next_seq,
        };
        return Err(Error::corrupt(path, 16, kind));
    }
    Ok(CheckpointInfo {
        seq,
        timestamp_ns: h.timestamp_ns,
        data_len: h.blob_len,
        path: path.to_path_buf(),
    })
}

/// Maps checkpoint file `path` (named for `seq`) read-only and checks all of it.
fn fetch(seq: u64, path: &Path) -> std::result::Result<Checkpoint, SkippedCheckpoint> {
    let skip = |error| SkippedCheckpoint {
        path: path.to_path_buf(),
        error,
    };
    let info = header_info(seq, path)?;
    let file = File::open(path).map_err(|e| skip(Error::io("open checkpoint", path, e)))?;
    let len = CHECKPOINT_HEADER_LEN as u64 + info.data_len;
    let map =
        Mapping::map(&file, len, false, false).map_err(|e| skip(Error::io("mmap", path, e)))?;
    // SAFETY: checkpoint files are immutable under their final name (module docs), and
    // `check_header` saw the file at least `len` bytes long.
    let whole = unsafe { map.bytes(0, len) }.ok_or_else(|| {
        skip(Error::corrupt(
            path,
            0,
            CorruptionKind::Truncated { what: "checkpoint" },
        ))
    })?;
    checkpoint::decode(whole).map_err(|k| skip(Error::corrupt(path, 0, k)))?;
    Ok(Checkpoint {
        info,
        map: Arc::new(map),
        skipped: Vec::new(),
    })
}

/// The newest valid checkpoint of the log in `log_dir` covering no record after `max_seq`
/// whose header satisfies `wanted`, for a process that reads a log another process owns:
/// like [`CheckpointStore::newest`], but each file is read with `pread` into private memory
/// and checked there, never mapped (a read error is an error, not a SIGBUS), and a file that
/// disappears while it is looked at (the owner pruned it) is passed over. Damaged files
/// passed over on the way are reported in [`Checkpoint::skipped`].
pub(crate) fn newest_copied_in(
    log_dir: &Path,
    max_seq: u64,
    wanted: impl Fn(&CheckpointInfo) -> bool,
) -> Result<Option<Checkpoint>> {
    let dir = log_dir.join(CHECKPOINTS_DIR);
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut skipped = Vec::new();
    for (seq, path) in files(&dir, SUFFIX)?.into_iter().rev() {
        if seq > max_seq {
            continue;
        }
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                let error = Error::io("open checkpoint", &path, e);
                skipped.push(SkippedCheckpoint { path, error });
                continue;
            }
        };
        let info = match check_header_of(&file, &path).and_then(|h| info_of(seq, &path, &h)) {
            Ok(info) if wanted(&info) => info,
            Ok(_) => continue,
            Err(error) => {
                skipped.push(SkippedCheckpoint { path, error });
                continue;
            }
        };
        match copy_checked(&file, info) {
            Ok(mut cp) => {
                cp.skipped = skipped;
                return Ok(Some(cp));
            }
            Err(s) => skipped.push(s),
        }
    }
    Ok(None)
}

/// Reads checkpoint file `file` (whose header said `info`) whole with `pread` into a private
/// anonymous mapping and checks it there.
fn copy_checked(
    file: &File,
    info: CheckpointInfo,
) -> std::result::Result<Checkpoint, SkippedCheckpoint> {
    let skip = |error| SkippedCheckpoint {
        path: info.path.clone(),
        error,
    };
    let path = info.path.as_path();
    let len = CHECKPOINT_HEADER_LEN as u64 + info.data_len;
    let map = Mapping::anonymous(len).map_err(|e| skip(Error::io("mmap", path, e)))?;
    {
        // SAFETY: the mapping was made just now and nothing else has it until this function
        // returns it: no other reference to its bytes exists while this one is written.
        let Some(whole) = (unsafe { map.bytes_mut(0, len) }) else {
            let kind = CorruptionKind::Truncated { what: "checkpoint" };
            return Err(skip(Error::corrupt(path, 0, kind)));
        };
        sfs::read_at(file, path, 0, whole).map_err(skip)?;
        checkpoint::decode(whole).map_err(|k| skip(Error::corrupt(path, 0, k)))?;
    }
    Ok(Checkpoint {
        info,
        map: Arc::new(map),
        skipped: Vec::new(),
    })
}
