//! The input as segment 0 of a log: `inspect` and `Log::open` + reader + append.
//! Checks: `mmlog_fuzz::segment_scan` in fuzz/src/lib.rs, shared with tests/fuzz_corpus.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mmlog_fuzz::segment_scan(data);
});
