//! The only code that touches the filesystem: files, directories, locks and mappings.

pub(crate) mod fs;
pub(crate) mod mmap;
