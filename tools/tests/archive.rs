//! End-to-end tests of the read-only commands on a log whose early records compaction
//! archived (`Move` and `Compress`): `state`, `dump`, `tail` and `stats` see the records the
//! library reads through the archive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{
    Summary, expected, json, json_lines, mmlog_in, ok, reported, seg_files, seq_of, state_json,
    stderr, stdout,
};
use mmlog::events::EventStore;
use mmlog::{ArchiveMode, Options, Retention};
use serde_json::Value;

/// Events written to each store.
const EVENTS: u64 = 3000;
/// Events the retention keeps in the live log.
const KEEP: u64 = 500;

fn options(mode: ArchiveMode) -> Options {
    Options::default()
        .segment_size(64 << 10)
        .retention(Retention::default().keep_records(KEEP).archive(mode))
}

/// An event store of `EVENTS` events from 7 writers (every fourth removes an earlier item),
/// snapshotted at the end and compacted into the archive with `mode`, then closed. Returns
/// what the library says of the state at each of `points`, read before the close.
fn archived_store(dir: &Path, mode: ArchiveMode, points: &[u64]) -> Vec<Summary> {
    let store = EventStore::open(dir, options(mode)).unwrap();
    let mut live = Vec::new();
    for i in 0..EVENTS {
        let writer = (i % 7) as u32;
        if i % 4 == 3 && !live.is_empty() {
            let item = live.remove((i as usize * 13) % live.len());
            store.remove(writer, item).unwrap();
        } else {
            let data = format!(
                "writer {writer} event {i} {}",
                "p".repeat((i % 50) as usize)
            );
            live.push(store.write(writer, data).unwrap().1);
        }
    }
    assert_eq!(store.snapshot().unwrap(), Some(EVENTS - 1));
    let report = store.log().compact().unwrap();
    assert!(report.segments_archived >= 3, "{mode:?}: {report:?}");
    let first_live = store.log().stats().first_seq;
    assert!(
        first_live > 100 && first_live <= EVENTS - KEEP,
        "{first_live}"
    );
    let (archived, damaged) = store.log().archived_segments().unwrap();
    assert!(damaged.is_empty());
    assert_eq!(archived.len(), report.segments_archived);
    assert!(
        archived
            .iter()
            .all(|a| a.compressed == (mode == ArchiveMode::Compress))
    );
    let want = points
        .iter()
        .map(|&n| expected(&store.state_at_seq(n).unwrap()))
        .collect();
    store.close().unwrap();
    want
}

#[test]
fn read_only_commands_read_archived_records() {
    for mode in [ArchiveMode::Compress, ArchiveMode::Move] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let points = [0u64, 100, 1234, EVENTS - KEEP, EVENTS - 1];
        let want = archived_store(&dir, mode, &points);
        assert!(dir.join("archive").is_dir());

        // `state --seq 100`: no snapshot at or before it, so replayed from record 0 through
        // the archive; the same as the library, item for item.
        for (&n, want) in points.iter().zip(&want) {
            let v = state_json(&dir, &["--seq", &n.to_string()]);
            assert_eq!(&reported(&v), want, "{mode:?} --seq {n}");
            if n < EVENTS - 1 {
                assert_eq!(v["snapshot_seq"], Value::Null, "{mode:?} --seq {n}");
                assert_eq!(v["replayed"], n + 1, "{mode:?} --seq {n}");
            } else {
                assert_eq!(v["snapshot_seq"], EVENTS - 1);
            }
        }
        assert!(!want[1].1.is_empty());
        let o = ok(&dir, &["state", "--seq", "100"]);
        let text = stdout(&o);
        assert!(text.starts_with("version: 100\n"), "{text}");
        assert!(text.contains("snapshot: none (replayed from the first event)"));
        assert!(stderr(&o).is_empty(), "{}", stderr(&o));

        // `dump --from 0 --limit 5`: the first five records, from the archive.
        let o = ok(&dir, &["dump", "--from", "0", "--limit", "5"]);
        let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
        assert_eq!(
            lines.iter().map(|l| seq_of(l)).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4],
            "{mode:?}"
        );
        assert!(lines[0].contains(" seg=0 "), "{}", lines[0]);
        let o = ok(&dir, &["dump", "--events", "--from", "0", "--limit", "2"]);
        assert!(
            stdout(&o)
                .lines()
                .next()
                .unwrap()
                .ends_with("data=\"writer 0 event 0 \""),
            "{}",
            stdout(&o)
        );
        // All of it, dense, across the archive into the live log.
        let o = ok(&dir, &["dump", "--json"]);
        let seqs: Vec<u64> = json_lines(&o)
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (0..EVENTS).collect::<Vec<_>>(), "{mode:?}");
        // `tail --from` reads the archive too.
        let o = ok(&dir, &["tail", "--from", "98"]);
        let seqs: Vec<u64> = stdout(&o).lines().map(seq_of).collect();
        assert_eq!(seqs, (98..EVENTS).collect::<Vec<_>>(), "{mode:?}");

        // `stats`: `records` counts the live log, `archived_records` the archive.
        let v = json(&ok(&dir, &["stats", "--json"]));
        let live = v["records"].as_u64().unwrap();
        let archived = v["archived_records"].as_u64().unwrap();
        assert_eq!(live + archived, EVENTS, "{v}");
        assert_eq!(v["first_seq"], archived);
        assert_eq!(v["first_readable_seq"], 0);
        assert_eq!(v["next_seq"], EVENTS);
        let in_archive: u64 = v["archive"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["records"].as_u64().unwrap())
            .sum();
        assert_eq!(in_archive, archived);
        let o = ok(&dir, &["stats"]);
        let text = stdout(&o);
        assert!(
            text.contains(&format!("{} in the live log", count(live))),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{} records (sequence numbers 0 to",
                count(archived)
            )),
            "{text}"
        );
        ok(&dir, &["verify"]);
    }
}

/// `n` as `mmlog stats` prints it: with thousands separators.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn state_reads_the_archive_while_the_store_is_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let want = archived_store(&dir, ArchiveMode::Compress, &[]);
    assert!(want.is_empty());
    let store = EventStore::open(&dir, options(ArchiveMode::Compress)).unwrap();
    store.write(99, "after the reopen").unwrap();
    for n in [100u64, 2222, EVENTS] {
        let v = state_json(&dir, &["--seq", &n.to_string()]);
        let lib = store.state_at_seq(n).unwrap();
        assert_eq!(reported(&v), expected(&lib), "--seq {n}");
    }
    store.close().unwrap();
}

/// A hole in the archive fails `state` and `dump` (exit 1, naming the file after the hole),
/// never a state rebuilt without the records in it.
#[test]
fn a_hole_in_the_archive_is_an_error_not_a_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    archived_store(&dir, ArchiveMode::Move, &[]);
    let files = seg_files(&dir.join("archive"));
    assert!(files.len() >= 3, "{files:?}");
    std::fs::remove_file(&files[1]).unwrap();
    let next = files[2].file_name().unwrap().to_string_lossy().into_owned();
    for args in [
        &["state", "--seq", "2000"][..],
        &["dump", "--from", "0"],
        &["tail", "--from", "0"],
    ] {
        let o = mmlog_in(&dir, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("segment 1 is missing"),
            "{args:?}: {}",
            stderr(&o)
        );
        // `tail` names where it stopped (the end of segment 0), the others the file after
        // the hole.
        if args[0] != "tail" {
            assert!(stderr(&o).contains(&next), "{args:?}: {}", stderr(&o));
        }
    }
    // Records before the hole are printed before the error.
    let o = mmlog_in(&dir, &["dump", "--from", "0"]);
    let first = stdout(&o).lines().next().map(seq_of);
    assert_eq!(first, Some(0));
}
