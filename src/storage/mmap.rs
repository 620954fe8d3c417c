//! Memory-mapped segment files, and the contract that makes handing out `&[u8]` into them sound.
//!
//! # The soundness contract
//!
//! A `&[u8]` promises the compiler that its bytes do not change while it lives. mmlog keeps that
//! promise for every slice it hands out into a mapping:
//!
//! 1. **One writer process.** The owning process holds an exclusive `flock` on `<dir>/LOCK`
//!    for as long as the log is open, and files are created `0600`. Other processes that read
//!    a live log (the tools) use `pread` copies, never a mapping.
//! 2. **Published bytes are immutable.** A frame's bytes are written once, before its commit
//!    word is stored with release ordering; nothing writes them again while the file exists.
//!    Slices are only formed over frames whose commit word was loaded (acquire) as non-zero.
//! 3. **Unpublished bytes belong to their writer alone.** A writer copies into the range it
//!    reserved through [`Mapping::write`] (and may then read it back to compute the CRC);
//!    no other thread forms a reference to that range until the frame is published. Commit
//!    words are only accessed as `AtomicU64`.
//! 4. **Files are never truncated while mapped.** Segments are pre-allocated to their full
//!    length; recovery clears a torn tail by writing zeros, not by truncating. A mapping lives
//!    in an `Arc` until the last reader drops it, whatever happens to the file's name.
//!
//! Outside interference (another program truncating or writing a segment) is outside this
//! contract: it can corrupt data and, for truncation, end the process with SIGBUS, as for any
//! memory-mapped store (LMDB documents the same).

use std::fs::File;
use std::io;
use std::sync::atomic::AtomicU64;

use memmap2::{MmapOptions, MmapRaw};

/// A shared, read-write mapping of a whole segment file.
pub(crate) struct Mapping {
    raw: MmapRaw,
    len: u64,
}

impl Mapping {
    /// Maps `len` bytes of `file`, shared. With `populate`, the kernel pre-faults the page
    /// tables so the first writes do not take a fault per page.
    pub(crate) fn map(file: &File, len: u64, writable: bool, populate: bool) -> io::Result<Self> {
        let ulen = usize::try_from(len).map_err(|_| io::Error::other("segment too large"))?;
        let mut opts = MmapOptions::new();
        opts.len(ulen);
        if populate {
            opts.populate();
        }
        let raw = if writable {
            opts.map_raw(file)?
        } else {
            opts.map_raw_read_only(file)?
        };
        Ok(Mapping { raw, len })
    }

    /// A private, zero-filled, writable anonymous mapping of `len` bytes: the home of a
    /// segment decompressed from the archive.
    pub(crate) fn anonymous(len: u64) -> io::Result<Self> {
        let ulen = usize::try_from(len).map_err(|_| io::Error::other("segment too large"))?;
        let raw = MmapRaw::from(MmapOptions::new().len(ulen).map_anon()?);
        Ok(Mapping { raw, len })
    }

    /// The commit word at `offset`, or `None` if `offset` is not an 8-aligned position with 8
    /// bytes inside the mapping.
    #[inline]
    pub(crate) fn word(&self, offset: u64) -> Option<&AtomicU64> {
        if !offset.is_multiple_of(8) || offset.checked_add(8)? > self.len {
            return None;
        }
        // SAFETY: the mapping starts page-aligned, so `offset % 8 == 0` makes the address
        // 8-aligned, and `offset + 8 <= len` keeps all 8 bytes inside the live mapping, which
        // `self` keeps alive for the returned lifetime. `AtomicU64` has the size and alignment
        // of `u64`, and every access to a commit word goes through atomics (contract rule 3).
        Some(unsafe { &*self.raw.as_ptr().add(offset as usize).cast::<AtomicU64>() })
    }

    /// Copies `src` to `offset`. Returns false (and writes nothing) if out of bounds.
    ///
    /// # Safety
    ///
    /// The caller must own `offset..offset + src.len()` exclusively: a reservation not yet
    /// published, or a header not yet visible to other threads. No reference to these bytes
    /// may exist while they are written.
    #[inline]
    pub(crate) unsafe fn write(&self, offset: u64, src: &[u8]) -> bool {
        let in_bounds = offset
            .checked_add(src.len() as u64)
            .is_some_and(|end| end <= self.len);
        if !in_bounds {
            return false;
        }
        // SAFETY: bounds checked above; the caller guarantees exclusive ownership of the range,
        // and `src` cannot overlap a range nobody holds a reference to.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                self.raw.as_mut_ptr().add(offset as usize),
                src.len(),
            );
        }
        true
    }

    /// The published bytes `offset..offset + len`, or `None` if out of bounds.
    ///
    /// # Safety
    ///
    /// Every byte of the range must be published and immutable (contract rule 2): it lies in a
    /// frame whose commit word was loaded as non-zero with acquire ordering, or in a segment
    /// no thread writes any more.
    #[inline]
    pub(crate) unsafe fn bytes(&self, offset: u64, len: u64) -> Option<&[u8]> {
        if offset.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: bounds checked above, the mapping outlives `&self`, and the caller
        // guarantees that nothing writes these bytes while the slice lives.
        Some(unsafe {
            std::slice::from_raw_parts(self.raw.as_ptr().add(offset as usize), len as usize)
        })
    }

    /// The unpublished bytes `offset..offset + len`, for writing in place; `None` if out of
    /// bounds.
    ///
    /// # Safety
    ///
    /// The caller must own the range exclusively (an unpublished reservation) for as long as
    /// the returned slice lives, and no other reference to these bytes may exist meanwhile.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn bytes_mut(&self, offset: u64, len: u64) -> Option<&mut [u8]> {
        if offset.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: bounds checked above; exclusivity is the caller's contract.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.raw.as_mut_ptr().add(offset as usize), len as usize)
        })
    }

    /// Pre-faults `offset..offset + len` writable (`MADV_POPULATE_WRITE`), so writers do not
    /// take a page fault (and, on ext4, an extent conversion) per page. Best effort: kernels
    /// before 5.14 do not know the advice, and nothing depends on it.
    pub(crate) fn populate_write(&self, offset: u64, len: u64) {
        let start = offset - offset % 4096;
        let end = offset.saturating_add(len).min(self.len);
        if end > start {
            let _ = self.raw.advise_range(
                memmap2::Advice::PopulateWrite,
                start as usize,
                (end - start) as usize,
            );
        }
    }

    /// Drops this mapping's page-table entries for `offset..offset + len` (whole pages only;
    /// `MADV_DONTNEED`). The bytes stay in the page cache, dirty state included, and are
    /// faulted back in on the next access.
    ///
    /// Why: writing back a page that is mapped writable makes the kernel write-protect it
    /// and flush every CPU's TLB, one page at a time; on a virtual machine that inter-processor
    /// interrupt costs microseconds per page. Pages nobody will write again (published frames,
    /// the unused end of a complete segment) are better unmapped before they are synced.
    pub(crate) fn release_pages(&self, offset: u64, len: u64) {
        let start = offset.div_ceil(4096) * 4096;
        let end = offset.saturating_add(len).min(self.len) / 4096 * 4096;
        if end > start {
            // SAFETY: on a shared file mapping `MADV_DONTNEED` only removes page-table entries:
            // the file's bytes, and any dirty state, stay in the page cache, and the next
            // access maps the same bytes again. No byte that a reference points to changes.
            let _ = unsafe {
                self.raw.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start as usize,
                    (end - start) as usize,
                )
            };
        }
    }

    /// `msync(MS_SYNC)` over `offset..offset + len` (widened to whole pages).
    pub(crate) fn flush_range(&self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let end = offset.saturating_add(len).min(self.len);
        let start = offset.min(end);
        self.raw.flush_range(start as usize, (end - start) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn words_writes_and_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        file.set_len(4096).unwrap();
        let m = Mapping::map(&file, 4096, true, false).unwrap();
        assert!(m.word(4).is_none());
        assert!(m.word(4096).is_none());
        assert!(m.word(4088).is_some());
        // SAFETY: no other thread or reference touches the mapping in this test.
        unsafe {
            assert!(m.write(16, b"abc"));
            assert!(!m.write(4095, b"ab"));
            assert_eq!(m.bytes(16, 3).unwrap(), b"abc");
            assert!(m.bytes(4090, 7).is_none());
        }
        m.word(8).unwrap().store(0x1122, Ordering::Release);
        // SAFETY: as above.
        assert_eq!(unsafe { m.bytes(8, 2) }.unwrap(), &[0x22, 0x11]);
        m.flush_range(0, 4096).unwrap();
        m.flush_range(100, 0).unwrap();
    }
}
