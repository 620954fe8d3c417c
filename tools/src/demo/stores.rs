//! The two stores of the spec behind one interface, so that the demo and `mmlog bench` run
//! the very same code on both: the traditional store ([`LockedStore`], a `RwLock<HashMap>`)
//! and the event store ([`EventStore`]).

use std::hint::black_box;

use mmlog::events::{Consistency, EventStore, LockedStore};
use uuid::Uuid;

use crate::failure::{CmdResult, Failure};

/// What the spec's scenarios do to a store, each the store's natural call: `LockedStore::get`
/// copies the item out under the read lock; the event store lends a `&str` from its shared
/// state.
pub trait Store: Sync {
    /// A short name for reports: `locked` or `events`.
    fn name(&self) -> &'static str;
    /// Writes `data` as a new item of `writer`; returns the item's id.
    fn put(&self, writer: u32, data: String) -> CmdResult<Uuid>;
    /// Removes item `id`, which must be live.
    fn remove(&self, writer: u32, id: Uuid) -> CmdResult;
    /// Reads item `id`; returns whether it was found.
    fn get(&self, id: &Uuid) -> bool;
}

impl Store for LockedStore {
    fn name(&self) -> &'static str {
        "locked"
    }
    fn put(&self, writer: u32, data: String) -> CmdResult<Uuid> {
        Ok(self.write(writer, data))
    }
    fn remove(&self, _writer: u32, id: Uuid) -> CmdResult {
        if LockedStore::remove(self, &id) {
            Ok(())
        } else {
            Err(Failure::check(format!("locked store: {id} was not there")))
        }
    }
    fn get(&self, id: &Uuid) -> bool {
        black_box(LockedStore::get(self, id)).is_some()
    }
}

impl Store for EventStore {
    fn name(&self) -> &'static str {
        "events"
    }
    fn put(&self, writer: u32, data: String) -> CmdResult<Uuid> {
        Ok(self.write(writer, data)?.1)
    }
    fn remove(&self, writer: u32, id: Uuid) -> CmdResult {
        EventStore::remove(self, writer, id)?;
        Ok(())
    }
    fn get(&self, id: &Uuid) -> bool {
        self.read(Consistency::Eventual)
            .is_ok_and(|s| black_box(s.data(id)).is_some())
    }
}
