//! Read models: projections of the event stream, each fed by its own thread from its own
//! persisted position, so a restart resumes where it stopped.
//!
//! A model's state and position are saved together in `<dir>/projections/<name>.model`
//! (written under a temporary name, synced, renamed), and the position is also registered as
//! a log consumer (`model.<name>`), so compaction keeps every event a model has not applied.
//!
//! A model on a replica ([`EventStoreReplica::subscribe`](super::EventStoreReplica::subscribe))
//! writes nothing: it starts from the owner's saved copy of the model of that name, if there
//! is one, and lives in memory.
//!
//! # Model file, version 1
//!
//! | offset | size | field | meaning |
//! |-------:|-----:|-------|---------|
//! | 0  | 4 | `magic`    | `MMRM` |
//! | 4  | 4 | `version`  | `1` |
//! | 8  | 8 | `next_seq` | the first event the saved state has not applied |
//! | 16 | 8 | `len`      | length of the state |
//! | 24 | 4 | `crc`      | CRC-32C of bytes 0..24 and the state |
//! | 28 | 4 | reserved   | zero |
//! | 32 | len | state    | what [`Projection::save`] returned |

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event::{self, Event, StoredEvent};
use crate::error::{Error, Result};
use crate::format::crc::{checksum, checksum_append};
use crate::log::{Log, Records};
use crate::replica::LogReplica;
use crate::storage::fs as sfs;
use crate::sync::lock;

const MODEL_MAGIC: &[u8; 4] = b"MMRM";
const MODEL_VERSION: u32 = 1;
const MODEL_HEADER_LEN: usize = 32;
/// How often a running model saves its state and position.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// A read model: a view of the events, built by applying them one by one in order.
///
/// Write your own by keeping whatever the queries need and saying how to save it:
///
/// ```
/// use mmlog::events::{Event, Projection, StoredEvent};
///
/// /// Total bytes of data ever written.
/// #[derive(Default)]
/// struct BytesWritten(u64);
///
/// impl Projection for BytesWritten {
///     fn apply(&mut self, ev: &StoredEvent) {
///         if let Event::DataWritten { data, .. } = ev.event() {
///             self.0 += data.len() as u64;
///         }
///     }
///     fn save(&self) -> Vec<u8> {
///         self.0.to_le_bytes().to_vec()
///     }
///     fn restore(&mut self, bytes: &[u8]) -> Result<(), mmlog::Error> {
///         let b: [u8; 8] = bytes.try_into().map_err(|_| mmlog::Error::InvalidArgument {
///             reason: "BytesWritten state is 8 bytes".into(),
///         })?;
///         self.0 = u64::from_le_bytes(b);
///         Ok(())
///     }
/// }
/// # fn main() -> Result<(), mmlog::Error> {
/// # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
/// let store = mmlog::events::EventStore::open(dir.path(), mmlog::Options::default())?;
/// let model = store.subscribe("bytes", BytesWritten::default())?;
/// let (seq, _) = store.write(1, "hello")?;
/// assert!(model.wait_for(seq, std::time::Duration::from_secs(10)));
/// assert_eq!(model.read(|m| m.0), 5);
/// # Ok(()) }
/// ```
pub trait Projection: Send + 'static {
    /// Applies the next event. Events arrive in sequence order, each once.
    fn apply(&mut self, event: &StoredEvent);
    /// The model's state, to be saved with its position.
    fn save(&self) -> Vec<u8>;
    /// Restores a state that [`Projection::save`] returned.
    fn restore(&mut self, bytes: &[u8]) -> Result<()>;
}

struct ModelShared<P> {
    name: String,
    path: PathBuf,
    model: Mutex<P>,
    /// The first event not yet applied.
    position: AtomicU64,
    stop: AtomicBool,
    error: Mutex<Option<String>>,
    applied: (Mutex<()>, Condvar),
}

/// A running read model (see [`EventStore::subscribe`](super::EventStore::subscribe)).
/// Dropping it stops its thread and saves its state and position.
pub struct ReadModel<P: Projection> {
    shared: Arc<ModelShared<P>>,
    thread: Option<JoinHandle<()>>,
}

impl<P: Projection> ReadModel<P> {
    /// Starts model `name` fed from `log`: restores its saved state, or starts from the first
    /// event with `model` as given.
    pub(crate) fn start(log: Arc<Log>, name: &str, mut model: P) -> Result<ReadModel<P>> {
        check_name(name)?;
        let dir = log.path().join(PROJECTIONS_DIR);
        sfs::create_dir_all(&dir).map_err(|e| Error::io("create dir", &dir, e))?;
        let path = dir.join(format!("{name}.model"));
        let position = restore_saved(&path, &mut model)?.unwrap_or(0);
        let consumer = consumer_name(name);
        log.register_consumer(&consumer, position)?;
        log.commit_consumer(&consumer, position)?;
        ReadModel::launch(name, path, model, position, move |s| feed(&log, s))
    }

    /// Starts model `name` fed from `replica`, in memory: from the owner's saved copy of the
    /// model of that name, if there is one, else from the first event with `model` as given.
    /// Writes nothing, and registers no consumer.
    pub(crate) fn start_on_replica(
        replica: &LogReplica,
        name: &str,
        mut model: P,
    ) -> Result<ReadModel<P>> {
        check_name(name)?;
        let path = replica
            .path()
            .join(PROJECTIONS_DIR)
            .join(format!("{name}.model"));
        let position = restore_saved(&path, &mut model)?.unwrap_or(0);
        let reader = replica.read_from(position)?;
        ReadModel::launch(name, path, model, position, move |s| {
            follow(reader, s, None)
        })
    }

    /// Runs `body` on the model's own thread.
    fn launch(
        name: &str,
        path: PathBuf,
        model: P,
        position: u64,
        body: impl FnOnce(&ModelShared<P>) + Send + 'static,
    ) -> Result<ReadModel<P>> {
        let shared = Arc::new(ModelShared {
            name: name.to_owned(),
            path,
            model: Mutex::new(model),
            position: AtomicU64::new(position),
            stop: AtomicBool::new(false),
            error: Mutex::new(None),
            applied: (Mutex::new(()), Condvar::new()),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("mmlog-model-{name}"))
            .spawn(move || body(&s))
            .map_err(|e| Error::io("spawn read model", &shared.path, e))?;
        Ok(ReadModel {
            shared,
            thread: Some(thread),
        })
    }

    /// Runs `f` on the model as it is now (the feeding thread waits meanwhile).
    pub fn read<R>(&self, f: impl FnOnce(&P) -> R) -> R {
        f(&lock(&self.shared.model))
    }

    /// The first event the model has not applied yet.
    pub fn position(&self) -> u64 {
        self.shared.position.load(Ordering::Acquire)
    }

    /// Events committed but not yet applied: how far the model is behind `latest` (the
    /// store's [`latest_sequence`](super::EventStore::latest_sequence)).
    pub fn lag(&self, latest: Option<u64>) -> u64 {
        latest.map_or(0, |l| (l + 1).saturating_sub(self.position()))
    }

    /// Waits up to `timeout` for the model to have applied event `seq`; returns whether it has.
    pub fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &self.shared.applied;
        let mut g = lock(m);
        while self.position() <= seq {
            let now = Instant::now();
            if now >= deadline || self.error().is_some() {
                return false;
            }
            g = cv
                .wait_timeout(g, (deadline - now).min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Why the model stopped, if it did (an event it could not decode, a failed save).
    pub fn error(&self) -> Option<String> {
        lock(&self.shared.error).clone()
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Stops the feeding thread and saves the state and position.
    pub fn stop(mut self) -> Result<()> {
        self.halt();
        match self.error() {
            Some(e) => Err(Error::invalid(format!(
                "read model {}: {e}",
                self.shared.name
            ))),
            None => Ok(()),
        }
    }

    fn halt(&mut self) {
        if let Some(t) = self.thread.take() {
            self.shared.stop.store(true, Ordering::Release);
            let _ = t.join();
        }
    }
}

impl<P: Projection> Drop for ReadModel<P> {
    fn drop(&mut self) {
        self.halt();
    }
}

impl<P: Projection> std::fmt::Debug for ReadModel<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel")
            .field("name", &self.shared.name)
            .field("position", &self.position())
            .finish()
    }
}

/// Name of the directory of saved models inside a log directory.
const PROJECTIONS_DIR: &str = "projections";

/// Restores `model` from its saved file `path`; returns the position saved with it (`None`:
/// no saved file).
fn restore_saved<P: Projection>(path: &Path, model: &mut P) -> Result<Option<u64>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let (next_seq, state) = decode_model(&bytes, path)?;
            model.restore(state)?;
            Ok(Some(next_seq))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

fn consumer_name(model: &str) -> String {
    format!("model.{model}")
}

/// Model names become file names: 1 to 48 of `A-Z a-z 0-9 _ -`.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "read model name {name:?} must be 1 to 48 of A-Z a-z 0-9 _ -"
        )))
    }
}

/// The feeding thread: catch up from the saved position, then follow the log.
fn feed<P: Projection>(log: &Log, s: &ModelShared<P>) {
    match log.read_from(s.position.load(Ordering::Acquire)) {
        Ok(reader) => follow(reader, s, Some(log)),
        Err(e) => stopped_by(s, e.to_string()),
    }
}

/// Records why model `s` stopped, and wakes whoever waits for it.
fn stopped_by<P>(s: &ModelShared<P>, e: String) {
    *lock(&s.error) = Some(e);
    s.applied.1.notify_all();
}

/// Feeds the model what `reader` returns until it is stopped; saves its state and position
/// to `log` now and then and at the end (never without a log).
fn follow<P: Projection>(mut reader: impl Records, s: &ModelShared<P>, log: Option<&Log>) {
    let fail = |e: String| stopped_by(s, e);
    let mut saved_at = Instant::now();
    let mut dirty = false;
    loop {
        if s.stop.load(Ordering::Acquire) {
            break;
        }
        match reader.next_record() {
            Some(Ok(rec)) => {
                let ev = match event::decode(rec.seq(), rec.timestamp_ns(), rec.payload()) {
                    Ok(ev) => ev,
                    Err(e) => return fail(e.to_string()),
                };
                lock(&s.model).apply(&ev);
                s.position.store(ev.seq() + 1, Ordering::Release);
                dirty = true;
            }
            Some(Err(e)) => return fail(e.to_string()),
            None => {
                // Abandoned reservations are skipped by the reader: the position follows it.
                s.position.fetch_max(reader.next_seq(), Ordering::AcqRel);
                {
                    let _g = lock(&s.applied.0);
                    s.applied.1.notify_all();
                }
                if let Some(log) = log
                    && dirty
                    && saved_at.elapsed() >= SAVE_EVERY
                {
                    if let Err(e) = save(log, s) {
                        return fail(e.to_string());
                    }
                    saved_at = Instant::now();
                    dirty = false;
                }
                reader.wait(Duration::from_millis(20));
            }
        }
    }
    if let Some(log) = log
        && let Err(e) = save(log, s)
    {
        fail(e.to_string());
    }
}

/// Saves the model's state and position, then moves its consumer position there.
fn save<P: Projection>(log: &Log, s: &ModelShared<P>) -> Result<()> {
    let (position, state) = {
        let m = lock(&s.model);
        (s.position.load(Ordering::Acquire), m.save())
    };
    sfs::replace_file(
        &s.path,
        &s.path.with_extension("model.tmp"),
        &[&encode_model(position, &state)],
    )?;
    log.commit_consumer(&consumer_name(&s.name), position)
}

fn encode_model(next_seq: u64, state: &[u8]) -> Vec<u8> {
    let mut h = [0u8; MODEL_HEADER_LEN];
    h[..4].copy_from_slice(MODEL_MAGIC);
    h[4..8].copy_from_slice(&MODEL_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&next_seq.to_le_bytes());
    h[16..24].copy_from_slice(&(state.len() as u64).to_le_bytes());
    let crc = checksum_append(checksum(&h[..24]), state);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(state);
    out
}

fn decode_model<'a>(bytes: &'a [u8], path: &Path) -> Result<(u64, &'a [u8])> {
    let bad = |what: &str| Error::invalid(format!("{}: {what}", path.display()));
    let h = bytes
        .get(..MODEL_HEADER_LEN)
        .ok_or_else(|| bad("model file shorter than its header"))?;
    if &h[..4] != MODEL_MAGIC {
        return Err(bad("not a read model file"));
    }
    let mut u = [0u8; 8];
    u[..4].copy_from_slice(&h[4..8]);
    if u32::from_le_bytes([u[0], u[1], u[2], u[3]]) != MODEL_VERSION {
        return Err(bad("read model file of an unknown version"));
    }
    u.copy_from_slice(&h[8..16]);
    let next_seq = u64::from_le_bytes(u);
    u.copy_from_slice(&h[16..24]);
    let len = usize::try_from(u64::from_le_bytes(u)).map_err(|_| bad("state too large"))?;
    let state = bytes
        .get(MODEL_HEADER_LEN..)
        .filter(|s| s.len() == len)
        .ok_or_else(|| bad("state cut short"))?;
    let stored = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
    if stored != checksum_append(checksum(&h[..24]), state) {
        return Err(bad("checksum mismatch"));
    }
    Ok((next_seq, state))
}

fn postcard_error(what: &str, e: postcard::Error) -> Error {
    Error::invalid(format!("restoring {what}: {e}"))
}

/// Read model: live items per writer.
#[derive(Debug, Default)]
pub struct ItemsPerWriter {
    counts: HashMap<u32, u64>,
    /// Who wrote each live item (a removal names the remover, not the writer).
    owner: HashMap<Uuid, u32>,
}

impl ItemsPerWriter {
    /// Live items written by `writer_id`.
    pub fn count(&self, writer_id: u32) -> u64 {
        self.counts.get(&writer_id).copied().unwrap_or(0)
    }

    /// Every writer with live items, and how many.
    pub fn counts(&self) -> &HashMap<u32, u64> {
        &self.counts
    }
}

impl Projection for ItemsPerWriter {
    fn apply(&mut self, ev: &StoredEvent) {
        match ev.event() {
            Event::DataWritten {
                writer_id, item_id, ..
            } => {
                self.owner.insert(*item_id, *writer_id);
                *self.counts.entry(*writer_id).or_default() += 1;
            }
            Event::DataRemoved { item_id, .. } => {
                if let Some(w) = self.owner.remove(item_id)
                    && let Some(c) = self.counts.get_mut(&w)
                {
                    *c -= 1;
                    if *c == 0 {
                        self.counts.remove(&w);
                    }
                }
            }
        }
    }

    fn save(&self) -> Vec<u8> {
        let owners: Vec<([u8; 16], u32)> = self
            .owner
            .iter()
            .map(|(id, w)| (*id.as_bytes(), *w))
            .collect();
        postcard::to_allocvec(&owners).unwrap_or_default()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let owners: Vec<([u8; 16], u32)> =
            postcard::from_bytes(bytes).map_err(|e| postcard_error("ItemsPerWriter", e))?;
        self.owner.clear();
        self.counts.clear();
        for (id, w) in owners {
            self.owner.insert(Uuid::from_bytes(id), w);
            *self.counts.entry(w).or_default() += 1;
        }
        Ok(())
    }
}

/// One change, as [`RecentChanges`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The event's sequence number.
    pub seq: u64,
    /// Its timestamp (ns since the Unix epoch).
    pub timestamp_ns: u64,
    /// Who made it.
    pub writer_id: u32,
    /// The item.
    pub item_id: [u8; 16],
    /// True for a removal, false for a write.
    pub removed: bool,
}

/// Read model: the last N changes, newest last.
#[derive(Debug)]
pub struct RecentChanges {
    keep: usize,
    changes: VecDeque<Change>,
}

impl RecentChanges {
    /// Keeps the last `keep` changes.
    pub fn new(keep: usize) -> RecentChanges {
        RecentChanges {
            keep: keep.max(1),
            changes: VecDeque::new(),
        }
    }

    /// The changes kept, oldest first.
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter()
    }
}

impl Projection for RecentChanges {
    fn apply(&mut self, ev: &StoredEvent) {
        if self.changes.len() == self.keep {
            self.changes.pop_front();
        }
        self.changes.push_back(Change {
            seq: ev.seq(),
            timestamp_ns: ev.timestamp_ns(),
            writer_id: ev.writer_id(),
            item_id: *ev.item_id().as_bytes(),
            removed: matches!(ev.event(), Event::DataRemoved { .. }),
        });
    }

    fn save(&self) -> Vec<u8> {
        postcard::to_allocvec(&self.changes).unwrap_or_default()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let mut changes: VecDeque<Change> =
            postcard::from_bytes(bytes).map_err(|e| postcard_error("RecentChanges", e))?;
        while changes.len() > self.keep {
            changes.pop_front();
        }
        self.changes = changes;
        Ok(())
    }
}
