//! `SegmentHeader::decode` and `Seal::decode`; what decodes re-encodes to the input.
//! Checks: `mmlog_fuzz::segment_header_decode` in fuzz/src/lib.rs, shared with tests/fuzz_corpus.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mmlog_fuzz::segment_header_decode(data));
