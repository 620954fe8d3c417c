//! Kill at every step: a child process runs one multi-step operation (a checkpoint write, or
//! a compaction that deletes, moves or compresses segments) and kills itself with SIGKILL at
//! its N-th step (`mmlog::failpoint`); the parent reopens the log and checks that nothing was
//! lost, duplicated or resurrected, that no damaged or temporary file is trusted or left
//! behind, and that finishing the operation afterwards reaches the same state as a run that
//! was never interrupted. N goes 1, 2, 3, ... until the operation finishes untouched, so
//! every step is visited.

use std::path::{Path, PathBuf};
use std::process::Command;

use mmlog::{ArchiveMode, Log, Options, Retention};

const CHILD_DIR: &str = "MMLOG_STEP_CHILD_DIR";
const CHILD_STEP: &str = "MMLOG_STEP_CHILD_N";
const CHILD_SCENARIO: &str = "MMLOG_STEP_CHILD_SCENARIO";
const RECORDS: u64 = 2000;
const OLD_CHECKPOINT: u64 = 1500;
const NEW_CHECKPOINT: u64 = 1900;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Checkpoint,
    Compact(ArchiveMode),
}

const SCENARIOS: [Scenario; 4] = [
    Scenario::Checkpoint,
    Scenario::Compact(ArchiveMode::Delete),
    Scenario::Compact(ArchiveMode::Move),
    Scenario::Compact(ArchiveMode::Compress),
];

impl Scenario {
    fn name(self) -> String {
        format!("{self:?}")
    }

    fn from_name(s: &str) -> Option<Scenario> {
        SCENARIOS.into_iter().find(|x| x.name() == s)
    }

    fn mode(self) -> ArchiveMode {
        match self {
            Scenario::Checkpoint => ArchiveMode::Delete,
            Scenario::Compact(m) => m,
        }
    }

    fn options(self) -> Options {
        Options::default()
            .segment_size(4096)
            .keep_checkpoints(1)
            .retention(Retention::default().archive(self.mode()))
    }

    /// The operation under test.
    fn run(self, log: &Log) -> mmlog::Result<()> {
        match self {
            Scenario::Checkpoint => log
                .checkpoint(NEW_CHECKPOINT, &blob(NEW_CHECKPOINT))
                .map(drop),
            Scenario::Compact(_) => log.compact().map(drop),
        }
    }
}

fn blob(seq: u64) -> Vec<u8> {
    (0..1000 + seq).map(|i| (i * 13 + seq) as u8).collect()
}

/// The child's side: runs the scenario with the N-th step armed to kill.
#[test]
fn step_child() {
    let (Some(dir), Some(n), Some(scenario)) = (
        std::env::var_os(CHILD_DIR),
        std::env::var(CHILD_STEP).ok().and_then(|n| n.parse().ok()),
        std::env::var(CHILD_SCENARIO)
            .ok()
            .and_then(|s| Scenario::from_name(&s)),
    ) else {
        return; // Not a child: nothing to do.
    };
    let log = Log::open(&dir, scenario.options()).expect("child open");
    mmlog::failpoint::arm_kill(n);
    scenario.run(&log).expect("operation");
    // The armed step was never reached: the operation has fewer steps.
    std::process::exit(if mmlog::failpoint::disarm() { 0 } else { 7 });
}

/// A log of `RECORDS` records over many small segments, with a checkpoint at
/// `OLD_CHECKPOINT`.
fn template(dir: &Path) {
    let log = Log::open(dir, Options::default().segment_size(4096)).unwrap();
    for i in 0..RECORDS {
        log.append(&i.to_le_bytes()).unwrap();
    }
    log.checkpoint(OLD_CHECKPOINT, &blob(OLD_CHECKPOINT))
        .unwrap();
    log.close().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// What a reopened log holds, for comparing runs.
#[derive(Debug, PartialEq, Eq)]
struct State {
    first_live: u64,
    archived: usize,
    checkpoint: u64,
}

/// Checks everything a reopened log promises after an interrupted `scenario`.
fn check(dir: &Path, scenario: Scenario) -> Result<State, String> {
    let log = Log::open(dir, scenario.options()).map_err(|e| format!("reopen: {e}"))?;
    let report = log.recovery_report();
    if report.truncation.is_some() || !(RECORDS..=RECORDS + 1).contains(&report.next_seq) {
        return Err(format!("the log itself changed: {report:?}"));
    }
    let records = RECORDS + u64::from(report.next_seq == RECORDS + 1);
    let cp = log
        .latest_checkpoint()
        .map_err(|e| e.to_string())?
        .ok_or("no checkpoint")?;
    if !cp.skipped().is_empty() {
        return Err(format!("a damaged checkpoint was left: {:?}", cp.skipped()));
    }
    if cp.seq() != OLD_CHECKPOINT && cp.seq() != NEW_CHECKPOINT || cp.data() != blob(cp.seq()) {
        return Err(format!(
            "wrong checkpoint {} ({} bytes)",
            cp.seq(),
            cp.data().len()
        ));
    }
    let first_live = log.stats().first_seq;
    if first_live > cp.seq() + 1 {
        return Err(format!(
            "records after the checkpoint are gone: live from {first_live}"
        ));
    }
    // Everything from the first readable record to the end, once each, in order.
    let keeps_all = scenario.mode() != ArchiveMode::Delete;
    let from = if keeps_all { 0 } else { first_live };
    let mut r = log.read_from(from).map_err(|e| e.to_string())?;
    let mut next = from;
    while let Some(rec) = r.next() {
        let rec = rec.map_err(|e| format!("record {next}: {e}"))?;
        let expected = if next < RECORDS {
            next.to_le_bytes().to_vec()
        } else {
            b"after".to_vec()
        };
        if rec.seq() != next || rec.payload() != expected {
            return Err(format!(
                "record {next} read as {} {:?}",
                rec.seq(),
                rec.payload()
            ));
        }
        next += 1;
    }
    if next != records {
        return Err(format!("read {from}..{next}, expected ..{records}"));
    }
    let (archived, damaged) = log.archived_segments().map_err(|e| e.to_string())?;
    if !damaged.is_empty() {
        return Err(format!("damaged archive files: {damaged:?}"));
    }
    if let Some(last) = archived.last()
        && (last.end_seq() != first_live || archived[0].base_seq != 0)
    {
        return Err(format!(
            "archive {archived:?} does not meet the live log at {first_live}"
        ));
    }
    for sub in ["checkpoints", "archive"] {
        for e in std::fs::read_dir(dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                return Err(format!("temporary file left: {:?}", e.path()));
            }
        }
    }
    let (valid, bad) = log.checkpoints().map_err(|e| e.to_string())?;
    if !bad.is_empty() || valid.is_empty() {
        return Err(format!("checkpoint files: {valid:?} {bad:?}"));
    }
    Ok(State {
        first_live,
        archived: archived.len(),
        checkpoint: cp.seq(),
    })
}

/// Finishes the operation (or repeats it) and returns the state reached.
fn finish(dir: &Path, scenario: Scenario) -> Result<State, String> {
    {
        let log = Log::open(dir, scenario.options()).map_err(|e| e.to_string())?;
        if scenario == Scenario::Checkpoint
            && log
                .latest_checkpoint()
                .map_err(|e| e.to_string())?
                .map(|c| c.seq())
                != Some(NEW_CHECKPOINT)
        {
            scenario.run(&log).map_err(|e| format!("finishing: {e}"))?;
        }
        log.compact().map_err(|e| format!("finishing: {e}"))?;
    }
    check(dir, scenario)
}

fn spawn_child(dir: &Path, scenario: Scenario, n: u64) -> std::process::ExitStatus {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .args([
            "--exact",
            "step_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_STEP, n.to_string())
        .env(CHILD_SCENARIO, scenario.name())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
}

/// The failpoints are process-wide: the tests of this binary that trigger them take turns.
static FAILPOINTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_failed_step_leaves_the_log_usable() {
    let _turn = FAILPOINTS.lock().unwrap_or_else(|p| p.into_inner());
    let root = tempfile::tempdir().unwrap();
    let tpl = root.path().join("template");
    template(&tpl);
    for scenario in SCENARIOS {
        for n in 1..6 {
            let dir = root.path().join(format!("{scenario:?}-{n}"));
            copy_dir(&tpl, &dir);
            let log = Log::open(&dir, scenario.options()).unwrap();
            mmlog::failpoint::arm_error(n);
            let result = scenario.run(&log);
            if !mmlog::failpoint::disarm() {
                assert!(result.is_err(), "{scenario:?} step {n} failed silently");
            }
            // Appends and reads go on after the failure, and a retry succeeds.
            let seq = log.append(b"after").unwrap();
            let mut r = log.read_from(seq).unwrap();
            assert_eq!(r.next().unwrap().unwrap().payload(), b"after");
            scenario.run(&log).unwrap();
            drop(log);
            check(&dir, scenario).unwrap_or_else(|e| panic!("{scenario:?} step {n}: {e}"));
        }
    }
}

#[test]
fn kill_at_every_step() {
    use std::os::unix::process::ExitStatusExt;
    let _turn = FAILPOINTS.lock().unwrap_or_else(|p| p.into_inner());
    let root = tempfile::tempdir().unwrap();
    let tpl = root.path().join("template");
    template(&tpl);
    for scenario in SCENARIOS {
        // The state an uninterrupted run reaches.
        let clean: PathBuf = root.path().join(format!("{scenario:?}-clean"));
        copy_dir(&tpl, &clean);
        let expected = finish(&clean, scenario).unwrap_or_else(|e| panic!("{scenario:?}: {e}"));
        let mut steps = 0;
        for n in 1.. {
            let dir = root.path().join(format!("{scenario:?}-{n}"));
            copy_dir(&tpl, &dir);
            let status = spawn_child(&dir, scenario, n);
            if status.code() == Some(0) {
                break;
            }
            assert_eq!(
                status.signal(),
                Some(libc::SIGKILL),
                "{scenario:?} step {n}: child ended with {status}"
            );
            steps += 1;
            check(&dir, scenario)
                .unwrap_or_else(|e| panic!("{scenario:?}, killed at step {n}: {e}"));
            let after = finish(&dir, scenario)
                .unwrap_or_else(|e| panic!("{scenario:?}, killed at step {n}, then finished: {e}"));
            assert_eq!(after, expected, "{scenario:?}, killed at step {n}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
        println!("{scenario:?}: killed at each of {steps} steps; every reopen consistent");
        assert!(steps >= 2, "{scenario:?} has only {steps} steps");
    }
}
