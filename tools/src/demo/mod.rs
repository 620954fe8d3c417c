//! `mmlog demo`: a guided tour that measures what it shows. First the spec's event-sourced
//! reader-writer on the event store, against a traditional `RwLock` store (steps 1 to 6, in
//! `DIR/events` and `DIR/migration`), then the log engine underneath (steps a to f, in `DIR`).
//!
//! Each step is a function that opens what it needs, prints what it does as it goes, checks
//! what it claims, and adds a row to the closing summary; the spec's comparison matrix is
//! filled in with what the steps measured. The log from one step is the input of the next, so
//! later steps also show reopening a log with data in it.

mod compaction;
pub mod crash;
mod group_commit;
mod history;
mod seek;
mod spec;
pub mod stores;
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
    /// Writer threads of the spec's first scenario (on each store).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    writers: u16,
    /// Items those writers write, in total (a removal follows every fourth).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    events: u64,
    /// Threads appending concurrently in the engine's throughput step.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    append_threads: u16,
    /// Records appended in the engine's throughput step, in total.
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

/// The spec's comparison matrix, filled in by the steps that measure a row.
#[derive(Debug, Default)]
pub struct Matrix {
    /// Write latency under scenario 1: (locked, events).
    pub write_latency: Option<(String, String)>,
    /// Writes and removals per second under scenario 1: (locked, events).
    pub throughput: Option<(f64, f64)>,
    /// Read latency under scenario 2: (locked, events).
    pub read_latency: Option<(String, String)>,
    /// How old the answers of each consistency mode were.
    pub staleness: String,
    /// What time travel and the audit trail gave.
    pub history: Option<String>,
    /// Opening the event store again.
    pub cold_start: Option<String>,
}

impl Matrix {
    fn print(&self) {
        let na = || "not measured".to_owned();
        let mut rows: Vec<(&str, String, String)> = Vec::new();
        let (lw, ew) = self.write_latency.clone().unwrap_or_else(|| (na(), na()));
        rows.push(("Write latency (scenario 1)", lw, ew));
        let (lr, er) = self.read_latency.clone().unwrap_or_else(|| (na(), na()));
        rows.push(("Read latency (scenario 2)", lr, er));
        rows.push((
            "Staleness (scenario 2)",
            "none: a read sees every write".into(),
            self.staleness.clone(),
        ));
        if let Some((l, e)) = self.throughput {
            rows.push((
                "Throughput, one 2-core machine",
                format!("{} ops/s", render::rate(l)),
                format!(
                    "{} ops/s (partitions and replicas: not shown here)",
                    render::rate(e)
                ),
            ));
        }
        rows.push((
            "History (scenario 3)",
            "not preserved".into(),
            self.history.clone().unwrap_or_else(na),
        ));
        rows.push((
            "Conflict resolution",
            "blocking: writers queue on the lock".into(),
            "natural ordering: dense sequence numbers, no waiting".into(),
        ));
        rows.push((
            "Restart",
            "the state is gone".into(),
            self.cold_start
                .as_ref()
                .map_or_else(na, |d| format!("back in {d}, from the newest snapshot")),
        ));
        say!(
            "
the spec's comparison matrix, measured"
        );
        say!("| aspect | traditional RW lock | event sourced |");
        say!("|---|---|---|");
        for (aspect, locked, events) in rows {
            say!("| {aspect} | {locked} | {events} |");
        }
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

    /// A value in `0..n` (`n` > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
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
        "mmlog demo in {}: the spec's event-sourced reader-writer, then the log engine under it",
        dir.display()
    );
    let mut summary = Summary::default();
    let mut matrix = Matrix::default();
    let outcome = steps(args, &mut summary, &mut matrix);
    matrix.print();
    summary.print(started.elapsed());
    match outcome {
        Ok(()) => {
            say!("\nPASS: every check held");
            if args.keep {
                say!(
                    "logs kept in {0}; try `mmlog stats {0}/engine`, `mmlog verify {0}/engine`, \
                     `mmlog dump {0}/events --events --limit 5`, `mmlog state {0}/events --at 2099-01-01T00:00:00Z`",
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

fn steps(args: &DemoArgs, summary: &mut Summary, matrix: &mut Matrix) -> CmdResult {
    let events_dir = args.dir.join("events");
    say!(
        "\nthe event store (mmlog::events), in {}",
        events_dir.display()
    );
    let writers = usize::from(args.writers);
    let (store, locked) = spec::step_1(&events_dir, writers, args.events, summary, matrix)?;
    spec::step_2(&store, &locked, summary, matrix)?;
    drop(locked);
    let store = history::step_3(&events_dir, store, summary, matrix)?;
    history::step_4(&store, summary, matrix)?;
    history::step_5(&store, summary)?;
    store.close()?;
    history::step_6(&args.dir.join("migration"), summary)?;

    let engine = args.dir.join("engine");
    say!(
        "\nthe log engine underneath, in {} ({} MiB segments, {PAYLOAD_LEN}-byte records)",
        engine.display(),
        SEGMENT_SIZE >> 20
    );
    let threads = usize::from(args.append_threads);
    throughput::run(&engine, threads, args.records, summary)?;
    group_commit::run(&engine, summary)?;
    seek::run(&engine, summary)?;
    compaction::run(&engine, summary)?;
    crash::run(&engine, summary)
}
