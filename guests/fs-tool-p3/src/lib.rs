//! `fs-tool-p3` — the WASI 0.3 twin of `fs-tool`: one filesystem operation per invocation, done
//! through `wasi:filesystem@0.3` (file contents move through `stream<u8>`), with arguments from
//! `wasi:cli/environment@0.3` and output through `wasi:cli/stdout@0.3`.
//!
//! Usage: `fs-tool-p3 <subcommand> <args...>`
//!
//! | subcommand           | operation                                        | success output               |
//! |----------------------|--------------------------------------------------|------------------------------|
//! | `read PATH`          | `open-at`, then `read-via-stream` to the end     | `ok`, then contents verbatim |
//! | `write PATH CONTENT` | `open-at` (create, truncate), `write-via-stream` | `ok`                         |
//! | `ls DIR`             | `read-directory`, names sorted                   | `ok`, then one name per line |
//! | `mkdir PATH`         | `create-directory-at`                            | `ok`                         |
//! | `rm PATH`            | `unlink-file-at`                                 | `ok`                         |
//! | `stat PATH`          | `stat-at`                                        | `ok`, then `len=<n>`         |
//! | `env NAME`           | `get-environment`                                | `ok`, then the value         |
//!
//! PATH is absolute; it is looked up under the preopened directory with the longest matching
//! prefix. A path no preopen covers prints `error: no-preopen`. On a filesystem error it prints
//! `error: <error-code:?>` (for example `error: NotPermitted`) and exits 1; bad usage exits 2.

use wasip3::cli::{environment, exit, stdout};
use wasip3::filesystem::preopens;
use wasip3::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};
use wasip3::{wit_bindgen, wit_stream};

wasip3::cli::command::export!(FsTool);

struct FsTool;

/// What a successful operation prints after `ok`.
enum Output {
    None,
    Raw(Vec<u8>),
    Lines(Vec<String>),
}

/// Why an operation failed.
enum Failure {
    Fs(ErrorCode),
    NoPreopen,
}

impl From<ErrorCode> for Failure {
    fn from(e: ErrorCode) -> Self {
        Failure::Fs(e)
    }
}

/// The preopened directory covering `path`, and the path relative to it.
fn locate(path: &str) -> Result<(Descriptor, String), Failure> {
    let mut best: Option<(Descriptor, String, usize)> = None;
    for (dir, guest) in preopens::get_directories() {
        let prefix = guest.trim_end_matches('/');
        let rest = if prefix.is_empty() { path.strip_prefix('/') } else { path.strip_prefix(prefix) };
        let Some(rest) = rest else { continue };
        if !(rest.is_empty() || rest.starts_with('/') || prefix.is_empty()) {
            continue;
        }
        if best.as_ref().is_none_or(|(_, _, len)| prefix.len() >= *len) {
            let rel = rest.trim_start_matches('/');
            best = Some((dir, if rel.is_empty() { ".".to_string() } else { rel.to_string() }, prefix.len()));
        }
    }
    best.map(|(d, rel, _)| (d, rel)).ok_or(Failure::NoPreopen)
}

async fn read(path: &str) -> Result<Output, Failure> {
    let (dir, rel) = locate(path)?;
    let file = dir.open_at(PathFlags::SYMLINK_FOLLOW, rel, OpenFlags::empty(), DescriptorFlags::READ).await?;
    let (mut data, result) = file.read_via_stream(0);
    let mut contents = Vec::new();
    loop {
        let (status, chunk) = data.read(Vec::with_capacity(64 * 1024)).await;
        contents.extend_from_slice(&chunk);
        if !matches!(status, wit_bindgen::StreamResult::Complete(_)) {
            break;
        }
    }
    drop(data);
    result.await?;
    Ok(Output::Raw(contents))
}

async fn write(path: &str, content: &str) -> Result<Output, Failure> {
    let (dir, rel) = locate(path)?;
    let flags = DescriptorFlags::WRITE;
    let file = dir.open_at(PathFlags::SYMLINK_FOLLOW, rel, OpenFlags::CREATE | OpenFlags::TRUNCATE, flags).await?;
    let (mut tx, rx) = wit_stream::new();
    let done = file.write_via_stream(rx, 0);
    let rest = tx.write_all(content.as_bytes().to_vec()).await;
    drop(tx);
    assert!(rest.is_empty(), "the host took the whole write");
    done.await?;
    Ok(Output::None)
}

async fn ls(path: &str) -> Result<Output, Failure> {
    let (dir, rel) = locate(path)?;
    let target = if rel == "." {
        dir
    } else {
        dir.open_at(PathFlags::SYMLINK_FOLLOW, rel, OpenFlags::DIRECTORY, DescriptorFlags::READ).await?
    };
    let (mut entries, result) = target.read_directory();
    let mut names = Vec::new();
    while let Some(entry) = entries.next().await {
        names.push(entry.name);
    }
    drop(entries);
    result.await?;
    names.sort();
    Ok(Output::Lines(names))
}

async fn mkdir(path: &str) -> Result<Output, Failure> {
    let (dir, rel) = locate(path)?;
    dir.create_directory_at(rel).await?;
    Ok(Output::None)
}

async fn rm(path: &str) -> Result<Output, Failure> {
    let (dir, rel) = locate(path)?;
    dir.unlink_file_at(rel).await?;
    Ok(Output::None)
}

async fn stat(path: &str) -> Result<Output, Failure> {
    let (dir, rel) = locate(path)?;
    let stat = dir.stat_at(PathFlags::SYMLINK_FOLLOW, rel).await?;
    Ok(Output::Lines(vec![format!("len={}", stat.size)]))
}

fn env(name: &str) -> Result<Output, Failure> {
    let value = environment::get_environment().into_iter().find(|(n, _)| n == name).map(|(_, v)| v);
    Ok(Output::Lines(vec![value.unwrap_or_else(|| "<unset>".to_string())]))
}

/// Writes `bytes` to stdout through `wasi:cli/stdout@0.3`. The write's result resolves only once
/// the stream closes, so the writer runs beside it.
async fn print(bytes: Vec<u8>) {
    let (mut tx, rx) = wit_stream::new();
    let (_, _) = futures::join!(async { stdout::write_via_stream(rx).await }, async move {
        tx.write_all(bytes).await;
        drop(tx);
    });
}

impl wasip3::exports::cli::run::Guest for FsTool {
    async fn run() -> Result<(), ()> {
        let args = environment::get_arguments();
        let a: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
        let result = match a.as_slice() {
            ["read", path] => read(path).await,
            ["write", path, content] => write(path, content).await,
            ["ls", dir] => ls(dir).await,
            ["mkdir", path] => mkdir(path).await,
            ["rm", path] => rm(path).await,
            ["stat", path] => stat(path).await,
            ["env", name] => env(name),
            _ => {
                print(b"usage: fs-tool-p3 read PATH | write PATH CONTENT | ls DIR | mkdir PATH | rm PATH | stat PATH | env NAME\n".to_vec()).await;
                exit::exit_with_code(2);
                unreachable!("exit does not return");
            }
        };
        match result {
            Ok(output) => {
                let mut out = b"ok\n".to_vec();
                match output {
                    Output::None => {}
                    Output::Raw(bytes) => out.extend_from_slice(&bytes),
                    Output::Lines(lines) => {
                        for line in lines {
                            out.extend_from_slice(line.as_bytes());
                            out.push(b'\n');
                        }
                    }
                }
                print(out).await;
                Ok(())
            }
            Err(Failure::Fs(code)) => {
                print(format!("error: {code:?}\n").into_bytes()).await;
                Err(())
            }
            Err(Failure::NoPreopen) => {
                print(b"error: no-preopen\n".to_vec()).await;
                Err(())
            }
        }
    }
}
