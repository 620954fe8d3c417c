//! `checkpoint::decode`; success means `checkpoint::encode` gives a prefix of the input.
//! Checks: `mmlog_fuzz::checkpoint_decode` in fuzz/src/lib.rs, shared with tests/fuzz_corpus.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mmlog_fuzz::checkpoint_decode(data));
