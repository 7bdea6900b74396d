//! Valid packages, damaged by arbitrary mutations, through the reader, `inspect` and `verify`.
#![no_main]

use wasmzip_fuzz::package::{MutatedPackage, check};

libfuzzer_sys::fuzz_target!(|input: MutatedPackage| check(&input));
