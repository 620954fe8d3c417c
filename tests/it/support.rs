//! Helpers shared by the integration tests.

use std::path::Path;

use mmlog::{Log, Options};

/// Reads every committed record as `(seq, payload)`.
pub fn read_all(log: &Log) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut r = log.read_from(0).expect("reader");
    while let Some(rec) = r.next() {
        let rec = rec.expect("record");
        out.push((rec.seq(), rec.payload().to_vec()));
    }
    out
}

/// A payload that names its writer and index, so any mix-up is visible.
pub fn payload(writer: usize, i: usize, len: usize) -> Vec<u8> {
    let mut p = format!("w{writer}-i{i}-").into_bytes();
    while p.len() < len {
        p.push(b'a' + ((writer * 7 + i + p.len()) % 26) as u8);
    }
    p.truncate(len.max(1));
    p
}

pub fn open(dir: &Path, options: Options) -> Log {
    Log::open(dir, options).expect("open")
}
