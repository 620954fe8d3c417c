//! `consumer_file::decode` and `archive_file::decode_header`; what decodes re-encodes to the
//! input (the block-independent part, for an archive header), and no single bit flip decodes.
//! Checks: `mmlog_fuzz::small_files_decode` in fuzz/src/lib.rs, shared with tests/fuzz_corpus.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mmlog_fuzz::small_files_decode(data));
