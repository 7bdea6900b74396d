//! The DSSE signature envelope (`signature.dsse.json`) on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| wasmzip_fuzz::signing::envelope(bytes));
