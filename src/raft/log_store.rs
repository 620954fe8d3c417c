//! openraft's `RaftLogStorage` on one mmlog log.
//!
//! # Records, version 1
//!
//! Every record of the log is one byte of kind followed by the postcard encoding (serde) of
//! an openraft 0.9 value:
//!
//! | kind | body | meaning |
//! |-----:|------|---------|
//! | 1 | `C::Entry` | a log entry |
//! | 2 | `Vote` | the vote, saved |
//! | 3 | `Option<LogId>` | the committed log id, saved |
//! | 4 | `u64` | truncate: entries from this index on are gone |
//! | 5 | `LogId` | purge: entries up to this log id are gone |
//!
//! A checkpoint (written at each purge, so that compaction can free the segments of purged
//! entries) holds `b"MRL1"` and the postcard encoding of the vote, the committed log id and
//! the last purged log id as of the checkpoint. Replay starts from the newest checkpoint and
//! applies the records after it in order; the vote, the committed id and the purge point
//! only ever move forward, so a replayed record older than the checkpoint changes nothing.
//!
//! An entry record at index `i` drops every entry from `i` on before it is added (Raft only
//! appends after a truncation), so a crash that loses the truncate record's successors leaves
//! a valid log either way.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig,
    StorageError, Vote,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{bad_record, decode_body, encode_record, postcard_bytes, storage_error};
use crate::{Durability, Log, Options, Retention};

const ENTRY: u8 = 1;
const VOTE: u8 = 2;
const COMMITTED: u8 = 3;
const TRUNCATE: u8 = 4;
const PURGE: u8 = 5;
const CHECKPOINT_MAGIC: &[u8; 4] = b"MRL1";

/// openraft's log storage on an mmlog [`Log`]: vote, committed id and entries as records,
/// truncation and purge as records, purged segments freed by compaction.
///
/// Appends are acknowledged to openraft once a background thread has made them durable
/// (one `fsync` for every append waiting at that moment); saving the vote returns once the
/// vote is durable. Cloning is cheap and shares the log (it is also the log reader).
pub struct LogStore<C: RaftTypeConfig> {
    inner: Arc<Inner<C>>,
}

impl<C: RaftTypeConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<C: RaftTypeConfig> {
    log: Arc<Log>,
    state: Mutex<Index<C>>,
    /// Appends waiting to be made durable, for the flushing thread.
    flushes: Mutex<mpsc::Sender<LogFlushed<C>>>,
}

/// What replaying the log gives: where each live entry is, and the metadata.
struct Index<C: RaftTypeConfig> {
    /// Raft index → (mmlog sequence number, log id).
    entries: BTreeMap<u64, (u64, LogId<C::NodeId>)>,
    meta: Meta<C>,
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Meta<C: RaftTypeConfig> {
    vote: Option<Vote<C::NodeId>>,
    committed: Option<LogId<C::NodeId>>,
    last_purged: Option<LogId<C::NodeId>>,
}

impl<C: RaftTypeConfig> Default for Meta<C> {
    fn default() -> Self {
        Meta {
            vote: None,
            committed: None,
            last_purged: None,
        }
    }
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    /// Opens (or creates) the Raft log in `dir` and replays it.
    pub fn open(dir: impl AsRef<Path>) -> crate::Result<LogStore<C>> {
        LogStore::open_with(dir, Options::default())
    }

    /// [`LogStore::open`] with `options` for the log (segment size, archive mode). Its
    /// durability is always [`Durability::Buffered`]: the store syncs when openraft needs
    /// it (appends before they are acknowledged, the vote before it returns). Its retention
    /// is always the default, which drops only what a checkpoint covers: purged entries.
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> crate::Result<LogStore<C>> {
        let options = options
            .durability(Durability::Buffered)
            .retention(Retention::default());
        let log = Arc::new(Log::open(dir, options)?);
        let index = replay::<C>(&log)?;
        let (tx, rx) = mpsc::channel::<LogFlushed<C>>();
        let flusher = Arc::downgrade(&log);
        std::thread::Builder::new()
            .name("mmlog-raft-flush".into())
            .spawn(move || flush_loop(&flusher, &rx))
            .map_err(|e| crate::Error::io("spawn raft flusher", log.path(), e))?;
        Ok(LogStore {
            inner: Arc::new(Inner {
                log,
                state: Mutex::new(index),
                flushes: Mutex::new(tx),
            }),
        })
    }

    /// The mmlog log underneath (for statistics and inspection).
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    fn index(&self) -> MutexGuard<'_, Index<C>> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn append_record<T: Serialize>(&self, kind: u8, value: &T) -> crate::Result<u64> {
        self.inner.log.append(&encode_record(kind, value)?)
    }

    /// Writes a checkpoint just before the oldest live entry, so that compaction frees
    /// every segment holding only purged entries and superseded metadata.
    fn checkpoint_before_live(&self) -> crate::Result<()> {
        // The checkpoint holds the committed id, which may name entries appended but not
        // yet synced (a follower learns the commit point from the leader): make them
        // durable first, so that no replay ever finds a commit point past its last entry.
        self.inner.log.sync()?;
        let (before, meta) = {
            let index = self.index();
            let first_live = index.entries.values().next().map(|(seq, _)| *seq);
            let before = match first_live {
                Some(0) => return Ok(()),
                Some(seq) => seq - 1,
                None => match self.inner.log.last_seq() {
                    Some(last) => last,
                    None => return Ok(()),
                },
            };
            (before, postcard_bytes(&index.meta)?)
        };
        let mut data = CHECKPOINT_MAGIC.to_vec();
        data.extend_from_slice(&meta);
        self.inner.log.checkpoint(before, &data)?;
        self.inner.log.compact()?;
        Ok(())
    }
}

/// Makes appends durable and tells openraft, for as long as the store is open. It holds
/// the log only while syncing, so dropping the store closes the log at once.
fn flush_loop<C: RaftTypeConfig>(log: &Weak<Log>, rx: &mpsc::Receiver<LogFlushed<C>>) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        // One sync covers every append made before it started, so every callback queued
        // so far.
        let result = match log.upgrade() {
            Some(log) => log.sync(),
            None => Err(crate::Error::invalid("the raft log was closed")),
        };
        for callback in waiting {
            callback.log_io_completed(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(e.to_string())),
            );
        }
    }
}

fn replay<C>(log: &Log) -> crate::Result<Index<C>>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    let (checkpoint, mut reader) = log.read_from_checkpoint()?;
    let mut index = Index {
        entries: BTreeMap::new(),
        meta: Meta::default(),
    };
    if let Some(cp) = checkpoint {
        let data = cp.data();
        match data.strip_prefix(CHECKPOINT_MAGIC.as_slice()) {
            Some(body) => index.meta = decode_body(cp.seq(), body)?,
            None => return Err(bad_record(cp.seq(), "checkpoint without its magic")),
        }
    }
    while let Some(record) = reader.next() {
        let record = record?;
        let seq = record.seq();
        let Some((&kind, body)) = record.payload().split_first() else {
            return Err(bad_record(seq, "empty record"));
        };
        let meta = &mut index.meta;
        match kind {
            ENTRY => {
                let entry: C::Entry = decode_body(seq, body)?;
                let log_id = entry.get_log_id().clone();
                index.entries.split_off(&log_id.index);
                if meta
                    .last_purged
                    .as_ref()
                    .is_none_or(|p| log_id.index > p.index)
                {
                    index.entries.insert(log_id.index, (seq, log_id));
                }
            }
            VOTE => forward(&mut meta.vote, Some(decode_body(seq, body)?)),
            COMMITTED => forward(&mut meta.committed, decode_body(seq, body)?),
            TRUNCATE => {
                let since: u64 = decode_body(seq, body)?;
                index.entries.split_off(&since);
            }
            PURGE => {
                let upto: LogId<C::NodeId> = decode_body(seq, body)?;
                forward(&mut meta.last_purged, Some(upto));
            }
            other => {
                return Err(bad_record(
                    seq,
                    format!("log record of unknown kind {other}"),
                ));
            }
        }
    }
    if let Some(purged) = &index.meta.last_purged {
        index.entries = index.entries.split_off(&(purged.index + 1));
    }
    Ok(index)
}

/// Sets `slot` to `new` unless `new` is older: the vote, the committed id and the purge
/// point only move forward, so a record replayed after a newer checkpoint changes nothing.
fn forward<T: PartialOrd>(slot: &mut Option<T>, new: Option<T>) {
    if new.is_some() && new.partial_cmp(slot) != Some(std::cmp::Ordering::Less) {
        *slot = new;
    }
}

/// The live entries' sequence numbers within `range`, in index order.
fn seqs_in<C: RaftTypeConfig>(index: &Index<C>, range: impl RangeBounds<u64>) -> Vec<u64> {
    index
        .entries
        .range((range.start_bound().cloned(), range.end_bound().cloned()))
        .map(|(_, (seq, _))| *seq)
        .collect()
}

fn read_entries<C>(log: &Log, seqs: &[u64]) -> crate::Result<Vec<C::Entry>>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    let mut out = Vec::with_capacity(seqs.len());
    let Some(&first) = seqs.first() else {
        return Ok(out);
    };
    let mut reader = log.read_from(first)?;
    for &want in seqs {
        loop {
            let Some(record) = reader.next() else {
                return Err(bad_record(want, "entry missing from the log"));
            };
            let record = record?;
            if record.seq() < want {
                continue;
            }
            match record.payload().split_first() {
                Some((&ENTRY, body)) if record.seq() == want => {
                    out.push(decode_body(want, body)?);
                    break;
                }
                _ => return Err(bad_record(want, "not an entry")),
            }
        }
    }
    Ok(out)
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let seqs = seqs_in(&self.index(), range);
        read_entries::<C>(&self.inner.log, &seqs)
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let index = self.index();
        let last_purged_log_id = index.meta.last_purged.clone();
        let last_log_id = index
            .entries
            .values()
            .next_back()
            .map(|(_, id)| id.clone())
            .or_else(|| last_purged_log_id.clone());
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let err = |e| storage_error(ErrorSubject::Vote, ErrorVerb::Write, e);
        self.append_record(VOTE, vote).map_err(err)?;
        self.inner.log.sync().map_err(err)?;
        forward(&mut self.index().meta.vote, Some(vote.clone()));
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.index().meta.vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        // Not synced: a committed id lost in a crash is learnt again from the leader.
        self.append_record(COMMITTED, &committed)
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        self.index().meta.committed = committed;
        Ok(())
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.index().meta.committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let err = |e| storage_error(ErrorSubject::Logs, ErrorVerb::Write, e);
        for entry in entries {
            let log_id = entry.get_log_id().clone();
            let seq = self.append_record(ENTRY, &entry).map_err(err)?;
            let mut index = self.index();
            index.entries.split_off(&log_id.index);
            index.entries.insert(log_id.index, (seq, log_id));
        }
        let flushes = self
            .inner
            .flushes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        flushes.send(callback).map_err(|_| {
            storage_error(
                ErrorSubject::Logs,
                ErrorVerb::Write,
                "the flushing thread stopped",
            )
        })
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        // Not synced: if the record is lost, so is everything appended after it, and the
        // entries it removed were never acknowledged as committed.
        self.append_record(TRUNCATE, &log_id.index)
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.index().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let err = |e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e);
        self.append_record(PURGE, &log_id).map_err(err)?;
        {
            let mut index = self.index();
            index.entries = index.entries.split_off(&(log_id.index + 1));
            forward(&mut index.meta.last_purged, Some(log_id));
        }
        self.checkpoint_before_live().map_err(err)
    }
}
