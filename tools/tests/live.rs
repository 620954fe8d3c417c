//! End-to-end tests of the read-only commands that serve a live log: `dump --events`,
//! `state` (time travel from the shell) and `tail` (with `--follow` against a log another
//! handle keeps appending to, across segment rollovers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::{
    code, expected, fails, json, json_lines, mmlog_in, ok, reported, seq_of, state_full,
    state_json, stderr, stdout,
};
use mmlog::events::{Event, EventStore};
use mmlog::{Durability, Log, Options};
use serde_json::Value;

fn wait_with_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mmlog did not exit within {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `mmlog tail DIR ARGS...` with its stdout read line by line on a thread.
fn spawn_tail(dir: &Path, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmlog"))
        .arg("tail")
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mmlog tail");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// An event store of `events` events from 5 writers (every third event removes an earlier
/// item), with a snapshot after each index in `snapshot_after`. Returns the store (still
/// open: the tool runs while another handle holds the log) and the snapshot versions.
fn store_with(dir: &Path, events: u64, snapshot_after: &[u64]) -> (EventStore, Vec<u64>) {
    let store = EventStore::open(dir, Options::default()).unwrap();
    let mut live = Vec::new();
    let mut snapshots = Vec::new();
    for i in 0..events {
        let writer = (i % 5) as u32;
        if i % 3 == 2 && !live.is_empty() {
            let item = live.remove((i as usize * 7) % live.len());
            store.remove(writer, item).unwrap();
        } else {
            let (_, item) = store
                .write(
                    writer,
                    format!("writer {writer} item {i}: \"quoted\" \u{e9}"),
                )
                .unwrap();
            live.push(item);
        }
        if snapshot_after.contains(&i) {
            snapshots.push(store.snapshot().unwrap().expect("events were written"));
        }
    }
    (store, snapshots)
}

#[test]
fn dump_events_prints_each_event_and_the_error_of_a_record_that_is_not_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let store = EventStore::open(&dir, Options::default()).unwrap();
    let (_, a) = store.write(1, "alpha").unwrap();
    let (_, b) = store.write(2, "line\nbreak \"quoted\"").unwrap();
    store.remove(3, a).unwrap();
    let long = "x".repeat(100);
    store.write(4, &long).unwrap();
    store.close().unwrap();
    let log = Log::open(&dir, Options::default()).unwrap();
    log.append(b"not an event").unwrap();
    log.append(&[1, 1]).unwrap(); // A DataWritten with no body.
    log.close().unwrap();

    let o = ok(&dir, &["dump", "--events"]);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert!(lines[0].starts_with("0 time="), "{}", lines[0]);
    assert!(
        lines[0].ends_with(&format!("DataWritten writer=1 item={a} data=\"alpha\"")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(&format!(
            r#"DataWritten writer=2 item={b} data="line\nbreak \"quoted\"""#
        )),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with(&format!("DataRemoved writer=3 item={a}")),
        "{}",
        lines[2]
    );
    assert!(lines[3].ends_with("... (+36 bytes)"), "{}", lines[3]);
    assert!(lines[4].starts_with("4 time="), "{}", lines[4]);
    assert!(
        lines[4].contains("error: record 4 holds event type 110"),
        "{}",
        lines[4]
    );
    assert!(
        lines[5].contains("error: record 5 is not a readable event: DataWritten"),
        "{}",
        lines[5]
    );

    let rows = json_lines(&ok(&dir, &["dump", "--events", "--json", "--full"]));
    assert_eq!(rows.len(), 6);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["seq"], i as u64);
        assert!(r["timestamp_ns"].as_u64().unwrap() > 0);
    }
    assert_eq!(rows[0]["type"], "DataWritten");
    assert_eq!(rows[0]["writer_id"], 1);
    assert_eq!(rows[0]["item_id"], a.to_string());
    assert_eq!(rows[0]["data"], "alpha");
    assert_eq!(rows[1]["data"], "line\nbreak \"quoted\"");
    assert_eq!(rows[2]["type"], "DataRemoved");
    assert_eq!(rows[2]["writer_id"], 3);
    assert_eq!(rows[2]["item_id"], a.to_string());
    assert_eq!(rows[3]["data"], long.as_str());
    assert!(
        rows[4]["error"]
            .as_str()
            .unwrap()
            .contains("event type 110"),
        "{}",
        rows[4]
    );
    assert!(
        rows[5]["error"]
            .as_str()
            .unwrap()
            .contains("not a readable event"),
        "{}",
        rows[5]
    );
    assert!(rows[4].get("data").is_none());

    // `dump` without --events is unchanged: payloads, not events.
    let o = ok(&dir, &["dump", "--from", "4"]);
    assert!(stdout(&o).contains("\"not an event\""), "{}", stdout(&o));
}

#[test]
fn state_at_seq_matches_the_library_with_and_without_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let with = tmp.path().join("with");
    let without = tmp.path().join("without");
    let (store, snaps) = store_with(&with, 300, &[99, 199]);
    let (plain, none) = store_with(&without, 120, &[]);
    assert_eq!(snaps, vec![99, 199]);
    assert!(none.is_empty());

    for n in [
        0u64, 1, 2, 50, 98, 99, 100, 150, 199, 200, 201, 250, 299, 310,
    ] {
        let v = state_json(&with, &["--seq", &n.to_string()]);
        let lib = store.state_at_seq(n).unwrap();
        assert_eq!(reported(&v), expected(&lib), "--seq {n}");
        let snapshot = snaps.iter().rev().find(|&&s| s <= n).copied();
        assert_eq!(v["snapshot_seq"].as_u64(), snapshot, "--seq {n}");
        let from = snapshot.map_or(0, |s| s + 1);
        assert_eq!(
            v["replayed"].as_u64().unwrap(),
            (n.min(299) + 1).saturating_sub(from),
            "--seq {n}"
        );
    }
    for n in [0u64, 3, 60, 119] {
        let v = state_json(&without, &["--seq", &n.to_string()]);
        assert_eq!(reported(&v), expected(&plain.state_at_seq(n).unwrap()));
        assert_eq!(v["snapshot_seq"], Value::Null);
        assert_eq!(v["replayed"].as_u64().unwrap(), n + 1);
    }

    // The text form: the summary, then items by id, then what was left out.
    let o = ok(&with, &["state", "--seq", "250", "--limit", "3"]);
    let text = stdout(&o);
    let lib = store.state_at_seq(250).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "version: 250");
    assert_eq!(lines[1], format!("items: {}", lib.len()));
    assert!(lines[2].starts_with("snapshot: seq 199 ("), "{text}");
    assert_eq!(lines[3], "replayed: 51 events");
    let (_, items) = expected(&lib);
    for (line, (id, writer, seq, data)) in lines[4..7].iter().zip(&items) {
        assert!(
            line.starts_with(&format!("{id} writer={writer} seq={seq} time=")),
            "{line}"
        );
        assert!(line.ends_with(&format!("data={data:?}")), "{line}");
    }
    assert_eq!(
        lines[7],
        format!("({} more items not listed: see --limit)", lib.len() - 3)
    );
    assert_eq!(lines.len(), 8, "{text}");
    drop(store);
    drop(plain);
}

#[test]
fn state_at_time_matches_the_library() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (store, _) = store_with(&dir, 40, &[]);
    // Spread the events over time, so that points in time fall between them.
    for i in 0..60u32 {
        if i % 10 == 0 {
            thread::sleep(Duration::from_millis(15));
            if i == 30 {
                store.snapshot().unwrap();
            }
        }
        store.write(7, format!("late {i}")).unwrap();
    }
    let events: Vec<(u64, u64)> = store
        .events_from(0)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.seq(), e.timestamp_ns())
        })
        .collect();
    assert_eq!(events.len(), 100);
    for &(seq, ts) in events.iter().step_by(9).chain(events.last()) {
        for at in [ts, ts - 1] {
            let v = state_json(&dir, &["--at", &at.to_string()]);
            let lib = store
                .state_at_time(UNIX_EPOCH + Duration::from_nanos(at))
                .unwrap();
            assert_eq!(reported(&v), expected(&lib), "--at {at} (seq {seq})");
        }
    }
    // Before the first event: nothing.
    let v = state_json(&dir, &["--at", "1970-01-01T00:00:00Z"]);
    assert_eq!(v["version"], Value::Null);
    assert_eq!(v["items"], 0);
    let o = ok(&dir, &["state", "--at", "2000-01-01T00:00:00Z"]);
    assert!(stdout(&o).starts_with("version: none"), "{}", stdout(&o));
    drop(store);
}

#[test]
fn state_falls_back_from_a_damaged_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (store, snaps) = store_with(&dir, 200, &[59, 119, 179]);
    let want: Vec<_> = [150u64, 199]
        .iter()
        .map(|&n| expected(&store.state_at_seq(n).unwrap()))
        .collect();
    store.close().unwrap();
    let ckpt = |seq: u64| dir.join("checkpoints").join(format!("{seq:020}.ckpt"));
    for &s in &snaps {
        assert!(ckpt(s).is_file(), "{}", ckpt(s).display());
    }

    // A flipped byte in the newest snapshot's blob: its CRC fails, the one before is used.
    let newest = ckpt(179);
    let original = std::fs::read(&newest).unwrap();
    let mut damaged = original.clone();
    let at = damaged.len() - 5;
    damaged[at] ^= 0x40;
    std::fs::write(&newest, &damaged).unwrap();
    let o = state_full(&dir, &["--seq", "199"]);
    let v = json(&o);
    assert_eq!(reported(&v), want[1]);
    assert_eq!(v["snapshot_seq"], 119);
    assert_eq!(v["replayed"], 80);
    assert!(
        stderr(&o).contains("warning: snapshot") && stderr(&o).contains(&format!("{:020}", 179)),
        "{}",
        stderr(&o)
    );
    // A point before the damaged snapshot does not hear about it.
    let o = state_full(&dir, &["--seq", "150"]);
    assert_eq!(reported(&json(&o)), want[0]);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));

    // A well-formed checkpoint file whose blob is not a snapshot: it fails to load.
    let header = mmlog::format::checkpoint::decode(&original).unwrap().0;
    let bogus = mmlog::format::checkpoint::encode(180, header.timestamp_ns, b"not a snapshot");
    std::fs::write(&newest, bogus).unwrap();
    let o = state_full(&dir, &["--seq", "199"]);
    let v = json(&o);
    assert_eq!(reported(&v), want[1]);
    assert_eq!(v["snapshot_seq"], 119);
    assert!(stderr(&o).contains("could not be loaded"), "{}", stderr(&o));

    // With every snapshot damaged, the state is replayed from the first event.
    for s in [59, 119] {
        let mut bytes = std::fs::read(ckpt(s)).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        std::fs::write(ckpt(s), bytes).unwrap();
    }
    let v = state_json(&dir, &["--seq", "199"]);
    assert_eq!(reported(&v), want[1]);
    assert_eq!(v["snapshot_seq"], Value::Null);
    assert_eq!(v["replayed"], 200);
    let o = ok(&dir, &["state", "--seq", "199"]);
    assert!(
        stdout(&o).contains("snapshot: none (replayed from the first event)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn tail_prints_the_last_records_as_dump_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let opts = Options::default()
        .segment_size(4096)
        .durability(Durability::Buffered);
    let log = Log::open(&dir, opts).unwrap();
    for i in 0..200u64 {
        log.append(format!("record number {i:04} of the tail test").as_bytes())
            .unwrap();
    }
    // Still open: tail reads what another handle has committed.
    let o = ok(&dir, &["tail"]);
    let dumped = ok(&dir, &["dump", "--from", "190"]);
    assert_eq!(stdout(&o), stdout(&dumped));
    let seqs: Vec<u64> = stdout(&o).lines().map(seq_of).collect();
    assert_eq!(seqs, (190..200).collect::<Vec<_>>());

    let o = ok(&dir, &["tail", "--from", "195"]);
    assert_eq!(
        stdout(&o).lines().map(seq_of).collect::<Vec<_>>(),
        vec![195, 196, 197, 198, 199]
    );
    let rows = json_lines(&ok(&dir, &["tail", "-n", "3", "--json"]));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["seq"], 199);
    assert_eq!(rows[2]["payload"], "record number 0199 of the tail test");
    let o = ok(&dir, &["tail", "-n", "500"]);
    assert_eq!(stdout(&o).lines().count(), 200);
    let o = ok(&dir, &["tail", "--from", "1000"]);
    assert_eq!(stdout(&o), "");
    log.close().unwrap();

    // Events, as `dump --events` shows them.
    let events = tmp.path().join("events");
    let (store, _) = store_with(&events, 30, &[]);
    let o = ok(&events, &["tail", "--events", "-n", "4"]);
    let dumped = ok(&events, &["dump", "--events", "--from", "26"]);
    assert_eq!(stdout(&o), stdout(&dumped));
    assert!(stdout(&o).contains("DataWritten writer="), "{}", stdout(&o));
    drop(store);
}

#[test]
fn tail_follow_prints_every_record_of_a_live_writer_once_across_rollovers() {
    const BEFORE: u64 = 150;
    const PER_WRITER: u64 = 1000;
    const WRITERS: u64 = 2;
    let total = BEFORE + WRITERS * PER_WRITER;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Arc::new(Log::open(&dir, Options::default().segment_size(64 << 10)).unwrap());
    let payload = |w: u64, i: u64| format!("writer {w} record {i:05} {}", "z".repeat(150));
    let mut written = BTreeMap::new();
    for i in 0..BEFORE {
        let p = payload(9, i);
        written.insert(log.append(p.as_bytes()).unwrap(), p);
    }

    let (mut child, lines) = spawn_tail(&dir, &["--follow", "--from", "0", "--full"]);
    let mut got: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let take = |got: &mut Vec<String>, until: u64| {
        while (got.len() as u64) < until {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(e) => panic!("{e:?} after {} lines: {:?}", got.len(), got.last()),
            }
        }
    };
    // It prints what was there when it started...
    take(&mut got, BEFORE);

    // ... and what two threads append afterwards, in small bursts, through several rollovers.
    let start = Arc::new(Barrier::new(WRITERS as usize));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let log = Arc::clone(&log);
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut mine = Vec::new();
                for i in 0..PER_WRITER {
                    let p = payload(w, i);
                    mine.push((log.append(p.as_bytes()).unwrap(), p));
                    if i % 50 == 49 {
                        thread::sleep(Duration::from_millis(30));
                    }
                }
                mine
            })
        })
        .collect();
    // While they write, verify and stats read the same log: clean (a half-written tail
    // frame is at most a warning), and no lock taken from the writer.
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(40));
        for cmd in ["verify", "stats"] {
            let o = mmlog_in(&dir, &[cmd]);
            assert_eq!(code(&o), 0, "{cmd} on a live log: {}", stderr(&o));
        }
    }
    for w in writers {
        written.extend(w.join().unwrap());
    }
    take(&mut got, total);
    // Nothing more, nothing twice.
    thread::sleep(Duration::from_millis(400));
    assert!(lines.try_recv().is_err(), "more lines than records");

    let seqs: Vec<u64> = got.iter().map(|l| seq_of(l)).collect();
    assert_eq!(seqs, (0..total).collect::<Vec<_>>());
    for line in &got {
        let p = &written[&seq_of(line)];
        assert!(line.ends_with(&format!("{p:?}")), "{line}");
    }
    let segments: std::collections::BTreeSet<&str> = got
        .iter()
        .filter_map(|l| l.split(' ').find(|f| f.starts_with("seg=")))
        .collect();
    assert!(segments.len() >= 5, "only {segments:?}");

    // SIGTERM ends it quietly, with success.
    // SAFETY: a plain kill(2) of the child we started.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.is_empty(), "{err}");
    drop(log);
}

#[test]
fn tail_follow_ends_quietly_when_its_reader_goes_away() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, Options::default()).unwrap();
    for i in 0..5u32 {
        log.append(&i.to_le_bytes()).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmlog"))
        .arg("tail")
        .arg(&dir)
        .arg("--follow")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("0 time="), "{first}");
    // The reader goes away while the log is idle: no write fails, yet tail must notice.
    drop(out);
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    log.close().unwrap();
}

#[test]
fn not_a_log_exits_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let o = mmlog_in(tmp.path(), &["state", "--seq", "3"]);
    fails(&o, 2, "not an mmlog log", "state on a non-log");
    assert_eq!(stdout(&o), "");

    let missing: PathBuf = tmp.path().join("missing");
    for args in [
        &["tail"][..],
        &["tail", "--follow"],
        &["tail", "--from", "0"],
    ] {
        let o = mmlog_in(&missing, args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
    let o = mmlog_in(&missing, &["state", "--at", "2024-01-01T00:00:00Z"]);
    assert_eq!(code(&o), 2);
    // Neither --seq nor --at, or both: a usage error.
    let o = mmlog_in(tmp.path(), &["state"]);
    assert_eq!(code(&o), 2);
    let o = mmlog_in(tmp.path(), &["state", "--seq", "1", "--at", "5"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn events_are_read_while_the_store_is_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (store, _) = store_with(&dir, 20, &[9]);
    let (_, id) = store.write(42, "the last one").unwrap();
    let o = ok(&dir, &["dump", "--events", "--json", "--from", "20"]);
    let row = json(&o);
    assert_eq!(row["item_id"], id.to_string());
    assert_eq!(row["writer_id"], 42);
    let v = state_json(&dir, &["--seq", "20"]);
    assert_eq!(reported(&v), expected(&store.state_at_seq(20).unwrap()));
    assert!(matches!(
        store
            .events_from(20)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .event(),
        Event::DataWritten { writer_id: 42, .. }
    ));
}
