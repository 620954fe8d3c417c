//! commitlog 0.2: one `CommitLog` behind a `Mutex` (its `append_msg` takes `&mut self`).
//! No-sync workloads: `append_msg(payload)` per record (one `write` to the segment file each;
//! the offset index is a memory map). `durable_4t`: not run. `CommitLog::flush` only flushes
//! the `File` handle (a no-op) and `msync`s the index; nothing in the API fsyncs the segment
//! data. Reading: `read(offset, ReadLimit::max_bytes(1 MiB))` in a loop, iterating each
//! returned `MessageBuf` and checking each payload's length.

use std::path::Path;
use std::sync::Mutex;

use commitlog::message::MessageSet;
use commitlog::{CommitLog, LogOptions, ReadLimit};

use crate::harness::{self, Outcome, Writer, ctx_dbg};
use crate::workload::{Kind, Workload};

struct W<'a>(&'a Mutex<CommitLog>);

impl Writer for W<'_> {
    #[inline]
    fn append(&mut self, payload: &[u8]) -> Result<(), String> {
        let mut log = self
            .0
            .lock()
            .map_err(|_| "commitlog: mutex poisoned".to_string())?;
        log.append_msg(payload)
            .map(drop)
            .map_err(ctx_dbg("commitlog append"))
    }

    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<(), String> {
        payloads.iter().try_for_each(|p| self.append(p))
    }
}

fn open(dir: &Path) -> Result<CommitLog, String> {
    CommitLog::new(LogOptions::new(dir.join("commitlog"))).map_err(ctx_dbg("commitlog open"))
}

pub fn run(w: &Workload, dir: &Path) -> Result<Outcome, String> {
    if w.durable() {
        return Ok(Outcome::Unsupported(
            "no fsync of segment data in commitlog's API (flush() only msyncs the index)"
                .to_string(),
        ));
    }
    let log = Mutex::new(open(dir)?);
    harness::settle();
    let seconds = match w.kind {
        Kind::Append { .. } => {
            let writers = (0..w.threads).map(|_| W(&log)).collect();
            harness::drive(writers, w.per_thread(), w.size, w.batch)?
        }
        Kind::Read => {
            harness::load(W(&log), w.records, w.size)?;
            let mut guard = log
                .lock()
                .map_err(|_| "commitlog: mutex poisoned".to_string())?;
            guard.flush().map_err(ctx_dbg("commitlog flush"))?;
            let log = &*guard;
            harness::timed_read(w.records, w.size, || {
                let (mut n, mut bytes) = (0u64, 0u64);
                let mut offset = 0u64;
                loop {
                    let buf = log
                        .read(offset, ReadLimit::max_bytes(1 << 20))
                        .map_err(ctx_dbg("commitlog read"))?;
                    let mut got = 0u64;
                    for m in buf.iter() {
                        got += 1;
                        bytes += std::hint::black_box(m.payload()).len() as u64;
                        offset = m.offset() + 1;
                    }
                    if got == 0 {
                        break;
                    }
                    n += got;
                }
                Ok((n, bytes))
            })?
        }
        Kind::Open { cold } => {
            harness::load(W(&log), w.records, w.size)?;
            let mut log = log
                .into_inner()
                .map_err(|_| "commitlog: mutex poisoned".to_string())?;
            log.flush().map_err(ctx_dbg("commitlog flush"))?;
            drop(log);
            let (seconds, log) = harness::timed_open(dir, cold, || open(dir))?;
            if log.last_offset() != Some(w.records - 1) {
                return Err(format!(
                    "commitlog: last offset {:?} after reopening",
                    log.last_offset()
                ));
            }
            return Ok(Outcome::Measured {
                records: w.records,
                seconds,
                note: Some("the open reads the index files, not the records".to_string()),
                detail: None,
            });
        }
    };
    log.lock()
        .map_err(|_| "commitlog: mutex poisoned".to_string())?
        .flush()
        .map_err(ctx_dbg("commitlog flush"))?;
    Ok(Outcome::Measured {
        records: w.records,
        seconds,
        note: matches!(w.kind, Kind::Append { .. }).then(|| {
            "one Mutex<CommitLog> for all threads; every append is a write(2)".to_string()
        }),
        detail: None,
    })
}
