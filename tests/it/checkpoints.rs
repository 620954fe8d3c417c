//! Checkpoints through the public API: write, fetch, fall back past damage, prune, rebuild.

use std::time::{Duration, SystemTime};

use mmlog::{Durability, Error, Log, Options};

use crate::support::open;

fn small() -> Options {
    Options::default().segment_size(4096)
}

fn append_n(log: &Log, n: u64) {
    for i in 0..n {
        log.append(&i.to_le_bytes()).unwrap();
    }
}

fn checkpoint_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn contract_example_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), small());
        append_n(&log, 10);
        log.checkpoint(7, b"state bytes").unwrap();
        let cp = log.latest_checkpoint().unwrap().expect("a checkpoint");
        assert_eq!(cp.seq(), 7);
        assert_eq!(cp.data(), b"state bytes");
        assert!(cp.skipped().is_empty());
    }
    let log = open(dir.path(), small());
    assert!(log.recovery_report().removed_files.is_empty());
    let cp = log
        .latest_checkpoint()
        .unwrap()
        .expect("a checkpoint after reopen");
    assert_eq!((cp.seq(), cp.data()), (7, &b"state bytes"[..]));
}

#[test]
fn no_checkpoint_in_a_new_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    assert!(log.latest_checkpoint().unwrap().is_none());
    let (cp, mut reader) = log.read_from_checkpoint().unwrap();
    assert!(cp.is_none());
    assert_eq!(reader.next_seq(), 0);
    assert!(reader.next().is_none());
}

#[test]
fn a_checkpoint_past_the_committed_records_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    assert!(matches!(
        log.checkpoint(0, b"x"),
        Err(Error::InvalidArgument { .. })
    ));
    append_n(&log, 3);
    assert!(matches!(
        log.checkpoint(3, b"x"),
        Err(Error::InvalidArgument { .. })
    ));
    log.checkpoint(2, b"x").unwrap();
}

#[test]
fn checkpoint_makes_what_it_covers_durable_first() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small().durability(Durability::Buffered));
    append_n(&log, 50);
    assert_eq!(log.durable_seq(), None);
    log.checkpoint(40, b"s").unwrap();
    assert!(log.durable_seq().is_some_and(|d| d >= 40));
}

#[test]
fn empty_and_large_blobs_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small().keep_checkpoints(5));
    append_n(&log, 3);
    log.checkpoint(0, b"").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    log.checkpoint(1, &big).unwrap();
    assert_eq!(log.checkpoint_at_or_before(0).unwrap().unwrap().data(), b"");
    assert_eq!(log.latest_checkpoint().unwrap().unwrap().data(), &big[..]);
}

#[test]
fn fetch_by_sequence_number_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small().keep_checkpoints(10));
    append_n(&log, 5);
    log.checkpoint(2, b"two").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let between = SystemTime::now();
    std::thread::sleep(Duration::from_millis(20));
    append_n(&log, 5);
    log.checkpoint(8, b"eight").unwrap();

    assert!(log.checkpoint_at_or_before(1).unwrap().is_none());
    assert_eq!(
        log.checkpoint_at_or_before(2).unwrap().unwrap().data(),
        b"two"
    );
    assert_eq!(
        log.checkpoint_at_or_before(7).unwrap().unwrap().data(),
        b"two"
    );
    assert_eq!(
        log.checkpoint_at_or_before(99).unwrap().unwrap().data(),
        b"eight"
    );
    let at = log.checkpoint_at_or_before_time(between).unwrap().unwrap();
    assert_eq!(at.data(), b"two");
    assert!(at.timestamp() <= between);
    assert_eq!(
        log.checkpoint_at_or_before_time(SystemTime::now())
            .unwrap()
            .unwrap()
            .data(),
        b"eight"
    );
    assert!(
        log.checkpoint_at_or_before_time(SystemTime::UNIX_EPOCH)
            .unwrap()
            .is_none()
    );
}

#[test]
fn only_the_newest_checkpoints_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small().keep_checkpoints(2));
    append_n(&log, 10);
    for seq in 0..6 {
        log.checkpoint(seq, format!("s{seq}").as_bytes()).unwrap();
    }
    let (valid, damaged) = log.checkpoints().unwrap();
    assert!(damaged.is_empty());
    let seqs: Vec<u64> = valid.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, vec![4, 5]);
    assert_eq!(checkpoint_files(dir.path()).len(), 2);
}

#[test]
fn a_damaged_newest_checkpoint_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small().keep_checkpoints(3));
    append_n(&log, 10);
    log.checkpoint(3, b"older state").unwrap();
    let newest = log.checkpoint(6, b"newer state").unwrap();
    drop(log);

    // A flipped bit in the blob.
    let mut bytes = std::fs::read(&newest.path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&newest.path, &bytes).unwrap();

    let log = open(dir.path(), small().keep_checkpoints(3));
    let cp = log.latest_checkpoint().unwrap().unwrap();
    assert_eq!((cp.seq(), cp.data()), (3, &b"older state"[..]));
    assert_eq!(cp.skipped().len(), 1);
    assert_eq!(cp.skipped()[0].path, newest.path);
    assert!(matches!(cp.skipped()[0].error, Error::Corrupt { .. }));
    let (valid, damaged) = log.checkpoints().unwrap();
    assert_eq!(valid.len(), 1);
    assert_eq!(damaged.len(), 1);

    // The reader starts after the checkpoint that was trusted.
    let (cp, reader) = log.read_from_checkpoint().unwrap();
    assert_eq!(cp.unwrap().seq(), 3);
    assert_eq!(reader.next_seq(), 4);
}

#[test]
fn half_written_checkpoints_are_never_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small().keep_checkpoints(5));
    append_n(&log, 10);
    log.checkpoint(2, b"good").unwrap();
    let full = log.checkpoint(5, b"0123456789").unwrap();
    drop(log);
    let bytes = std::fs::read(&full.path).unwrap();
    // Every truncation of the newest file falls back to the older one.
    for cut in [0, 1, 47, 48, 50, bytes.len() - 1] {
        std::fs::write(&full.path, &bytes[..cut]).unwrap();
        let log = open(dir.path(), small().keep_checkpoints(5));
        let cp = log.latest_checkpoint().unwrap().unwrap();
        assert_eq!(cp.data(), b"good", "cut at {cut}");
        assert_eq!(cp.skipped().len(), 1, "cut at {cut}");
    }
    // An unfinished temporary file is removed at open and never read.
    let tmp = dir.path().join("checkpoints/00000000000000000009.ckpt.tmp");
    std::fs::write(&tmp, b"half").unwrap();
    std::fs::write(dir.path().join("checkpoints/notes.txt"), b"mine").unwrap();
    let log = open(dir.path(), small().keep_checkpoints(5));
    assert!(!tmp.exists());
    assert!(dir.path().join("checkpoints/notes.txt").exists());
    assert_eq!(log.latest_checkpoint().unwrap().unwrap().data(), b"good");
}

#[test]
fn a_checkpoint_beyond_the_recovered_log_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), small());
        append_n(&log, 4);
        log.checkpoint(3, b"fine").unwrap();
    }
    // A checkpoint claiming records the log does not have (as after losing the tail).
    let bogus = dir.path().join("checkpoints/00000000000000000099.ckpt");
    std::fs::write(&bogus, mmlog::format::checkpoint::encode(100, 1, b"future")).unwrap();
    let log = open(dir.path(), small());
    assert!(!bogus.exists());
    assert!(log.recovery_report().removed_files.contains(&bogus));
    assert_eq!(log.latest_checkpoint().unwrap().unwrap().data(), b"fine");
}

#[test]
fn rebuilding_from_a_checkpoint_equals_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    let fold = |state: u64, payload: &[u8]| {
        state
            .wrapping_mul(31)
            .wrapping_add(u64::from_le_bytes(payload.try_into().unwrap()))
    };
    let mut state = 0u64;
    for i in 0..500u64 {
        let seq = log.append(&(i * 7).to_le_bytes()).unwrap();
        state = fold(state, &(i * 7).to_le_bytes());
        if seq == 299 {
            log.checkpoint(seq, &state.to_le_bytes()).unwrap();
        }
    }
    let (cp, mut reader) = log.read_from_checkpoint().unwrap();
    let cp = cp.unwrap();
    assert_eq!(cp.seq(), 299);
    let mut rebuilt = u64::from_le_bytes(cp.data().try_into().unwrap());
    let mut replayed = 0;
    while let Some(rec) = reader.next() {
        rebuilt = fold(rebuilt, rec.unwrap().payload());
        replayed += 1;
    }
    assert_eq!(replayed, 200);
    assert_eq!(rebuilt, state);
}

#[test]
fn checkpoints_while_writers_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small().keep_checkpoints(4));
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| append_n(&log, 2000));
        }
        s.spawn(|| {
            let mut taken = 0;
            while taken < 20 {
                match log.last_seq() {
                    Some(last) => {
                        let info = log.checkpoint(last, &last.to_le_bytes()).unwrap();
                        assert_eq!(info.seq, last);
                        taken += 1;
                    }
                    // The writers have not started yet.
                    None => std::thread::yield_now(),
                }
            }
        });
    });
    let cp = log.latest_checkpoint().unwrap().unwrap();
    assert_eq!(cp.data(), &cp.seq().to_le_bytes());
    assert_eq!(log.last_seq(), Some(3999));
}
