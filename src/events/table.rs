//! Item tables: the state's items in a hash-indexed byte layout that is read in place, from
//! memory or straight from a mapped snapshot file, so loading a snapshot costs a checksum and
//! no decoding.
//!
//! # Snapshot blob, version 2
//!
//! Stored as an engine checkpoint covering records `0..=version`. Every integer is
//! little-endian.
//!
//! | offset | size | field | meaning |
//! |-------:|-----:|-------|---------|
//! | 0  | 4 | `magic`    | `MMEV` |
//! | 4  | 1 | `version`  | `2` |
//! | 5  | 3 | zero       | |
//! | 8  | 8 | `rows`     | rows in the row array |
//! | 16 | 8 | `items`    | live items the table holds |
//! | 24 | 8 | `slots`    | slots in the index: a power of two, more than `rows` |
//! | 32 | 8 | `seed`     | seed of the index's hash |
//! | 40 | 8 | `data_len` | bytes of item data |
//! | 48 | `rows` x 48 | rows | see below |
//! | .. | `slots` x 4 | index | `u32`: 0 for an empty slot, else row number + 1 |
//! | .. | `data_len` | data | the items' data (UTF-8), back to back |
//!
//! A row is `item_id [u8; 16], seq u64, timestamp_ns u64, data_offset u64 (into the data
//! area), data_len u32, writer_id u32`: the item and the DataWritten event that wrote it.
//!
//! The index is an open-addressing hash table with linear probing: item `id` sits in the
//! first slot, counting from `hash(seed, id) & (slots - 1)`, whose row has that id; an empty
//! slot ends the search. `hash` splits the id into two little-endian `u64`s `lo` (bytes 0..8) and
//! `hi` (bytes 8..16), multiplies `lo ^ seed` by `hi ^ 0x9E37_79B9_7F4A_7C15` as 128-bit
//! integers, and XORs the two halves of the product.
//!
//! In a snapshot every row is a live item and `items == rows`. In memory a table may also
//! stand for a run of events replayed in one pass: there several rows may share an id (the
//! index points at the last, earlier ones are unreachable) and a row with `data_offset ==
//! u64::MAX` records a removal.

use std::hash::{BuildHasher, RandomState};

use uuid::Uuid;

use super::state::Item;
use crate::error::{Error, Result};
use crate::log::Checkpoint;

pub(crate) const MAGIC: &[u8; 4] = b"MMEV";
pub(crate) const VERSION: u8 = 2;
const HEADER_LEN: usize = 48;
const ROW_LEN: usize = 48;
const SLOT_LEN: usize = 4;
/// `data_offset` of a row that records a removal.
const REMOVED: u64 = u64::MAX;
const HASH_K: u64 = 0x9E37_79B9_7F4A_7C15;

/// The bytes of a table: built in memory, or a snapshot read in place.
pub(crate) enum Bytes {
    Heap(Vec<u8>),
    Snapshot(Checkpoint),
}

impl Bytes {
    pub(crate) fn get(&self) -> &[u8] {
        match self {
            Bytes::Heap(v) => v,
            Bytes::Snapshot(cp) => cp.data(),
        }
    }
}

/// What a table says about one item id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup<'a> {
    Live(Item<'a>),
    Removed,
    Absent,
}

/// A table of items (see the module docs for the layout).
pub(crate) struct Table {
    bytes: Bytes,
    rows: usize,
    items: usize,
    mask: usize,
    seed: u64,
    slots_at: usize,
    data_at: usize,
    /// The data came from `&str`s through [`TableBuilder`] and is immutable since, so it
    /// needs no UTF-8 check when read.
    built_from_str: bool,
}

impl Table {
    /// A table with no rows: the header and an index of two empty slots.
    pub(crate) fn empty() -> Table {
        let mut bytes = vec![0u8; HEADER_LEN + 2 * SLOT_LEN];
        bytes[..4].copy_from_slice(MAGIC);
        bytes[4] = VERSION;
        bytes[24..32].copy_from_slice(&2u64.to_le_bytes());
        Table {
            bytes: Bytes::Heap(bytes),
            rows: 0,
            items: 0,
            mask: 1,
            seed: 0,
            slots_at: HEADER_LEN,
            data_at: HEADER_LEN + 2 * SLOT_LEN,
            built_from_str: true,
        }
    }

    /// Reads the table in `bytes`, checking its header and that the sizes add up.
    pub(crate) fn parse(bytes: Bytes) -> std::result::Result<Table, String> {
        let b = bytes.get();
        if b.get(..4) != Some(MAGIC.as_slice()) {
            return Err("not an event store snapshot".into());
        }
        if b.get(4) != Some(&VERSION) {
            return Err(format!("unknown snapshot version {:?}", b.get(4)));
        }
        if b.len() < HEADER_LEN {
            return Err(format!("{} bytes, shorter than the header", b.len()));
        }
        let field = |at| usize::try_from(le_u64(b, at)).map_err(|_| "a size is out of range");
        let (rows, items, slots, seed, data_len) =
            (field(8)?, field(16)?, field(24)?, le_u64(b, 32), field(40)?);
        if !slots.is_power_of_two() || slots <= rows || items > rows {
            return Err(format!(
                "bad index: {rows} rows, {items} items, {slots} slots"
            ));
        }
        let slots_at = rows
            .checked_mul(ROW_LEN)
            .and_then(|r| r.checked_add(HEADER_LEN))
            .ok_or("row count out of range")?;
        let data_at = slots
            .checked_mul(SLOT_LEN)
            .and_then(|s| s.checked_add(slots_at))
            .ok_or("slot count out of range")?;
        if data_at.checked_add(data_len) != Some(b.len()) {
            return Err(format!(
                "{} bytes, but the header describes {rows} rows, {slots} slots and \
                 {data_len} data bytes",
                b.len()
            ));
        }
        Ok(Table {
            bytes,
            rows,
            items,
            mask: slots - 1,
            seed,
            slots_at,
            data_at,
            built_from_str: false,
        })
    }

    /// Live items.
    pub(crate) fn len(&self) -> usize {
        self.items
    }

    /// Rows, counting replaced ones and removals.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The whole table, as a snapshot stores it.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.bytes.get()
    }

    /// True when the table has no live item.
    pub(crate) fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// What the table says about item `id`.
    #[inline]
    pub(crate) fn lookup(&self, id: &Uuid) -> Lookup<'_> {
        let b = self.bytes.get();
        match self.find(b, id) {
            Some(row) => self.resolve(b, row),
            None => Lookup::Absent,
        }
    }

    /// True when item `id` is live in the table (its data is not read).
    #[inline]
    pub(crate) fn has_live(&self, id: &Uuid) -> bool {
        let b = self.bytes.get();
        self.find(b, id)
            .is_some_and(|row| le_u64(b, self.row_at(row) + 32) != REMOVED)
    }

    /// True when the index holds a row for `id` (live or a removal).
    #[inline]
    pub(crate) fn has_row(&self, id: &Uuid) -> bool {
        self.find(self.bytes.get(), id).is_some()
    }

    /// The row the index holds for `id`.
    #[inline]
    fn find(&self, b: &[u8], id: &Uuid) -> Option<usize> {
        let id = id.as_bytes();
        let mut slot = hash(self.seed, id.as_slice()) as usize & self.mask;
        // At most one pass over the index, even if a damaged one has no empty slot.
        for _ in 0..=self.mask {
            let row = self.slot(b, slot)?;
            if b.get(self.row_at(row)..self.row_at(row) + 16) == Some(id.as_slice()) {
                return Some(row);
            }
            slot = (slot + 1) & self.mask;
        }
        None
    }

    /// Every id the index reaches and whether its row is a live item (`false`: a removal),
    /// in index order, without reading the data.
    pub(crate) fn ids(&self) -> impl Iterator<Item = (Uuid, bool)> + '_ {
        let b = self.bytes.get();
        (0..=self.mask).filter_map(move |slot| {
            let at = self.row_at(self.slot(b, slot)?);
            let id: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
            Some((Uuid::from_bytes(id), le_u64(b, at + 32) != REMOVED))
        })
    }

    /// Every id the index reaches and what the table says about it, in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Uuid, Lookup<'_>)> + '_ {
        let b = self.bytes.get();
        (0..=self.mask).filter_map(move |slot| {
            let row = self.slot(b, slot)?;
            let id: [u8; 16] = b
                .get(self.row_at(row)..self.row_at(row) + 16)?
                .try_into()
                .ok()?;
            Some((Uuid::from_bytes(id), self.resolve(b, row)))
        })
    }

    /// Checks every slot and every row the index reaches. (Lookups on a damaged table
    /// answer `Absent` rather than fail, so reads need not pay for this.)
    #[cfg(test)]
    pub(crate) fn verify(&self) -> std::result::Result<(), String> {
        let b = self.bytes.get();
        let mut live = 0;
        for slot in 0..=self.mask {
            let v = le_u32(b, self.slots_at + slot * SLOT_LEN) as usize;
            if v > self.rows {
                return Err(format!("slot {slot} points at row {v} of {}", self.rows));
            }
            if v == 0 {
                continue;
            }
            match self.resolve(b, v - 1) {
                Lookup::Live(_) => live += 1,
                Lookup::Removed => {}
                Lookup::Absent => return Err(format!("row {} has bad data bounds", v - 1)),
            }
        }
        if live != self.items {
            return Err(format!(
                "the index reaches {live} items, the header says {}",
                self.items
            ));
        }
        Ok(())
    }

    /// `data` as text: checked, unless it was built from text.
    #[inline]
    fn as_str<'a>(&self, data: &'a [u8]) -> Option<&'a str> {
        if self.built_from_str {
            // SAFETY: `built_from_str` is only set by `TableBuilder::finish`, whose data area
            // is the concatenation of `&str`s and whose row bounds are those strings' own
            // (a row's data is one whole string, so it starts and ends on char boundaries);
            // the heap bytes are never written after. `data` is such a row's data.
            Some(unsafe { std::str::from_utf8_unchecked(data) })
        } else {
            std::str::from_utf8(data).ok()
        }
    }

    fn row_at(&self, row: usize) -> usize {
        HEADER_LEN + row * ROW_LEN
    }

    /// The row slot `slot` points at (`None`: empty, or out of range in a damaged table).
    #[inline]
    fn slot(&self, b: &[u8], slot: usize) -> Option<usize> {
        let v = le_u32(b, self.slots_at + slot * SLOT_LEN) as usize;
        (v != 0 && v <= self.rows).then(|| v - 1)
    }

    /// What row `row` says (`Absent` if its data is out of bounds or not UTF-8).
    #[inline]
    fn resolve<'a>(&self, b: &'a [u8], row: usize) -> Lookup<'a> {
        let at = self.row_at(row);
        let offset = le_u64(b, at + 32);
        if offset == REMOVED {
            return Lookup::Removed;
        }
        let len = le_u32(b, at + 40) as usize;
        let data = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(self.data_at))
            .and_then(|start| b.get(start..start.checked_add(len)?))
            .and_then(|d| self.as_str(d));
        match data {
            Some(data) => Lookup::Live(Item {
                data,
                writer_id: le_u32(b, at + 44),
                seq: le_u64(b, at + 16),
                timestamp_ns: le_u64(b, at + 24),
            }),
            None => Lookup::Absent,
        }
    }
}

/// Builds a table row by row; the index is built once, at the end, at its final size.
pub(crate) struct TableBuilder {
    /// Header space, then the rows.
    rows: Vec<u8>,
    data: Vec<u8>,
}

impl Default for TableBuilder {
    fn default() -> TableBuilder {
        TableBuilder::with_capacity(0, 0)
    }
}

impl TableBuilder {
    /// A builder with room for `rows` rows (and their index) and `data` bytes of data.
    pub(crate) fn with_capacity(rows: usize, data: usize) -> TableBuilder {
        let index = slot_count(rows).saturating_mul(SLOT_LEN);
        let room = rows.saturating_mul(ROW_LEN).saturating_add(index);
        let mut b = TableBuilder {
            rows: Vec::with_capacity(HEADER_LEN.saturating_add(room)),
            data: Vec::with_capacity(data),
        };
        b.rows.resize(HEADER_LEN, 0);
        b
    }

    /// Adds live item `id`.
    #[inline]
    pub(crate) fn push(&mut self, id: &Uuid, item: Item<'_>) -> Result<()> {
        let len = u32::try_from(item.data.len())
            .map_err(|_| Error::invalid("an item's data is longer than 4 GiB"))?;
        let offset = self.data.len() as u64;
        self.data.extend_from_slice(item.data.as_bytes());
        self.push_row(id, item.seq, item.timestamp_ns, offset, len, item.writer_id);
        Ok(())
    }

    /// Records that item `id` was removed by event `seq`.
    #[inline]
    pub(crate) fn push_removed(&mut self, id: &Uuid, seq: u64, timestamp_ns: u64) {
        self.push_row(id, seq, timestamp_ns, REMOVED, 0, 0);
    }

    #[inline]
    fn push_row(&mut self, id: &Uuid, seq: u64, ts: u64, offset: u64, len: u32, writer: u32) {
        let mut row = [0u8; ROW_LEN];
        row[..16].copy_from_slice(id.as_bytes());
        row[16..24].copy_from_slice(&seq.to_le_bytes());
        row[24..32].copy_from_slice(&ts.to_le_bytes());
        row[32..40].copy_from_slice(&offset.to_le_bytes());
        row[40..44].copy_from_slice(&len.to_le_bytes());
        row[44..48].copy_from_slice(&writer.to_le_bytes());
        self.rows.extend_from_slice(&row);
    }

    /// Rows added so far.
    pub(crate) fn rows(&self) -> usize {
        self.rows.len().saturating_sub(HEADER_LEN) / ROW_LEN
    }

    /// Builds the index (the last row of each id wins) and returns the table.
    pub(crate) fn finish(self) -> Result<Table> {
        let rows = self.rows();
        if rows >= u32::MAX as usize {
            return Err(Error::invalid("more than 4 billion items in one table"));
        }
        let slot_count = slot_count(rows);
        let mask = slot_count - 1;
        let seed = RandomState::new().hash_one(rows);
        // The index goes right after the rows, built in place.
        let slots_at = self.rows.len();
        let mut out = self.rows;
        out.reserve_exact(slot_count * SLOT_LEN + self.data.len());
        out.resize(slots_at + slot_count * SLOT_LEN, 0);
        let (head, slots) = out.split_at_mut(slots_at);
        let row_bytes = &head[HEADER_LEN..];
        let mut items = 0usize;
        for (row, bytes) in row_bytes.chunks_exact(ROW_LEN).enumerate() {
            // The slots are hit at random: ask for a later row's home slot now, so that its
            // cache miss overlaps the work on this row.
            let ahead = (row + PREFETCH_AHEAD) * ROW_LEN;
            if let Some(id) = row_bytes.get(ahead..ahead + 16) {
                prefetch(&slots[(hash(seed, id) as usize & mask) * SLOT_LEN]);
            }
            let id = &bytes[..16];
            let live = le_u64(bytes, 32) != REMOVED;
            let mut s = hash(seed, id) as usize & mask;
            loop {
                let v = le_u32(slots, s * SLOT_LEN) as usize;
                if v == 0 {
                    items += usize::from(live);
                    break;
                }
                let other = &row_bytes[(v - 1) * ROW_LEN..];
                if &other[..16] == id {
                    let was_live = le_u64(other, 32) != REMOVED;
                    items = items + usize::from(live) - usize::from(was_live);
                    break;
                }
                s = (s + 1) & mask;
            }
            let at = s * SLOT_LEN;
            slots[at..at + SLOT_LEN].copy_from_slice(&(row as u32 + 1).to_le_bytes());
        }
        out.extend_from_slice(&self.data);
        out[..4].copy_from_slice(MAGIC);
        out[4] = VERSION;
        for (at, v) in [
            (8, rows as u64),
            (16, items as u64),
            (24, slot_count as u64),
            (32, seed),
            (40, self.data.len() as u64),
        ] {
            out[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        let mut table = Table::parse(Bytes::Heap(out)).map_err(Error::invalid)?;
        table.built_from_str = true;
        Ok(table)
    }
}

/// Slots of the index for `rows` rows: a power of two, filled at most three quarters.
fn slot_count(rows: usize) -> usize {
    rows.saturating_add(rows / 3)
        .saturating_add(1)
        .checked_next_power_of_two()
        .unwrap_or(1 << (usize::BITS - 1))
        .max(2)
}

/// How many rows ahead [`TableBuilder::finish`] prefetches slots.
const PREFETCH_AHEAD: usize = 16;

/// Asks the CPU to bring `value`'s cache line in (a hint: no effect on what runs).
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline, so the instruction exists; a prefetch
    // never faults and reads nothing the program sees, and `value` is a live reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// The index's hash of an item id (module docs).
#[inline]
fn hash(seed: u64, id: &[u8]) -> u64 {
    let lo = le_u64(id, 0);
    let hi = le_u64(id, 8);
    let x = u128::from(lo ^ seed) * u128::from(hi ^ HASH_K);
    (x as u64) ^ ((x >> 64) as u64)
}

/// The `u64` at `at` (0 past the end: callers checked the sizes).
#[inline]
fn le_u64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

#[inline]
fn le_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(data: &str, seq: u64) -> Item<'_> {
        Item {
            data,
            writer_id: 3,
            seq,
            timestamp_ns: seq * 10,
        }
    }

    #[test]
    fn last_row_of_an_id_wins_and_removals_count() {
        let ids: Vec<Uuid> = (0..100u8).map(|i| Uuid::from_bytes([i; 16])).collect();
        let mut b = TableBuilder::default();
        for (i, id) in ids.iter().enumerate() {
            b.push(id, item("first", i as u64)).unwrap();
        }
        b.push(&ids[1], item("second", 100)).unwrap();
        b.push_removed(&ids[2], 101, 0);
        b.push_removed(&ids[3], 102, 0);
        b.push(&ids[3], item("back", 103)).unwrap();
        let t = b.finish().unwrap();
        assert_eq!((t.rows(), t.len()), (104, 99));
        assert_eq!(t.lookup(&ids[0]), Lookup::Live(item("first", 0)));
        assert_eq!(t.lookup(&ids[1]), Lookup::Live(item("second", 100)));
        assert_eq!(t.lookup(&ids[2]), Lookup::Removed);
        assert_eq!(t.lookup(&ids[3]), Lookup::Live(item("back", 103)));
        assert_eq!(t.lookup(&Uuid::from_bytes([200; 16])), Lookup::Absent);
        assert_eq!(t.iter().count(), 100);
        t.verify().unwrap();
    }

    #[test]
    fn the_empty_table_is_a_valid_table() {
        let empty = Table::empty();
        let parsed = Table::parse(Bytes::Heap(empty.bytes().to_vec())).unwrap();
        assert_eq!(
            (parsed.len(), parsed.rows(), parsed.mask),
            (0, 0, empty.mask)
        );
        assert_eq!(empty.lookup(&Uuid::from_bytes([9; 16])), Lookup::Absent);
        assert_eq!(empty.iter().count(), 0);
        empty.verify().unwrap();
    }

    #[test]
    fn golden_bytes_of_a_one_item_table() {
        let mut b = TableBuilder::default();
        b.push(&Uuid::from_bytes([1; 16]), item("hi", 5)).unwrap();
        let t = b.finish().unwrap();
        let bytes = t.bytes();
        assert_eq!(&bytes[..8], b"MMEV\x02\0\0\0");
        assert_eq!(le_u64(bytes, 8), 1); // rows
        assert_eq!(le_u64(bytes, 16), 1); // items
        assert_eq!(le_u64(bytes, 24), 2); // slots
        assert_eq!(le_u64(bytes, 40), 2); // data bytes
        assert_eq!(&bytes[48..64], &[1; 16]);
        assert_eq!(
            &bytes[64..96],
            &[
                5, 0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0,
                0, 3, 0, 0, 0
            ]
        );
        assert_eq!(bytes.len(), 48 + 48 + 2 * 4 + 2);
        assert_eq!(&bytes[bytes.len() - 2..], b"hi");
        // The one row sits in slot hash(seed, id) & 1.
        let slot = (hash(le_u64(bytes, 32), &[1; 16]) & 1) as usize;
        assert_eq!(le_u32(bytes, 96 + slot * 4), 1);
        assert_eq!(le_u32(bytes, 96 + (1 - slot) * 4), 0);
    }

    #[test]
    fn damaged_tables_are_errors_or_misses_never_panics() {
        let mut b = TableBuilder::default();
        for i in 0..20u8 {
            b.push(&Uuid::from_bytes([i; 16]), item("data", u64::from(i)))
                .unwrap();
        }
        let good = b.finish().unwrap().bytes().to_vec();
        for cut in 0..good.len() {
            assert!(Table::parse(Bytes::Heap(good[..cut].to_vec())).is_err());
        }
        // Every single byte set to 0xFF: parse fails or lookups and verify answer without
        // panicking.
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] = 0xFF;
            if let Ok(t) = Table::parse(Bytes::Heap(bad)) {
                for i in 0..20u8 {
                    let _ = t.lookup(&Uuid::from_bytes([i; 16]));
                }
                let _ = t.iter().count();
                let _ = t.verify();
            }
        }
        // A slot pointing past the rows is caught by verify.
        let mut bad = good.clone();
        let slots_at = 48 + 20 * 48;
        let first = (0..32)
            .find(|s| le_u32(&bad, slots_at + s * 4) != 0)
            .unwrap();
        bad[slots_at + first * 4..slots_at + first * 4 + 4].copy_from_slice(&99u32.to_le_bytes());
        assert!(Table::parse(Bytes::Heap(bad)).unwrap().verify().is_err());
    }
}
