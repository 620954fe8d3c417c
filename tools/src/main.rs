//! The `mmlog` command-line tool: a guided demo of the engine, and read-only inspection
//! (`stats`, `dump`, `verify`) that is safe to run on a log another process is writing.

mod bench;
mod compact;
mod demo;
mod dump;
mod failure;
mod findings;
mod guard;
mod output;
mod progress;
mod recover;
mod render;
mod state;
mod stats;
mod sync;
mod tail;
mod timefmt;
mod units;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::failure::{CmdResult, EXIT_USAGE};

/// Command-line tool for mmlog logs.
#[derive(Debug, Parser)]
#[command(name = "mmlog", version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// No progress bars (they are also off when stdout is not a terminal).
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the guided tour: the spec's scenarios on the event store against a RwLock store
    /// (1000 writers, consistency modes, read models, snapshots, time travel, archive,
    /// migration), then the engine underneath (throughput, group commit, seeks, compaction,
    /// a SIGKILL crash and recovery), ending with the spec's comparison matrix, measured.
    Demo(demo::DemoArgs),
    /// Measure on this machine: the spec's scenarios (spec1, spec2, spec3) on the event store
    /// side by side with a RwLock store, and the engine's appends and read-back; throughput
    /// and latency percentiles (p50, p99, p99.9, max), then the spec's comparison matrix.
    Bench(bench::BenchArgs),
    /// Summarise a log: segments, records, sequence numbers, bytes, time range, lock.
    Stats {
        /// The log directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print records, one line each: seq, time, segment, offset, length, payload. Records
    /// that compaction archived come first, read from `archive/` (decompressed if need be).
    Dump {
        /// The log directory.
        dir: PathBuf,
        /// First sequence number to print.
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        from: u64,
        /// Only records appended at or after TIME: RFC 3339 (2024-05-01T12:00:00Z) or
        /// nanoseconds since the Unix epoch.
        #[arg(long, value_name = "TIME", value_parser = timefmt::parse_time)]
        since: Option<u64>,
        /// Print at most N records.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Show whole payloads (by default, the first 64 bytes).
        #[arg(long)]
        full: bool,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
        /// Decode each record as an event-store event: `DataWritten writer=W item=ID
        /// data="..."` or `DataRemoved writer=W item=ID` (a record that is not an event
        /// shows its decode error).
        #[arg(long)]
        events: bool,
    },
    /// Print the last records (or from SEQ), one line each as `dump` does; with --follow,
    /// keep printing new records as they are committed, like `tail -f`.
    Tail(tail::TailArgs),
    /// The event store's state at a point of its past (--seq N or --at TIME), rebuilt
    /// read-only from the newest snapshot at or before it and the events after that (read
    /// through the archive when compaction archived them).
    State(state::StateArgs),
    /// Check every CRC and the structure of a log. Exit 0 if clean (a torn tail that recovery
    /// would cut off is only a warning), 1 if corrupt, 2 if the log cannot be read.
    Verify {
        /// The log directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Apply a retention policy now: delete the oldest sealed segments that nothing needs
    /// (covered by the latest checkpoint, consumed by every consumer, let go by every keep
    /// rule). Takes the log's lock: fails (exit 2) while another process has it open, except
    /// with --dry-run.
    #[command(after_help = EXIT_CODES)]
    Compact(compact::CompactArgs),
    /// Like compact, but the segments go into the log's archive (compressed, or moved as
    /// they are), where they stay readable.
    #[command(after_help = EXIT_CODES)]
    Archive(compact::ArchiveArgs),
    /// Open the log so that recovery repairs it (cuts a torn tail, removes leftovers), and
    /// report what it did. Exit 0 if there was nothing to repair or it was repaired, 1 if the
    /// log holds damage recovery refuses to repair.
    #[command(after_help = EXIT_CODES)]
    Recover(recover::RecoverArgs),
    /// Internal: the process the demo kills. Appends with Immediate durability and prints
    /// each acknowledged sequence number.
    #[command(name = "__crash-writer", hide = true)]
    CrashWriter(demo::crash::WriterArgs),
}

/// Shown at the end of `--help`.
const EXIT_CODES: &str = "Exit codes:
  0  success (recover: nothing to repair, or repaired)
  1  the log is corrupt: damage that a check finds or that recovery refuses to repair (or a
     demo check failed)
  2  bad usage, or a log the tool cannot work on: no such directory, not a log, a newer
     format version, locked by another process (compact, archive and recover without
     --dry-run), an I/O error
A failure prints one line on stderr, starting with 'error: '.";

fn run(cli: Cli) -> CmdResult {
    progress::set_quiet(cli.quiet);
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Stats { dir, json } => stats::run(&dir, json),
        Command::Dump {
            dir,
            from,
            since,
            limit,
            full,
            json,
            events,
        } => {
            let args = dump::DumpArgs {
                from,
                since_ns: since.unwrap_or(0),
                limit,
                full,
                json,
                events,
            };
            dump::run(&dir, &args)
        }
        Command::Verify { dir, json } => verify::run(&dir, json),
        Command::Tail(args) => tail::run(&args),
        Command::State(args) => state::run(&args),
        Command::Compact(args) => compact::run_compact(&args),
        Command::Archive(args) => compact::run_archive(&args),
        Command::Recover(args) => recover::run(&args),
        Command::CrashWriter(args) => demo::crash::writer_main(&args),
    }
}

fn main() -> ExitCode {
    let cli = match guard::parse::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {f}");
            ExitCode::from(if f.code == 0 { EXIT_USAGE } else { f.code })
        }
    }
}
