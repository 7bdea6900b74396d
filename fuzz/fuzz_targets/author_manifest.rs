//! `wasmzip.toml` parsing on arbitrary text.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| wasmzip_fuzz::manifest::author_manifest(bytes));
