//! `frame::decode_at` at every 8-aligned offset; a decoded record re-encodes to its bytes.
//! Checks: `mmlog_fuzz::frame_decode` in fuzz/src/lib.rs, shared with tests/fuzz_corpus.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mmlog_fuzz::frame_decode(data));
