//! Files and directories: segment creation with real allocation, directory syncs, the lock.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::format::lock_file::{self, LockOwner};
use crate::storage::sim;

/// Name of the lock file inside a log directory.
pub(crate) const LOCK_FILE: &str = "LOCK";
/// Name of the segment directory inside a log directory.
pub(crate) const SEGMENTS_DIR: &str = "segments";
const SEGMENT_SUFFIX: &str = ".seg";
const TMP_SUFFIX: &str = ".seg.tmp";
const INDEX_SUFFIX: &str = ".idx";
const INDEX_TMP_SUFFIX: &str = ".idx.tmp";

/// The segment directory of the log in `dir`, for what reads a log without opening it
/// (inspection, following, assessing what an open would do), and so must neither create one
/// nor take a directory without one for a log. Fails with [`Error::NotALog`] when `dir` has
/// no segment directory.
pub(crate) fn existing_segments_dir(dir: &Path) -> Result<PathBuf> {
    let segments_dir = dir.join(SEGMENTS_DIR);
    if segments_dir.is_dir() {
        return Ok(segments_dir);
    }
    let reason = if dir.is_dir() {
        "no segments/ directory"
    } else {
        "no such directory"
    };
    Err(Error::NotALog {
        path: dir.into(),
        reason: reason.into(),
    })
}

/// Path of segment `id` in `segments_dir`.
pub(crate) fn segment_path(segments_dir: &Path, id: u64) -> PathBuf {
    segments_dir.join(format!("{id:020}{SEGMENT_SUFFIX}"))
}

/// Path of the index file of segment `id` in `segments_dir`.
pub(crate) fn index_path(segments_dir: &Path, id: u64) -> PathBuf {
    segments_dir.join(format!("{id:020}{INDEX_SUFFIX}"))
}

/// What a file name in the segment directory is.
pub(crate) enum SegmentName {
    /// `<id>.seg`
    Segment(u64),
    /// `<id>.seg.tmp`: a segment whose preparation never finished.
    Temporary,
    /// `<id>.idx`: the sparse index of segment `id`.
    Index(u64),
    /// `<id>.idx.tmp`: an index whose writing never finished (derived data).
    IndexTemporary,
    /// Anything else.
    Other,
}

pub(crate) fn parse_segment_name(name: &str) -> SegmentName {
    if name.ends_with(TMP_SUFFIX) {
        return SegmentName::Temporary;
    }
    if name.ends_with(INDEX_TMP_SUFFIX) {
        return SegmentName::IndexTemporary;
    }
    let id_of = |id: &str| {
        (id.len() == 20 && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.parse().ok())?
    };
    if let Some(id) = name.strip_suffix(SEGMENT_SUFFIX).and_then(id_of) {
        return SegmentName::Segment(id);
    }
    match name.strip_suffix(INDEX_SUFFIX).and_then(id_of) {
        Some(id) => SegmentName::Index(id),
        None => SegmentName::Other,
    }
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ns() -> u64 {
    time_ns(SystemTime::now())
}

/// `time` as nanoseconds since the Unix epoch: 0 before it, `u64::MAX` past 2554.
pub(crate) fn time_ns(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Nanoseconds since the Unix epoch as a `SystemTime`.
pub(crate) fn ns_time(ns: u64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_nanos(ns)
}

/// Nanoseconds since the Unix epoch from the coarse clock (the last timer tick).
#[inline]
pub(crate) fn coarse_now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        + u64::try_from(t.tv_nsec).unwrap_or(0)
}

/// `fsync` of a directory, so that entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    sim::before("fsync directory", dir)
        .and_then(|()| File::open(dir))
        .and_then(|d| d.sync_all())
        .and_then(|()| sim::synced_dir(dir))
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// `std::fs::rename`, through the storage seam (see [`sim`]).
pub(crate) fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    sim::before("rename", from)?;
    std::fs::rename(from, to)?;
    sim::names_changed(from)
}

/// `std::fs::remove_file`, through the storage seam (see [`sim`]).
pub(crate) fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    sim::before("remove", path)?;
    std::fs::remove_file(path)?;
    sim::names_changed(path)
}

/// `std::fs::create_dir`, through the storage seam (see [`sim`]).
pub(crate) fn create_dir(path: &Path) -> io::Result<()> {
    sim::before("create directory", path)?;
    std::fs::create_dir(path)?;
    sim::names_changed(path)
}

/// `std::fs::create_dir_all`, through the storage seam (see [`sim`]).
pub(crate) fn create_dir_all(path: &Path) -> io::Result<()> {
    sim::before("create directory", path)?;
    std::fs::create_dir_all(path)?;
    sim::names_changed(path)
}

/// `fsync` of a whole file (contents and metadata), through the storage seam (see [`sim`]).
pub(crate) fn sync_file(file: &File, path: &Path) -> Result<()> {
    sim::before("fsync", path)
        .and_then(|()| file.sync_all())
        .and_then(|()| sim::synced_file(path))
        .map_err(|e| Error::io("fsync", path, e))
}

/// `fdatasync` of a whole file, through the storage seam (see [`sim`]).
pub(crate) fn sync_file_data(file: &File, path: &Path) -> Result<()> {
    sim::before("fdatasync", path)
        .and_then(|()| file.sync_data())
        .and_then(|()| sim::synced_file(path))
        .map_err(|e| Error::io("fdatasync", path, e))
}

pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Creates segment file `id` of `capacity` bytes, fully allocated on disk (never sparse):
/// write `<id>.seg.tmp`, allocate, rename.
///
/// Nothing is synced here, so preparing a segment never waits for the disk. The file's
/// existence (its allocation and its directory entry) is made durable by the flusher before
/// the first record in it is acknowledged (`sync_new_segment`); until then a crash can only
/// lose a segment that holds nothing acknowledged, which recovery removes.
///
/// The zeros are not written out ahead (which would fault pages in faster): that doubles
/// what the disk has to write back, and on a log that outruns its disk the disk is the limit.
pub(crate) fn create_segment_file(segments_dir: &Path, id: u64, capacity: u64) -> Result<File> {
    let path = segment_path(segments_dir, id);
    let tmp = path.with_extension("seg.tmp");
    sim::before("create segment", &tmp).map_err(|e| Error::io("create segment", &tmp, e))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io("create segment", &tmp, e))?;
    sim::created(&tmp).map_err(|e| Error::io("create segment", &tmp, e))?;
    if let Err(e) = allocate(&file, capacity) {
        let _ = std::fs::remove_file(&tmp);
        return Err(if is_no_space(&e) {
            Error::NoSpace { path }
        } else {
            Error::io("allocate segment", &tmp, e)
        });
    }
    rename(&tmp, &path).map_err(|e| Error::io("rename segment", &tmp, e))?;
    Ok(file)
}

/// Makes a new segment's name durable (`fsync` of its directory). Called once per segment,
/// before its first flush. The allocation and size need no `fsync` of their own: the flush
/// is an `msync(MS_SYNC)`, a data sync, which also writes the metadata needed to read the
/// data back (POSIX `fdatasync`), and `fallocate` marked exactly that metadata dirty.
pub(crate) fn sync_new_segment(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Allocates `len` bytes of real disk space for `file` (which must be empty).
fn allocate(file: &File, len: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) => write_zeros(file, len),
        Err(e) => Err(e.into()),
    }
}

/// Zeros for [`fill_page_cache`] to copy from: in `.bss`, so reading it maps the kernel's
/// shared zero page and costs no memory.
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// Writes zeros over `0..len` of `file` with `pwrite`, which puts zeroed pages in the page
/// cache about three times faster than faulting them in through a mapping (the kernel copies
/// into fresh pages instead of zeroing them and then running the file system's write fault for
/// every page). Only for a file nobody has mapped or written yet.
pub(crate) fn fill_page_cache(file: &File, len: u64) -> io::Result<()> {
    let mut at = 0;
    while at < len {
        let n = (len - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Drops the page-cache pages of `from..len` of a segment nobody will write there before it
/// is opened again (the unused end of the tail at a clean close), without writing them back:
/// they hold only zeros, put there ahead of the writers. Punches the range out and allocates
/// it again, so it stays allocated, and reads as zeros either way. Best effort: on a file
/// system that cannot punch holes, or if the new allocation fails (the open that follows
/// allocates the tail again; see [`ensure_allocated`]), the pages are simply left.
pub(crate) fn discard_unused(path: &Path, from: u64, len: u64) {
    use rustix::fs::{FallocateFlags, fallocate};
    if from >= len {
        return;
    }
    let Ok(file) = OpenOptions::new().write(true).open(path) else {
        return;
    };
    let keep = FallocateFlags::KEEP_SIZE;
    if fallocate(&file, keep | FallocateFlags::PUNCH_HOLE, from, len - from).is_ok() {
        let _ = fallocate(&file, keep, from, len - from);
    }
}

/// Makes sure every byte of `0..len` of `file` has disk space, so that writing it through a
/// mapping cannot end in SIGBUS for want of space: the tail segment is written through a
/// mapping after the open, and a file copied sparse, or cut short of its allocation by
/// [`discard_unused`] on a full disk, could have holes. Cheap where all of it is allocated.
pub(crate) fn ensure_allocated(file: &File, path: &Path, len: u64) -> Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, len) {
        Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
        Err(e) if is_no_space(&e.into()) => Err(Error::NoSpace {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(Error::io("fallocate", path, e.into())),
    }
}

/// Allocation for filesystems without `fallocate`: write the zeros for real.
fn write_zeros(file: &File, len: u64) -> io::Result<()> {
    let chunk = vec![0u8; 1 << 20];
    let mut w = io::BufWriter::new(file);
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        w.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    w.flush()
}

/// How long [`acquire_lock`] waits for a lock that this very process last held.
const OWN_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(250);
const OWN_LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// Opens (creating if needed) `<dir>/LOCK` and takes an exclusive, non-blocking `flock` on it.
/// The lock is released when the returned file is closed, including when the process dies.
pub(crate) fn acquire_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io("open lock file", &path, e))?;
    let mut waited = std::time::Duration::ZERO;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut buf = [0u8; lock_file::LOCK_FILE_LEN];
                let owner_pid = file
                    .read_exact_at(&mut buf, 0)
                    .ok()
                    .and_then(|()| lock_file::decode(&buf).ok())
                    .map(|o| o.pid);
                // A lock that this process released can stay held for a moment: a child
                // that another thread forked holds a copy of the descriptor until it runs
                // its new program. Wait that moment out rather than report a lock that is
                // going away; a handle this process really holds is still reported.
                if owner_pid == Some(std::process::id()) && waited < OWN_LOCK_PATIENCE {
                    std::thread::sleep(OWN_LOCK_POLL);
                    waited += OWN_LOCK_POLL;
                    continue;
                }
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                    owner_pid,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
    }
    let owner = LockOwner {
        pid: std::process::id(),
        opened_ns: now_ns(),
    };
    file.write_all_at(&lock_file::encode(owner), 0)
        .map_err(|e| Error::io("write lock file", &path, e))?;
    Ok(file)
}

/// Reads exactly `buf.len()` bytes at `offset` with `pread`: a media error is an `EIO` here,
/// where through a mapping it would be a SIGBUS.
pub(crate) fn read_at(file: &File, path: &Path, offset: u64, buf: &mut [u8]) -> Result<()> {
    file.read_exact_at(buf, offset)
        .map_err(|e| Error::io("read", path, e))
}

/// Writes `parts`, one after the other, to a new file `tmp` (replacing any file there),
/// with `fdatasync` when `sync`. On failure the file is removed and a full disk reported as
/// [`Error::NoSpace`]. Callers then rename `tmp` into place: a file is complete before it
/// has its final name.
pub(crate) fn write_temporary(tmp: &Path, parts: &[&[u8]], sync: bool) -> Result<()> {
    let written = sim::before("write", tmp)
        .and_then(|()| {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(tmp)
        })
        .and_then(|mut f| {
            sim::created(tmp)?;
            for part in parts {
                f.write_all(part)?;
            }
            if sync {
                sim::before("fdatasync", tmp)?;
                f.sync_data()?;
                sim::synced_file(tmp)?;
            }
            Ok(())
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(tmp);
        return Err(if is_no_space(&e) {
            Error::NoSpace {
                path: tmp.to_path_buf(),
            }
        } else {
            Error::io("write", tmp, e)
        });
    }
    Ok(())
}

/// Replaces `path` durably with `parts`: written to `tmp` and synced, renamed over `path`,
/// and the directory synced. A crash leaves the old file or the new one, never a mix.
pub(crate) fn replace_file(path: &Path, tmp: &Path, parts: &[&[u8]]) -> Result<()> {
    write_temporary(tmp, parts, true)?;
    rename(tmp, path).map_err(|e| Error::io("rename", tmp, e))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Replaces `path` with `bytes` (written to `<path>.tmp`, then renamed), without syncing:
/// for derived files, which are checked when read and rebuilt when missing.
pub(crate) fn replace_file_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("idx.tmp");
    write_temporary(&tmp, &[bytes], false)?;
    rename(&tmp, path).map_err(|e| Error::io("rename", &tmp, e))
}

/// Writes `buf` at `offset` with `pwrite`.
pub(crate) fn write_at(file: &File, path: &Path, offset: u64, buf: &[u8]) -> Result<()> {
    sim::before("write", path)
        .and_then(|()| file.write_all_at(buf, offset))
        .map_err(|e| Error::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let p = segment_path(Path::new("/x"), 42);
        assert_eq!(p, Path::new("/x/00000000000000000042.seg"));
        assert!(matches!(
            parse_segment_name("00000000000000000042.seg"),
            SegmentName::Segment(42)
        ));
        assert!(matches!(
            parse_segment_name("00000000000000000042.seg.tmp"),
            SegmentName::Temporary
        ));
        assert!(matches!(parse_segment_name("42.seg"), SegmentName::Other));
        assert!(matches!(
            parse_segment_name("00000000000000000042.idx"),
            SegmentName::Index(42)
        ));
        assert!(matches!(
            parse_segment_name("00000000000000000042.idx.tmp"),
            SegmentName::IndexTemporary
        ));
        assert!(matches!(
            parse_segment_name("notes.txt"),
            SegmentName::Other
        ));
    }

    #[test]
    fn created_segments_are_allocated_not_sparse() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let f = create_segment_file(dir.path(), 0, 1 << 20).unwrap();
        let md = f.metadata().unwrap();
        assert_eq!(md.len(), 1 << 20);
        assert!(
            md.blocks() * 512 >= 1 << 20,
            "segment is sparse: {} blocks",
            md.blocks()
        );
        assert!(!dir.path().join("00000000000000000000.seg.tmp").exists());
    }

    #[test]
    fn second_lock_is_refused_and_names_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let _held = acquire_lock(dir.path()).unwrap();
        match acquire_lock(dir.path()) {
            Err(Error::Locked { owner_pid, .. }) => assert_eq!(owner_pid, Some(std::process::id())),
            other => panic!("expected Locked, got {other:?}"),
        }
    }
}
