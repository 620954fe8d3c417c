//! `mmlog bench`: the spec's three scenarios on the event store side by side with the
//! traditional store (`LockedStore`, a `RwLock<HashMap>`), and the log engine underneath
//! (appends, read-back), measured on the machine it runs on.
//!
//! The spec's claims are about waiting ("writers never block"), which shows in the tail of
//! the latency distribution, not in a mean: every scenario records each operation's latency
//! in nanoseconds in an HdrHistogram and reports p50, p99, p99.9 and max next to the
//! throughput. Every timed region holds one store call; payloads, ids and random choices are
//! made before the clock starts.
//!
//! Logs go in a temporary directory (under `--dir` if given), removed at the end.

mod engine;
mod measure;
mod plot;
mod report;
mod spec1;
mod spec2;
mod spec3;

use std::path::{Path, PathBuf};
use std::time::Instant;

use mmlog::{Durability, Options};
use serde_json::json;

use self::report::Report;
use crate::failure::{CmdResult, Failure};
use crate::output::{emit, say};

/// Arguments of `mmlog bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The scenario to run; all of them when left out.
    #[arg(value_enum)]
    scenario: Option<Scenario>,
    /// Print one JSON object instead of the report: `machine`, `scale`, `seconds`, and
    /// `scenarios.<scenario>.stores.<store>.<operation>` with `ops`, `seconds`,
    /// `ops_per_sec`, `p50_ns`, `p99_ns`, `p999_ns`, `max_ns` (and more).
    #[arg(long)]
    json: bool,
    /// Also draw the latency distributions into FILE (SVG): one panel per scenario, one line
    /// per store and operation.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Multiply the work (writes, run time, events, queries, records) by N; a fraction
    /// shrinks it (0.05 for a quick check). The thread counts stay those of the spec.
    #[arg(long, value_name = "N", default_value_t = 1.0, value_parser = parse_scale)]
    scale: f64,
    /// Put the logs in a temporary directory under DIR (default: the system's temporary
    /// directory). Choose the file system your logs live on.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// What `mmlog bench` can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// High write throughput: 1,000 writer threads write and remove items while 2 threads
    /// read, on both stores.
    Spec1,
    /// Read-heavy: paced writers, readers in each consistency mode and on read models, and
    /// `get` on the locked store.
    Spec2,
    /// Time travel: events with snapshots, then `state_at_seq` and `state_at_time` at random
    /// points, with every snapshot kept, the newest 3, and none.
    Spec3,
    /// Engine appends: 64 B and 4 KiB records from 1 and 4 threads (`Buffered`), and
    /// `Immediate` from 64 threads (appends per msync).
    Append,
    /// Engine read-back: full sequential scans, every CRC checked.
    Read,
}

const ALL: [Scenario; 5] = [
    Scenario::Spec1,
    Scenario::Spec2,
    Scenario::Spec3,
    Scenario::Append,
    Scenario::Read,
];

/// `--scale`: a positive number, at most 1000.
fn parse_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1000.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number above 0 and at most 1000")),
    }
}

/// What every scenario is given.
pub struct Ctx<'a> {
    /// `--scale`.
    pub scale: f64,
    /// The temporary directory for the scenario's logs.
    pub root: &'a Path,
}

impl Ctx<'_> {
    /// `base` times the scale, rounded, and at least `min`.
    pub fn scaled(&self, base: f64, min: u64) -> u64 {
        ((base * self.scale).round() as u64).max(min)
    }
}

/// The event store's log in the spec scenarios: default options, `Buffered` (an append is a
/// copy into the page cache, no msync).
pub fn log_options() -> Options {
    Options::default().durability(Durability::Buffered)
}

/// An item's data: 56 bytes, unique per writer and item.
pub fn payload(writer: usize, item: usize) -> String {
    format!("writer {writer:04} item {item:07} ................................")
}

/// The machine the numbers were measured on.
struct Machine {
    cores: usize,
    kernel: Option<String>,
}

impl Machine {
    fn this() -> Machine {
        let kernel = std::process::Command::new("uname")
            .arg("-r")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|k| !k.is_empty());
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel,
        }
    }
}

/// Runs `mmlog bench`.
pub fn run(args: &BenchArgs) -> CmdResult {
    let started = Instant::now();
    let machine = Machine::this();
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    if let Some(plot) = &args.plot {
        // Fail now rather than after the run.
        std::fs::File::create(plot)
            .map_err(|e| Failure::usage(format!("cannot write {}: {e}", plot.display())))?;
    }
    let root = tempfile::Builder::new()
        .prefix("mmlog-bench-")
        .tempdir_in(&base)
        .map_err(|e| {
            Failure::usage(format!(
                "cannot make a temporary directory under {}: {e}",
                base.display()
            ))
        })?;
    let ctx = Ctx {
        scale: args.scale,
        root: root.path(),
    };
    let human = !args.json;
    if human {
        say!(
            "# mmlog bench: the spec's scenarios (the event store against a RwLock store) and \
             the engine, measured"
        );
        say!(
            "scale {}, {} cores, kernel {}, logs under {}",
            args.scale,
            machine.cores,
            machine.kernel.as_deref().unwrap_or("unknown"),
            root.path().display()
        );
    }
    let chosen: Vec<Scenario> = match args.scenario {
        Some(s) => vec![s],
        None => ALL.to_vec(),
    };
    let mut reports = Vec::new();
    for scenario in chosen {
        let t = Instant::now();
        let outcome = match scenario {
            Scenario::Spec1 => spec1::run(&ctx),
            Scenario::Spec2 => spec2::run(&ctx),
            Scenario::Spec3 => spec3::run(&ctx),
            Scenario::Append => engine::run_append(&ctx),
            Scenario::Read => engine::run_read(&ctx),
        };
        let mut report = match outcome {
            Ok(r) => r,
            Err(f) => {
                if let Some(plot) = &args.plot {
                    // The empty file made to check that it can be written.
                    let _ = std::fs::remove_file(plot);
                }
                return Err(f);
            }
        };
        report.seconds = t.elapsed().as_secs_f64();
        if human {
            say!("{}", report.human().trim_end());
        }
        reports.push(report);
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(plot) = &args.plot {
        plot::write(plot, &reports)?;
    }
    if let Err(e) = root.close() {
        eprintln!("warning: could not remove the benchmark's logs: {e}");
    }
    if args.json {
        return emit(&json_report(&machine, args.scale, seconds, &reports));
    }
    if reports.iter().any(|r| r.key.starts_with("spec")) {
        say!("{}", report::matrix(&reports, machine.cores).trim_end());
    }
    if let Some(plot) = &args.plot {
        say!("\nlatency plot written to {}", plot.display());
    }
    say!("\ntotal time {:.1} s", seconds);
    Ok(())
}

/// The JSON output.
fn json_report(machine: &Machine, scale: f64, seconds: f64, reports: &[Report]) -> String {
    let scenarios: serde_json::Map<String, serde_json::Value> = reports
        .iter()
        .map(|r| (r.key.to_owned(), r.json()))
        .collect();
    let doc = json!({
        "machine": {
            "cores": machine.cores,
            "kernel": machine.kernel,
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
        },
        "scale": scale,
        "seconds": seconds,
        "scenarios": scenarios,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
