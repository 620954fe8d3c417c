//! The workloads: what is appended or read, how much, by how many threads.

/// What a workload times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Appends from `threads` threads. `durable`: each call is durable when it returns; a call
    /// appends one record, or `Workload::batch` records at once.
    Append { durable: bool },
    /// `records` appended by one thread (untimed), then read back sequentially (timed).
    Read,
    /// `records` appended by one thread and the engine closed (untimed), then the engine's open
    /// (timed), after its files were evicted from the page cache if `cold`.
    Open { cold: bool },
}

/// One workload, at the size it runs at.
#[derive(Clone, Debug)]
pub struct Workload {
    pub name: &'static str,
    pub kind: Kind,
    /// Records in all (split evenly across the threads).
    pub records: u64,
    /// Payload bytes per record.
    pub size: usize,
    pub threads: usize,
    /// Records per call for durable appends (1: every record is its own durable call).
    pub batch: u64,
    /// What the table shows: records/s, payload bytes/s or milliseconds.
    pub unit: Unit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Millions of records per second.
    MRecords,
    /// Thousands of records per second.
    KRecords,
    /// Megabytes (10^6 bytes) of payload per second.
    MBytes,
    /// Milliseconds for the timed part (lower is better).
    Millis,
}

impl Unit {
    pub fn label(self) -> &'static str {
        match self {
            Unit::MRecords => "M records/s",
            Unit::KRecords => "k records/s",
            Unit::MBytes => "MB/s",
            Unit::Millis => "ms",
        }
    }
}

impl Workload {
    /// Records each thread appends.
    pub fn per_thread(&self) -> u64 {
        self.records / self.threads as u64
    }

    pub fn durable(&self) -> bool {
        matches!(self.kind, Kind::Append { durable: true })
    }
}

const fn append(
    name: &'static str,
    records: u64,
    size: usize,
    threads: usize,
    unit: Unit,
) -> Workload {
    Workload {
        name,
        kind: Kind::Append { durable: false },
        records,
        size,
        threads,
        batch: 1,
        unit,
    }
}

const fn durable(name: &'static str, threads: usize, per_thread: u64, batch: u64) -> Workload {
    Workload {
        name,
        kind: Kind::Append { durable: true },
        records: threads as u64 * per_thread,
        size: 64,
        threads,
        batch,
        unit: Unit::KRecords,
    }
}

const fn read(name: &'static str, records: u64, size: usize, unit: Unit) -> Workload {
    Workload {
        name,
        kind: Kind::Read,
        records,
        size,
        threads: 1,
        batch: 1,
        unit,
    }
}

const fn open(name: &'static str, cold: bool) -> Workload {
    Workload {
        name,
        kind: Kind::Open { cold },
        // 1 GiB of 4 KiB records.
        records: 262_144,
        size: 4096,
        threads: 1,
        batch: 1,
        unit: Unit::Millis,
    }
}

/// Every workload at full size, in the order of the table.
pub fn all() -> Vec<Workload> {
    use Unit::{MBytes, MRecords};
    vec![
        append("append_64b_1t", 2_000_000, 64, 1, MRecords),
        append("append_64b_2t", 2_000_000, 64, 2, MRecords),
        append("append_64b_4t", 2_000_000, 64, 4, MRecords),
        append("append_64b_16t", 2_000_000, 64, 16, MRecords),
        append("append_4k_1t", 100_000, 4096, 1, MBytes),
        append("append_4k_2t", 100_000, 4096, 2, MBytes),
        append("append_4k_4t", 100_000, 4096, 4, MBytes),
        append("append_4k_16t", 100_000, 4096, 16, MBytes),
        durable("durable_1t", 1, 2_000, 1),
        durable("durable_4t", 4, 2_000, 1),
        durable("durable_64t", 64, 250, 1),
        durable("durable_batch64_1t", 1, 200 * 64, 64),
        durable("durable_batch64_4t", 4, 100 * 64, 64),
        durable("durable_batch64_64t", 64, 20 * 64, 64),
        read("read_64b", 2_000_000, 64, MRecords),
        read("read_4k", 100_000, 4096, MBytes),
        open("open_1gib_warm", false),
        open("open_1gib_cold", true),
    ]
}

/// The workload named `name`, shrunk 10x if `quick` (batches stay whole).
pub fn find(name: &str, quick: bool) -> Option<Workload> {
    let mut w = all().into_iter().find(|w| w.name == name)?;
    if quick {
        let unit = w.threads as u64 * w.batch;
        w.records = (w.records / 10).div_ceil(unit) * unit;
    }
    Some(w)
}
