//! The workloads: what is appended or read, how much, by how many threads.

/// What a workload times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Appends from `threads` threads; `durable`: each append is durable when it returns.
    Append { durable: bool },
    /// `records` appended by one thread (untimed), then read back sequentially (timed).
    Read,
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
    /// What the table shows: records/s or payload bytes/s.
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
}

impl Unit {
    pub fn label(self) -> &'static str {
        match self {
            Unit::MRecords => "M records/s",
            Unit::KRecords => "k records/s",
            Unit::MBytes => "MB/s",
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

/// Every workload at full size, in the order of the table.
pub fn all() -> Vec<Workload> {
    vec![
        Workload {
            name: "append_64b_1t",
            kind: Kind::Append { durable: false },
            records: 2_000_000,
            size: 64,
            threads: 1,
            unit: Unit::MRecords,
        },
        Workload {
            name: "append_64b_4t",
            kind: Kind::Append { durable: false },
            records: 2_000_000,
            size: 64,
            threads: 4,
            unit: Unit::MRecords,
        },
        Workload {
            name: "append_4k_1t",
            kind: Kind::Append { durable: false },
            records: 100_000,
            size: 4096,
            threads: 1,
            unit: Unit::MBytes,
        },
        Workload {
            name: "durable_4t",
            kind: Kind::Append { durable: true },
            records: 4 * 2_000,
            size: 64,
            threads: 4,
            unit: Unit::KRecords,
        },
        Workload {
            name: "read_64b",
            kind: Kind::Read,
            records: 2_000_000,
            size: 64,
            threads: 1,
            unit: Unit::MRecords,
        },
    ]
}

/// The workload named `name`, shrunk 10x if `quick`.
pub fn find(name: &str, quick: bool) -> Option<Workload> {
    let mut w = all().into_iter().find(|w| w.name == name)?;
    if quick {
        w.records /= 10;
    }
    Some(w)
}
