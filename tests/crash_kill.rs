//! Real-process crash test: a child process appends with `Durability::Immediate` from several
//! threads and is killed with SIGKILL at a random moment; the parent reopens the log after
//! every kill and checks what recovery promises (the sled / RocksDB pattern).
//!
//! The test binary plays both roles. With `MMLOG_CRASH_CHILD=<dir>` set it is the child: it
//! opens the log in `<dir>` (64 KiB segments, so rollovers are frequent), runs four writer
//! threads forever and prints one acknowledgement line, `seq writer counter len`, after each
//! record's `append` (or `append_batch`) has returned. Without it, it is the parent, which for
//! every cycle spawns the child, kills it, reopens the log and checks that:
//!
//! - every acknowledged record is there, at its sequence number, with exactly its bytes;
//! - sequence numbers read back are dense from 0, each record once;
//! - every record read back is one a writer appended: it decodes to (cycle, writer, counter,
//!   length) and carries the pattern derived from them; records found after the stable prefix
//!   come from the child just killed;
//! - a writer's records appear in the order it appended them, with no gap: its counters read
//!   back are exactly 0, 1, 2, ... in sequence order (an append starts only after the previous
//!   one returned, i.e. was durable);
//! - everything seen at one reopen (acknowledged or not: recovery made it durable) is seen
//!   again, unchanged, at every later reopen;
//! - the recovery report agrees with what is read (`next_seq`, `last_seq`).
//!
//! A fifth thread in the child writes a checkpoint of the durable prefix and compacts every
//! few milliseconds, archiving segments (moved on even cycles, compressed on odd ones), so
//! kills also land inside checkpoint writes, compactions and archival. Nothing is deleted:
//! every record stays readable from 0 through the archive, and the parent also checks that
//! the latest checkpoint is intact (a kill never leaves a damaged file under a final name),
//! that the archive is contiguous up to the live log, and that no temporary file survives
//! a reopen.
//!
//! Environment: `MMLOG_CRASH_CYCLES` (default 60), `MMLOG_CRASH_SEED` (default: from the
//! clock; printed at start so that a failing schedule can be replayed). On failure the log
//! directory is kept and its path printed.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mmlog::{ArchiveMode, Durability, Log, Options, RecoveryReport, Retention};

const TEST_NAME: &str = "crash_kill";

const CHILD_DIR_ENV: &str = "MMLOG_CRASH_CHILD";
const CHILD_CYCLE_ENV: &str = "MMLOG_CRASH_CHILD_CYCLE";
const CHILD_SEED_ENV: &str = "MMLOG_CRASH_CHILD_SEED";
const CYCLES_ENV: &str = "MMLOG_CRASH_CYCLES";
const SEED_ENV: &str = "MMLOG_CRASH_SEED";

const DEFAULT_CYCLES: u64 = 60;
const SEGMENT_SIZE: u64 = 64 << 10;
const WRITERS: u8 = 4;
/// Body lengths are drawn from `1..=MAX_BODY`.
const MAX_BODY: u64 = 2000;
/// A child that lives this long was forgotten by its parent: it exits on its own.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);
/// How long the parent waits for the child to reach a point of its start-up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Exit codes of the child when it stops by itself (the parent always kills it first).
const CHILD_EXIT_OPEN_FAILED: i32 = 3;
const CHILD_EXIT_TOO_OLD: i32 = 4;
const CHILD_EXIT_STDOUT_GONE: i32 = 5;

fn options() -> Options {
    Options::default()
        .segment_size(SEGMENT_SIZE)
        .durability(Durability::Immediate)
}

fn main() -> ExitCode {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        child::run(Path::new(&dir));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--list") {
        // Enough of libtest's `--list` for test runners that enumerate tests first.
        println!("{TEST_NAME}: test");
        if !args.iter().any(|a| a == "terse") {
            println!("\n1 test, 0 benchmarks");
        }
        return ExitCode::SUCCESS;
    }
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if matches!(
            a.as_str(),
            "--format" | "--color" | "--test-threads" | "--skip" | "-Z"
        ) {
            it.next(); // the flag's value
        } else if !a.starts_with('-') {
            filters.push(a.as_str());
        }
    }
    let exact = has("--exact");
    let selected = filters.is_empty()
        || filters.iter().any(|f| {
            if exact {
                *f == TEST_NAME
            } else {
                TEST_NAME.contains(f)
            }
        });
    if !selected || has("--ignored") {
        println!("\nrunning 0 tests\n");
        println!("test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out");
        return ExitCode::SUCCESS;
    }
    println!("\nrunning 1 test");
    match parent::run() {
        Ok(()) => {
            println!("test {TEST_NAME} ... ok\n");
            println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
            ExitCode::SUCCESS
        }
        Err(report) => {
            println!("test {TEST_NAME} ... FAILED\n");
            println!("---- {TEST_NAME} ----\n{report}");
            println!("failures:\n    {TEST_NAME}\n");
            println!(
                "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out"
            );
            ExitCode::from(1)
        }
    }
}

/// xorshift64*: tiny, deterministic, good enough for schedules and payloads.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(splitmix64(seed) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform-ish in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a record says about itself: who appended it, and how long its body is.
///
/// Payload layout: `cycle` (u32 LE), `writer` (u8), `counter` (u32 LE), `len` (u16 LE), the tag
/// byte [`TAG`], then `len` bytes of the pattern derived from all four fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct RecId {
    cycle: u32,
    writer: u8,
    counter: u32,
    len: u16,
}

const HEADER_LEN: usize = 12;
const TAG: u8 = 0xC5;

impl RecId {
    fn pattern(&self) -> Rng {
        let key = u64::from(self.cycle) << 32
            ^ u64::from(self.counter)
            ^ u64::from(self.writer) << 56
            ^ u64::from(self.len) << 20;
        Rng::new(key ^ 0x6d6d_6c6f_6763_7261)
    }

    fn payload(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(HEADER_LEN + usize::from(self.len));
        p.extend_from_slice(&self.cycle.to_le_bytes());
        p.push(self.writer);
        p.extend_from_slice(&self.counter.to_le_bytes());
        p.extend_from_slice(&self.len.to_le_bytes());
        p.push(TAG);
        let mut rng = self.pattern();
        while p.len() < HEADER_LEN + usize::from(self.len) {
            let word = rng.next_u64().to_le_bytes();
            let n = (HEADER_LEN + usize::from(self.len) - p.len()).min(8);
            p.extend_from_slice(&word[..n]);
        }
        p
    }

    /// Decodes a payload and checks every byte of it; `Err` says what is wrong.
    fn decode(payload: &[u8]) -> Result<RecId, String> {
        let Some(h) = payload.get(..HEADER_LEN) else {
            return Err(format!(
                "payload of {} bytes is shorter than a header",
                payload.len()
            ));
        };
        let id = RecId {
            cycle: u32::from_le_bytes([h[0], h[1], h[2], h[3]]),
            writer: h[4],
            counter: u32::from_le_bytes([h[5], h[6], h[7], h[8]]),
            len: u16::from_le_bytes([h[9], h[10]]),
        };
        if h[11] != TAG || id.writer >= WRITERS || u64::from(id.len) > MAX_BODY || id.len == 0 {
            return Err(format!("bad header {h:02x?}"));
        }
        let body = &payload[HEADER_LEN..];
        if body.len() != usize::from(id.len) {
            return Err(format!(
                "{id:?}: body of {} bytes, header says {}",
                body.len(),
                id.len
            ));
        }
        let mut rng = id.pattern();
        for (i, chunk) in body.chunks(8).enumerate() {
            let word = rng.next_u64().to_le_bytes();
            if chunk != &word[..chunk.len()] {
                return Err(format!(
                    "{id:?}: body differs from its pattern at byte {}",
                    i * 8
                ));
            }
        }
        Ok(id)
    }
}

/// The child: append from several threads until killed.
mod child {
    use super::*;

    pub(super) fn run(dir: &Path) -> ! {
        let cycle: u32 = env_num(CHILD_CYCLE_ENV).unwrap_or(0);
        let seed: u64 = env_num(CHILD_SEED_ENV).unwrap_or(1);
        let out = Mutex::new(std::io::stdout());
        // The parent times its "kill during open" cycles from this line.
        say(&out, "open\n");
        let mode = if cycle.is_multiple_of(2) {
            ArchiveMode::Move
        } else {
            ArchiveMode::Compress
        };
        let opts = options()
            .retention(Retention::default().archive(mode))
            .keep_checkpoints(2);
        let log = match Log::open(dir, opts) {
            Ok(log) => log,
            Err(e) => {
                eprintln!("child (cycle {cycle}): open failed: {e} ({e:?})");
                std::process::exit(CHILD_EXIT_OPEN_FAILED);
            }
        };
        say(&out, "ready\n");
        std::thread::scope(|s| {
            for writer in 0..WRITERS {
                let (log, out) = (&log, &out);
                let seed = seed ^ u64::from(writer).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                s.spawn(move || write_forever(log, out, cycle, writer, seed));
            }
            let log = &log;
            s.spawn(move || maintain(log, cycle, seed));
            std::thread::sleep(CHILD_LIFETIME);
            eprintln!("child (cycle {cycle}): not killed after {CHILD_LIFETIME:?}, exiting");
            std::process::exit(CHILD_EXIT_TOO_OLD);
        })
    }

    fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
        std::env::var(name).ok()?.parse().ok()
    }

    /// Writes `text` (whole lines) to stdout in one go and flushes it: once this returns, the
    /// parent can read it even if this process is killed the next instant.
    fn say(out: &Mutex<std::io::Stdout>, text: &str) {
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            // The parent is gone; nobody is listening any more.
            std::process::exit(CHILD_EXIT_STDOUT_GONE);
        }
    }

    /// Checkpoints the durable prefix and compacts, every few milliseconds.
    fn maintain(log: &Log, cycle: u32, seed: u64) {
        let mut rng = Rng::new(seed ^ 0x5bd1_e995);
        loop {
            std::thread::sleep(Duration::from_millis(rng.range(1, 12)));
            if let Some(seq) = log.durable_seq()
                && let Err(e) = log.checkpoint(seq, &checkpoint_blob(seq))
            {
                eprintln!("child (cycle {cycle}): checkpoint failed: {e} ({e:?})");
                return;
            }
            if let Err(e) = log.compact() {
                eprintln!("child (cycle {cycle}): compaction failed: {e} ({e:?})");
                return;
            }
        }
    }

    fn write_forever(log: &Log, out: &Mutex<std::io::Stdout>, cycle: u32, writer: u8, seed: u64) {
        let mut rng = Rng::new(seed);
        let mut counter = 0u32;
        let mut lines = String::new();
        loop {
            let n = if rng.below(10) == 0 {
                rng.range(2, 5)
            } else {
                1
            };
            let ids: Vec<RecId> = (0..n)
                .map(|i| RecId {
                    cycle,
                    writer,
                    counter: counter + i as u32,
                    len: rng.range(1, MAX_BODY) as u16,
                })
                .collect();
            let payloads: Vec<Vec<u8>> = ids.iter().map(RecId::payload).collect();
            let result = if n == 1 {
                log.append(&payloads[0])
            } else {
                let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                log.append_batch(&refs)
            };
            let first = match result {
                Ok(seq) => seq,
                Err(e) => {
                    // Not expected with nothing but a SIGKILL going on: the parent reports it.
                    eprintln!("child (cycle {cycle}) writer {writer}: append failed: {e} ({e:?})");
                    return;
                }
            };
            lines.clear();
            for (i, id) in ids.iter().enumerate() {
                let _ = writeln!(
                    lines,
                    "{} {} {} {}",
                    first + i as u64,
                    writer,
                    id.counter,
                    id.len
                );
            }
            say(out, &lines);
            counter += n as u32;
        }
    }
}

/// The state blob of the checkpoint at `seq`: a pattern derived from `seq`, of a length
/// derived from it (so a checkpoint mixed up with another, or cut short, is caught).
fn checkpoint_blob(seq: u64) -> Vec<u8> {
    let len = 64 + (splitmix64(seq) % 8192) as usize;
    let mut x = seq;
    (0..len)
        .map(|_| {
            x = splitmix64(x);
            x as u8
        })
        .collect()
}

/// The parent: spawn, kill, reopen, check.
mod parent {
    use super::*;

    /// A record the child acknowledged.
    #[derive(Clone, Copy, Debug)]
    struct Ack {
        seq: u64,
        writer: u8,
        counter: u32,
        len: u16,
    }

    enum Event {
        Opening,
        Ready,
    }

    /// What the child wrote on stdout.
    struct ChildOutput {
        acks: Vec<Ack>,
        /// A last line without its newline (the child died while writing it).
        partial: Option<String>,
    }

    struct Totals {
        acked: u64,
        open_times: Vec<Duration>,
        truncations: u64,
        records_dropped: u64,
        removed_files: u64,
        kills_in_open: u64,
        kills_before_ready: u64,
        last_checkpoint: u64,
        archived: usize,
    }

    pub(super) fn run() -> Result<(), String> {
        let cycles: u64 = match std::env::var(CYCLES_ENV) {
            Ok(v) => v.parse().map_err(|e| format!("{CYCLES_ENV}={v:?}: {e}"))?,
            Err(_) => DEFAULT_CYCLES,
        };
        let seed: u64 = match std::env::var(SEED_ENV) {
            Ok(v) => v.parse().map_err(|e| format!("{SEED_ENV}={v:?}: {e}"))?,
            Err(_) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                splitmix64(now.as_nanos() as u64 ^ u64::from(std::process::id()))
            }
        };
        println!(
            "{TEST_NAME}: seed {seed}, {cycles} cycles \
             (replay with {SEED_ENV}={seed} {CYCLES_ENV}={cycles})"
        );
        let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let dir = tmp.path().join("log");
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let started = Instant::now();
        let mut rng = Rng::new(seed);
        let mut model = Model::default();
        let mut totals = Totals {
            acked: 0,
            open_times: Vec::new(),
            truncations: 0,
            records_dropped: 0,
            removed_files: 0,
            kills_in_open: 0,
            kills_before_ready: 0,
            last_checkpoint: 0,
            archived: 0,
        };
        for cycle in 0..cycles {
            let child_seed = splitmix64(seed ^ cycle.wrapping_mul(0xa076_1d64_78bd_642f));
            let outcome = run_cycle(
                &exe,
                &dir,
                cycle,
                child_seed,
                &mut rng,
                &mut model,
                &mut totals,
            );
            if let Err(what) = outcome {
                let kept = tmp.keep();
                return Err(format!(
                    "seed {seed}, cycle {cycle} of {cycles}: {what}\n\
                     log directory kept at {}\n\
                     replay with {SEED_ENV}={seed} {CYCLES_ENV}={cycles} \
                     (the kill schedule replays; thread timing does not)",
                    kept.join("log").display()
                ));
            }
        }
        let elapsed = started.elapsed();
        let mut times = totals.open_times.clone();
        times.sort();
        println!(
            "{TEST_NAME}: {cycles} cycles in {:.2} s; {} records acknowledged, {} in the log; \
             {} kills during open ({} before the child printed \"ready\")",
            elapsed.as_secs_f64(),
            totals.acked,
            model.known.len(),
            totals.kills_in_open,
            totals.kills_before_ready,
        );
        println!(
            "{TEST_NAME}: parent open time p50 {:?}, p99 {:?}, max {:?}",
            percentile(&times, 50.0),
            percentile(&times, 99.0),
            times.last().copied().unwrap_or_default(),
        );
        println!(
            "{TEST_NAME}: {} of {cycles} reopens truncated the tail ({} frames dropped), \
             {} files removed by recovery",
            totals.truncations, totals.records_dropped, totals.removed_files,
        );
        println!(
            "{TEST_NAME}: at the end, the newest checkpoint covers records 0..={}, and {} \
             segments are in the archive",
            totals.last_checkpoint, totals.archived,
        );
        Ok(())
    }

    fn percentile(sorted: &[Duration], p: f64) -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    fn run_cycle(
        exe: &Path,
        dir: &Path,
        cycle: u64,
        child_seed: u64,
        rng: &mut Rng,
        model: &mut Model,
        totals: &mut Totals,
    ) -> Result<(), String> {
        let kill_in_open = rng.below(10) == 0;
        let delay = if kill_in_open {
            Duration::from_micros(rng.below(1001))
        } else {
            Duration::from_micros(rng.range(500, 20_000))
        };
        let mut child = Command::new(exe)
            .env(CHILD_DIR_ENV, dir)
            .env(CHILD_CYCLE_ENV, cycle.to_string())
            .env(CHILD_SEED_ENV, child_seed.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning the child: {e}"))?;
        let (tx, events) = mpsc::channel();
        let stdout = child.stdout.take().ok_or("child without stdout")?;
        let stdout_reader = std::thread::spawn(move || read_child_stdout(stdout, tx));
        let mut stderr = child.stderr.take().ok_or("child without stderr")?;
        let stderr_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });

        // Kill during open/recovery: time from the child's "open" line; otherwise let it run
        // its writers for a while: time from "ready".
        let wait_for = if kill_in_open { "open" } else { "ready" };
        let reached = wait_event(&events, kill_in_open);
        if let Err(e) = &reached {
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr_reader.join().unwrap_or_default();
            return Err(format!(
                "the child did not print \"{wait_for}\" ({e}); stderr: {err:?}"
            ));
        }
        std::thread::sleep(delay);
        // `kill` on a child that already exited is fine: `wait` then tells how it ended.
        child.kill().map_err(|e| format!("kill: {e}"))?;
        let status = child.wait().map_err(|e| format!("wait: {e}"))?;
        let output = stdout_reader
            .join()
            .map_err(|_| "stdout reader panicked".to_string())??;
        let err = stderr_reader.join().unwrap_or_default();
        let ready_seen = events.try_iter().any(|e| matches!(e, Event::Ready));
        if kill_in_open {
            totals.kills_in_open += 1;
            if !ready_seen {
                totals.kills_before_ready += 1;
            }
        }
        if status.signal() != Some(libc::SIGKILL) {
            return Err(format!(
                "the child ended by itself ({status}) before the kill; stderr: {err:?}"
            ));
        }
        if !err.is_empty() {
            return Err(format!(
                "the child reported errors before it was killed:\n{err}"
            ));
        }
        let context = format!(
            "kill {:?} after \"{wait_for}\", {} acks in this cycle{}",
            delay,
            output.acks.len(),
            output
                .partial
                .as_ref()
                .map_or(String::new(), |p| format!(", torn last line {p:?}")),
        );
        totals.acked += output.acks.len() as u64;

        let opened = Instant::now();
        let log = Log::open(dir, options())
            .map_err(|e| format!("reopen failed: {e} ({e:?}); {context}"))?;
        totals.open_times.push(opened.elapsed());
        let report = log.recovery_report().clone();
        if let Some(t) = &report.truncation {
            totals.truncations += 1;
            totals.records_dropped += t.records_dropped;
        }
        totals.removed_files += report.removed_files.len() as u64;
        model
            .check(&log, cycle as u32, &output.acks, &report)
            .map_err(|e| format!("{e}\n{context}\nrecovery report: {report:#?}"))?;
        check_maintenance(&log, &report, totals)
            .map_err(|e| format!("{e}\n{context}\nrecovery report: {report:#?}"))?;
        log.close()
            .map_err(|e| format!("close failed: {e}; {context}"))?;
        Ok(())
    }

    /// Checkpoints and archive after a kill: the newest checkpoint is intact and covers only
    /// records the log has, the archive is contiguous up to the live log, and no temporary
    /// file survived the reopen.
    fn check_maintenance(
        log: &Log,
        report: &RecoveryReport,
        totals: &mut Totals,
    ) -> Result<(), String> {
        if let Some(cp) = log
            .latest_checkpoint()
            .map_err(|e| format!("checkpoint: {e}"))?
        {
            if !cp.skipped().is_empty() {
                return Err(format!(
                    "damaged checkpoints after a kill: {:?}",
                    cp.skipped()
                ));
            }
            if cp.seq() >= report.next_seq {
                return Err(format!(
                    "checkpoint at {} but the log ends before {}",
                    cp.seq(),
                    report.next_seq
                ));
            }
            if cp.data() != checkpoint_blob(cp.seq()) {
                return Err(format!("checkpoint at {} holds the wrong bytes", cp.seq()));
            }
            totals.last_checkpoint = cp.seq();
        }
        let (archived, damaged) = log
            .archived_segments()
            .map_err(|e| format!("archive listing: {e}"))?;
        if !damaged.is_empty() {
            return Err(format!("damaged archive files after a kill: {damaged:?}"));
        }
        for w in archived.windows(2) {
            if w[0].end_seq() != w[1].base_seq || w[0].id + 1 != w[1].id {
                return Err(format!(
                    "archive not contiguous: {:?} then {:?}",
                    w[0], w[1]
                ));
            }
        }
        if let Some(last) = archived.last()
            && last.end_seq() != log.stats().first_seq
        {
            return Err(format!(
                "archive ends at {} but the live log starts at {}",
                last.end_seq(),
                log.stats().first_seq
            ));
        }
        totals.archived = archived.len();
        // (Not `segments/`: this log's own preparer may be making its spare there.)
        for sub in ["checkpoints", "archive"] {
            let Ok(rd) = std::fs::read_dir(log.path().join(sub)) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    return Err(format!("temporary file left after reopen: {:?}", e.path()));
                }
            }
        }
        Ok(())
    }

    /// Waits for "open" (or "ready" too, unless `open_only`).
    fn wait_event(events: &Receiver<Event>, open_only: bool) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match events.recv_timeout(left) {
                Ok(Event::Opening) if open_only => return Ok(()),
                Ok(Event::Opening) => {}
                Ok(Event::Ready) => return Ok(()),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("timeout {STARTUP_TIMEOUT:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => return Err("stdout closed".into()),
            }
        }
    }

    fn read_child_stdout(
        stdout: std::process::ChildStdout,
        events: Sender<Event>,
    ) -> Result<ChildOutput, String> {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        let mut acks = Vec::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => {
                    return Ok(ChildOutput {
                        acks,
                        partial: None,
                    });
                }
                Ok(_) => {}
                Err(e) => return Err(format!("reading the child's stdout: {e}")),
            }
            let Some(text) = line.strip_suffix('\n') else {
                // Killed in the middle of a line: not an acknowledgement.
                return Ok(ChildOutput {
                    acks,
                    partial: Some(line.clone()),
                });
            };
            match text {
                "open" => {
                    let _ = events.send(Event::Opening);
                }
                "ready" => {
                    let _ = events.send(Event::Ready);
                }
                _ => acks.push(parse_ack(text)?),
            }
        }
    }

    fn parse_ack(text: &str) -> Result<Ack, String> {
        let bad = || format!("malformed acknowledgement line {text:?}");
        let mut f = text.split(' ');
        let mut next = || f.next().ok_or_else(bad);
        let ack = Ack {
            seq: next()?.parse().map_err(|_| bad())?,
            writer: next()?.parse().map_err(|_| bad())?,
            counter: next()?.parse().map_err(|_| bad())?,
            len: next()?.parse().map_err(|_| bad())?,
        };
        if next().is_ok() {
            return Err(bad());
        }
        Ok(ack)
    }

    /// Everything the parent has seen so far.
    #[derive(Default)]
    pub(super) struct Model {
        /// `known[seq]`: the record at `seq` in every reopen so far. Everything seen once
        /// (acknowledged or not) must be seen again, unchanged, at every later reopen.
        pub(super) known: Vec<RecId>,
        /// How many acknowledged records each earlier cycle had, to report what was lost.
        acked_by_cycle: HashMap<u32, usize>,
    }

    impl Model {
        /// Reads the whole log and checks it against the model and this cycle's acks; on
        /// success the model knows the new records.
        fn check(
            &mut self,
            log: &Log,
            cycle: u32,
            acks: &[Ack],
            report: &RecoveryReport,
        ) -> Result<(), String> {
            let stable = self.known.len() as u64;
            let mut reader = log.read_from(0).map_err(|e| format!("read_from(0): {e}"))?;
            let mut fresh: Vec<RecId> = Vec::new();
            let mut next_counter = [0u32; WRITERS as usize];
            let mut seq = 0u64;
            while let Some(rec) = reader.next() {
                let rec = rec.map_err(|e| format!("reading seq {seq}: {e} ({e:?})"))?;
                if rec.seq() != seq {
                    return Err(format!(
                        "sequence numbers not dense: expected {seq}, read {}",
                        rec.seq()
                    ));
                }
                let id = RecId::decode(rec.payload()).map_err(|e| {
                    format!("seq {seq} holds a record that was never appended: {e}")
                })?;
                if seq < stable {
                    let was = self.known[seq as usize];
                    if id != was {
                        return Err(format!(
                            "seq {seq} changed: was {was:?} at earlier reopens, now {id:?}"
                        ));
                    }
                } else {
                    if id.cycle != cycle {
                        return Err(format!(
                            "seq {seq} (after the {stable} records of earlier cycles) holds \
                             {id:?}, not a record of cycle {cycle}"
                        ));
                    }
                    let expected = &mut next_counter[usize::from(id.writer)];
                    if id.counter != *expected {
                        return Err(format!(
                            "seq {seq}: writer {} counter {} follows counter {} (a writer's \
                             records must read back in append order, without gaps or repeats)",
                            id.writer,
                            id.counter,
                            i64::from(*expected) - 1,
                        ));
                    }
                    *expected += 1;
                    fresh.push(id);
                }
                seq += 1;
            }
            let end = seq;
            if end < stable {
                let lost = self.known[end as usize];
                let acked = self.acked_by_cycle.get(&lost.cycle).copied().unwrap_or(0);
                return Err(format!(
                    "records lost: the log now ends at seq {end}, earlier reopens read up to \
                     seq {}; first lost {lost:?} (its cycle acknowledged {acked} records)",
                    stable - 1
                ));
            }
            if report.next_seq != end {
                return Err(format!(
                    "recovery report says next_seq {}, the reader found {end} records",
                    report.next_seq
                ));
            }
            if log.last_seq() != end.checked_sub(1) {
                return Err(format!(
                    "last_seq() is {:?}, the reader found {end} records",
                    log.last_seq()
                ));
            }
            for ack in acks {
                let want = RecId {
                    cycle,
                    writer: ack.writer,
                    counter: ack.counter,
                    len: ack.len,
                };
                if ack.seq < stable {
                    let was = self.known[ack.seq as usize];
                    return Err(format!(
                        "acknowledged {want:?} at seq {}, which an earlier cycle's {was:?} \
                         already had",
                        ack.seq
                    ));
                }
                match fresh.get((ack.seq - stable) as usize) {
                    None => {
                        return Err(format!(
                            "acknowledged record missing: {want:?} at seq {}; the log ends at \
                             seq {end} (acknowledged in this cycle: {}, highest seq {})",
                            ack.seq,
                            acks.len(),
                            acks.iter().map(|a| a.seq).max().unwrap_or(0),
                        ));
                    }
                    Some(got) if *got != want => {
                        return Err(format!(
                            "acknowledged {want:?} at seq {}, read back {got:?}",
                            ack.seq
                        ));
                    }
                    Some(_) => {}
                }
            }
            self.acked_by_cycle.insert(cycle, acks.len());
            self.known.extend(fresh);
            Ok(())
        }
    }
}
