//! `crash` — prints `about to crash` (flushed), then panics inside
//! `explode` with the message `crash guest panicked on purpose`.
//!
//! Used to test that the host reports guest traps with a useful backtrace:
//! `explode` is `#[inline(never)]` and recursive, so frames named `explode`
//! (with this file's line numbers, from the release profile's line tables)
//! appear in the trace. The process ends with a trap (panic = abort on WASI).

use std::hint::black_box;
use std::io::Write;

#[inline(never)]
fn explode(depth: u32) {
    if black_box(depth) > 0 {
        explode(depth - 1);
        // Work after the call keeps it from being a tail call.
        black_box(depth);
    } else {
        panic!("crash guest panicked on purpose");
    }
}

fn main() {
    let mut out = std::io::stdout();
    writeln!(out, "about to crash").unwrap();
    out.flush().unwrap();
    explode(black_box(3));
}
