//! `big` — a deliberately large component (several MB of real code) used to
//! benchmark the host's compilation cache.
//!
//! `build.rs` generates thousands of distinct `#[inline(never)]` 64-bit mixing
//! functions and a table `FUNCS` holding all of them. This program chains
//! every function in table order starting from a seed and prints the result:
//!
//! ```text
//! usage: big [SEED]        SEED: u64, default 1
//! output: big: <result>    result is a decimal u64
//! ```
//!
//! A non-numeric SEED prints an error to stderr and exits with status 2.
//! Every function is reached through the table and called at runtime (the
//! table itself is passed through `black_box`), so none can be removed.

include!(concat!(env!("OUT_DIR"), "/generated.rs"));

fn main() {
    let seed = match std::env::args().nth(1) {
        None => 1,
        Some(s) => match s.parse::<u64>() {
            Ok(v) => v,
            Err(e) => {
                eprintln!("big: invalid seed {s:?}: {e}");
                std::process::exit(2);
            }
        },
    };
    let funcs: &[fn(u64) -> u64; FUNC_COUNT] = std::hint::black_box(&FUNCS);
    let result = funcs.iter().fold(seed, |acc, f| f(acc));
    println!("big: {result}");
}
