//! `spin-forever` — prints `spinning` (flushed), then busy-loops forever.
//!
//! Used to test that the host can interrupt a guest that never yields
//! (epoch/fuel deadlines). `black_box` keeps the optimiser from removing or
//! collapsing the loop. The program never exits on its own.

use std::hint::black_box;
use std::io::Write;

fn main() {
    let mut out = std::io::stdout();
    writeln!(out, "spinning").unwrap();
    out.flush().unwrap();

    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}
