//! Real filesystem faults, on a small tmpfs mounted for the test (as root; each test prints
//! why it is skipped otherwise):
//!
//! - a full disk: `append` returns `Error::NoSpace` at the rollover that cannot allocate its
//!   segment (segments are allocated with `fallocate`, never sparse, so writing through the
//!   mapping can never hit ENOSPC, which would be a SIGBUS); the log stays readable, and
//!   appends work again once space is freed;
//! - a read-only filesystem: opening is a clear I/O error naming the log; inspection works;
//! - another process holding the lock: `Error::Locked`.

use std::path::{Path, PathBuf};
use std::process::Command;

use mmlog::{Durability, Error, Options};

use crate::support::{open, payload, read_all};

/// A small tmpfs mounted for the test; unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Result<SmallFs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn full_disk_is_a_clean_no_space_error() {
    let fs = match SmallFs::mount("12m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!(
                "SKIPPED full_disk_is_a_clean_no_space_error: needs root to mount a tmpfs ({why})"
            );
            return;
        }
    };
    let filler: PathBuf = fs.path().join("filler");
    std::fs::write(&filler, vec![1u8; 4 << 20]).unwrap();
    let dir = fs.path().join("log");
    let opts = || {
        Options::default()
            .segment_size(1 << 20)
            .durability(Durability::Buffered)
    };
    let log = open(&dir, opts());
    let mut written = Vec::new();
    let err = loop {
        let p = payload(0, written.len(), 1000);
        match log.append(&p) {
            Ok(seq) => written.push((seq, p)),
            Err(e) => break e,
        }
        assert!(written.len() < 100_000, "the disk never filled up");
    };
    assert!(
        matches!(err, Error::NoSpace { .. }),
        "expected NoSpace, got {err:?}"
    );
    assert!(written.len() > 1000);
    // Still readable, still refusing cleanly.
    assert_eq!(read_all(&log), written);
    assert!(matches!(log.append(b"x"), Err(Error::NoSpace { .. })));
    // Free space: appends resume.
    std::fs::remove_file(&filler).unwrap();
    // 4 MiB freed: room for the next segments (1 MiB each) and the spare made ahead.
    for i in 0..1000 {
        let p = payload(1, i, 1000);
        let seq = log.append(&p).unwrap();
        written.push((seq, p));
    }
    log.close().unwrap();
    let log = open(&dir, opts());
    assert_eq!(read_all(&log), written);
}

#[test]
fn read_only_filesystem_is_a_clear_error() {
    let fs = match SmallFs::mount("8m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED read_only_filesystem_is_a_clear_error: needs root ({why})");
            return;
        }
    };
    let dir = fs.path().join("log");
    let opts = || Options::default().segment_size(1 << 20);
    let log = open(&dir, opts());
    log.append(b"before").unwrap();
    log.close().unwrap();
    let remount = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(fs.path())
        .status();
    if !remount.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED read_only_filesystem_is_a_clear_error: remount read-only failed");
        return;
    }
    match mmlog::Log::open(&dir, opts()) {
        Err(Error::Io { path, source, .. }) => {
            assert_eq!(
                source.raw_os_error(),
                Some(30),
                "EROFS expected, got {source}"
            );
            assert!(path.starts_with(&dir), "{path:?}");
        }
        other => panic!("expected an I/O error naming the log, got {other:?}"),
    }
    // Read-only inspection still works.
    let found = mmlog::inspect::inspect(&dir, true).unwrap();
    assert_eq!(found.records, 1);
}

#[test]
fn another_process_holding_the_lock_gets_locked() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), Options::default()));
    let lock = dir.path().join("LOCK");
    // `flock` from util-linux holds the lock in a separate process for a few seconds.
    let child = Command::new("flock")
        .arg("-x")
        .arg(&lock)
        .args(["sleep", "5"])
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("SKIPPED another_process_holding_the_lock_gets_locked: no flock(1)");
        return;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
    let mut result = mmlog::Log::open(dir.path(), Options::default()).map(drop);
    while result.is_ok() && std::time::Instant::now() < deadline {
        // The child may not have taken the lock yet.
        std::thread::sleep(std::time::Duration::from_millis(20));
        result = mmlog::Log::open(dir.path(), Options::default()).map(drop);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(matches!(result, Err(Error::Locked { .. })), "{result:?}");
}

/// Closing a log while another thread starts a child process, then reopening it at once:
/// the child holds a copy of the lock's descriptor from its fork until it runs its program,
/// and the reopen must wait that out rather than fail with `Locked`.
#[test]
fn reopen_while_a_forked_child_still_holds_the_lock_descriptor() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let log = mmlog::Log::open(dir.path(), mmlog::Options::default()).unwrap();
    log.append(b"kept").unwrap();
    // Another thread starts a child that pauses between its fork and its exec.
    let spawner = std::thread::spawn(|| {
        let mut child = std::process::Command::new("true");
        // SAFETY: the hook runs in the child between fork and exec and only sleeps
        // (nanosleep is async-signal-safe); it allocates nothing and takes no lock.
        unsafe {
            child.pre_exec(|| {
                let pause = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 150_000_000,
                };
                libc::nanosleep(&pause, std::ptr::null_mut());
                Ok(())
            });
        }
        child.spawn().unwrap().wait().unwrap()
    });
    // Well inside the child's pause.
    std::thread::sleep(std::time::Duration::from_millis(50));
    log.close().unwrap();
    let reopened = mmlog::Log::open(dir.path(), mmlog::Options::default());
    assert!(spawner.join().unwrap().success());
    let reopened = reopened.expect("the lock of a closed log is free once the child execs");
    assert_eq!(reopened.last_seq(), Some(0));
}
