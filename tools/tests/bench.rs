//! End-to-end tests of `mmlog bench`: the JSON report of a tiny run, the SVG plot, the human
//! report, and bad input refused with one `error: ` line and exit code 2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{code, fails, json, mmlog, stderr, stdout};
use serde_json::Value;

/// Asserts that `o` failed with exit code 2 and one `error: ` line, and nothing on stdout.
fn assert_usage_error(o: &Output) -> String {
    let line = fails(o, 2, "", "a usage error");
    assert!(stdout(o).is_empty(), "stdout: {}", stdout(o));
    line
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

/// The directory holds nothing (the benchmark removed its temporary directory).
fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn spec1_prints_json_and_draws_the_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let svg = tmp.path().join("out.svg");
    let o = mmlog(&[
        "bench",
        "spec1",
        "--json",
        "--scale",
        "0.05",
        "--plot",
        svg.to_str().unwrap(),
        "--dir",
        logs.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "stderr: {}", stderr(&o));
    assert!(stderr(&o).is_empty(), "stderr: {}", stderr(&o));
    let doc = json(&o);

    assert!(num(&doc["machine"], "cores") >= 1.0);
    assert!(doc["machine"].get("kernel").is_some());
    assert_eq!(num(&doc, "scale"), 0.05);
    assert!(num(&doc, "seconds") > 0.0);
    let scenarios = doc["scenarios"].as_object().unwrap();
    assert_eq!(scenarios.keys().collect::<Vec<_>>(), ["spec1"]);
    let spec1 = &scenarios["spec1"];
    assert_eq!(num(&spec1["facts"], "writers"), 1000.0);
    let stores = spec1["stores"].as_object().unwrap();
    let mut names: Vec<&str> = stores.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["events", "events_just_opened", "locked"]);
    for (store, ops) in stores {
        let ops = ops.as_object().unwrap();
        let mut kinds: Vec<&str> = ops.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["read", "remove", "write"], "{store}");
        for (op, m) in ops {
            let what = format!("{store}.{op}: {m}");
            for key in [
                "ops",
                "seconds",
                "ops_per_sec",
                "p50_ns",
                "p99_ns",
                "p999_ns",
                "max_ns",
            ] {
                assert!(num(m, key) > 0.0, "{key} of {what}");
            }
            assert!(num(m, "p50_ns") <= num(m, "p99_ns"), "{what}");
            assert!(num(m, "p99_ns") <= num(m, "p999_ns"), "{what}");
            assert!(num(m, "p999_ns") <= num(m, "max_ns"), "{what}");
        }
    }
    // 1000 writers x 4 writes (the least any scale gives), a removal after every 4th.
    assert_eq!(num(&stores["locked"]["write"], "ops"), 4000.0);
    assert_eq!(num(&stores["events"]["remove"], "ops"), 1000.0);

    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg"), "{}", &plot[..plot.len().min(80)]);
    assert!(plot.contains("events_just_opened remove"), "the legend");
    assert_empty(&logs);
}

#[test]
fn the_engine_scenarios_print_a_human_report() {
    let tmp = tempfile::tempdir().unwrap();
    let o = mmlog(&[
        "bench",
        "read",
        "--scale",
        "0.01",
        "--quiet",
        "--dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("## read: sequential read-back"), "{out}");
    for op in ["scan_64b", "scan_4k"] {
        let row = out
            .lines()
            .find(|l| l.contains(op))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(row.contains(" ns") || row.contains(" µs"), "{row}");
    }
    // No spec scenario ran: no comparison matrix.
    assert!(!out.contains("comparison matrix"), "{out}");
    assert!(out.contains("total time"), "{out}");
    assert_empty(tmp.path());
}

#[test]
fn an_unknown_scenario_is_a_usage_error() {
    let err = assert_usage_error(&mmlog(&["bench", "spec9"]));
    assert!(err.contains("spec9"), "{err}");
}

#[test]
fn a_bad_scale_or_directory_is_a_usage_error() {
    for scale in ["0", "-1", "many", "1e9"] {
        let arg = format!("--scale={scale}");
        let err = assert_usage_error(&mmlog(&["bench", "spec1", &arg]));
        assert!(err.contains("--scale"), "{err}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-dir");
    let err = assert_usage_error(&mmlog(&[
        "bench",
        "read",
        "--dir",
        missing.to_str().unwrap(),
    ]));
    assert!(err.contains("no-such-dir"), "{err}");
}
