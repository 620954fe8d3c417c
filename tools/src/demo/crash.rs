//! Step f: a crash and recovery. A child process (this binary, hidden subcommand
//! `__crash-writer`) appends with Immediate durability from several threads and prints every
//! acknowledged sequence number; the parent SIGKILLs it mid-stream, reopens the log, and
//! checks that every acknowledged record is there, intact.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mmlog::{Durability, Log, RecoveryReport};

use super::{PAYLOAD_LEN, Summary, options};
use crate::failure::{CmdResult, EXIT_USAGE, Failure};
use crate::findings::judge;
use crate::output::say;
use crate::render::{bytes, count, duration};

/// Writer threads in the child.
const CHILD_THREADS: u16 = 8;
/// The parent kills the child once it has read this many acknowledgements...
const ACKS_BEFORE_KILL: usize = 3000;
/// ...or this long after the first one, whichever comes first.
const RUN_BEFORE_KILL: Duration = Duration::from_millis(1500);
/// A child that acknowledges nothing for this long is broken.
const ACK_TIMEOUT: Duration = Duration::from_secs(20);

/// Arguments of the hidden `__crash-writer` subcommand.
#[derive(Debug, clap::Args)]
pub struct WriterArgs {
    /// The log to append to.
    #[arg(long)]
    dir: PathBuf,
    /// Appending threads.
    #[arg(long, default_value_t = CHILD_THREADS)]
    threads: u16,
    /// Stop by itself after this many seconds, in case nobody kills it.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
}

/// The payload of append `index` by `thread`: readable in `mmlog dump`, fixed length.
fn payload(thread: u64, index: u64) -> Vec<u8> {
    let mut p = format!("crash-writer thread {thread} record {index} ").into_bytes();
    p.resize(PAYLOAD_LEN, b'#');
    p
}

/// The child: appends until killed, printing `seq thread index` after each append returns.
pub fn writer_main(args: &WriterArgs) -> CmdResult {
    let log = Log::open(&args.dir, options(Durability::Immediate))?;
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    thread::scope(|s| {
        for t in 0..u64::from(args.threads) {
            let log = &log;
            s.spawn(move || {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let seq = match log.append(&payload(t, i)) {
                        Ok(seq) => seq,
                        Err(e) => {
                            eprintln!("error: crash writer thread {t}: {e}");
                            std::process::exit(i32::from(EXIT_USAGE));
                        }
                    };
                    // One write per line (stdout is line-buffered), so a kill cuts at most the
                    // line being written, which the parent then ignores.
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "{seq} {t} {i}")
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return; // the parent stopped listening
                    }
                    i += 1;
                }
            });
        }
    });
    Ok(())
}

/// One acknowledged append, as the child reported it.
#[derive(Clone, Copy, Debug)]
struct Ack {
    seq: u64,
    thread: u64,
    index: u64,
}

/// Forwards every complete line the child prints; a line cut by the kill has no newline.
fn forward_acks(stdout: ChildStdout, tx: mpsc::Sender<Ack>) {
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if !line.ends_with('\n') => return,
            Ok(_) => {}
        }
        let mut fields = line.split_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(seq)), Some(Ok(thread)), Some(Ok(index))) =
            (fields.next(), fields.next(), fields.next())
            && tx.send(Ack { seq, thread, index }).is_err()
        {
            return;
        }
    }
}

/// Runs step f on the (closed) log in `dir`.
pub fn run(dir: &Path, summary: &mut Summary) -> CmdResult {
    say!(
        "\n[f] crash: a child process appends with Immediate durability from {CHILD_THREADS} \
         threads, printing each acknowledged seq; it is killed with SIGKILL mid-stream"
    );
    let first_child_seq = mmlog::inspect::inspect(dir, false)?.next_seq;
    let mut child = spawn_writer(dir)?;
    let acks = collect_acks_and_kill(&mut child)?;

    let t_open = Instant::now();
    let log = Log::open(dir, options(Durability::Buffered))?;
    let open = t_open.elapsed();
    print_recovery(log.recovery_report(), open);
    let next_seq = log.last_seq().map_or(0, |s| s + 1);
    let checked = check_acks(&log, &acks);
    log.close()?;

    let from_child = next_seq.saturating_sub(first_child_seq);
    let acked = acks.len() as u64;
    say!(
        "    the log holds {} records from the child: {} acknowledged, {} appended but not yet \
         acknowledged when it died (kept, though nothing promised them)",
        count(from_child),
        count(acked),
        count(from_child.saturating_sub(acked))
    );
    match checked.and_then(|()| verify_whole_log(dir)) {
        Ok(()) => {
            say!(
                "    PASS: all {} acknowledged records present and intact",
                count(acked)
            );
            let row = format!(
                "PASS: {} acknowledged records all intact; recovery took {}",
                count(acked),
                duration(open)
            );
            summary.add("f. crash + recovery", row);
            Ok(())
        }
        Err(why) => {
            say!("    FAIL: {why}");
            summary.add("f. crash + recovery", format!("FAIL: {why}"));
            Err(Failure::check(format!("crash recovery: {why}")))
        }
    }
}

/// Starts this program again as the crash writer on `dir`.
fn spawn_writer(dir: &Path) -> CmdResult<Child> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::usage(format!("cannot find this program to re-run it: {e}")))?;
    Command::new(&exe)
        .arg("__crash-writer")
        .arg("--dir")
        .arg(dir)
        .arg("--threads")
        .arg(CHILD_THREADS.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::usage(format!("cannot start {}: {e}", exe.display())))
}

/// Checks every CRC of the recovered log, as `mmlog verify` does.
fn verify_whole_log(dir: &Path) -> Result<(), String> {
    let verified = mmlog::inspect::inspect(dir, true).map_err(|e| e.to_string())?;
    let corrupt = judge(&verified).iter().filter(|f| !f.torn_tail).count();
    let verdict = if corrupt == 0 {
        "clean".to_string()
    } else {
        format!("{corrupt} problem(s)")
    };
    say!(
        "    full verify after recovery: {} segments, {} records, {verdict}",
        verified.segments.len(),
        count(verified.records)
    );
    if corrupt > 0 {
        return Err(format!(
            "the recovered log has {corrupt} problem(s); run `mmlog verify`"
        ));
    }
    Ok(())
}

/// Reads acknowledgements until there are enough, kills the child, and returns every
/// acknowledgement it printed before it died.
fn collect_acks_and_kill(child: &mut Child) -> CmdResult<Vec<Ack>> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Failure::usage("child has no stdout"))?;
    let (tx, rx) = mpsc::channel();
    let forwarder = thread::spawn(move || forward_acks(stdout, tx));
    let mut acks = Vec::new();
    let mut first_ack: Option<Instant> = None;
    let started = Instant::now();
    loop {
        let deadline = match first_ack {
            Some(t) => t + RUN_BEFORE_KILL,
            None => started + ACK_TIMEOUT,
        };
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(ack) => {
                first_ack.get_or_insert_with(Instant::now);
                acks.push(ack);
                if acks.len() >= ACKS_BEFORE_KILL {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let ran = first_ack.map_or(Duration::ZERO, |t| t.elapsed());
    let exited_by_itself = matches!(child.try_wait(), Ok(Some(_)));
    let _ = child.kill();
    let status = child
        .wait()
        .map_err(|e| Failure::usage(format!("waiting for the child: {e}")))?;
    // Lines the child wrote before the kill were acknowledged too, even if not read yet.
    let read_before_kill = acks.len();
    let _ = forwarder.join();
    acks.extend(rx.try_iter());
    if exited_by_itself || acks.is_empty() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(Failure::check(format!(
            "the crash writer {} ({status}){}",
            if acks.is_empty() {
                "acknowledged nothing"
            } else {
                "exited before it was killed"
            },
            if err.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", err.trim())
            }
        )));
    }
    say!(
        "    killed the child (pid {}) with SIGKILL after {} of appending and {} acknowledged \
         appends ({} more printed before it died)",
        child.id(),
        duration(ran),
        count(read_before_kill as u64),
        count((acks.len() - read_before_kill) as u64)
    );
    Ok(acks)
}

fn print_recovery(rep: &RecoveryReport, open: Duration) {
    say!(
        "    reopened in {}: {} segments, {} trusted from their seals, {} scanned ({}), next seq {}",
        duration(open),
        rep.segments,
        rep.sealed_segments_trusted,
        rep.segments_scanned,
        bytes(rep.bytes_scanned),
        count(rep.next_seq)
    );
    match &rep.truncation {
        None => say!("    truncation: none, the tail ended cleanly"),
        Some(t) => say!(
            "    truncation: log cut at {} offset {} ({}); dropped {} frames, {} of unfinished writes",
            t.path.file_name().map_or_else(
                || t.path.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            ),
            t.offset,
            t.reason.map_or_else(
                || "a reservation never published".to_string(),
                |k| k.to_string()
            ),
            t.records_dropped,
            bytes(t.bytes_dropped)
        ),
    }
    if !rep.removed_files.is_empty() {
        say!(
            "    removed {} unfinished segment file(s)",
            rep.removed_files.len()
        );
    }
}

/// Checks that every acknowledged record is in the log with the payload its writer gave it.
fn check_acks(log: &Log, acks: &[Ack]) -> Result<(), String> {
    let mut wanted: HashMap<u64, Ack> = HashMap::with_capacity(acks.len());
    for a in acks {
        if wanted.insert(a.seq, *a).is_some() {
            return Err(format!("sequence number {} was acknowledged twice", a.seq));
        }
    }
    let (Some(lo), Some(hi)) = (wanted.keys().min().copied(), wanted.keys().max().copied()) else {
        return Ok(());
    };
    let mut reader = log
        .read_from(lo)
        .map_err(|e| format!("seek to seq {lo}: {e}"))?;
    let mut found = 0usize;
    while let Some(rec) = reader.next() {
        let rec = rec.map_err(|e| format!("reading the recovered log: {e}"))?;
        if rec.seq() > hi {
            break;
        }
        if let Some(a) = wanted.get(&rec.seq()) {
            if rec.payload() != payload(a.thread, a.index) {
                return Err(format!("acknowledged seq {} has the wrong payload", a.seq));
            }
            found += 1;
        }
    }
    if found != wanted.len() {
        let missing = wanted.len() - found;
        return Err(format!(
            "{missing} acknowledged record(s) are missing after recovery"
        ));
    }
    Ok(())
}
