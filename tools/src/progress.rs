//! Progress bars for steps that can take more than a second: drawn on the terminal only, and
//! never when stdout is not a terminal or `--quiet` was given.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Turns every later bar off (`--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// True when `--quiet` was given: commands print only their results.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A bar counting to `len`, labelled `what`; hidden when stdout is not a terminal or with
/// `--quiet`.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if quiet() || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "    {msg:>8} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len)
        .with_style(style)
        .with_message(what.to_owned())
}

/// A spinner with the elapsed time, for work whose size is not known up front (a deep
/// verification, a compaction, a replay); hidden like [`bar`]. Call `finish_and_clear` when
/// done.
pub fn spinner(what: &str) -> ProgressBar {
    if quiet() || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let spinner = ProgressBar::new_spinner()
        .with_style(style)
        .with_message(what.to_owned());
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    spinner
}
