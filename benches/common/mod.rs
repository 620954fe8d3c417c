//! Setup shared by the benchmark files.

use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;

/// Small samples: the whole suite runs in a few minutes on a 2-core machine.
pub fn main_config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// Where the benchmark logs go: `MMLOG_BENCH_DIR`, or the temporary directory.
pub fn bench_base() -> PathBuf {
    std::env::var_os("MMLOG_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}
