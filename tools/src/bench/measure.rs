//! Recording latencies in HdrHistograms, and what a scenario reports: per store and
//! operation, how many operations in how long, and their latency percentiles.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

/// Latencies in nanoseconds.
pub type Hist = Histogram<u64>;

/// The largest latency a histogram tells apart from larger ones: 100 s.
const HIGHEST_NS: u64 = 100_000_000_000;

/// A histogram of nanoseconds, from 1 ns to 100 s at 3 significant digits.
pub fn histogram() -> Hist {
    match Histogram::new_with_bounds(1, HIGHEST_NS, 3) {
        Ok(h) => h,
        // The bounds are constants that hdrhistogram accepts.
        Err(e) => unreachable!("histogram bounds rejected: {e}"),
    }
}

/// `d` in nanoseconds.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A histogram of `values` (nanoseconds).
pub fn from_values(values: impl IntoIterator<Item = u64>) -> Hist {
    let mut h = histogram();
    for v in values {
        h.saturating_record(v);
    }
    h
}

/// Adds what `from` recorded to `into`.
pub fn merge(into: &mut Hist, from: &Hist) {
    if into.add(from).is_err() {
        // Only histograms of other bounds fail to add; record value by value instead.
        for v in from.iter_recorded() {
            into.saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }
}

/// One measured operation of one store in a scenario.
pub struct Metric {
    /// The store (`locked`, `events`, ...) or the engine.
    pub store: String,
    /// The operation (`write`, `read_eventual`, `append_64b_x4`, ...).
    pub op: String,
    /// Operations done.
    pub ops: u64,
    /// The time they took (wall time of the phase that did them).
    pub seconds: f64,
    /// Latencies: of every operation, or of a sample when timing each would cost more than
    /// the operation (see `extra`).
    pub hist: Hist,
    /// More numbers for the JSON output, next to the standard ones.
    pub extra: Map<String, Value>,
}

impl Metric {
    /// `ops` operations of `store` in `wall`, with latencies `hist`.
    pub fn new(store: &str, op: &str, ops: u64, wall: Duration, hist: Hist) -> Metric {
        Metric {
            store: store.to_owned(),
            op: op.to_owned(),
            ops,
            seconds: wall.as_secs_f64(),
            hist,
            extra: Map::new(),
        }
    }

    /// Adds `key: value` to the JSON output.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Metric {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ops as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The percentiles.
    pub fn lat(&self) -> Lat {
        Lat::of(&self.hist)
    }

    /// The JSON object: the standard numbers, then the extra ones.
    pub fn json(&self) -> Value {
        let l = self.lat();
        let mut m = Map::new();
        m.insert("ops".into(), json!(self.ops));
        m.insert("seconds".into(), json!(self.seconds));
        m.insert("ops_per_sec".into(), json!(self.ops_per_sec()));
        m.insert("samples".into(), json!(l.n));
        m.insert("p50_ns".into(), json!(l.p50));
        m.insert("p99_ns".into(), json!(l.p99));
        m.insert("p999_ns".into(), json!(l.p999));
        m.insert("max_ns".into(), json!(l.max));
        m.insert("mean_ns".into(), json!(l.mean));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// The percentiles of one histogram, in nanoseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lat {
    /// Latencies recorded.
    pub n: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// The largest.
    pub max: u64,
    /// The mean.
    pub mean: f64,
}

impl Lat {
    /// The percentiles of `h` (all zero when it is empty).
    pub fn of(h: &Hist) -> Lat {
        if h.is_empty() {
            return Lat::default();
        }
        Lat {
            n: h.len(),
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }

    /// `p50 X, p99 Y`: the short form, for the matrix.
    pub fn short(&self) -> String {
        format!("p50 {}, p99 {}", ns(self.p50), ns(self.p99))
    }

    /// `p50 / p99 / p99.9 / max`.
    pub fn long(&self) -> String {
        format!(
            "p50 {} / p99 {} / p99.9 {} / max {}",
            ns(self.p50),
            ns(self.p99),
            ns(self.p999),
            ns(self.max)
        )
    }
}

/// Nanoseconds in a readable unit: `812 ns`, `3.41 µs`, `27.5 ms`.
pub fn ns(v: u64) -> String {
    crate::render::duration(Duration::from_nanos(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_values() {
        let h = from_values(1..=1000);
        let l = Lat::of(&h);
        assert_eq!((l.n, l.p50, l.max), (1000, 500, 1000));
        assert!((990..=991).contains(&l.p99));
        assert_eq!(Lat::of(&histogram()).p99, 0);
        let mut a = from_values([5, 6]);
        merge(&mut a, &from_values([7]));
        assert_eq!(a.len(), 3);
    }
}
