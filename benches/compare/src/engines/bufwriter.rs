//! The baseline: a plain file written through `std::io::BufWriter` (1 MiB buffer) behind a
//! `Mutex`. A record is `[len: u32 LE][crc32 (crc32fast) of the payload: u32 LE][payload]`.
//! No-sync workloads: `write_all` of header and payload per record, the buffer handed to the OS
//! (`flush`) once at the end, inside the timed part. `durable_4t`: under the mutex, write, `flush`
//! and `File::sync_data` per record (no group commit). Reading: `BufReader` (1 MiB), header,
//! payload, CRC check.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Mutex;

use crate::harness::{self, Outcome, Writer, ctx};
use crate::workload::{Kind, Workload};

const BUF: usize = 1 << 20;

struct W<'a> {
    file: &'a Mutex<BufWriter<File>>,
    durable: bool,
}

impl Writer for W<'_> {
    #[inline]
    fn append(&mut self, payload: &[u8]) -> Result<(), String> {
        self.append_batch(&[payload])
    }

    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<(), String> {
        let mut f = self
            .file
            .lock()
            .map_err(|_| "bufwriter: mutex poisoned".to_string())?;
        for payload in payloads {
            write_record(&mut f, payload)?;
        }
        if self.durable {
            f.flush().map_err(ctx("bufwriter flush"))?;
            f.get_ref()
                .sync_data()
                .map_err(ctx("bufwriter sync_data"))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        let mut f = self
            .file
            .lock()
            .map_err(|_| "bufwriter: mutex poisoned".to_string())?;
        f.flush().map_err(ctx("bufwriter flush"))
    }
}

/// `[len u32][crc32 u32][payload]` into the buffer.
#[inline]
fn write_record(f: &mut BufWriter<File>, payload: &[u8]) -> Result<(), String> {
    let len = u32::try_from(payload.len()).map_err(ctx("record length"))?;
    let crc = crc32fast::hash(payload);
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..].copy_from_slice(&crc.to_le_bytes());
    f.write_all(&header).map_err(ctx("bufwriter write"))?;
    f.write_all(payload).map_err(ctx("bufwriter write"))
}

/// The open workloads: a plain file log's open is `File::open` and a seek to its end; it
/// validates nothing (which is why it is the baseline, not a peer that checks its tail).
fn open_workload(w: &Workload, path: &Path, cold: bool) -> Result<Outcome, String> {
    use std::io::Seek;
    let dir = path.parent().ok_or("bufwriter: no parent directory")?;
    let (seconds, end) = harness::timed_open(dir, cold, || {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(ctx("bufwriter reopen"))?;
        f.seek(std::io::SeekFrom::End(0))
            .map_err(ctx("bufwriter seek"))
    })?;
    let expected = w.records * (w.size as u64 + 8);
    if end != expected {
        return Err(format!(
            "bufwriter: {end} bytes after reopening, expected {expected}"
        ));
    }
    Ok(Outcome::Measured {
        records: w.records,
        seconds,
        note: Some("open = File::open and a seek to the end; nothing is validated".to_string()),
        detail: None,
    })
}

fn read_all(path: &Path) -> Result<(u64, u64), String> {
    let mut r = BufReader::with_capacity(BUF, File::open(path).map_err(ctx("bufwriter open"))?);
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut header = [0u8; 8];
    let mut payload = Vec::new();
    loop {
        match r.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("bufwriter read: {e}")),
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        payload.resize(len, 0);
        r.read_exact(&mut payload).map_err(ctx("bufwriter read"))?;
        if crc32fast::hash(&payload) != crc {
            return Err(format!("bufwriter: bad crc at record {n}"));
        }
        n += 1;
        bytes += len as u64;
    }
    Ok((n, bytes))
}

pub fn run(w: &Workload, dir: &Path) -> Result<Outcome, String> {
    let path = dir.join("log");
    let file = File::create(&path).map_err(ctx("bufwriter create"))?;
    let file = Mutex::new(BufWriter::with_capacity(BUF, file));
    harness::settle();
    let durable = w.durable();
    let writer = || W {
        file: &file,
        durable,
    };
    let seconds = match w.kind {
        Kind::Append { .. } => {
            let writers = (0..w.threads).map(|_| writer()).collect();
            harness::drive(writers, w.per_thread(), w.size, w.batch)?
        }
        Kind::Read | Kind::Open { .. } => {
            harness::load(writer(), w.records, w.size)?;
            let f = file
                .lock()
                .map_err(|_| "bufwriter: mutex poisoned".to_string())?;
            f.get_ref()
                .sync_data()
                .map_err(ctx("bufwriter sync_data"))?;
            drop(f);
            match w.kind {
                Kind::Open { cold } => return open_workload(w, &path, cold),
                _ => harness::timed_read(w.records, w.size, || read_all(&path))?,
            }
        }
    };
    let f = file
        .into_inner()
        .map_err(|_| "bufwriter: mutex poisoned".to_string())?;
    f.into_inner()
        .map_err(|e| format!("bufwriter flush: {}", e.error()))?
        .sync_data()
        .map_err(ctx("bufwriter sync_data"))?;
    Ok(Outcome::Measured {
        records: w.records,
        seconds,
        note: None,
        detail: None,
    })
}
