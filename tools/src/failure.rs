//! How a command fails: a message for stderr and the process exit code.

use std::fmt;

/// Exit code for a log that failed its checks (or a demo check that failed).
pub const EXIT_CORRUPT: u8 = 1;
/// Exit code for bad usage and for I/O errors: not a log, no such directory, unreadable.
/// Matches what clap uses for a malformed command line.
pub const EXIT_USAGE: u8 = 2;

/// A failed command: what to tell the user and which exit code to end with.
#[derive(Debug)]
pub struct Failure {
    /// Process exit code.
    pub code: u8,
    /// One or more lines for stderr, without the `error: ` prefix.
    pub message: String,
}

impl Failure {
    /// A usage or I/O failure (exit code 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// A failed check: corruption, or a demo property that did not hold (exit code 1).
    pub fn check(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_CORRUPT,
            message: message.into(),
        }
    }

    /// Prefixes the message with what was being done.
    pub fn context(mut self, what: &str) -> Failure {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<mmlog::Error> for Failure {
    /// Damage is exit code 1, everything else (I/O, not a log, locked, bad argument) is 2, so
    /// scripts can tell "the log is bad" from "the tool could not look at it".
    fn from(e: mmlog::Error) -> Failure {
        let code = match e {
            mmlog::Error::Corrupt { .. } => EXIT_CORRUPT,
            _ => EXIT_USAGE,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

/// Shorthand for results of commands.
pub type CmdResult<T = ()> = Result<T, Failure>;
