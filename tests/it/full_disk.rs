//! A full disk: `append` returns `Error::NoSpace` at the rollover that cannot allocate its
//! segment (segments are allocated with `fallocate`, never sparse, so writing through the
//! mapping can never hit ENOSPC, which would be a SIGBUS). The log stays readable, and
//! appends work again once space is freed.

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
