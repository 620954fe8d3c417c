//! The only code that touches the filesystem: files, directories, locks and mappings, and the
//! seam through which crash tests simulate power loss and inject I/O faults.

pub(crate) mod fs;
pub(crate) mod mmap;
#[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
pub(crate) mod sim;
