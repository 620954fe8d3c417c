//! Named consumers: persisted positions that compaction must not pass.
//!
//! Each consumer is a file `consumers/<name>.pos` (format in `format::consumer_file`),
//! replaced atomically (temporary file, `fsync`, rename, directory `fsync`) on every update.
//! A consumer's position is the first record it has not consumed; compaction keeps every
//! record from the smallest position on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::shared::lock;
use crate::error::{Error, Result};
use crate::format::consumer_file::{self, ConsumerPosition};
use crate::storage::fs as sfs;

/// Name of the consumer directory inside a log directory.
pub(crate) const CONSUMERS_DIR: &str = "consumers";
const SUFFIX: &str = ".pos";
const TMP_SUFFIX: &str = ".pos.tmp";
/// Longest consumer name accepted.
pub const CONSUMER_NAME_MAX: usize = 64;

pub(crate) struct Consumers {
    dir: PathBuf,
    state: Mutex<State>,
}

pub(crate) struct State {
    positions: BTreeMap<String, u64>,
    /// Records below this are being (or have been) compacted away: no position may point
    /// there. Raised by compaction before it removes anything.
    protect_from: u64,
}

impl Consumers {
    /// Opens (creating if needed) `<log_dir>/consumers` and loads every position. A damaged
    /// position file is an error: without it, compaction cannot know what is still needed.
    pub(crate) fn open(log_dir: &Path, first_seq: u64) -> Result<Consumers> {
        let dir = log_dir.join(CONSUMERS_DIR);
        if !dir.is_dir() {
            sfs::create_dir(&dir).map_err(|e| Error::io("create dir", &dir, e))?;
            sfs::sync_dir(log_dir)?;
        }
        // What an interrupted update left: the position it replaced is still in place.
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io("read dir", &dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("read dir", &dir, e))?;
            if entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
                let path = entry.path();
                sfs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
            }
        }
        let mut positions = BTreeMap::new();
        for (name, position) in list_dir(log_dir) {
            positions.insert(name, position?);
        }
        Ok(Consumers {
            dir,
            state: Mutex::new(State {
                positions,
                protect_from: first_seq,
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Registers `name` at `next_seq` unless it exists; returns its position.
    pub(crate) fn register(&self, name: &str, next_seq: u64) -> Result<u64> {
        check_name(name)?;
        let mut st = self.lock();
        if let Some(&p) = st.positions.get(name) {
            return Ok(p);
        }
        st.check_position(next_seq)?;
        self.store(name, next_seq)?;
        st.positions.insert(name.to_owned(), next_seq);
        Ok(next_seq)
    }

    /// Moves consumer `name` to `next_seq`.
    pub(crate) fn commit(&self, name: &str, next_seq: u64) -> Result<()> {
        let mut st = self.lock();
        if !st.positions.contains_key(name) {
            return Err(Error::invalid(format!("no consumer named {name:?}")));
        }
        st.check_position(next_seq)?;
        self.store(name, next_seq)?;
        st.positions.insert(name.to_owned(), next_seq);
        Ok(())
    }

    /// Removes consumer `name`; returns whether it existed.
    pub(crate) fn remove(&self, name: &str) -> Result<bool> {
        let mut st = self.lock();
        if st.positions.remove(name).is_none() {
            return Ok(false);
        }
        let path = self.dir.join(format!("{name}{SUFFIX}"));
        sfs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
        sfs::sync_dir(&self.dir)?;
        Ok(true)
    }

    pub(crate) fn position(&self, name: &str) -> Option<u64> {
        self.lock().positions.get(name).copied()
    }

    pub(crate) fn list(&self) -> Vec<(String, u64)> {
        self.lock()
            .positions
            .iter()
            .map(|(n, p)| (n.clone(), *p))
            .collect()
    }

    fn store(&self, name: &str, next_seq: u64) -> Result<()> {
        let path = self.dir.join(format!("{name}{SUFFIX}"));
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        let bytes = consumer_file::encode(ConsumerPosition {
            next_seq,
            updated_ns: sfs::now_ns(),
        });
        sfs::replace_file(&path, &tmp, &[&bytes])
    }
}

impl State {
    /// The smallest position, and whose it is.
    pub(crate) fn floor(&self) -> Option<(&str, u64)> {
        self.positions
            .iter()
            .min_by_key(|(_, p)| **p)
            .map(|(n, p)| (n.as_str(), *p))
    }

    /// Called by compaction, with the lock held, before it removes records below `seq`.
    pub(crate) fn protect_from(&mut self, seq: u64) {
        self.protect_from = self.protect_from.max(seq);
    }

    fn check_position(&self, next_seq: u64) -> Result<()> {
        if next_seq < self.protect_from {
            return Err(Error::invalid(format!(
                "position {next_seq} is before the first record kept by the log ({})",
                self.protect_from
            )));
        }
        Ok(())
    }
}

/// Interrupted position updates in `log_dir`, which [`Consumers::open`] removes.
pub(crate) fn temporary_files(log_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(log_dir.join(CONSUMERS_DIR)) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(TMP_SUFFIX))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Every consumer position file in log directory `log_dir`, by name, each decoded; reads
/// only (for inspection tools).
pub(crate) fn list_dir(log_dir: &Path) -> Vec<(String, Result<u64>)> {
    let dir = log_dir.join(CONSUMERS_DIR);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Result<u64>)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(SUFFIX)?.to_owned();
            check_name(&name).ok()?;
            let path = e.path();
            let pos = std::fs::read(&path)
                .map_err(|err| Error::io("read", &path, err))
                .and_then(|b| {
                    consumer_file::decode(&b)
                        .map(|p| p.next_seq)
                        .map_err(|k| Error::corrupt(&path, 0, k))
                });
            Some((name, pos))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Consumer names become file names: 1 to 64 of `A-Z a-z 0-9 _ - .`, not starting with `.`.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= CONSUMER_NAME_MAX
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "consumer name {name:?} must be 1 to {CONSUMER_NAME_MAX} of A-Z a-z 0-9 _ - . and not start with '.'"
        )))
    }
}
