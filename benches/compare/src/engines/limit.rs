//! The machine's limits for each workload, measured in the same run as the engines: what the
//! workload costs with no engine at all.
//!
//! - **no-sync appends**: every thread copies each record into its own pre-faulted mapping (a
//!   64 MiB anonymous region, reused cyclically) and computes `crc32fast` over the copy. No
//!   shared counter, no header, no file: the memory and checksum work alone.
//! - **durable appends**: the time of one `pwrite` of 4 KiB + `fdatasync` on this file system
//!   (the median of 200), and the limit is every writer's call made durable by one such sync:
//!   `threads * batch / sync time` records per second, a perfect group commit. The time of an
//!   `msync` of one freshly dirtied page of a shared mapping is measured too and reported.
//! - **reads**: `crc32fast` over the same records lying in memory, in a fresh-per-record loop:
//!   checking every record with nothing to find or copy.
//! - **opens**: no limit (`n/a`).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use crate::harness::{self, Outcome, Payloads, Writer, ctx};
use crate::workload::{Kind, Workload};

/// Bytes of each thread's copy target.
const REGION: usize = 64 << 20;

struct Copier {
    region: memmap2::MmapMut,
    at: usize,
}

impl Copier {
    fn new() -> Result<Copier, String> {
        let mut region = memmap2::MmapOptions::new()
            .len(REGION)
            .populate()
            .map_anon()
            .map_err(ctx("mmap"))?;
        // Touch every page so none faults during the timed part.
        region.iter_mut().step_by(4096).for_each(|b| *b = 1);
        Ok(Copier { region, at: 0 })
    }
}

impl Writer for Copier {
    #[inline]
    fn append(&mut self, payload: &[u8]) -> Result<(), String> {
        if self.at + payload.len() > REGION {
            self.at = 0;
        }
        let dst = &mut self.region[self.at..self.at + payload.len()];
        dst.copy_from_slice(payload);
        std::hint::black_box(crc32fast::hash(dst));
        self.at += payload.len().next_multiple_of(8);
        Ok(())
    }

    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<(), String> {
        payloads.iter().try_for_each(|p| self.append(p))
    }
}

/// Median seconds of `n` runs of `f`.
fn median(n: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[n / 2])
}

/// `pwrite` of 4 KiB + `fdatasync`, and `msync` of one freshly dirtied page: median seconds.
fn sync_times(dir: &Path) -> Result<(f64, f64), String> {
    let path = dir.join("sync");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(ctx("create"))?;
    file.set_len(4 << 20).map_err(ctx("set_len"))?;
    file.sync_all().map_err(ctx("fsync"))?;
    let page = [7u8; 4096];
    let mut i = 0u64;
    let fdatasync = median(200, || {
        file.write_all_at(&page, (i % 1024) * 4096)
            .map_err(ctx("pwrite"))?;
        i += 1;
        file.sync_data().map_err(ctx("fdatasync"))
    })?;
    // SAFETY: the file is private to this process and only written through this mapping now.
    let mut map = unsafe { memmap2::MmapMut::map_mut(&file) }.map_err(ctx("mmap"))?;
    let mut j = 0usize;
    let msync = median(200, || {
        let at = (j % 1024) * 4096;
        j += 1;
        map[at] = map[at].wrapping_add(1);
        map.flush_range(at, 4096).map_err(ctx("msync"))
    })?;
    Ok((fdatasync, msync))
}

pub fn run(w: &Workload, dir: &Path) -> Result<Outcome, String> {
    match w.kind {
        Kind::Append { durable: false } => {
            let writers = (0..w.threads)
                .map(|_| Copier::new())
                .collect::<Result<Vec<_>, _>>()?;
            let seconds = harness::drive(writers, w.per_thread(), w.size, 1)?;
            Ok(Outcome::Measured {
                records: w.records,
                seconds,
                note: None,
                detail: Some("copy + crc32fast per record, per thread, no engine".to_string()),
            })
        }
        Kind::Append { durable: true } => {
            let (fdatasync, msync) = sync_times(dir)?;
            let per_sync = (w.threads as u64 * w.batch) as f64;
            Ok(Outcome::Measured {
                records: w.records,
                seconds: w.records as f64 / per_sync * fdatasync,
                note: None,
                detail: Some(format!(
                    "pwrite 4 KiB + fdatasync {:.0} us, msync of one dirtied page {:.0} us (medians of 200); {per_sync} records per sync",
                    fdatasync * 1e6,
                    msync * 1e6
                )),
            })
        }
        Kind::Read => {
            let payloads = Payloads::new(w.size, 1);
            let seconds = harness::timed_read(w.records, w.size, || {
                let (mut n, mut bytes) = (0u64, 0u64);
                for i in 0..w.records {
                    let p = payloads.get(i);
                    std::hint::black_box(crc32fast::hash(p));
                    n += 1;
                    bytes += p.len() as u64;
                }
                Ok((n, bytes))
            })?;
            Ok(Outcome::Measured {
                records: w.records,
                seconds,
                note: None,
                detail: Some("crc32fast over the records in memory".to_string()),
            })
        }
        Kind::Open { .. } => Ok(Outcome::Unsupported(
            "no physical limit for an open".to_string(),
        )),
    }
}
