//! sled 0.34 (a key-value store, not a log): `Db::insert(seq.to_be_bytes(), payload)` with `seq`
//! from one shared atomic counter, so keys are the dense sequence numbers in order. No-sync
//! workloads: sled's default (its pagecache is flushed in the background every 500 ms; an
//! insert that returned is in sled's memory, not yet in the OS). `durable_4t`: `Db::flush()`
//! after every insert, which writes and fsyncs whatever is dirty in sled's pagecache: several
//! threads' flushes may overlap but there is no group commit of the kind mmlog, okaywal,
//! fjall or raft-engine do. Reading: `Db::iter()`, checking each value's length.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::harness::{self, Outcome, Writer, ctx};
use crate::workload::{Kind, Workload};

struct W<'a> {
    db: &'a sled::Db,
    seq: &'a AtomicU64,
    durable: bool,
}

impl Writer for W<'_> {
    #[inline]
    fn append(&mut self, payload: &[u8]) -> Result<(), String> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.db
            .insert(seq.to_be_bytes(), payload)
            .map_err(ctx("sled insert"))?;
        if self.durable {
            self.db.flush().map_err(ctx("sled flush"))?;
        }
        Ok(())
    }

    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<(), String> {
        let first = self.seq.fetch_add(payloads.len() as u64, Ordering::Relaxed);
        let mut batch = sled::Batch::default();
        for (i, payload) in payloads.iter().enumerate() {
            batch.insert(&(first + i as u64).to_be_bytes(), *payload);
        }
        self.db
            .apply_batch(batch)
            .map_err(ctx("sled apply_batch"))?;
        if self.durable {
            self.db.flush().map_err(ctx("sled flush"))?;
        }
        Ok(())
    }
}

fn open(dir: &Path) -> Result<sled::Db, String> {
    sled::Config::new()
        .path(dir.join("sled"))
        .open()
        .map_err(ctx("sled open"))
}

pub fn run(w: &Workload, dir: &Path) -> Result<Outcome, String> {
    let db = open(dir)?;
    let seq = AtomicU64::new(0);
    harness::settle();
    let durable = w.durable();
    let writer = || W {
        db: &db,
        seq: &seq,
        durable,
    };
    let seconds = match w.kind {
        Kind::Append { .. } => {
            let writers = (0..w.threads).map(|_| writer()).collect();
            harness::drive(writers, w.per_thread(), w.size, w.batch)?
        }
        Kind::Read | Kind::Open { .. } => {
            harness::load(writer(), w.records, w.size)?;
            db.flush().map_err(ctx("sled flush"))?;
            if let Kind::Open { cold } = w.kind {
                drop(db);
                let (seconds, db) = harness::timed_open(dir, cold, || open(dir))?;
                if db.len() as u64 != w.records {
                    return Err(format!("sled: {} keys after reopening", db.len()));
                }
                return Ok(Outcome::Measured {
                    records: w.records,
                    seconds,
                    note: None,
                    detail: None,
                });
            }
            harness::timed_read(w.records, w.size, || {
                let (mut n, mut bytes) = (0u64, 0u64);
                for kv in db.iter() {
                    let (_k, v) = kv.map_err(ctx("sled iter"))?;
                    n += 1;
                    bytes += std::hint::black_box(&v).len() as u64;
                }
                Ok((n, bytes))
            })?
        }
    };
    db.flush().map_err(ctx("sled flush"))?;
    let note = match w.kind {
        Kind::Append { durable: false } => Some(
            "sled default: inserts reach the OS in a background flush every 500 ms".to_string(),
        ),
        Kind::Append { durable: true } if w.batch > 1 => Some(
            "Db::apply_batch, then Db::flush(), per call; sled makes it durable with \
                 sync_file_range, which flushes neither the device cache nor metadata"
                .to_string(),
        ),
        Kind::Append { durable: true } => Some(
            "Db::flush() after every insert; sled makes it durable with sync_file_range, \
             which flushes neither the device cache nor metadata"
                .to_string(),
        ),
        Kind::Read | Kind::Open { .. } => None,
    };
    Ok(Outcome::Measured {
        records: w.records,
        seconds,
        note,
        detail: None,
    })
}
