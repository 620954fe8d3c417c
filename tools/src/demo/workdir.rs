//! The demo's directory: cleared before a run, removed after one, and never anything that
//! does not look like a demo's logs (the logs in [`LOGS`], or one log, as older demos left).

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use crate::failure::{CmdResult, Failure};
use crate::output::say;

/// The logs the demo makes in its directory: the event store's, the migration's and the
/// engine's. Each is a log directory of its own (a log does not nest inside another).
pub const LOGS: [&str; 3] = ["events", "migration", "engine"];

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
    let logs: Vec<std::path::PathBuf> = if looks_like_log(dir) {
        vec![dir.to_path_buf()]
    } else if let Some(logs) = demo_logs(dir) {
        logs
    } else {
        return Err(Failure::usage(format!(
            "{shown} exists and is not a demo directory (only the logs {} or one mmlog log); \
             refusing to delete it: choose another --dir or remove it yourself",
            LOGS.join(", ")
        )));
    };
    for log in &logs {
        if let Ok(ins) = mmlog::inspect::inspect(log, false)
            && let Some((pid, true)) = ins.lock_owner
        {
            return Err(Failure::usage(format!(
                "the log in {} is open in process {pid}; wait for it or choose another --dir",
                log.display()
            )));
        }
    }
    fs::remove_dir_all(dir)
        .map_err(|e| Failure::usage(format!("cannot remove the old demo log {shown}: {e}")))?;
    Ok(true)
}

/// The logs of an earlier demo in `dir`: nothing but directories named in [`LOGS`], each a
/// log.
fn demo_logs(dir: &Path) -> Option<Vec<std::path::PathBuf>> {
    let mut logs = Vec::new();
    for entry in fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let name = entry.file_name();
        let path = entry.path();
        if !LOGS.iter().any(|l| name == *l) || !looks_like_log(&path) {
            return None;
        }
        logs.push(path);
    }
    Some(logs)
}

/// A `segments/` directory holding nothing but segment files and their index files.
fn looks_like_log(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir.join("segments")) else {
        return false;
    };
    entries.into_iter().all(|e| {
        e.is_ok_and(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            [".seg", ".seg.tmp", ".idx", ".idx.tmp"]
                .iter()
                .any(|suffix| name.ends_with(suffix))
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
