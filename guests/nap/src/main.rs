//! `nap` — prints `napping` (flushed), sleeps, then prints `awake`.
//!
//! Usage: `nap [MILLISECONDS]` (default 3_600_000, one hour). The sleep is
//! `std::thread::sleep`, which on WASI 0.2 blocks inside a host call
//! (`wasi:clocks/monotonic-clock#subscribe-duration` + `wasi:io/poll#poll`),
//! so the guest executes no wasm code while it waits. Used to check that a
//! deadline also interrupts a guest parked in the host, not only one that
//! spins (compare `spin-forever`). An unparsable argument exits with status 2.
//!
//! `nap --pollables N` instead makes N clock pollables (`subscribe-duration`, one hour each), holds
//! them all, and prints `pollables N ok`: a check that the host's handle cap counts the handles the
//! guest holds.

use std::io::Write;
use std::time::Duration;

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--pollables") {
        let n: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(0);
        let held: Vec<_> = (0..n).map(|_| wasip2::clocks::monotonic_clock::subscribe_duration(3_600_000_000_000)).collect();
        println!("pollables {} ok", held.len());
        return;
    }
    let ms = match std::env::args().nth(1) {
        None => 3_600_000,
        Some(text) => match text.parse::<u64>() {
            Ok(ms) => ms,
            Err(_) => {
                eprintln!("nap: `{text}` is not a number of milliseconds");
                std::process::exit(2);
            }
        },
    };

    let mut out = std::io::stdout();
    writeln!(out, "napping").unwrap();
    out.flush().unwrap();

    std::thread::sleep(Duration::from_millis(ms));

    writeln!(out, "awake").unwrap();
    out.flush().unwrap();
}
