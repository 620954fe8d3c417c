//! Damaged directories: each case gives a truncation with a report, or a clear error; never a
//! panic, never a silently different record.
