//! The event store: the spec's event-sourced reader-writer, on the log's public API.
//!
//! Writers append [`Event`]s (`DataWritten`, `DataRemoved`) without waiting for a lock: each
//! is one log record, in a small versioned envelope ([`event`](self) module docs). Readers
//! rebuild the [`State`] (the live items) from the events: a cache shared through an atomic
//! pointer swap serves reads at the [`Consistency`] each asks for, snapshots (engine
//! checkpoints) bound what a cold start or a time-travel query replays, and every answer
//! says which version it reflects and how old it is. Other processes can serve the same
//! state, time travel and read models read-only while the owner writes
//! ([`EventStoreReplica`]).
//!
//! ```
//! use mmlog::events::{Consistency, Event, EventStore};
//! # fn main() -> Result<(), mmlog::Error> {
//! # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
//! let store = EventStore::open(dir.path(), mmlog::Options::default())?;
//! let (_, item) = store.write(7, "hello")?;
//! store.remove(7, item)?;
//! for ev in store.events_from(0)? {
//!     let ev = ev?;
//!     match ev.event() {
//!         Event::DataWritten { writer_id, data, .. } => println!("{} wrote {data}", writer_id),
//!         Event::DataRemoved { item_id, .. } => println!("removed {item_id}"),
//!         _ => {}
//!     }
//! }
//! assert_eq!(store.read(Consistency::Strong)?.len(), 0);
//! # Ok(()) }
//! ```

mod event;
mod liveness;
mod migration;
mod partitioned;
mod projection;
mod replica;
mod state;
mod store;
mod table;

pub use event::{Event, StoredEvent};
pub use migration::{LockedStore, Migration, MigrationPhase, MigrationStats};
pub use partitioned::{PartitionedEventStore, PartitionedView};
pub use projection::{Change, ItemsPerWriter, Projection, ReadModel, RecentChanges};
pub use replica::EventStoreReplica;
pub use state::{Item, State};
pub use store::{Consistency, EventStore, EventStoreOptions, Events, StateView};
