//! raft-engine 0.4 (TiKV's multi-Raft log store, default features off): one `Engine`; each
//! writer thread appends to its own Raft group (region id = thread + 1), since entries of one
//! group must carry consecutive indexes. A record is a protobuf `BytesValue` whose first 8
//! bytes are its index (big-endian; `MessageExt::index` reads them back); per record:
//! `LogBatch::add_entries::<M>(region, &[entry])` then `Engine::write(&mut batch, sync)`, with
//! `sync = false` for the no-sync workloads (written to the file, no fdatasync) and
//! `sync = true` for `durable_4t` (raft-engine groups concurrent writers into one fdatasync).
//! Reading: `Engine::fetch_entries_to::<M>(region, begin, end, None, &mut vec)` 4,096 entries
//! at a time, checking each value's length.

use std::path::Path;

use protobuf::well_known_types::BytesValue;
use raft_engine::{Config, Engine, LogBatch, MessageExt};

use crate::harness::{self, Outcome, Writer, ctx};
use crate::workload::{Kind, Workload};

struct M;

impl MessageExt for M {
    type Entry = BytesValue;

    fn index(e: &BytesValue) -> u64 {
        let mut b = [0u8; 8];
        let n = e.value.len().min(8);
        b[..n].copy_from_slice(&e.value[..n]);
        u64::from_be_bytes(b)
    }
}

struct W<'a> {
    engine: &'a Engine,
    region: u64,
    next_index: u64,
    sync: bool,
    batch: LogBatch,
}

impl<'a> W<'a> {
    fn new(engine: &'a Engine, region: u64, sync: bool) -> Self {
        W {
            engine,
            region,
            next_index: 1,
            sync,
            batch: LogBatch::default(),
        }
    }
}

impl Writer for W<'_> {
    fn append(&mut self, payload: &[u8]) -> Result<(), String> {
        let mut value = payload.to_vec();
        let n = value.len().min(8);
        value[..n].copy_from_slice(&self.next_index.to_be_bytes()[..n]);
        let mut entry = BytesValue::new();
        entry.value = value;
        self.batch
            .add_entries::<M>(self.region, std::slice::from_ref(&entry))
            .map_err(ctx("raft-engine add_entries"))?;
        self.engine
            .write(&mut self.batch, self.sync)
            .map_err(ctx("raft-engine write"))?;
        self.next_index += 1;
        Ok(())
    }

    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<(), String> {
        let mut entries = Vec::with_capacity(payloads.len());
        for payload in payloads {
            let mut value = payload.to_vec();
            let n = value.len().min(8);
            value[..n].copy_from_slice(&self.next_index.to_be_bytes()[..n]);
            let mut entry = BytesValue::new();
            entry.value = value;
            entries.push(entry);
            self.next_index += 1;
        }
        self.batch
            .add_entries::<M>(self.region, &entries)
            .map_err(ctx("raft-engine add_entries"))?;
        self.engine
            .write(&mut self.batch, self.sync)
            .map_err(ctx("raft-engine write"))
            .map(drop)
    }
}

pub fn run(w: &Workload, dir: &Path) -> Result<Outcome, String> {
    if w.size < 8 {
        return Err("raft-engine: records must be at least 8 bytes (the index)".to_string());
    }
    let cfg = Config {
        dir: dir.join("raft").to_string_lossy().into_owned(),
        ..Config::default()
    };
    let engine = Engine::open(cfg.clone()).map_err(ctx("raft-engine open"))?;
    harness::settle();
    let sync = w.durable();
    let seconds = match w.kind {
        Kind::Append { .. } => {
            let writers = (0..w.threads)
                .map(|t| W::new(&engine, t as u64 + 1, sync))
                .collect();
            harness::drive(writers, w.per_thread(), w.size, w.batch)?
        }
        Kind::Read => {
            harness::load(W::new(&engine, 1, sync), w.records, w.size)?;
            engine.sync().map_err(ctx("raft-engine sync"))?;
            harness::timed_read(w.records, w.size, || {
                let (mut n, mut bytes) = (0u64, 0u64);
                let mut vec: Vec<BytesValue> = Vec::with_capacity(4096);
                let mut begin = 1u64;
                let end = w.records + 1;
                while begin < end {
                    let stop = (begin + 4096).min(end);
                    vec.clear();
                    let got = engine
                        .fetch_entries_to::<M>(1, begin, stop, None, &mut vec)
                        .map_err(ctx("raft-engine fetch_entries_to"))?;
                    if got == 0 {
                        break;
                    }
                    for e in &vec {
                        n += 1;
                        bytes += std::hint::black_box(&e.value).len() as u64;
                    }
                    begin += got as u64;
                }
                Ok((n, bytes))
            })?
        }
        Kind::Open { cold } => {
            harness::load(W::new(&engine, 1, sync), w.records, w.size)?;
            engine.sync().map_err(ctx("raft-engine sync"))?;
            drop(engine);
            let (seconds, engine) = harness::timed_open(dir, cold, || {
                Engine::open(cfg).map_err(ctx("raft-engine reopen"))
            })?;
            let last = engine.last_index(1);
            if last != Some(w.records) {
                return Err(format!("raft-engine: last index {last:?} after reopening"));
            }
            return Ok(Outcome::Measured {
                records: w.records,
                seconds,
                note: None,
                detail: None,
            });
        }
    };
    engine.sync().map_err(ctx("raft-engine sync"))?;
    let note = (w.threads > 1).then(|| "one Raft group per writer thread".to_string());
    Ok(Outcome::Measured {
        records: w.records,
        seconds,
        note,
        detail: None,
    })
}
