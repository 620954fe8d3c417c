//! openraft's `RaftStateMachine` for the event store.
//!
//! Layout of a state machine directory:
//!
//! - `events/`: the [`EventStore`]. Every applied [`Request`] is one event. Its checkpoints
//!   are the Raft snapshots (the store takes no snapshots of its own), so a snapshot's data
//!   is exactly an event-store snapshot blob (see `events::table`).
//! - `marks/`: an mmlog log of progress marks.
//! - `installing`: present only while a snapshot received from the leader is being
//!   installed: `b"MRI1"`, the little-endian `u32` length of the postcard-encoded
//!   `SnapshotMeta`, that encoding, then the snapshot's data. An open that finds it finishes
//!   the install (installing is idempotent: it appends the events that turn the store's
//!   state into the snapshot's).
//!
//! # Mark records, version 1
//!
//! One byte of kind, then the postcard encoding (serde) of openraft 0.9 values:
//!
//! | kind | body | meaning |
//! |-----:|------|---------|
//! | 1 | `Option<LogId>`, `StoredMembership`, `u64` | applied through this log id, with this membership; the next event will be this sequence number |
//! | 2 | `SnapshotMeta`, `Option<u64>` | the current snapshot: its metadata, and the event-store checkpoint holding its data (`None`: the empty state) |
//!
//! Replay takes the applied mark and the snapshot with the greatest log ids. A snapshot
//! mark is always followed by an applied mark at least as far, and the marks log is
//! checkpointed just before the snapshot mark, so compaction drops the marks before it.
//!
//! # Applying exactly once
//!
//! A mark is written (after the event store is synced) every [`MARK_EVERY`] entries, with
//! each snapshot and when the state machine is dropped. After a crash openraft applies the
//! entries after the last mark again; the events they produced before the crash are already
//! in the store (a prefix of what applying again produces, since applying is deterministic),
//! so they are checked against the store and skipped instead of appended twice.
//!
//! A request whose event does not fit in an event-store segment
//! ([`Error::RecordTooLarge`](crate::Error::RecordTooLarge)) is refused the same way on every
//! node: no event, and [`Response::refused`] says why.

use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, StorageError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::{
    NodeId, Request, Response, TypeConfig, bad_record, decode_body, encode_record, postcard_bytes,
    storage_error,
};
use crate::events::{Consistency, Event, EventStore, EventStoreOptions, State};
use crate::storage::fs as sfs;
use crate::{Durability, Log, Options};
use openraft::BasicNode;

/// Applied entries between two progress marks.
pub const MARK_EVERY: u64 = 1024;

const APPLIED: u8 = 1;
const SNAPSHOT: u8 = 2;
const INSTALLING: &str = "installing";
const INSTALLING_MAGIC: &[u8; 4] = b"MRI1";

type Membership = StoredMembership<NodeId, BasicNode>;
type Meta = SnapshotMeta<NodeId, BasicNode>;
type SmResult<T> = Result<T, StorageError<NodeId>>;

/// openraft's state machine for the event store: each applied [`Request`] becomes an event
/// of an [`EventStore`], and each snapshot is one of its checkpoints.
///
/// Read the replicated state through [`EventStateMachine::event_store`]; only Raft writes
/// to that store. Cloning is cheap and shares the state machine.
#[derive(Clone)]
pub struct EventStateMachine {
    inner: Arc<Inner>,
}

struct Inner {
    dir: std::path::PathBuf,
    events: Arc<EventStore>,
    marks: Log,
    progress: Mutex<Progress>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
    next_event: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct SnapshotMark {
    meta: Meta,
    event_version: Option<u64>,
}

#[derive(Default)]
struct Progress {
    applied: Applied,
    since_mark: u64,
    snapshot: Option<SnapshotMark>,
}

/// The event a request becomes.
fn event_of(request: Request) -> Event {
    match request {
        Request::Write {
            writer_id,
            item_id,
            data,
        } => Event::DataWritten {
            writer_id,
            item_id,
            data,
        },
        Request::Remove { writer_id, item_id } => Event::DataRemoved { writer_id, item_id },
    }
}

/// The snapshot blob of `state`.
fn blob_of(state: &State) -> crate::Result<Vec<u8>> {
    let folded = state.fold()?;
    folded
        .snapshot_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| crate::Error::invalid("a folded state is one table"))
}

impl EventStateMachine {
    /// Opens (or creates) the state machine in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> crate::Result<EventStateMachine> {
        let dir = dir.as_ref();
        let buffered = Options::default().durability(Durability::Buffered);
        let events = EventStore::open_with(
            dir.join("events"),
            // The current snapshot's, and those of builds that a newer snapshot overtook.
            buffered.clone().keep_checkpoints(4),
            EventStoreOptions {
                snapshot_every_events: 0,
                snapshot_every: None,
                ..EventStoreOptions::default()
            },
        )?;
        let marks = Log::open(dir.join("marks"), buffered)?;
        let mut progress = Progress::default();
        let (_, mut reader) = marks.read_from_checkpoint()?;
        while let Some(record) = reader.next() {
            let record = record?;
            let seq = record.seq();
            match record.payload().split_first() {
                Some((&APPLIED, body)) => {
                    let mark: Applied = decode_body(seq, body)?;
                    if mark.last_applied >= progress.applied.last_applied {
                        progress.applied = mark;
                    }
                }
                Some((&SNAPSHOT, body)) => {
                    let mark: SnapshotMark = decode_body(seq, body)?;
                    let newer = progress
                        .snapshot
                        .as_ref()
                        .is_none_or(|s| s.meta.last_log_id <= mark.meta.last_log_id);
                    if newer {
                        progress.snapshot = Some(mark);
                    }
                }
                _ => return Err(bad_record(seq, "state-machine mark of unknown kind")),
            }
        }
        let in_store = events.latest_sequence().map_or(0, |l| l + 1);
        if in_store < progress.applied.next_event {
            return Err(bad_record(
                in_store,
                format!(
                    "the event store ends before event {}, which a durable mark says was applied",
                    progress.applied.next_event
                ),
            ));
        }
        let inner = Inner {
            dir: dir.to_owned(),
            events: Arc::new(events),
            marks,
            progress: Mutex::new(progress),
        };
        if let Some((meta, blob)) = inner.pending_install()? {
            inner.install(&meta, blob)?;
        }
        Ok(EventStateMachine {
            inner: Arc::new(inner),
        })
    }

    /// The event store that holds the replicated state: read it (state, time travel, read
    /// models), but leave writing to Raft.
    pub fn event_store(&self) -> Arc<EventStore> {
        Arc::clone(&self.inner.events)
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.inner.progress()
    }

    /// Appends `event` as event `next`, or checks that the store already holds it there
    /// (an entry applied again after a crash). Returns its sequence number.
    fn produce(&self, next: u64, event: &Event) -> crate::Result<u64> {
        let events = &self.inner.events;
        let in_store = events.latest_sequence().map_or(0, |l| l + 1);
        if next < in_store {
            let mut held = events.events_from(next)?;
            return match held.next() {
                Some(Ok(stored)) if stored.seq() == next && stored.event() == event => Ok(next),
                Some(Err(e)) => Err(e),
                _ => Err(bad_record(
                    next,
                    "applying an entry again produced a different event than the store holds",
                )),
            };
        }
        events.append(event)
    }
}

impl Inner {
    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the events durable, then notes how far the state machine got.
    fn write_mark(&self, applied: &Applied) -> crate::Result<()> {
        self.events.log().sync()?;
        self.marks.append(&encode_record(APPLIED, applied)?)?;
        Ok(())
    }

    /// Records `snapshot` as the current one, followed by a mark of how far the state
    /// machine got (`installed`: the snapshot's own progress, for an install), and lets
    /// compaction drop the marks before them. A build that a newer snapshot overtook
    /// records nothing. Holds the progress lock throughout, so that no other mark lands
    /// between the two or is compacted away unseen.
    fn record_snapshot(
        &self,
        snapshot: SnapshotMark,
        installed: Option<Applied>,
    ) -> crate::Result<()> {
        let mut progress = self.progress();
        match installed {
            Some(applied) => progress.applied = applied,
            None => {
                let overtaken = progress
                    .snapshot
                    .as_ref()
                    .is_some_and(|s| s.meta.last_log_id > snapshot.meta.last_log_id);
                if overtaken {
                    return Ok(());
                }
            }
        }
        // Every event of the entries applied so far, then the marks that say so.
        self.events.log().sync()?;
        let seq = self.marks.append(&encode_record(SNAPSHOT, &snapshot)?)?;
        self.marks
            .append(&encode_record(APPLIED, &progress.applied)?)?;
        self.marks.sync()?;
        if let Some(before) = seq.checked_sub(1) {
            self.marks.checkpoint(before, b"")?;
            self.marks.compact()?;
        }
        progress.snapshot = Some(snapshot);
        progress.since_mark = 0;
        Ok(())
    }

    /// Saves a received snapshot durably before installing it, so that a crash in the
    /// middle of the install is finished at the next open.
    fn save_pending_install(&self, meta: &Meta, blob: &[u8]) -> crate::Result<()> {
        let meta_bytes = postcard_bytes(meta)?;
        let len = u32::try_from(meta_bytes.len())
            .map_err(|_| crate::Error::invalid("snapshot meta too large"))?;
        let tmp = self.dir.join(format!("{INSTALLING}.tmp"));
        let path = self.dir.join(INSTALLING);
        sfs::write_temporary(
            &tmp,
            &[INSTALLING_MAGIC, &len.to_le_bytes(), &meta_bytes, blob],
            true,
        )?;
        sfs::rename(&tmp, &path).map_err(|e| crate::Error::io("rename", &path, e))?;
        sfs::sync_dir(&self.dir)
    }

    /// The snapshot an install was interrupted in, if any.
    fn pending_install(&self) -> crate::Result<Option<(Meta, Vec<u8>)>> {
        let path = self.dir.join(INSTALLING);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(crate::Error::io("read", &path, e)),
        };
        let damaged = |why: &str| bad_record(0, format!("{}: {why}", path.display()));
        let rest = bytes
            .strip_prefix(INSTALLING_MAGIC.as_slice())
            .ok_or_else(|| damaged("no magic"))?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| damaged("truncated"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(damaged("truncated"));
        }
        let (meta, blob) = rest.split_at(len);
        let meta: Meta = postcard::from_bytes(meta).map_err(|e| damaged(&e.to_string()))?;
        Ok(Some((meta, blob.to_vec())))
    }

    /// Installs snapshot `blob`: appends the events that turn the store's state into the
    /// snapshot's, checkpoints the store there, records the snapshot, and forgets the
    /// pending install. Running it again after a crash appends only what is still missing.
    fn install(&self, meta: &Meta, blob: Vec<u8>) -> crate::Result<()> {
        let target = State::from_snapshot_blob(blob, 0)?;
        let events = &self.events;
        // The store's newest state, including events of entries not applied again yet:
        // the snapshot supersedes them too.
        let current = events.read(Consistency::Strong)?;
        let mut changes = Vec::new();
        for (id, item) in current.state().items() {
            if target.get(&id).is_none() {
                changes.push(Event::DataRemoved {
                    writer_id: item.writer_id,
                    item_id: id,
                });
            }
        }
        for (id, item) in target.items() {
            let same = current
                .state()
                .get(&id)
                .is_some_and(|now| now.data == item.data && now.writer_id == item.writer_id);
            if !same {
                changes.push(Event::DataWritten {
                    writer_id: item.writer_id,
                    item_id: id,
                    data: item.data.to_owned(),
                });
            }
        }
        for change in &changes {
            events.append(change)?;
        }
        let event_version = events.snapshot()?;
        let applied = Applied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            next_event: event_version.map_or(0, |v| v + 1),
        };
        let mark = SnapshotMark {
            meta: meta.clone(),
            event_version,
        };
        self.record_snapshot(mark, Some(applied))?;
        let path = self.dir.join(INSTALLING);
        sfs::remove_file(&path).map_err(|e| crate::Error::io("remove", &path, e))?;
        // Before anything is applied after the snapshot: an install redone over later
        // entries would take them back.
        sfs::sync_dir(&self.dir)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let progress = self.progress();
        if progress.since_mark > 0 {
            let applied = progress.applied.clone();
            drop(progress);
            // Best effort: without it the entries since the last mark are applied again
            // (and found already in the store) at the next open.
            let _ = self.write_mark(&applied);
        }
    }
}

impl RaftStateMachine<TypeConfig> for EventStateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> SmResult<(Option<LogId<NodeId>>, Membership)> {
        let progress = self.progress();
        Ok((
            progress.applied.last_applied,
            progress.applied.membership.clone(),
        ))
    }

    async fn apply<I>(&mut self, entries: I) -> SmResult<Vec<Response>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        let mut progress = self.inner.progress();
        for entry in entries {
            let log_id = entry.log_id;
            let mut response = Response::default();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(request) => {
                    let next = progress.applied.next_event;
                    match self.produce(next, &event_of(request)) {
                        Ok(seq) => {
                            progress.applied.next_event = seq + 1;
                            response.event_seq = Some(seq);
                        }
                        // The same on every node: refused, not a failure of this one.
                        Err(e @ crate::Error::RecordTooLarge { .. }) => {
                            response.refused = Some(e.to_string());
                        }
                        Err(e) => {
                            return Err(storage_error(
                                ErrorSubject::Apply(log_id),
                                ErrorVerb::Write,
                                e,
                            ));
                        }
                    }
                }
                EntryPayload::Membership(membership) => {
                    progress.applied.membership = StoredMembership::new(Some(log_id), membership);
                }
            }
            progress.applied.last_applied = Some(log_id);
            progress.since_mark += 1;
            responses.push(response);
        }
        if progress.since_mark >= MARK_EVERY {
            self.inner
                .write_mark(&progress.applied)
                .map_err(|e| storage_error(ErrorSubject::StateMachine, ErrorVerb::Write, e))?;
            progress.since_mark = 0;
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let applied = self.progress().applied.clone();
        SnapshotBuilder {
            sm: self.clone(),
            applied,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> SmResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> SmResult<()> {
        let err = |e| {
            storage_error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        };
        let blob = snapshot.into_inner();
        self.inner.save_pending_install(meta, &blob).map_err(err)?;
        self.inner.install(meta, blob).map_err(err)
    }

    async fn get_current_snapshot(&mut self) -> SmResult<Option<Snapshot<TypeConfig>>> {
        let Some(mark) = self.progress().snapshot.clone() else {
            return Ok(None);
        };
        let err = |e| {
            storage_error(
                ErrorSubject::Snapshot(Some(mark.meta.signature())),
                ErrorVerb::Read,
                e,
            )
        };
        let data = match mark.event_version {
            None => blob_of(&State::default()).map_err(err)?,
            Some(v) => {
                let cp = self
                    .inner
                    .events
                    .log()
                    .checkpoint_at_or_before(v)
                    .map_err(err)?;
                match cp {
                    Some(cp) if cp.seq() == v => cp.data().to_vec(),
                    _ => {
                        return Err(err(bad_record(
                            v,
                            "the snapshot's event-store checkpoint is gone",
                        )));
                    }
                }
            }
        };
        Ok(Some(Snapshot {
            meta: mark.meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Builds a snapshot of the event store as of the entries applied when it was made, while
/// the state machine goes on applying (the store's time travel gives that past state).
pub struct SnapshotBuilder {
    sm: EventStateMachine,
    applied: Applied,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> SmResult<Snapshot<TypeConfig>> {
        let err = |e| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e);
        let inner = &self.sm.inner;
        let event_version = self.applied.next_event.checked_sub(1);
        let data = match event_version {
            None => blob_of(&State::default()).map_err(err)?,
            Some(v) => {
                let view = inner.events.state_at_seq(v).map_err(err)?;
                let blob = blob_of(view.state()).map_err(err)?;
                inner.events.log().checkpoint(v, &blob).map_err(err)?;
                blob
            }
        };
        let snapshot_id = match self.applied.last_applied {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id,
                id.index,
                event_version.map_or(0, |v| v + 1)
            ),
            None => "empty".to_owned(),
        };
        let meta = Meta {
            last_log_id: self.applied.last_applied,
            last_membership: self.applied.membership.clone(),
            snapshot_id,
        };
        let mark = SnapshotMark {
            meta: meta.clone(),
            event_version,
        };
        inner.record_snapshot(mark, None).map_err(err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
