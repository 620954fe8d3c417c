//! The `mmlog` command-line tool: a guided demo of the engine, and read-only inspection
//! (`stats`, `dump`, `verify`) that is safe to run on a log another process is writing.

mod demo;
mod dump;
mod failure;
mod findings;
mod output;
mod render;
mod stats;
mod timefmt;
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
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a guided tour: concurrent appends, a tailing reader, group commit, seeks, and a
    /// crash (SIGKILL) with recovery, printing measured numbers.
    Demo(demo::DemoArgs),
    /// Summarise a log: segments, records, sequence numbers, bytes, time range, lock.
    Stats {
        /// The log directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print records, one line each: seq, time, segment, offset, length, payload.
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
    },
    /// Check every CRC and the structure of a log. Exit 0 if clean (a torn tail that recovery
    /// would cut off is only a warning), 1 if corrupt, 2 if the log cannot be read.
    Verify {
        /// The log directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Internal: the process the demo kills. Appends with Immediate durability and prints
    /// each acknowledged sequence number.
    #[command(name = "__crash-writer", hide = true)]
    CrashWriter(demo::crash::WriterArgs),
}

/// Shown at the end of `--help`.
const EXIT_CODES: &str = "Exit codes: 0 success; 1 the log is corrupt (or a demo check failed); \
2 bad usage or an I/O error (no such directory, not a log, unreadable).";

fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Stats { dir, json } => stats::run(&dir, json),
        Command::Dump {
            dir,
            from,
            since,
            limit,
            full,
            json,
        } => {
            let args = dump::DumpArgs {
                from,
                since_ns: since.unwrap_or(0),
                limit,
                full,
                json,
            };
            dump::run(&dir, &args)
        }
        Command::Verify { dir, json } => verify::run(&dir, json),
        Command::CrashWriter(args) => demo::crash::writer_main(&args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {f}");
            ExitCode::from(if f.code == 0 { EXIT_USAGE } else { f.code })
        }
    }
}
