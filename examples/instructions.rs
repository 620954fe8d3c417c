//! A fixed workload for counting instructions per append and per read record with valgrind's
//! callgrind (`benches/instructions.sh` runs it).
//!
//! - `instructions append N`: opens a fresh `Buffered` log in a temporary directory, with one
//!   segment large enough that N appends never roll over, waits 300 ms for the background
//!   threads to settle, then appends N records of 64 bytes (each record's payload differs).
//! - `instructions read N`: the same N appends, then opens a reader at sequence number 0 and
//!   reads every record back, checking the count.
//!
//! The measured code is in the `#[inline(never)]` functions `append_loop`, `open_reader` and
//! `read_loop`, so `valgrind --tool=callgrind --toggle-collect='instructions::append_loop*'`
//! counts only the thread that appends (or opens the reader, or reads), without the rest of
//! the setup and without the background threads. The difference of the counts for two N,
//! divided by the difference of N, is the cost of one record with the fixed costs cancelled
//! out.

use std::error::Error;
use std::hint::black_box;
use std::time::Duration;

use mmlog::{Durability, Log, Options, Reader, SEGMENT_SIZE_MAX};

/// Payload bytes per record.
const PAYLOAD_LEN: usize = 64;
/// Bytes a 64-byte record takes in a segment: 24 bytes of frame header, then the payload.
const FRAME_LEN: u64 = 24 + PAYLOAD_LEN as u64;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: instructions (append|read) N";
    let (Some(mode), Some(n)) = (args.get(1), args.get(2)) else {
        return Err(usage.into());
    };
    let n: u64 = n.parse().map_err(|e| format!("{usage}: N: {e}"))?;
    // Room for N frames, the segment header and the end marker, in whole 4 KiB pages.
    let needed = n.saturating_mul(FRAME_LEN).saturating_add(64 << 10);
    if needed > SEGMENT_SIZE_MAX {
        return Err(format!("N = {n} does not fit in one segment of at most 1 GiB").into());
    }
    let segment_size = needed.next_multiple_of(4 << 10);
    let dir = tempfile::tempdir()?;
    let options = Options::default()
        .segment_size(segment_size)
        .durability(Durability::Buffered);
    let log = Log::open(dir.path(), options)?;
    std::thread::sleep(Duration::from_millis(300));
    match mode.as_str() {
        "append" => {
            append_loop(&log, n)?;
        }
        "read" => {
            append_loop(&log, n)?;
            let reader = open_reader(&log)?;
            let read = read_loop(reader)?;
            if read != n {
                return Err(format!("read {read} records, appended {n}").into());
            }
        }
        _ => return Err(usage.into()),
    }
    log.close()?;
    dir.close()?;
    println!("{mode} {n}: ok");
    Ok(())
}

/// Appends `n` records of 64 bytes; the first 8 bytes of each are its index.
#[inline(never)]
fn append_loop(log: &Log, n: u64) -> mmlog::Result<()> {
    let mut payload = [0x5au8; PAYLOAD_LEN];
    for i in 0..n {
        payload[..8].copy_from_slice(&i.to_le_bytes());
        black_box(log.append(&payload)?);
    }
    Ok(())
}

/// A reader at sequence number 0 (which first indexes the records already published).
#[inline(never)]
fn open_reader(log: &Log) -> mmlog::Result<Reader> {
    log.read_from(0)
}

/// Reads every record from `reader`; returns how many there were.
#[inline(never)]
fn read_loop(mut reader: Reader) -> mmlog::Result<u64> {
    let mut count = 0u64;
    while let Some(rec) = reader.next() {
        black_box(rec?.payload());
        count += 1;
    }
    Ok(count)
}
