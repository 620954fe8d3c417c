//! The demo's directory: cleared before a run, removed after one, and never anything that
//! does not look like a demo log.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use crate::failure::{CmdResult, Failure};
use crate::output::say;

/// Makes sure `dir` is free for a new log. Removes an earlier log (returning true) but refuses
/// a directory with anything else in it, and a log that a process has open.
pub fn prepare(dir: &Path) -> CmdResult<bool> {
    let shown = dir.display();
    let md = match fs::symlink_metadata(dir) {
        Ok(md) => md,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Failure::usage(format!("cannot look at {shown}: {e}"))),
    };
    if !md.is_dir() {
        return Err(Failure::usage(format!(
            "{shown} exists and is not a directory; choose another --dir"
        )));
    }
    let mut entries =
        fs::read_dir(dir).map_err(|e| Failure::usage(format!("cannot read {shown}: {e}")))?;
    if entries.next().is_none() {
        return Ok(false);
    }
    if !looks_like_log(dir) {
        return Err(Failure::usage(format!(
            "{shown} exists and is not an mmlog log (no segments/ directory of .seg files); \
             refusing to delete it: choose another --dir or remove it yourself"
        )));
    }
    if let Ok(ins) = mmlog::inspect::inspect(dir, false)
        && let Some((pid, true)) = ins.lock_owner
    {
        return Err(Failure::usage(format!(
            "the log in {shown} is open in process {pid}; wait for it or choose another --dir"
        )));
    }
    fs::remove_dir_all(dir)
        .map_err(|e| Failure::usage(format!("cannot remove the old demo log {shown}: {e}")))?;
    Ok(true)
}

/// A `segments/` directory holding nothing but segment files.
fn looks_like_log(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir.join("segments")) else {
        return false;
    };
    entries.into_iter().all(|e| {
        e.is_ok_and(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".seg") || name.ends_with(".seg.tmp")
        })
    })
}

/// Removes the demo log at the end of a run; a failure is only worth a warning.
pub fn remove(dir: &Path) {
    match fs::remove_dir_all(dir) {
        Ok(()) => say!("removed {} (pass --keep to keep it)", dir.display()),
        Err(e) => eprintln!("warning: could not remove {}: {e}", dir.display()),
    }
}
