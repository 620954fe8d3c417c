//! The state the events build: the live items.
//!
//! A state is layers, newest first: `changes`, a persistent map (`imbl`) of the events applied
//! one by one since the last fold; `delta`, a [`Table`] built in one pass from a run of events
//! replayed at once (a cold start or a time-travel query); and `base`, a [`Table`] of live
//! items: a snapshot read in place, or the last fold. A copy of the state costs O(1) and
//! applying an event to a copy O(log n), so each catch-up publishes a new version without
//! copying the items and readers keep theirs untouched; folding the layers into a new base
//! (as each snapshot does) keeps lookups at one or two hash probes.
//!
//! The snapshot blob is the base table itself, documented byte by byte in
//! [`table`](super::table). Version 1 snapshots (a postcard list of items) are still read.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use uuid::Uuid;

use super::event::{Event, EventRef, StoredEvent};
use super::table::{self, Bytes, Lookup, Table, TableBuilder};
use crate::error::{Error, Result};
use crate::log::Checkpoint;

/// A live item: its data, and the event that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item<'a> {
    /// The data.
    pub data: &'a str,
    /// The writer that wrote it.
    pub writer_id: u32,
    /// The sequence number of its DataWritten event.
    pub seq: u64,
    /// When it was written (ns since the Unix epoch).
    pub timestamp_ns: u64,
}

impl Item<'_> {
    /// When it was written.
    pub fn timestamp(&self) -> SystemTime {
        crate::storage::fs::ns_time(self.timestamp_ns)
    }
}

/// An item applied since the last fold (its data shared: copying the state copies no bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Changed {
    data: Arc<str>,
    writer_id: u32,
    seq: u64,
    timestamp_ns: u64,
}

impl Changed {
    fn item(&self) -> Item<'_> {
        Item {
            data: &self.data,
            writer_id: self.writer_id,
            seq: self.seq,
            timestamp_ns: self.timestamp_ns,
        }
    }
}

/// The state the events describe: every item written and not removed since.
#[derive(Clone)]
pub struct State {
    base: Arc<Table>,
    delta: Option<Arc<Table>>,
    /// `None`: removed since `delta` and `base`.
    changes: imbl::HashMap<Uuid, Option<Changed>>,
    len: usize,
    /// The last sequence number applied.
    version: Option<u64>,
}

impl Default for State {
    fn default() -> State {
        State::from_table(Table::empty(), None)
    }
}

impl State {
    /// The last sequence number applied (`None`: no event yet).
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// The data of item `id`, if it is live.
    pub fn data(&self, id: &Uuid) -> Option<&str> {
        self.get(id).map(|i| i.data)
    }

    /// Item `id`, if it is live.
    pub fn get(&self, id: &Uuid) -> Option<Item<'_>> {
        match self.changes.get(id) {
            Some(changed) => changed.as_ref().map(Changed::item),
            None => self.underneath(id),
        }
    }

    /// Live items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no item is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every live item, in no particular order.
    pub fn items(&self) -> impl Iterator<Item = (Uuid, Item<'_>)> {
        self.items_unless(|id| self.changes.contains_key(id))
    }

    /// [`State::items`], given a test for "in `changes`".
    fn items_unless<'a>(
        &'a self,
        changed: impl Fn(&Uuid) -> bool + Copy + 'a,
    ) -> impl Iterator<Item = (Uuid, Item<'a>)> + 'a {
        let from_changes = self
            .changes
            .iter()
            .filter_map(|(id, c)| Some((*id, c.as_ref()?.item())));
        let delta = self
            .delta
            .iter()
            .flat_map(|d| d.iter())
            .filter(move |(id, _)| !changed(id))
            .filter_map(live);
        let base = self
            .base
            .iter()
            .filter(move |(id, _)| {
                !changed(id) && self.delta.as_ref().is_none_or(|d| !d.has_row(id))
            })
            .filter_map(live);
        from_changes.chain(delta).chain(base)
    }

    /// Applies the next event. Removing an item that is not live changes nothing (two
    /// writers may race to remove the same item; the first removal wins).
    pub fn apply(&mut self, ev: &StoredEvent) {
        let event = match ev.event() {
            Event::DataWritten {
                writer_id,
                item_id,
                data,
            } => EventRef::Written {
                writer_id: *writer_id,
                item_id: *item_id,
                data,
            },
            Event::DataRemoved { writer_id, item_id } => EventRef::Removed {
                writer_id: *writer_id,
                item_id: *item_id,
            },
        };
        self.apply_ref(ev.seq(), ev.timestamp_ns(), event);
    }

    /// [`State::apply`] for an event decoded in place.
    pub(crate) fn apply_ref(&mut self, seq: u64, timestamp_ns: u64, event: EventRef<'_>) {
        match event {
            EventRef::Written {
                writer_id,
                item_id,
                data,
            } => {
                let changed = Changed {
                    data: Arc::from(data),
                    writer_id,
                    seq,
                    timestamp_ns,
                };
                if self.get(&item_id).is_none() {
                    self.len += 1;
                }
                self.changes.insert(item_id, Some(changed));
            }
            EventRef::Removed { item_id, .. } => {
                if self.get(&item_id).is_some() {
                    self.len -= 1;
                    if self.underneath(&item_id).is_some() {
                        self.changes.insert(item_id, None);
                    } else {
                        self.changes.remove(&item_id);
                    }
                }
            }
        }
        self.version = Some(seq);
    }

    /// Notes that records up to `seq` were applied (a record that is not an event, such as
    /// an abandoned reservation, still advances the version).
    pub(crate) fn advance_to(&mut self, seq: u64) {
        self.version = Some(self.version.map_or(seq, |v| v.max(seq)));
    }

    /// A state of exactly the items of `table`.
    pub(crate) fn from_table(table: Table, version: Option<u64>) -> State {
        State::from_base(Arc::new(table), version)
    }

    fn from_base(base: Arc<Table>, version: Option<u64>) -> State {
        State {
            len: base.len(),
            base,
            delta: None,
            changes: imbl::HashMap::new(),
            version,
        }
    }

    /// True when the state is one table: nothing applied since a snapshot or a fold.
    pub(crate) fn is_one_table(&self) -> bool {
        self.delta.is_none() && self.changes.is_empty()
    }

    /// Events applied since the last fold (replaced and removed items included).
    pub(crate) fn unfolded(&self) -> usize {
        self.delta.as_ref().map_or(0, |d| d.rows()) + self.changes.len()
    }

    /// This state (which must be one table) with `delta`, a table of the events after it
    /// replayed in one pass, on top; `version` is the last event in it.
    pub(crate) fn with_delta(&self, delta: Table, version: Option<u64>) -> State {
        debug_assert!(self.is_one_table());
        if delta.rows() == 0 {
            return self.clone();
        }
        // Each id the delta reaches that is live in the base is either replaced (counted in
        // both) or removed.
        let mut len = self.len + delta.len();
        if !self.base.is_empty() {
            for (id, _) in delta.ids() {
                if self.base.has_live(&id) {
                    len -= 1;
                }
            }
        }
        State {
            base: Arc::clone(&self.base),
            delta: Some(Arc::new(delta)),
            changes: imbl::HashMap::new(),
            len,
            version,
        }
    }

    /// The same state as one table (a copy when it already is one). The table is the
    /// snapshot blob of the state.
    pub(crate) fn fold(&self) -> Result<State> {
        if self.is_one_table() {
            return Ok(self.clone());
        }
        let data_len: usize = self.items().map(|(_, i)| i.data.len()).sum();
        let mut b = TableBuilder::with_capacity(self.len, data_len);
        // A plain set answers "changed since?" faster than the persistent map, per item.
        let changed: HashSet<Uuid> = self.changes.keys().copied().collect();
        for (id, item) in self.items_unless(|id| changed.contains(id)) {
            b.push(&id, item)?;
        }
        Ok(State::from_table(b.finish()?, self.version))
    }

    /// The snapshot blob of a state that is one table (see [`State::fold`]).
    pub(crate) fn snapshot_bytes(&self) -> Option<&[u8]> {
        self.is_one_table().then(|| self.base.bytes())
    }

    /// The state in snapshot `cp`: read in place (version 2) or decoded (version 1).
    pub(crate) fn from_snapshot(cp: Checkpoint) -> Result<State> {
        let version = cp.seq();
        State::from_snapshot_bytes(Bytes::Snapshot(cp), version)
    }

    /// The state that snapshot `blob` describes, covering the events `0..=version`: the
    /// data of a checkpoint the event store wrote, read by other means (a tool reading the
    /// checkpoint file without opening the log, say). A blob that is not a snapshot is
    /// [`Error::BadEvent`].
    ///
    /// ```
    /// # fn main() -> Result<(), mmlog::Error> {
    /// # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
    /// use mmlog::events::{EventStore, State};
    /// let store = EventStore::open(dir.path(), mmlog::Options::default())?;
    /// let (_, item) = store.write(1, "kept")?;
    /// let version = store.snapshot()?.expect("one event");
    /// let cp = store.log().latest_checkpoint()?.expect("the snapshot");
    /// let state = State::from_snapshot_blob(cp.data().to_vec(), version)?;
    /// assert_eq!(state.data(&item), Some("kept"));
    /// # Ok(()) }
    /// ```
    pub fn from_snapshot_blob(blob: Vec<u8>, version: u64) -> Result<State> {
        State::from_snapshot_bytes(Bytes::Heap(blob), version)
    }

    fn from_snapshot_bytes(bytes: Bytes, version: u64) -> Result<State> {
        let bad = |reason: String| Error::BadEvent {
            seq: version,
            reason: format!("snapshot: {reason}"),
        };
        let blob = bytes.get();
        let table = match blob.get(4).copied() {
            Some(V1) if blob.starts_with(table::MAGIC) => decode_v1(blob).map_err(bad)?,
            _ => {
                let t = Table::parse(bytes).map_err(bad)?;
                if t.rows() != t.len() {
                    return Err(bad("a snapshot holds replaced or removed rows".into()));
                }
                t
            }
        };
        Ok(State::from_table(table, Some(version)))
    }

    /// What `delta` and `base` say about item `id`.
    fn underneath(&self, id: &Uuid) -> Option<Item<'_>> {
        if let Some(delta) = &self.delta {
            match delta.lookup(id) {
                Lookup::Live(item) => return Some(item),
                Lookup::Removed => return None,
                Lookup::Absent => {}
            }
        }
        match self.base.lookup(id) {
            Lookup::Live(item) => Some(item),
            _ => None,
        }
    }
}

fn live<'a>((id, says): (Uuid, Lookup<'a>)) -> Option<(Uuid, Item<'a>)> {
    match says {
        Lookup::Live(item) => Some((id, item)),
        _ => None,
    }
}

impl PartialEq for State {
    /// The same version and the same live items, however they are layered.
    fn eq(&self, other: &State) -> bool {
        self.version == other.version
            && self.len == other.len
            && self.items().all(|(id, item)| other.get(&id) == Some(item))
    }
}

impl Eq for State {}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("version", &self.version)
            .field("len", &self.len)
            .field("base_items", &self.base.len())
            .field("delta_rows", &self.delta.as_ref().map(|d| d.rows()))
            .field("changes", &self.changes.len())
            .finish()
    }
}

/// Version 1 of the snapshot blob: `MMEV`, `1`, then a postcard list of items.
const V1: u8 = 1;

#[derive(Deserialize)]
struct ItemV1<'a> {
    item_id: [u8; 16],
    #[serde(borrow)]
    data: &'a str,
    writer_id: u32,
    seq: u64,
    timestamp_ns: u64,
}

fn decode_v1(bytes: &[u8]) -> std::result::Result<Table, String> {
    let items: Vec<ItemV1<'_>> =
        postcard::from_bytes(bytes.get(5..).unwrap_or_default()).map_err(|e| e.to_string())?;
    let data = items.iter().map(|i| i.data.len()).sum();
    let mut b = TableBuilder::with_capacity(items.len(), data);
    for i in &items {
        let item = Item {
            data: i.data,
            writer_id: i.writer_id,
            seq: i.seq,
            timestamp_ns: i.timestamp_ns,
        };
        b.push(&Uuid::from_bytes(i.item_id), item)
            .map_err(|e| e.to_string())?;
    }
    let table = b.finish().map_err(|e| e.to_string())?;
    if table.len() != items.len() {
        return Err("an item id appears twice".into());
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::event;

    fn ev(seq: u64, e: &Event) -> StoredEvent {
        event::decode(seq, seq * 10, &event::encode(e).unwrap()).unwrap()
    }

    fn written(writer_id: u32, id: Uuid, data: &str) -> Event {
        Event::DataWritten {
            writer_id,
            item_id: id,
            data: data.into(),
        }
    }

    fn removed(id: Uuid) -> Event {
        Event::DataRemoved {
            writer_id: 1,
            item_id: id,
        }
    }

    fn reread(s: &State) -> State {
        let bytes = s.snapshot_bytes().unwrap().to_vec();
        State::from_table(Table::parse(Bytes::Heap(bytes)).unwrap(), s.version())
    }

    #[test]
    fn apply_fold_and_snapshot_round_trip() {
        let mut s = State::default();
        let a = Uuid::from_bytes([1; 16]);
        let b = Uuid::from_bytes([2; 16]);
        s.apply(&ev(0, &written(1, a, "x")));
        s.apply(&ev(1, &written(2, b, "y")));
        s.apply(&ev(2, &removed(a)));
        s.apply(&ev(3, &removed(a)));
        assert_eq!(
            (s.len(), s.version(), s.data(&b), s.data(&a)),
            (1, Some(3), Some("y"), None)
        );
        let folded = s.fold().unwrap();
        assert!(folded.is_one_table());
        assert_eq!(folded, s);
        let back = reread(&folded);
        assert_eq!(back, s);
        // Layers on top of a base: remove a base item, write it again, write a new one.
        let mut t = back.clone();
        t.apply(&ev(4, &removed(b)));
        assert_eq!((t.len(), t.data(&b)), (0, None));
        t.apply(&ev(5, &written(3, b, "z")));
        t.apply(&ev(6, &written(3, a, "w")));
        assert_eq!((t.len(), t.data(&b), t.data(&a)), (2, Some("z"), Some("w")));
        assert_eq!(
            back.data(&b),
            Some("y"),
            "the copy it came from is untouched"
        );
        assert_eq!(reread(&t.fold().unwrap()), t);
    }

    #[test]
    fn a_delta_equals_the_same_events_applied_one_by_one() {
        let ids: Vec<Uuid> = (0..40u8).map(|i| Uuid::from_bytes([i; 16])).collect();
        let mut base = State::default();
        for (i, id) in ids.iter().take(20).enumerate() {
            base.apply(&ev(i as u64, &written(1, *id, "base")));
        }
        let base = base.fold().unwrap();
        // Rewrites, removals of base and new items, removals of unknown items, re-adds.
        let events: Vec<StoredEvent> = (0..120u64)
            .map(|k| {
                let id = ids[(k * 7 % 40) as usize];
                let seq = 20 + k;
                if k % 3 == 0 {
                    ev(seq, &removed(id))
                } else {
                    ev(seq, &written(2, id, &format!("v{k}")))
                }
            })
            .collect();
        let mut one_by_one = base.clone();
        let mut b = TableBuilder::default();
        for e in &events {
            one_by_one.apply(e);
            match e.event() {
                Event::DataWritten {
                    writer_id, data, ..
                } => {
                    let item = Item {
                        data,
                        writer_id: *writer_id,
                        seq: e.seq(),
                        timestamp_ns: e.timestamp_ns(),
                    };
                    b.push(&e.item_id(), item).unwrap();
                }
                _ => b.push_removed(&e.item_id(), e.seq(), e.timestamp_ns()),
            }
        }
        let layered = base.with_delta(b.finish().unwrap(), Some(139));
        assert_eq!(layered, one_by_one);
        assert_eq!(layered.items().count(), layered.len());
        assert_eq!(reread(&layered.fold().unwrap()), one_by_one);
    }

    #[test]
    fn version_1_snapshots_are_still_read() {
        let items = vec![
            ([1u8; 16], "x", 1u32, 0u64, 10u64),
            ([2u8; 16], "y", 2u32, 1u64, 20u64),
        ];
        let mut blob = b"MMEV\x01".to_vec();
        blob.extend_from_slice(&postcard::to_allocvec(&items).unwrap());
        let t = decode_v1(&blob).unwrap();
        let s = State::from_table(t, Some(1));
        assert_eq!(s.len(), 2);
        let x = s.get(&Uuid::from_bytes([1; 16])).unwrap();
        assert_eq!(
            (x.data, x.writer_id, x.seq, x.timestamp_ns),
            ("x", 1, 0, 10)
        );
        assert!(decode_v1(&blob[..blob.len() - 1]).is_err());
        let dup = vec![items[0], items[0]];
        let mut blob = b"MMEV\x01".to_vec();
        blob.extend_from_slice(&postcard::to_allocvec(&dup).unwrap());
        assert!(decode_v1(&blob).is_err());
    }
}
