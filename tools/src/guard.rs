//! Refusing bad input with one line on stderr: a malformed command line, a directory that
//! is not a log, a log written by a newer release.

use std::path::Path;
use std::process::ExitCode;

use clap::error::ErrorKind;
use mmlog::CorruptionKind;
use mmlog::inspect::Inspection;

use crate::failure::{CmdResult, EXIT_USAGE, Failure};

/// Parses the command line. `--help` and `--version` print as usual; anything malformed
/// becomes one line, `error: ...`, on stderr and exit code 2 (clap's own report runs to
/// several lines, with the usage).
pub fn parse<C: clap::Parser>() -> Result<C, ExitCode> {
    C::try_parse().map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE))
        }
        _ => {
            eprintln!("error: {}", one_line(&e.render().to_string()));
            ExitCode::from(EXIT_USAGE)
        }
    })
}

/// Clap's report folded into one line: its message and tips, without the `error: ` it
/// starts with, the usage and the pointer to `--help` (which comes back at the end).
fn one_line(report: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for line in report.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        let line = line.strip_prefix("error:").map_or(line, str::trim_start);
        if !line.is_empty() {
            parts.push(line);
        }
    }
    let mut text = parts.join(" ");
    if text.is_empty() {
        text = "invalid command line".to_string();
    }
    format!("{text} (see --help)")
}

/// Fails with exit code 2 when the log has a segment of a newer format version: such a log
/// is not damaged, this release just cannot read it (`inspect` lists the header as a
/// problem, `Log::open` refuses it with the same message).
pub fn supported(ins: &Inspection) -> CmdResult {
    for p in &ins.problems {
        if let Some(kind @ CorruptionKind::UnsupportedVersion { .. }) = p.kind {
            return Err(Failure::usage(
                mmlog::Error::corrupt(&p.path, p.offset, kind).to_string(),
            ));
        }
    }
    Ok(())
}

/// [`mmlog::inspect::inspect`], refusing logs of a newer format version ([`supported`]).
pub fn inspect(dir: &Path, deep: bool) -> CmdResult<Inspection> {
    let ins = mmlog::inspect::inspect(dir, deep)?;
    supported(&ins)?;
    Ok(ins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_reports_fold_into_one_line() {
        let report = "error: invalid value 'soon' for '--keep-age <DURATION>': \"soon\" is \
                      not a duration\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(report),
            "invalid value 'soon' for '--keep-age <DURATION>': \"soon\" is not a duration \
             (see --help)"
        );
        let report = "error: the following required arguments were not provided:\n  \
                      <DIR>\n\nUsage: mmlog compact <DIR>\n\nFor more information, try \
                      '--help'.\n";
        assert_eq!(
            one_line(report),
            "the following required arguments were not provided: <DIR> (see --help)"
        );
    }
}
