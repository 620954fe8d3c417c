//! The event store's read replica ([`EventStoreReplica`]): the state, time travel and read
//! models of an event store that another process owns and writes, served read-only.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use super::projection::{Projection, ReadModel};
use super::state::State;
use super::store::{Cached, Events, FOLD_MIN, SnapshotsRead, Until, fresh_view, replay, view};
use super::{Consistency, StateView};
use crate::error::{Error, Result};
use crate::replica::{FIRST_NAP, LogReplica, MAX_NAP, ReplicaReader};
use crate::storage::fs as sfs;
use crate::sync::{Stopper, lock};

/// How often the background thread catches up by default.
const REFRESH_EVERY: Duration = Duration::from_millis(50);
/// How many times a catch-up starts again from a newer snapshot when compaction deleted the
/// events it needed next.
const RELOADS: usize = 4;

/// A read replica of an [`EventStore`](super::EventStore) that another process owns: the
/// live state, time travel and read models, served from the store's directory read-only
/// while the owner writes. Any number of replicas, in any number of processes, can follow
/// one store.
///
/// A replica reads the log through a [`LogReplica`]: no lock, no recovery, nothing written,
/// committed events only. It starts from the newest snapshot and follows the events after
/// it. A background thread catches up every `refresh_every` (50 ms by default), so that
/// `Eventual` reads never touch the log; `Strong` reads and [`EventStoreReplica::wait_for`]
/// catch up first. When the owner compacts events away before the replica has applied them
/// (it was behind), the replica starts again from the newest snapshot, which covers them.
/// When the owner crashes, the replica keeps what it has and goes on with the new owner's
/// events once the log is opened again.
///
/// Every answer is a [`StateView`] that says which version it reflects; a replica's state at
/// version `v` is the owner's state at version `v`.
///
/// ```
/// use std::time::Duration;
/// use mmlog::events::{Consistency, EventStore, EventStoreReplica};
/// # fn main() -> Result<(), mmlog::Error> {
/// # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
/// // The owner: usually another process.
/// let store = EventStore::open(dir.path(), mmlog::Options::default())?;
/// let (seq, item) = store.write(7, "hello")?;
///
/// let replica = EventStoreReplica::open(dir.path())?; // no lock, nothing written
/// let state = replica.wait_for(seq, Duration::from_secs(10))?.expect("caught up");
/// assert_eq!(state.data(&item), Some("hello"));
/// store.remove(7, item)?;
/// assert_eq!(replica.read(Consistency::Strong)?.data(&item), None);
/// assert_eq!(replica.state_at_seq(seq)?.data(&item), Some("hello")); // time travel
/// # Ok(()) }
/// ```
pub struct EventStoreReplica {
    inner: Arc<Inner>,
    refresher: Option<JoinHandle<()>>,
}

struct Inner {
    log: LogReplica,
    refresh_every: Duration,
    cache: ArcSwap<Cached>,
    /// The reader that feeds the cache, at the event after the cached version; `None` after
    /// an error, to be opened again there. Its lock serializes catching up.
    follow: Mutex<Option<ReplicaReader>>,
    /// The snapshots time travel read last.
    snapshots_read: SnapshotsRead,
    stopper: Stopper,
    background_error: Mutex<Option<String>>,
}

impl EventStoreReplica {
    /// Opens the event store in `dir` read-only, catching up every 50 ms in the background.
    /// The state is loaded from the newest snapshot and the events after it.
    ///
    /// Fails with [`Error::NotALog`] when `dir` holds no log, and with
    /// [`Error::BadEvent`] or [`Error::UnknownEvent`] when its records are not events this
    /// release reads.
    pub fn open(dir: impl AsRef<Path>) -> Result<EventStoreReplica> {
        EventStoreReplica::open_with(dir, REFRESH_EVERY)
    }

    /// [`EventStoreReplica::open`], catching up every `refresh_every` in the background.
    pub fn open_with(dir: impl AsRef<Path>, refresh_every: Duration) -> Result<EventStoreReplica> {
        if refresh_every.is_zero() {
            return Err(Error::invalid("refresh_every must be more than zero"));
        }
        let log = LogReplica::open(dir)?;
        let (cp, reader) = log.read_from_checkpoint()?;
        let (state, last_ts) = match cp {
            Some(cp) => {
                let ts = cp.info().timestamp_ns;
                (State::from_snapshot(cp)?, ts)
            }
            None => (State::default(), 0),
        };
        let inner = Arc::new(Inner {
            log,
            refresh_every,
            cache: ArcSwap::from_pointee(Cached {
                state: Arc::new(state),
                refreshed: Instant::now(),
                last_ts,
            }),
            follow: Mutex::new(Some(reader)),
            snapshots_read: SnapshotsRead::default(),
            stopper: Stopper::default(),
            background_error: Mutex::new(None),
        });
        inner.catch_up(Instant::now())?;
        let bg = Arc::clone(&inner);
        let refresher = std::thread::Builder::new()
            .name("mmlog-replica".into())
            .spawn(move || bg.background())
            .map_err(|e| Error::io("spawn replica refresher", inner.log.path(), e))?;
        Ok(EventStoreReplica {
            inner,
            refresher: Some(refresher),
        })
    }

    /// The current state, as fresh as `consistency` asks: `Strong` catches up with every
    /// event the owner has committed (up to the first one still being written), `Eventual`
    /// serves what the background thread last applied, `BoundedStaleness(d)` catches up only
    /// if that is older than `d`.
    pub fn read(&self, consistency: Consistency) -> Result<StateView> {
        let asked = Instant::now();
        let cached = self.inner.cache.load();
        match consistency {
            Consistency::Eventual => Ok(view(&cached)),
            Consistency::BoundedStaleness(max) if cached.refreshed.elapsed() <= max => {
                Ok(view(&cached))
            }
            Consistency::BoundedStaleness(_) | Consistency::Strong => {
                drop(cached);
                self.inner.catch_up(asked)
            }
        }
    }

    /// Catches up until the state includes event `seq`, for up to `timeout`: the state then,
    /// or `None` if the owner had not committed `seq` in time.
    pub fn wait_for(&self, seq: u64, timeout: Duration) -> Result<Option<StateView>> {
        let deadline = Instant::now().checked_add(timeout);
        let mut nap = FIRST_NAP;
        loop {
            let now = self.inner.catch_up(Instant::now())?;
            if now.version().is_some_and(|v| v >= seq) {
                return Ok(Some(now));
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => nap,
            };
            if left.is_zero() {
                return Ok(None);
            }
            std::thread::sleep(nap.min(left));
            nap = (nap * 2).min(MAX_NAP);
        }
    }

    /// The state as of sequence number `seq` (every event up to and including it, of those
    /// committed), from the nearest snapshot at or before it plus the events after that.
    pub fn state_at_seq(&self, seq: u64) -> Result<StateView> {
        let cached = self.inner.cache.load_full();
        let base = match cached.state.version() {
            Some(v) if v <= seq => State::clone(&cached.state),
            _ => self
                .inner
                .snapshots_read
                .state(self.inner.log.checkpoint_at_or_before(seq)?)?,
        };
        self.inner.replay(base, Until::Seq(seq))
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
        self.inner.replay(base, Until::Time(ts))
    }

    /// The events from `seq` on, in order, up to the last one committed when the iterator
    /// reaches it. Fails when they were compacted away.
    pub fn events_from(&self, seq: u64) -> Result<Events> {
        Ok(Events::of(self.inner.log.read_from(seq)?))
    }

    /// Starts read model `name`, fed from the replica's events by its own thread, in memory:
    /// nothing is saved and no consumer is registered (a replica writes nothing). It starts
    /// from the owner's saved copy of the model of that name (`projections/<name>.model`,
    /// see [`EventStore::subscribe`](super::EventStore::subscribe)) when there is one, else
    /// from the first event with `model` as given.
    ///
    /// Fails when the events it would start from were compacted away. Compaction by the
    /// owner does not wait for a replica's model: one that falls that far behind stops, with
    /// the reason in [`ReadModel::error`].
    pub fn subscribe<P: Projection>(&self, name: &str, model: P) -> Result<ReadModel<P>> {
        ReadModel::start_on_replica(&self.inner.log, name, model)
    }

    /// The log underneath, read-only (checkpoints, readers).
    pub fn log(&self) -> &LogReplica {
        &self.inner.log
    }

    /// The error of the background thread's last catch-up, if it failed.
    pub fn background_error(&self) -> Option<String> {
        lock(&self.inner.background_error).clone()
    }

    /// Stops the background thread.
    pub fn close(mut self) -> Result<()> {
        self.shutdown();
        Ok(())
    }

    fn shutdown(&mut self) {
        self.inner.stopper.stop_and_join(&mut self.refresher);
    }
}

impl Drop for EventStoreReplica {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for EventStoreReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStoreReplica")
            .field("log", &self.inner.log)
            .field("version", &self.inner.cache.load().state.version())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Applies every event the owner has committed since the cached version and publishes
    /// the result, unless a catch-up that started after `asked` already did (readers that
    /// waited for one share it).
    fn catch_up(&self, asked: Instant) -> Result<StateView> {
        let mut follow = lock(&self.follow);
        let cached = self.cache.load_full();
        if cached.refreshed >= asked {
            return Ok(view(&cached));
        }
        match self.advance(&mut follow, &cached) {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                self.cache.store(Arc::clone(&fresh));
                Ok(view(&fresh))
            }
            Err(e) => {
                // The reader may be past events the cache does not have: the next catch-up
                // opens one again after the cached version.
                *follow = None;
                Err(e)
            }
        }
    }

    /// The cached state with the events committed since applied.
    fn advance(&self, follow: &mut Option<ReplicaReader>, cached: &Cached) -> Result<Cached> {
        // What is committed when the polling starts is in the state: its age counts from
        // here.
        let started = Instant::now();
        let mut state = State::clone(&cached.state);
        let mut last_ts = cached.last_ts;
        let mut reloads = 0;
        loop {
            let reader = match follow {
                Some(reader) => reader,
                None => {
                    let from = state.version().map_or(0, |v| v.saturating_add(1));
                    follow.insert(self.log.follow_from(from)?)
                }
            };
            match replay(reader, State::clone(&state), Until::End) {
                Ok((applied, ts)) => {
                    state = applied;
                    last_ts = ts.unwrap_or(last_ts);
                    // Abandoned reservations (padding) are not events but still count as
                    // applied, as in the owner's store.
                    if let Some(last) = reader.next_seq().checked_sub(1) {
                        state.advance_to(last);
                    }
                    break;
                }
                Err(e) if reader.fell_behind() && reloads < RELOADS => {
                    // The events after `state` were compacted away while this replica was
                    // behind: the newest snapshot covers them.
                    reloads += 1;
                    *follow = None;
                    match self.log.latest_checkpoint()? {
                        Some(cp) if state.version().is_none_or(|v| cp.seq() > v) => {
                            last_ts = cp.info().timestamp_ns;
                            state = State::from_snapshot(cp)?;
                        }
                        _ => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if state.unfolded() > FOLD_MIN.max(state.len() / 8) {
            state = state.fold()?;
        }
        Ok(Cached {
            state: Arc::new(state),
            refreshed: started,
            last_ts,
        })
    }

    /// `base` with the events after it up to `until` applied, read by a reader of its own.
    fn replay(&self, base: State, until: Until) -> Result<StateView> {
        let from = base.version().map_or(0, |v| v.saturating_add(1));
        let mut reader = self.log.read_from(from)?;
        let (state, _) = replay(&mut reader, base, until)?;
        Ok(fresh_view(state))
    }

    /// The background thread: catches up every `refresh_every`.
    fn background(&self) {
        loop {
            if !self.stopper.pause(self.refresh_every) {
                return;
            }
            let outcome = self.catch_up(Instant::now()).map(drop);
            *lock(&self.background_error) = outcome.err().map(|e| e.to_string());
        }
    }
}

/// The replica is shared between threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EventStoreReplica>();
};
