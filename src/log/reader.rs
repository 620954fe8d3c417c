//! Zero-copy readers: iterate committed records in sequence order, following the tail.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::segment::Segment;
use super::shared::Shared;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::frame::{self, FrameKind, LEN_KIND_OFFSET, PAYLOAD_OFFSET, Word};
use crate::format::segment_header::SEGMENT_HEADER_LEN;
use crate::storage::mmap::Mapping;

/// One record, borrowed from the reader that returned it: the payload is a slice of the
/// memory-mapped segment, not a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    seq: u64,
    timestamp_ns: u64,
    payload: &'a [u8],
}

impl<'a> Record<'a> {
    /// The record's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// When the record was appended (wall clock, never below the largest timestamp the log
    /// held when it was opened).
    pub fn timestamp(&self) -> SystemTime {
        crate::storage::fs::ns_time(self.timestamp_ns)
    }

    /// [`Record::timestamp`] as nanoseconds since the Unix epoch.
    pub fn timestamp_ns(&self) -> u64 {
        self.timestamp_ns
    }

    /// The payload, zero-copy.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// A record of `payload` (read from a log by other means than a [`Reader`]: a replica's
    /// copy of a frame, say).
    pub(crate) fn new(seq: u64, timestamp_ns: u64, payload: &'a [u8]) -> Record<'a> {
        Record {
            seq,
            timestamp_ns,
            payload,
        }
    }
}

/// Committed records in sequence order, as a [`Reader`] returns them: what the event store's
/// replays and read models run on, whether they read the log in process or through a
/// replica (`crate::replica::ReplicaReader`).
pub(crate) trait Records {
    /// The next committed record, `None` if there is none yet (see [`Reader::next`]).
    fn next_record(&mut self) -> Option<Result<Record<'_>>>;
    /// The sequence number of the next record (see [`Reader::next_seq`]).
    fn next_seq(&self) -> u64;
    /// Waits up to `timeout` for more (see [`Reader::wait`]).
    fn wait(&mut self, timeout: Duration) -> bool;
}

impl Records for Reader {
    fn next_record(&mut self) -> Option<Result<Record<'_>>> {
        self.next()
    }

    fn next_seq(&self) -> u64 {
        Reader::next_seq(self)
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        Reader::wait(self, timeout)
    }
}

/// Which records a freshly positioned reader passes over before its first one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skip {
    None,
    SeqBelow(u64),
    TimeBelow(u64),
}

enum Step {
    /// A published frame is at the reader's position.
    Frame {
        kind: FrameKind,
        payload_len: u32,
        crc: u32,
    },
    /// Nothing published yet at the position.
    Empty,
    /// Moved into the next segment.
    Moved,
}

/// Iterates the committed records of a log in sequence order, from a starting point.
///
/// A reader is not a snapshot: it keeps returning records as writers commit them. `next()`
/// returning `None` means "nothing more right now"; [`Reader::wait`] sleeps until there is
/// more (without spinning). Every record's CRC is checked before it is returned.
///
/// A reader keeps the segment it is in mapped, so its records stay readable whatever
/// compaction does with the file meanwhile.
///
/// ```
/// # fn main() -> Result<(), mmlog::Error> {
/// # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
/// let log = mmlog::Log::open(dir.path(), mmlog::Options::default())?;
/// log.append(b"one")?;
/// let mut reader = log.read_from(0)?;
/// let rec = reader.next().expect("a record")?;
/// assert_eq!((rec.seq(), rec.payload()), (0, &b"one"[..]));
/// assert!(reader.next().is_none()); // nothing more right now
/// log.append(b"two")?;
/// assert_eq!(reader.next().expect("a record")?.payload(), b"two");
/// # Ok(()) }
/// ```
pub struct Reader {
    shared: Arc<Shared>,
    seg: Arc<Segment>,
    /// The mapping of `seg`, held directly so the per-record path does no lookups.
    map: Arc<Mapping>,
    offset: u64,
    /// Where the frames of `seg` end for this reader: the seal's end offset for a sealed
    /// segment (so a damaged or oversized capacity cannot move it), else the capacity.
    limit: u64,
    next_seq: u64,
    skip: Skip,
}

impl Reader {
    pub(crate) fn at_seq(shared: Arc<Shared>, seq: u64) -> Result<Reader> {
        let segs = shared.segments();
        let first = segs.first().map_or(0, |s| s.base_seq);
        let id = if seq < first {
            match shared.archive.find_seq(seq)? {
                Some(e) => e.id,
                None => {
                    return Err(Error::invalid(format!(
                        "sequence number {seq} is before the first record in the log ({first})"
                    )));
                }
            }
        } else {
            let i = segs
                .partition_point(|s| s.base_seq <= seq)
                .saturating_sub(1);
            match segs.get(i) {
                Some(s) => s.id,
                None => return Err(Error::invalid("log has no segments")),
            }
        };
        drop(segs);
        let Some((seg, map)) = shared.segment_for_read(id)? else {
            return Err(Error::invalid(format!(
                "sequence number {seq} was compacted away"
            )));
        };
        prepare_index(&shared, &seg)?;
        let at = seg.seek_seq(seq);
        Ok(Reader::positioned(
            shared,
            seg,
            map,
            at,
            Skip::SeqBelow(seq),
        ))
    }

    pub(crate) fn at_time(shared: Arc<Shared>, ts: u64) -> Result<Reader> {
        let segs = shared.segments();
        shared.advance_committed()?;
        let first_live = segs.first().map_or(0, |s| s.id);
        // The first segment holding a timestamp >= ts holds the first such record: look in
        // the archive first, then in the live segments.
        let mut chosen = match shared.archive.find_time(ts)? {
            Some(e) if e.id < first_live => Some(e.id),
            _ => None,
        };
        if chosen.is_none() {
            chosen = segs.last().map(|s| s.id);
            for seg in &segs {
                let max_ts = match seg.sealed_max_ts() {
                    Some(max_ts) => max_ts,
                    None => {
                        prepare_index(&shared, seg)?;
                        seg.index_times().1
                    }
                };
                if max_ts >= ts {
                    chosen = Some(seg.id);
                    break;
                }
            }
        }
        drop(segs);
        let found = match chosen {
            Some(id) => shared.segment_for_read(id)?,
            None => None,
        };
        let Some((seg, map)) = found else {
            return Err(Error::invalid("log has no segments"));
        };
        prepare_index(&shared, &seg)?;
        let at = seg.seek_time(ts);
        Ok(Reader::positioned(
            shared,
            seg,
            map,
            at,
            Skip::TimeBelow(ts),
        ))
    }

    /// A reader at frame `(offset, next_seq)` of `seg`.
    fn positioned(
        shared: Arc<Shared>,
        seg: Arc<Segment>,
        map: Arc<Mapping>,
        at: (u64, u64),
        skip: Skip,
    ) -> Reader {
        Reader {
            shared,
            limit: limit_of(&seg),
            seg,
            map,
            offset: at.0,
            next_seq: at.1,
            skip,
        }
    }

    /// The sequence number of the next record this reader can return (records are returned
    /// in order; it may be a later one if that one was abandoned as padding).
    pub fn next_seq(&self) -> u64 {
        match self.skip {
            Skip::SeqBelow(s) => s.max(self.next_seq),
            _ => self.next_seq,
        }
    }

    /// The next committed record, `None` if there is none yet, or an error (with file and
    /// offset) if the record fails its checks. After an error the reader stays where it is.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Record<'_>>> {
        let (offset, seq, timestamp_ns, payload_len) = loop {
            let (kind, payload_len, crc) = match self.step() {
                Ok(Step::Empty) => return None,
                Ok(Step::Moved) => continue,
                Ok(Step::Frame {
                    kind,
                    payload_len,
                    crc,
                }) => (kind, payload_len, crc),
                Err(e) => return Some(Err(e)),
            };
            let offset = self.offset;
            let (seq, ts, len) = match self.check(offset, kind, payload_len, crc) {
                Ok(f) => f,
                Err(e) => return Some(Err(e)),
            };
            self.offset += len;
            self.next_seq += 1;
            if kind == FrameKind::Padding || self.skips(seq, ts) {
                continue;
            }
            break (offset, seq, ts, payload_len);
        };
        // SAFETY: this frame's commit word was loaded as published (acquire) in `step`, so its
        // bytes are immutable; `self.map` keeps the mapping alive while the record borrows
        // the reader. `check` verified the range is in bounds.
        let payload = unsafe {
            self.map
                .bytes(offset + PAYLOAD_OFFSET as u64, u64::from(payload_len))
        };
        match payload {
            Some(payload) => Some(Ok(Record {
                seq,
                timestamp_ns,
                payload,
            })),
            None => Some(Err(self
                .seg
                .corrupt(offset, CorruptionKind::Truncated { what: "frame" }))),
        }
    }

    /// Checks the published frame at `offset`: bounds, CRC, sequence number. Returns its
    /// sequence number, timestamp and length.
    ///
    /// This repeats `Segment::checked_frame` on purpose: it reads through the reader's own
    /// mapping handle and returns only three integers, and routing the scan through the
    /// segment's version measured 35% slower on 64-byte records (`cargo bench --bench read`).
    #[inline(always)]
    fn check(
        &self,
        offset: u64,
        kind: FrameKind,
        payload_len: u32,
        crc: u32,
    ) -> Result<(u64, u64, u64)> {
        let body_at = offset + LEN_KIND_OFFSET as u64;
        // SAFETY: the commit word at `offset` was loaded non-zero with acquire ordering, so
        // the frame's bytes are published and never written again (mapping contract rule 2).
        let Some(body) = (unsafe { self.map.bytes(body_at, frame::covered_len(payload_len)) })
        else {
            let k = CorruptionKind::LengthOutOfBounds {
                len: u64::from(payload_len),
            };
            return Err(self.seg.corrupt(offset, k));
        };
        let f = frame::check_body(kind, payload_len, crc, body)
            .map_err(|k| self.seg.corrupt(offset, k))?;
        if f.seq != self.next_seq {
            let k = CorruptionKind::UnexpectedSeq {
                expected: self.next_seq,
                found: f.seq,
            };
            return Err(self.seg.corrupt(offset, k));
        }
        Ok((f.seq, f.timestamp_ns, f.frame_len))
    }

    #[inline(always)]
    fn word(&self) -> Result<Option<Word>> {
        if self.offset >= self.limit {
            return Ok(None);
        }
        let Some(w) = self.map.word(self.offset) else {
            return Err(self
                .seg
                .corrupt(self.offset, CorruptionKind::Truncated { what: "frame" }));
        };
        let raw = w.load(std::sync::atomic::Ordering::Acquire);
        frame::decode_word(raw)
            .map(Some)
            .map_err(|k| self.seg.corrupt(self.offset, k))
    }

    /// Waits up to `timeout` for the next frame to be committed. Returns true if
    /// [`Reader::next`] now has something to look at. Sleeps on a condition variable; a writer
    /// wakes it only when a reader is waiting, so idle readers cost writers nothing.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.ready() {
                return true;
            }
            let guard = self.shared.tail_lock();
            let before = self.seg.tail.register_waiter();
            if self.ready() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // A reservation covering our position exists but is not yet published: its writer
            // is mid-copy and will not look at the waiter flag again, so poll briefly.
            let in_flight = before.offset > self.offset;
            let nap = if in_flight {
                Duration::from_micros(50)
            } else {
                deadline - now
            };
            let _ = self
                .shared
                .tail_cv()
                .wait_timeout(guard, nap.min(deadline - now));
        }
    }

    /// [`Reader::wait`] then [`Reader::next`].
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<Record<'_>>> {
        if self.wait(timeout) {
            self.next()
        } else {
            None
        }
    }

    fn skips(&mut self, seq: u64, ts: u64) -> bool {
        let skip = match self.skip {
            Skip::None => false,
            Skip::SeqBelow(s) => seq < s,
            Skip::TimeBelow(t) => ts < t,
        };
        if !skip {
            self.skip = Skip::None;
        }
        skip
    }

    /// What unwritten space at the reader's position means. In a segment still being
    /// written it is the end of what is published so far. In a sealed segment every frame is
    /// published: at the end the seal records, the segment is over (a full segment has no end
    /// marker); before it, frames the seal counts are missing.
    #[cold]
    fn unwritten(&self) -> Result<Option<Word>> {
        let Some(c) = self.seg.completion().filter(|_| self.seg.is_sealed()) else {
            return Ok(Some(Word::Unwritten));
        };
        if self.offset >= c.end_offset {
            return Ok(Some(Word::EndOfSegment));
        }
        let kind = CorruptionKind::Truncated {
            what: "frames (the seal counts more)",
        };
        Err(self.seg.corrupt(self.offset, kind))
    }

    /// True if `next` would make progress: a frame is published at the position, or the
    /// segment is over and the next one exists.
    fn ready(&self) -> bool {
        let word = match self.word() {
            Ok(Some(Word::Unwritten)) => self.unwritten(),
            w => w,
        };
        match word {
            Ok(Some(Word::Unwritten)) => false,
            Ok(None | Some(Word::EndOfSegment)) => self.shared.next_segment_exists(self.seg.id),
            Ok(Some(Word::Frame { .. })) | Err(_) => true,
        }
    }

    #[inline(always)]
    fn step(&mut self) -> Result<Step> {
        match self.word()? {
            Some(Word::Frame {
                kind,
                payload_len,
                crc,
            }) => Ok(Step::Frame {
                kind,
                payload_len,
                crc,
            }),
            Some(Word::Unwritten) => match self.unwritten()? {
                Some(Word::Unwritten) => Ok(Step::Empty),
                _ => self.enter_next_segment(),
            },
            None | Some(Word::EndOfSegment) => self.enter_next_segment(),
        }
    }

    /// Moves to the segment after this one, if it exists yet.
    #[cold]
    fn enter_next_segment(&mut self) -> Result<Step> {
        let Some((next, map)) = self.shared.segment_for_read(self.seg.id + 1)? else {
            return Ok(Step::Empty);
        };
        if next.base_seq != self.next_seq {
            let kind = CorruptionKind::SeqDiscontinuity {
                expected: self.next_seq,
                found: next.base_seq,
            };
            return Err(Error::corrupt(&next.path, 0, kind));
        }
        prepare_index(&self.shared, &next)?;
        self.map = map;
        self.limit = limit_of(&next);
        self.seg = next;
        self.offset = SEGMENT_HEADER_LEN as u64;
        Ok(Step::Moved)
    }
}

/// Where a reader stops reading frames in `seg` (see `Reader::limit`).
fn limit_of(seg: &Segment) -> u64 {
    match seg.completion() {
        Some(c) if seg.is_sealed() => c.end_offset.min(seg.capacity),
        _ => seg.capacity,
    }
}

/// The timestamp of committed frame `seq` (a padding frame's counts too).
pub(crate) fn timestamp_of(shared: Arc<Shared>, seq: u64) -> Result<u64> {
    let mut r = Reader::at_seq(shared, seq)?;
    loop {
        match r.step()? {
            Step::Empty => {
                return Err(Error::invalid(format!("record {seq} is not committed")));
            }
            Step::Moved => {}
            Step::Frame {
                kind,
                payload_len,
                crc,
            } => {
                let (s, ts, len) = r.check(r.offset, kind, payload_len, crc)?;
                if s == seq {
                    return Ok(ts);
                }
                r.offset += len;
                r.next_seq += 1;
            }
        }
    }
}

/// Makes sure the index of `seg` covers what a seek needs: the whole segment for segments
/// from earlier runs (built once, with CRC checks), the committed prefix for the others.
fn prepare_index(shared: &Shared, seg: &Segment) -> Result<()> {
    if seg.is_sealed() {
        if !seg.load_index() {
            seg.extend_index(shared.options.index_interval, true)?;
            seg.save_index();
        }
    } else {
        shared.advance_committed()?;
    }
    Ok(())
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("segment", &self.seg.id)
            .field("offset", &self.offset)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}
