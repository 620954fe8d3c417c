//! What every engine shares: the payloads, the timed multi-threaded driver, the pause after
//! opening and the result of one run.

use std::path::Path;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// What one child run found.
pub enum Outcome {
    /// The workload ran: `records` in `seconds` (the timed part only).
    Measured {
        records: u64,
        seconds: f64,
        /// How this engine ran the workload, where it differs from the plain reading.
        note: Option<String>,
        /// What the engine reported about the run (progress line and `--json` only).
        detail: Option<String>,
    },
    /// The engine's API has no way to run this workload as specified.
    #[cfg_attr(not(feature = "commitlog"), allow(dead_code))]
    Unsupported(String),
}

/// One appending thread's handle on an engine.
pub trait Writer: Send {
    /// Appends one record.
    fn append(&mut self, payload: &[u8]) -> Result<(), String>;
    /// Appends `payloads` in one call: the durable-batch workloads (durable when it returns).
    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<(), String>;
    /// Called once by the thread after its last append, inside the timed part (e.g. commits a
    /// partly filled batch, or hands a user-space buffer to the OS).
    fn finish(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// Bytes of random payload source; record `i` is the `i`-th consecutive slice of it (wrapping
/// around), so that no engine's compression gets an easy ride, no time is spent generating
/// payloads, and reading the source streams through the cache (random offsets into 4 MiB
/// cost about 50 ns of cache and TLB misses per record here, more than an mmlog append).
const POOL: usize = 4 << 20;

/// Random bytes for payloads, different per `seed`.
pub struct Payloads {
    pool: Vec<u8>,
    size: usize,
}

impl Payloads {
    pub fn new(size: usize, seed: u64) -> Payloads {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut pool = Vec::with_capacity(POOL + size);
        while pool.len() < POOL + size {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            pool.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        Payloads { pool, size }
    }

    /// The payload of record `i`.
    #[inline]
    pub fn get(&self, i: u64) -> &[u8] {
        let off = (i as usize).wrapping_mul(self.size) % POOL;
        &self.pool[off..off + self.size]
    }
}

/// What the whole process (every thread, the engine's background threads too) used during
/// the timed part, from `getrusage(RUSAGE_SELF)`.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// User + system CPU seconds.
    pub cpu_secs: f64,
    /// Of which system (kernel) CPU seconds.
    pub sys_secs: f64,
    /// Minor page faults.
    pub minor_faults: i64,
    /// Major page faults (ones that waited for I/O).
    pub major_faults: i64,
    /// Voluntary context switches (waits: locks, I/O, sleeps).
    pub voluntary_switches: i64,
    /// Involuntary context switches (preempted).
    pub involuntary_switches: i64,
}

fn rusage() -> Option<libc::rusage> {
    // SAFETY: `getrusage` only writes the `rusage` it is given, which is zeroed memory of the
    // right type; RUSAGE_SELF is always a valid `who`.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut ru) == 0).then_some(ru)
    }
}

fn secs(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

/// The usage of the last timed part, for the child's report.
static LAST_USAGE: Mutex<Option<Usage>> = Mutex::new(None);

/// Stores what the process used since `before` (from [`rusage`]) for [`last_usage`].
fn record_usage(before: Option<libc::rusage>) {
    if let (Some(a), Some(b)) = (before, rusage()) {
        let usage = Usage {
            cpu_secs: secs(b.ru_utime) + secs(b.ru_stime) - secs(a.ru_utime) - secs(a.ru_stime),
            sys_secs: secs(b.ru_stime) - secs(a.ru_stime),
            minor_faults: b.ru_minflt - a.ru_minflt,
            major_faults: b.ru_majflt - a.ru_majflt,
            voluntary_switches: b.ru_nvcsw - a.ru_nvcsw,
            involuntary_switches: b.ru_nivcsw - a.ru_nivcsw,
        };
        if let Ok(mut last) = LAST_USAGE.lock() {
            *last = Some(usage);
        }
    }
}

/// What the process used during the last timed part, if it could be measured.
pub fn last_usage() -> Option<Usage> {
    LAST_USAGE.lock().ok().and_then(|u| *u)
}

/// The untimed pause after an engine is opened, the same for every engine, so that background
/// work started by the open (segment preallocation, recovery threads) is not timed: 200 ms, or
/// `COMPARE_SETTLE_MS`.
pub fn settle() {
    let ms = std::env::var("COMPARE_SETTLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    std::thread::sleep(Duration::from_millis(ms));
}

/// Runs one thread per writer, each appending `per_thread` records of `size` bytes (`batch` at a
/// time through [`Writer::append_batch`] if `batch > 1`), from a common start; returns the seconds from the first thread's start until the last thread
/// has appended and called `finish`. Every thread takes its own start and end time, so a
/// main thread that is slow to wake up (on a busy machine) cannot shorten or stretch the
/// measurement.
pub fn drive<W: Writer>(
    writers: Vec<W>,
    per_thread: u64,
    size: usize,
    batch: u64,
) -> Result<f64, String> {
    let ready = Barrier::new(writers.len() + 1);
    let go = Barrier::new(writers.len() + 1);
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (t, mut w) in writers.into_iter().enumerate() {
            let (ready, go) = (&ready, &go);
            handles.push(s.spawn(move || -> Result<(Instant, Instant), String> {
                let payloads = Payloads::new(size, t as u64 + 1);
                ready.wait();
                go.wait();
                let mut calls: Vec<&[u8]> = Vec::with_capacity(batch as usize);
                let start = Instant::now();
                if batch > 1 {
                    for first in (0..per_thread).step_by(batch as usize) {
                        calls.clear();
                        calls.extend(
                            (first..(first + batch).min(per_thread)).map(|i| payloads.get(i)),
                        );
                        w.append_batch(&calls)?;
                    }
                } else {
                    for i in 0..per_thread {
                        w.append(payloads.get(i))?;
                    }
                }
                w.finish()?;
                Ok((start, Instant::now()))
            }));
        }
        ready.wait();
        let before = rusage();
        go.wait();
        let mut first_error = None;
        let mut span: Option<(Instant, Instant)> = None;
        for h in handles {
            match h
                .join()
                .unwrap_or_else(|_| Err("a writer thread panicked".to_string()))
            {
                Ok((start, end)) => {
                    span = Some(match span {
                        None => (start, end),
                        Some((s0, e0)) => (s0.min(start), e0.max(end)),
                    });
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        record_usage(before);
        match (first_error, span) {
            (Some(e), _) => Err(e),
            (None, Some((start, end))) => Ok(end.duration_since(start).as_secs_f64()),
            (None, None) => Err("no writer threads".to_string()),
        }
    })
}

/// Appends `records` payloads through one writer, untimed (the load phase of a read workload).
pub fn load<W: Writer>(mut w: W, records: u64, size: usize) -> Result<(), String> {
    let payloads = Payloads::new(size, 1);
    for i in 0..records {
        w.append(payloads.get(i))?;
    }
    w.finish()
}

/// Times `read`, which returns the records it read and their payload bytes, and checks them.
pub fn timed_read(
    records: u64,
    size: usize,
    read: impl FnOnce() -> Result<(u64, u64), String>,
) -> Result<f64, String> {
    let before = rusage();
    let start = Instant::now();
    let result = read();
    let secs = start.elapsed().as_secs_f64();
    record_usage(before);
    let (n, bytes) = result?;
    if n != records || bytes != records * size as u64 {
        return Err(format!(
            "read back {n} records of {bytes} bytes in all, expected {records} of {size} bytes each"
        ));
    }
    Ok(secs)
}

/// Times `open` (an engine's open of what [`load`] wrote), after evicting every file under
/// `dir` from the page cache if `cold`; returns the seconds and what `open` returned.
pub fn timed_open<T>(
    dir: &Path,
    cold: bool,
    open: impl FnOnce() -> Result<T, String>,
) -> Result<(f64, T), String> {
    if cold {
        evict(dir)?;
    }
    let before = rusage();
    let start = Instant::now();
    let opened = open();
    let secs = start.elapsed().as_secs_f64();
    record_usage(before);
    Ok((secs, opened?))
}

/// Writes back everything dirty (`sync`), then drops every file under `dir` from the page
/// cache (`posix_fadvise(POSIX_FADV_DONTNEED)`, which drops clean, unmapped pages): the next
/// reads come from the disk, as after a reboot. No root needed.
fn evict(dir: &Path) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    std::process::Command::new("sync")
        .status()
        .map_err(ctx("sync"))?;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(ctx("read_dir"))? {
            let path = entry.map_err(ctx("read_dir"))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(f) = std::fs::File::open(&path) {
                // SAFETY: a plain system call on a file descriptor `f` owns and keeps open.
                let rc =
                    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
                if rc != 0 {
                    return Err(format!("posix_fadvise {}: error {rc}", path.display()));
                }
            }
        }
    }
    Ok(())
}

/// Turns any displayable error into the child's error string, with what was being done.
pub fn ctx<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// Turns any debuggable error (for crates whose errors are not `Display`) into a string.
#[allow(dead_code)]
pub fn ctx_dbg<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e:?}")
}
