//! The event store, partitioned ([`PartitionedEventStore`]).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use uuid::Uuid;

use super::{Consistency, Event, EventStore, EventStoreOptions, StateView};
use crate::error::{Error, Result};
use crate::options::Options;
use crate::partitioned::{self, Cut, Position};

/// The event store, partitioned: items routed by id across N event stores, each on its own
/// log (its own tail, flusher and snapshots), so writers of different items share nothing.
///
/// An item lives in exactly one partition (CRC-32C of its 16-byte id, modulo the count, as
/// [`PartitionedLog::route`](crate::partitioned::PartitionedLog::route)), so the state of the
/// whole store is the union of the partitions' states, with no conflict to resolve. The
/// state "as of time `T`" is each partition's state as of `T`: the [`Cut`] of
/// [`PartitionedLog::cut_at_time`](crate::partitioned::PartitionedLog::cut_at_time).
///
/// ```
/// use mmlog::events::{Consistency, EventStoreOptions, PartitionedEventStore};
/// use mmlog::Options;
///
/// # fn main() -> mmlog::Result<()> {
/// # let tmp = tempfile::tempdir().unwrap();
/// let store = PartitionedEventStore::open(tmp.path(), 2, Options::default(), EventStoreOptions::default())?;
/// let (_, a) = store.write(1, "first")?;
/// let (_, b) = store.write(2, "second")?;
/// store.remove(1, a)?;
/// let now = store.read(Consistency::Strong)?;
/// assert_eq!((now.data(&a), now.data(&b), now.len()), (None, Some("second"), 1));
/// # Ok(())
/// # }
/// ```
pub struct PartitionedEventStore {
    dir: PathBuf,
    stores: Vec<EventStore>,
}

/// The state of every partition, as one read saw it: their union is the store's state.
#[derive(Clone, Debug)]
pub struct PartitionedView {
    views: Vec<StateView>,
}

impl PartitionedView {
    /// The data of item `id`, if live.
    pub fn data(&self, id: &Uuid) -> Option<&str> {
        self.views
            .get(partitioned::route(id.as_bytes(), self.views.len()))?
            .data(id)
    }

    /// Live items, over all partitions.
    pub fn len(&self) -> usize {
        self.views.iter().map(StateView::len).sum()
    }

    /// True when no item is live in any partition.
    pub fn is_empty(&self) -> bool {
        self.views.iter().all(StateView::is_empty)
    }

    /// The cut this state reflects: for every partition, the sequence number after the last
    /// event it includes.
    pub fn cut(&self) -> Cut {
        Cut::new(
            self.views
                .iter()
                .map(|v| v.version().map_or(0, |s| s + 1))
                .collect(),
        )
    }

    /// Partition `i`'s state.
    pub fn partition(&self, i: usize) -> Option<&StateView> {
        self.views.get(i)
    }
}

impl PartitionedEventStore {
    /// Opens (or creates) a store of `partitions` partitions in `dir`, each an
    /// [`EventStore`] with `options` and `store_options`. The count is recorded and checked
    /// as for [`PartitionedLog`](crate::partitioned::PartitionedLog).
    pub fn open(
        dir: impl AsRef<Path>,
        partitions: usize,
        options: Options,
        store_options: EventStoreOptions,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        partitioned::prepare(&dir, partitions)?;
        let stores = (0..partitions)
            .map(|i| {
                EventStore::open_with(
                    partitioned::partition_dir(&dir, i),
                    options.clone(),
                    store_options.clone(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PartitionedEventStore { dir, stores })
    }

    /// The directory holding the partitions.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// How many partitions there are.
    pub fn partitions(&self) -> usize {
        self.stores.len()
    }

    /// Partition `i`, an [`EventStore`] with all of its API (history, read models, audit).
    pub fn partition(&self, i: usize) -> Option<&EventStore> {
        self.stores.get(i)
    }

    /// The partition item `item_id` lives in.
    pub fn route(&self, item_id: &Uuid) -> usize {
        partitioned::route(item_id.as_bytes(), self.stores.len())
    }

    fn store_of(&self, item_id: &Uuid) -> Result<(usize, &EventStore)> {
        let p = self.route(item_id);
        let store = self
            .stores
            .get(p)
            .ok_or_else(|| Error::invalid("a partitioned store without partitions"))?;
        Ok((p, store))
    }

    /// Appends `event` to its item's partition.
    pub fn append(&self, event: &Event) -> Result<Position> {
        let item_id = match event {
            Event::DataWritten { item_id, .. } | Event::DataRemoved { item_id, .. } => item_id,
        };
        let (partition, store) = self.store_of(item_id)?;
        Ok(Position {
            partition,
            seq: store.append(event)?,
        })
    }

    /// Writes `data` as a new item; returns where its event went and the item's new id.
    pub fn write(&self, writer_id: u32, data: impl AsRef<str>) -> Result<(Position, Uuid)> {
        let item_id = Uuid::new_v4();
        let at = self.append(&Event::DataWritten {
            writer_id,
            item_id,
            data: data.as_ref().to_string(),
        })?;
        Ok((at, item_id))
    }

    /// Removes item `item_id`, as [`EventStore::remove`] does in its partition.
    pub fn remove(&self, writer_id: u32, item_id: Uuid) -> Result<Position> {
        let (partition, store) = self.store_of(&item_id)?;
        Ok(Position {
            partition,
            seq: store.remove(writer_id, item_id)?,
        })
    }

    /// The state of every partition, read with `consistency` (each partition on its own).
    pub fn read(&self, consistency: Consistency) -> Result<PartitionedView> {
        self.views(|s| s.read(consistency))
    }

    /// The state as of `time`: each partition's state as of `time`.
    pub fn state_at_time(&self, time: SystemTime) -> Result<PartitionedView> {
        self.views(|s| s.state_at_time(time))
    }

    /// The state as of `cut`: each partition's state through the events below its sequence
    /// number in the cut.
    pub fn state_at_cut(&self, cut: &Cut) -> Result<PartitionedView> {
        if cut.next_seqs().len() != self.stores.len() {
            return Err(Error::invalid(format!(
                "a cut of {} partitions for a store of {}",
                cut.next_seqs().len(),
                self.stores.len()
            )));
        }
        let views = self
            .stores
            .iter()
            .zip(cut.next_seqs())
            .map(|(s, &next)| match next.checked_sub(1) {
                Some(last) => s.state_at_seq(last),
                // Before every event: nothing is stamped at or before the epoch.
                None => s.state_at_time(SystemTime::UNIX_EPOCH),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PartitionedView { views })
    }

    fn views(&self, f: impl Fn(&EventStore) -> Result<StateView>) -> Result<PartitionedView> {
        let views = self.stores.iter().map(f).collect::<Result<Vec<_>>>()?;
        Ok(PartitionedView { views })
    }

    /// Closes every partition, reporting the first error.
    pub fn close(self) -> Result<()> {
        let mut first = Ok(());
        for store in self.stores {
            let r = store.close();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

impl std::fmt::Debug for PartitionedEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedEventStore")
            .field("dir", &self.dir)
            .field("partitions", &self.stores.len())
            .finish()
    }
}
