//! fjall 3 (an LSM-tree key-value store, not a log): one `Database`, one `Keyspace`;
//! `Keyspace::insert(seq.to_be_bytes(), payload)` with `seq` from one shared atomic counter.
//! No-sync workloads: fjall's default (each write goes to the journal file and is handed to
//! the OS, no fsync; `manual_journal_persist` is off). `durable_4t`: `insert` then
//! `Database::persist(PersistMode::SyncData)` (fdatasync of the journal) per record.
//! Reading: `Keyspace::iter()`, `Guard::into_inner()`, checking each value's length.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::harness::{self, Outcome, Writer, ctx};
use crate::workload::{Kind, Workload};

struct W<'a> {
    db: &'a Database,
    ks: &'a Keyspace,
    seq: &'a AtomicU64,
    durable: bool,
}

impl Writer for W<'_> {
    #[inline]
    fn append(&mut self, payload: &[u8]) -> Result<(), String> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.ks
            .insert(seq.to_be_bytes(), payload)
            .map_err(ctx("fjall insert"))?;
        if self.durable {
            self.db
                .persist(PersistMode::SyncData)
                .map_err(ctx("fjall persist"))?;
        }
        Ok(())
    }

    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<(), String> {
        let first = self.seq.fetch_add(payloads.len() as u64, Ordering::Relaxed);
        let mut batch = self
            .db
            .batch()
            .durability(self.durable.then_some(PersistMode::SyncData));
        for (i, payload) in payloads.iter().enumerate() {
            batch.insert(self.ks, (first + i as u64).to_be_bytes(), *payload);
        }
        batch.commit().map_err(ctx("fjall batch commit"))
    }
}

fn open(dir: &Path) -> Result<(Database, Keyspace), String> {
    let db = Database::builder(dir.join("fjall"))
        .open()
        .map_err(ctx("fjall open"))?;
    let ks = db
        .keyspace("log", KeyspaceCreateOptions::default)
        .map_err(ctx("fjall keyspace"))?;
    Ok((db, ks))
}

pub fn run(w: &Workload, dir: &Path) -> Result<Outcome, String> {
    let (db, ks) = open(dir)?;
    let seq = AtomicU64::new(0);
    harness::settle();
    let durable = w.durable();
    let writer = || W {
        db: &db,
        ks: &ks,
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
            db.persist(PersistMode::SyncData)
                .map_err(ctx("fjall persist"))?;
            if let Kind::Open { cold } = w.kind {
                drop(ks);
                drop(db);
                let (seconds, (db, _ks)) = harness::timed_open(dir, cold, || open(dir))?;
                db.persist(PersistMode::SyncData)
                    .map_err(ctx("fjall persist"))?;
                return Ok(Outcome::Measured {
                    records: w.records,
                    seconds,
                    note: None,
                    detail: None,
                });
            }
            harness::timed_read(w.records, w.size, || {
                let (mut n, mut bytes) = (0u64, 0u64);
                for guard in ks.iter() {
                    let (_k, v) = guard.into_inner().map_err(ctx("fjall iter"))?;
                    n += 1;
                    bytes += std::hint::black_box(&v).len() as u64;
                }
                Ok((n, bytes))
            })?
        }
    };
    db.persist(PersistMode::SyncData)
        .map_err(ctx("fjall persist"))?;
    Ok(Outcome::Measured {
        records: w.records,
        seconds,
        note: None,
        detail: None,
    })
}
