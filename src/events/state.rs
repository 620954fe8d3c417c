//! The state the events build: the live items, and the snapshot encoding of it.
//!
//! # Snapshot blob, version 1
//!
//! Stored as an engine checkpoint covering records `0..=version`:
//!
//! | offset | size | field | meaning |
//! |-------:|-----:|-------|---------|
//! | 0 | 4 | `magic`   | `MMEV` |
//! | 4 | 1 | `version` | `1` |
//! | 5 | .. | body     | postcard: the items as a sequence of `(item_id [u8; 16], data string, writer_id u32, seq u64, timestamp_ns u64)`, by ascending `item_id` |

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event::{Event, StoredEvent};
use crate::error::{Error, Result};

const SNAPSHOT_MAGIC: &[u8; 4] = b"MMEV";
const SNAPSHOT_VERSION: u8 = 1;

/// A live item: its data, and the event that wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The data (shared: copying an item, as every version of the state does, copies no
    /// bytes).
    pub data: Arc<str>,
    /// The writer that wrote it.
    pub writer_id: u32,
    /// The sequence number of its DataWritten event.
    pub seq: u64,
    /// When it was written (ns since the Unix epoch).
    pub timestamp_ns: u64,
}

impl Item {
    /// When it was written.
    pub fn timestamp(&self) -> SystemTime {
        crate::storage::fs::ns_time(self.timestamp_ns)
    }
}

/// The state the events describe: every item written and not removed since.
///
/// The items are a persistent map (`imbl`): a copy of the state costs O(1) and applying an
/// event to a copy O(log n), so each catch-up publishes a new version without copying the
/// items and readers keep theirs untouched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    items: imbl::HashMap<Uuid, Item>,
    /// The last sequence number applied.
    version: Option<u64>,
}

impl State {
    /// The last sequence number applied (`None`: no event yet).
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// The data of item `id`, if it is live.
    pub fn data(&self, id: &Uuid) -> Option<&str> {
        self.items.get(id).map(|i| &*i.data)
    }

    /// Item `id`, if it is live.
    pub fn get(&self, id: &Uuid) -> Option<&Item> {
        self.items.get(id)
    }

    /// Live items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no item is live.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every live item, in no particular order.
    pub fn items(&self) -> impl Iterator<Item = (&Uuid, &Item)> {
        self.items.iter()
    }

    /// Applies the next event. Removing an item that is not live changes nothing (two
    /// writers may race to remove the same item; the first removal wins).
    pub fn apply(&mut self, ev: &StoredEvent) {
        match ev.event() {
            Event::DataWritten {
                writer_id,
                item_id,
                data,
            } => {
                self.items.insert(
                    *item_id,
                    Item {
                        data: Arc::from(data.as_str()),
                        writer_id: *writer_id,
                        seq: ev.seq(),
                        timestamp_ns: ev.timestamp_ns(),
                    },
                );
            }
            Event::DataRemoved { item_id, .. } => {
                self.items.remove(item_id);
            }
        }
        self.version = Some(ev.seq());
    }

    /// Notes that records up to `seq` were applied (a record that is not an event, such as
    /// an abandoned reservation, still advances the version).
    pub(crate) fn advance_to(&mut self, seq: u64) {
        self.version = Some(self.version.map_or(seq, |v| v.max(seq)));
    }

    /// Encodes the state as a snapshot blob.
    pub(crate) fn encode_snapshot(&self) -> Result<Vec<u8>> {
        let mut items: Vec<ItemV1<'_>> = self
            .items
            .iter()
            .map(|(id, i)| ItemV1 {
                item_id: *id.as_bytes(),
                data: &i.data,
                writer_id: i.writer_id,
                seq: i.seq,
                timestamp_ns: i.timestamp_ns,
            })
            .collect();
        items.sort_by_key(|i| i.item_id);
        let body = postcard::to_allocvec(&items)
            .map_err(|e| Error::invalid(format!("encoding a snapshot: {e}")))?;
        let mut out = Vec::with_capacity(5 + body.len());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.push(SNAPSHOT_VERSION);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes a snapshot blob taken at `version`.
    pub(crate) fn decode_snapshot(bytes: &[u8], version: u64) -> Result<State> {
        let bad = |reason: String| Error::BadEvent {
            seq: version,
            reason: format!("snapshot: {reason}"),
        };
        if bytes.get(..4) != Some(SNAPSHOT_MAGIC.as_slice()) {
            return Err(bad("not an event store snapshot".into()));
        }
        if bytes.get(4) != Some(&SNAPSHOT_VERSION) {
            return Err(bad(format!("unknown snapshot version {:?}", bytes.get(4))));
        }
        let items: Vec<ItemV1<'_>> =
            postcard::from_bytes(&bytes[5..]).map_err(|e| bad(e.to_string()))?;
        let items = items
            .into_iter()
            .map(|i| {
                (
                    Uuid::from_bytes(i.item_id),
                    Item {
                        data: Arc::from(i.data),
                        writer_id: i.writer_id,
                        seq: i.seq,
                        timestamp_ns: i.timestamp_ns,
                    },
                )
            })
            .collect();
        Ok(State {
            items,
            version: Some(version),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct ItemV1<'a> {
    item_id: [u8; 16],
    #[serde(borrow)]
    data: &'a str,
    writer_id: u32,
    seq: u64,
    timestamp_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::event;

    #[test]
    fn apply_and_snapshot_round_trip() {
        let mut s = State::default();
        let a = Uuid::from_bytes([1; 16]);
        let b = Uuid::from_bytes([2; 16]);
        let ev = |seq, e: &Event| event::decode(seq, seq * 10, &event::encode(e).unwrap()).unwrap();
        s.apply(&ev(
            0,
            &Event::DataWritten {
                writer_id: 1,
                item_id: a,
                data: "x".into(),
            },
        ));
        s.apply(&ev(
            1,
            &Event::DataWritten {
                writer_id: 2,
                item_id: b,
                data: "y".into(),
            },
        ));
        s.apply(&ev(
            2,
            &Event::DataRemoved {
                writer_id: 1,
                item_id: a,
            },
        ));
        s.apply(&ev(
            3,
            &Event::DataRemoved {
                writer_id: 1,
                item_id: a,
            },
        ));
        assert_eq!(
            (s.len(), s.version(), s.data(&b), s.data(&a)),
            (1, Some(3), Some("y"), None)
        );
        let blob = s.encode_snapshot().unwrap();
        assert_eq!(State::decode_snapshot(&blob, 3).unwrap(), s);
        assert!(State::decode_snapshot(&blob[..blob.len() - 1], 3).is_err());
        assert!(State::decode_snapshot(b"MMEV\x02", 3).is_err());
    }
}
