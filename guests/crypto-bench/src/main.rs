//! `crypto_bench` — a WASI 0.2 command that measures host-held key operations through
//! `wasmzip:crypto` (via the `wasmzip-guest` crate). Compared by `bench/crypto.sh` with the native
//! baseline `crates/keystore/examples/crypto_baseline.rs`, which prints the same lines.
//!
//! ```text
//! crypto_bench sign KEY N        N signatures (Ed25519 or ECDSA P-256, whatever KEY is) of one
//!                                64-byte message; grant crypto:key:KEY:sign. Prints
//!                                sign ops=N secs=S per_sec=R
//! crypto_bench seal KEY SIZE N   N seals of one SIZE-byte plaintext with empty associated data;
//!                                grant crypto:key:KEY:seal. Prints
//!                                seal size=SIZE ops=N secs=S mb_per_sec=R per_sec=R
//! ```
//!
//! Only the loop is timed (`std::time::Instant`, the WASI monotonic clock): opening the key, building
//! the input and one untimed warm-up operation come before it. `mb_per_sec` counts plaintext bytes,
//! MB = 10^6 bytes. `secs` has 6 decimals, rates 1 (`per_sec`) or 2 (`mb_per_sec`).
//!
//! Errors (bad usage included) go to stderr as `crypto_bench: <message>` with exit status 1. It never
//! panics.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use wasmzip_guest::Key;

const USAGE: &str = "usage: crypto_bench sign KEY N | crypto_bench seal KEY SIZE N";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("crypto_bench: {message}");
            ExitCode::FAILURE
        }
    }
}

fn number(what: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{what} must be a positive integer, not `{text}`\n{USAGE}")),
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["sign", key, n] => {
            let n = number("N", n)?;
            let key = Key::open(key).map_err(|e| format!("{key}: {e}"))?;
            let message = [0x5a_u8; 64];
            key.sign(message).map_err(|e| format!("{}: {e}", key.name()))?;

            let start = Instant::now();
            for _ in 0..n {
                let signature = key.sign(black_box(&message)).map_err(|e| format!("{}: {e}", key.name()))?;
                black_box(signature);
            }
            let secs = start.elapsed().as_secs_f64();
            Ok(format!("sign ops={n} secs={secs:.6} per_sec={:.1}", n as f64 / secs))
        }
        ["seal", key, size, n] => {
            let size = number("SIZE", size)?;
            let n = number("N", n)?;
            let key = Key::open(key).map_err(|e| format!("{key}: {e}"))?;
            let plaintext: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            key.seal(&plaintext, b"").map_err(|e| format!("{}: {e}", key.name()))?;

            let start = Instant::now();
            for _ in 0..n {
                let sealed = key.seal(black_box(&plaintext), b"").map_err(|e| format!("{}: {e}", key.name()))?;
                black_box(sealed);
            }
            let secs = start.elapsed().as_secs_f64();
            let mb_per_sec = (size as f64 * n as f64) / 1e6 / secs;
            Ok(format!("seal size={size} ops={n} secs={secs:.6} mb_per_sec={mb_per_sec:.2} per_sec={:.1}", n as f64 / secs))
        }
        _ => Err(USAGE.to_string()),
    }
}
