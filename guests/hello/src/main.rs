//! `hello` — a minimal WASI 0.2 command used to check argument, environment
//! and packaged-resource plumbing.
//!
//! Output, one item per line, in this order:
//!
//! ```text
//! Hello, <NAME>!                 NAME = $GREETING_NAME, or "world" if unset
//! args: <a1> <a2> ...            arguments after argv[0], joined by one space
//! env: KEY=VALUE                 one line per environment variable, sorted by KEY
//! resource: <text>               trimmed contents of /pkg/greeting.txt,
//!                                or `resource: none` if it cannot be read
//! ```
//!
//! Exit status is 0, unless the first argument is `--exit N`, in which case the
//! program exits with status N (0 to 255, through `wasi:cli/exit#exit-with-code`) after printing
//! everything above.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = std::env::var("GREETING_NAME").unwrap_or_else(|_| "world".to_string());

    let mut out = std::io::stdout().lock();
    writeln!(out, "Hello, {name}!").unwrap();
    writeln!(out, "args: {}", args.join(" ")).unwrap();

    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (key, value) in &vars {
        writeln!(out, "env: {key}={value}").unwrap();
    }

    match std::fs::read_to_string("/pkg/greeting.txt") {
        Ok(text) => writeln!(out, "resource: {}", text.trim()).unwrap(),
        Err(_) => writeln!(out, "resource: none").unwrap(),
    }
    out.flush().unwrap();
    drop(out);

    if args.first().map(String::as_str) == Some("--exit") {
        let code = args
            .get(1)
            .and_then(|n| n.parse::<u8>().ok())
            .unwrap_or_else(|| {
                eprintln!("--exit requires an integer argument from 0 to 255");
                2
            });
        // `std::process::exit` can only report success or failure through WASI 0.2's `exit`;
        // `exit-with-code` carries the number itself.
        wasip2::cli::exit::exit_with_code(code);
        unreachable!("exit-with-code returns only if the host does not support it");
    }
}
