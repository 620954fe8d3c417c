//! What a scenario hands back, and how it is shown: a table for people, an object in the
//! JSON output, and at the end the spec's comparison matrix filled in with what was measured.

use serde_json::{Map, Value, json};

use super::measure::{Lat, Metric, ns};
use crate::render::{count, rate};

/// The outcome of one scenario.
pub struct Report {
    /// The scenario's name on the command line: `spec1`, `append`, ...
    pub key: &'static str,
    /// What it measures, in a few words.
    pub title: &'static str,
    /// What it did: threads, sizes, rounds.
    pub setup: String,
    /// One per store and operation, in the order shown.
    pub metrics: Vec<Metric>,
    /// Lines printed under the table.
    pub notes: Vec<String>,
    /// Numbers that belong to no single operation (lag, sizes), for the JSON output and the
    /// matrix.
    pub facts: Map<String, Value>,
    /// How long the scenario took, set up and checks included.
    pub seconds: f64,
}

impl Report {
    /// An empty report.
    pub fn new(key: &'static str, title: &'static str, setup: String) -> Report {
        Report {
            key,
            title,
            setup,
            metrics: Vec::new(),
            notes: Vec::new(),
            facts: Map::new(),
            seconds: 0.0,
        }
    }

    /// Records a fact.
    pub fn fact(&mut self, key: &str, value: impl Into<Value>) {
        self.facts.insert(key.to_owned(), value.into());
    }

    /// A numeric fact.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.facts.get(key).and_then(Value::as_f64)
    }

    /// The metric of `op` on `store`.
    pub fn metric(&self, store: &str, op: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.store == store && m.op == op)
    }

    /// The percentiles of `op` on `store` (zero when not measured).
    pub fn lat(&self, store: &str, op: &str) -> Lat {
        self.metric(store, op).map(Metric::lat).unwrap_or_default()
    }

    /// The table and notes, for people.
    pub fn human(&self) -> String {
        let mut out = format!("\n## {}: {}\n{}\n\n", self.key, self.title, self.setup);
        let header = [
            "store",
            "operation",
            "ops",
            "ops/s",
            "p50",
            "p99",
            "p99.9",
            "max",
        ];
        let mut rows: Vec<[String; 8]> = vec![header.map(str::to_owned)];
        for m in &self.metrics {
            let l = m.lat();
            rows.push([
                m.store.clone(),
                m.op.clone(),
                count(m.ops),
                rate(m.ops_per_sec()),
                ns(l.p50),
                ns(l.p99),
                ns(l.p999),
                ns(l.max),
            ]);
        }
        let mut widths = [0usize; 8];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in &rows {
            let mut line = String::from(" ");
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                // Names left-aligned, numbers right-aligned.
                if i < 2 {
                    line.push_str(&format!(" {cell:<w$}"));
                } else {
                    line.push_str(&format!("  {cell:>w$}"));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for note in &self.notes {
            out.push_str(&format!("  {note}\n"));
        }
        out.push_str(&format!("  ({:.1} s)\n", self.seconds));
        out
    }

    /// The JSON object: `stores.<store>.<operation>` for each metric, and the facts.
    pub fn json(&self) -> Value {
        let mut stores = Map::new();
        for m in &self.metrics {
            let entry = stores
                .entry(m.store.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(ops) = entry {
                ops.insert(m.op.clone(), m.json());
            }
        }
        json!({
            "title": self.title,
            "setup": self.setup,
            "seconds": self.seconds,
            "stores": stores,
            "facts": self.facts,
        })
    }
}

/// The spec's comparison matrix, as a Markdown table, with what the spec scenarios among
/// `reports` measured (and "not measured" where a scenario did not run).
pub fn matrix(reports: &[Report], cores: usize) -> String {
    let find = |key: &str| reports.iter().find(|r| r.key == key);
    let (s1, s2, s3) = (find("spec1"), find("spec2"), find("spec3"));
    let na = || "not measured".to_owned();
    let mut rows: Vec<[String; 3]> = Vec::new();

    if let Some(s1) = s1 {
        let n = |k: &str| s1.number(k).unwrap_or(0.0);
        rows.push([
            format!(
                "Write Latency (S1: {} writer threads x {} writes, a removal after every {}th, \
                 {} readers, {} rounds)",
                n("writers"),
                n("writes_per_writer"),
                n("remove_every"),
                n("readers"),
                n("rounds"),
            ),
            format!(
                "write {}; remove {}",
                s1.lat("locked", "write").long(),
                s1.lat("locked", "remove").short()
            ),
            format!(
                "write {}; remove {}; right after open: write {}",
                s1.lat("events", "write").long(),
                s1.lat("events", "remove").short(),
                s1.lat("events_just_opened", "write").long(),
            ),
        ]);
    } else {
        rows.push(["Write Latency (S1)".into(), na(), na()]);
    }
    if let Some(s3) = s3 {
        let write_remove = |store: &str| {
            format!(
                "write {}; remove {}",
                s3.lat(store, "write").short(),
                s3.lat(store, "remove").short()
            )
        };
        rows.push([
            "Write Latency (S3: one thread)".into(),
            write_remove("locked"),
            write_remove("events"),
        ]);
    }
    if let Some(s2) = s2 {
        let e = |op: &str| s2.lat("events", op).short();
        rows.push([
            format!(
                "Read Latency (S2: {} readers, {} paced writers)",
                s2.number("readers").unwrap_or(0.0),
                s2.number("writers").unwrap_or(0.0)
            ),
            format!("`get` {}", s2.lat("locked", "get").short()),
            format!(
                "`Strong` {}; cached `Eventual` {}; cached `BoundedStaleness(10ms)` {}; read \
                 model `ItemsPerWriter` {}; read model `RecentChanges` {}; `Strong` right after \
                 a write, alone {} ({} items)",
                e("read_strong"),
                e("read_eventual"),
                e("read_bounded_10ms"),
                e("model_items_per_writer"),
                e("model_recent_changes"),
                e("strong_after_one_write"),
                count(s2.number("items_at_end").unwrap_or(0.0) as u64),
            ),
        ]);
        let age = |op: &str| {
            s2.metric("events", op)
                .and_then(|m| m.extra.get("max_age_ns"))
                .and_then(Value::as_u64)
                .map_or_else(na, ns)
        };
        rows.push([
            "Staleness (S2)".into(),
            "none: a read sees every write that returned".into(),
            format!(
                "`Eventual` served state up to {} old, `BoundedStaleness(10ms)` up to {}; read \
                 models up to {} events behind, caught up {} after the writers stopped",
                age("read_eventual"),
                age("read_bounded_10ms"),
                count(s2.number("max_lag_events").unwrap_or(0.0) as u64),
                ns(s2.number("catch_up_ns").unwrap_or(0.0) as u64),
            ),
        ]);
    } else {
        rows.push(["Read Latency (S2)".into(), na(), na()]);
        rows.push(["Staleness (S2)".into(), na(), na()]);
    }
    if let Some(s3) = s3 {
        let history = |store: &str| {
            format!(
                "`state_at_seq` {}, `state_at_time` {}",
                s3.lat(store, "state_at_seq").short(),
                s3.lat(store, "state_at_time").short()
            )
        };
        rows.push([
            format!(
                "History (S3: {} events, a snapshot every {})",
                count(s3.number("events").unwrap_or(0.0) as u64),
                count(s3.number("snapshot_every").unwrap_or(0.0) as u64),
            ),
            "impossible: no history is kept".into(),
            format!(
                "{} (every snapshot kept); {} (newest {} kept, the default); {} (no snapshot: \
                 replay from 0). `snapshot()` {}",
                history("events_all_snapshots"),
                history("events_newest_3"),
                s3.number("default_kept").unwrap_or(0.0),
                history("events_no_snapshot"),
                s3.lat("events", "snapshot").short(),
            ),
        ]);
        rows.push([
            format!(
                "Cold start (S3: open, median of {})",
                s3.number("opens").unwrap_or(0.0)
            ),
            "nothing to rebuild (and nothing survives a restart)".into(),
            format!(
                "{} from the newest snapshot; {} replaying every event",
                ns(s3.lat("events_all_snapshots", "open").p50),
                ns(s3.lat("events_no_snapshot", "open").p50),
            ),
        ]);
    } else {
        rows.push([
            "History (S3)".into(),
            "impossible: no history is kept".into(),
            na(),
        ]);
    }
    let waits = |store: &str, op: &str| {
        s1.and_then(|s| s.metric(store, op))
            .and_then(|m| m.extra.get("waits_per_1000"))
            .and_then(Value::as_f64)
    };
    rows.push([
        "Conflict Resolution (S1)".into(),
        waits("locked", "write").map_or_else(
            || "blocking".into(),
            |w| {
                format!(
                    "blocking: writers waited {w:.1} times per 1,000 writes, {:.1} per 1,000 \
                     removals",
                    waits("locked", "remove").unwrap_or(0.0)
                )
            },
        ),
        waits("events", "write").map_or_else(
            || "natural ordering".into(),
            |w| {
                format!(
                    "writers waited {w:.1} times per 1,000 writes, {:.1} per 1,000 removals \
                     (a removal of an item newer than the cache reads `Strong`); sequence \
                     numbers dense and unique (checked)",
                    waits("events", "remove").unwrap_or(0.0)
                )
            },
        ),
    ]);
    let per_sec = |r: &Report, store: &str, op: &str| {
        r.metric(store, op)
            .map_or_else(na, |m| format!("{}/s", rate(m.ops_per_sec())))
    };
    let scalability = |store: &str| {
        let mut parts = Vec::new();
        if let Some(s1) = s1 {
            parts.push(format!("S1 {} writes", per_sec(s1, store, "write")));
        }
        if let Some(s2) = s2 {
            let reads = s2
                .number(&format!("{store}_reads_per_sec"))
                .map_or_else(na, |v| format!("{}/s", rate(v)));
            parts.push(format!(
                "S2 {reads} reads, {} writes",
                per_sec(s2, store, "write")
            ));
        }
        if parts.is_empty() {
            na()
        } else {
            parts.join("; ")
        }
    };
    rows.push([
        format!("Scalability (one {cores}-core machine; horizontal not measured)"),
        scalability("locked"),
        scalability("events"),
    ]);
    rows.push([
        "Complexity".into(),
        "not measured".into(),
        "not measured".into(),
    ]);

    let mut out = String::from(
        "\n## The spec's comparison matrix, measured\n\n| Aspect | Traditional RW Lock | Event \
         Sourced |\n|--------|---------------------|---------------|\n",
    );
    for [aspect, locked, events] in rows {
        out.push_str(&format!("| {aspect} | {locked} | {events} |\n"));
    }
    out
}
