//! Compaction, retention, consumers and the archive through the public API.

use std::time::{Duration, SystemTime};

use mmlog::{ArchiveMode, Error, HeldBy, Log, Options, Retention};

use crate::support::open;

fn small(retention: Retention) -> Options {
    Options::default().segment_size(4096).retention(retention)
}

fn append_n(log: &Log, n: u64) {
    for _ in 0..n {
        let next = log.last_seq().map_or(0, |s| s + 1);
        log.append(&next.to_le_bytes()).unwrap();
    }
}

/// Reads from `from` to the end and checks every payload names its own sequence number.
fn read_checked(log: &Log, from: u64) -> u64 {
    let mut r = log.read_from(from).unwrap();
    let mut n = 0;
    while let Some(rec) = r.next() {
        let rec = rec.unwrap();
        assert_eq!(rec.seq(), from + n);
        assert_eq!(rec.payload(), &rec.seq().to_le_bytes());
        n += 1;
    }
    n
}

fn live_segment_files(log: &Log) -> usize {
    std::fs::read_dir(log.path().join("segments"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count()
}

#[test]
fn contract_after_compact_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || small(Retention::default());
    {
        let log = open(dir.path(), opts());
        append_n(&log, 2000);
        log.checkpoint(1500, b"state bytes").unwrap();
        append_n(&log, 100);
        let report = log.compact().unwrap();
        assert!(report.segments_removed > 5, "{report:?}");
        assert_eq!(report.held_by, Some(HeldBy::Checkpoint));
        assert!(report.first_seq <= 1501);
        let cp = log.latest_checkpoint().unwrap().unwrap();
        assert_eq!((cp.seq(), cp.data()), (1500, &b"state bytes"[..]));
        assert_eq!(read_checked(&log, 1501), 599);
        // Records before the live log are gone (deleted by default).
        assert!(matches!(
            log.read_from(0),
            Err(Error::InvalidArgument { .. })
        ));
        assert_eq!(log.stats().first_seq, report.first_seq);
    }
    let log = open(dir.path(), opts());
    assert!(
        log.recovery_report().is_clean(),
        "{:?}",
        log.recovery_report()
    );
    let cp = log.latest_checkpoint().unwrap().unwrap();
    assert_eq!((cp.seq(), cp.data()), (1500, &b"state bytes"[..]));
    assert_eq!(read_checked(&log, 1501), 599);
    let (cp, mut reader) = log.read_from_checkpoint().unwrap();
    assert_eq!(cp.unwrap().seq(), 1500);
    assert_eq!(reader.next().unwrap().unwrap().seq(), 1501);
    append_n(&log, 10);
    assert_eq!(log.last_seq(), Some(2109));
}

#[test]
fn without_a_checkpoint_nothing_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(Retention::default().keep_records(10)));
    append_n(&log, 1000);
    let report = log.compact().unwrap();
    assert_eq!(report.segments_removed, 0);
    assert_eq!(report.held_by, Some(HeldBy::Checkpoint));
    assert_eq!(read_checked(&log, 0), 1000);
}

#[test]
fn keep_records_keeps_at_least_that_many() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        small(
            Retention::default()
                .keep_records(300)
                .require_checkpoint(false),
        ),
    );
    append_n(&log, 2000);
    let report = log.compact().unwrap();
    assert!(report.segments_removed > 0);
    assert_eq!(report.held_by, Some(HeldBy::Retention));
    let first = log.stats().first_seq;
    assert!(first <= 1700, "kept fewer than 300 records: first {first}");
    // ...and not much more: less than one segment beyond.
    assert!(first + 300 + 130 > 2000, "kept too much: first {first}");
    assert_eq!(read_checked(&log, first), 2000 - first);
}

#[test]
fn keep_bytes_bounds_the_live_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        small(
            Retention::default()
                .keep_bytes(5 * 4096)
                .require_checkpoint(false),
        ),
    );
    append_n(&log, 3000);
    log.compact().unwrap();
    let segs = log.stats().segments;
    assert!((5..=6).contains(&segs), "{segs} live segments");
    // Spare included, the live files stay within the bound plus two segments.
    assert!(live_segment_files(&log) <= 5 + 2);
}

#[test]
fn keep_age_keeps_recent_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        small(
            Retention::default()
                .keep_age(Duration::from_millis(1500))
                .require_checkpoint(false),
        ),
    );
    append_n(&log, 1000);
    assert_eq!(log.compact().unwrap().segments_removed, 0);
    std::thread::sleep(Duration::from_millis(1700));
    let recent = log.last_seq().unwrap() + 1;
    append_n(&log, 1000);
    let report = log.compact().unwrap();
    assert!(report.segments_removed > 0);
    assert!(log.stats().first_seq <= recent);
    assert_eq!(read_checked(&log, recent), 1000);
}

#[test]
fn rules_combine_the_most_generous_wins() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        small(
            Retention::default()
                .keep_records(100)
                .keep_bytes(12 * 4096)
                .require_checkpoint(false),
        ),
    );
    append_n(&log, 3000);
    log.compact().unwrap();
    // keep_bytes keeps far more than 100 records.
    assert!(log.stats().segments >= 12);
}

#[test]
fn consumers_hold_records_until_they_commit() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || small(Retention::default().require_checkpoint(false));
    {
        let log = open(dir.path(), opts());
        append_n(&log, 1000);
        assert_eq!(log.register_consumer("billing", 200).unwrap(), 200);
        // Registering again keeps the stored position.
        assert_eq!(log.register_consumer("billing", 900).unwrap(), 200);
        let report = log.compact().unwrap();
        assert_eq!(report.held_by, Some(HeldBy::Consumer("billing".into())));
        assert!(log.stats().first_seq <= 200);
        assert_eq!(read_checked(&log, 200), 800);
        log.commit_consumer("billing", 700).unwrap();
    }
    // The position survives a reopen, and keeps holding.
    let log = open(dir.path(), opts());
    assert_eq!(log.consumer_position("billing"), Some(700));
    assert_eq!(log.consumers(), vec![("billing".to_string(), 700)]);
    log.compact().unwrap();
    let first = log.stats().first_seq;
    assert!(first > 200 && first <= 700, "first {first}");
    // A position before what the log keeps, or after its end, is refused.
    assert!(log.commit_consumer("billing", 0).is_err());
    assert!(log.commit_consumer("billing", 5000).is_err());
    assert!(log.register_consumer("late", 0).is_err());
    assert!(log.register_consumer("bad/name", 900).is_err());
    assert!(log.commit_consumer("nobody", 900).is_err());
    assert!(log.remove_consumer("billing").unwrap());
    assert!(!log.remove_consumer("billing").unwrap());
    let report = log.compact().unwrap();
    assert_eq!(report.held_by, Some(HeldBy::Unsealed));
    assert_eq!(log.stats().segments, 1);
}

#[test]
fn an_open_reader_survives_compaction_of_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(Retention::default()));
    append_n(&log, 1000);
    let mut reader = log.read_from(0).unwrap();
    // Into the first segment, holding a record.
    for _ in 0..10 {
        reader.next().unwrap().unwrap();
    }
    let held = reader.next().unwrap().unwrap().payload().to_vec();
    // Cover the first segment only.
    log.checkpoint(110, b"s").unwrap();
    let report = log.compact().unwrap();
    assert_eq!(
        report.segments_removed, 0,
        "the first segment ends after 110"
    );
    log.checkpoint(200, b"s").unwrap();
    let report = log.compact().unwrap();
    assert_eq!(report.segments_removed, 1);
    assert!(
        !dir.path()
            .join("segments/00000000000000000000.seg")
            .exists()
    );
    assert_eq!(held, 10u64.to_le_bytes());
    // The reader goes on through the deleted segment and into the live ones.
    let mut next = 11;
    while let Some(rec) = reader.next() {
        let rec = rec.unwrap();
        assert_eq!(rec.seq(), next);
        assert_eq!(rec.payload(), &next.to_le_bytes());
        next += 1;
    }
    assert_eq!(next, 1000);
}

#[test]
fn a_reader_that_falls_behind_deleted_segments_gets_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small(Retention::default()));
    append_n(&log, 1000);
    let mut reader = log.read_from(0).unwrap();
    log.checkpoint(900, b"s").unwrap();
    assert!(log.compact().unwrap().segments_removed >= 3);
    let mut seen = 0;
    let err = loop {
        match reader.next() {
            Some(Ok(_)) => seen += 1,
            Some(Err(e)) => break e,
            None => panic!("silent end after {seen} records"),
        }
    };
    assert!(seen > 100, "read its own segment first");
    assert!(err.to_string().contains("compacted"), "{err}");
}

#[test]
fn archived_segments_stay_readable() {
    for mode in [ArchiveMode::Move, ArchiveMode::Compress] {
        let dir = tempfile::tempdir().unwrap();
        let opts = || small(Retention::default().archive(mode));
        let before;
        {
            let log = open(dir.path(), opts());
            append_n(&log, 700);
            std::thread::sleep(Duration::from_millis(30));
            before = SystemTime::now();
            std::thread::sleep(Duration::from_millis(30));
            append_n(&log, 1300);
            log.checkpoint(1800, b"s").unwrap();
            let mut held = log.read_from(5).unwrap();
            let report = log.compact().unwrap();
            assert!(report.segments_archived > 10, "{mode:?}: {report:?}");
            assert_eq!(report.segments_archived, report.segments_removed);
            assert!(log.stats().first_seq > 1000);
            // Through the same reader API, across archive and live segments.
            assert_eq!(read_checked(&log, 0), 2000, "{mode:?}");
            assert_eq!(read_checked(&log, 333), 1667, "{mode:?}");
            assert_eq!(held.next().unwrap().unwrap().seq(), 5);
            // Time travel into the archive.
            let mut r = log.read_from_time(before).unwrap();
            assert_eq!(r.next().unwrap().unwrap().seq(), 700, "{mode:?}");
            let (archived, damaged) = log.archived_segments().unwrap();
            assert!(damaged.is_empty());
            assert_eq!(archived.len(), report.segments_archived);
            assert_eq!(archived[0].base_seq, 0);
            assert!(
                archived
                    .iter()
                    .all(|a| a.compressed == (mode == ArchiveMode::Compress))
            );
            for w in archived.windows(2) {
                assert_eq!(w[0].end_seq(), w[1].base_seq);
            }
            let usage = log.disk_usage();
            assert!(usage.archive > 0);
            if mode == ArchiveMode::Compress {
                assert!(usage.archive < report.bytes_removed, "{usage:?} {report:?}");
            }
        }
        let log = open(dir.path(), opts());
        assert!(
            log.recovery_report().is_clean(),
            "{:?}",
            log.recovery_report()
        );
        assert_eq!(read_checked(&log, 0), 2000, "{mode:?} after reopen");
        assert_eq!(read_checked(&log, 1234), 766, "{mode:?} after reopen");
    }
}

#[test]
fn background_compaction_runs_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        small(
            Retention::default()
                .keep_records(200)
                .require_checkpoint(false)
                .every(Duration::from_millis(20)),
        ),
    );
    append_n(&log, 3000);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // Segments leave during a run; the run is counted when it ends.
    while log.stats().segments_compacted == 0 || log.stats().background_compactions == 0 {
        assert!(std::time::Instant::now() < deadline, "{:?}", log.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = log.stats();
    assert!(stats.background_compactions > 0);
    assert_eq!(stats.background_compaction_error, None);
    let first = log.stats().first_seq;
    assert_eq!(read_checked(&log, first), 3000 - first);
}

#[test]
fn compaction_while_writers_and_readers_run() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        small(
            Retention::default()
                .keep_records(500)
                .require_checkpoint(false)
                .archive(ArchiveMode::Move),
        ),
    );
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..20_000u64 {
                log.append(&i.to_le_bytes()).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Release);
        });
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                log.compact().unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        // A reader following the tail from the start never misses a record: what leaves
        // the live log is in the archive.
        s.spawn(|| {
            let mut r = log.read_from(0).unwrap();
            let mut next = 0u64;
            while next < 20_000 {
                match r.next() {
                    Some(rec) => {
                        let rec = rec.unwrap();
                        assert_eq!(rec.seq(), next);
                        next += 1;
                    }
                    None => {
                        r.wait(Duration::from_millis(10));
                    }
                }
            }
        });
    });
    // However the compactions interleaved with the writer, one more leaves 500 records.
    log.compact().unwrap();
    assert!(log.stats().segments_compacted > 10, "{:?}", log.stats());
}

#[test]
fn the_archive_can_be_verified_and_damage_is_named() {
    for mode in [ArchiveMode::Move, ArchiveMode::Compress] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), small(Retention::default().archive(mode)));
        append_n(&log, 2000);
        log.checkpoint(1500, b"s").unwrap();
        let removed = log.compact().unwrap().segments_archived;
        let check = log.verify_archive().unwrap();
        assert!(check.is_clean(), "{mode:?}: {check:?}");
        assert_eq!(check.segments, removed);
        assert_eq!(check.records, log.stats().first_seq);

        // Damage one byte in the middle of the third archived segment's file.
        let (archived, _) = log.archived_segments().unwrap();
        let victim = &archived[2];
        let mut bytes = std::fs::read(&victim.path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        std::fs::write(&victim.path, &bytes).unwrap();
        let check = log.verify_archive().unwrap();
        assert_eq!(check.problems.len(), 1, "{mode:?}: {check:?}");
        let name = victim
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(check.problems[0].path, victim.path, "{check:?}");
        assert!(check.problems[0].message.contains(&name), "{check:?}");
        assert!(check.problems[0].kind.is_some(), "{check:?}");
        // A reader reaching it gets the error, not garbage.
        let failed = match log.read_from(victim.base_seq) {
            Err(_) => true,
            Ok(mut r) => loop {
                match r.next() {
                    Some(Ok(_)) => {}
                    Some(Err(_)) => break true,
                    None => break false,
                }
            },
        };
        assert!(failed, "{mode:?}: damage read without an error");
    }
}

#[test]
fn a_missing_archived_segment_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        small(Retention::default().archive(ArchiveMode::Move)),
    );
    append_n(&log, 2000);
    log.checkpoint(1500, b"s").unwrap();
    log.compact().unwrap();
    let (archived, _) = log.archived_segments().unwrap();
    std::fs::remove_file(&archived[3].path).unwrap();
    drop(log);
    let log = open(
        dir.path(),
        small(Retention::default().archive(ArchiveMode::Move)),
    );
    let check = log.verify_archive().unwrap();
    assert_eq!(check.problems.len(), 1, "{check:?}");
    assert_eq!(check.problems[0].path, archived[4].path);
    assert_eq!(
        check.problems[0].kind,
        Some(mmlog::CorruptionKind::MissingSegment { segment_id: 3 })
    );
    // Records on either side of the hole read; reaching into it is an error, not a skip.
    assert_eq!(
        read_checked(&log, archived[4].base_seq),
        2000 - archived[4].base_seq
    );
    let mut r = log.read_from(archived[2].base_seq).unwrap();
    let failed = loop {
        match r.next() {
            Some(Ok(_)) => {}
            Some(Err(e)) => break Some(e),
            None => break None,
        }
    };
    assert!(failed.is_some());
    let tool = mmlog::inspect::inspect(dir.path(), true).unwrap();
    assert!(!tool.is_clean());
}

/// The read-only plan of `inspect::compaction_plan` is what `compact()` then does, whether
/// it is made on the closed log or while the log is open, for several retention settings.
#[test]
fn the_plan_from_inspect_is_what_compact_does() {
    let age = Duration::from_secs(3600);
    let settings: Vec<(&str, Retention, bool)> = vec![
        ("checkpoint", Retention::default(), true),
        (
            "no checkpoint",
            Retention::default().keep_records(10),
            false,
        ),
        (
            "keep records",
            Retention::default()
                .keep_records(300)
                .require_checkpoint(false),
            false,
        ),
        (
            "keep bytes, compressed",
            Retention::default()
                .keep_bytes(5 * 4096)
                .require_checkpoint(false)
                .archive(ArchiveMode::Compress),
            false,
        ),
        (
            "keep age, moved",
            Retention::default()
                .keep_age(age)
                .archive(ArchiveMode::Move),
            true,
        ),
        (
            "consumer",
            Retention::default().require_checkpoint(false),
            false,
        ),
    ];
    for (name, retention, checkpoint) in settings {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path(), small(Retention::default()));
            append_n(&log, 2000);
            if checkpoint {
                log.checkpoint(1500, b"state").unwrap();
            }
            if name == "consumer" {
                log.register_consumer("billing", 900).unwrap();
            }
            append_n(&log, 100);
            log.close().unwrap();
        }
        let closed = mmlog::inspect::compaction_plan(dir.path(), &retention).unwrap();
        let log = open(dir.path(), small(retention.clone()));
        let open_plan = mmlog::inspect::compaction_plan(dir.path(), &retention).unwrap();
        assert_eq!(closed.report(), open_plan.report(), "{name}");
        assert_eq!(closed.segments, open_plan.segments, "{name}");
        let report = log.compact().unwrap();
        assert_eq!(report, closed.report(), "{name}: {closed:?}");
        assert_eq!(log.stats().first_seq, closed.first_seq, "{name}");
        for seg in &closed.segments {
            assert!(
                !seg.path.exists(),
                "{name}: {} still live",
                seg.path.display()
            );
            if let Some(archived) = &seg.archive_path {
                assert!(archived.exists(), "{name}: {} missing", archived.display());
            }
        }
        let expected_held = match name {
            "checkpoint" | "no checkpoint" => Some(HeldBy::Checkpoint),
            "keep records" | "keep bytes, compressed" | "keep age, moved" => {
                Some(HeldBy::Retention)
            }
            _ => Some(HeldBy::Consumer("billing".into())),
        };
        assert_eq!(closed.held_by, expected_held, "{name}");
        let removes = !matches!(name, "no checkpoint" | "keep age, moved");
        assert_eq!(closed.segments.is_empty(), !removes, "{name}: {closed:?}");
        // The plan of what is left: nothing more to remove.
        let again = mmlog::inspect::compaction_plan(dir.path(), &retention).unwrap();
        assert!(again.segments.is_empty(), "{name}: {again:?}");
        assert_eq!(log.compact().unwrap(), again.report(), "{name}");
    }
}

/// `inspect::recovery_plan` reports what `Log::open` then repairs, and changes nothing.
#[test]
fn the_recovery_plan_is_what_open_repairs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), small(Retention::default()));
        append_n(&log, 700);
        log.checkpoint(650, b"state").unwrap();
        log.close().unwrap();
    }
    let clean = mmlog::inspect::recovery_plan(dir.path()).unwrap();
    assert!(clean.report.is_clean(), "{clean:?}");
    assert_eq!(clean.report.next_seq, 700);
    // A torn tail: garbage after the last frame of the active segment, a leftover segment
    // being prepared, an unfinished checkpoint.
    let segs = dir.path().join("segments");
    let tool = mmlog::inspect::inspect(dir.path(), false).unwrap();
    let tail = tool
        .segments
        .iter()
        .rfind(|s| s.header.is_some())
        .unwrap()
        .clone();
    let end = 128 + tail.bytes_used;
    let mut bytes = std::fs::read(&tail.path).unwrap();
    bytes[end as usize + 8..end as usize + 40].fill(0xab);
    std::fs::write(&tail.path, &bytes).unwrap();
    std::fs::write(segs.join("00000000000000000999.seg.tmp"), b"x").unwrap();
    let ckpt_tmp = dir
        .path()
        .join("checkpoints")
        .join("00000000000000000690.ckpt.tmp");
    std::fs::write(&ckpt_tmp, b"half a checkpoint").unwrap();

    let before = snapshot(dir.path());
    let plan = mmlog::inspect::recovery_plan(dir.path()).unwrap();
    assert_eq!(snapshot(dir.path()), before, "the plan changed files");
    let t = plan.report.truncation.clone().expect("a truncation");
    assert_eq!((t.path.clone(), t.offset), (tail.path.clone(), end));
    assert_eq!(t.bytes_dropped, 40);
    assert!(plan.report.removed_temporary.contains(&ckpt_tmp));
    let log = open(dir.path(), small(Retention::default()));
    assert_eq!(log.recovery_report(), &plan.report);
    assert_eq!(read_checked(&log, 651), 49);
    drop(log);
    let after = mmlog::inspect::recovery_plan(dir.path()).unwrap();
    assert!(after.report.is_clean(), "{after:?}");
    assert!(after.report.removed_temporary.is_empty(), "{after:?}");
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Every record `inspect::dump` gives from `from`, as `(seq, payload)`, padding left out.
fn dumped(dir: &std::path::Path, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    mmlog::inspect::dump(dir, from, 0, |r| {
        if !r.padding {
            out.push((r.seq, r.payload.to_vec()));
        }
        true
    })
    .unwrap();
    out
}

/// Every record `Log::read_from(from)` gives, as `(seq, payload)`.
fn read_through(log: &Log, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut r = log.read_from(from).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next() {
        let rec = rec.unwrap();
        out.push((rec.seq(), rec.payload().to_vec()));
    }
    out
}

/// Every record a `Follower` from `from` gives in polls until one finds nothing.
fn followed(follower: &mut mmlog::inspect::Follower) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let n = follower
            .poll(|r| {
                if !r.padding {
                    out.push((r.seq, r.payload.to_vec()));
                }
                true
            })
            .unwrap();
        if n == 0 {
            return out;
        }
    }
}

/// The read-only `inspect::dump` and `Follower` read archived segments (moved, or
/// compressed and decompressed in memory) before the live ones, as `Log::read_from` does.
#[test]
fn inspect_dump_and_follower_read_through_the_archive() {
    for mode in [ArchiveMode::Move, ArchiveMode::Compress] {
        let dir = tempfile::tempdir().unwrap();
        let opts = || small(Retention::default().archive(mode));
        let log = open(dir.path(), opts());
        append_n(&log, 2000);
        log.checkpoint(1500, b"s").unwrap();
        // A follower inside the first live segment: compaction archives it under its feet.
        let mut behind = mmlog::inspect::Follower::new(dir.path(), 0).unwrap();
        let mut behind_got = Vec::new();
        behind
            .poll(|r| {
                behind_got.push((r.seq, r.payload.to_vec()));
                behind_got.len() < 3
            })
            .unwrap();
        let report = log.compact().unwrap();
        assert!(report.segments_archived > 10, "{mode:?}: {report:?}");
        let first_live = log.stats().first_seq;
        assert!(first_live > 1000, "{mode:?}");

        let all = read_through(&log, 0);
        assert_eq!(all.len(), 2000);
        assert_eq!(dumped(dir.path(), 0), all, "{mode:?}");
        for from in [1, 333, first_live - 1, first_live, 1999, 2000, 5000] {
            assert_eq!(
                dumped(dir.path(), from),
                all[(from.min(2000)) as usize..].to_vec(),
                "{mode:?} from {from}"
            );
        }
        // Where each record comes from: archived segments by id, then live ones.
        let (archived, _) = log.archived_segments().unwrap();
        let mut segs = Vec::new();
        mmlog::inspect::dump(dir.path(), 0, 0, |r| {
            if segs.last() != Some(&r.segment_id) {
                segs.push(r.segment_id);
            }
            true
        })
        .unwrap();
        assert_eq!(
            segs[..archived.len()],
            archived.iter().map(|a| a.id).collect::<Vec<_>>()[..]
        );
        // A dump stopped by its callback in the archive stops there.
        let mut n = 0;
        mmlog::inspect::dump(dir.path(), 10, 0, |r| {
            assert_eq!(r.seq, 10 + n);
            n += 1;
            n < 5
        })
        .unwrap();
        assert_eq!(n, 5);

        // Followers: from an archived record through the archive into the live log, and
        // one that fell behind compaction finds the rest in the archive.
        let mut f = mmlog::inspect::Follower::new(dir.path(), 0).unwrap();
        assert_eq!(followed(&mut f), all, "{mode:?}");
        assert_eq!(f.next_seq(), 2000);
        let mut mid = mmlog::inspect::Follower::new(dir.path(), 777).unwrap();
        assert_eq!(followed(&mut mid), all[777..].to_vec(), "{mode:?}");
        behind_got.extend(followed(&mut behind));
        assert_eq!(behind_got, all, "{mode:?}");
        append_n(&log, 10);
        let more = followed(&mut f);
        assert_eq!(
            more.iter().map(|r| r.0).collect::<Vec<_>>(),
            (2000..2010).collect::<Vec<_>>()
        );
        log.close().unwrap();
        // Closed, and reopened: the same.
        let all = {
            let log = open(dir.path(), opts());
            let all = read_through(&log, 0);
            log.close().unwrap();
            all
        };
        assert_eq!(dumped(dir.path(), 0), all, "{mode:?} after reopen");
    }
}

/// A hole in the archive is an error naming the file after it, after the records before it;
/// damage in an archived segment is an error naming that file; neither is a silent gap.
#[test]
fn inspect_dump_reports_holes_and_damage_in_the_archive() {
    for mode in [ArchiveMode::Move, ArchiveMode::Compress] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), small(Retention::default().archive(mode)));
        append_n(&log, 2000);
        log.checkpoint(1500, b"s").unwrap();
        log.compact().unwrap();
        let (archived, _) = log.archived_segments().unwrap();
        log.close().unwrap();

        // Damage in the middle of the third archived segment's file.
        let victim = &archived[2];
        let original = std::fs::read(&victim.path).unwrap();
        let mut bytes = original.clone();
        let at = match mode {
            ArchiveMode::Compress => bytes.len() / 2,
            // In the frames of a moved segment (its end is zeros).
            _ => 128 + 200,
        };
        bytes[at] ^= 0x40;
        std::fs::write(&victim.path, &bytes).unwrap();
        let mut seen = Vec::new();
        let err = mmlog::inspect::dump(dir.path(), 0, 0, |r| {
            seen.push(r.seq);
            true
        })
        .unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { path, .. } if *path == victim.path),
            "{mode:?}: {err}"
        );
        // Everything before the damaged segment came first (and, moved, the frames of it
        // before the damaged one).
        assert!(
            seen.len() as u64 >= victim.base_seq,
            "{mode:?}: {}",
            seen.len()
        );
        assert_eq!(seen, (0..seen.len() as u64).collect::<Vec<_>>());
        let err = mmlog::inspect::Follower::new(dir.path(), victim.base_seq)
            .and_then(|mut f| f.poll(|_| true))
            .unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { path, .. } if *path == victim.path),
            "{mode:?}: {err}"
        );
        // Past it, the rest reads.
        assert_eq!(
            dumped(dir.path(), victim.end_seq()).len() as u64,
            2000 - victim.end_seq()
        );
        std::fs::write(&victim.path, &original).unwrap();

        // A missing archived segment: the records before it, then an error naming the next.
        std::fs::remove_file(&archived[3].path).unwrap();
        let mut seen = 0u64;
        let err = mmlog::inspect::dump(dir.path(), 0, 0, |_| {
            seen += 1;
            true
        })
        .unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { path, kind: mmlog::CorruptionKind::MissingSegment { segment_id: 3 }, .. }
                if *path == archived[4].path),
            "{mode:?}: {err}"
        );
        assert_eq!(seen, archived[3].base_seq);
        // Asking for records in the hole fails at once; after it, they read.
        let in_hole = archived[3].base_seq + 1;
        assert!(mmlog::inspect::dump(dir.path(), in_hole, 0, |_| true).is_err());
        assert!(mmlog::inspect::Follower::new(dir.path(), in_hole).is_err());
        let mut f = mmlog::inspect::Follower::new(dir.path(), 0).unwrap();
        assert!(f.poll(|_| true).is_err(), "{mode:?}");
        assert_eq!(f.next_seq(), archived[3].base_seq);
        let after = archived[4].base_seq;
        assert_eq!(dumped(dir.path(), after).len() as u64, 2000 - after);
    }
}
