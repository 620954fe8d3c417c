//! The archive: segments that compaction moved out of the live window, kept in
//! `<dir>/archive/` either as they were (`<id>.seg`) or compressed (`<id>.seg.lz4`, format in
//! `format::archive_file`). Readers reach them through the same API as live segments.
//!
//! Every archived file is complete before it gets its final name (a move is one `rename`; a
//! compressed copy is written as `.tmp`, synced, then renamed), so the archive never holds a
//! half-written segment under a real name.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::segment::Segment;
use super::shared::lock;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::archive_file::{self, ARCHIVE_HEADER_LEN, BLOCK_AT};
use crate::format::crc::checksum;
use crate::format::frame::COMMIT_WORD_LEN;
use crate::format::segment_header::{HeaderState, SEGMENT_HEADER_LEN, Seal, SegmentHeader};
use crate::options::ArchiveMode;
use crate::storage::fs as sfs;
use crate::storage::mmap::Mapping;

/// Name of the archive directory inside a log directory.
pub(crate) const ARCHIVE_DIR: &str = "archive";
const PLAIN_SUFFIX: &str = ".seg";
const LZ4_SUFFIX: &str = ".seg.lz4";
const TMP_SUFFIX: &str = ".tmp";

/// One archived segment, as its header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchivedSegment {
    /// The segment's id.
    pub id: u64,
    /// Sequence number of its first record.
    pub base_seq: u64,
    /// Sequence numbers it holds.
    pub record_count: u64,
    /// Timestamp of its first record (ns since the Unix epoch; 0 if none).
    pub first_ts_ns: u64,
    /// Largest timestamp in it.
    pub max_ts_ns: u64,
    /// The archive file.
    pub path: PathBuf,
    /// Stored LZ4-compressed.
    pub compressed: bool,
    /// Size of the archive file.
    pub file_bytes: u64,
    /// Capacity of the segment once read back.
    pub capacity: u64,
}

impl ArchivedSegment {
    /// The sequence number after its last record.
    pub fn end_seq(&self) -> u64 {
        self.base_seq + self.record_count
    }
}

/// What [`Log::verify_archive`](crate::Log::verify_archive) found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveCheck {
    /// Archived segments read in full.
    pub segments: usize,
    /// Records whose CRC and sequence number were checked.
    pub records: u64,
    /// Everything wrong: the file, the offset and the check that failed. Empty when the
    /// archive is sound.
    pub problems: Vec<DamagedArchiveFile>,
}

impl ArchiveCheck {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// An archive file that failed a check.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DamagedArchiveFile {
    /// The file.
    pub path: PathBuf,
    /// Where in the file.
    pub offset: u64,
    /// The check that failed (`None` for an I/O error).
    pub kind: Option<CorruptionKind>,
    /// What is wrong, in words.
    pub message: String,
}

impl DamagedArchiveFile {
    fn new(path: PathBuf, error: &Error) -> DamagedArchiveFile {
        let (offset, kind) = match error {
            Error::Corrupt { offset, kind, .. } => (*offset, Some(*kind)),
            _ => (0, None),
        };
        DamagedArchiveFile {
            path,
            offset,
            kind,
            message: error.to_string(),
        }
    }
}

struct Catalog {
    entries: Vec<ArchivedSegment>,
    damaged: Vec<DamagedArchiveFile>,
}

pub(crate) struct Archive {
    dir: PathBuf,
    /// Loaded on first use; kept up to date by compaction.
    catalog: Mutex<Option<Catalog>>,
}

impl Archive {
    pub(crate) fn new(log_dir: &Path) -> Archive {
        Archive {
            dir: log_dir.join(ARCHIVE_DIR),
            catalog: Mutex::new(None),
        }
    }

    fn catalog(&self) -> Result<MutexGuard<'_, Option<Catalog>>> {
        let mut g = lock(&self.catalog);
        if g.is_none() {
            *g = Some(self.load()?);
        }
        Ok(g)
    }

    fn load(&self) -> Result<Catalog> {
        let mut cat = Catalog {
            entries: Vec::new(),
            damaged: Vec::new(),
        };
        for (id, path, compressed) in self.files()? {
            match read_entry(id, &path, compressed) {
                Ok(e) => cat.entries.push(e),
                Err(error) => cat.damaged.push(DamagedArchiveFile::new(path, &error)),
            }
        }
        cat.entries.sort_by_key(|e| e.id);
        Ok(cat)
    }

    /// Archive files by id (plain and compressed), without reading them.
    fn files(&self) -> Result<Vec<(u64, PathBuf, bool)>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read dir", &self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("read dir", &self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let (stem, compressed) = match name.strip_suffix(LZ4_SUFFIX) {
                Some(stem) => (stem, true),
                None => match name.strip_suffix(PLAIN_SUFFIX) {
                    Some(stem) => (stem, false),
                    None => continue,
                },
            };
            if stem.len() == 20
                && stem.bytes().all(|b| b.is_ascii_digit())
                && let Ok(id) = stem.parse()
            {
                out.push((id, entry.path(), compressed));
            }
        }
        out.sort_by_key(|f| f.0);
        Ok(out)
    }

    /// Every archived segment by id, and the files that failed their checks.
    pub(crate) fn list(&self) -> Result<(Vec<ArchivedSegment>, Vec<DamagedArchiveFile>)> {
        let g = self.catalog()?;
        let Some(cat) = g.as_ref() else {
            return Ok((Vec::new(), Vec::new()));
        };
        Ok((cat.entries.clone(), cat.damaged.clone()))
    }

    /// Removes what an interrupted archival left at open: temporary files, and archived
    /// copies of segments that are still live (the live copy is the one that counts).
    /// Returns the files removed.
    pub(crate) fn clean_up(&self, first_live_id: u64) -> Result<Vec<PathBuf>> {
        let removed = self.leftovers(first_live_id)?;
        for path in &removed {
            sfs::remove_file(path).map_err(|e| Error::io("remove", path, e))?;
            let _ = sfs::remove_file(sfs::index_path(&self.dir, id_of(path)));
        }
        if !removed.is_empty() {
            sfs::sync_dir(&self.dir)?;
        }
        *lock(&self.catalog) = None;
        Ok(removed)
    }

    /// What [`Archive::clean_up`] would remove, found read-only.
    pub(crate) fn leftovers(&self, first_live_id: u64) -> Result<Vec<PathBuf>> {
        let mut found = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(Error::io("read dir", &self.dir, e)),
        };
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("read dir", &self.dir, e))?;
            if entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
                found.push(entry.path());
            }
        }
        for (id, path, _) in self.files()? {
            if id >= first_live_id {
                found.push(path);
            }
        }
        Ok(found)
    }

    /// The file that archiving segment `id` with `mode` makes (`None` for
    /// [`ArchiveMode::Delete`], which keeps nothing).
    pub(crate) fn file_for(&self, id: u64, mode: ArchiveMode) -> Option<PathBuf> {
        let suffix = match mode {
            ArchiveMode::Delete => return None,
            ArchiveMode::Move => PLAIN_SUFFIX,
            ArchiveMode::Compress => LZ4_SUFFIX,
        };
        Some(self.dir.join(format!("{id:020}{suffix}")))
    }

    fn ensure_dir(&self) -> Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        sfs::create_dir_all(&self.dir).map_err(|e| Error::io("create dir", &self.dir, e))?;
        match self.dir.parent() {
            Some(parent) => sfs::sync_dir(parent),
            None => Ok(()),
        }
    }

    /// Moves the file of sealed segment `seg` into the archive, unchanged (one `rename`),
    /// and makes the move durable.
    pub(crate) fn move_in(&self, seg: &Segment, seal: Seal) -> Result<()> {
        self.ensure_dir()?;
        let to = self.dir.join(format!("{:020}{PLAIN_SUFFIX}", seg.id));
        match sfs::rename(&seg.path, &to) {
            Ok(()) => {}
            // An earlier attempt moved it and failed after.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && to.exists() => {}
            Err(e) => return Err(Error::io("rename", &seg.path, e)),
        }
        crate::failpoint::hit("archive: moved, not synced")?;
        sfs::sync_dir(&self.dir)?;
        if let Some(live_dir) = seg.path.parent() {
            let _ = sfs::rename(
                sfs::index_path(live_dir, seg.id),
                sfs::index_path(&self.dir, seg.id),
            );
            sfs::sync_dir(live_dir)?;
        }
        self.add(seg, seal, to, false);
        Ok(())
    }

    /// Writes an LZ4-compressed copy of sealed segment `seg` into the archive and makes it
    /// durable. The live file is left for the caller to remove.
    pub(crate) fn compress_in(&self, seg: &Segment, seal: Seal) -> Result<()> {
        self.ensure_dir()?;
        let map = seg.mapping()?;
        let raw_len = (seal.end_offset + COMMIT_WORD_LEN as u64).min(seg.capacity);
        // SAFETY: the segment is sealed: every frame is published and nothing in the file is
        // written any more (the seal was the last write), so these bytes are immutable.
        let Some(raw) = (unsafe { map.bytes(0, raw_len) }) else {
            return Err(seg.corrupt(raw_len, CorruptionKind::Truncated { what: "segment" }));
        };
        let block = lz4_flex::block::compress(&raw[SEGMENT_HEADER_LEN..]);
        let header = archive_file::encode_header(raw_len, &block);
        let to = self.dir.join(format!("{:020}{LZ4_SUFFIX}", seg.id));
        let tmp = self
            .dir
            .join(format!("{:020}{LZ4_SUFFIX}{TMP_SUFFIX}", seg.id));
        sfs::write_temporary(&tmp, &[&header, &raw[..SEGMENT_HEADER_LEN], &block], true)?;
        crate::failpoint::hit("archive: compressed copy written")?;
        sfs::rename(&tmp, &to).map_err(|e| Error::io("rename", &tmp, e))?;
        sfs::sync_dir(&self.dir)?;
        crate::failpoint::hit("archive: compressed copy renamed")?;
        if let Some(live_dir) = seg.path.parent() {
            let _ = sfs::rename(
                sfs::index_path(live_dir, seg.id),
                sfs::index_path(&self.dir, seg.id),
            );
        }
        self.add(seg, seal, to, true);
        Ok(())
    }

    fn add(&self, seg: &Segment, seal: Seal, path: PathBuf, compressed: bool) {
        let mut g = lock(&self.catalog);
        // Not loaded yet: the next load reads the file from disk.
        if let Some(cat) = g.as_mut() {
            let file_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            cat.entries.retain(|e| e.id != seg.id);
            cat.entries.push(ArchivedSegment {
                id: seg.id,
                base_seq: seg.base_seq,
                record_count: seal.record_count,
                first_ts_ns: seal.first_ts,
                max_ts_ns: seal.max_ts,
                path,
                compressed,
                file_bytes,
                capacity: seg.capacity,
            });
            cat.entries.sort_by_key(|e| e.id);
        }
    }

    /// The archived segment holding `seq`, if any.
    pub(crate) fn find_seq(&self, seq: u64) -> Result<Option<ArchivedSegment>> {
        let g = self.catalog()?;
        Ok(g.as_ref().and_then(|c| {
            c.entries
                .iter()
                .find(|e| (e.base_seq..e.end_seq()).contains(&seq))
                .cloned()
        }))
    }

    /// The first archived segment with a timestamp at or after `ts`, if any.
    pub(crate) fn find_time(&self, ts: u64) -> Result<Option<ArchivedSegment>> {
        let g = self.catalog()?;
        Ok(g.as_ref()
            .and_then(|c| c.entries.iter().find(|e| e.max_ts_ns >= ts).cloned()))
    }

    /// Archived segment `id`, if any.
    pub(crate) fn find_id(&self, id: u64) -> Result<Option<ArchivedSegment>> {
        let g = self.catalog()?;
        Ok(g.as_ref()
            .and_then(|c| c.entries.iter().find(|e| e.id == id).cloned()))
    }

    /// Reads every archived segment in full (every frame's CRC and sequence number), and
    /// checks that the segments follow each other and meet the live log at `live_start`
    /// (its first segment's id and sequence number).
    pub(crate) fn verify(
        &self,
        index_interval: u64,
        live_start: (u64, u64),
    ) -> Result<ArchiveCheck> {
        let (entries, damaged) = self.list()?;
        let mut check = ArchiveCheck {
            problems: damaged,
            ..ArchiveCheck::default()
        };
        for e in &entries {
            match verify_segment(e, index_interval) {
                Ok(()) => {
                    check.segments += 1;
                    check.records += e.record_count;
                }
                Err(err) => check
                    .problems
                    .push(DamagedArchiveFile::new(e.path.clone(), &err)),
            }
        }
        // Each segment must meet the next, and the last one the live log.
        let mut next = entries
            .iter()
            .skip(1)
            .map(|e| (e.id, e.base_seq, e.path.clone()));
        for e in &entries {
            let (id, base_seq, path) =
                next.next()
                    .unwrap_or((live_start.0, live_start.1, e.path.clone()));
            let kind = if e.id.checked_add(1) != Some(id) {
                CorruptionKind::MissingSegment {
                    segment_id: e.id.saturating_add(1),
                }
            } else if e.end_seq() != base_seq {
                CorruptionKind::SeqDiscontinuity {
                    expected: e.end_seq(),
                    found: base_seq,
                }
            } else {
                continue;
            };
            let err = Error::corrupt(&path, 0, kind);
            check.problems.push(DamagedArchiveFile::new(path, &err));
        }
        Ok(check)
    }

    /// Total size of the archive files.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.files()
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, p, _)| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

fn id_of(path: &Path) -> u64 {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.get(..20))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Reads and checks the headers of archive file `path`.
fn read_entry(id: u64, path: &Path, compressed: bool) -> Result<ArchivedSegment> {
    let file = File::open(path).map_err(|e| Error::io("open archive", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    let (header, seal, capacity_ok) = if compressed {
        let mut buf = [0u8; BLOCK_AT];
        read_prefix(&file, path, len, &mut buf)?;
        let ah = archive_file::decode_header(&buf[..ARCHIVE_HEADER_LEN])
            .map_err(|k| Error::corrupt(path, 0, k))?;
        let (h, seal) =
            segment_identity(path, ARCHIVE_HEADER_LEN as u64, &buf[ARCHIVE_HEADER_LEN..])?;
        if Some(len) != (BLOCK_AT as u64).checked_add(ah.compressed_len) {
            let kind = CorruptionKind::Truncated {
                what: "archive block",
            };
            return Err(Error::corrupt(path, len, kind));
        }
        let ok = ah.raw_len <= h.capacity && seal.end_offset <= ah.raw_len;
        (h, seal, ok)
    } else {
        let mut buf = [0u8; SEGMENT_HEADER_LEN];
        read_prefix(&file, path, len, &mut buf)?;
        let (h, seal) = segment_identity(path, 0, &buf)?;
        (h, seal, len == h.capacity)
    };
    if header.segment_id != id || !capacity_ok || header.capacity > crate::SEGMENT_SIZE_MAX {
        let kind = CorruptionKind::BadHeaderField {
            field: "segment_id or capacity (does not match the file)",
            value: header.segment_id,
        };
        return Err(Error::corrupt(path, 16, kind));
    }
    Ok(ArchivedSegment {
        id,
        base_seq: header.base_seq,
        record_count: seal.record_count,
        first_ts_ns: seal.first_ts,
        max_ts_ns: seal.max_ts,
        path: path.to_path_buf(),
        compressed,
        file_bytes: len,
        capacity: header.capacity,
    })
}

fn read_prefix(file: &File, path: &Path, len: u64, buf: &mut [u8]) -> Result<()> {
    if len < buf.len() as u64 {
        let kind = CorruptionKind::Truncated {
            what: "archive file",
        };
        return Err(Error::corrupt(path, len, kind));
    }
    file.read_exact_at(buf, 0)
        .map_err(|e| Error::io("read", path, e))
}

/// A sealed segment header at `at` in `path`: identity and seal.
fn segment_identity(path: &Path, at: u64, b: &[u8]) -> Result<(SegmentHeader, Seal)> {
    let h = match SegmentHeader::decode(b) {
        Ok(HeaderState::Valid(h)) => h,
        Ok(HeaderState::Blank) => {
            let kind = CorruptionKind::BadHeaderField {
                field: "magic (blank header)",
                value: 0,
            };
            return Err(Error::corrupt(path, at, kind));
        }
        Err(k) => return Err(Error::corrupt(path, at, k)),
    };
    let Some(seal) = Seal::decode(b).filter(|s| s.fits(h.capacity)) else {
        let kind = CorruptionKind::BadHeaderField {
            field: "seal (an archived segment must be sealed)",
            value: 0,
        };
        return Err(Error::corrupt(path, at + 64, kind));
    };
    Ok((h, seal))
}

fn verify_segment(e: &ArchivedSegment, index_interval: u64) -> Result<()> {
    let seg = open_segment(e)?;
    let (end, next_seq) = seg.extend_index(index_interval, true)?;
    let Some(c) = seg.completion() else {
        return Ok(());
    };
    if next_seq != e.end_seq() || end != c.end_offset {
        let kind = CorruptionKind::UnexpectedSeq {
            expected: e.end_seq(),
            found: next_seq,
        };
        return Err(seg.corrupt(end, kind));
    }
    Ok(())
}

/// Opens archived segment `e` for reading: plain files are mapped lazily like any sealed
/// segment; compressed ones are decompressed into an anonymous mapping now.
pub(crate) fn open_segment(e: &ArchivedSegment) -> Result<Arc<Segment>> {
    let file = File::open(&e.path).map_err(|err| Error::io("open archive", &e.path, err))?;
    let at = if e.compressed { ARCHIVE_HEADER_LEN } else { 0 };
    let mut hb = [0u8; SEGMENT_HEADER_LEN];
    file.read_exact_at(&mut hb, at as u64)
        .map_err(|err| Error::io("read", &e.path, err))?;
    let (header, seal) = segment_identity(&e.path, at as u64, &hb)?;
    let map = if e.compressed {
        Some(decompress(&file, e, &hb)?)
    } else {
        None
    };
    Ok(Arc::new(Segment::from_seal(
        header,
        seal,
        e.path.clone(),
        map,
    )))
}

fn decompress(file: &File, e: &ArchivedSegment, header: &[u8]) -> Result<Mapping> {
    let (ah, block) = read_block(file, e)?;
    let map = Mapping::anonymous(e.capacity).map_err(|err| Error::io("mmap", &e.path, err))?;
    let body_len = ah.raw_len - SEGMENT_HEADER_LEN as u64;
    // SAFETY: the mapping was just created and is not shared with anyone yet, so this thread
    // owns every byte of it.
    let out = unsafe { map.bytes_mut(SEGMENT_HEADER_LEN as u64, body_len) };
    let Some(out) = out else {
        return Err(bad_raw_len(e, ah.raw_len));
    };
    decompress_block(e, &block, out)?;
    // SAFETY: as above: the mapping is still private to this thread.
    unsafe { map.write(0, header) };
    Ok(map)
}

/// The bytes of compressed archived segment `e` as they were in the live file, from its
/// header to the end of its frames (the end marker included), decompressed into a private
/// buffer. Reads with `pread` only and takes no lock: this is how [`crate::inspect`] reads
/// the archive of a log another process may have open. (A moved segment is a plain segment
/// file: it needs no help to be read.)
///
/// The archive header, the segment header and seal and the block's CRC are checked; the
/// frames are left for the caller's scan.
pub(crate) fn read_compressed(e: &ArchivedSegment) -> Result<Vec<u8>> {
    let file = File::open(&e.path).map_err(|err| Error::io("open archive", &e.path, err))?;
    let at = ARCHIVE_HEADER_LEN as u64;
    let mut hb = [0u8; SEGMENT_HEADER_LEN];
    file.read_exact_at(&mut hb, at)
        .map_err(|err| Error::io("read", &e.path, err))?;
    let (header, seal) = segment_identity(&e.path, at, &hb)?;
    if header.segment_id != e.id || header.base_seq != e.base_seq || header.capacity != e.capacity {
        let kind = CorruptionKind::BadHeaderField {
            field: "segment_id, base_seq or capacity (not those the archive listed)",
            value: header.segment_id,
        };
        return Err(Error::corrupt(&e.path, at + 16, kind));
    }
    let (ah, block) = read_block(&file, e)?;
    if ah.raw_len < seal.end_offset {
        return Err(bad_raw_len(e, ah.raw_len));
    }
    let len = usize::try_from(ah.raw_len).map_err(|_| bad_raw_len(e, ah.raw_len))?;
    let mut bytes = vec![0u8; len];
    bytes[..SEGMENT_HEADER_LEN].copy_from_slice(&hb);
    decompress_block(e, &block, &mut bytes[SEGMENT_HEADER_LEN..])?;
    Ok(bytes)
}

fn bad_raw_len(e: &ArchivedSegment, raw_len: u64) -> Error {
    let kind = CorruptionKind::BadHeaderField {
        field: "raw_len",
        value: raw_len,
    };
    Error::corrupt(&e.path, 16, kind)
}

/// The archive header of compressed archive file `e` and its LZ4 block, the block's CRC
/// checked, and its sizes checked against the file and the segment's capacity.
fn read_block(file: &File, e: &ArchivedSegment) -> Result<(archive_file::ArchiveHeader, Vec<u8>)> {
    let mut ab = [0u8; ARCHIVE_HEADER_LEN];
    file.read_exact_at(&mut ab, 0)
        .map_err(|err| Error::io("read", &e.path, err))?;
    let ah = archive_file::decode_header(&ab).map_err(|k| Error::corrupt(&e.path, 0, k))?;
    if ah.raw_len > e.capacity {
        return Err(bad_raw_len(e, ah.raw_len));
    }
    let file_len = file
        .metadata()
        .map_err(|err| Error::io("stat", &e.path, err))?
        .len();
    if Some(file_len) != (BLOCK_AT as u64).checked_add(ah.compressed_len) {
        let kind = CorruptionKind::Truncated {
            what: "archive block",
        };
        return Err(Error::corrupt(&e.path, file_len, kind));
    }
    let clen = usize::try_from(ah.compressed_len)
        .map_err(|_| Error::invalid("archive block too large"))?;
    let mut block = vec![0u8; clen];
    file.read_exact_at(&mut block, BLOCK_AT as u64)
        .map_err(|err| Error::io("read", &e.path, err))?;
    let actual = checksum(&block);
    if actual != ah.compressed_crc {
        let kind = CorruptionKind::ChecksumMismatch {
            expected: ah.compressed_crc,
            actual,
        };
        return Err(Error::corrupt(&e.path, BLOCK_AT as u64, kind));
    }
    Ok((ah, block))
}

/// Decompresses LZ4 `block` of archive file `e` into `out`, which it must fill exactly
/// (bytes 128..raw_len of the segment).
fn decompress_block(e: &ArchivedSegment, block: &[u8], out: &mut [u8]) -> Result<()> {
    let want = out.len();
    let n = lz4_flex::block::decompress_into(block, out).map_err(|err| {
        Error::io(
            "decompress",
            &e.path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, err),
        )
    })?;
    if n != want {
        let kind = CorruptionKind::Truncated {
            what: "archive block (decompressed short)",
        };
        return Err(Error::corrupt(&e.path, BLOCK_AT as u64, kind));
    }
    Ok(())
}
