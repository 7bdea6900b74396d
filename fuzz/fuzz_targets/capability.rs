//! Capability tokens, up to three per input (one per line): parse, display, `covers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| wasmzip_fuzz::capability::tokens(bytes));
