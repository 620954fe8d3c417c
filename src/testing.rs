//! Crash-testing an application built on mmlog: simulated power loss, injected I/O faults and
//! real process kills (cargo feature `testing`).
//!
//! Killing a process (`SIGKILL`) leaves the page cache behind, so it never shows what an OS
//! crash or a power cut does to a log. [`PowerLoss`] does. While one is alive, mmlog records,
//! for every file under its directory, what each successful `msync`, `fdatasync` or `fsync`
//! covered (the *durable image*), beside the live files. At a crash it writes a second
//! directory holding what the disk could hold after a power cut:
//!
//! - every byte a sync covered, exactly;
//! - of the bytes written since, a seeded choice: none of them, all of them (what a process
//!   crash leaves), or each 4 KiB page kept as synced, written back, or **torn** (each
//!   512-byte sector from one or the other);
//! - the file names as of the last directory `fsync`, plus a prefix of the creates, renames
//!   and removals after it (metadata changes reach the disk in order and a rename is atomic,
//!   as on a journaling file system such as ext4 or XFS); a file whose length changed since
//!   its last sync with either length.
//!
//! From the crash on, the simulated machine is off: every storage operation under the
//! directory fails, so the log stops acknowledging anything, and everything it acknowledged
//! before is in the image. Open the image with [`Log::open`](crate::Log::open) as a restart
//! would, and check what your application finds there.
//!
//! The same seam injects I/O errors ([`PowerLoss::fail_op`]): fail the N-th storage operation
//! once, or from then on, for every N of a workload.
//!
//! For real process crashes, [`kill_child_after`] runs the same executable again as a child
//! (a test re-running itself, or a program's `main`), kills it with `SIGKILL` after a delay,
//! and hands back every line the child acknowledged through [`Acks`] before it died;
//! [`run_if_child`] is the child's side. `examples/crash_test.rs` uses both.
//!
//! The live files are real files: put the directory on a `tmpfs` (such as `/dev/shm`) and the
//! syncs cost nothing, so thousands of crashes run in seconds. The choices are seeded: a
//! failing seed replays the same crash, up to the timing of mmlog's background thread that
//! prepares the next segment.
//!
//! # Example
//!
//! ```
//! use mmlog::testing::PowerLoss;
//! use mmlog::{Durability, Log, Options};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let (dir, image) = (tmp.path().join("log"), tmp.path().join("after-crash"));
//! let opts = Options::default()
//!     .segment_size(4096)
//!     .durability(Durability::Immediate);
//!
//! let machine = PowerLoss::new(&dir, 42)?;
//! // Crash just before mmlog's 30th storage operation from now.
//! machine.crash_before_op(30, &image);
//! let mut acknowledged = 0u64;
//! if let Ok(log) = Log::open(&dir, opts.clone()) {
//!     for i in 0..1000u64 {
//!         match log.append(&i.to_le_bytes()) {
//!             Ok(_) => acknowledged += 1,
//!             Err(_) => break, // the machine is off
//!         }
//!     }
//! }
//! assert!(machine.crashed().is_some());
//! drop(machine);
//!
//! // Restart on what the disk held: every acknowledged append is there.
//! let log = Log::open(&image, opts)?;
//! let mut reader = log.read_from(0)?;
//! let mut found = 0u64;
//! while let Some(record) = reader.next() {
//!     assert_eq!(record?.payload(), &found.to_le_bytes());
//!     found += 1;
//! }
//! assert!(found >= acknowledged);
//! # Ok(())
//! # }
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::storage::sim::{FaultKind, ImageStats, Sim};

/// A simulated machine under one directory: records what is durable there, crashes on
/// request, and injects I/O faults. Dropping it ends the simulation.
///
/// Only one simulation may cover a directory at a time, and the image of a crash must be
/// written outside the simulated directory.
pub struct PowerLoss {
    sim: Arc<Sim>,
}

/// How an injected I/O fault behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Only the chosen storage operation fails (a transient error).
    Once,
    /// The chosen storage operation and every one after it fail (a dead disk).
    Persistent,
}

/// What a simulated crash left: counts of what the seeded choices decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CrashImage {
    /// Where the image was written.
    pub dir: PathBuf,
    /// Files in the image.
    pub files: u64,
    /// Pages whose live bytes differed from what their file's syncs covered.
    pub pages_unsynced: u64,
    /// Of those, pages taken whole from the live file (written back before the crash).
    pub pages_written_back: u64,
    /// Of those, pages torn: some sectors as synced, some as written.
    pub pages_torn: u64,
    /// Name changes (creates, renames, removals) made after the last directory `fsync` that
    /// the image does not show: it holds the names as of that `fsync` plus a prefix of the
    /// changes after it, as a journaling file system would.
    pub name_changes_lost: u64,
}

impl CrashImage {
    fn new(dir: &Path, s: ImageStats) -> CrashImage {
        CrashImage {
            dir: dir.to_path_buf(),
            files: s.files,
            pages_unsynced: s.pages_differing,
            pages_written_back: s.pages_live,
            pages_torn: s.pages_torn,
            name_changes_lost: s.name_changes_lost,
        }
    }
}

impl PowerLoss {
    /// Starts simulating the machine under `dir` (created if missing), with the seeded
    /// choices drawn from `seed`. Whatever is already in `dir` counts as durable. Pass the
    /// same path to [`Log::open`](crate::Log::open): operations are matched by path prefix.
    ///
    /// Fails if another simulation covers `dir`, or a directory inside or around it.
    pub fn new(dir: impl AsRef<Path>, seed: u64) -> io::Result<PowerLoss> {
        Ok(PowerLoss {
            sim: Sim::register(dir.as_ref(), seed)?,
        })
    }

    /// The simulated directory.
    pub fn dir(&self) -> &Path {
        self.sim.root()
    }

    /// Storage operations mmlog has performed under the directory so far: file creations,
    /// writes, renames, removals and syncs (not stores into a mapping, which are memory
    /// writes). Run a workload once without a crash to learn how many crash points it has.
    pub fn ops(&self) -> u64 {
        self.sim.ops()
    }

    /// Arms a crash just before the `n`-th storage operation from now (`n >= 1`): the image
    /// is written to `image` (which must not exist, and must lie outside the simulated
    /// directory), and that operation and every later one fail.
    pub fn crash_before_op(&self, n: u64, image: impl AsRef<Path>) {
        self.sim.crash_before(n, image.as_ref());
    }

    /// Crashes now: writes the image to `image` and turns the machine off.
    ///
    /// If a crash armed with [`PowerLoss::crash_before_op`] already happened (mmlog's
    /// background threads can reach it at any moment), that crash stands and its image is
    /// returned: read the image's location from [`CrashImage::dir`].
    pub fn crash_now(&self, image: impl AsRef<Path>) -> io::Result<CrashImage> {
        let crash = self.sim.crash_into(image.as_ref());
        crash
            .outcome
            .map(|stats| CrashImage::new(&crash.image, stats))
            .map_err(io::Error::other)
    }

    /// The armed crash's image once it happened, `None` before; an error if the image could
    /// not be written.
    pub fn crashed(&self) -> Option<Result<CrashImage, String>> {
        let crash = self.sim.crashed()?;
        Some(
            crash
                .outcome
                .map(|stats| CrashImage::new(&crash.image, stats)),
        )
    }

    /// Makes the `n`-th storage operation from now (`n >= 1`) fail with an I/O error, once or
    /// from then on.
    pub fn fail_op(&self, n: u64, fault: Fault) {
        let kind = match fault {
            Fault::Once => FaultKind::Once,
            Fault::Persistent => FaultKind::Persistent,
        };
        self.sim.fail_op(n, kind);
    }

    /// I/O errors injected so far.
    pub fn faults_injected(&self) -> u64 {
        self.sim.faults_injected()
    }

    /// The first 64 storage operations that injected faults failed, each as the operation
    /// (such as `msync`, `rename`, `fsync directory`) and its path.
    pub fn faulted_ops(&self) -> Vec<String> {
        self.sim.faulted()
    }
}

impl Drop for PowerLoss {
    fn drop(&mut self) {
        self.sim.unregister();
    }
}

impl std::fmt::Debug for PowerLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerLoss")
            .field("dir", &self.sim.root())
            .field("ops", &self.sim.ops())
            .finish()
    }
}

/// The environment variable that tells a process started by [`kill_child_after`] that it is
/// the child, and which directory to work in.
pub const CHILD_DIR_ENV: &str = "MMLOG_TESTING_CHILD_DIR";

/// The prefix of the lines a child prints through [`Acks`], so that the parent can tell them
/// from anything else the child prints (a test harness's own output, for one).
const ACK_PREFIX: &str = "mmlog-ack ";

/// Where a child started by [`kill_child_after`] reports what it acknowledged: each call
/// writes one line to standard output and flushes it, so that once `ack` returns, the
/// parent receives the line even if the child is killed the next instant.
#[derive(Debug)]
pub struct Acks {
    out: io::Stdout,
}

impl Acks {
    /// Reports `line` (which should hold no newline) to the parent.
    pub fn ack(&mut self, line: &str) -> io::Result<()> {
        use io::Write;
        let mut out = self.out.lock();
        writeln!(out, "{ACK_PREFIX}{line}")?;
        out.flush()
    }
}

/// In a process started by [`kill_child_after`], runs `workload` on the directory the parent
/// chose and exits; in any other process, returns at once without running it.
///
/// Call it first thing in the code the parent re-runs (a test function, or `main`).
pub fn run_if_child(workload: impl FnOnce(&Path, &mut Acks)) {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let mut acks = Acks { out: io::stdout() };
    workload(Path::new(&dir), &mut acks);
    std::process::exit(0);
}

/// How a child ended, and what it acknowledged first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Killed {
    /// The lines the child reported through [`Acks::ack`] before it died, in order (a line
    /// the kill cut in half is dropped: the child had not finished acknowledging it).
    pub acks: Vec<String>,
    /// The child was killed by `SIGKILL`, not finished on its own.
    pub killed: bool,
    /// What the child wrote to standard error.
    pub stderr: String,
}

/// Runs this same executable again as a child, with `args` and with [`CHILD_DIR_ENV`] set to
/// `dir`, lets it run for `after`, kills it with `SIGKILL` (a real process crash: the page
/// cache survives, the process does not) and returns what it acknowledged.
///
/// In a test, pass the test's own name and `--exact` so that the child runs only that test,
/// whose first line is [`run_if_child`]:
///
/// ```no_run
/// use std::time::Duration;
/// use mmlog::testing::{kill_child_after, run_if_child};
/// use mmlog::{Log, Options};
///
/// #[test]
/// fn survives_kill() {
///     run_if_child(|dir, acks| {
///         let log = Log::open(dir, Options::default()).unwrap();
///         for i in 0u64.. {
///             let seq = log.append(&i.to_le_bytes()).unwrap();
///             acks.ack(&seq.to_string()).unwrap();
///         }
///     });
///     let dir = tempfile::tempdir().unwrap();
///     let args = ["survives_kill", "--exact", "--nocapture"];
///     let run = kill_child_after(&args, dir.path(), Duration::from_millis(50)).unwrap();
///     let log = Log::open(dir.path(), Options::default()).unwrap();
///     // Every acknowledged record is there.
///     assert!(log.last_seq() >= run.acks.last().map(|s| s.parse().unwrap()));
/// }
/// ```
pub fn kill_child_after(
    args: &[&str],
    dir: impl AsRef<Path>,
    after: std::time::Duration,
) -> io::Result<Killed> {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(args)
        .env(CHILD_DIR_ENV, dir.as_ref())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    std::thread::sleep(after);
    // Killing a child that already exited is harmless: `wait` tells how it ended.
    let _ = child.kill();
    let status = child.wait()?;
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let text = String::from_utf8_lossy(&out);
    // Only whole lines: a line without its newline was cut by the kill.
    let whole = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    Ok(Killed {
        acks: whole
            .lines()
            .filter_map(|l| l.strip_prefix(ACK_PREFIX))
            .map(str::to_string)
            .collect(),
        killed: status.signal() == Some(libc::SIGKILL),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    })
}
