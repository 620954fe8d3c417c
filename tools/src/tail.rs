//! `mmlog tail DIR`: the last records of a log, and with `--follow` the new ones as they are
//! committed, like `tail -f`. Read-only: safe on a log another process is writing.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use mmlog::inspect::Follower;

use crate::dump::{LineStyle, PAYLOAD_PREVIEW};
use crate::failure::{CmdResult, Failure};
use crate::output::Out;

/// How often `--follow` looks for new records.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Arguments of `mmlog tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The log directory.
    pub dir: std::path::PathBuf,
    /// Start at sequence number SEQ instead of the last `--lines` records (in the archive,
    /// when compaction archived it).
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    /// How many of the last records to print (without `--from`).
    #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
    pub lines: u64,
    /// Keep printing records as they are committed, until interrupted (SIGINT, SIGTERM) or
    /// stdout is closed.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Decode each record as an event-store event.
    #[arg(long)]
    pub events: bool,
    /// Show whole payloads (by default, the first 64 bytes).
    #[arg(long)]
    pub full: bool,
    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `mmlog tail`.
pub fn run(args: &TailArgs) -> CmdResult {
    let dir: &Path = &args.dir;
    // A log of a newer format version is refused before anything is printed.
    let found = crate::guard::inspect(dir, false)?;
    let from = match args.from {
        Some(seq) => seq,
        None => found
            .next_seq
            .saturating_sub(args.lines)
            .max(found.first_seq),
    };
    let mut follower = Follower::new(dir, from)?;
    if args.follow {
        stop_on_signals();
    }
    let style = LineStyle {
        preview: (!args.full).then_some(PAYLOAD_PREVIEW),
        json: args.json,
        events: args.events,
    };
    let mut out = Out::new();
    loop {
        let mut closed = false;
        let mut write_error: Option<Failure> = None;
        let polled = follower.poll(|rec| {
            // Interrupted while catching up on a long backlog: stop at once.
            if STOP.load(Ordering::Relaxed) {
                return false;
            }
            match out.line(&style.line(rec)) {
                Ok(true) => true,
                Ok(false) => {
                    closed = true;
                    false
                }
                Err(e) => {
                    write_error = Some(e);
                    false
                }
            }
        });
        if let Some(e) = write_error {
            return Err(e);
        }
        // The records before any damage go out first, so they are not lost behind the error.
        if closed || !out.flush()? {
            return Ok(());
        }
        polled.map_err(|e| {
            let next = follower.next_seq();
            Failure::from(e).context(&format!("tail stopped before record {next}"))
        })?;
        if !args.follow {
            return out.finish();
        }
        if STOP.load(Ordering::Relaxed) {
            return Ok(());
        }
        std::thread::sleep(POLL_INTERVAL);
        if STOP.load(Ordering::Relaxed) || stdout_gone() {
            return Ok(());
        }
    }
}

/// Set by SIGINT and SIGTERM: `tail --follow` ends quietly, with success.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    // A second signal while the first is not yet acted on (stdout blocked on a full pipe,
    // say) ends the process at once. Both calls are async-signal-safe.
    if STOP.swap(true, Ordering::Relaxed) {
        // SAFETY: `_exit` is async-signal-safe and takes any status.
        unsafe { libc::_exit(0) }
    }
}

/// Makes SIGINT and SIGTERM set [`STOP`] instead of killing the process.
fn stop_on_signals() {
    let handler: extern "C" fn(libc::c_int) = on_stop_signal;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches an atomic (and calls `_exit`), which is
        // async-signal-safe. A failure leaves the default action, which is acceptable.
        unsafe {
            libc::signal(signal, handler as libc::sighandler_t);
        }
    }
}

/// True when stdout is a pipe or socket whose reader has gone: the next write would fail,
/// but an idle `--follow` may not write for a long time.
fn stdout_gone() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid `pollfd`, and a zero timeout: the call only reports.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}
