//! `mmlog demo`: a guided tour of the engine that measures what it shows.
//!
//! Each step is a function in its own module that opens the log it needs, prints what it does
//! as it goes, checks what it claims, and adds a row to the closing summary. The log from one
//! step is the input of the next, so later steps also show reopening a log with data in it.

mod compaction;
pub mod crash;
mod group_commit;
mod seek;
mod throughput;
mod workdir;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mmlog::{Durability, Options};

use crate::failure::CmdResult;
use crate::output::say;
use crate::render;

/// Segment size used by every step: small enough that the default run rolls over many times.
pub const SEGMENT_SIZE: u64 = 4 << 20;
/// Payload size of the records the demo appends.
pub const PAYLOAD_LEN: usize = 64;

/// Arguments of `mmlog demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Directory for the demo log. An earlier demo log there is removed first; anything
    /// else makes the demo refuse to start.
    #[arg(long, default_value = "./mmlog-demo")]
    dir: PathBuf,
    /// Threads appending concurrently in the throughput step.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    writers: u16,
    /// Records appended in the throughput step, in total.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    records: u64,
    /// Keep the log directory afterwards (try `mmlog stats`, `dump` and `verify` on it).
    #[arg(long)]
    keep: bool,
}

/// Options for the demo log with the given durability.
pub fn options(durability: Durability) -> Options {
    Options::default()
        .segment_size(SEGMENT_SIZE)
        .durability(durability)
}

/// The measured numbers, one row per step, printed at the end.
#[derive(Debug, Default)]
pub struct Summary {
    rows: Vec<(&'static str, String)>,
}

impl Summary {
    /// Adds a row.
    pub fn add(&mut self, step: &'static str, measured: String) {
        self.rows.push((step, measured));
    }

    fn print(&self, total: Duration) {
        let width = self
            .rows
            .iter()
            .map(|(s, _)| s.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        say!("\nsummary");
        for (step, measured) in &self.rows {
            say!("  {step:<width$}  {measured}");
        }
        say!("  {:<width$}  {}", "total", render::duration(total));
    }
}

/// The `p`-quantile (0.0..=1.0) of sorted samples, nearest-rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A small deterministic pseudo-random sequence (SplitMix64), so runs are repeatable.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> CmdResult {
    let started = Instant::now();
    let dir = &args.dir;
    if workdir::prepare(dir)? {
        say!(
            "removed the demo log left by an earlier run in {}",
            dir.display()
        );
    }
    say!(
        "mmlog demo in {} ({} MiB segments, {PAYLOAD_LEN}-byte records)",
        dir.display(),
        SEGMENT_SIZE >> 20
    );
    let mut summary = Summary::default();
    let outcome = steps(args, &mut summary);
    summary.print(started.elapsed());
    match outcome {
        Ok(()) => {
            say!("\nPASS: every check held");
            if args.keep {
                say!(
                    "log kept in {0}; try `mmlog stats {0}`, `mmlog dump {0} --limit 5`, `mmlog verify {0}`",
                    dir.display()
                );
            } else {
                workdir::remove(dir);
            }
            Ok(())
        }
        Err(f) => {
            say!("\nFAIL: {f}");
            say!("log left in {} for inspection", dir.display());
            Err(f)
        }
    }
}

fn steps(args: &DemoArgs, summary: &mut Summary) -> CmdResult {
    throughput::run(&args.dir, usize::from(args.writers), args.records, summary)?;
    group_commit::run(&args.dir, summary)?;
    seek::run(&args.dir, summary)?;
    compaction::run(&args.dir, summary)?;
    crash::run(&args.dir, summary)
}
