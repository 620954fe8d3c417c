//! The events and their stored form: a small versioned envelope around a postcard body.
//!
//! # Envelope, version 1
//!
//! Every record the event store appends is one event:
//!
//! | offset | size | field | meaning |
//! |-------:|-----:|-------|---------|
//! | 0 | 1 | `type`    | `1` DataWritten, `2` DataRemoved |
//! | 1 | 1 | `version` | schema version of that type, `1` |
//! | 2 | .. | body     | the type's fields, encoded with postcard (varint integers, length-prefixed strings) |
//!
//! Bodies, in field order: DataWritten v1 is `writer_id u32, item_id [u8; 16], data string`;
//! DataRemoved v1 is `writer_id u32, item_id [u8; 16]`. A new field or a new event type gets
//! a new `(type, version)` pair; a reader that meets a pair it does not know fails with
//! [`Error::UnknownEvent`], never a panic or a silent skip.

use std::time::SystemTime;

#[cfg(test)]
use serde::Deserialize;
use serde::Serialize;
use uuid::Uuid;

use crate::error::{Error, Result};

const TYPE_DATA_WRITTEN: u8 = 1;
const TYPE_DATA_REMOVED: u8 = 2;
const VERSION_1: u8 = 1;

/// A change to the store's state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Writer `writer_id` stored `data` as a new item `item_id`.
    DataWritten {
        /// Who wrote it.
        writer_id: u32,
        /// The new item's id.
        item_id: Uuid,
        /// Its data.
        data: String,
    },
    /// Writer `writer_id` removed item `item_id`.
    DataRemoved {
        /// Who removed it.
        writer_id: u32,
        /// The item removed.
        item_id: Uuid,
    },
}

/// An event as stored: the event, and the sequence number and timestamp the log gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    seq: u64,
    timestamp_ns: u64,
    event: Event,
}

impl StoredEvent {
    /// Decodes record `seq`, stamped `timestamp_ns`, as an event: for reading the events of
    /// a log by other means than [`EventStore::events_from`](super::EventStore::events_from)
    /// (a tool reading segment files without opening the log, say). A record that is not an
    /// event is [`Error::BadEvent`] or [`Error::UnknownEvent`].
    ///
    /// ```
    /// # fn main() -> Result<(), mmlog::Error> {
    /// # let dir = tempfile::tempdir().map_err(|e| mmlog::Error::io("tempdir", ".", e))?;
    /// use mmlog::events::{Event, EventStore, StoredEvent};
    /// let store = EventStore::open(dir.path(), mmlog::Options::default())?;
    /// store.write(7, "hello")?;
    /// let mut reader = store.log().read_from(0)?;
    /// let rec = reader.next().expect("one record")?;
    /// let ev = StoredEvent::decode(rec.seq(), rec.timestamp_ns(), rec.payload())?;
    /// assert!(matches!(ev.event(), Event::DataWritten { writer_id: 7, .. }));
    /// assert!(StoredEvent::decode(0, 0, b"not an event").is_err());
    /// # Ok(()) }
    /// ```
    pub fn decode(seq: u64, timestamp_ns: u64, payload: &[u8]) -> Result<StoredEvent> {
        decode(seq, timestamp_ns, payload)
    }

    /// The sequence number the log assigned.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// When it was appended.
    pub fn timestamp(&self) -> SystemTime {
        crate::storage::fs::ns_time(self.timestamp_ns)
    }

    /// [`StoredEvent::timestamp`] in nanoseconds since the Unix epoch.
    pub fn timestamp_ns(&self) -> u64 {
        self.timestamp_ns
    }

    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The item the event is about.
    pub fn item_id(&self) -> Uuid {
        match &self.event {
            Event::DataWritten { item_id, .. } | Event::DataRemoved { item_id, .. } => *item_id,
        }
    }

    /// The writer that caused it.
    pub fn writer_id(&self) -> u32 {
        match &self.event {
            Event::DataWritten { writer_id, .. } | Event::DataRemoved { writer_id, .. } => {
                *writer_id
            }
        }
    }
}

#[derive(Serialize)]
#[cfg_attr(test, derive(Deserialize))]
struct WrittenV1<'a> {
    writer_id: u32,
    item_id: [u8; 16],
    data: &'a str,
}

#[derive(Serialize)]
#[cfg_attr(test, derive(Deserialize))]
struct RemovedV1 {
    writer_id: u32,
    item_id: [u8; 16],
}

/// Encodes `event` into its envelope.
pub(crate) fn encode(event: &Event) -> Result<Vec<u8>> {
    match event {
        Event::DataWritten {
            writer_id,
            item_id,
            data,
        } => encode_written(*writer_id, *item_id, data),
        Event::DataRemoved { writer_id, item_id } => envelope(
            TYPE_DATA_REMOVED,
            &RemovedV1 {
                writer_id: *writer_id,
                item_id: *item_id.as_bytes(),
            },
            0,
        ),
    }
}

/// Encodes a DataWritten event straight from borrowed data.
pub(crate) fn encode_written(writer_id: u32, item_id: Uuid, data: &str) -> Result<Vec<u8>> {
    let body = WrittenV1 {
        writer_id,
        item_id: *item_id.as_bytes(),
        data,
    };
    envelope(TYPE_DATA_WRITTEN, &body, data.len())
}

/// The envelope around `body`, in one allocation: `extra` is the length of the body's
/// variable part (fixed fields and varint headroom are added).
fn envelope<T: Serialize>(kind: u8, body: &T, extra: usize) -> Result<Vec<u8>> {
    // type, version, writer id (varint, at most 5), item id (16), a length (varint, at most
    // 10) and the variable part.
    let mut out = Vec::with_capacity(2 + 5 + 16 + 10 + extra);
    out.push(kind);
    out.push(VERSION_1);
    postcard::to_extend(body, out).map_err(|e| Error::invalid(format!("encoding an event: {e}")))
}

/// An event decoded in place: its data borrows the record's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventRef<'a> {
    Written {
        writer_id: u32,
        item_id: Uuid,
        data: &'a str,
    },
    Removed {
        writer_id: u32,
        item_id: Uuid,
    },
}

/// Decodes the record `seq` as an event, borrowing its data from `bytes`.
pub(crate) fn decode_ref(seq: u64, bytes: &[u8]) -> Result<EventRef<'_>> {
    let bad = |reason: String| Error::BadEvent { seq, reason };
    let (&kind, rest) = bytes
        .split_first()
        .ok_or_else(|| bad("empty record".into()))?;
    let (&version, body) = rest
        .split_first()
        .ok_or_else(|| bad("no schema version".into()))?;
    let mut body = Body(body);
    let event = match (kind, version) {
        (TYPE_DATA_WRITTEN, VERSION_1) => (|| {
            Ok(EventRef::Written {
                writer_id: body.u32()?,
                item_id: Uuid::from_bytes(body.id()?),
                data: body.str()?,
            })
        })()
        .map_err(|e: &str| bad(format!("DataWritten: {e}")))?,
        (TYPE_DATA_REMOVED, VERSION_1) => (|| {
            Ok(EventRef::Removed {
                writer_id: body.u32()?,
                item_id: Uuid::from_bytes(body.id()?),
            })
        })()
        .map_err(|e: &str| bad(format!("DataRemoved: {e}")))?,
        (event_type, version) => {
            return Err(Error::UnknownEvent {
                seq,
                event_type,
                version,
            });
        }
    };
    if !body.0.is_empty() {
        return Err(bad(format!("{} bytes after the event", body.0.len())));
    }
    Ok(event)
}

/// Reads postcard's encoding of the bodies (LEB128 varint integers, raw byte arrays,
/// length-prefixed UTF-8 strings) in place: the event store's hot path. Encoding stays with
/// postcard, and a test checks that both read every input alike.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    /// A varint of at most `max_bytes` bytes whose last byte is at most `max_last`.
    #[inline]
    fn varint(&mut self, max_bytes: usize, max_last: u8) -> std::result::Result<u64, &'static str> {
        let mut out = 0u64;
        for i in 0..max_bytes {
            let (&b, rest) = self.0.split_first().ok_or("truncated")?;
            self.0 = rest;
            out |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                if i == max_bytes - 1 && b > max_last {
                    return Err("bad varint");
                }
                return Ok(out);
            }
        }
        Err("bad varint")
    }

    #[inline]
    fn u32(&mut self) -> std::result::Result<u32, &'static str> {
        // 32 bits: 5 bytes, 4 bits in the last.
        self.varint(5, 0x0F).map(|v| v as u32)
    }

    #[inline]
    fn id(&mut self) -> std::result::Result<[u8; 16], &'static str> {
        let (id, rest) = self.0.split_first_chunk::<16>().ok_or("truncated")?;
        self.0 = rest;
        Ok(*id)
    }

    #[inline]
    fn str(&mut self) -> std::result::Result<&'a str, &'static str> {
        // A usize length: 10 bytes, 1 bit in the last (64-bit targets).
        let len = usize::try_from(self.varint(10, 0x01)?).map_err(|_| "length out of range")?;
        if len > self.0.len() {
            return Err("truncated");
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(s).map_err(|_| "data is not UTF-8")
    }
}

/// Decodes the record `seq` (stamped `timestamp_ns`) as an event.
pub(crate) fn decode(seq: u64, timestamp_ns: u64, bytes: &[u8]) -> Result<StoredEvent> {
    let event = match decode_ref(seq, bytes)? {
        EventRef::Written {
            writer_id,
            item_id,
            data,
        } => Event::DataWritten {
            writer_id,
            item_id,
            data: data.to_owned(),
        },
        EventRef::Removed { writer_id, item_id } => Event::DataRemoved { writer_id, item_id },
    };
    Ok(StoredEvent {
        seq,
        timestamp_ns,
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What postcard makes of a body, in the decoder's terms.
    fn by_postcard(kind: u8, body: &[u8]) -> Option<EventRef<'_>> {
        if kind == TYPE_DATA_WRITTEN {
            let (b, tail): (WrittenV1<'_>, _) = postcard::take_from_bytes(body).ok()?;
            tail.is_empty().then_some(EventRef::Written {
                writer_id: b.writer_id,
                item_id: Uuid::from_bytes(b.item_id),
                data: b.data,
            })
        } else {
            let (b, tail): (RemovedV1, _) = postcard::take_from_bytes(body).ok()?;
            tail.is_empty().then_some(EventRef::Removed {
                writer_id: b.writer_id,
                item_id: Uuid::from_bytes(b.item_id),
            })
        }
    }

    proptest! {
        /// The in-place decoder reads every body as postcard does: the same events from the
        /// same bytes, and an error exactly where postcard fails.
        #[test]
        fn the_decoder_agrees_with_postcard(
            kind in 1u8..=2,
            writer_id in any::<u32>(),
            id in any::<[u8; 16]>(),
            data in ".{0,40}",
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
            cut in any::<Option<usize>>(),
            noise in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let event = if kind == TYPE_DATA_WRITTEN {
                Event::DataWritten { writer_id, item_id: Uuid::from_bytes(id), data }
            } else {
                Event::DataRemoved { writer_id, item_id: Uuid::from_bytes(id) }
            };
            let mut bytes = encode(&event).unwrap();
            for (at, v) in edits {
                let at = 2 + at % (bytes.len() - 1);
                if at < bytes.len() {
                    bytes[at] = v;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(2 + cut % (bytes.len() - 1));
            }
            for candidate in [bytes.clone(), [&bytes[..2], &noise[..]].concat()] {
                let ours = decode_ref(0, &candidate).ok();
                prop_assert_eq!(ours, by_postcard(kind, &candidate[2..]));
            }
        }
    }

    #[test]
    fn varints_at_their_limits() {
        let removed = |varint: &[u8]| {
            let mut b = vec![TYPE_DATA_REMOVED, VERSION_1];
            b.extend_from_slice(varint);
            b.extend_from_slice(&[0; 16]);
            b
        };
        for varint in [
            &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F][..], // u32::MAX
            &[0xFF, 0xFF, 0xFF, 0xFF, 0x1F],     // 33 bits
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
            &[0x80, 0x00], // not the shortest form: postcard takes it
            &[0x80],
        ] {
            let b = removed(varint);
            assert_eq!(
                decode_ref(0, &b).ok(),
                by_postcard(TYPE_DATA_REMOVED, &b[2..])
            );
        }
        assert!(decode_ref(0, &removed(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F])).is_ok());
        assert!(decode_ref(0, &removed(&[0xFF, 0xFF, 0xFF, 0xFF, 0x1F])).is_err());
    }

    #[test]
    fn round_trip_and_golden_bytes() {
        let id = Uuid::from_bytes([7; 16]);
        let w = Event::DataWritten {
            writer_id: 300,
            item_id: id,
            data: "hi".into(),
        };
        let bytes = encode(&w).unwrap();
        // type, version, varint 300, 16 id bytes, length 2, "hi".
        let mut golden = vec![1, 1, 0xAC, 0x02];
        golden.extend_from_slice(&[7; 16]);
        golden.extend_from_slice(&[2, b'h', b'i']);
        assert_eq!(bytes, golden);
        assert_eq!(decode(5, 6, &bytes).unwrap().event(), &w);
        let r = Event::DataRemoved {
            writer_id: 1,
            item_id: id,
        };
        assert_eq!(decode(1, 2, &encode(&r).unwrap()).unwrap().event(), &r);
    }

    #[test]
    fn unknown_and_damaged_events_are_errors() {
        assert!(matches!(
            decode(9, 0, &[3, 1, 0]),
            Err(Error::UnknownEvent {
                seq: 9,
                event_type: 3,
                version: 1
            })
        ));
        assert!(matches!(
            decode(9, 0, &[1, 2, 0]),
            Err(Error::UnknownEvent { version: 2, .. })
        ));
        let good = encode(&Event::DataRemoved {
            writer_id: 1,
            item_id: Uuid::nil(),
        })
        .unwrap();
        for cut in 0..good.len() {
            assert!(decode(0, 0, &good[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(decode(0, 0, &long).is_err());
        // Invalid UTF-8 in the data.
        let mut w = encode(&Event::DataWritten {
            writer_id: 1,
            item_id: Uuid::nil(),
            data: "ab".into(),
        })
        .unwrap();
        let n = w.len();
        w[n - 1] = 0xFF;
        assert!(matches!(decode(0, 0, &w), Err(Error::BadEvent { .. })));
    }
}
