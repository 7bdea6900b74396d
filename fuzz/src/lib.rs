//! Generators and oracles behind the wasmzip fuzz targets.
//!
//! Each target in `fuzz_targets/` is a few lines that hand its input to one function here, which
//! drives `wasmzip-package` and checks what it promises: never a panic, only errors, and for what it
//! accepts, the round trips and invariants of its format (`docs/fuzzing.md` lists them per target).
//! The generators build valid inputs from `arbitrary` data; `src/bin/make-corpus.rs` writes the seeds.
#![deny(missing_docs)]

pub mod archive;
pub mod capability;
pub mod manifest;
pub mod package;
pub mod signing;
