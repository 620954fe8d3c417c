//! End-to-end tests of the write commands of the `mmlog` binary (`compact`, `archive`,
//! `recover`, each with `--dry-run` and `--json`), and of how every command refuses bad
//! input: one `error: ` line on stderr and the documented exit code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{
    code, fails, json, mmlog, mmlog_in, ok, release, seg_files, stats_json, stderr, stdout,
};
use mmlog::{Durability, Log, Options};
use serde_json::Value;

/// Records in a test log: about 500 fit in a 64 KiB segment, so several are sealed.
const RECORDS: u64 = 3000;
/// The checkpoint of a test log covers records 0 to this.
const CHECKPOINT: u64 = 1999;

/// Runs a command on `dir` (see [`mmlog_in`]) with `--json`: it must succeed, print JSON and
/// nothing on stderr.
fn json_ok(dir: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let o = ok(dir, &args);
    assert!(stderr(&o).is_empty(), "{args:?}: stderr {}", stderr(&o));
    json(&o)
}

fn options() -> Options {
    Options::default()
        .segment_size(64 << 10)
        .durability(Durability::Buffered)
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i:06} of the operate test, padded to a hundred bytes or so .......")
        .into_bytes()
}

/// A closed log of `RECORDS` records in 64 KiB segments, with a checkpoint at `CHECKPOINT`.
fn test_log() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, options()).unwrap();
    for i in 0..RECORDS {
        log.append(&payload(i)).unwrap();
    }
    log.sync().unwrap();
    log.checkpoint(CHECKPOINT, b"state after the checkpoint")
        .unwrap();
    release(log);
    (tmp, dir)
}

/// Every file under `dir`, with its bytes: what a dry run must leave as it was.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.push((p.clone(), Vec::new()));
                todo.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The files that differ between two snapshots (added, removed or changed).
fn changed(before: &[(PathBuf, Vec<u8>)], after: &[(PathBuf, Vec<u8>)]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = before
        .iter()
        .filter(|b| !after.contains(b))
        .chain(after.iter().filter(|a| !before.contains(a)))
        .map(|(p, _)| p.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Asserts that nothing under `dir` changed since `before`.
fn assert_unchanged(dir: &Path, before: &[(PathBuf, Vec<u8>)], what: &str) {
    let diff = changed(before, &snapshot(dir));
    assert!(diff.is_empty(), "{what} changed {diff:?}");
}

/// The live segment files, by name.
fn live_segments(dir: &Path) -> Vec<PathBuf> {
    seg_files(&dir.join("segments"))
}

/// Reads the log from `from` and checks that every record is the one appended.
fn read_checked(dir: &Path, from: u64) -> u64 {
    let log = Log::open(dir, options()).unwrap();
    let mut r = log.read_from(from).unwrap();
    let mut n = 0;
    while let Some(rec) = r.next() {
        let rec = rec.unwrap();
        assert_eq!(rec.seq(), from + n);
        assert_eq!(rec.payload(), payload(rec.seq()).as_slice());
        n += 1;
    }
    drop(r);
    release(log);
    n
}

/// The parts of a compact/archive report that the dry run and the real run share.
fn plan_part(v: &Value) -> Value {
    let segments: Vec<Value> = v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s["id"], "path": s["path"], "base_seq": s["base_seq"],
                "records": s["records"], "bytes": s["bytes"], "max_ts_ns": s["max_ts_ns"],
                "archive_path": s["archive_path"],
            })
        })
        .collect();
    serde_json::json!({
        "mode": v["mode"],
        "retention": v["retention"],
        "segments_removed": v["segments_removed"],
        "segments_archived": v["segments_archived"],
        "records_removed": v["records_removed"],
        "bytes_removed": v["bytes_removed"],
        "first_seq": v["first_seq"],
        "held_by": v["held_by"],
        "held_by_consumer": v["held_by_consumer"],
        "checkpoint_seq": v["checkpoint_seq"],
        "next_seq": v["next_seq"],
        "segments": segments,
    })
}

/// Runs the command `args` on `dir` with `--dry-run`, then as it is; checks the dry run
/// changed nothing and reported what the real run then did. Returns the real run's JSON.
fn dry_then_real(dir: &Path, args: &[&str]) -> Value {
    let before = snapshot(dir);
    let mut dry_args = args.to_vec();
    dry_args.push("--dry-run");
    let dry = json_ok(dir, &dry_args);
    assert_unchanged(dir, &before, &format!("{dry_args:?}"));
    // The text form too, and it changes nothing either.
    let o = ok(dir, &dry_args);
    assert!(
        stdout(&o).contains("dry run: nothing was changed"),
        "{}",
        stdout(&o)
    );
    assert_unchanged(dir, &before, &format!("{dry_args:?}"));

    let real = json_ok(dir, args);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(real["dry_run"], false);
    assert_eq!(plan_part(&dry), plan_part(&real), "{args:?}");
    assert_eq!(dry["recovery"]["clean"], true);
    assert_eq!(real["recovery"]["clean"], true);
    for seg in real["segments"].as_array().unwrap() {
        let path = PathBuf::from(seg["path"].as_str().unwrap());
        assert!(!path.exists(), "{} is still live", path.display());
    }
    real
}

#[test]
fn compact_dry_run_is_what_compact_does() {
    let (_tmp, dir) = test_log();
    let live_before = live_segments(&dir);
    let real = dry_then_real(&dir, &["compact"]);
    let removed = real["segments_removed"].as_u64().unwrap();
    assert!(removed >= 2, "{real}");
    assert_eq!(real["segments"].as_array().unwrap().len() as u64, removed);
    assert_eq!(real["held_by"], "checkpoint");
    assert_eq!(real["checkpoint_seq"], CHECKPOINT);
    assert_eq!(real["mode"], "delete");
    assert_eq!(real["segments_archived"], 0);
    let first = real["first_seq"].as_u64().unwrap();
    assert!(first > 0 && first <= CHECKPOINT + 1, "{real}");
    assert_eq!(real["records_removed"], first);
    assert_eq!(real["segments"][0]["base_seq"], 0);
    assert_eq!(
        live_segments(&dir),
        live_before[removed as usize..].to_vec()
    );
    // What compaction kept reads back; what it removed is gone.
    assert_eq!(read_checked(&dir, first), RECORDS - first);
    let log = Log::open(&dir, options()).unwrap();
    assert!(log.read_from(0).is_err());
    release(log);

    // Nothing is left to remove: both runs say so, and the text form names the reason.
    let again = dry_then_real(&dir, &["compact"]);
    assert_eq!(again["segments_removed"], 0);
    let o = mmlog_in(&dir, &["compact", "--dry-run"]);
    let out = stdout(&o);
    assert!(out.contains("nothing to remove"), "{out}");
    assert!(out.contains("held back by the latest checkpoint"), "{out}");
}

#[test]
fn compact_keep_flags() {
    // --keep-records without a checkpoint requirement: held by the keep rule.
    let (_tmp, dir) = test_log();
    let real = dry_then_real(
        &dir,
        &[
            "compact",
            "--keep-records",
            "1000",
            "--no-require-checkpoint",
        ],
    );
    assert_eq!(real["held_by"], "retention");
    assert_eq!(real["retention"]["keep_records"], 1000);
    assert_eq!(real["retention"]["require_checkpoint"], false);
    let first = real["first_seq"].as_u64().unwrap();
    assert!(first <= RECORDS - 1000 && first > CHECKPOINT / 2, "{real}");

    // --keep-bytes in a unit: at least 192 KiB of segment files stay.
    let (_tmp, dir) = test_log();
    let real = dry_then_real(
        &dir,
        &["compact", "--keep-bytes", "192K", "--no-require-checkpoint"],
    );
    assert_eq!(real["retention"]["keep_bytes"], 192 << 10);
    assert_eq!(real["held_by"], "retention");
    let live = live_segments(&dir).len();
    assert!((3..=5).contains(&live), "{live} live segment files: {real}");

    // --keep-age an hour: everything is younger, so nothing goes.
    let (_tmp, dir) = test_log();
    let real = dry_then_real(&dir, &["compact", "--keep-age", "1h"]);
    assert_eq!(real["retention"]["keep_age_ns"], 3_600_000_000_000u64);
    assert_eq!(real["segments_removed"], 0);
    assert_eq!(real["held_by"], "retention");
    assert_eq!(read_checked(&dir, 0), RECORDS);

    // A consumer holds records it has not consumed.
    let (_tmp, dir) = test_log();
    {
        let log = Log::open(&dir, options()).unwrap();
        log.register_consumer("billing", 700).unwrap();
        release(log);
    }
    let real = dry_then_real(&dir, &["compact"]);
    assert_eq!(real["held_by"], "consumer");
    assert_eq!(real["held_by_consumer"], "billing");
    assert!(real["first_seq"].as_u64().unwrap() <= 700);
}

#[test]
fn archive_compress_and_move_keep_the_records_readable() {
    for (mode, args, suffix) in [
        ("compress", &["archive"][..], ".seg.lz4"),
        ("move", &["archive", "--mode", "move"], ".seg"),
    ] {
        let (_tmp, dir) = test_log();
        let real = dry_then_real(&dir, args);
        assert_eq!(real["mode"], mode);
        let removed = real["segments_removed"].as_u64().unwrap();
        assert!(removed >= 2, "{real}");
        assert_eq!(real["segments_archived"], removed);
        for seg in real["segments"].as_array().unwrap() {
            let archived = PathBuf::from(seg["archive_path"].as_str().unwrap());
            assert!(archived.exists(), "{}", archived.display());
            assert!(archived.starts_with(dir.join("archive")));
            assert!(archived.to_str().unwrap().ends_with(suffix));
            let on_disk = std::fs::metadata(&archived).unwrap().len();
            assert_eq!(seg["archive_bytes"], on_disk);
            if mode == "compress" {
                assert!(on_disk < seg["bytes"].as_u64().unwrap(), "{seg}");
            }
        }
        assert!(real["archive_bytes"].as_u64().unwrap() > 0);
        // Every record, archived or live, reads back through the log.
        assert_eq!(read_checked(&dir, 0), RECORDS, "{mode}");
        ok(&dir, &["verify"]);
        // The text of a real run names the archive files.
        let (_tmp2, dir2) = test_log();
        let o = ok(&dir2, args);
        let out = stdout(&o);
        assert!(out.contains("into the archive"), "{out}");
        assert!(out.contains(suffix), "{out}");
    }
}

/// Appends garbage right after the last frame of the active segment; returns the segment
/// file and the offset where the frames end.
fn tear_the_tail(dir: &Path) -> (PathBuf, u64) {
    let stats = stats_json(dir);
    let active = stats["segment_list"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|s| s["state"] == "unsealed")
        .expect("an unsealed segment")
        .clone();
    let path = PathBuf::from(active["path"].as_str().unwrap());
    let end = 128 + active["bytes_used"].as_u64().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[end as usize..end as usize + 40].fill(0xa5);
    std::fs::write(&path, bytes).unwrap();
    (path, end)
}

#[test]
fn recover_dry_run_names_the_torn_tail_and_recover_repairs_it() {
    let (_tmp, dir) = test_log();
    let clean = json_ok(&dir, &["recover", "--dry-run"]);
    assert_eq!(clean["result"], "clean");
    assert_eq!(clean["next_seq"], RECORDS);

    let (path, end) = tear_the_tail(&dir);
    let before = snapshot(&dir);
    let dry = json_ok(&dir, &["recover", "--dry-run"]);
    assert_unchanged(&dir, &before, "recover --dry-run --json");
    assert_eq!(dry["result"], "would_repair");
    assert_eq!(dry["dry_run"], true);
    let t = &dry["truncation"];
    assert_eq!(t["path"], path.display().to_string());
    assert_eq!(t["offset"], end);
    assert_eq!(t["bytes_dropped"], 40);
    assert!(t["reason"].as_str().unwrap().len() > 3, "{t}");

    let o = ok(&dir, &["recover", "--dry-run"]);
    let out = stdout(&o);
    let name = path.display().to_string();
    assert!(
        out.contains(&format!("would cut the log in {name} at offset {end}")),
        "{out}"
    );
    assert!(out.contains("recovery would repair this log"), "{out}");
    assert_unchanged(&dir, &before, "recover --dry-run");

    // The real run does what the dry run said, and the log is clean afterwards.
    let real = json_ok(&dir, &["recover"]);
    assert_eq!(real["result"], "repaired");
    for key in [
        "truncation",
        "removed_files",
        "extended_files",
        "removed_temporary",
        "segments",
        "next_seq",
        "sealed_segments_trusted",
        "segments_scanned",
        "bytes_scanned",
    ] {
        assert_eq!(dry[key], real[key], "{key}");
    }
    let after = json_ok(&dir, &["recover", "--dry-run"]);
    assert_eq!(after["result"], "clean", "{after}");
    assert_eq!(after["truncation"], Value::Null);
    ok(&dir, &["verify"]);
    assert_eq!(read_checked(&dir, 0), RECORDS);
}

#[test]
fn recover_reports_leftovers_and_a_clean_log() {
    let (_tmp, dir) = test_log();
    let o = ok(&dir, &["recover"]);
    assert!(
        stdout(&o).contains("clean: nothing to repair"),
        "{}",
        stdout(&o)
    );

    // An unfinished segment and an unfinished checkpoint: the first is a repair, the
    // second routine clean-up.
    let seg_tmp = dir.join("segments").join("00000000000000000099.seg.tmp");
    std::fs::write(&seg_tmp, b"half a segment").unwrap();
    let ckpt_tmp = dir
        .join("checkpoints")
        .join("00000000000000002500.ckpt.tmp");
    std::fs::write(&ckpt_tmp, b"half a checkpoint").unwrap();
    let dry = json_ok(&dir, &["recover", "--dry-run"]);
    assert_eq!(dry["result"], "would_repair");
    assert_eq!(dry["removed_files"][0], seg_tmp.display().to_string());
    assert_eq!(dry["removed_temporary"][0], ckpt_tmp.display().to_string());
    assert!(seg_tmp.exists() && ckpt_tmp.exists());
    let real = json_ok(&dir, &["recover"]);
    assert_eq!(real["removed_files"], dry["removed_files"]);
    assert_eq!(real["removed_temporary"], dry["removed_temporary"]);
    assert!(!seg_tmp.exists() && !ckpt_tmp.exists());
}

#[test]
fn json_shapes() {
    let (_tmp, dir) = test_log();
    let v = json_ok(&dir, &["compact", "--dry-run"]);
    for (key, check) in [
        ("dir", Value::is_string as fn(&Value) -> bool),
        ("dry_run", Value::is_boolean),
        ("mode", Value::is_string),
        ("retention", Value::is_object),
        ("segments_removed", Value::is_u64),
        ("segments_archived", Value::is_u64),
        ("records_removed", Value::is_u64),
        ("bytes_removed", Value::is_u64),
        ("archive_bytes", Value::is_null),
        ("first_seq", Value::is_u64),
        ("held_by", Value::is_string),
        ("held_by_consumer", Value::is_null),
        ("checkpoint_seq", Value::is_u64),
        ("next_seq", Value::is_u64),
        ("segments", Value::is_array),
        ("recovery", Value::is_object),
        ("lock", Value::is_object),
    ] {
        assert!(check(&v[key]), "compact: {key} is {}", v[key]);
    }
    let seg = &v["segments"][0];
    for key in ["id", "base_seq", "records", "bytes", "max_ts_ns"] {
        assert!(seg[key].is_u64(), "segment {key}: {seg}");
    }
    assert!(seg["path"].is_string() && seg["archive_path"].is_null());
    assert_eq!(v["lock"]["held"], false);
    let r = &v["retention"];
    assert!(r["keep_records"].is_null() && r["keep_bytes"].is_null());
    assert!(r["keep_age_ns"].is_null() && r["require_checkpoint"] == true);

    let v = json_ok(&dir, &["archive", "--dry-run"]);
    assert_eq!(v["mode"], "compress");
    assert!(v["segments"][0]["archive_path"].is_string(), "{v}");

    let v = json_ok(&dir, &["recover", "--dry-run"]);
    for (key, check) in [
        ("dir", Value::is_string as fn(&Value) -> bool),
        ("dry_run", Value::is_boolean),
        ("result", Value::is_string),
        ("clean", Value::is_boolean),
        ("truncation", Value::is_null),
        ("removed_files", Value::is_array),
        ("extended_files", Value::is_array),
        ("removed_temporary", Value::is_array),
        ("removed_spares", Value::is_array),
        ("segments", Value::is_u64),
        ("sealed_segments_trusted", Value::is_u64),
        ("segments_scanned", Value::is_u64),
        ("bytes_scanned", Value::is_u64),
        ("next_seq", Value::is_u64),
        ("lock", Value::is_object),
    ] {
        assert!(check(&v[key]), "recover: {key} is {}", v[key]);
    }
}

#[test]
fn dry_runs_work_while_the_log_is_open_and_writing_commands_are_refused() {
    let (_tmp, dir) = test_log();
    let log = Log::open(&dir, options()).unwrap();
    log.append(&payload(RECORDS)).unwrap();
    log.sync().unwrap();

    let v = json_ok(&dir, &["compact", "--dry-run"]);
    assert_eq!(v["lock"]["held"], true);
    assert_eq!(v["lock"]["pid"], std::process::id());
    assert!(v["segments_removed"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(v["next_seq"], RECORDS + 1);
    let v = json_ok(&dir, &["archive", "--dry-run", "--mode", "move"]);
    assert!(v["segments_removed"].as_u64().unwrap() >= 2, "{v}");
    let v = json_ok(&dir, &["recover", "--dry-run"]);
    assert_eq!(v["lock"]["held"], true);
    assert_eq!(v["truncation"], Value::Null, "{v}");
    let o = mmlog_in(&dir, &["compact", "--dry-run"]);
    assert!(
        stdout(&o).contains("the log is open in process"),
        "{}",
        stdout(&o)
    );

    let live = live_segments(&dir);
    for args in [
        &["compact"][..],
        &["compact", "--keep-records", "10"],
        &["archive"],
        &["archive", "--mode", "move", "--json"],
        &["recover"],
        &["recover", "--json"],
    ] {
        let o = mmlog_in(&dir, args);
        let line = fails(&o, 2, "locked", &format!("{args:?} on a locked log"));
        assert!(
            line.contains(&format!("pid {}", std::process::id())),
            "{line}"
        );
        assert!(stdout(&o).is_empty(), "{args:?}: {}", stdout(&o));
    }
    assert_eq!(live_segments(&dir), live);
    release(log);
    assert_eq!(read_checked(&dir, 0), RECORDS + 1);
}

/// Every command on a given directory (see [`mmlog_in`]).
const EVERY_COMMAND: [&[&str]; 13] = [
    &["stats"],
    &["stats", "--json"],
    &["dump"],
    &["verify"],
    &["verify", "--json"],
    &["compact"],
    &["compact", "--dry-run"],
    &["compact", "--dry-run", "--json"],
    &["archive"],
    &["archive", "--dry-run"],
    &["recover"],
    &["recover", "--dry-run"],
    &["recover", "--dry-run", "--json"],
];

#[test]
fn missing_directory_and_not_a_log_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "keep me").unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for args in EVERY_COMMAND {
        let what = format!("{args:?}");
        let o = mmlog_in(&missing, args);
        fails(
            &o,
            2,
            "no such directory",
            &format!("{what} on a missing dir"),
        );
        assert!(!missing.exists(), "{what} created the directory");
        let o = mmlog_in(&other, args);
        fails(&o, 2, "not an mmlog log", &format!("{what} on a non-log"));
        // An empty directory is not a log either: no command makes one.
        let o = mmlog_in(&empty, args);
        fails(
            &o,
            2,
            "not an mmlog log",
            &format!("{what} on an empty dir"),
        );
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "{what}");
    }
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);
}

#[test]
fn newer_format_version_exits_2() {
    let (_tmp, dir) = test_log();
    let seg = dir.join("segments").join("00000000000000000000.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    // The format version: a little-endian u32 after the 8-byte magic.
    bytes[8..12].copy_from_slice(&9u32.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    let before = snapshot(&dir);
    for args in EVERY_COMMAND {
        let o = mmlog_in(&dir, args);
        let what = format!("{args:?} on a newer version");
        let line = fails(&o, 2, "unsupported format version 9", &what);
        assert!(line.contains("00000000000000000000.seg"), "{what}: {line}");
    }
    assert_unchanged(&dir, &before, "a command on a log of a newer version");
}

#[test]
fn corrupt_log_exits_1_naming_the_file() {
    let (_tmp, dir) = test_log();
    // A damaged header in the first segment, with valid segments after it: recovery refuses
    // to open the log, and every command sees it.
    let seg = dir.join("segments").join("00000000000000000000.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    for args in EVERY_COMMAND {
        let before = snapshot(&dir);
        let o = mmlog_in(&dir, args);
        let what = format!("{args:?} on a corrupt log");
        let line = fails(&o, 1, "00000000000000000000.seg", &what);
        assert!(line.contains("offset 0"), "{what}: {line}");
        // Only opening the log (to be refused by recovery) writes: its owner, in LOCK.
        let writes =
            matches!(args[0], "compact" | "archive" | "recover") && !args.contains(&"--dry-run");
        let diff = changed(&before, &snapshot(&dir));
        let allowed = if writes {
            vec![dir.join("LOCK")]
        } else {
            Vec::new()
        };
        assert!(
            diff.is_empty() || diff == allowed,
            "{what} changed {diff:?}"
        );
    }
}

#[test]
fn bad_times_durations_and_sizes_exit_2() {
    let (_tmp, dir) = test_log();
    let before = snapshot(&dir);
    for (args, needle) in [
        (&["dump", "--since", "last tuesday"][..], "is not a time"),
        (&["dump", "--from", "minus one"], "--from"),
        (&["compact", "--keep-age", "soon"], "is not a duration"),
        (&["compact", "--keep-age", "10"], "is not a duration"),
        (
            &["archive", "--keep-age", "1.5h", "--dry-run"],
            "is not a duration",
        ),
        (&["compact", "--keep-bytes", "lots"], "is not a byte count"),
        (&["archive", "--keep-records", "-3"], "'-3'"),
        (&["archive", "--mode", "zip"], "zip"),
        (&["recover", "--force"], "--force"),
    ] {
        let o = mmlog_in(&dir, args);
        fails(&o, 2, needle, &format!("{args:?}"));
    }
    for args in [
        vec!["compact"],
        vec!["frobnicate"],
        vec!["recover", "a", "b"],
    ] {
        fails(&mmlog(&args), 2, "", &format!("{args:?}"));
    }
    assert_unchanged(&dir, &before, "bad arguments");
    // --help still prints the help, with the exit codes, and succeeds.
    for args in [vec!["--help"], vec!["compact", "--help"]] {
        let o = mmlog(&args);
        assert_eq!(code(&o), 0);
        assert!(stdout(&o).contains("Exit codes:"), "{}", stdout(&o));
    }
}
