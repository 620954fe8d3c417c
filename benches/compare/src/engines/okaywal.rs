//! okaywal: one `WriteAheadLog` shared by every thread. okaywal has no unsynced commit:
//! `EntryWriter::commit` always returns after the entry is `fdatasync`ed (one thread syncs for
//! all that wait). So the no-sync workloads write each record as a chunk
//! (`EntryWriter::write_chunk`) of an entry of up to 1,000 records and commit (fsync) once per
//! entry; `durable_4t` writes one entry per record (`begin_entry`, `write_chunk`, `commit`).
//! `begin_entry` takes the active file for the writer alone until `commit`, so entries from
//! different threads are written one after the other.
//!
//! Reading: okaywal reads a log back only through recovery, so the log is shut down (untimed)
//! and the timed part is `Configuration::open` with a `LogManager` whose `recover` reads every
//! chunk of every entry (`Entry::read_chunk`, `Read`, `EntryChunk::check_crc`). Checkpointing
//! (the default starts one after 768 KiB) is switched off for the read workload, else the
//! records would be gone before they could be read.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use okaywal::{
    Configuration, Entry, EntryId, EntryWriter, LogManager, ReadChunkResult, SegmentReader,
    WriteAheadLog,
};

use crate::harness::{self, Outcome, Writer, ctx};
use crate::workload::{Kind, Workload};

/// Records per entry in the no-sync workloads.
const PER_ENTRY: u64 = 1_000;

/// Checkpoints drop everything; recovery reads and counts every chunk.
#[derive(Debug, Default)]
struct Manager {
    records: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl LogManager for Manager {
    fn recover(&mut self, entry: &mut Entry<'_>) -> std::io::Result<()> {
        let mut buf = Vec::new();
        let (mut n, mut bytes) = (0u64, 0u64);
        loop {
            match entry.read_chunk()? {
                ReadChunkResult::Chunk(mut chunk) => {
                    buf.clear();
                    chunk.read_to_end(&mut buf)?;
                    if !chunk.check_crc()? {
                        return Err(std::io::Error::other("okaywal: chunk crc mismatch"));
                    }
                    n += 1;
                    bytes += buf.len() as u64;
                }
                ReadChunkResult::EndOfEntry => break,
                ReadChunkResult::AbortedEntry => {
                    return Err(std::io::Error::other("okaywal: aborted entry"));
                }
            }
        }
        self.records.fetch_add(n, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: EntryId,
        _checkpointed_entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> std::io::Result<()> {
        Ok(())
    }
}

struct W<'a> {
    wal: &'a WriteAheadLog,
    entry: Option<EntryWriter<'a>>,
    in_entry: u64,
    per_entry: u64,
}

impl<'a> W<'a> {
    fn new(wal: &'a WriteAheadLog, per_entry: u64) -> Self {
        W {
            wal,
            entry: None,
            in_entry: 0,
            per_entry,
        }
    }

    fn commit(&mut self) -> Result<(), String> {
        if let Some(e) = self.entry.take() {
            e.commit().map_err(ctx("okaywal commit"))?;
        }
        self.in_entry = 0;
        Ok(())
    }
}

impl Writer for W<'_> {
    fn append(&mut self, payload: &[u8]) -> Result<(), String> {
        if self.entry.is_none() {
            self.entry = Some(self.wal.begin_entry().map_err(ctx("okaywal begin_entry"))?);
        }
        if let Some(e) = self.entry.as_mut() {
            e.write_chunk(payload).map_err(ctx("okaywal write_chunk"))?;
        }
        self.in_entry += 1;
        if self.in_entry >= self.per_entry {
            self.commit()?;
        }
        Ok(())
    }

    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<(), String> {
        let mut entry = self.wal.begin_entry().map_err(ctx("okaywal begin_entry"))?;
        for payload in payloads {
            entry
                .write_chunk(payload)
                .map_err(ctx("okaywal write_chunk"))?;
        }
        entry.commit().map_err(ctx("okaywal commit")).map(drop)
    }

    fn finish(&mut self) -> Result<(), String> {
        self.commit()
    }
}

/// The open workloads: write (untimed, 1,000 records per entry, default checkpointing), shut
/// down, then time `Configuration::open`, which recovers every entry not yet checkpointed.
fn open_workload(w: &Workload, config: Configuration, cold: bool) -> Result<Outcome, String> {
    let wal = config
        .clone()
        .open(Manager::default())
        .map_err(ctx("okaywal open"))?;
    harness::load(W::new(&wal, PER_ENTRY), w.records, w.size)?;
    wal.shutdown().map_err(ctx("okaywal shutdown"))?;
    let manager = Manager::default();
    let recovered = manager.records.clone();
    let directory = config.directory.clone();
    let (seconds, wal) = harness::timed_open(&directory, cold, || {
        config.open(manager).map_err(ctx("okaywal reopen"))
    })?;
    wal.shutdown().map_err(ctx("okaywal shutdown"))?;
    let recovered = recovered.load(Ordering::Relaxed);
    Ok(Outcome::Measured {
        records: w.records,
        seconds,
        note: Some(format!(
            "its checkpoints had dropped all but {recovered} of the records, so the open read only those"
        )),
        detail: None,
    })
}

pub fn run(w: &Workload, dir: &Path) -> Result<Outcome, String> {
    let path = dir.join("wal");
    let per_entry = if w.durable() { 1 } else { PER_ENTRY };
    let mut config = Configuration::default_for(&path);
    if let Kind::Open { cold } = w.kind {
        return open_workload(w, config, cold);
    }
    if w.kind == Kind::Read {
        config = config.checkpoint_after_bytes(u64::MAX);
    }
    let wal = config
        .clone()
        .open(Manager::default())
        .map_err(ctx("okaywal open"))?;
    harness::settle();
    let (seconds, note) = match w.kind {
        Kind::Append { durable } => {
            let writers = (0..w.threads).map(|_| W::new(&wal, per_entry)).collect();
            let secs = harness::drive(writers, w.per_thread(), w.size, w.batch)?;
            let note = (!durable).then(|| {
                format!(
                    "okaywal has no unsynced commit: {PER_ENTRY} records per entry, one commit (fdatasync) per entry"
                )
            });
            (secs, note)
        }
        Kind::Read => {
            harness::load(W::new(&wal, per_entry), w.records, w.size)?;
            wal.shutdown().map_err(ctx("okaywal shutdown"))?;
            let manager = Manager::default();
            let (records, bytes) = (manager.records.clone(), manager.bytes.clone());
            let mut reopened = None;
            let secs = harness::timed_read(w.records, w.size, || {
                reopened = Some(config.open(manager).map_err(ctx("okaywal reopen"))?);
                Ok((
                    records.load(Ordering::Relaxed),
                    bytes.load(Ordering::Relaxed),
                ))
            })?;
            if let Some(wal) = reopened {
                wal.shutdown().map_err(ctx("okaywal shutdown"))?;
            }
            let note = format!(
                "read = reopen with recovery (okaywal's only sequential read path); written {PER_ENTRY} records per entry"
            );
            return Ok(Outcome::Measured {
                records: w.records,
                seconds: secs,
                note: Some(note),
                detail: None,
            });
        }
        Kind::Open { .. } => return Err("open workloads are run by open_workload".to_string()),
    };
    wal.shutdown().map_err(ctx("okaywal shutdown"))?;
    Ok(Outcome::Measured {
        records: w.records,
        seconds,
        note,
        detail: None,
    })
}
