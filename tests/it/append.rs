//! Appends, batches, reservations, readers and rollover through the public API.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use mmlog::{Durability, Error, Log, Options, Timestamps};

use crate::support::{open, payload, read_all};

#[test]
fn contract_example() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap();
    let seq: u64 = log.append(b"payload").unwrap();
    assert_eq!(seq, 0);
    let first: u64 = log
        .append_batch(&[b"a".as_slice(), b"b".as_slice()])
        .unwrap();
    assert_eq!(first, 1);
    log.sync().unwrap();
    assert_eq!(log.last_seq(), Some(2));
    assert_eq!(log.durable_seq(), Some(2));
    let mut reader = log.read_from(seq).unwrap();
    let mut seen = Vec::new();
    while let Some(rec) = reader.next() {
        let rec = rec.unwrap();
        assert!(rec.timestamp() <= SystemTime::now());
        seen.push((rec.seq(), rec.payload().to_vec()));
    }
    assert_eq!(
        seen,
        vec![
            (0, b"payload".to_vec()),
            (1, b"a".to_vec()),
            (2, b"b".to_vec())
        ]
    );
    // Not a snapshot: records appended later show up in the same reader.
    log.append(b"later").unwrap();
    assert_eq!(reader.next().unwrap().unwrap().payload(), b"later");
    assert!(reader.next().is_none());
}

#[test]
fn empty_log_has_no_last_seq_and_reopens_at_the_same_place() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), Options::default());
        assert_eq!(log.last_seq(), None);
        assert!(log.recovery_report().created);
    }
    let log = open(dir.path(), Options::default());
    assert_eq!(log.last_seq(), None);
    assert_eq!(log.append(b"x").unwrap(), 0);
}

#[test]
fn sequence_numbers_continue_across_restarts_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || {
        Options::default()
            .segment_size(4096)
            .durability(Durability::Buffered)
    };
    let mut expected = Vec::new();
    for round in 0..5 {
        let log = open(dir.path(), opts());
        for i in 0..100 {
            let p = payload(round, i, 1 + (i * 13) % 200);
            let seq = log.append(&p).unwrap();
            assert_eq!(seq, expected.len() as u64);
            expected.push((seq, p));
        }
        assert_eq!(read_all(&log), expected);
        log.close().unwrap();
    }
    let log = open(dir.path(), opts());
    assert!(
        log.recovery_report().is_clean(),
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(read_all(&log), expected);
    assert!(log.stats().segments > 10);
}

#[test]
fn record_too_large_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Options::default().segment_size(4096));
    let max = Options::payload_len_max(4096) as usize;
    assert_eq!(max, 4096 - 128 - 24);
    assert!(log.append(&vec![7u8; max]).is_ok());
    match log.append(&vec![7u8; max + 1]) {
        Err(Error::RecordTooLarge { len, max: m }) => {
            assert_eq!((len, m), (max as u64 + 1, max as u64))
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    let big = vec![1u8; 1500];
    assert!(matches!(
        log.append_batch(&[&big, &big, &big]),
        Err(Error::RecordTooLarge { .. })
    ));
    assert!(matches!(
        log.append_batch(&[]),
        Err(Error::InvalidArgument { .. })
    ));
    // The log still works.
    assert_eq!(log.append(b"ok").unwrap(), 1);
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for size in [0, 1000, 4095, 4097, 2 << 30] {
        assert!(matches!(
            Log::open(dir.path(), Options::default().segment_size(size)),
            Err(Error::InvalidArgument { .. })
        ));
    }
    assert!(Log::open(dir.path(), Options::default().segment_size(1 << 20)).is_ok());
}

#[test]
fn second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Options::default());
    match Log::open(dir.path(), Options::default()) {
        Err(Error::Locked { owner_pid, .. }) => assert_eq!(owner_pid, Some(std::process::id())),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(log);
    assert!(Log::open(dir.path(), Options::default()).is_ok());
}

#[test]
fn a_directory_that_is_not_a_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    assert!(matches!(
        Log::open(dir.path(), Options::default()),
        Err(Error::NotALog { .. })
    ));
    let file = dir.path().join("notes.txt");
    assert!(matches!(
        Log::open(&file, Options::default()),
        Err(Error::NotALog { .. })
    ));
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
}

#[test]
fn concurrent_writers_with_readers_alongside() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        Options::default()
            .segment_size(1 << 20)
            .durability(Durability::Buffered),
    );
    let done = AtomicBool::new(false);
    let seqs = std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut r = log.read_from(0).unwrap();
                    let mut next = 0u64;
                    loop {
                        let finished = done.load(Ordering::Acquire);
                        while let Some(rec) = r.next() {
                            let rec = rec.unwrap();
                            assert_eq!(rec.seq(), next, "reader saw a gap or reordering");
                            let text = std::str::from_utf8(rec.payload()).unwrap();
                            assert!(text.starts_with('w'), "torn record {text:?}");
                            next += 1;
                        }
                        if finished {
                            return next;
                        }
                        r.wait(Duration::from_millis(5));
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let log = &log;
                s.spawn(move || {
                    (0..PER_WRITER)
                        .map(|i| (log.append(&payload(w, i, 8 + (i % 50))).unwrap(), w, i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let seqs: Vec<_> = writers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        done.store(true, Ordering::Release);
        for r in readers {
            assert_eq!(r.join().unwrap(), (WRITERS * PER_WRITER) as u64);
        }
        seqs
    });
    let unique: HashSet<u64> = seqs.iter().map(|s| s.0).collect();
    assert_eq!(unique.len(), WRITERS * PER_WRITER);
    assert_eq!(
        *unique.iter().max().unwrap(),
        (WRITERS * PER_WRITER - 1) as u64
    );
    let all = read_all(&log);
    for &(seq, w, i) in &seqs {
        assert_eq!(all[seq as usize].1, payload(w, i, 8 + (i % 50)));
    }
}

#[test]
fn tiny_segments_roll_over_densely_under_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        Options::default()
            .segment_size(4096)
            .durability(Durability::Buffered),
    );
    let seqs: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|w| {
                let log = &log;
                s.spawn(move || {
                    (0..2000)
                        .map(|i| log.append(&payload(w, i, 1 + i % 300)).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..8000).collect::<Vec<_>>());
    let all = read_all(&log);
    assert_eq!(all.len(), 8000);
    assert!(log.stats().segments > 100, "{:?}", log.stats());
    log.close().unwrap();
    let log = open(dir.path(), Options::default().segment_size(4096));
    assert_eq!(read_all(&log), all);
}

#[test]
fn immediate_durability_acknowledges_after_msync() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        Options::default().durability(Durability::Immediate),
    );
    std::thread::scope(|s| {
        for w in 0..8 {
            let log = &log;
            s.spawn(move || {
                for i in 0..50 {
                    let seq = log.append(&payload(w, i, 32)).unwrap();
                    assert!(log.durable_seq().is_some_and(|d| d >= seq));
                }
            });
        }
    });
    let stats = log.stats();
    assert_eq!(stats.durable_next, 400);
    assert!(stats.msync_count <= 400, "{stats:?}");
}

#[test]
fn periodic_durability_flushes_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        Options::default().durability(Durability::Periodic(Duration::from_millis(5))),
    );
    log.append(b"x").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while log.durable_seq().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(log.durable_seq(), Some(0));
}

#[test]
fn read_from_the_middle_and_from_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        Options::default().segment_size(4096).index_interval(4),
    );
    for i in 0..1000u32 {
        log.append(&i.to_le_bytes()).unwrap();
    }
    for start in [0u64, 1, 3, 4, 5, 63, 64, 500, 999] {
        let mut r = log.read_from(start).unwrap();
        let rec = r.next().unwrap().unwrap();
        assert_eq!(rec.seq(), start);
        assert_eq!(rec.payload(), &(start as u32).to_le_bytes());
    }
    let mut r = log.read_from(1002).unwrap();
    assert!(r.next().is_none());
    log.append(b"1000").unwrap();
    log.append(b"1001").unwrap();
    assert!(r.next().is_none());
    log.append(b"1002").unwrap();
    assert_eq!(r.next().unwrap().unwrap().seq(), 1002);
}

#[test]
fn seek_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        Options::default()
            .segment_size(4096)
            .index_interval(2)
            .timestamps(Timestamps::Precise),
    );
    let mut marks = Vec::new();
    for i in 0..300u32 {
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(2));
            marks.push((SystemTime::now(), u64::from(i)));
        }
        log.append(&i.to_le_bytes()).unwrap();
    }
    let check = |log: &Log| {
        for &(t, seq) in &marks {
            let mut r = log.read_from_time(t).unwrap();
            let rec = r.next().unwrap().unwrap();
            assert_eq!(rec.seq(), seq);
            assert!(rec.timestamp() >= t);
        }
    };
    check(&log);
    // Again after a reopen, where old segments are found through their seals.
    log.close().unwrap();
    let log = open(
        dir.path(),
        Options::default().segment_size(4096).index_interval(2),
    );
    check(&log);
    let mut r = log
        .read_from_time(SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    assert!(r.next().is_none());
    let mut r = log.read_from_time(SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(r.next().unwrap().unwrap().seq(), 0);
}

#[test]
fn a_reader_wakes_when_a_record_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Options::default().segment_size(4096));
    let mut r = log.read_from(0).unwrap();
    assert!(!r.wait(Duration::from_millis(10)));
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..200u32 {
                std::thread::sleep(Duration::from_micros(200));
                log.append(&i.to_le_bytes()).unwrap();
            }
        });
        for i in 0..200u32 {
            let rec = r.next_timeout(Duration::from_secs(10));
            let rec = match rec {
                Some(rec) => rec.unwrap(),
                None => r.next_timeout(Duration::from_secs(10)).unwrap().unwrap(),
            };
            assert_eq!(rec.payload(), &i.to_le_bytes());
        }
    });
}

#[test]
fn an_abandoned_reservation_becomes_padding_and_never_wedges_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        Options::default().durability(Durability::Buffered),
    );
    log.append(b"before").unwrap();
    let panicked = std::thread::scope(|s| {
        s.spawn(|| {
            let mut r = log.reserve(16).unwrap();
            r.payload_mut()[..4].copy_from_slice(b"half");
            panic!("writer dies mid-record");
        })
        .join()
    });
    assert!(panicked.is_err());
    log.append(b"after").unwrap();
    let mut r = log.reserve(3).unwrap();
    r.payload_mut().copy_from_slice(b"zc!");
    assert_eq!(r.commit().unwrap(), 3);
    log.sync().unwrap();
    let all = read_all(&log);
    assert_eq!(
        all,
        vec![
            (0, b"before".to_vec()),
            (2, b"after".to_vec()),
            (3, b"zc!".to_vec())
        ]
    );
    assert_eq!(log.last_seq(), Some(3));
    log.close().unwrap();
    let log = open(dir.path(), Options::default());
    assert!(log.recovery_report().is_clean());
    assert_eq!(read_all(&log).len(), 3);
}

/// Pages of `file` in the page cache, from `mincore` over a read-only mapping of it.
fn resident_pages(file: &std::fs::File) -> usize {
    // SAFETY: the mapping is only handed to `mincore`; its bytes are never read.
    let map = unsafe { memmap2::Mmap::map(file) }.unwrap();
    let pages = map.len().div_ceil(4096);
    let mut vec = vec![0u8; pages];
    // SAFETY: `map` is a live mapping of `map.len()` bytes and `vec` has one byte per page.
    let rc = unsafe {
        libc::mincore(
            map.as_ptr() as *mut libc::c_void,
            map.len(),
            vec.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().filter(|&&b| b & 1 != 0).count()
}

/// Polls `f` until it holds or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn pages_are_faulted_in_ahead_of_the_writers_not_the_whole_segment() {
    // A large segment filled slowly must not have all of its pages faulted in (and marked
    // dirty, to be written back as zeros), only a window ahead of the writers. The kernel's
    // read-around also brings clean zero pages into the page cache around each fault (up to
    // the device's `read_ahead_kb`), so the bounds below leave room for that.
    const MIB: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default().segment_size(256 << 20)).unwrap();
    log.append(b"first").unwrap();
    let seg = std::fs::File::open(dir.path().join("segments/00000000000000000000.seg")).unwrap();
    // Let the preparing thread do what it will (it also prepares the next segment).
    std::thread::sleep(Duration::from_millis(500));
    let early = resident_pages(&seg) * 4096;
    assert!(
        early <= 64 * MIB,
        "{} MiB resident after one append",
        early / MIB
    );
    // Writers that move on get the pages ahead of them.
    let record = vec![7u8; 4000];
    for _ in 0..96 * MIB / 4096 {
        log.append(&record).unwrap();
    }
    let wanted = 96 * MIB + 8 * MIB;
    assert!(
        eventually(Duration::from_secs(10), || resident_pages(&seg) * 4096
            >= wanted),
        "only {} MiB resident after 96 MiB of appends",
        resident_pages(&seg) * 4096 / MIB
    );
    std::thread::sleep(Duration::from_millis(300));
    let later = resident_pages(&seg) * 4096;
    assert!(
        later <= 96 * MIB + 64 * MIB,
        "{} MiB resident after 96 MiB of appends",
        later / MIB
    );
    log.close().unwrap();
}

#[test]
fn every_payload_length_up_to_300_bytes_reads_back_intact() {
    // Every frame length and alignment of the small-record path (and a few large ones), through
    // `append`, `append_batch` and a reopen, which checks every frame's CRC again.
    let dir = tempfile::tempdir().unwrap();
    let lens: Vec<usize> = (0..=300).chain([1000, 4096, 70_000]).collect();
    let body = |len: usize| -> Vec<u8> { (0..len).map(|i| (i * 31 + len) as u8).collect() };
    {
        let log = Log::open(dir.path(), Options::default()).unwrap();
        for &len in &lens {
            log.append(&body(len)).unwrap();
        }
        let bodies: Vec<Vec<u8>> = lens.iter().map(|&l| body(l)).collect();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        log.append_batch(&refs).unwrap();
        log.close().unwrap();
    }
    let log = Log::open(dir.path(), Options::default()).unwrap();
    assert!(log.recovery_report().truncation.is_none());
    let all = read_all(&log);
    assert_eq!(all.len(), 2 * lens.len());
    for (i, (seq, payload)) in all.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        assert_eq!(payload, &body(lens[i % lens.len()]), "record {i}");
    }
}

#[test]
fn one_flush_releases_every_writer_it_made_durable() {
    // Writers waiting for the same flush must all be released by it. Each thread appends
    // once, so no later flush comes along to release a writer the first one forgot: a lost
    // wake-up shows up as a thread that never returns (caught by the deadline, not a hang).
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let log = std::sync::Arc::new(
            Log::open(
                dir.path(),
                Options::default().durability(Durability::Immediate),
            )
            .unwrap(),
        );
        let writers = 8;
        let start = std::sync::Arc::new(std::sync::Barrier::new(writers));
        let (done, finished) = std::sync::mpsc::channel();
        for w in 0..writers {
            let (log, start, done) = (log.clone(), start.clone(), done.clone());
            std::thread::spawn(move || {
                start.wait();
                let seq = log.append(&payload(w, 0, 32)).unwrap();
                let _ = done.send(seq);
            });
        }
        let mut seqs = HashSet::new();
        for _ in 0..writers {
            let seq = finished
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("round {round}: a writer was never released"));
            assert!(seqs.insert(seq));
            assert!(log.durable_seq() >= Some(seq));
        }
    }
}

/// Disk bytes allocated to `path` (`st_blocks` counts 512-byte units).
fn allocated(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_clean_close_drops_the_tails_unused_pages_and_keeps_them_allocated() {
    // A fast writer gets segments whose zeros were written ahead into the page cache; a clean
    // close must drop those past the last frame (else the next open writes them to disk) and
    // leave the space allocated, so the next owner can write there without SIGBUS.
    let dir = tempfile::tempdir().unwrap();
    let size: u64 = 8 << 20;
    let log = Log::open(dir.path(), Options::default().segment_size(size)).unwrap();
    let record = vec![3u8; 4000];
    // About four and a half segments, quickly: the later ones are prepared filled.
    for _ in 0..(9 * size / 2) / 4096 {
        log.append(&record).unwrap();
    }
    log.close().unwrap();
    // The newest segment file left (the close removed the unused spare).
    let tail = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .unwrap();
    let file = std::fs::File::open(&tail).unwrap();
    let resident = resident_pages(&file) as u64 * 4096;
    // Half of the tail holds frames; none of the rest should stay in the page cache.
    assert!(
        resident <= size / 2 + (1 << 20),
        "{resident} bytes of the tail resident after close"
    );
    assert!(allocated(&tail) >= size, "the tail lost its allocation");
    // The next owner appends on, and everything reads back.
    let log = Log::open(dir.path(), Options::default().segment_size(size)).unwrap();
    let before = log.last_seq().unwrap();
    log.append(b"after the reopen").unwrap();
    assert_eq!(read_all(&log).len() as u64, before + 2);
}

#[test]
fn a_tail_with_holes_is_allocated_again_at_open() {
    // A log copied sparse (or cut short of its allocation) has holes in its tail segment,
    // which the owner writes through a mapping: the open must give them disk space back.
    let dir = tempfile::tempdir().unwrap();
    let size: u64 = 8 << 20;
    {
        let log = Log::open(dir.path(), Options::default().segment_size(size)).unwrap();
        log.append(b"one record").unwrap();
        log.close().unwrap();
    }
    let tail = dir.path().join("segments/00000000000000000000.seg");
    {
        let f = std::fs::OpenOptions::new().write(true).open(&tail).unwrap();
        let punch = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        rustix::fs::fallocate(&f, punch, 1 << 20, size - (1 << 20)).unwrap();
    }
    assert!(allocated(&tail) < size, "the hole was not punched");
    let log = Log::open(dir.path(), Options::default().segment_size(size)).unwrap();
    assert!(allocated(&tail) >= size, "the open left the hole");
    log.append(b"two").unwrap();
    assert_eq!(read_all(&log).len(), 2);
}
