//! One module per engine; each has `run(workload, dir)`, which opens the engine in `dir`, runs
//! the workload and reports what it measured.

pub mod bufwriter;
#[cfg(feature = "commitlog")]
pub mod commitlog;
#[cfg(feature = "fjall")]
pub mod fjall;
pub mod limit;
pub mod mmlog;
#[cfg(feature = "okaywal")]
pub mod okaywal;
#[cfg(feature = "raft-engine")]
pub mod raft_engine;
#[cfg(feature = "sled")]
pub mod sled;

use std::path::Path;

use crate::harness::Outcome;
use crate::workload::Workload;

/// Every engine the parent runs, in the order of the table's columns; mmlog first.
pub const ALL: &[&str] = &[
    "mmlog",
    "bufwriter",
    "okaywal",
    "sled",
    "fjall",
    "commitlog",
    "raft-engine",
    "limit",
];

/// The peers whose open reads and checks the records it recovers: the open workloads compare
/// mmlog with these only (a plain file, commitlog and an okaywal emptied by its checkpoints
/// have nothing they check at open; their cells say so).
pub const VALIDATES_ON_OPEN: &[&str] = &["sled", "fjall", "raft-engine"];

/// Not engines: the columns that are not peers (the machine's limits).
pub const NOT_PEERS: &[&str] = &["mmlog", "limit"];

/// Whether `engine` was compiled into this binary (its cargo feature is on).
#[allow(clippy::match_like_matches_macro)] // the answers depend on the features
pub fn built(engine: &str) -> bool {
    match engine {
        "mmlog" | "bufwriter" | "limit" => true,
        "okaywal" => cfg!(feature = "okaywal"),
        "sled" => cfg!(feature = "sled"),
        "fjall" => cfg!(feature = "fjall"),
        "commitlog" => cfg!(feature = "commitlog"),
        "raft-engine" => cfg!(feature = "raft-engine"),
        _ => false,
    }
}

/// Runs `w` on the engine named `engine` in the empty directory `dir`.
pub fn run(engine: &str, w: &Workload, dir: &Path) -> Result<Outcome, String> {
    match engine {
        "mmlog" => mmlog::run(w, dir),
        "bufwriter" => bufwriter::run(w, dir),
        "limit" => limit::run(w, dir),
        #[cfg(feature = "okaywal")]
        "okaywal" => okaywal::run(w, dir),
        #[cfg(feature = "sled")]
        "sled" => sled::run(w, dir),
        #[cfg(feature = "fjall")]
        "fjall" => fjall::run(w, dir),
        #[cfg(feature = "commitlog")]
        "commitlog" => commitlog::run(w, dir),
        #[cfg(feature = "raft-engine")]
        "raft-engine" => raft_engine::run(w, dir),
        other if ALL.contains(&other) => Err(format!(
            "{other}: not built in (its cargo feature `{other}` is off)"
        )),
        other => Err(format!("unknown engine {other:?}")),
    }
}
