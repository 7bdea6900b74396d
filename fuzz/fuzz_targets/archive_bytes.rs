//! The archive reader on arbitrary bytes: open, list, read every member; errors only, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    wasmzip_fuzz::archive::read_all(bytes);
});
