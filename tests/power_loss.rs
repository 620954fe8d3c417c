//! Simulated power loss, seed after seed (`mmlog::testing::PowerLoss`).
//!
//! Each seed runs a random workload on a fresh log (appends of 0..300 bytes, batches, syncs,
//! checkpoints, compactions into the archive, clean reopens; `Immediate` or `Buffered`
//! durability; 4 KiB segments, so rollovers and seals happen all the time), crashes it just
//! before a random storage operation (or at the end), and restarts on what a power cut could
//! have left: only what the syncs covered, everything written, or each unsynced page kept,
//! written back or torn. One seed in three crashes again in the middle of that recovery, and
//! the restart after that is checked instead. Every restart must:
//!
//! - open without error (nothing below the durable point was damaged, so nothing may be
//!   reported damaged);
//! - hold every acknowledged record (each append that returned under `Immediate`, everything
//!   before a `sync`, a checkpoint or a clean close that returned under `Buffered`), byte for
//!   byte, with dense sequence numbers from 0 (through the archive);
//! - hold nothing else but a prefix of the appends that were attempted: no record altered,
//!   reordered or invented;
//! - have as its newest checkpoint one that was written, intact, no older than the newest
//!   acknowledged one, and covering only records the log has.
//!
//! `MMLOG_POWER_SEEDS=N` sets how many seeds run (default 300; `.ci/run` runs 20,000 in
//! release); `MMLOG_POWER_SEED=S` replays one seed, printing its workload.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use mmlog::testing::{Fault, PowerLoss};
use mmlog::{ArchiveMode, Durability, Log, Options, Retention};

const DEFAULT_SEEDS: u64 = 300;
/// Crash points are drawn from 1..=CRASH_SPAN storage operations; a workload that ends first
/// crashes at its end. A workload performs about 250 to 500 operations.
const CRASH_SPAN: u64 = 450;
/// Crashes during recovery are drawn from its first few operations.
const RECOVERY_CRASH_SPAN: u64 = 12;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len)
        .map(|i| (seq as usize).wrapping_mul(131).wrapping_add(i * 7) as u8)
        .collect();
    if len >= 8 {
        p[..8].copy_from_slice(&seq.to_le_bytes());
    }
    p
}

fn checkpoint_data(seq: u64) -> Vec<u8> {
    format!("state after record {seq}").into_bytes()
}

fn options(seed: u64) -> Options {
    let durability = if seed.is_multiple_of(2) {
        Durability::Immediate
    } else {
        Durability::Buffered
    };
    let mode = if seed % 4 < 2 {
        ArchiveMode::Move
    } else {
        ArchiveMode::Compress
    };
    Options::default()
        .segment_size(4096)
        .durability(durability)
        .index_interval(3)
        .keep_checkpoints(2)
        .retention(Retention::default().keep_records(40).archive(mode))
}

/// What the workload did before the machine went off.
#[derive(Default)]
struct Outcome {
    /// Every payload an append was attempted with, in order: record `i` may only ever be
    /// `attempted[i]`.
    attempted: Vec<Vec<u8>>,
    /// Records `0..durable` were acknowledged as durable.
    durable: usize,
    /// Checkpoints attempted, and the newest acknowledged one.
    checkpoints_attempted: Vec<u64>,
    checkpoint_acked: Option<u64>,
    steps: u64,
    log: Vec<String>,
}

fn workload(dir: &Path, seed: u64, rng: &mut Rng, verbose: bool) -> Outcome {
    let opts = options(seed);
    let immediate = opts.get_durability() == Durability::Immediate;
    let mut out = Outcome::default();
    let note = |out: &mut Outcome, s: String| {
        if verbose {
            out.log.push(s);
        }
    };
    let Ok(mut log) = Log::open(dir, opts.clone()) else {
        return out;
    };
    let steps = 150 + rng.below(150);
    for _ in 0..steps {
        out.steps += 1;
        let roll = rng.below(100);
        let ok = match roll {
            0..=59 => {
                let seq = out.attempted.len() as u64;
                let p = payload(seq, rng.below(300) as usize);
                note(&mut out, format!("append {seq} ({} B)", p.len()));
                out.attempted.push(p);
                match log.append(&out.attempted[seq as usize]) {
                    Ok(s) => {
                        assert_eq!(s, seq, "seed {seed}: append returned the wrong seq");
                        if immediate {
                            out.durable = out.attempted.len();
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
            60..=69 => {
                let first = out.attempted.len() as u64;
                let n = 1 + rng.below(5);
                for i in 0..n {
                    let p = payload(first + i, rng.below(200) as usize);
                    out.attempted.push(p);
                }
                note(&mut out, format!("batch {first}..{}", first + n));
                let batch: Vec<&[u8]> = out.attempted[first as usize..]
                    .iter()
                    .map(Vec::as_slice)
                    .collect();
                match log.append_batch(&batch) {
                    Ok(s) => {
                        assert_eq!(s, first, "seed {seed}: batch returned the wrong seq");
                        if immediate {
                            out.durable = out.attempted.len();
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
            70..=79 => {
                note(&mut out, "sync".into());
                let ok = log.sync().is_ok();
                if ok {
                    out.durable = out.attempted.len();
                }
                ok
            }
            80..=86 => match out.attempted.len().checked_sub(1) {
                Some(last) => {
                    let seq = rng.below(last as u64 + 1);
                    note(&mut out, format!("checkpoint {seq}"));
                    out.checkpoints_attempted.push(seq);
                    match log.checkpoint(seq, &checkpoint_data(seq)) {
                        Ok(_) => {
                            out.durable = out.durable.max(seq as usize + 1);
                            out.checkpoint_acked = out.checkpoint_acked.max(Some(seq));
                            true
                        }
                        Err(_) => false,
                    }
                }
                None => true,
            },
            87..=92 => {
                note(&mut out, "compact".into());
                log.compact().is_ok()
            }
            _ => {
                note(&mut out, "close and reopen".into());
                if log.close().is_err() {
                    return out;
                }
                out.durable = out.attempted.len();
                match Log::open(dir, opts.clone()) {
                    Ok(l) => {
                        log = l;
                        true
                    }
                    Err(_) => return out,
                }
            }
        };
        if !ok {
            // The machine is off (or an operation failed): nothing more is acknowledged.
            note(&mut out, "error: stop".into());
            return out;
        }
    }
    drop(log);
    out
}

/// Checks a restart on `image` against what the workload did.
fn check(image: &Path, seed: u64, out: &Outcome) -> Result<u64, String> {
    let log = Log::open(image, options(seed)).map_err(|e| format!("open failed: {e} ({e:?})"))?;
    let mut reader = log.read_from(0).map_err(|e| format!("read_from(0): {e}"))?;
    let mut found = 0u64;
    while let Some(rec) = reader.next() {
        let rec = rec.map_err(|e| format!("reading record {found}: {e} ({e:?})"))?;
        if rec.seq() != found {
            return Err(format!("expected record {found}, found {}", rec.seq()));
        }
        let Some(want) = out.attempted.get(found as usize) else {
            return Err(format!(
                "record {found} was never appended ({} attempted)",
                out.attempted.len()
            ));
        };
        if rec.payload() != want.as_slice() {
            return Err(format!("record {found} differs from what was appended"));
        }
        found += 1;
    }
    if (found as usize) < out.durable {
        return Err(format!(
            "lost acknowledged records: {found} found, {} acknowledged (recovery report: {:?})",
            out.durable,
            log.recovery_report()
        ));
    }
    match log.latest_checkpoint() {
        Ok(Some(cp)) => {
            if !out.checkpoints_attempted.contains(&cp.seq()) {
                return Err(format!("checkpoint at {} was never written", cp.seq()));
            }
            if cp.data() != checkpoint_data(cp.seq()).as_slice() {
                return Err(format!("checkpoint at {} differs", cp.seq()));
            }
            if cp.seq() >= found {
                return Err(format!(
                    "checkpoint at {} covers records the log lacks ({found})",
                    cp.seq()
                ));
            }
            if out.checkpoint_acked.is_some_and(|acked| cp.seq() < acked) {
                return Err(format!(
                    "newest checkpoint {} is older than the acknowledged {:?}",
                    cp.seq(),
                    out.checkpoint_acked
                ));
            }
        }
        Ok(None) => {
            if let Some(acked) = out.checkpoint_acked {
                return Err(format!("the acknowledged checkpoint at {acked} is gone"));
            }
        }
        Err(e) => return Err(format!("latest_checkpoint: {e}")),
    }
    Ok(found)
}

#[derive(Default)]
struct Totals {
    seeds: AtomicU64,
    crashes_mid_workload: AtomicU64,
    crashes_in_recovery: AtomicU64,
    acknowledged: AtomicU64,
    records_checked: AtomicU64,
    pages_unsynced: AtomicU64,
    pages_torn: AtomicU64,
    name_changes_lost: AtomicU64,
}

fn run_seed(base: &Path, seed: u64, totals: &Totals, verbose: bool) -> Result<(), String> {
    let root = base.join(format!("s{seed}"));
    let dir = root.join("log");
    let image = root.join("image");
    let image2 = root.join("image2");
    let mut rng = Rng(seed);
    let crash_at = 1 + rng.below(CRASH_SPAN);
    let machine = PowerLoss::new(&dir, seed).map_err(|e| format!("simulate: {e}"))?;
    machine.crash_before_op(crash_at, &image);
    let out = workload(&dir, seed, &mut rng, verbose);
    let stats = match machine.crashed() {
        Some(r) => {
            totals.crashes_mid_workload.fetch_add(1, Ordering::Relaxed);
            r.map_err(|e| format!("crash image: {e}"))?
        }
        None => machine
            .crash_now(&image)
            .map_err(|e| format!("crash image at the end: {e}"))?,
    };
    let ops = machine.ops();
    drop(machine);
    totals
        .pages_unsynced
        .fetch_add(stats.pages_unsynced, Ordering::Relaxed);
    totals
        .pages_torn
        .fetch_add(stats.pages_torn, Ordering::Relaxed);
    totals
        .name_changes_lost
        .fetch_add(stats.name_changes_lost, Ordering::Relaxed);

    // One seed in three crashes again while recovering.
    let mut restart = image.clone();
    let mut recovery_note = String::new();
    if rng.below(3) == 0 {
        let at = 1 + rng.below(RECOVERY_CRASH_SPAN);
        let machine = PowerLoss::new(&image, seed ^ 0xdead_beef).map_err(|e| e.to_string())?;
        machine.crash_before_op(at, &image2);
        let opened = Log::open(&image, options(seed));
        if let Some(r) = machine.crashed() {
            r.map_err(|e| format!("crash image during recovery: {e}"))?;
            totals.crashes_in_recovery.fetch_add(1, Ordering::Relaxed);
            restart = image2.clone();
            recovery_note = format!(", then a crash before recovery's storage operation {at}");
        }
        drop(opened);
        drop(machine);
    }
    let found = check(&restart, seed, &out).map_err(|e| {
        format!(
            "{e}\n  seed {seed}: crash before storage operation {crash_at} ({ops} seen){recovery_note}; \
             {} steps, {} attempted, {} acknowledged; image: {stats:?}\n  replay: \
             MMLOG_POWER_SEED={seed} cargo test --release --test power_loss -- --nocapture{}",
            out.steps,
            out.attempted.len(),
            out.durable,
            if verbose {
                format!("\n  workload: {:?}", out.log)
            } else {
                String::new()
            }
        )
    })?;
    totals.seeds.fetch_add(1, Ordering::Relaxed);
    totals
        .acknowledged
        .fetch_add(out.durable as u64, Ordering::Relaxed);
    totals.records_checked.fetch_add(found, Ordering::Relaxed);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// A scratch directory on a `tmpfs` where there is one (syncs are free there).
fn scratch() -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new()
            .prefix("mmlog-power")
            .tempdir_in(&shm)
    {
        return d;
    }
    tempfile::tempdir().expect("temporary directory")
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

#[test]
fn every_acknowledged_record_survives_simulated_power_loss() {
    let base = scratch();
    let totals = Totals::default();
    if let Some(seed) = env_num("MMLOG_POWER_SEED") {
        if let Err(e) = run_seed(base.path(), seed, &totals, true) {
            panic!("{e}");
        }
        println!("seed {seed} passed");
        return;
    }
    let seeds = env_num("MMLOG_POWER_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let first = env_num("MMLOG_POWER_FIRST_SEED").unwrap_or(1);
    let next = AtomicU64::new(first);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + seeds || failure.lock().unwrap().is_some() {
                        return;
                    }
                    if let Err(e) = run_seed(base.path(), seed, &totals, false) {
                        failure.lock().unwrap().get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap() {
        panic!("{e}");
    }
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "power loss: {} seeds in {:.1} s ({} crashed mid-workload, {} again during recovery); \
         {} acknowledged records all survived ({} records checked); {} unsynced pages decided, \
         {} of them torn; {} name changes (creates, renames, removals) lost",
        get(&totals.seeds),
        started.elapsed().as_secs_f64(),
        get(&totals.crashes_mid_workload),
        get(&totals.crashes_in_recovery),
        get(&totals.acknowledged),
        get(&totals.records_checked),
        get(&totals.pages_unsynced),
        get(&totals.pages_torn),
        get(&totals.name_changes_lost),
    );
    assert_eq!(get(&totals.seeds), seeds);
    assert!(
        get(&totals.crashes_mid_workload) * 2 >= seeds,
        "too few crashes landed inside the workloads"
    );
}

/// One run of the canonical workload under an injected fault.
#[derive(Default)]
struct FaultRun {
    out: Outcome,
    /// The first error an API call returned, and at which step.
    first_error: Option<(u64, String)>,
    /// Acknowledgements given after an error that must have stopped them.
    violations: Vec<String>,
    reopened_after_error: bool,
    /// Storage operations performed before the last checkpoint started.
    ops_before_last_checkpoint: u64,
}

/// The canonical workload for the I/O-fault loop: `Immediate` appends, batches, syncs,
/// checkpoints, compactions and clean reopens, in a fixed order. Unlike the power-loss
/// workload it goes on after an error: a reopen follows, as an application would do, so
/// that what comes after a failure is exercised too.
fn fault_workload(dir: &Path, machine: &PowerLoss, persistent: bool) -> FaultRun {
    const SEED: u64 = 2; // even: Immediate
    let opts = options(SEED);
    let mut rng = Rng(0x5eed);
    let mut run = FaultRun::default();
    let mut log = match Log::open(dir, opts.clone()) {
        Ok(l) => Some(l),
        Err(e) => {
            run.first_error = Some((0, format!("open: {e}")));
            None
        }
    };
    // Since the last error, acknowledgements are forbidden until a successful reopen (a
    // failed flush poisons the log), and for good under a persistent fault.
    let mut must_fail = run.first_error.is_some();
    let ack = |run: &mut FaultRun, step: u64, what: &str, must_fail: bool| {
        if must_fail {
            run.violations
                .push(format!("step {step}: {what} acknowledged after an error"));
        }
    };
    for step in 0..120u64 {
        run.out.steps += 1;
        let Some(l) = log.as_ref() else {
            match Log::open(dir, opts.clone()) {
                Ok(l) => {
                    follow_reopen(&mut run, &l, step);
                    log = Some(l);
                    run.reopened_after_error = true;
                    must_fail = persistent && run.first_error.is_some();
                    if must_fail {
                        run.violations
                            .push(format!("step {step}: reopened under a persistent fault"));
                    }
                }
                Err(e) => {
                    run.first_error.get_or_insert((step, format!("open: {e}")));
                }
            }
            continue;
        };
        let roll = rng.below(100);
        let result: Result<(), mmlog::Error> = match roll {
            0..=64 => {
                let seq = run.out.attempted.len() as u64;
                let p = payload(seq, rng.below(300) as usize);
                run.out.attempted.push(p);
                match l.append(&run.out.attempted[seq as usize]) {
                    Ok(s) if s == seq => {
                        ack(&mut run, step, "append", must_fail);
                        run.out.durable = run.out.attempted.len();
                        Ok(())
                    }
                    Ok(s) => panic!("append returned {s}, expected {seq}"),
                    Err(e) => Err(e),
                }
            }
            65..=74 => {
                let first = run.out.attempted.len();
                for i in 0..1 + rng.below(4) {
                    let p = payload(first as u64 + i, rng.below(100) as usize);
                    run.out.attempted.push(p);
                }
                let batch: Vec<&[u8]> = run.out.attempted[first..]
                    .iter()
                    .map(Vec::as_slice)
                    .collect();
                match l.append_batch(&batch) {
                    Ok(_) => {
                        ack(&mut run, step, "batch", must_fail);
                        run.out.durable = run.out.attempted.len();
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            75..=84 => match run.out.attempted.len().checked_sub(1) {
                Some(last) => {
                    let seq = last as u64;
                    run.out.checkpoints_attempted.push(seq);
                    match l.checkpoint(seq, &checkpoint_data(seq)) {
                        Ok(_) => {
                            ack(&mut run, step, "checkpoint", must_fail);
                            run.out.checkpoint_acked = Some(seq);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                None => Ok(()),
            },
            85..=92 => l.compact().map(|_| ()),
            _ => match log.take().map(Log::close) {
                Some(Err(e)) => Err(e),
                _ => Ok(()),
            },
        };
        if let Err(e) = result {
            run.first_error.get_or_insert((step, e.to_string()));
            must_fail = true;
            // Start again from the disk, as an application would after an error.
            drop(log.take());
        }
    }
    // A last checkpoint touches storage for certain (a file, `fdatasync`, a rename, a
    // directory `fsync`): a persistent fault that came before it cannot go unnoticed.
    run.ops_before_last_checkpoint = machine.ops();
    if log.is_none() {
        match Log::open(dir, opts.clone()) {
            Ok(l) => {
                follow_reopen(&mut run, &l, u64::MAX);
                log = Some(l);
            }
            Err(e) => {
                run.first_error
                    .get_or_insert((u64::MAX, format!("open: {e}")));
            }
        }
    }
    if let Some(l) = log.as_ref()
        && let Some(last) = run.out.attempted.len().checked_sub(1)
    {
        let seq = last as u64;
        run.out.checkpoints_attempted.push(seq);
        match l.checkpoint(seq, &checkpoint_data(seq)) {
            Ok(_) => {
                ack(&mut run, u64::MAX, "the last checkpoint", must_fail);
                run.out.checkpoint_acked = Some(seq);
                run.out.durable = run.out.attempted.len();
            }
            Err(e) => {
                run.first_error.get_or_insert((u64::MAX, e.to_string()));
            }
        }
    }
    drop(log);
    run
}

/// After a reopen the log holds every acknowledged record and, of the appends that failed,
/// those that were written before their failure (a failure before the copy, such as a
/// rollover that found no segment, writes nothing). Recovery makes what it keeps durable, so
/// the model follows the log from here.
fn follow_reopen(run: &mut FaultRun, log: &Log, step: u64) {
    let next = log.last_seq().map_or(0, |s| s as usize + 1);
    if next < run.out.durable {
        run.violations.push(format!(
            "step {step}: reopened with {next} records, {} acknowledged",
            run.out.durable
        ));
    }
    if next > run.out.attempted.len() {
        run.violations.push(format!(
            "step {step}: reopened with {next} records, {} appended",
            run.out.attempted.len()
        ));
    }
    run.out.attempted.truncate(next);
    run.out.durable = next;
}

#[test]
fn every_storage_operation_failing_once_or_for_good_loses_nothing_acknowledged() {
    let base = scratch();
    // A dry run counts the workload's storage operations.
    let dry = base.path().join("dry");
    let machine = PowerLoss::new(&dry, 0).expect("simulate");
    let clean = fault_workload(&dry, &machine, false);
    let ops = machine.ops();
    drop(machine);
    assert!(clean.first_error.is_none(), "{:?}", clean.first_error);
    assert!(
        ops > 50,
        "the workload performed only {ops} storage operations"
    );
    let max = env_num("MMLOG_FAULT_OPS").unwrap_or(ops + 10);
    let mut points = 0u64;
    let mut poisoned_flushes = 0u64;
    let mut absorbed = 0u64;
    for n in 1..=max {
        for persistent in [false, true] {
            let dir = base.path().join(format!("n{n}-{persistent}"));
            let machine = PowerLoss::new(&dir, n).expect("simulate");
            machine.fail_op(
                n,
                if persistent {
                    Fault::Persistent
                } else {
                    Fault::Once
                },
            );
            let run = fault_workload(&dir, &machine, persistent);
            let faulted = machine.faulted_ops();
            drop(machine);
            let context = format!(
                "fault at storage operation {n} ({}; {faulted:?}); first error {:?}",
                if persistent { "persistent" } else { "once" },
                run.first_error
            );
            assert!(run.violations.is_empty(), "{context}: {:?}", run.violations);
            if faulted.is_empty() {
                continue;
            }
            points += 1;
            // A transient failure may be absorbed (the background thread that prepares
            // segments tries again); a persistent one must reach the application, unless it
            // began after the application's last call.
            if run.first_error.is_none() {
                assert!(
                    !persistent || n > run.ops_before_last_checkpoint,
                    "{context}: the failure was never reported"
                );
                absorbed += 1;
            }
            if faulted[0].starts_with("msync") {
                poisoned_flushes += 1;
            }
            // Nothing acknowledged is lost, nothing else appears, and the checkpoints hold.
            if let Err(e) = check(&dir, 2, &run.out) {
                panic!("{context}: after reopening: {e}");
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    println!(
        "I/O faults: {points} fault points over {ops} storage operations (once and for good); \
         {poisoned_flushes} failed flushes; {absorbed} transient faults absorbed (retried in the background, or a derived file left to be rebuilt); \
         every reopen consistent"
    );
    assert!(
        points >= ops,
        "only {points} of {ops} operations were faulted"
    );
}

/// Compaction that removes every segment before one holding no committed record yet (a
/// writer rolled over into it and has not committed): after a power cut, that segment must
/// still be there with its header, or the log could not tell where its sequence numbers
/// start. Every kind of image is drawn (synced pages only, everything, or a mix).
#[test]
fn compaction_leaves_the_new_first_segment_on_disk() {
    let mut images_with_lost_pages = 0;
    for seed in 0..24u64 {
        let base = scratch();
        let (dir, image) = (base.path().join("log"), base.path().join("image"));
        let machine = PowerLoss::new(&dir, seed).expect("simulate");
        let opts = Options::default()
            .segment_size(4096)
            .durability(Durability::Buffered);
        let log = Log::open(&dir, opts.clone()).expect("open");
        let seg1 = dir.join("segments").join(format!("{:020}.seg", 1));
        // Records until one lands in segment 1; that one stays reserved, uncommitted.
        let pending = loop {
            let r = log.reserve(100).expect("reserve");
            let activated = std::fs::read(&seg1)
                .ok()
                .and_then(|h| h.get(32..40).map(|b| b != [0u8; 8]))
                .unwrap_or(false);
            if activated {
                break r;
            }
            r.commit().expect("commit");
        };
        let first_in_1 = pending.seq();
        log.checkpoint(first_in_1 - 1, b"state")
            .expect("checkpoint");
        let report = log.compact().expect("compact");
        assert_eq!(report.segments_removed, 1, "seed {seed}: {report:?}");
        let crash = machine.crash_now(&image).expect("crash image");
        images_with_lost_pages += u64::from(crash.pages_unsynced > crash.pages_written_back);
        drop(pending);
        drop(log);
        drop(machine);

        let log = Log::open(&image, opts).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let next = log.recovery_report().next_seq;
        assert_eq!(next, first_in_1, "seed {seed}: where the log goes on");
        let newest = log
            .latest_checkpoint()
            .expect("checkpoints")
            .map(|c| c.info().seq);
        assert_eq!(newest, Some(first_in_1 - 1), "seed {seed}");
        assert_eq!(log.append(b"after").expect("append"), next, "seed {seed}");
    }
    assert!(
        images_with_lost_pages > 0,
        "no image lost an unsynced page: the test checks nothing"
    );
}
