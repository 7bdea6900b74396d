//! `mem-hog` — prints `hogging` (flushed), then allocates 1 MiB blocks filled
//! with non-zero bytes and keeps every one of them alive, forever.
//!
//! Used to test that the host's memory limit stops a guest: the program never
//! exits on its own and prints nothing after the first line (allocation
//! failure ends it with a trap/abort).

use std::hint::black_box;
use std::io::Write;

const BLOCK: usize = 1024 * 1024;

fn main() {
    let mut out = std::io::stdout();
    writeln!(out, "hogging").unwrap();
    out.flush().unwrap();

    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut fill: u8 = 1;
    loop {
        // Non-zero contents so every page is really touched.
        kept.push(black_box(vec![fill; BLOCK]));
        fill = if fill == u8::MAX { 1 } else { fill + 1 };
        black_box(&kept);
    }
}
