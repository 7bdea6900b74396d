//! Arbitrary members through the archive writer and back through the reader: the same names and bytes.
#![no_main]

use wasmzip_fuzz::archive::{Member, round_trip};

libfuzzer_sys::fuzz_target!(|members: Vec<Member>| round_trip(&members));
