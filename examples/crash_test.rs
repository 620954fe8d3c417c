//! Crash-testing an application built on mmlog, with `mmlog::testing`.
//!
//! The application here is a counter: it appends `+n` events and acknowledges each total to
//! its user once `append` returned (`Immediate` durability). Its promise: after any crash, the
//! total rebuilt from the log is at least the last total it acknowledged, and is a total it
//! really reached. This example checks that promise two ways:
//!
//! 1. **Simulated power loss**, seed after seed: run the application, cut the power just
//!    before a seeded storage operation (only what was synced survives, or everything, or a
//!    torn mix), restart on what the disk held, check.
//! 2. **Real process kills**: run the application in a child process (this same program,
//!    started again), kill it with `SIGKILL` after a random delay, reopen, check.
//!
//! ```text
//! cargo run --release --features testing --example crash_test -- [seeds] [kills]
//! ```

use std::path::Path;
use std::time::Duration;

use mmlog::testing::{PowerLoss, kill_child_after, run_if_child};
use mmlog::{Durability, Log, Options};

fn options() -> Options {
    Options::default()
        .segment_size(16 << 10)
        .durability(Durability::Immediate)
}

/// The application: event `k` adds `k + 1` (so the total after `m` events is `m(m+1)/2`),
/// and each total is reported once it is durable. Stops at the first error (after a power
/// cut, every storage operation fails).
fn run_counter(dir: &Path, steps: u64, mut acknowledged: impl FnMut(u64)) {
    let Ok(log) = Log::open(dir, options()) else {
        return;
    };
    let Ok(mut total) = rebuild(&log) else {
        return;
    };
    let first = log.last_seq().map_or(1, |s| s + 2);
    for n in first..first.saturating_add(steps) {
        if log.append(&n.to_le_bytes()).is_err() {
            return;
        }
        total += n;
        acknowledged(total);
    }
}

/// The application's recovery: the total is the sum of every event in the log.
fn rebuild(log: &Log) -> mmlog::Result<u64> {
    let mut reader = log.read_from(0)?;
    let mut total = 0u64;
    while let Some(record) = reader.next() {
        let record = record?;
        let bytes: [u8; 8] =
            record
                .payload()
                .try_into()
                .map_err(|_| mmlog::Error::InvalidArgument {
                    reason: "an event that is not 8 bytes".into(),
                })?;
        total += u64::from_le_bytes(bytes);
    }
    Ok(total)
}

/// Totals the counter can reach: 1, 3, 6, 10, ...
fn is_reachable(total: u64) -> bool {
    (0u64..)
        .map(|k| k * (k + 1) / 2)
        .take_while(|&t| t <= total)
        .any(|t| t == total)
}

fn check(dir: &Path, acknowledged: u64) -> Result<u64, String> {
    let log = Log::open(dir, options()).map_err(|e| format!("reopen: {e}"))?;
    let total = rebuild(&log).map_err(|e| format!("rebuild: {e}"))?;
    if total < acknowledged {
        return Err(format!(
            "total {total} is below the acknowledged {acknowledged}"
        ));
    }
    if !is_reachable(total) {
        return Err(format!("total {total} was never reached"));
    }
    Ok(total)
}

fn main() -> Result<(), String> {
    // The child side of the kill test: count until killed, acknowledging each total.
    run_if_child(|dir, acks| {
        run_counter(dir, u64::MAX, |total| {
            let _ = acks.ack(&total.to_string());
        });
    });

    let mut args = std::env::args().skip(1);
    let seeds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let kills: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;

    // 1. Simulated power loss.
    for seed in 0..seeds {
        let dir = tmp.path().join(format!("power-{seed}"));
        let image = tmp.path().join(format!("power-{seed}-after"));
        let machine = PowerLoss::new(&dir, seed).map_err(|e| e.to_string())?;
        machine.crash_before_op(1 + seed % 60, &image);
        let mut acknowledged = 0;
        run_counter(&dir, 40, |total| acknowledged = total);
        let crash = machine.crash_now(&image).map_err(|e| e.to_string())?;
        drop(machine);
        check(&crash.dir, acknowledged).map_err(|e| format!("power-loss seed {seed}: {e}"))?;
    }
    println!("power loss: {seeds} seeds, every acknowledged total survived");

    // 2. Real process kills, reusing one directory: each child continues from the last.
    let dir = tmp.path().join("killed");
    let mut acknowledged = 0;
    for cycle in 0..kills {
        let after = Duration::from_millis(20 + (cycle * 37) % 80);
        let run = kill_child_after(&[], &dir, after).map_err(|e| e.to_string())?;
        if !run.stderr.is_empty() {
            return Err(format!("the child reported: {}", run.stderr));
        }
        if let Some(last) = run.acks.last() {
            acknowledged = last.parse().map_err(|_| format!("bad ack {last:?}"))?;
        }
        let total = check(&dir, acknowledged).map_err(|e| format!("kill {cycle}: {e}"))?;
        acknowledged = total;
    }
    println!(
        "kills: {kills} SIGKILLs, every acknowledged total survived ({acknowledged} in the end)"
    );
    Ok(())
}
