//! `fs-tool` — performs exactly one filesystem operation per invocation, so a
//! host can probe what a guest's preopened directories allow.
//!
//! Usage: `fs-tool <subcommand> <args...>`
//!
//! | subcommand                 | operation                                         | success output            |
//! |----------------------------|---------------------------------------------------|---------------------------|
//! | `read PATH`                | read the whole file                               | `ok`, then contents verbatim |
//! | `write PATH CONTENT`       | create or truncate, then write CONTENT            | `ok`                      |
//! | `append PATH CONTENT`      | open for append (creating), write CONTENT         | `ok`                      |
//! | `truncate PATH LEN`        | open for write (no truncate), `set_len(LEN)`      | `ok`                      |
//! | `ls DIR`                   | list entry names, sorted                          | `ok`, then one name per line |
//! | `mkdir PATH`               | `create_dir`                                      | `ok`                      |
//! | `rm PATH`                  | `remove_file`                                     | `ok`                      |
//! | `rename FROM TO`           | `rename`                                          | `ok`                      |
//! | `hardlink FROM TO`         | `hard_link`                                       | `ok`                      |
//! | `symlink TARGET LINK`      | create symlink LINK -> TARGET (see below)         | `ok`                      |
//! | `stat PATH`                | `metadata`                                        | `ok`, then `len=<n>`      |
//!
//! On an I/O failure it prints `error: <ErrorKind:?>: <error>` (for example
//! `error: NotFound: No such file or directory (os error 44)`) to stdout and
//! exits with status 1. Bad usage prints `usage: ...` to stderr and exits 2.
//!
//! `symlink` uses the stable-but-deprecated `std::fs::soft_link`, because
//! `std::os::wasi::fs::symlink_path` is still unstable (`wasi_ext`). On WASI it
//! maps to the same `symlink-at` call.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::process::ExitCode;

const USAGE: &str = "usage: fs-tool read PATH | write PATH CONTENT | append PATH CONTENT | \
truncate PATH LEN | ls DIR | mkdir PATH | rm PATH | rename FROM TO | hardlink FROM TO | \
symlink TARGET LINK | stat PATH";

/// Result of a successful operation: lines printed after `ok`.
enum Output {
    None,
    /// Printed verbatim (no extra newline added).
    Raw(Vec<u8>),
    Lines(Vec<String>),
}

fn run(args: &[String]) -> Option<io::Result<Output>> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match a.as_slice() {
        ["read", path] => fs::read(path).map(Output::Raw),
        ["write", path, content] => fs::write(path, content).map(|_| Output::None),
        ["append", path, content] => OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .and_then(|mut f| f.write_all(content.as_bytes()))
            .map(|_| Output::None),
        ["truncate", path, len] => {
            let len: u64 = len.parse().ok()?;
            OpenOptions::new()
                .write(true)
                .truncate(false)
                .open(path)
                .and_then(|f| f.set_len(len))
                .map(|_| Output::None)
        }
        ["ls", dir] => fs::read_dir(dir).and_then(|entries| {
            let mut names = entries
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<io::Result<Vec<_>>>()?;
            names.sort();
            Ok(Output::Lines(names))
        }),
        ["mkdir", path] => fs::create_dir(path).map(|_| Output::None),
        ["rm", path] => fs::remove_file(path).map(|_| Output::None),
        ["rename", from, to] => fs::rename(from, to).map(|_| Output::None),
        ["hardlink", from, to] => fs::hard_link(from, to).map(|_| Output::None),
        ["symlink", target, link] => {
            #[allow(deprecated)]
            let r = fs::soft_link(target, link);
            r.map(|_| Output::None)
        }
        ["stat", path] => {
            fs::metadata(path).map(|m| Output::Lines(vec![format!("len={}", m.len())]))
        }
        _ => return None,
    };
    Some(result)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(result) = run(&args) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let mut out = io::stdout().lock();
    match result {
        Ok(output) => {
            writeln!(out, "ok").unwrap();
            match output {
                Output::None => {}
                Output::Raw(bytes) => out.write_all(&bytes).unwrap(),
                Output::Lines(lines) => {
                    for line in lines {
                        writeln!(out, "{line}").unwrap();
                    }
                }
            }
            out.flush().unwrap();
            ExitCode::SUCCESS
        }
        Err(e) => {
            writeln!(out, "error: {:?}: {e}", e.kind()).unwrap();
            out.flush().unwrap();
            ExitCode::from(1)
        }
    }
}
