//! `wasmzip cache`: what the cache directory holds, and pruning it.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use wasmzip_package::manifest::ByteSize;
use wasmzip_runtime::cache_dir::{CacheDir, CacheEntry};

use crate::options::CacheOptions;

/// List or prune the cache of compiled code and extracted package resources.
#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

/// A `cache` subcommand.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List the entries, least recently used first, with their sizes and the total.
    List {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheOptions,
    },
    /// Remove least recently used entries until the cache fits (the cap unless --max-size says
    /// otherwise); entries a running wasmzip uses stay.
    Prune {
        /// Prune down to this size (`0` removes every entry not in use).
        #[arg(long, value_name = "SIZE", value_parser = |s: &str| ByteSize::parse(s))]
        max_size: Option<ByteSize>,
        #[command(flatten)]
        cache: CacheOptions,
    },
}

fn age(entry: &CacheEntry) -> String {
    let secs = std::time::SystemTime::now().duration_since(entry.last_used).map(|d| d.as_secs()).unwrap_or(0);
    match secs {
        0..120 => format!("{secs}s ago"),
        120..7200 => format!("{}m ago", secs / 60),
        7200..172_800 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// Runs the command.
pub fn run(args: CacheArgs) -> Result<u8> {
    match args.command {
        CacheCommand::List { json, cache: options } => {
            let cache = CacheDir::new(options.root()?);
            let entries = cache.entries()?;
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            if json {
                let list: Vec<_> = entries
                    .iter()
                    .map(|e| {
                        let used = e.last_used.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                        json!({ "kind": e.kind.to_string(), "path": e.path, "bytes": e.bytes, "last_used": used })
                    })
                    .collect();
                let value = json!({ "root": cache.root(), "entries": list, "bytes": total, "max_bytes": options.max_size() });
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(0);
            }
            println!("cache {} ({} entries, {} of at most {})", cache.root().display(), entries.len(), ByteSize(total), ByteSize(options.max_size()));
            for e in &entries {
                println!("  {:<9} {:>12}  {:>9}  {}", e.kind, ByteSize(e.bytes).to_string(), age(e), e.path.display());
            }
        }
        CacheCommand::Prune { max_size, cache: options } => {
            let cache = CacheDir::new(options.root()?);
            let max = max_size.map(|b| b.0).unwrap_or_else(|| options.max_size());
            let pruned = cache.prune(max)?;
            for e in &pruned.removed {
                println!("removed {} {} ({})", e.kind, e.path.display(), ByteSize(e.bytes));
            }
            for e in &pruned.in_use {
                println!("kept    {} {} ({}): in use by a running wasmzip", e.kind, e.path.display(), ByteSize(e.bytes));
            }
            println!("{} removed; {} left (at most {})", pruned.removed.len(), ByteSize(pruned.remaining_bytes), ByteSize(max));
        }
    }
    Ok(0)
}
