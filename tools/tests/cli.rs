//! End-to-end tests of the `mmlog` binary: exit codes, output formats and a short demo.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::{
    assert_exit, code, json, json_lines, mmlog, mmlog_in, ok, stats_json, stderr, stdout,
};
use mmlog::{Durability, Log, Options};

const RECORDS: u64 = 200;

/// A closed log of `RECORDS` text records in 4 KiB segments, so that several are sealed.
fn small_log() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let opts = Options::default()
        .segment_size(4096)
        .durability(Durability::Buffered);
    let log = Log::open(&dir, opts).unwrap();
    for i in 0..RECORDS {
        log.append(format!("record number {i:04} of the cli test").as_bytes())
            .unwrap();
    }
    log.close().unwrap();
    (tmp, dir)
}

#[test]
fn verify_clean_log_exits_0() {
    let (_tmp, dir) = small_log();
    let o = ok(&dir, &["verify"]);
    assert!(stdout(&o).contains("result: OK"), "{}", stdout(&o));

    let v = json(&ok(&dir, &["verify", "--json"]));
    assert_eq!(v["result"], "ok");
    assert_eq!(v["records"], RECORDS);
}

#[test]
fn verify_flipped_byte_in_sealed_segment_exits_1_and_names_the_file() {
    let (_tmp, dir) = small_log();
    let stats = stats_json(&dir);
    let seg = &stats["segment_list"][1];
    assert_eq!(
        seg["state"], "sealed",
        "segment 1 should be sealed: {stats}"
    );
    let path = PathBuf::from(seg["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    // A payload byte of the first frame: header 128 bytes, frame header 24.
    bytes[128 + 24 + 3] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let o = mmlog_in(&dir, &["verify"]);
    assert_exit(&o, 1, "verify");
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        stdout(&o).contains(name),
        "output should name {name}: {}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("CORRUPT"), "{}", stdout(&o));
    assert!(stdout(&o).contains("offset 128"), "{}", stdout(&o));

    let o = mmlog_in(&dir, &["verify", "--json"]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    assert_eq!(v["result"], "corrupt");
    assert!(v["problems"][0]["path"].as_str().unwrap().ends_with(name));

    // dump prints the records before the damage, then fails naming the file.
    let o = mmlog_in(&dir, &["dump"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains(name), "{}", stderr(&o));
}

#[test]
fn verify_flipped_first_byte_of_first_segment_exits_1() {
    let (_tmp, dir) = small_log();
    let path = dir.join("segments").join("00000000000000000000.seg");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let o = mmlog_in(&dir, &["verify"]);
    assert_exit(&o, 1, "verify");
    assert!(
        stdout(&o).contains("00000000000000000000.seg at offset 0"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn not_a_log_and_missing_dir_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "hello").unwrap();
    let missing = tmp.path().join("missing");
    for cmd in ["verify", "stats", "dump"] {
        let o = mmlog_in(tmp.path(), &[cmd]);
        assert_eq!(code(&o), 2, "{cmd} on a non-log: {}", stderr(&o));
        assert!(stderr(&o).contains("not an mmlog log"), "{}", stderr(&o));
        let o = mmlog_in(&missing, &[cmd]);
        assert_eq!(code(&o), 2, "{cmd} on a missing dir: {}", stderr(&o));
        assert!(stderr(&o).contains("no such directory"), "{}", stderr(&o));
    }
}

#[test]
fn garbage_segment_file_is_reported_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let segments = tmp.path().join("segments");
    std::fs::create_dir(&segments).unwrap();
    std::fs::write(segments.join("00000000000000000000.seg"), vec![0x5a; 8192]).unwrap();
    for cmd in ["verify", "stats", "dump"] {
        let o = mmlog_in(tmp.path(), &[cmd]);
        assert!(matches!(code(&o), 0..=2), "{cmd}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{cmd}: {}", stderr(&o));
    }
    let o = mmlog_in(tmp.path(), &["verify"]);
    assert!(stdout(&o).contains("bad magic"), "{}", stdout(&o));
}

#[test]
fn bad_arguments_exit_2() {
    let (_tmp, dir) = small_log();
    let o = mmlog_in(&dir, &["dump", "--since", "last tuesday"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("RFC 3339"), "{}", stderr(&o));
    assert_eq!(code(&mmlog(&["frobnicate"])), 2);
}

#[test]
fn stats_json_reports_the_records() {
    let (_tmp, dir) = small_log();
    let v = stats_json(&dir);
    assert_eq!(v["records"], RECORDS);
    assert_eq!(v["first_seq"], 0);
    assert_eq!(v["next_seq"], RECORDS);
    assert!(v["segments"]["sealed"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(v["lock"]["held"], false);
    assert!(v["time_range"]["first"].as_str().unwrap().ends_with('Z'));

    let o = ok(&dir, &["stats"]);
    assert!(
        stdout(&o).contains("sequence numbers 0 to 199"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn stats_works_while_another_handle_has_the_log_open() {
    let (_tmp, dir) = small_log();
    let log = Log::open(&dir, Options::default().segment_size(4096)).unwrap();
    log.append(b"one more").unwrap();
    let v = stats_json(&dir);
    assert_eq!(v["lock"]["held"], true);
    assert_eq!(v["lock"]["pid"], std::process::id());
    assert_eq!(v["next_seq"], RECORDS + 1);
    ok(&dir, &["verify"]);
    drop(log);
}

#[test]
fn dump_from_limit_and_json() {
    let (_tmp, dir) = small_log();
    let o = ok(&dir, &["dump", "--from", "150"]);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 50);
    assert!(lines[0].starts_with("150 time="), "{}", lines[0]);
    assert!(
        lines[0].contains("\"record number 0150 of the cli test\""),
        "{}",
        lines[0]
    );

    let recs = json_lines(&mmlog_in(
        &dir,
        &["dump", "--from", "10", "--limit", "3", "--json"],
    ));
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0]["seq"], 10);
    assert_eq!(recs[2]["payload"], "record number 0012 of the cli test");
    assert_eq!(recs[0]["encoding"], "utf8");

    // --since with a record's own timestamp starts at or before that record.
    let ts = recs[1]["timestamp"].as_str().unwrap().to_string();
    for since in [ts, recs[1]["timestamp_ns"].to_string()] {
        let first = json(&ok(
            &dir,
            &["dump", "--since", &since, "--limit", "1", "--json"],
        ));
        assert!(first["seq"].as_u64().unwrap() <= 11, "{first}");
        assert!(first["timestamp_ns"].as_u64() >= recs[1]["timestamp_ns"].as_u64());
    }
}

#[test]
fn demo_refuses_a_directory_that_is_not_a_log() {
    let tmp = tempfile::tempdir().unwrap();
    let precious = tmp.path().join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let o = mmlog(&[
        "demo",
        "--dir",
        tmp.path().to_str().unwrap(),
        "--records",
        "10",
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("refusing"), "{}", stderr(&o));
    assert!(precious.exists());
}

#[test]
fn small_demo_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let d = dir.to_str().unwrap();
    let o = mmlog(&[
        "demo",
        "--dir",
        d,
        "--writers",
        "50",
        "--events",
        "3000",
        "--records",
        "20000",
        "--append-threads",
        "2",
        "--keep",
    ]);
    assert_exit(&o, 0, "demo");
    let out = stdout(&o);
    assert!(out.contains("PASS: all"), "{out}");
    assert!(out.contains("summary"), "{out}");
    assert!(
        out.contains("the spec's comparison matrix, measured"),
        "{out}"
    );
    for log in ["events", "migration", "engine"] {
        assert!(
            dir.join(log).join("segments").is_dir(),
            "--keep keeps the {log} log"
        );
    }
    // The logs it kept are logs the other commands read.
    ok(&dir.join("engine"), &["verify"]);
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_string();
    ok(&dir.join("events"), &["state", "--at", &now_ns]);
    // The demo archives its early events: `state` reads them through the archive.
    let o = ok(&dir.join("events"), &["state", "--seq", "100"]);
    assert!(stdout(&o).starts_with("version: 100\n"), "{}", stdout(&o));
    // A second run replaces the logs it left.
    let o = mmlog(&[
        "demo",
        "--dir",
        d,
        "--writers",
        "4",
        "--events",
        "500",
        "--records",
        "2000",
    ]);
    assert_exit(&o, 0, "the second demo run");
    assert!(stdout(&o).contains("removed the demo log left by an earlier run"));
    assert!(!dir.exists(), "without --keep the log is removed");
}

/// With one sealed segment before the unsealed tail, `inspect` counts the whole log as the
/// tail; a damaged header there is still corruption, as recovery refuses to open it.
#[test]
fn damaged_header_before_the_tail_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let opts = Options::default()
        .segment_size(4096)
        .durability(Durability::Buffered);
    let log = Log::open(&dir, opts.clone()).unwrap();
    for i in 0..70 {
        log.append(format!("record number {i:04} of the cli test").as_bytes())
            .unwrap();
    }
    log.close().unwrap();
    let stats = stats_json(&dir);
    assert_eq!(stats["segments"]["sealed"], 1, "{stats}");
    assert_eq!(stats["segments"]["unsealed"], 1, "{stats}");
    let path = dir.join("segments").join("00000000000000000000.seg");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    assert!(Log::open(&dir, opts).is_err(), "recovery refuses this log");
    let o = mmlog_in(&dir, &["verify"]);
    assert_exit(&o, 1, "verify");
    let o = mmlog_in(&dir, &["dump"]);
    assert_eq!(
        code(&o),
        1,
        "dump must not pass over the damaged segment quietly"
    );
    assert!(
        stderr(&o).contains("00000000000000000000.seg"),
        "{}",
        stderr(&o)
    );
}
