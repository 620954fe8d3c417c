//! Partitioned logs: N independent logs behind one handle, so that writers on different
//! partitions share no tail counter, no flusher and no segment.
//!
//! # Layout
//!
//! `<dir>/PARTITIONS` names the partition count (`mmlog partitions 1 <count>\n`, written once,
//! durably); partition `i` is an ordinary log in `<dir>/partition-<i:04>`, which
//! [`Log::open`] (and the `mmlog` tool) can open on its own.
//!
//! # Ordering
//!
//! - **Within a partition**, records are totally ordered by sequence number, with every
//!   promise of a single [`Log`].
//! - **Across partitions** there is no single order, and no shared counter to make one. A
//!   [`Cut`] names, for every partition, the sequence number below which records belong to it.
//!   [`PartitionedLog::cut_at_time`] gives the cut "as of time `T`": in each partition, the
//!   records before its first one stamped after `T`. It is well defined (the same log always
//!   gives the same cut) and respects real time: a record appended after another one returned
//!   is stamped no earlier (one wall clock for all partitions; a clock stepped backwards by an
//!   administrator can break this, as for any timestamp). Time travel and read models use
//!   it to mean "the state as of `T`" across partitions. [`PartitionedLog::cut`] is the
//!   committed end of every partition, read one after the other.
//! - A key always routes to the same partition ([`PartitionedLog::route`]: CRC-32C of the key,
//!   modulo the count; part of the format, never changed), so everything about one key (an
//!   item, a writer) is in one partition, in order.
//!
//! # Example
//!
//! ```
//! use mmlog::partitioned::PartitionedLog;
//! use mmlog::Options;
//!
//! # fn main() -> mmlog::Result<()> {
//! # let tmp = tempfile::tempdir().unwrap();
//! let log = PartitionedLog::open(tmp.path().join("log"), 2, Options::default())?;
//! let a = log.append(b"item-1", b"written")?;
//! let b = log.append(b"item-2", b"written")?;
//! assert_eq!(log.append(b"item-1", b"removed")?.partition, a.partition);
//!
//! // Everything so far, from every partition, in timestamp order.
//! let everything = log.cut()?;
//! let merged: Vec<_> = log.read_merged(&log.start(), &everything)?.collect::<Result<_, _>>()?;
//! assert_eq!(merged.len(), 3);
//! # let _ = b;
//! # Ok(())
//! # }
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::format::crc::checksum;
use crate::log::{Log, Reader};
use crate::options::Options;
use crate::storage::fs as sfs;

/// The file that records the partition count.
pub const PARTITIONS_FILE: &str = "PARTITIONS";
/// The most partitions one handle holds.
pub const PARTITIONS_MAX: usize = 4096;
const MANIFEST_TAG: &str = "mmlog partitions 1";

/// Where a record went: its partition and its sequence number there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The partition.
    pub partition: usize,
    /// The sequence number within the partition.
    pub seq: u64,
}

/// A consistent cut: for every partition, the sequence number below which its records belong
/// to the cut.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cut {
    next: Vec<u64>,
}

impl Cut {
    /// A cut from its per-partition sequence numbers.
    pub fn new(next_seqs: Vec<u64>) -> Cut {
        Cut { next: next_seqs }
    }

    /// For every partition, the first sequence number not in the cut.
    pub fn next_seqs(&self) -> &[u64] {
        &self.next
    }

    /// Whether the record at `position` lies below the cut.
    pub fn contains(&self, position: Position) -> bool {
        self.next
            .get(position.partition)
            .is_some_and(|&next| position.seq < next)
    }

    /// Records below the cut, over all partitions (counting from sequence number 0).
    pub fn records(&self) -> u64 {
        self.next.iter().sum()
    }
}

/// A record read across partitions ([`PartitionedLog::read_merged`]). Its payload is a copy:
/// zero-copy reads are per partition ([`PartitionedLog::partition`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedRecord {
    /// Where the record is.
    pub position: Position,
    /// When it was appended, in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// N independent logs behind one handle, routed by key. See the [module docs](self).
pub struct PartitionedLog {
    dir: PathBuf,
    parts: Vec<Log>,
}

impl PartitionedLog {
    /// Opens (creating if needed) a partitioned log of `partitions` partitions in `dir`, each
    /// with `options`. Reopening with a different count is an [`Error::InvalidArgument`]: the
    /// count decides where every key lives.
    pub fn open(dir: impl AsRef<Path>, partitions: usize, options: Options) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        prepare(&dir, partitions)?;
        let parts = (0..partitions)
            .map(|i| Log::open(partition_dir(&dir, i), options.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(PartitionedLog { dir, parts })
    }

    /// The directory holding the partitions.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// How many partitions there are.
    pub fn partitions(&self) -> usize {
        self.parts.len()
    }

    /// Partition `i`, a [`Log`] with all of its API (zero-copy reads, checkpoints,
    /// compaction, consumers).
    pub fn partition(&self, i: usize) -> Option<&Log> {
        self.parts.get(i)
    }

    /// The partition `key` routes to: CRC-32C of the key, modulo the partition count.
    pub fn route(&self, key: &[u8]) -> usize {
        route(key, self.parts.len())
    }

    /// Appends `payload` to the partition `key` routes to.
    pub fn append(&self, key: &[u8], payload: &[u8]) -> Result<Position> {
        self.append_to(self.route(key), payload)
    }

    /// Appends `payload` to partition `partition`.
    pub fn append_to(&self, partition: usize, payload: &[u8]) -> Result<Position> {
        let log = self.parts.get(partition).ok_or_else(|| {
            Error::invalid(format!(
                "partition {partition} does not exist ({} partitions)",
                self.parts.len()
            ))
        })?;
        Ok(Position {
            partition,
            seq: log.append(payload)?,
        })
    }

    /// Makes every record appended so far durable, in every partition.
    pub fn sync(&self) -> Result<()> {
        self.parts.iter().try_for_each(Log::sync)
    }

    /// The empty cut: nothing from any partition.
    pub fn start(&self) -> Cut {
        Cut::new(vec![0; self.parts.len()])
    }

    /// The committed end of every partition (every append that returned before this call is
    /// inside it). Partitions are read one after the other, so a record appended meanwhile
    /// may be in the cut for one partition and a later one not for another; for a cut that
    /// follows real time across partitions, use [`PartitionedLog::cut_at_time`].
    pub fn cut(&self) -> Result<Cut> {
        let next = self
            .parts
            .iter()
            .map(|log| Ok(log.last_seq_settled()?.map_or(0, |s| s + 1)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Cut::new(next))
    }

    /// The cut as of `time`: in each partition, every record before its first one stamped
    /// after `time`.
    pub fn cut_at_time(&self, time: SystemTime) -> Result<Cut> {
        let after = time + Duration::from_nanos(1);
        let next = self
            .parts
            .iter()
            .map(|log| {
                let mut reader = log.read_from_time(after)?;
                match reader.next() {
                    Some(rec) => Ok(rec?.seq()),
                    None => Ok(log.last_seq_settled()?.map_or(0, |s| s + 1)),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Cut::new(next))
    }

    /// The records between two cuts (`from` included, `until` not), from every partition,
    /// in timestamp order (ties by partition, then sequence number).
    pub fn read_merged(&self, from: &Cut, until: &Cut) -> Result<MergedReader> {
        if from.next.len() != self.parts.len() || until.next.len() != self.parts.len() {
            return Err(Error::invalid(format!(
                "a cut of {} or {} partitions for a log of {}",
                from.next.len(),
                until.next.len(),
                self.parts.len()
            )));
        }
        let mut sources = Vec::with_capacity(self.parts.len());
        for (i, log) in self.parts.iter().enumerate() {
            let start = from.next[i];
            let end = until.next[i];
            let reader = if start < end {
                Some(log.read_from(start)?)
            } else {
                None
            };
            sources.push(Source { reader, end });
        }
        let mut merged = MergedReader {
            sources,
            heads: BinaryHeap::new(),
            failed: None,
        };
        for i in 0..merged.sources.len() {
            merged.refill(i);
        }
        Ok(merged)
    }
}

impl std::fmt::Debug for PartitionedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedLog")
            .field("dir", &self.dir)
            .field("partitions", &self.parts.len())
            .finish()
    }
}

/// Creates `dir` and its manifest for `partitions` partitions, or checks the manifest there.
pub(crate) fn prepare(dir: &Path, partitions: usize) -> Result<()> {
    if partitions == 0 || partitions > PARTITIONS_MAX {
        return Err(Error::invalid(format!(
            "a partitioned log has 1 to {PARTITIONS_MAX} partitions, not {partitions}"
        )));
    }
    sfs::create_dir_all(dir).map_err(|e| Error::io("create dir", dir, e))?;
    let manifest = dir.join(PARTITIONS_FILE);
    match std::fs::read(&manifest) {
        Ok(bytes) => {
            let found = parse_manifest(&bytes).ok_or_else(|| {
                Error::invalid(format!(
                    "{} is not a partition manifest (expected \"{MANIFEST_TAG} <count>\")",
                    manifest.display()
                ))
            })?;
            if found != partitions {
                return Err(Error::invalid(format!(
                    "{} holds {found} partitions, not {partitions}: the count decides where \
             every key lives and cannot change",
                    dir.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = format!("{MANIFEST_TAG} {partitions}\n");
            let tmp = dir.join(format!("{PARTITIONS_FILE}.tmp"));
            sfs::replace_file(&manifest, &tmp, &[text.as_bytes()])?;
        }
        Err(e) => return Err(Error::io("read", &manifest, e)),
    }
    Ok(())
}

/// The directory of partition `i`.
pub(crate) fn partition_dir(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("partition-{i:04}"))
}

/// The partition `key` routes to among `partitions`.
pub(crate) fn route(key: &[u8], partitions: usize) -> usize {
    checksum(key) as usize % partitions.max(1)
}

fn parse_manifest(bytes: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(bytes).ok()?;
    let count = text.strip_prefix(MANIFEST_TAG)?.strip_prefix(' ')?;
    let count: usize = count.strip_suffix('\n')?.parse().ok()?;
    (1..=PARTITIONS_MAX).contains(&count).then_some(count)
}

struct Source {
    reader: Option<Reader>,
    end: u64,
}

/// A partition's next record: timestamp, partition, sequence number, payload (compared in
/// that order, so the smallest is the next in the merged order).
type Head = (u64, usize, u64, Vec<u8>);

/// Reads several partitions merged by timestamp ([`PartitionedLog::read_merged`]).
pub struct MergedReader {
    sources: Vec<Source>,
    /// The next record of each partition that has one, smallest first.
    heads: BinaryHeap<Reverse<Head>>,
    failed: Option<Error>,
}

impl MergedReader {
    /// Reads the next record of partition `i` into the heads, if it is below the end.
    fn refill(&mut self, i: usize) {
        let Some(source) = self.sources.get_mut(i) else {
            return;
        };
        let Some(reader) = source.reader.as_mut() else {
            return;
        };
        match reader.next() {
            Some(Ok(rec)) if rec.seq() < source.end => {
                let head = (rec.timestamp_ns(), i, rec.seq(), rec.payload().to_vec());
                self.heads.push(Reverse(head));
            }
            Some(Ok(_)) | None => source.reader = None,
            Some(Err(e)) => {
                source.reader = None;
                self.failed.get_or_insert(e);
            }
        }
    }
}

impl Iterator for MergedReader {
    type Item = Result<MergedRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        // An error ends the merge: records after it in that partition cannot be placed.
        if let Some(e) = self.failed.take() {
            self.heads.clear();
            self.sources.iter_mut().for_each(|s| s.reader = None);
            return Some(Err(e));
        }
        let Reverse((timestamp_ns, partition, seq, payload)) = self.heads.pop()?;
        self.refill(partition);
        Some(Ok(MergedRecord {
            position: Position { partition, seq },
            timestamp_ns,
            payload,
        }))
    }
}

impl std::fmt::Debug for MergedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergedReader")
            .field("partitions", &self.sources.len())
            .field("pending", &self.heads.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_rejects_garbage() {
        assert_eq!(parse_manifest(b"mmlog partitions 1 4\n"), Some(4));
        assert_eq!(parse_manifest(b"mmlog partitions 1 0\n"), None);
        assert_eq!(parse_manifest(b"mmlog partitions 1 4"), None);
        assert_eq!(parse_manifest(b"mmlog partitions 2 4\n"), None);
        assert_eq!(parse_manifest(b"\xff\xfe"), None);
        assert_eq!(parse_manifest(b"mmlog partitions 1 99999\n"), None);
    }

    #[test]
    fn routing_is_the_crc_of_the_key_and_never_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let log = PartitionedLog::open(tmp.path(), 7, Options::default()).unwrap();
        // Pinned: the route is part of the format.
        assert_eq!(log.route(b"item-1"), checksum(b"item-1") as usize % 7);
        assert_eq!(checksum(b"123456789"), 0xE306_9283);
    }
}
