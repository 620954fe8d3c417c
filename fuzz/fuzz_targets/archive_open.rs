//! One compressed archive file of a small compacted log damaged by the input, then `Log::open`,
//! `archived_segments`, `verify_archive` and readers: only records that were written come out.
//! Checks: `mmlog_fuzz::archive_open` in fuzz/src/lib.rs, shared with tests/fuzz_corpus.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mmlog_fuzz::archive_open(data);
});
