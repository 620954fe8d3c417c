//! `compare`: the same workloads on mmlog and on peer log engines, each run in a child
//! process of its own with a timeout, summed up in a Markdown table.
//!
//! ```text
//! compare run [--quick] [--json] [--runs N] [--readme FILE] [--timeout SECS] [--dir BASE]
//!             [--engines mmlog,sled,...] [--workloads append_64b_1t,...]
//! compare child --engine E --workload W --dir D [--quick]
//! ```
//!
//! See README.md beside Cargo.toml for what each workload does on each engine.

mod engines;
mod harness;
mod workload;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use harness::Outcome;
use workload::Workload;

const USAGE: &str = "usage:
  compare run [--quick] [--json] [--runs N] [--readme FILE] [--timeout SECS] [--dir BASE]
              [--engines E,...] [--workloads W,...]
  compare child --engine E --workload W --dir D [--quick]";

/// What a child prints on its stdout (one line) and what `run --json` prints for every cell.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Report {
    engine: String,
    workload: String,
    /// `ok`, `n/a` (the engine cannot run it), `failed`, `timeout` or `off` (not built in).
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    records: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    records_per_sec: Option<f64>,
    /// Payload bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes_per_sec: Option<f64>,
    /// How the engine ran the workload, where that differs from the plain reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    /// What the engine reported about the run (segments, msyncs, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    /// What the child process used during the timed part (all its threads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usage: Option<harness::Usage>,
    /// Why there is no figure (`n/a`, `failed`, `timeout`, `off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl Report {
    fn empty(engine: &str, workload: &str, status: &str, reason: String) -> Report {
        Report {
            engine: engine.to_string(),
            workload: workload.to_string(),
            status: status.to_string(),
            records: None,
            seconds: None,
            records_per_sec: None,
            bytes_per_sec: None,
            note: None,
            detail: None,
            usage: None,
            reason: Some(reason),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => parent(&args[1..]),
        Some("child") => child(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("expected `run` or `child`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Options of `run` and `child`.
#[derive(Default)]
struct Args {
    quick: bool,
    json: bool,
    timeout: Option<u64>,
    dir: Option<PathBuf>,
    engine: Option<String>,
    workload: Option<String>,
    engines: Option<Vec<String>>,
    workloads: Option<Vec<String>>,
    runs: Option<usize>,
    readme: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let list = |v: String| v.split(',').map(str::to_string).collect::<Vec<_>>();
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--json" => a.json = true,
            "--timeout" => {
                let v = value("--timeout")?;
                a.timeout = Some(v.parse().map_err(|_| format!("bad --timeout {v:?}"))?);
            }
            "--dir" => a.dir = Some(PathBuf::from(value("--dir")?)),
            "--readme" => a.readme = Some(PathBuf::from(value("--readme")?)),
            "--runs" => {
                let v = value("--runs")?;
                a.runs = Some(
                    v.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("bad --runs {v:?}"))?,
                );
            }
            "--engine" => a.engine = Some(value("--engine")?),
            "--workload" => a.workload = Some(value("--workload")?),
            "--engines" => a.engines = Some(list(value("--engines")?)),
            "--workloads" => a.workloads = Some(list(value("--workloads")?)),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// The child: one engine, one workload, one JSON line.

fn child(args: &[String]) -> Result<(), String> {
    let a = parse(args)?;
    let engine = a.engine.ok_or("child needs --engine")?;
    let name = a.workload.ok_or("child needs --workload")?;
    let dir = a.dir.ok_or("child needs --dir")?;
    let w = workload::find(&name, a.quick).ok_or_else(|| format!("unknown workload {name:?}"))?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let report = match engines::run(&engine, &w, &dir)? {
        Outcome::Measured {
            records,
            seconds,
            note,
            detail,
        } => {
            let rps = records as f64 / seconds;
            Report {
                engine,
                workload: name,
                status: "ok".into(),
                records: Some(records),
                seconds: Some(seconds),
                records_per_sec: Some(rps),
                bytes_per_sec: Some(rps * w.size as f64),
                note,
                detail,
                usage: harness::last_usage(),
                reason: None,
            }
        }
        Outcome::Unsupported(reason) => Report::empty(&engine, &name, "n/a", reason),
    };
    let line = serde_json::to_string(&report).map_err(|e| format!("json: {e}"))?;
    println!("{line}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The parent: every (workload, engine) in a child, then the table.

fn parent(args: &[String]) -> Result<(), String> {
    let a = parse(args)?;
    let timeout = Duration::from_secs(a.timeout.unwrap_or(120));
    let base = a.dir.clone().unwrap_or_else(std::env::temp_dir);
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let engines: Vec<String> = match &a.engines {
        Some(list) => list.clone(),
        None => engines::ALL.iter().map(|s| s.to_string()).collect(),
    };
    for e in &engines {
        if !engines::ALL.contains(&e.as_str()) {
            return Err(format!(
                "unknown engine {e:?}; known: {}",
                engines::ALL.join(",")
            ));
        }
    }
    let workloads: Vec<Workload> = match &a.workloads {
        Some(list) => list
            .iter()
            .map(|n| workload::find(n, a.quick).ok_or_else(|| format!("unknown workload {n:?}")))
            .collect::<Result<_, _>>()?,
        None => workload::all()
            .into_iter()
            .filter_map(|w| workload::find(w.name, a.quick))
            .collect(),
    };

    let runs = a.runs.unwrap_or(if a.quick { 1 } else { 3 });
    let load_before = loadavg();
    let started = Instant::now();
    let mut reports = Vec::new();
    for w in &workloads {
        for e in &engines {
            eprint!("{:<14} {:<12} ", w.name, e);
            let r = if engines::built(e) {
                median_run(runs, || run_child(&exe, e, w, &base, a.quick, timeout))
            } else {
                Report::empty(e, w.name, "off", format!("cargo feature `{e}` is off"))
            };
            match (&r.status[..], r.records_per_sec) {
                ("ok", Some(rps)) => eprintln!(
                    "{} {} ({:.3} s{}){}",
                    fmt_num(figure(w, rps)),
                    w.unit.label(),
                    r.seconds.unwrap_or(0.0),
                    r.usage.map(fmt_usage).unwrap_or_default(),
                    r.detail
                        .as_ref()
                        .map(|d| format!("; {d}"))
                        .unwrap_or_default()
                ),
                _ => eprintln!("{}: {}", r.status, r.reason.as_deref().unwrap_or("")),
            }
            reports.push(r);
        }
    }
    let load_after = loadavg();

    if a.json {
        let out = serde_json::json!({
            "quick": a.quick,
            "runs_per_cell": runs,
            "timeout_secs": timeout.as_secs(),
            "machine": machine(&base),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "wall_secs": started.elapsed().as_secs_f64(),
            "results": reports,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        );
    } else {
        let text = table(
            &workloads,
            &engines,
            &reports,
            &Context {
                quick: a.quick,
                runs,
                base: &base,
                load_before: &load_before,
                load_after: &load_after,
            },
        );
        println!("{text}");
        if let Some(path) = &a.readme {
            update_readme(path, &text)?;
            eprintln!("updated the table in {}", path.display());
        }
    }
    Ok(())
}

/// Where `--readme` puts the table: between these two lines of the file.
const BEGIN: &str = "<!-- compare-table:begin (generated by benches/compare: run --readme) -->";
const END: &str = "<!-- compare-table:end -->";

/// Replaces what lies between [`BEGIN`] and [`END`] in `path` with `table`.
fn update_readme(path: &Path, table: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        return Err(format!(
            "{}: no table markers; put these two lines where the table goes:\n{BEGIN}\n{END}",
            path.display()
        ));
    };
    if e < b {
        return Err(format!(
            "{}: the end marker comes before the begin marker",
            path.display()
        ));
    }
    let updated = format!("{}{BEGIN}\n{}\n{}", &text[..b], table.trim(), &text[e..]);
    std::fs::write(path, updated).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs `run` `runs` times and keeps the median (by throughput; a failure if any run fails).
fn median_run(runs: usize, mut run: impl FnMut() -> Report) -> Report {
    let mut all = Vec::with_capacity(runs);
    for _ in 0..runs {
        let r = run();
        if r.status != "ok" {
            return r;
        }
        all.push(r);
    }
    all.sort_by(|a, b| {
        a.records_per_sec
            .unwrap_or(0.0)
            .total_cmp(&b.records_per_sec.unwrap_or(0.0))
    });
    let mid = all.len() / 2;
    all.swap_remove(mid)
}

/// Runs one child in a fresh directory under `base`; every way it can go wrong becomes a
/// report with a reason, never a panic here.
fn run_child(
    exe: &Path,
    engine: &str,
    w: &Workload,
    base: &Path,
    quick: bool,
    timeout: Duration,
) -> Report {
    let failed = |status: &str, reason: String| Report::empty(engine, w.name, status, reason);
    let dir = match tempfile::Builder::new()
        .prefix(&format!("mmlog-compare-{engine}-"))
        .tempdir_in(base)
    {
        Ok(d) => d,
        Err(e) => return failed("failed", format!("temp dir under {}: {e}", base.display())),
    };
    let mut cmd = Command::new(exe);
    cmd.args(["child", "--engine", engine, "--workload", w.name, "--dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if quick {
        cmd.arg("--quick");
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed("failed", format!("spawn: {e}")),
    };
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return failed("failed", format!("wait: {e}"));
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    drop(dir);
    // Start the next run with as little of this one's write-back in flight as possible.
    let _ = Command::new("sync").status();
    let Some(status) = status else {
        return failed("timeout", format!("killed after {} s", timeout.as_secs()));
    };
    if !status.success() {
        let how = match status.code() {
            Some(c) => format!("exit {c}"),
            None => "killed by a signal".to_string(),
        };
        return failed("failed", format!("{how}: {}", why(&stderr)));
    }
    let parsed = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Report>(l.trim()).ok());
    match parsed {
        Some(r) if r.status == "ok" && r.records_per_sec.is_some_and(f64::is_finite) => r,
        Some(r) if r.status == "n/a" => r,
        Some(r) => failed(
            "failed",
            format!("child reported {:?} with no usable figure", r.status),
        ),
        None => failed(
            "failed",
            format!("no JSON line on stdout; stderr: {}", why(&stderr)),
        ),
    }
}

/// The most telling line of a child's stderr: a panic message or an `error:` line, else the
/// last line.
fn why(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .position(|l| l.contains("panicked at"))
        .map(|i| {
            lines[i..]
                .iter()
                .take(2)
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .or_else(|| {
            lines
                .iter()
                .find(|l| l.starts_with("error"))
                .map(|l| l.to_string())
        })
        .or_else(|| lines.last().map(|l| l.to_string()))
        .unwrap_or_else(|| "(nothing on stderr)".to_string());
    let mut line: String = line.chars().take(300).collect();
    line = line.replace('|', "/");
    line
}

fn fmt_usage(u: harness::Usage) -> String {
    format!(
        ", cpu {:.3} s (sys {:.3}), {} minor faults, {}/{} vol/invol switches",
        u.cpu_secs, u.sys_secs, u.minor_faults, u.voluntary_switches, u.involuntary_switches
    )
}

/// The figure the table shows for `w`, from records per second.
fn figure(w: &Workload, rps: f64) -> f64 {
    match w.unit {
        workload::Unit::MRecords => rps / 1e6,
        workload::Unit::KRecords => rps / 1e3,
        workload::Unit::MBytes => rps * w.size as f64 / 1e6,
        workload::Unit::Millis => w.records as f64 / rps * 1e3,
    }
}

/// How many times better `rps` is than `other` (both records per second): for a time, the
/// shorter the better.
fn times_better(rps: f64, other: f64) -> f64 {
    rps / other
}

/// What the table's heading says about the run.
struct Context<'a> {
    quick: bool,
    runs: usize,
    base: &'a Path,
    load_before: &'a str,
    load_after: &'a str,
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn table(workloads: &[Workload], engines: &[String], reports: &[Report], cx: &Context) -> String {
    let mut out = String::new();
    let m = machine(cx.base);
    out.push_str(&format!(
        "{} cores ({}), {} GiB, kernel {}, {} on {}; load average {} before, {} after{}.\n\
         Each cell: the median of {} run{}, then how many times better than the best peer \
         (higher throughput, or shorter time; above 1: better than every peer; for the opens, \
         the best of the peers whose open checks what it recovers: sled, fjall, raft-engine). mmlog's cell \
         also gives its share of the machine's limit (the `limit` column: the same work with \
         no engine; see benches/compare/README.md).\n\n",
        m["cores"].as_u64().unwrap_or(0),
        m["cpu"].as_str().unwrap_or("?"),
        m["memory_gib"].as_u64().unwrap_or(0),
        m["kernel"].as_str().unwrap_or("?"),
        m["filesystem"].as_str().unwrap_or("?"),
        m["device"].as_str().unwrap_or("?"),
        cx.load_before,
        cx.load_after,
        if cx.quick { "; --quick: every workload 10x smaller" } else { "" },
        cx.runs,
        if cx.runs == 1 { "" } else { "s" },
    ));
    out.push_str("| workload | unit |");
    for e in engines {
        out.push_str(&format!(" {e} |"));
    }
    out.push_str("\n|---|---|");
    for _ in engines {
        out.push_str("---:|");
    }
    out.push('\n');

    let mut notes: BTreeMap<String, usize> = BTreeMap::new();
    let mut note_order: Vec<String> = Vec::new();
    let mut mark = |text: &str| -> String {
        let n = *notes.entry(text.to_string()).or_insert_with(|| {
            note_order.push(text.to_string());
            note_order.len()
        });
        format!("[{n}]")
    };
    for w in workloads {
        let cells: Vec<Option<&Report>> = engines
            .iter()
            .map(|e| {
                reports
                    .iter()
                    .find(|r| r.engine == *e && r.workload == w.name)
            })
            .collect();
        let best_peer = cells
            .iter()
            .flatten()
            .filter(|r| !engines::NOT_PEERS.contains(&r.engine.as_str()) && r.status == "ok")
            .filter(|r| {
                !matches!(w.kind, workload::Kind::Open { .. })
                    || engines::VALIDATES_ON_OPEN.contains(&r.engine.as_str())
            })
            .filter_map(|r| r.records_per_sec)
            .fold(None, |best: Option<f64>, v| {
                Some(best.map_or(v, |b| b.max(v)))
            });
        let limit = cells
            .iter()
            .flatten()
            .find(|r| r.engine == "limit" && r.status == "ok")
            .and_then(|r| r.records_per_sec);
        out.push_str(&format!("| {} | {} |", describe(w), w.unit.label()));
        for cell in cells {
            let text = match cell {
                None => "-".to_string(),
                Some(r) => match (r.status.as_str(), r.records_per_sec) {
                    ("ok", Some(rps)) => {
                        let mut s = fmt_num(figure(w, rps));
                        if let Some(best) = best_peer.filter(|_| r.engine != "limit") {
                            s.push_str(&format!(" ({:.2}x)", times_better(rps, best)));
                        }
                        if r.engine == "mmlog" {
                            if let Some(limit) = limit {
                                s.push_str(&format!(", {:.0}% of limit", 100.0 * rps / limit));
                            }
                            s = format!("**{s}**");
                        }
                        if let Some(n) = &r.note {
                            s.push_str(&format!(" {}", mark(&format!("{}: {n}", r.engine))));
                        }
                        s
                    }
                    (status, _) => {
                        let reason = r.reason.as_deref().unwrap_or("");
                        format!(
                            "{status} {}",
                            mark(&format!("{} {}: {reason}", r.engine, w.name))
                        )
                    }
                },
            };
            out.push_str(&format!(" {text} |"));
        }
        out.push('\n');
    }
    if !note_order.is_empty() {
        out.push('\n');
        for (i, n) in note_order.iter().enumerate() {
            out.push_str(&format!("[{}] {n}\n", i + 1));
        }
    }
    out
}

/// The workload as the table's first column says it.
fn describe(w: &Workload) -> String {
    let threads = if w.threads == 1 {
        "1 thread".to_string()
    } else {
        format!("{} threads", w.threads)
    };
    let what = match w.kind {
        workload::Kind::Append { durable: false } => "append".to_string(),
        workload::Kind::Append { durable: true } if w.batch > 1 => {
            format!("durable append, batches of {}", w.batch)
        }
        workload::Kind::Append { durable: true } => "durable append, each call".to_string(),
        workload::Kind::Read => "read back".to_string(),
        workload::Kind::Open { cold: false } => "open, warm cache".to_string(),
        workload::Kind::Open { cold: true } => "open, cold cache".to_string(),
    };
    let size = if w.size >= 1024 {
        format!("{} KiB", w.size / 1024)
    } else {
        format!("{} B", w.size)
    };
    format!("`{}`: {what}, {} x {size}, {threads}", w.name, w.records)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            let f: Vec<&str> = s.split_whitespace().take(3).collect();
            (f.len() == 3).then(|| f.join(" "))
        })
        .unwrap_or_else(|| "?".to_string())
}

/// Cores, kernel and the file system type of `base` (from /proc/self/mounts).
fn machine(base: &Path) -> serde_json::Value {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".to_string());
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    let mount = std::fs::read_to_string("/proc/self/mounts")
        .ok()
        .and_then(|m| {
            m.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() >= 3 && base.starts_with(f[1]))
                        .then(|| (f[1].len(), f[0].to_string(), f[2].to_string()))
                })
                .max_by_key(|(len, _, _)| *len)
                .map(|(_, dev, fs)| (dev, fs))
        });
    let (device, fs) = mount.unwrap_or_else(|| ("?".to_string(), "?".to_string()));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "?".to_string());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| (kb + (1 << 19)) >> 20);
    serde_json::json!({
        "cores": cores,
        "cpu": cpu,
        "memory_gib": memory_gib,
        "kernel": kernel,
        "filesystem": fs,
        "device": device,
    })
}
