//! The event store: writers append events to the log; readers serve the state the events
//! build from a cache shared through an atomic pointer swap.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use uuid::Uuid;

use super::event::{self, Event, EventRef, StoredEvent};
use super::liveness::{Claim, Liveness};
use super::projection::{Projection, ReadModel};
use super::state::{Item, State};
use super::table::TableBuilder;
use crate::error::{Error, Result};
use crate::log::{Checkpoint, Log, Records};
use crate::options::Options;
use crate::storage::fs as sfs;
use crate::sync::{Stopper, lock};

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Catch up with every event committed before the read.
    Strong,
    /// Serve the cache as it is; a background thread refreshes it (see
    /// [`EventStoreOptions::refresh_every`]). Never touches the log.
    Eventual,
    /// Serve the cache if it was refreshed less than this long ago, else catch up.
    BoundedStaleness(Duration),
}

/// Settings of the event store layer (the log's own are [`Options`]).
///
/// Snapshots are the log's checkpoints, so the log keeps only the newest
/// [`Options::keep_checkpoints`] of them (3 by default): time travel to a point before the
/// oldest one kept replays from the first event. Keep more for faster time travel into the
/// past, at the disk cost of a snapshot each.
#[derive(Clone, Debug)]
pub struct EventStoreOptions {
    /// Snapshot after this many events since the last snapshot (default 10,000; 0: never).
    pub snapshot_every_events: u64,
    /// Snapshot when this long has passed since the last one and events arrived (default
    /// 60 s; `None`: never).
    pub snapshot_every: Option<Duration>,
    /// How often the background thread refreshes the cache for `Eventual` readers and takes
    /// due snapshots (default 50 ms).
    pub refresh_every: Duration,
}

impl Default for EventStoreOptions {
    fn default() -> Self {
        EventStoreOptions {
            snapshot_every_events: 10_000,
            snapshot_every: Some(Duration::from_secs(60)),
            refresh_every: Duration::from_millis(50),
        }
    }
}

/// The state as one read saw it: which version it reflects and how old it is.
#[derive(Clone, Debug)]
pub struct StateView {
    pub(super) state: Arc<State>,
    pub(super) refreshed: Instant,
}

impl StateView {
    /// The last sequence number the state reflects (`None`: no event).
    pub fn version(&self) -> Option<u64> {
        self.state.version()
    }

    /// The data of item `id`, if live.
    pub fn data(&self, id: &Uuid) -> Option<&str> {
        self.state.data(id)
    }

    /// Live items.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// True when no item is live.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// How long ago this state was brought up to date with the log.
    pub fn age(&self) -> Duration {
        self.refreshed.elapsed()
    }

    /// The whole state.
    pub fn state(&self) -> &State {
        &self.state
    }
}

impl std::ops::Deref for StateView {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

/// The cached state and when it was last brought up to date.
pub(super) struct Cached {
    pub(super) state: Arc<State>,
    pub(super) refreshed: Instant,
    /// Timestamp of the last event applied (from the snapshot's header when none was applied
    /// since it; 0 for an empty store).
    pub(super) last_ts: u64,
}

struct Inner {
    log: Arc<Log>,
    options: EventStoreOptions,
    cache: ArcSwap<Cached>,
    /// The items this store's appends touched that the cache may not cover yet.
    liveness: Liveness,
    /// Serializes catching up (readers that find the cache fresh never take it).
    catch_up: Mutex<()>,
    /// The snapshots time travel read last.
    snapshots_read: SnapshotsRead,
    /// Version of the last snapshot, and when it was taken.
    last_snapshot: Mutex<(Option<u64>, Instant)>,
    snapshots_taken: AtomicU64,
    stopper: Stopper,
    background_error: Mutex<Option<String>>,
}

/// An event-sourced store of items: writers append [`Event`]s without waiting for a lock,
/// and readers rebuild the state from them (with snapshots, caching and time travel).
///
/// ```
/// use mmlog::events::{Consistency, EventStore};
/// # fn main() -> Result<(), mmlog::Error> {
/// # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
/// let store = EventStore::open(dir.path(), mmlog::Options::default())?;
/// let (seq, item) = store.write(7, "hello")?;
/// let state = store.read(Consistency::Strong)?;
/// assert_eq!((state.version(), state.data(&item)), (Some(seq), Some("hello")));
/// store.remove(7, item)?;
/// assert_eq!(store.read(Consistency::Strong)?.data(&item), None);
/// assert_eq!(store.state_at_seq(seq)?.data(&item), Some("hello")); // time travel
/// # Ok(()) }
/// ```
pub struct EventStore {
    inner: Arc<Inner>,
    refresher: Option<JoinHandle<()>>,
}

impl EventStore {
    /// Opens (or creates) the event store in `dir` with default [`EventStoreOptions`].
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<EventStore> {
        EventStore::open_with(dir, options, EventStoreOptions::default())
    }

    /// Opens (or creates) the event store in `dir`. The state is rebuilt from the latest
    /// snapshot and the events after it.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: Options,
        store_options: EventStoreOptions,
    ) -> Result<EventStore> {
        if store_options.refresh_every.is_zero() {
            return Err(Error::invalid("refresh_every must be more than zero"));
        }
        let log = Arc::new(Log::open(dir, options)?);
        let (state, snapshot, last_ts) = load_latest(&log)?;
        let inner = Arc::new(Inner {
            log,
            options: store_options,
            cache: ArcSwap::from_pointee(Cached {
                state: Arc::new(state),
                refreshed: Instant::now(),
                last_ts,
            }),
            snapshots_read: SnapshotsRead::default(),
            liveness: Liveness::default(),
            catch_up: Mutex::new(()),
            last_snapshot: Mutex::new((snapshot, Instant::now())),
            snapshots_taken: AtomicU64::new(0),
            stopper: Stopper::default(),
            background_error: Mutex::new(None),
        });
        inner.catch_up(Need::Refresh)?;
        let bg = Arc::clone(&inner);
        let refresher = std::thread::Builder::new()
            .name("mmlog-events".into())
            .spawn(move || bg.background())
            .map_err(|e| Error::io("spawn event refresher", inner.log.path(), e))?;
        Ok(EventStore {
            inner,
            refresher: Some(refresher),
        })
    }

    /// Appends `event`; returns its sequence number. Never waits for a lock; with
    /// `Durability::Immediate` it returns once the event is durable.
    pub fn append(&self, event: &Event) -> Result<u64> {
        let seq = self.inner.log.append(&event::encode(event)?)?;
        match event {
            Event::DataWritten { item_id, .. } => self.inner.liveness.appended(*item_id, true, seq),
            Event::DataRemoved { item_id, .. } => {
                self.inner.liveness.appended(*item_id, false, seq)
            }
        }
        Ok(seq)
    }

    /// Writes `data` as a new item (a DataWritten event); returns its sequence number and the
    /// item's new id.
    pub fn write(&self, writer_id: u32, data: impl AsRef<str>) -> Result<(u64, Uuid)> {
        let item_id = Uuid::new_v4();
        let seq =
            self.inner
                .log
                .append(&event::encode_written(writer_id, item_id, data.as_ref())?)?;
        self.inner.liveness.written_hint(item_id, seq);
        Ok((seq, item_id))
    }

    /// Removes item `item_id` (a DataRemoved event); returns the event's sequence number.
    /// Fails with [`Error::NoSuchItem`] if the item is not live as of every event committed
    /// before the call, or if another removal of it won the race: of two writers removing
    /// the same item at once, exactly one succeeds. It rarely waits for the cached state to
    /// catch up: the store records the items its own appends touch, and only an item it has
    /// no record of and the cache does not have yet costs a strong read. (Events appended
    /// with `store.log().append` directly bypass that record.)
    pub fn remove(&self, writer_id: u32, item_id: Uuid) -> Result<u64> {
        let inner = &self.inner;
        let live_in_cache = || inner.cache.load().state.get(&item_id).is_some();
        let before = match inner.liveness.claim_removal(item_id, live_in_cache) {
            Claim::Claimed(before) => before,
            Claim::Removed => return Err(Error::NoSuchItem { item_id }),
            Claim::NotFound => {
                // Perhaps newer than the cache: ask a state that has every event committed.
                let now = self.read(Consistency::Strong)?;
                match inner
                    .liveness
                    .claim_removal(item_id, || now.get(&item_id).is_some())
                {
                    Claim::Claimed(before) => before,
                    Claim::Removed | Claim::NotFound => {
                        return Err(Error::NoSuchItem { item_id });
                    }
                }
            }
        };
        let appended = event::encode(&Event::DataRemoved { writer_id, item_id })
            .and_then(|bytes| inner.log.append(&bytes));
        inner
            .liveness
            .settle_removal(item_id, before, appended.as_ref().ok().copied());
        appended
    }

    /// The sequence number of the last committed event (`None`: none yet).
    pub fn latest_sequence(&self) -> Option<u64> {
        self.inner.log.last_seq()
    }

    /// The events from `seq` on, in order, up to the last one committed when the iterator
    /// reaches it.
    pub fn events_from(&self, seq: u64) -> Result<Events> {
        Ok(Events::of(self.inner.log.read_from(seq)?))
    }

    /// The current state, as fresh as `consistency` asks.
    pub fn read(&self, consistency: Consistency) -> Result<StateView> {
        let need = match consistency {
            Consistency::Eventual => None,
            Consistency::BoundedStaleness(max) => Some(Need::YoungerThan(max)),
            // Every event whose append returned before this point, even if an append
            // started earlier by another writer is still in flight.
            Consistency::Strong => {
                let asked = Instant::now();
                let upto = self.inner.log.last_seq_settled()?;
                Some(Need::Covers { upto, asked })
            }
        };
        let cached = self.inner.cache.load();
        match need {
            Some(need) if !need.met_by(&cached) => {
                drop(cached);
                self.inner.catch_up(need)
            }
            Some(need) => Ok(need.view(&cached)),
            None => Ok(view(&cached)),
        }
    }

    /// The state as of sequence number `seq` (every event up to and including it), from the
    /// nearest snapshot at or before it plus the events after that.
    pub fn state_at_seq(&self, seq: u64) -> Result<StateView> {
        let cached = self.inner.cache.load_full();
        let base = match cached.state.version() {
            // The cached state is at or before the point: replay forward from it.
            Some(v) if v <= seq => State::clone(&cached.state),
            _ => self
                .inner
                .snapshots_read
                .state(self.inner.log.checkpoint_at_or_before(seq)?)?,
        };
        let (state, _) = self.inner.replay(base, Until::Seq(seq))?;
        Ok(fresh_view(state))
    }

    /// The state as of `time`: every event up to the first one stamped after `time`, from
    /// the nearest snapshot at or before it plus the events after that.
    pub fn state_at_time(&self, time: SystemTime) -> Result<StateView> {
        let ts = sfs::time_ns(time);
        let cached = self.inner.cache.load_full();
        let base = match cached.state.version() {
            Some(_) if cached.last_ts <= ts => State::clone(&cached.state),
            _ => self
                .inner
                .snapshots_read
                .state(self.inner.log.checkpoint_at_or_before_time(time)?)?,
        };
        let (state, _) = self.inner.replay(base, Until::Time(ts))?;
        Ok(fresh_view(state))
    }

    /// The history of item `item_id` that the log holds: its DataWritten and any DataRemoved
    /// events, in order (empty for an id never written). Scans from the item's DataWritten
    /// when the item is live, from the first record the log holds otherwise.
    pub fn history(&self, item_id: Uuid) -> Result<Vec<StoredEvent>> {
        let live = self.read(Consistency::Strong)?;
        let from = live
            .get(&item_id)
            .map_or_else(|| self.first_readable_seq(), |i| i.seq);
        let mut out = Vec::new();
        for ev in self.events_from(from)? {
            let ev = ev?;
            if ev.item_id() == item_id {
                out.push(ev);
            }
        }
        Ok(out)
    }

    /// Every event stamped from `from` to `to` (inclusive), in sequence order: who changed
    /// what in that window.
    pub fn changes_between(&self, from: SystemTime, to: SystemTime) -> Result<Vec<StoredEvent>> {
        let to_ns = sfs::time_ns(to);
        let mut reader = self.inner.log.read_from_time(from)?;
        let mut out = Vec::new();
        while let Some(rec) = reader.next() {
            let rec = rec?;
            if rec.timestamp_ns() > to_ns {
                break;
            }
            out.push(event::decode(rec.seq(), rec.timestamp_ns(), rec.payload())?);
        }
        Ok(out)
    }

    /// The first sequence number a reader can start at: 0 when the archive holds the start,
    /// else the live log's first.
    fn first_readable_seq(&self) -> u64 {
        let first_live = self.inner.log.stats().first_seq;
        match self.inner.log.archived_segments() {
            Ok((archived, _)) => archived.first().map_or(first_live, |a| a.base_seq),
            Err(_) => first_live,
        }
    }

    /// Writes a snapshot of the current state now (catching up first); returns its version.
    pub fn snapshot(&self) -> Result<Option<u64>> {
        self.inner.snapshot_now()
    }

    /// Snapshots written since open.
    pub fn snapshots_taken(&self) -> u64 {
        self.inner.snapshots_taken.load(Ordering::Relaxed)
    }

    /// The error of the background thread's last refresh or snapshot, if it failed.
    pub fn background_error(&self) -> Option<String> {
        lock(&self.inner.background_error).clone()
    }

    /// Starts read model `name`, fed asynchronously from the events by its own thread. A
    /// model saved under that name before resumes from its saved state and position;
    /// otherwise `model` starts from the first event. Compaction keeps every event a model
    /// has not applied yet (its position is a log consumer, `model.<name>`).
    pub fn subscribe<P: Projection>(&self, name: &str, model: P) -> Result<ReadModel<P>> {
        ReadModel::start(Arc::clone(&self.inner.log), name, model)
    }

    /// The log underneath (for compaction, checkpoints, stats).
    pub fn log(&self) -> &Log {
        &self.inner.log
    }

    /// Stops the background thread and closes the log, reporting a failure to make it
    /// durable (as [`Log::close`]). While a read model started from this store still runs,
    /// the log stays open for it and closes when the last one stops (unreported, as a drop).
    pub fn close(mut self) -> Result<()> {
        self.shutdown();
        let inner = Arc::clone(&self.inner);
        drop(self);
        match Arc::into_inner(inner).and_then(|inner| Arc::into_inner(inner.log)) {
            Some(log) => log.close(),
            None => Ok(()),
        }
    }

    fn shutdown(&mut self) {
        self.inner.stopper.stop_and_join(&mut self.refresher);
    }
}

impl Drop for EventStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("log", &self.inner.log)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Applies every event committed since the cached version and publishes the result,
    /// unless a catch-up that ran while this one waited for its turn already met `need`:
    /// concurrent readers share one catch-up instead of queueing for one each.
    fn catch_up(&self, need: Need) -> Result<StateView> {
        let _one = lock(&self.catch_up);
        let cached = self.cache.load_full();
        if need.met_by(&cached) {
            return Ok(need.view(&cached));
        }
        // Every event whose append returned before this point is included, even if an
        // append started earlier by another writer was still in flight.
        let target = self.log.last_seq_settled()?;
        let from = cached.state.version().map_or(0, |v| v + 1);
        let Some(end) = target.filter(|&t| t >= from) else {
            let fresh = Arc::new(Cached {
                state: Arc::clone(&cached.state),
                refreshed: Instant::now(),
                last_ts: cached.last_ts,
            });
            self.cache.store(Arc::clone(&fresh));
            return Ok(view(&fresh));
        };
        let (mut state, last_ts) = self.replay(State::clone(&cached.state), Until::Seq(end))?;
        // Abandoned reservations (padding) are not events but still count as applied.
        state.advance_to(end);
        let fresh = Arc::new(Cached {
            state: Arc::new(state),
            refreshed: Instant::now(),
            last_ts: last_ts.unwrap_or(cached.last_ts),
        });
        self.cache.store(Arc::clone(&fresh));
        // Published first: whoever no longer finds an item here finds it in the cache.
        self.liveness.forget_up_to(end);
        Ok(view(&fresh))
    }

    /// Applies the events after `state`'s version up to `until` (see [`replay`]).
    fn replay(&self, state: State, until: Until) -> Result<(State, Option<u64>)> {
        let from = state.version().map_or(0, |v| v + 1);
        replay(&mut self.log.read_from(from)?, state, until)
    }

    /// Publishes `folded`, the cached state of some moment as one table, in place of the
    /// cached state, with the events the cache applied since replayed on top.
    fn install(&self, folded: State) -> Result<()> {
        let _one = lock(&self.catch_up);
        let cached = self.cache.load_full();
        let state = match (folded.version(), cached.state.version()) {
            (f, c) if f == c => folded,
            (Some(f), Some(c)) if f < c => {
                let (mut state, _) = self.replay(folded, Until::Seq(c))?;
                state.advance_to(c);
                state
            }
            // The cache cannot be older than a state taken from it.
            _ => return Ok(()),
        };
        self.cache.store(Arc::new(Cached {
            state: Arc::new(state),
            refreshed: cached.refreshed,
            last_ts: cached.last_ts,
        }));
        Ok(())
    }

    fn snapshot_now(&self) -> Result<Option<u64>> {
        let view = self.catch_up(Need::Refresh)?;
        let Some(version) = view.version() else {
            return Ok(None);
        };
        let folded = view.state.fold()?;
        let blob = folded
            .snapshot_bytes()
            .ok_or_else(|| Error::invalid("a folded state is one table"))?;
        self.log.checkpoint(version, blob)?;
        *lock(&self.last_snapshot) = (Some(version), Instant::now());
        self.snapshots_taken.fetch_add(1, Ordering::Relaxed);
        self.install(folded)?;
        Ok(Some(version))
    }

    fn snapshot_due(&self) -> bool {
        let latest = self.log.last_seq();
        let (last, at) = *lock(&self.last_snapshot);
        let since = match (latest, last) {
            (None, _) => return false,
            (Some(l), None) => l + 1,
            (Some(l), Some(s)) => l.saturating_sub(s),
        };
        if since == 0 {
            return false;
        }
        let by_count =
            self.options.snapshot_every_events > 0 && since >= self.options.snapshot_every_events;
        let by_time = self
            .options
            .snapshot_every
            .is_some_and(|t| at.elapsed() >= t);
        by_count || by_time
    }

    /// Folds the cached state into one table when enough events piled up on its base that
    /// lookups and copies pay for it (each fold costs O(items), so at most one per
    /// `len / 8` events).
    fn fold_if_due(&self, state: &State) -> Result<()> {
        if state.unfolded() <= FOLD_MIN.max(state.len() / 8) {
            return Ok(());
        }
        self.install(state.fold()?)
    }

    /// The background thread: refreshes the cache and takes due snapshots.
    fn background(&self) {
        loop {
            if !self.stopper.pause(self.options.refresh_every) {
                return;
            }
            let outcome = if self.snapshot_due() {
                self.snapshot_now().map(drop)
            } else {
                self.catch_up(Need::Refresh)
                    .and_then(|view| self.fold_if_due(&view.state))
            };
            *lock(&self.background_error) = outcome.err().map(|e| e.to_string());
        }
    }
}

/// Applies the events `reader` returns, which must start right after `state`'s version, up
/// to `until`; returns the new state and the timestamp of the last event applied. A state
/// that is one table (a snapshot, a fold or nothing) takes a long run of events in one pass,
/// as a delta table built at its final size; otherwise each event goes into the persistent
/// map.
pub(super) fn replay(
    reader: &mut impl Records,
    mut state: State,
    until: Until,
) -> Result<(State, Option<u64>)> {
    let from = state.version().map_or(0, |v| v + 1);
    let wanted = |seq: u64, ts: u64| match until {
        Until::Seq(end) => seq <= end,
        Until::Time(t) => ts <= t,
        Until::End => true,
    };
    let in_one_pass = state.is_one_table()
        && match until {
            Until::Seq(end) => end.saturating_sub(from) >= ONE_PASS_MIN,
            Until::Time(_) | Until::End => true,
        };
    let last = if in_one_pass {
        // Room for every event up to a known end (records are dense), bounded so that a
        // huge range costs no more than growing would.
        let expected = match until {
            Until::Seq(end) => end.saturating_sub(from).saturating_add(1).min(1 << 24),
            Until::Time(_) | Until::End => 0,
        };
        let mut delta = TableBuilder::with_capacity(expected as usize, 0);
        let last = feed(reader, wanted, |seq, ts, event| match event {
            EventRef::Written {
                writer_id,
                item_id,
                data,
            } => {
                let item = Item {
                    data,
                    writer_id,
                    seq,
                    timestamp_ns: ts,
                };
                delta.push(&item_id, item)
            }
            EventRef::Removed { item_id, .. } => {
                delta.push_removed(&item_id, seq, ts);
                Ok(())
            }
        })?;
        if let Some((seq, _)) = last {
            state = state.with_delta(delta.finish()?, Some(seq));
        }
        last
    } else {
        feed(reader, wanted, |seq, ts, event| {
            state.apply_ref(seq, ts, event);
            Ok(())
        })?
    };
    Ok((state, last.map(|(_, ts)| ts)))
}

/// Feeds `apply` the events `reader` returns while `wanted(seq, timestamp)` holds; returns
/// the sequence number and timestamp of the last one fed.
fn feed(
    reader: &mut impl Records,
    wanted: impl Fn(u64, u64) -> bool,
    mut apply: impl FnMut(u64, u64, EventRef<'_>) -> Result<()>,
) -> Result<Option<(u64, u64)>> {
    let mut last = None;
    while let Some(rec) = reader.next_record() {
        let rec = rec?;
        let (seq, ts) = (rec.seq(), rec.timestamp_ns());
        if !wanted(seq, ts) {
            break;
        }
        apply(seq, ts, event::decode_ref(seq, rec.payload())?)?;
        last = Some((seq, ts));
    }
    Ok(last)
}

/// Where a replay stops.
#[derive(Clone, Copy)]
pub(super) enum Until {
    /// After this sequence number.
    Seq(u64),
    /// Before the first event stamped after this time (ns since the Unix epoch).
    Time(u64),
    /// After the last event committed so far.
    End,
}

/// Replays at least this long go through a delta table (see [`replay`]).
const ONE_PASS_MIN: u64 = 1024;
/// The background thread folds when more events than this (and than an eighth of the
/// items) sit on top of the base table.
pub(super) const FOLD_MIN: usize = 4096;
/// Snapshots that time travel keeps read.
const SNAPSHOTS_KEPT_READ: usize = 4;

/// The snapshots time travel read last, newest use last: the next query from one of them
/// starts from a copy (O(1)) instead of checking its checksum again.
#[derive(Default)]
pub(super) struct SnapshotsRead(Mutex<Vec<State>>);

impl SnapshotsRead {
    /// The state of snapshot `cp` (an empty state without one), read once per snapshot.
    pub(super) fn state(&self, cp: Option<Checkpoint>) -> Result<State> {
        let Some(cp) = cp else {
            return Ok(State::default());
        };
        let mut read = lock(&self.0);
        if let Some(at) = read.iter().position(|s| s.version() == Some(cp.seq())) {
            let state = read.remove(at);
            read.push(state.clone());
            return Ok(state);
        }
        let state = State::from_snapshot(cp)?;
        if read.len() == SNAPSHOTS_KEPT_READ {
            read.remove(0);
        }
        read.push(state.clone());
        Ok(state)
    }
}

pub(super) fn fresh_view(state: State) -> StateView {
    StateView {
        state: Arc::new(state),
        refreshed: Instant::now(),
    }
}

/// What a catch-up must achieve for its caller.
#[derive(Clone, Copy, Debug)]
enum Need {
    /// A state that includes every event up to `upto` (`None`: there is no event): every
    /// event committed at `asked`.
    Covers { upto: Option<u64>, asked: Instant },
    /// A state brought up to date less than this long ago.
    YoungerThan(Duration),
    /// A fresh catch-up, whatever the cache holds.
    Refresh,
}

impl Need {
    fn met_by(self, cached: &Cached) -> bool {
        match self {
            Need::Covers { upto, .. } => {
                upto.is_none_or(|t| cached.state.version().is_some_and(|v| v >= t))
            }
            Need::YoungerThan(max) => cached.refreshed.elapsed() <= max,
            Need::Refresh => false,
        }
    }

    /// The view of a cache that meets the need. A cache that covers every event committed
    /// when the read was asked is as fresh as a catch-up at that moment, whenever it was
    /// last refreshed: its age counts from then.
    fn view(self, cached: &Cached) -> StateView {
        match self {
            Need::Covers { asked, .. } => StateView {
                state: Arc::clone(&cached.state),
                refreshed: asked.max(cached.refreshed),
            },
            Need::YoungerThan(_) | Need::Refresh => view(cached),
        }
    }
}

pub(super) fn view(c: &Cached) -> StateView {
    StateView {
        state: Arc::clone(&c.state),
        refreshed: c.refreshed,
    }
}

/// The latest snapshot's state, version and timestamp, or an empty state.
fn load_latest(log: &Log) -> Result<(State, Option<u64>, u64)> {
    match log.latest_checkpoint()? {
        Some(cp) => {
            let (seq, ts) = (cp.seq(), cp.info().timestamp_ns);
            Ok((State::from_snapshot(cp)?, Some(seq), ts))
        }
        None => Ok((State::default(), None, 0)),
    }
}

/// The events of the store from a starting point, decoded (see [`EventStore::events_from`]
/// and [`EventStoreReplica::events_from`](super::EventStoreReplica::events_from)).
pub struct Events {
    reader: Box<dyn Records + Send>,
}

impl Events {
    /// The events `reader` returns.
    pub(super) fn of(reader: impl Records + Send + 'static) -> Events {
        Events {
            reader: Box::new(reader),
        }
    }
}

impl Iterator for Events {
    type Item = Result<StoredEvent>;

    fn next(&mut self) -> Option<Result<StoredEvent>> {
        let rec = match self.reader.next_record()? {
            Ok(rec) => rec,
            Err(e) => return Some(Err(e)),
        };
        Some(event::decode(rec.seq(), rec.timestamp_ns(), rec.payload()))
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("next_seq", &self.reader.next_seq())
            .finish()
    }
}

/// The store is shared between threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EventStore>();
};
