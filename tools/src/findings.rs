//! The problems `inspect` found, judged the way recovery would treat them.

use mmlog::CorruptionKind;
use mmlog::inspect::{Inspection, Problem};
use serde_json::{Value, json};

/// One problem and whether recovery would quietly cut it off.
#[derive(Clone, Debug)]
pub struct Finding<'a> {
    /// What `inspect` reported.
    pub problem: &'a Problem,
    /// True when recovery would drop this as a torn tail (a warning, not corruption).
    pub torn_tail: bool,
    /// True when the segment's header itself is unreadable, so recovery would remove the
    /// whole file rather than cut the log inside it.
    pub whole_file: bool,
}

impl Finding<'_> {
    /// What is wrong, in words.
    pub fn what(&self) -> String {
        match self.problem.kind {
            Some(kind) => kind.to_string(),
            None => "unpublished space followed by written bytes".to_string(),
        }
    }

    /// What recovery would do about a torn tail.
    pub fn consequence(&self) -> &'static str {
        if self.whole_file {
            "recovery removes this file"
        } else {
            "recovery cuts the log here"
        }
    }

    /// `path at offset N: what`.
    pub fn location(&self) -> String {
        format!(
            "{} at offset {}: {}",
            self.problem.path.display(),
            self.problem.offset,
            self.what()
        )
    }

    /// The finding as a JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "path": self.problem.path.display().to_string(),
            "offset": self.problem.offset,
            "kind": self.problem.kind.map(kind_name),
            "problem": self.what(),
            "torn_tail": self.torn_tail,
        })
    }
}

/// The name of a corruption kind's variant, for JSON (`"ChecksumMismatch"`).
fn kind_name(kind: CorruptionKind) -> String {
    let debug = format!("{kind:?}");
    let end = debug.find([' ', '{', '(']).unwrap_or(debug.len());
    debug[..end].to_string()
}

/// Judges every problem in `ins`.
///
/// `inspect` counts every problem in the unsealed segments at the end of the log as a torn
/// tail. Recovery is stricter about headers: it removes unreadable headers only after the last
/// valid segment and refuses to open a log with one anywhere before it. So a bad header that
/// a valid segment follows is corruption here too, whatever `inspect` says.
pub fn judge(ins: &Inspection) -> Vec<Finding<'_>> {
    let last_valid = ins.segments.iter().rposition(|s| s.header.is_some());
    ins.problems
        .iter()
        .map(|p| {
            let seg = ins.segments.iter().position(|s| s.path == p.path);
            let whole_file = seg.is_some_and(|i| ins.segments[i].header.is_none());
            let before_valid = matches!((seg, last_valid), (Some(i), Some(v)) if i < v);
            let torn_tail = p.torn_tail && !(whole_file && before_valid);
            Finding {
                problem: p,
                torn_tail,
                whole_file,
            }
        })
        .collect()
}
