//! `manifest.json` parsing on arbitrary bytes, and its round trip through the canonical bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| wasmzip_fuzz::manifest::package_manifest(bytes));
