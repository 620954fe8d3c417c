//! Which items are live, for [`EventStore::remove`](super::EventStore::remove): answered at
//! once, without waiting for the cached state to catch up, and with exactly one of two
//! racing removals of an item succeeding.
//!
//! Removals and explicitly appended events are recorded here as they are appended, and so,
//! as a hint, are new items (`write` skips the record rather than wait when another thread
//! holds the shard: a writer never blocks here). A removal recorded here is definitive; an
//! item with no record is judged by the cached state, and if the cache does not have it (it
//! may be newer than the cache), by a strong read. An entry is forgotten once the cached
//! state covers its event.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use crate::sync::lock;

/// Shards of the table: removals of different items rarely share a lock.
const SHARDS: usize = 256;
/// A shard holding this many entries takes no more hints until a catch-up lets it forget
/// some: hints only save strong reads, and a store whose cache is refreshed rarely must not
/// grow one entry per write.
const HINTS_PER_SHARD: usize = 1024;
/// The sequence number of a removal whose append has not returned yet.
const PENDING: u64 = u64::MAX;

/// What this store last appended about an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Touch {
    live: bool,
    seq: u64,
}

/// What [`Liveness::claim_removal`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The removal is this caller's; restore this should its append fail.
    Claimed(Option<Touch>),
    /// Removed (or being removed) by an event recorded here.
    Removed,
    /// No record, and not live where the caller looked.
    NotFound,
}

fn record(shard: &mut HashMap<Uuid, Touch>, id: Uuid, live: bool, seq: u64) {
    let entry = shard.entry(id).or_insert(Touch { live, seq });
    if entry.seq < seq {
        *entry = Touch { live, seq };
    }
}

/// Items touched by this store's appends that the cached state may not cover yet.
pub(crate) struct Liveness {
    shards: Vec<Mutex<HashMap<Uuid, Touch>>>,
}

impl Default for Liveness {
    fn default() -> Liveness {
        Liveness {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Liveness {
    fn shard(&self, id: &Uuid) -> &Mutex<HashMap<Uuid, Touch>> {
        let b = id.as_bytes();
        &self.shards[usize::from(b[0] ^ b[15]) % SHARDS]
    }

    /// Records event `seq`, which wrote (`live`) or removed item `id`. A later event about
    /// the item, or a removal in flight, is not overwritten.
    pub(crate) fn appended(&self, id: Uuid, live: bool, seq: u64) {
        record(&mut lock(self.shard(&id)), id, live, seq);
    }

    /// Records, if the shard is free, that event `seq` wrote the new item `id`. Skipping it
    /// is harmless: a removal then asks the cache, or a strong read.
    pub(crate) fn written_hint(&self, id: Uuid, seq: u64) {
        let mut shard = match self.shard(&id).try_lock() {
            Ok(shard) => shard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        if shard.len() < HINTS_PER_SHARD {
            record(&mut shard, id, true, seq);
        }
    }

    /// Claims the removal of item `id` if it is live: as recorded here, or, with no record,
    /// as `live_elsewhere` says (the cached state, or a strong read). A claimed item is
    /// marked removed, so that a racing removal fails.
    pub(crate) fn claim_removal(&self, id: Uuid, live_elsewhere: impl FnOnce() -> bool) -> Claim {
        let mut shard = lock(self.shard(&id));
        let before = shard.get(&id).copied();
        match before {
            Some(t) if !t.live => return Claim::Removed,
            Some(_) => {}
            None if !live_elsewhere() => return Claim::NotFound,
            None => {}
        }
        shard.insert(
            id,
            Touch {
                live: false,
                seq: PENDING,
            },
        );
        Claim::Claimed(before)
    }

    /// Ends a claimed removal: `Some(seq)` once its event is appended, `None` if the append
    /// failed (the item's status goes back to `before`).
    pub(crate) fn settle_removal(&self, id: Uuid, before: Option<Touch>, seq: Option<u64>) {
        let mut shard = lock(self.shard(&id));
        match (seq, before) {
            (Some(seq), _) => {
                shard.insert(id, Touch { live: false, seq });
            }
            (None, Some(before)) => {
                shard.insert(id, before);
            }
            (None, None) => {
                shard.remove(&id);
            }
        }
    }

    /// Forgets what the cached state covers: every entry of an event up to `version`.
    pub(crate) fn forget_up_to(&self, version: u64) {
        for shard in &self.shards {
            lock(shard).retain(|_, t| t.seq == PENDING || t.seq > version);
        }
    }

    /// Entries held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_two_removals_wins_and_a_failed_one_is_undone() {
        let l = Liveness::default();
        let a = Uuid::from_bytes([1; 16]);
        l.appended(a, true, 5);
        let claim = l.claim_removal(a, || panic!("recorded here"));
        assert_eq!(claim, Claim::Claimed(Some(Touch { live: true, seq: 5 })));
        assert_eq!(
            l.claim_removal(a, || true),
            Claim::Removed,
            "already being removed"
        );
        l.settle_removal(a, Some(Touch { live: true, seq: 5 }), None);
        assert!(
            matches!(l.claim_removal(a, || false), Claim::Claimed(_)),
            "undone"
        );
        l.settle_removal(a, Some(Touch { live: true, seq: 5 }), Some(9));
        assert_eq!(l.claim_removal(a, || true), Claim::Removed);
        // An older event does not overwrite a newer one.
        l.appended(a, true, 3);
        assert_eq!(l.claim_removal(a, || true), Claim::Removed);
        // Items with no record are as the caller finds elsewhere.
        let b = Uuid::from_bytes([2; 16]);
        assert_eq!(l.claim_removal(b, || false), Claim::NotFound);
        assert_eq!(l.claim_removal(b, || true), Claim::Claimed(None));
        l.settle_removal(b, None, None);
        assert_eq!(l.len(), 1);
        // A hint is a record; covered entries are forgotten, a removal in flight is not.
        let c = Uuid::from_bytes([3; 16]);
        l.written_hint(c, 20);
        assert!(matches!(
            l.claim_removal(c, || panic!("hinted")),
            Claim::Claimed(_)
        ));
        l.forget_up_to(100);
        assert_eq!(l.len(), 1);
        // A busy shard skips the hint rather than wait.
        let d = Uuid::from_bytes([4; 16]);
        let held = lock(l.shard(&d));
        l.written_hint(d, 30);
        drop(held);
        assert_eq!(l.claim_removal(d, || false), Claim::NotFound);
        // A full shard takes no more hints (but still records removals).
        let l = Liveness::default();
        let same_shard = |k: u16| {
            let mut b = [0u8; 16];
            b[1..3].copy_from_slice(&k.to_le_bytes());
            Uuid::from_bytes(b)
        };
        for k in 0..HINTS_PER_SHARD as u16 + 10 {
            l.written_hint(same_shard(k), u64::from(k));
        }
        assert_eq!(l.len(), HINTS_PER_SHARD);
        let late = same_shard(HINTS_PER_SHARD as u16 + 5);
        assert_eq!(l.claim_removal(late, || false), Claim::NotFound);
        assert!(matches!(
            l.claim_removal(late, || true),
            Claim::Claimed(None)
        ));
        assert_eq!(l.len(), HINTS_PER_SHARD + 1);
    }
}
