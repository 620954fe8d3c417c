//! `mmlog verify DIR`: every CRC and the structure of the whole log.

use std::fmt::Write as _;
use std::path::Path;

use mmlog::inspect::Inspection;
use serde_json::json;

use crate::failure::{CmdResult, Failure};
use crate::findings::{Finding, judge};
use crate::output::emit;
use crate::render::count;

/// Runs `mmlog verify`: succeeds when the log is clean or only has a torn tail, fails with
/// exit code 1 when it is corrupt (after printing every problem).
pub fn run(dir: &Path, as_json: bool) -> CmdResult {
    let working = crate::progress::spinner("verifying every frame and checkpoint");
    let ins = crate::guard::inspect(dir, true);
    working.finish_and_clear();
    let ins = ins?;
    let findings = judge(&ins);
    let corrupt = findings.iter().filter(|f| !f.torn_tail).count();
    let text = if as_json {
        let verdict = match (corrupt, findings.len()) {
            (0, 0) => "ok",
            (0, _) => "torn_tail",
            _ => "corrupt",
        };
        let v = json!({
            "dir": dir.display().to_string(),
            "result": verdict,
            "clean": corrupt == 0,
            "segments": ins.segments.len(),
            "records": ins.records,
            "first_seq": ins.first_seq,
            "next_seq": ins.next_seq,
            "archived_segments": ins.archive.len(),
            "problems": findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
        });
        serde_json::to_string_pretty(&v)
            .map_err(|e| Failure::usage(format!("encoding JSON: {e}")))?
    } else {
        report(dir, &ins, &findings, corrupt)
    };
    emit(&text)?;
    if corrupt > 0 {
        let first = findings
            .iter()
            .find(|f| !f.torn_tail)
            .map_or_else(String::new, Finding::location);
        return Err(Failure::check(format!(
            "{} is corrupt: {corrupt} problem(s) that recovery will not repair, the first in \
             {first}",
            dir.display()
        )));
    }
    Ok(())
}

fn report(dir: &Path, ins: &Inspection, findings: &[Finding<'_>], corrupt: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "checked {}: {} segments, {} records, every frame CRC",
        dir.display(),
        ins.segments.len(),
        count(ins.records)
    );
    if !ins.archive.is_empty() {
        let archived: u64 = ins.archive.iter().map(|a| a.record_count).sum();
        let _ = writeln!(
            s,
            "checked the archive: {} segments, {} records, every frame CRC",
            ins.archive.len(),
            count(archived)
        );
    }
    for f in findings {
        if f.torn_tail {
            let _ = writeln!(
                s,
                "warning: torn tail: {} ({})",
                f.location(),
                f.consequence()
            );
        } else {
            let _ = writeln!(s, "CORRUPT: {}", f.location());
        }
    }
    let verdict = match (corrupt, findings.len()) {
        (0, 0) => "OK".to_string(),
        (0, n) => format!("OK, with {n} torn-tail warning(s) that recovery will cut off"),
        (n, _) => format!("CORRUPT: {n} problem(s)"),
    };
    let _ = writeln!(s, "result: {verdict}");
    s
}
