//! What the end-to-end tests of the `mmlog` binary share: running it, reading what it
//! printed, and comparing what `mmlog state --json` reports with what the library says.

// Each test file uses some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

use mmlog::Log;
use mmlog::events::StateView;
use serde_json::Value;

/// Held while a child process is started, and while this process lets go of a log.
///
/// A log's lock is an `flock` on its lock file, held until every descriptor of that open file
/// is closed. A child started by another test thread inherits a copy of every descriptor
/// until it `exec`s (close-on-exec closes them then), so a log dropped in that window stays
/// locked for a moment and an immediate reopen, by this process or by a `mmlog` child, fails
/// with `Locked`. `Command::spawn` returns once the child has `exec`ed, so starting children
/// and dropping logs one at a time closes the window.
static FORK: Mutex<()> = Mutex::new(());

fn fork_guard() -> MutexGuard<'static, ()> {
    FORK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Closes `log` (see [`FORK`]).
pub fn release(log: Log) {
    let _g = fork_guard();
    log.close().unwrap();
}

/// Runs `mmlog ARGS...` to the end, with its output captured (started under [`FORK`]).
pub fn mmlog(args: &[&str]) -> Output {
    let child = {
        let _g = fork_guard();
        Command::new(env!("CARGO_BIN_EXE_mmlog"))
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run mmlog")
    };
    child.wait_with_output().expect("wait for mmlog")
}

/// Runs the command `args[0]` on the log in `dir`: `mmlog ARGS[0] DIR ARGS[1..]`.
pub fn mmlog_in(dir: &Path, args: &[&str]) -> Output {
    let (cmd, rest) = args.split_first().expect("a command");
    let mut all = vec![*cmd, dir.to_str().unwrap()];
    all.extend_from_slice(rest);
    mmlog(&all)
}

/// Runs [`mmlog_in`] and insists on success.
pub fn ok(dir: &Path, args: &[&str]) -> Output {
    let o = mmlog_in(dir, args);
    assert_exit(&o, 0, &format!("mmlog {args:?}"));
    o
}

/// What a command printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a command printed on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A command's exit code.
pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

/// Asserts that a command exited with `want`, showing what it printed when it did not.
pub fn assert_exit(o: &Output, want: i32, what: &str) {
    assert_eq!(
        code(o),
        want,
        "{what}\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// Checks that a command failed with `want` and exactly one stderr line, `error: ...`
/// containing `needle`, and did not panic; returns that line.
pub fn fails(o: &Output, want: i32, needle: &str, what: &str) -> String {
    assert_exit(o, want, what);
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one stderr line, got {err:?}");
    assert!(lines[0].starts_with("error: "), "{what}: {err:?}");
    assert!(
        lines[0].contains(needle),
        "{what}: {needle:?} not in {err:?}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{what}: {err}"
    );
    lines[0].to_string()
}

/// Stdout as one JSON value.
pub fn json(o: &Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// Stdout as one JSON value a line (`dump --json`, `tail --json`).
pub fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `mmlog stats DIR --json`, which must succeed.
pub fn stats_json(dir: &Path) -> Value {
    json(&ok(dir, &["stats", "--json"]))
}

/// The sequence number of a record line of `dump` or `tail` (its first field).
pub fn seq_of(line: &str) -> u64 {
    line.split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a record line: {line}"))
}

/// `mmlog state DIR POINT... --json --full` with no limit, which must succeed: all of the
/// state at `point` (`--seq N` or `--at TIME`).
pub fn state_full(dir: &Path, point: &[&str]) -> Output {
    let mut args = vec!["state"];
    args.extend_from_slice(point);
    args.extend_from_slice(&["--json", "--full", "--limit", "1000000"]);
    ok(dir, &args)
}

/// The JSON of [`state_full`].
pub fn state_json(dir: &Path, point: &[&str]) -> Value {
    json(&state_full(dir, point))
}

/// The segment files (`*.seg`) in `dir` (a log's `segments/` or `archive/`), by name.
pub fn seg_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// A state as compared: its version, and its items by id (id, writer, seq, data).
pub type Summary = (Option<u64>, Vec<(String, u64, u64, String)>);

/// What the library says, in the shape of `state --json`.
pub fn expected(view: &StateView) -> Summary {
    let mut items: Vec<_> = view
        .state()
        .items()
        .map(|(id, it)| {
            (
                id.to_string(),
                u64::from(it.writer_id),
                it.seq,
                it.data.to_string(),
            )
        })
        .collect();
    items.sort();
    (view.version(), items)
}

/// What `state --json` says, in the same shape (every item listed: see [`state_full`]).
pub fn reported(v: &Value) -> Summary {
    let items: Vec<_> = v["listed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|it| {
            (
                it["item_id"].as_str().unwrap().to_string(),
                it["writer_id"].as_u64().unwrap(),
                it["seq"].as_u64().unwrap(),
                it["data"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(v["items"].as_u64().unwrap() as usize, items.len(), "{v}");
    (v["version"].as_u64(), items)
}
