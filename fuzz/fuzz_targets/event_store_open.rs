//! An event store over arbitrary records and an arbitrary snapshot: never a panic; the state
//! equals a model of the events when they are well formed.
//! Checks: `mmlog_fuzz::event_store_open` in fuzz/src/lib.rs, shared with tests/fuzz_corpus.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mmlog_fuzz::event_store_open(data);
});
