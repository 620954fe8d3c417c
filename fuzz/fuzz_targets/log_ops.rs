//! Arbitrary operation sequences on a log with simulated power cuts: every acknowledged
//! record survives, nothing else appears but a prefix of what was appended, never a panic.
//! Checks: `mmlog_fuzz::log_ops` in fuzz/src/lib.rs, shared with tests/fuzz_corpus.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mmlog_fuzz::log_ops(data);
});
