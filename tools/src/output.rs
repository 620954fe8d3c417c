//! Writing results to stdout without panicking when the reader goes away
//! (`mmlog dump DIR | head`): a closed pipe ends the output quietly, with success.

use std::io::{self, BufWriter, StdoutLock, Write};

use crate::failure::{CmdResult, Failure};

/// Buffered stdout that remembers whether its reader has gone away.
pub struct Out {
    w: BufWriter<StdoutLock<'static>>,
    closed: bool,
}

impl Out {
    /// Locks stdout for the lifetime of the command.
    pub fn new() -> Out {
        Out {
            w: BufWriter::new(io::stdout().lock()),
            closed: false,
        }
    }

    /// Writes `text` and a newline. Returns `Ok(false)` once stdout is a closed pipe, so
    /// callers can stop producing output.
    pub fn line(&mut self, text: &str) -> CmdResult<bool> {
        if self.closed {
            return Ok(false);
        }
        let r = self
            .w
            .write_all(text.as_bytes())
            .and_then(|()| self.w.write_all(b"\n"));
        self.check(r)
    }

    /// Flushes what is buffered and keeps going (for output that trickles, like `tail
    /// --follow`). Returns `Ok(false)` once stdout is a closed pipe.
    pub fn flush(&mut self) -> CmdResult<bool> {
        if self.closed {
            return Ok(false);
        }
        let r = self.w.flush();
        self.check(r)
    }

    /// Flushes what is buffered.
    pub fn finish(mut self) -> CmdResult {
        if self.closed {
            return Ok(());
        }
        let r = self.w.flush();
        self.check(r).map(|_| ())
    }

    fn check(&mut self, r: io::Result<()>) -> CmdResult<bool> {
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(false)
            }
            Err(e) => Err(Failure::usage(format!("writing to stdout: {e}"))),
        }
    }
}

/// Prints all of `text` (one or more lines) to stdout.
pub fn emit(text: &str) -> CmdResult {
    let mut out = Out::new();
    out.line(text.trim_end_matches('\n'))?;
    out.finish()
}

/// `println!` for progress reports, which must not abort the work they describe when stdout
/// is gone: write errors are ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use say;
