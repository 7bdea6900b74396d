//! Exit codes of `wasmzip`. A guest's own exit code (0 to 255) is passed through unchanged; these are
//! the codes of what the host decides. Documented in README.md and docs/cli.md.

/// The guest's `wasi:cli/run` returned an error, or its exit code was outside 0..=255.
pub const GUEST_FAILED: u8 = 1;
/// The guest ran past its wall-clock limit.
pub const TIMEOUT: u8 = 124;
/// `wasmzip` refused to start the guest (bad input, package, signature, trust or policy), or the
/// command itself failed.
pub const REFUSED: u8 = 125;
/// The guest trapped (a panic, `unreachable`, a stack overflow, ...).
pub const TRAP: u8 = 134;
/// The guest ran out of memory under its memory limit.
pub const MEMORY: u8 = 137;

/// The process exit code for a guest's exit status.
pub fn guest_code(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(GUEST_FAILED)
}
