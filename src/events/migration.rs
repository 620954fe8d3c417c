//! The migration path from the spec: from a traditional reader-writer store (state behind a
//! lock) to the event store, in three phases.
//!
//! 1. **Dual write.** Existing items are written to the event store as events (with their
//!    ids), then every write goes to both stores; reads come from the locked store.
//! 2. **Read migration.** Reads come from the event store's state; each is compared with the
//!    locked store, a mismatch is counted, and an item the event store lacks falls back to
//!    the locked store. Writes still go to both.
//! 3. **Full migration.** The locked store is dropped; reads and writes use events only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use uuid::Uuid;

use super::event::Event;
use super::store::{Consistency, EventStore};
use crate::error::{Error, Result};

/// The traditional store: items in a map behind a reader-writer lock. Writers take the lock
/// exclusively; readers share it.
#[derive(Debug, Default)]
pub struct LockedStore {
    items: RwLock<HashMap<Uuid, (u32, String)>>,
}

impl LockedStore {
    /// An empty store.
    pub fn new() -> LockedStore {
        LockedStore::default()
    }

    /// Writes `data` as a new item; returns its id.
    pub fn write(&self, writer_id: u32, data: impl Into<String>) -> Uuid {
        let id = Uuid::new_v4();
        self.put(id, writer_id, data.into());
        id
    }

    /// Stores item `id` (replacing it if present).
    pub fn put(&self, id: Uuid, writer_id: u32, data: String) {
        self.items
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (writer_id, data));
    }

    /// Removes item `id`; returns whether it was there.
    pub fn remove(&self, id: &Uuid) -> bool {
        self.items
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .is_some()
    }

    /// The data of item `id`.
    pub fn get(&self, id: &Uuid) -> Option<String> {
        self.items
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|(_, d)| d.clone())
    }

    /// Items stored.
    pub fn len(&self) -> usize {
        self.items.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn snapshot(&self) -> Vec<(Uuid, u32, String)> {
        self.items
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, (w, d))| (*id, *w, d.clone()))
            .collect()
    }
}

/// Where a migration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrationPhase {
    /// Writes go to both stores; reads come from the locked store.
    DualWrite,
    /// Writes go to both; reads come from events, checked against the locked store.
    ReadMigration,
    /// The locked store is gone.
    Full,
}

/// Counters of a migration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationStats {
    /// Items copied into the event store when the migration started.
    pub backfilled: u64,
    /// Reads served in the read-migration phase.
    pub compared_reads: u64,
    /// Of those, reads where the two stores disagreed.
    pub mismatches: u64,
    /// Of those, reads answered from the locked store because the event store lacked the
    /// item.
    pub fallbacks: u64,
}

/// Runs the three phases over a locked store and an event store (see the module docs).
pub struct Migration {
    store: EventStore,
    locked: Mutex<Option<std::sync::Arc<LockedStore>>>,
    phase: AtomicU8,
    backfilled: AtomicU64,
    compared: AtomicU64,
    mismatches: AtomicU64,
    fallbacks: AtomicU64,
}

const DUAL: u8 = 0;
const READ: u8 = 1;
const FULL: u8 = 2;

impl Migration {
    /// Starts the dual-write phase: every item of `locked` that the event store does not
    /// have yet is written to it as a DataWritten event with the same id.
    pub fn start(locked: std::sync::Arc<LockedStore>, store: EventStore) -> Result<Migration> {
        let state = store.read(Consistency::Strong)?;
        let mut backfilled = 0;
        for (id, writer_id, data) in locked.snapshot() {
            if state.data(&id).is_none() {
                store.append(&Event::DataWritten {
                    writer_id,
                    item_id: id,
                    data,
                })?;
                backfilled += 1;
            }
        }
        Ok(Migration {
            store,
            locked: Mutex::new(Some(locked)),
            phase: AtomicU8::new(DUAL),
            backfilled: AtomicU64::new(backfilled),
            compared: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// The current phase.
    pub fn phase(&self) -> MigrationPhase {
        match self.phase.load(Ordering::Acquire) {
            DUAL => MigrationPhase::DualWrite,
            READ => MigrationPhase::ReadMigration,
            _ => MigrationPhase::Full,
        }
    }

    /// Moves to the next phase; returns it. Leaving the read-migration phase drops the
    /// locked store.
    pub fn advance(&self) -> MigrationPhase {
        let next = match self.phase.load(Ordering::Acquire) {
            DUAL => READ,
            _ => FULL,
        };
        // The phase first: a read that still sees the read-migration phase must find the
        // locked store there.
        self.phase.store(next, Ordering::Release);
        if next == FULL {
            *self.locked.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        self.phase()
    }

    fn locked(&self) -> Option<std::sync::Arc<LockedStore>> {
        self.locked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Writes a new item (to both stores until the full migration).
    pub fn write(&self, writer_id: u32, data: &str) -> Result<Uuid> {
        let (_, id) = self.store.write(writer_id, data)?;
        if let Some(locked) = self.locked() {
            locked.put(id, writer_id, data.to_owned());
        }
        Ok(id)
    }

    /// Removes an item (from both stores until the full migration).
    pub fn remove(&self, writer_id: u32, id: Uuid) -> Result<()> {
        let removed = self.store.remove(writer_id, id);
        if let Some(locked) = self.locked() {
            let was_locked = locked.remove(&id);
            if matches!(removed, Err(Error::NoSuchItem { .. })) && was_locked {
                return Ok(());
            }
        }
        removed.map(drop)
    }

    /// Reads an item the way the current phase does.
    pub fn read(&self, id: &Uuid) -> Result<Option<String>> {
        match self.phase() {
            MigrationPhase::DualWrite => Ok(self.locked().and_then(|l| l.get(id))),
            MigrationPhase::ReadMigration => {
                let from_events = self
                    .store
                    .read(Consistency::Strong)?
                    .data(id)
                    .map(str::to_owned);
                let from_lock = self.locked().and_then(|l| l.get(id));
                self.compared.fetch_add(1, Ordering::Relaxed);
                if from_events != from_lock {
                    self.mismatches.fetch_add(1, Ordering::Relaxed);
                }
                if from_events.is_none() && from_lock.is_some() {
                    self.fallbacks.fetch_add(1, Ordering::Relaxed);
                    return Ok(from_lock);
                }
                Ok(from_events)
            }
            MigrationPhase::Full => Ok(self
                .store
                .read(Consistency::Strong)?
                .data(id)
                .map(str::to_owned)),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> MigrationStats {
        MigrationStats {
            backfilled: self.backfilled.load(Ordering::Relaxed),
            compared_reads: self.compared.load(Ordering::Relaxed),
            mismatches: self.mismatches.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// The event store.
    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// Ends the migration and hands back the event store.
    pub fn into_store(self) -> EventStore {
        self.store
    }
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("phase", &self.phase())
            .field("stats", &self.stats())
            .finish()
    }
}
