//! One segment file in memory: its mapping, tail word, completion and sparse index.
//!
//! Lifecycle: *spare* (allocated, blank header) -> *active* (header written, writers reserve
//! in it) -> *complete* (a reservation ran past the end; the end marker is written) -> *sealed*
//! (every frame durable and the seal written in the header; recovery trusts it unscanned).

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU64 as StdAtomicU64, Ordering as StdOrdering,
};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crossbeam_utils::CachePadded;

use super::prealloc::Prefault;
use super::tail::Tail;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::frame::{self, FrameKind, Word};
use crate::format::index_file;
use crate::format::segment_header::{SEGMENT_HEADER_LEN, Seal, SegmentHeader};
use crate::storage::fs as sfs;
use crate::storage::mmap::Mapping;
use crate::sync::Ordering;

/// Where the frames of a complete segment end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Completion {
    /// Sequence numbers used by the segment.
    pub(crate) record_count: u64,
    /// Offset of the end marker, or the capacity.
    pub(crate) end_offset: u64,
}

/// One sparse-index entry: frame `seq` starts at `offset`; every frame before it in this
/// segment has a timestamp of at most `max_ts_before`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) seq: u64,
    pub(crate) offset: u64,
    pub(crate) max_ts_before: u64,
}

/// The sparse index of a segment and how far it has looked.
#[derive(Debug)]
pub(crate) struct SegmentIndex {
    pub(crate) entries: Vec<IndexEntry>,
    /// The index has looked at every frame before this offset...
    pub(crate) scanned_offset: u64,
    /// ...whose sequence numbers are all below this one.
    pub(crate) scanned_next_seq: u64,
    /// First timestamp seen (0 if none).
    pub(crate) first_ts: u64,
    /// Largest timestamp seen.
    pub(crate) max_ts: u64,
}

/// A segment in memory.
pub(crate) struct Segment {
    pub(crate) id: u64,
    /// From the header: tells this segment from an earlier one with the same id.
    pub(crate) created_ns: u64,
    pub(crate) path: PathBuf,
    pub(crate) capacity: u64,
    pub(crate) base_seq: u64,
    map: MapSlot,
    pub(crate) tail: CachePadded<Tail>,
    completion: OnceLock<Completion>,
    sealed: AtomicBool,
    /// Bytes from the start of the file known to be on stable storage.
    pub(crate) synced_offset: StdAtomicU64,
    pub(crate) index: RwLock<SegmentIndex>,
    /// Largest timestamp of a sealed segment, from its seal (0 until sealed): lets a seek by
    /// time pass over old segments without building their index.
    seal_max_ts: StdAtomicU64,
    /// How far ahead of the writers this segment's pages are faulted in.
    pub(crate) prefault: Prefault,
}

impl Segment {
    /// A segment becoming active now: writes its header through `map` (nobody else can see the
    /// segment yet, so the write is exclusive). `filled`: its pages are all in the page cache
    /// already, so none are faulted in ahead of the writers.
    pub(crate) fn activate(
        path: PathBuf,
        map: Arc<Mapping>,
        header: SegmentHeader,
        filled: bool,
    ) -> Result<Segment> {
        let bytes = header.encode();
        // SAFETY: the segment is not yet published to any other thread, and its header range
        // is written only here, so this thread owns those bytes exclusively.
        if !unsafe { map.write(0, &bytes) } {
            return Err(Error::invalid("segment smaller than its header"));
        }
        let start = SEGMENT_HEADER_LEN as u64;
        Ok(Segment {
            id: header.segment_id,
            created_ns: header.created_ns,
            path,
            capacity: header.capacity,
            base_seq: header.base_seq,
            map: MapSlot::writable(map),
            tail: CachePadded::new(Tail::new(0, start)),
            completion: OnceLock::new(),
            sealed: AtomicBool::new(false),
            synced_offset: StdAtomicU64::new(0),
            index: RwLock::new(SegmentIndex::empty(start, header.base_seq)),
            seal_max_ts: StdAtomicU64::new(0),
            prefault: if filled {
                Prefault::never()
            } else {
                Prefault::from(start)
            },
        })
    }

    /// A segment found at open whose frames end at `end_offset` with `next_seq`. `map` is
    /// given for segments that will be written to (the active one); others map lazily.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn recovered(
        header: SegmentHeader,
        path: PathBuf,
        map: Option<Mapping>,
        next_seq: u64,
        end_offset: u64,
        completion: Option<Completion>,
        sealed: bool,
        index: SegmentIndex,
    ) -> Segment {
        let completion_lock = OnceLock::new();
        if let Some(c) = completion {
            let _ = completion_lock.set(c);
        }
        let prefault = if map.is_some() {
            Prefault::from(end_offset)
        } else {
            Prefault::never()
        };
        Segment {
            id: header.segment_id,
            created_ns: header.created_ns,
            path,
            capacity: header.capacity,
            base_seq: header.base_seq,
            map: map.map_or_else(MapSlot::lazy, |m| MapSlot::writable(Arc::new(m))),
            tail: CachePadded::new(Tail::new(next_seq - header.base_seq, end_offset)),
            completion: completion_lock,
            sealed: AtomicBool::new(sealed),
            synced_offset: StdAtomicU64::new(if sealed { header.capacity } else { end_offset }),
            index: RwLock::new(index),
            seal_max_ts: StdAtomicU64::new(0),
            prefault,
        }
    }

    /// A sealed segment from disk, trusted through its seal: live segments from an earlier
    /// run, and archived ones. `map` is given for compressed archived segments (decompressed
    /// into memory); the others are mapped from `path` on first use.
    pub(crate) fn from_seal(
        header: SegmentHeader,
        seal: Seal,
        path: PathBuf,
        map: Option<Mapping>,
    ) -> Segment {
        let completion = Completion {
            record_count: seal.record_count,
            end_offset: seal.end_offset,
        };
        let seg = Segment::recovered(
            header,
            path,
            None,
            header.base_seq + seal.record_count,
            seal.end_offset,
            Some(completion),
            true,
            SegmentIndex::empty(SEGMENT_HEADER_LEN as u64, header.base_seq),
        );
        if let Some(m) = map {
            *seg.map.owner.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(m));
        }
        seg.mark_sealed(seal.max_ts);
        seg
    }

    /// The mapping, created on first use for segments from earlier runs (read-only). Fails
    /// once the segment is retired (see [`Segment::retire`]).
    pub(crate) fn mapping(&self) -> Result<Arc<Mapping>> {
        let mut slot = self.map.owner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = slot.as_ref() {
            return Ok(Arc::clone(m));
        }
        if self.map.retired.load(StdOrdering::Acquire) {
            return Err(Error::invalid(format!(
                "segment {} was compacted away",
                self.id
            )));
        }
        let m = Arc::new(self.map_file()?);
        *slot = Some(Arc::clone(&m));
        Ok(m)
    }

    fn map_file(&self) -> Result<Mapping> {
        let file = OpenOptions::new()
            .read(true)
            .open(&self.path)
            .map_err(|e| Error::io("open segment", &self.path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", &self.path, e))?
            .len();
        if len < self.capacity {
            return Err(Error::corrupt(
                &self.path,
                len,
                CorruptionKind::Truncated {
                    what: "segment file",
                },
            ));
        }
        Mapping::map(&file, self.capacity, false, false)
            .map_err(|e| Error::io("mmap", &self.path, e))
    }

    /// The mapping of a segment being written, for the append path (no lock, no reference
    /// count). `None` for segments opened read-only.
    #[inline]
    pub(crate) fn writer_map(&self) -> Option<&Mapping> {
        self.map.writer()
    }

    /// Drops this segment's own hold on its mapping and index, once compaction has taken it
    /// out of the live set: readers that are inside it keep their own mapping, and the file's
    /// disk space is freed when the last of them lets go. The `Segment` value itself stays
    /// alive (see the invariant on `Shared::segments`), at a few hundred bytes.
    pub(crate) fn retire(&self) {
        debug_assert!(self.is_sealed(), "retiring unsealed segment {}", self.id);
        self.map.release();
        let mut idx = self.index.write().unwrap_or_else(|p| p.into_inner());
        idx.entries = Vec::new();
    }

    #[inline]
    pub(crate) fn completion(&self) -> Option<Completion> {
        self.completion.get().copied()
    }

    /// Records where the frames end. Called once, by the writer whose reservation sealed it.
    pub(crate) fn complete(&self, c: Completion) {
        let fresh = self.completion.set(c).is_ok();
        debug_assert!(fresh, "segment {} completed twice", self.id);
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed.load(StdOrdering::Acquire)
    }

    /// Records that the seal is on disk, with the segment's largest timestamp.
    pub(crate) fn mark_sealed(&self, max_ts: u64) {
        self.seal_max_ts.store(max_ts, StdOrdering::Release);
        self.sealed.store(true, StdOrdering::Release);
    }

    /// The largest timestamp of a sealed segment, without scanning it.
    pub(crate) fn sealed_max_ts(&self) -> Option<u64> {
        self.is_sealed()
            .then(|| self.seal_max_ts.load(StdOrdering::Acquire))
    }

    /// The first byte after the last frame of a complete segment, end marker included.
    pub(crate) fn data_end(&self, c: Completion) -> u64 {
        (c.end_offset + frame::COMMIT_WORD_LEN as u64).min(self.capacity)
    }

    /// Loads and decodes the commit word at `offset` (acquire). `Ok(None)` at the capacity.
    fn word_at(&self, map: &Mapping, offset: u64) -> Result<Option<Word>> {
        if offset >= self.capacity {
            return Ok(None);
        }
        let Some(w) = map.word(offset) else {
            return Err(self.corrupt(offset, CorruptionKind::Truncated { what: "frame" }));
        };
        let raw = w.load(std::sync::atomic::Ordering::Acquire);
        frame::decode_word(raw)
            .map(Some)
            .map_err(|k| self.corrupt(offset, k))
    }

    /// Reads the published frame at `offset` and checks it (bounds, CRC, sequence number).
    /// The caller has loaded its commit word as `Word::Frame` with acquire ordering.
    fn checked_frame<'m>(
        &self,
        map: &'m Mapping,
        offset: u64,
        kind: FrameKind,
        payload_len: u32,
        crc: u32,
        expected_seq: u64,
    ) -> Result<frame::Frame<'m>> {
        let body_len = frame::covered_len(payload_len);
        let body_at = offset + frame::LEN_KIND_OFFSET as u64;
        // SAFETY: the commit word at `offset` was loaded non-zero with acquire ordering, so the
        // frame's bytes are published and never written again (mapping contract rule 2).
        let Some(body) = (unsafe { map.bytes(body_at, body_len) }) else {
            let k = CorruptionKind::LengthOutOfBounds {
                len: u64::from(payload_len),
            };
            return Err(self.corrupt(offset, k));
        };
        let f =
            frame::check_body(kind, payload_len, crc, body).map_err(|k| self.corrupt(offset, k))?;
        if f.seq != expected_seq {
            let k = CorruptionKind::UnexpectedSeq {
                expected: expected_seq,
                found: f.seq,
            };
            return Err(self.corrupt(offset, k));
        }
        Ok(f)
    }

    pub(crate) fn corrupt(&self, offset: u64, kind: CorruptionKind) -> Error {
        Error::corrupt(&self.path, offset, kind)
    }

    /// The index entry to start a scan for `seq` from: the last entry at or before it.
    pub(crate) fn seek_seq(&self, seq: u64) -> (u64, u64) {
        let idx = self.index.read().unwrap_or_else(|p| p.into_inner());
        let at = idx.entries.partition_point(|e| e.seq <= seq);
        match at.checked_sub(1).and_then(|i| idx.entries.get(i)) {
            Some(e) => (e.offset, e.seq),
            None => (SEGMENT_HEADER_LEN as u64, self.base_seq),
        }
    }

    /// The index entry to start a scan for the first frame with timestamp `>= ts` from.
    pub(crate) fn seek_time(&self, ts: u64) -> (u64, u64) {
        let idx = self.index.read().unwrap_or_else(|p| p.into_inner());
        let at = idx.entries.partition_point(|e| e.max_ts_before < ts);
        match at.checked_sub(1).and_then(|i| idx.entries.get(i)) {
            Some(e) => (e.offset, e.seq),
            None => (SEGMENT_HEADER_LEN as u64, self.base_seq),
        }
    }

    /// Extends the index over frames published since it last looked, stopping at the first
    /// unpublished commit word, at the end of the frames, or (with `verify`) at a bad frame.
    /// Returns the offset and next sequence number reached.
    pub(crate) fn extend_index(&self, interval: u64, verify: bool) -> Result<(u64, u64)> {
        let map = self.mapping()?;
        let mut idx = self.index.write().unwrap_or_else(|p| p.into_inner());
        let (mut offset, mut seq) = (idx.scanned_offset, idx.scanned_next_seq);
        let limit = self.completion().map_or(self.capacity, |c| c.end_offset);
        while offset < limit {
            let Some(Word::Frame {
                kind,
                payload_len,
                crc,
            }) = self.word_at(&map, offset)?
            else {
                break;
            };
            let (ts, len) = if verify {
                let f = self.checked_frame(&map, offset, kind, payload_len, crc, seq)?;
                (f.timestamp_ns, f.frame_len)
            } else {
                (
                    self.timestamp_at(&map, offset)?,
                    frame::frame_len(u64::from(payload_len)),
                )
            };
            if (seq - self.base_seq).is_multiple_of(interval) {
                let max_ts_before = idx.max_ts;
                idx.entries.push(IndexEntry {
                    seq,
                    offset,
                    max_ts_before,
                });
            }
            if idx.first_ts == 0 {
                idx.first_ts = ts;
            }
            idx.max_ts = idx.max_ts.max(ts);
            offset += len;
            seq += 1;
        }
        idx.scanned_offset = offset;
        idx.scanned_next_seq = seq;
        Ok((offset, seq))
    }

    /// The timestamp of the published frame at `offset`.
    fn timestamp_at(&self, map: &Mapping, offset: u64) -> Result<u64> {
        // SAFETY: the caller loaded this frame's commit word as published (acquire), so its
        // header bytes are immutable.
        let b = unsafe { map.bytes(offset + frame::TIMESTAMP_OFFSET as u64, 8) }
            .ok_or_else(|| self.corrupt(offset, CorruptionKind::Truncated { what: "frame" }))?;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(b);
        Ok(u64::from_le_bytes(ts))
    }

    /// Loads the index of a sealed segment from its index file, if the index is not complete
    /// yet. Returns true when the index covers the whole segment afterwards; false when there
    /// is no usable index file (the caller then scans the segment).
    pub(crate) fn load_index(&self) -> bool {
        let Some(c) = self.completion() else {
            return false;
        };
        if self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .scanned_offset
            >= c.end_offset
        {
            return true;
        }
        let end_seq = self.base_seq + c.record_count;
        let Some(entries) = self.read_index_file(c, end_seq) else {
            return false;
        };
        let mut idx = self.index.write().unwrap_or_else(|p| p.into_inner());
        if idx.scanned_offset < c.end_offset {
            idx.entries = entries;
            idx.scanned_offset = c.end_offset;
            idx.scanned_next_seq = end_seq;
            idx.max_ts = idx.max_ts.max(self.seal_max_ts.load(StdOrdering::Acquire));
        }
        true
    }

    fn read_index_file(&self, c: Completion, end_seq: u64) -> Option<Vec<IndexEntry>> {
        let path = sfs::index_path(self.path.parent()?, self.id);
        let file = std::fs::File::open(&path).ok()?;
        // An index has at most one entry per frame: refuse to read anything larger.
        let len_max = (index_file::INDEX_HEADER_LEN as u64)
            .saturating_add((c.record_count + 1).saturating_mul(index_file::ENTRY_LEN as u64));
        let len = file.metadata().ok()?.len();
        if len > len_max {
            return None;
        }
        let mut bytes = vec![0u8; usize::try_from(len).ok()?];
        std::io::Read::read_exact(&mut &file, &mut bytes).ok()?;
        let entries = index_file::decode(&bytes, self.id, self.created_ns, self.capacity).ok()?;
        let inside = |e: &index_file::IndexFileEntry| {
            (self.base_seq..end_seq).contains(&e.seq)
                && (SEGMENT_HEADER_LEN as u64..c.end_offset).contains(&e.offset)
        };
        if !entries.iter().all(inside) {
            return None;
        }
        Some(
            entries
                .into_iter()
                .map(|e| IndexEntry {
                    seq: e.seq,
                    offset: e.offset,
                    max_ts_before: e.max_ts_before,
                })
                .collect(),
        )
    }

    /// Writes the index of a complete segment to its index file (best effort: the file only
    /// saves a later run a scan of this segment).
    pub(crate) fn save_index(&self) {
        let Some(dir) = self.path.parent() else {
            return;
        };
        let entries: Vec<index_file::IndexFileEntry> = {
            let idx = self.index.read().unwrap_or_else(|p| p.into_inner());
            idx.entries
                .iter()
                .map(|e| index_file::IndexFileEntry {
                    seq: e.seq,
                    offset: e.offset,
                    max_ts_before: e.max_ts_before,
                })
                .collect()
        };
        let bytes = index_file::encode(self.id, self.created_ns, &entries);
        let _ = sfs::replace_file_unsynced(&sfs::index_path(dir, self.id), &bytes);
    }

    /// Largest timestamp the index has seen, and first.
    pub(crate) fn index_times(&self) -> (u64, u64) {
        let idx = self.index.read().unwrap_or_else(|p| p.into_inner());
        (idx.first_ts, idx.max_ts)
    }

    /// Writes a frame's bytes after its commit word, then publishes the commit word.
    ///
    /// # Safety
    ///
    /// `offset..offset + frame_len(payload.len())` must be a reservation of this segment owned
    /// by the caller and not yet published.
    #[inline]
    pub(crate) unsafe fn publish_record(&self, offset: u64, seq: u64, ts: u64, payload: &[u8]) {
        let Some(map) = self.map.writer() else {
            debug_assert!(false, "active segment without mapping");
            return;
        };
        let body_at = offset + frame::SEQ_OFFSET as u64;
        // SAFETY: the caller owns the reserved range exclusively (function contract).
        unsafe {
            map.write(body_at, &frame::seq_ts_bytes(seq, ts));
            map.write(offset + frame::PAYLOAD_OFFSET as u64, payload);
        }
        let lk = frame::len_kind(FrameKind::Record, payload.len() as u32);
        publish_commit_word(map, offset, lk);
    }

    /// Turns an abandoned reservation into a padding frame, keeping its sequence number.
    ///
    /// # Safety
    ///
    /// As for [`Segment::publish_record`], with `payload_len` the reserved payload length.
    pub(crate) unsafe fn publish_padding(&self, offset: u64, seq: u64, ts: u64, payload_len: u32) {
        let Some(map) = self.map.writer() else { return };
        let st = frame::seq_ts_bytes(seq, ts);
        let lk = frame::len_kind(FrameKind::Padding, payload_len);
        let crc = frame::padding_crc(lk, &st);
        // SAFETY: the caller owns the reserved range exclusively (function contract).
        unsafe { map.write(offset + frame::SEQ_OFFSET as u64, &st) };
        if let Some(w) = map.word(offset) {
            w.store(frame::commit_word(lk, crc), Ordering::Release);
        }
    }

    /// Writes the end marker at `offset` (the start of the first reservation that did not fit).
    pub(crate) fn publish_end_marker(&self, offset: u64) {
        if let Some(w) = self.map.writer().and_then(|m| m.word(offset)) {
            w.store(frame::END_OF_SEGMENT_WORD, Ordering::Release);
        }
    }
}

/// Computes a record's CRC over its body, already written in the mapping (bytes 8.. of the
/// frame, contiguous), and publishes its commit word.
#[inline]
pub(crate) fn publish_commit_word(map: &Mapping, offset: u64, len_kind: u32) {
    let body_len = 16 + u64::from(len_kind & ((1 << frame::LEN_BITS) - 1));
    // SAFETY: the frame is the caller's unpublished reservation: this thread wrote the body
    // and nobody else writes or reads it until the commit word below is stored.
    let Some(body) = (unsafe { map.bytes(offset + frame::SEQ_OFFSET as u64, body_len) }) else {
        debug_assert!(false, "reservation outside its segment");
        return;
    };
    let crc = frame::record_crc(len_kind, body);
    if let Some(w) = map.word(offset) {
        w.store(frame::commit_word(len_kind, crc), Ordering::Release);
    }
}

/// A segment's own handle on its mapping.
///
/// Readers, the flusher and compaction go through `owner`, a mutex taken once per segment a
/// reader enters or per flush. Writers go through `writer`, a plain pointer to the same
/// mapping, so the append path takes no lock and touches no shared reference count.
struct MapSlot {
    /// The mapping once made; `None` again after `release`.
    owner: Mutex<Option<Arc<Mapping>>>,
    /// The mapping in `owner` if the segment was created writable, else null.
    ///
    /// Invariant: non-null only while `owner` holds that same `Arc`. `release` nulls it before
    /// dropping the `Arc`, and `release` is only called on a sealed segment, every frame of
    /// which is published; writers only go through `writer` into a reservation they have not
    /// yet published (or, for the end marker, before the segment is complete), so no writer
    /// can be using it when it goes.
    writer: AtomicPtr<Mapping>,
    retired: AtomicBool,
}

impl MapSlot {
    fn writable(map: Arc<Mapping>) -> MapSlot {
        MapSlot {
            writer: AtomicPtr::new(Arc::as_ptr(&map).cast_mut()),
            owner: Mutex::new(Some(map)),
            retired: AtomicBool::new(false),
        }
    }

    fn lazy() -> MapSlot {
        MapSlot {
            writer: AtomicPtr::new(std::ptr::null_mut()),
            owner: Mutex::new(None),
            retired: AtomicBool::new(false),
        }
    }

    #[inline]
    fn writer(&self) -> Option<&Mapping> {
        let p = self.writer.load(StdOrdering::Acquire);
        // SAFETY: a non-null `writer` points into the `Arc<Mapping>` held by `owner`, which is
        // dropped only after `writer` is nulled, and only for a sealed segment that no writer
        // uses any more (see the invariant on `writer`).
        (!p.is_null()).then(|| unsafe { &*p })
    }

    fn release(&self) {
        self.retired.store(true, StdOrdering::Release);
        self.writer
            .store(std::ptr::null_mut(), StdOrdering::Release);
        let old = self.owner.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(old);
    }
}

impl SegmentIndex {
    pub(crate) fn empty(start_offset: u64, base_seq: u64) -> SegmentIndex {
        SegmentIndex {
            entries: Vec::new(),
            scanned_offset: start_offset,
            scanned_next_seq: base_seq,
            first_ts: 0,
            max_ts: 0,
        }
    }
}
