//! Loom models of the append protocol: reservation ([`Tail::reserve`]), publication
//! (`Segment::publish_record`: body first, then the commit word with release ordering),
//! sealing by the first reservation that does not fit (`Shared::reserve`), the reader's scan,
//! the waiter flag with the reader's sleep / writer's wake-up handshake, the durable
//! watermark, abandoned reservations, and group commit's hand-off between the flusher and the
//! writers waiting for the durable watermark.
//!
//! Run with `.ci/loom.sh`, or:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!     cargo test --release --lib loom_model
//! ```
//!
//! The tail word is the real [`Tail`] (its atomics are loom's under `cfg(loom)`). Loom cannot
//! run a file mapping, so a segment is modelled as a heap [`Region`]: one 8-byte slot per
//! 8 bytes of the segment after its header, each slot holding a loom `AtomicU64` (used when a
//! frame's commit word sits in the slot) and a loom `UnsafeCell<u64>` (used when the slot lies
//! in a frame's body). A model frame is a commit word followed by `n` body words; the first
//! body word stands for the frame's `seq`, so a reader that checks it checks the sequence
//! number as `Segment::checked_frame` does. Commit words and the end marker are the real
//! encodings from [`crate::format::frame`] (the model does not compute CRCs).
//!
//! Every body access goes through `UnsafeCell::with` / `with_mut`, so loom reports a
//! causality violation when a reader can see a commit word without the body written before
//! it; loom's `wait_timeout` never times out, so a lost wake-up is a deadlock loom reports.
//! Seven negative twins break a protocol on purpose and must fail (`#[should_panic]` on loom's
//! message or the model's): `loom_model_racy_reservation_is_caught` (a load and a store
//! instead of one `fetch_add`), `loom_model_sealing_by_every_overflow_is_caught` (every
//! reservation that does not fit seals), `loom_model_relaxed_publish_is_caught` (commit word
//! stored `Relaxed`), `loom_model_notify_before_clear_is_caught` (waiter flag cleared after the
//! notification), `loom_model_watermark_before_epoch_is_caught` (a writer reads the durable
//! watermark before the epoch it sleeps on), `loom_model_watermark_from_reservations_is_caught`
//! (the durable watermark taken from the reservations, not the published frames) and
//! `loom_model_abandon_without_padding_is_caught` (an abandoned reservation left unwritten).
//! Each positive model also checks that its executions reached the interleavings it is about
//! (which writer sealed, what the reader saw), so a model cannot pass by never getting there.

use std::collections::BTreeSet;
use std::mem::ManuallyDrop;
use std::sync::{Arc as StdArc, Mutex as StdMutex};

use loom::cell::UnsafeCell;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use super::tail::{Tail, TailState};
use crate::format::frame::{self, FrameKind, Word};
use crate::format::segment_header::SEGMENT_HEADER_LEN;
use crate::sync::{AtomicU64, Ordering};

/// Offset of the first frame: right after the segment header.
const START: u64 = SEGMENT_HEADER_LEN as u64;
/// Base sequence number of the modelled segment (non-zero, so an off-by-base shows).
const BASE_SEQ: u64 = 1000;
/// Bytes per slot: the frame alignment.
const WORD: u64 = frame::FRAME_ALIGN;

/// The value body word `j` of the frame with sequence number `seq` holds.
fn body_value(seq: u64, j: u64) -> u64 {
    0xFEED_0000_0000 | (seq << 8) | j
}

/// The commit word of a record with `body_words` words after its commit word.
fn record_word(body_words: u64) -> u64 {
    let lk = frame::len_kind(FrameKind::Record, (body_words * WORD) as u32);
    // Any non-zero CRC: the model checks ordering, not checksums.
    frame::commit_word(lk, 0x5EA1_CAFE)
}

/// Bytes a model frame with `body_words` body words occupies.
fn model_frame_len(body_words: u64) -> u64 {
    WORD * (1 + body_words)
}

/// A segment's frame area in memory, its tail word and its completion.
struct Region {
    capacity: u64,
    words: Vec<AtomicU64>,
    cells: Vec<UnsafeCell<u64>>,
    tail: Tail,
    /// 0 while the segment is open; `(record_count + 1) << 32 | end_offset` once complete.
    /// (`Segment::complete` is a `OnceLock`; here it is a loom atomic so loom sees it.)
    completion: AtomicU64,
}

/// What one writer's append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Appended {
    /// The reservation fit: the record was published.
    Record { seq: u64, offset: u64, waiter: bool },
    /// The first reservation that did not fit: it sealed the segment.
    Sealed { record_count: u64, end_offset: u64 },
    /// A later reservation that did not fit: void (the writer retries in the next segment).
    Void,
    /// The segment was already complete before reserving (the writer rolls over).
    Rolled,
}

/// Which rule of the append protocol a broken twin breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Broken {
    Nothing,
    /// Reserve with a load and a store instead of one `fetch_add`.
    RacyReserve,
    /// Every reservation that does not fit seals, not only the first.
    SealEveryOverflow,
}

/// Why a scan stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// A zero commit word.
    Unwritten,
    /// The end-of-segment marker.
    EndMarker,
    /// The capacity.
    Full,
}

/// What a scan saw: the offsets of the frames (their sequence numbers are dense from
/// `BASE_SEQ`, checked during the scan) and where and why it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Scan {
    offsets: Vec<u64>,
    end: u64,
    stop: Stop,
}

impl Region {
    fn new(capacity: u64) -> Region {
        let slots = ((capacity - START) / WORD) as usize;
        Region {
            capacity,
            words: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            cells: (0..slots).map(|_| UnsafeCell::new(0)).collect(),
            tail: Tail::new(0, START),
            completion: AtomicU64::new(0),
        }
    }

    fn slot(&self, offset: u64) -> usize {
        ((offset - START) / WORD) as usize
    }

    /// The commit word at `offset`, as `Mapping::word`: `None` unless 8 aligned bytes fit.
    fn word(&self, offset: u64) -> Option<&AtomicU64> {
        if !offset.is_multiple_of(WORD) || offset < START || offset + WORD > self.capacity {
            return None;
        }
        self.words.get(self.slot(offset))
    }

    fn completion(&self) -> Option<(u64, u64)> {
        match self.completion.load(Ordering::Acquire) {
            0 => None,
            c => Some(((c >> 32) - 1, c & 0xFFFF_FFFF)),
        }
    }

    fn complete(&self, record_count: u64, end_offset: u64) {
        let c = ((record_count + 1) << 32) | end_offset;
        let fresh = self
            .completion
            .compare_exchange(0, c, Ordering::AcqRel, Ordering::Acquire);
        assert!(fresh.is_ok(), "segment completed twice");
    }

    /// `Segment::publish_record`: the body through the cells, then the commit word.
    fn publish_record(&self, offset: u64, seq: u64, body_words: u64, publish: Ordering) {
        let s = self.slot(offset);
        for j in 0..body_words {
            // SAFETY: the reservation `offset..offset + model_frame_len(body_words)` belongs
            // to this writer alone and is unpublished (loom checks this claim).
            self.cells[s + 1 + j as usize].with_mut(|p| unsafe { *p = body_value(seq, j) });
        }
        self.words[s].store(record_word(body_words), publish);
    }

    /// `Segment::publish_end_marker`.
    fn publish_end_marker(&self, offset: u64) {
        if let Some(w) = self.word(offset) {
            w.store(frame::END_OF_SEGMENT_WORD, Ordering::Release);
        }
    }

    /// A reservation whose writer gives up (`Reservation` dropped uncommitted): with `pad`, it
    /// is published as padding (`Segment::publish_padding`); without, the broken twin, left
    /// unwritten. Returns the reservation's offset.
    fn abandon(&self, body_words: u64, pad: bool) -> u64 {
        let r = self.tail.reserve(1, model_frame_len(body_words));
        if pad {
            let lk = frame::len_kind(FrameKind::Padding, (body_words * WORD) as u32);
            self.words[self.slot(r.offset)].store(frame::commit_word(lk, 0x9AD), Ordering::Release);
        }
        r.offset
    }

    /// `Shared::reserve` for one frame (without the rollover), then the publish.
    fn append(&self, body_words: u64, publish: Ordering) -> Appended {
        self.append_as(body_words, publish, Broken::Nothing)
    }

    /// [`Region::append`], or one of its broken twins.
    fn append_as(&self, body_words: u64, publish: Ordering, broken: Broken) -> Appended {
        if self.completion().is_some() {
            return Appended::Rolled;
        }
        let bytes = model_frame_len(body_words);
        let r = if broken == Broken::RacyReserve {
            self.tail.reserve_racy(1, bytes)
        } else {
            self.tail.reserve(1, bytes)
        };
        if r.offset + bytes <= self.capacity {
            let seq = BASE_SEQ + r.count;
            self.publish_record(r.offset, seq, body_words, publish);
            return Appended::Record {
                seq,
                offset: r.offset,
                waiter: r.waiter,
            };
        }
        // Only the first reservation that does not fit starts at or before the capacity: it
        // alone seals. (The broken twin lets every one that does not fit seal.)
        if r.offset <= self.capacity || broken == Broken::SealEveryOverflow {
            self.publish_end_marker(r.offset);
            self.complete(r.count, r.offset);
            return Appended::Sealed {
                record_count: r.count,
                end_offset: r.offset,
            };
        }
        Appended::Void
    }

    /// Reads the frame at `offset` if its commit word is published: checks every body word
    /// against what the writer of `expected_seq` wrote and returns the frame's length.
    /// `Err(stop)` when there is no frame there.
    fn read_frame(&self, offset: u64, expected_seq: u64) -> Result<u64, Stop> {
        let Some(w) = self.word(offset) else {
            return Err(Stop::Full);
        };
        let word = w.load(Ordering::Acquire);
        match frame::decode_word(word) {
            Ok(Word::Unwritten) => Err(Stop::Unwritten),
            Ok(Word::EndOfSegment) => Err(Stop::EndMarker),
            Ok(Word::Frame {
                kind: FrameKind::Record,
                payload_len,
                ..
            }) => {
                let body_words = u64::from(payload_len) / WORD;
                let s = self.slot(offset);
                for j in 0..body_words {
                    // SAFETY: the commit word was loaded published (acquire), so the body is
                    // written and immutable; loom flags this read if it is not ordered after
                    // the writer's.
                    let v = self.cells[s + 1 + j as usize].with(|p| unsafe { *p });
                    assert_eq!(
                        v,
                        body_value(expected_seq, j),
                        "frame at {offset}, word {j}"
                    );
                }
                Ok(model_frame_len(body_words))
            }
            // An abandoned reservation: skipped, its body never read.
            Ok(Word::Frame {
                kind: FrameKind::Padding,
                payload_len,
                ..
            }) => Ok(model_frame_len(u64::from(payload_len) / WORD)),
            other => panic!("unexpected commit word {word:#x} at {offset}: {other:?}"),
        }
    }

    /// The reader: from the first frame, acquire loads, stop at the first zero word, the end
    /// marker or the capacity. Sequence numbers are dense by construction of `expected_seq`.
    fn scan(&self) -> Scan {
        let (mut offset, mut seq) = (START, BASE_SEQ);
        let mut offsets = Vec::new();
        loop {
            match self.read_frame(offset, seq) {
                Ok(len) => {
                    offsets.push(offset);
                    offset += len;
                    seq += 1;
                }
                Err(stop) => {
                    return Scan {
                        offsets,
                        end: offset,
                        stop,
                    };
                }
            }
        }
    }
}

/// What a model's executions went through, so that each test can check that loom explored the
/// interleavings it is about (a model that never reaches them would pass vacuously). Plain
/// `std` types: loom runs every modelled thread on one OS thread and does not track them.
#[derive(Default)]
struct Coverage {
    iterations: u64,
    events: BTreeSet<String>,
}

#[derive(Clone, Default)]
struct Cov(StdArc<StdMutex<Coverage>>);

impl Cov {
    fn iteration(&self) {
        self.0.lock().unwrap().iterations += 1;
    }

    fn note(&self, event: String) {
        self.0.lock().unwrap().events.insert(event);
    }

    /// Prints what was covered and asserts that every `expected` event happened.
    fn check(&self, name: &str, expected: &[&str]) {
        let c = self.0.lock().unwrap();
        eprintln!(
            "{name}: {} executions, covered {:?}",
            c.iterations, c.events
        );
        assert!(c.iterations > 1, "{name}: loom explored a single execution");
        for e in expected {
            assert!(
                c.events.contains(*e),
                "{name}: never reached {e:?}; covered {:?}",
                c.events
            );
        }
    }
}

/// Appenders with `bodies[i]` body words each race a reader on a segment of `capacity` bytes.
fn model_appends(bodies: &'static [u64], capacity: u64, publish: Ordering) -> Cov {
    model_appends_as(bodies, capacity, publish, Broken::Nothing)
}

/// [`model_appends`] with the writers' protocol broken as `broken` says.
fn model_appends_as(
    bodies: &'static [u64],
    capacity: u64,
    publish: Ordering,
    broken: Broken,
) -> Cov {
    let cov = Cov::default();
    let c = cov.clone();
    loom::model(move || {
        c.iteration();
        let region = Arc::new(Region::new(capacity));
        let writers: Vec<_> = bodies
            .iter()
            .map(|&b| {
                let r = Arc::clone(&region);
                thread::spawn(move || r.append_as(b, publish, broken))
            })
            .collect();
        let reader = {
            let r = Arc::clone(&region);
            let c = c.clone();
            thread::spawn(move || {
                let seen = r.scan();
                let frames = seen.offsets.len();
                // Seeing the end marker does not imply the completion is visible yet (it is
                // recorded after the marker), but when it is, they agree.
                match (seen.stop, r.completion()) {
                    (Stop::EndMarker, Some((count, end))) => {
                        assert_eq!(count, frames as u64, "frames before the end marker");
                        assert_eq!(end, seen.end, "end marker offset");
                        c.note(format!(
                            "reader: end marker after {frames}, completion visible"
                        ));
                    }
                    (stop, _) => c.note(format!("reader: {stop:?} after {frames}")),
                }
                seen
            })
        };
        let outcomes: Vec<Appended> = writers.into_iter().map(|h| h.join().unwrap()).collect();
        let seen = reader.join().unwrap();
        check_outcome(&region, &outcomes, &seen);
        for (i, o) in outcomes.iter().enumerate() {
            let what = match o {
                Appended::Record { .. } => "record".to_string(),
                Appended::Sealed { end_offset, .. } => format!("sealed at {end_offset}"),
                Appended::Void => "void".to_string(),
                Appended::Rolled => "rolled".to_string(),
            };
            c.note(format!("writer {i}: {what}"));
        }
    });
    cov
}

/// After every thread has finished: what the writers were told matches the segment's bytes.
fn check_outcome(region: &Region, outcomes: &[Appended], seen: &Scan) {
    let all = region.scan();
    // The reader saw a prefix of the final frames.
    assert!(
        all.offsets.starts_with(&seen.offsets),
        "reader saw {seen:?}, final {all:?}"
    );

    let mut records: Vec<(u64, u64)> = outcomes
        .iter()
        .filter_map(|o| match *o {
            Appended::Record { seq, offset, .. } => Some((seq, offset)),
            _ => None,
        })
        .collect();
    records.sort_unstable();
    // Dense sequence numbers from the base, in file order.
    let seqs: Vec<u64> = records.iter().map(|r| r.0).collect();
    let dense: Vec<u64> = (BASE_SEQ..BASE_SEQ + records.len() as u64).collect();
    assert_eq!(seqs, dense, "sequence numbers are not dense: {outcomes:?}");
    let offsets: Vec<u64> = records.iter().map(|r| r.1).collect();
    assert_eq!(offsets, all.offsets, "published frames: {outcomes:?}");

    let seals: Vec<(u64, u64)> = outcomes
        .iter()
        .filter_map(|o| match *o {
            Appended::Sealed {
                record_count,
                end_offset,
            } => Some((record_count, end_offset)),
            _ => None,
        })
        .collect();
    let late = outcomes
        .iter()
        .any(|o| matches!(o, Appended::Void | Appended::Rolled));
    match seals.as_slice() {
        [] => {
            assert!(
                !late,
                "a writer was turned away from an open segment: {outcomes:?}"
            );
            assert_eq!(region.completion(), None);
            assert!(matches!(all.stop, Stop::Unwritten | Stop::Full), "{all:?}");
        }
        &[(count, end)] => {
            assert_eq!(
                count,
                records.len() as u64,
                "sealed count vs frames: {outcomes:?}"
            );
            assert_eq!(end, all.end, "sealed end offset vs frames: {outcomes:?}");
            assert_eq!(region.completion(), Some((count, end)));
            let expected = if end + WORD <= region.capacity {
                Stop::EndMarker
            } else {
                Stop::Full
            };
            assert_eq!(all.stop, expected, "{all:?}");
        }
        _ => panic!("segment sealed more than once: {outcomes:?}"),
    }
    // Every reservation was counted in the tail word, including the sealing and void ones.
    let reserved = outcomes
        .iter()
        .filter(|o| !matches!(o, Appended::Rolled))
        .count() as u64;
    assert_eq!(region.tail.load().count, reserved);
}

/// Frames of 16 and 24 bytes (40 together) in room for 32: whichever writer reserves second
/// does not fit and seals; the end marker lands 16 or 24 bytes in, depending on the order.
const TWO_SIZES: &[u64] = &[1, 2];
const TWO_SIZES_CAPACITY: u64 = START + 32;

#[test]
fn loom_model_two_writers_publish_and_one_seals() {
    let cov = model_appends(TWO_SIZES, TWO_SIZES_CAPACITY, Ordering::Release);
    cov.check(
        "two writers, one seals",
        &[
            "writer 0: record",
            "writer 0: sealed at 152",
            "writer 1: record",
            "writer 1: sealed at 144",
            "reader: Unwritten after 0",
            "reader: Unwritten after 1",
            "reader: EndMarker after 1",
            "reader: end marker after 1, completion visible",
        ],
    );
}

/// The negative twin: publishing the commit word with `Relaxed` lets the reader see a frame
/// whose body it is not ordered after. Loom must catch it.
#[test]
#[should_panic(expected = "Causality violation")]
fn loom_model_relaxed_publish_is_caught() {
    model_appends(TWO_SIZES, TWO_SIZES_CAPACITY, Ordering::Relaxed);
}

/// Both frames fit exactly: no seal, the frames end at the capacity.
#[test]
fn loom_model_two_writers_fill_the_segment_exactly() {
    let cov = model_appends(&[1, 1], START + 32, Ordering::Release);
    cov.check(
        "two writers fill the segment",
        &["reader: Unwritten after 1", "reader: Full after 2"],
    );
}

/// Three writers, room for one frame and an end marker: one fits, the next seals, the third is
/// void or finds the segment complete already.
#[test]
fn loom_model_three_writers_seal_and_void() {
    let cov = model_appends(&[1, 1, 1], START + 24, Ordering::Release);
    let mut expected = vec!["reader: end marker after 1, completion visible"];
    expected.extend([
        "writer 0: void",
        "writer 1: rolled",
        "writer 2: sealed at 144",
    ]);
    cov.check("three writers, seal and void", &expected);
}

/// Three writers, room for two frames exactly: the third reservation starts at the capacity,
/// seals the segment there, and writes no end marker (there is no room for one).
#[test]
fn loom_model_three_writers_seal_at_capacity() {
    let cov = model_appends(&[1, 1, 1], START + 32, Ordering::Release);
    cov.check(
        "three writers, seal at capacity",
        &["writer 0: sealed at 160", "reader: Full after 2"],
    );
}

/// The waiter flag alone: a reader registers (`fetch_or`) while two writers reserve
/// (`fetch_add`), and a writer that sees the flag clears it (`fetch_and`).
#[test]
fn loom_model_waiter_flag_is_seen_by_the_next_reservation() {
    let cov = Cov::default();
    let c = cov.clone();
    loom::model(move || {
        c.iteration();
        let tail = Arc::new(Tail::new(0, START));
        let reader = {
            let t = Arc::clone(&tail);
            thread::spawn(move || t.register_waiter())
        };
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let t = Arc::clone(&tail);
                thread::spawn(move || {
                    let r = t.reserve(1, 24);
                    if r.waiter {
                        t.clear_waiter();
                    }
                    r
                })
            })
            .collect();
        let before: TailState = reader.join().unwrap();
        let rs: Vec<TailState> = writers.into_iter().map(|h| h.join().unwrap()).collect();
        for r in &rs {
            if r.count < before.count {
                assert!(
                    !r.waiter,
                    "{r:?} reserved before the reader registered ({before:?})"
                );
            }
            if r.count == before.count {
                // The reservation right after the registration sees it.
                assert!(r.waiter, "{r:?} missed the reader registered at {before:?}");
            }
        }
        if before.count == 0 {
            // The reader registered when nothing was reserved: the first writer saw it.
            assert!(
                rs.iter().any(|r| r.count == 0 && r.waiter),
                "{before:?} {rs:?}"
            );
        }
        // The flag survives only if nobody reserved after the registration.
        assert_eq!(tail.load().waiter, before.count == rs.len() as u64);
        let woken = rs.iter().filter(|r| r.waiter).count();
        c.note(format!(
            "registered after {}, {woken} writers saw it",
            before.count
        ));
    });
    cov.check(
        "waiter flag",
        &[
            "registered after 0, 1 writers saw it",
            "registered after 0, 2 writers saw it",
            "registered after 1, 1 writers saw it",
            "registered after 2, 0 writers saw it",
        ],
    );
}

/// A segment with the reader's condition variable (`Shared::tail_lock` / `tail_cv`).
struct Wakeup {
    region: Region,
    lock: Mutex<()>,
    cv: Condvar,
    clear_first: bool,
    cov: Cov,
}

impl Wakeup {
    /// `Shared::wake_readers`: clear the flag, then notify under the lock. With
    /// `clear_first == false`, the broken order: notify, then clear.
    fn wake_readers(&self) {
        if self.clear_first {
            self.region.tail.clear_waiter();
        }
        let guard = self.lock.lock().unwrap();
        self.cv.notify_all();
        drop(guard);
        if !self.clear_first {
            self.region.tail.clear_waiter();
        }
    }

    /// `Reader::next` / `Reader::wait` until `n` frames were read. Loom's `wait_timeout` never
    /// times out, so a lost wake-up is a deadlock that loom reports; the reader's 50 µs poll
    /// for an in-flight reservation is a `yield_now`.
    fn follow(&self, n: u64) {
        let (mut offset, mut seq) = (START, BASE_SEQ);
        while seq < BASE_SEQ + n {
            if let Ok(len) = self.region.read_frame(offset, seq) {
                offset += len;
                seq += 1;
                continue;
            }
            let guard = self.lock.lock().unwrap();
            let before = self.region.tail.register_waiter();
            if self.region.read_frame(offset, seq).is_ok() {
                continue;
            }
            if before.offset > offset {
                self.cov
                    .note("reader polled an in-flight reservation".into());
                drop(guard);
                thread::yield_now();
                continue;
            }
            self.cov
                .note(format!("reader slept before frame {}", seq - BASE_SEQ));
            drop(self.cv.wait(guard).unwrap());
        }
    }
}

/// Two writers, each waking readers when its reservation saw the waiter flag, and a reader
/// following the tail that sleeps whenever nothing is in flight. No wake-up may be lost.
fn model_wakeup(clear_first: bool) -> Cov {
    let cov = Cov::default();
    let c = cov.clone();
    loom::model(move || {
        c.iteration();
        // Not dropped while unwinding: when loom reports a deadlock from `join`, dropping a
        // loom object during the unwind panics again and aborts the test process.
        let w = ManuallyDrop::new(Arc::new(Wakeup {
            region: Region::new(START + 64),
            lock: Mutex::new(()),
            cv: Condvar::new(),
            clear_first,
            cov: c.clone(),
        }));
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let w = Arc::clone(&*w);
                thread::spawn(move || {
                    let a = w.region.append(1, Ordering::Release);
                    let Appended::Record { waiter, .. } = a else {
                        panic!("segment too small for the model: {a:?}");
                    };
                    if waiter {
                        w.cov.note("a writer woke the reader".into());
                        w.wake_readers();
                    }
                })
            })
            .collect();
        let reader = {
            let w = Arc::clone(&*w);
            thread::spawn(move || w.follow(2))
        };
        for h in writers {
            h.join().unwrap();
        }
        reader.join().unwrap();
        drop(ManuallyDrop::into_inner(w));
    });
    cov
}

#[test]
fn loom_model_reader_wakeup_is_never_lost() {
    model_wakeup(true).check(
        "reader wake-up",
        &[
            "a writer woke the reader",
            "reader polled an in-flight reservation",
            "reader slept before frame 0",
            "reader slept before frame 1",
        ],
    );
}

/// The negative twin: clearing the flag after the notification loses a registration made in
/// between, and the reader sleeps forever.
#[test]
#[should_panic(expected = "deadlock")]
fn loom_model_notify_before_clear_is_caught() {
    model_wakeup(false);
}

/// A futex as the kernel keeps it: `wait` sleeps only if the word still holds the expected
/// value, checked under the futex's own lock; `wake` takes that lock too. Loom's `wait` never
/// times out, so a lost wake-up is a deadlock loom reports.
struct Futex {
    word: loom::sync::atomic::AtomicU32,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Futex {
    fn wait(&self, expected: u32) -> bool {
        let guard = self.lock.lock().unwrap();
        if self.word.load(Ordering::SeqCst) != expected {
            return false;
        }
        drop(self.cv.wait(guard).unwrap());
        true
    }

    fn wake_all(&self) {
        let guard = self.lock.lock().unwrap();
        self.cv.notify_all();
        drop(guard);
    }
}

/// Group commit's hand-off (`FlushShared::wait_durable` / `wake_waiters`, transcribed): the
/// flusher stores the durable watermark, bumps the epoch, reads how many writers wait and
/// wakes them all with one futex wake; a writer counts itself in `waiting`, reads the epoch,
/// then the watermark, and sleeps on the epoch only if the watermark is short. With
/// `epoch_first == false`, the broken order: the watermark is read before the epoch.
///
/// The two reads that face each other (the writer's of `epoch`, the flusher's of `waiting`)
/// are read-modify-writes (`fetch_add(0)`), in the model as in the code: loom treats `SeqCst`
/// accesses as acquire/release, under which two plain loads could both miss the other side's
/// write, while read-modify-writes always see the latest value and carry the ordering.
struct GroupCommit {
    durable_next: AtomicU64,
    epoch: Futex,
    waiting: loom::sync::atomic::AtomicUsize,
    epoch_first: bool,
    cov: Cov,
}

impl GroupCommit {
    fn wait_durable(&self, next: u64) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        loop {
            let (epoch, durable) = if self.epoch_first {
                let e = self.epoch.word.fetch_add(0, Ordering::SeqCst);
                (e, self.durable_next.load(Ordering::SeqCst))
            } else {
                let d = self.durable_next.load(Ordering::SeqCst);
                (self.epoch.word.fetch_add(0, Ordering::SeqCst), d)
            };
            if durable >= next {
                break;
            }
            if self.epoch.wait(epoch) {
                self.cov.note(format!("a writer for {next} slept"));
            } else {
                self.cov.note("the epoch moved before the sleep".into());
            }
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// One flush: the watermark moves to `durable`, then the waiters are woken.
    fn flushed(&self, durable: u64) {
        self.durable_next.fetch_max(durable, Ordering::SeqCst);
        self.epoch.word.fetch_add(1, Ordering::SeqCst);
        if self.waiting.fetch_add(0, Ordering::SeqCst) > 0 {
            self.epoch.wake_all();
        } else {
            self.cov.note("a flush found nobody waiting".into());
        }
    }
}

/// Two writers wait for records 1 and 2 to be durable while the flusher makes them durable
/// in two flushes. Every writer must return.
fn model_group_commit(epoch_first: bool) -> Cov {
    let cov = Cov::default();
    let c = cov.clone();
    loom::model(move || {
        c.iteration();
        let g = ManuallyDrop::new(Arc::new(GroupCommit {
            durable_next: AtomicU64::new(0),
            epoch: Futex {
                word: loom::sync::atomic::AtomicU32::new(0),
                lock: Mutex::new(()),
                cv: Condvar::new(),
            },
            waiting: loom::sync::atomic::AtomicUsize::new(0),
            epoch_first,
            cov: c.clone(),
        }));
        let writers: Vec<_> = [1, 2]
            .into_iter()
            .map(|next| {
                // Not dropped while unwinding either (see above).
                let g = ManuallyDrop::new(Arc::clone(&*g));
                thread::spawn(move || {
                    g.wait_durable(next);
                    drop(ManuallyDrop::into_inner(g));
                })
            })
            .collect();
        g.flushed(1);
        g.flushed(2);
        for h in writers {
            h.join().unwrap();
        }
        drop(ManuallyDrop::into_inner(g));
    });
    cov
}

#[test]
fn loom_model_group_commit_wakes_every_writer() {
    model_group_commit(true).check(
        "group commit",
        &[
            "a writer for 1 slept",
            "a writer for 2 slept",
            "the epoch moved before the sleep",
            "a flush found nobody waiting",
        ],
    );
}

/// The negative twin: reading the watermark before the epoch lets a flush slip in between,
/// and the writer sleeps on an epoch that will never move again.
#[test]
#[should_panic(expected = "deadlock")]
fn loom_model_watermark_before_epoch_is_caught() {
    model_group_commit(false);
}

/// The durable watermark (`Shared::advance_committed`): the flusher advances it over published
/// commit words only, from the segment's start to the first unwritten one, then syncs what
/// it covers. The sync is modelled as reading every body word below the watermark: loom
/// reports a causality violation if a writer may still be writing one of them. With
/// `from_reservations`, the broken twin: the watermark is the tail's reservation count.
fn model_watermark(from_reservations: bool) -> Cov {
    let cov = Cov::default();
    let c = cov.clone();
    loom::model(move || {
        c.iteration();
        let region = Arc::new(Region::new(START + 64));
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let region = Arc::clone(&region);
                thread::spawn(move || region.append(1, Ordering::Release))
            })
            .collect();
        let offsets: Vec<u64> = if from_reservations {
            let reserved = region.tail.load().count;
            (0..reserved)
                .map(|i| START + i * model_frame_len(1))
                .collect()
        } else {
            region.scan().offsets
        };
        for (i, &offset) in offsets.iter().enumerate() {
            let s = region.slot(offset);
            // SAFETY: only reads; loom checks that the write of this word happened before.
            let v = region.cells[s + 1].with(|p| unsafe { *p });
            assert_eq!(v, body_value(BASE_SEQ + i as u64, 0), "synced a torn frame");
        }
        c.note(format!("the watermark covered {} frames", offsets.len()));
        for h in writers {
            h.join().unwrap();
        }
    });
    cov
}

#[test]
fn loom_model_durable_watermark_covers_only_published_frames() {
    model_watermark(false).check(
        "durable watermark",
        &[
            "the watermark covered 0 frames",
            "the watermark covered 1 frames",
            "the watermark covered 2 frames",
        ],
    );
}

/// The negative twin: a watermark taken from the reservations covers frames still being
/// written.
#[test]
#[should_panic(expected = "Causality violation")]
fn loom_model_watermark_from_reservations_is_caught() {
    model_watermark(true);
}

/// A reservation abandoned while another writer appends and a reader scans: the abandoned one
/// becomes padding, which readers skip, so the record after it is readable. With
/// `pad == false`, the broken twin: the abandoned reservation stays unwritten, a hole that
/// hides every record after it for good.
fn model_abandon(pad: bool) -> Cov {
    let cov = Cov::default();
    let c = cov.clone();
    loom::model(move || {
        c.iteration();
        let region = Arc::new(Region::new(START + 64));
        let quitter = {
            let region = Arc::clone(&region);
            thread::spawn(move || region.abandon(1, pad))
        };
        let writer = {
            let region = Arc::clone(&region);
            thread::spawn(move || region.append(1, Ordering::Release))
        };
        let during = region.scan();
        let abandoned_at = quitter.join().unwrap();
        let appended = writer.join().unwrap();
        let after = region.scan();
        let Appended::Record { offset, .. } = appended else {
            panic!("segment too small for the model: {appended:?}");
        };
        c.note(format!(
            "abandoned {} the record, reader saw {} frames while they ran",
            if abandoned_at < offset {
                "before"
            } else {
                "after"
            },
            during.offsets.len()
        ));
        assert!(
            after.offsets.contains(&offset),
            "the record after an abandoned reservation is unreachable: {after:?}"
        );
    });
    cov
}

#[test]
fn loom_model_abandoned_reservation_is_skipped() {
    model_abandon(true).check(
        "abandoned reservation",
        &[
            "abandoned before the record, reader saw 0 frames while they ran",
            "abandoned before the record, reader saw 2 frames while they ran",
            "abandoned after the record, reader saw 1 frames while they ran",
        ],
    );
}

/// The negative twin: an abandoned reservation left unwritten.
#[test]
#[should_panic(expected = "unreachable")]
fn loom_model_abandon_without_padding_is_caught() {
    model_abandon(false);
}

/// The negative twin of reservation: a load and a store instead of one read-modify-write hands
/// two writers the same bytes, and they write them at once.
#[test]
#[should_panic(expected = "Causality violation")]
fn loom_model_racy_reservation_is_caught() {
    model_appends_as(&[1, 1], START + 64, Ordering::Release, Broken::RacyReserve);
}

/// The negative twin of sealing: when every reservation that does not fit seals, a segment is
/// completed twice (two seals, two answers to "where does it end").
#[test]
#[should_panic(expected = "completed twice")]
fn loom_model_sealing_by_every_overflow_is_caught() {
    model_appends_as(
        &[1, 1, 1],
        START + 24,
        Ordering::Release,
        Broken::SealEveryOverflow,
    );
}
