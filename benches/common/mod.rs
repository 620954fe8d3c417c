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

/// A deterministic stream of 64-bit values (SplitMix64), for data and choices that vary
/// from run to run in the same way. (Not every bench file uses it.)
#[allow(dead_code)]
pub struct SplitMix(pub u64);

#[allow(dead_code)]
impl SplitMix {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (the modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
