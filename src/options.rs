//! Option groups shared by several commands, and the paths and logging they set up.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use wasmzip_package::manifest::{ByteSize, parse_duration};
use wasmzip_package::{Capability, PublicKey, TrustPolicy};
use wasmzip_runtime::GuestLimits;
use wasmzip_runtime::capabilities::filesystem::Mount;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up `tracing` on stderr; `WASMZIP_LOG` takes a filter such as `info` or `wasmzip=debug`, else
/// `default` applies.
pub fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WASMZIP_LOG").unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.without_time().init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Which signers are trusted.
#[derive(Debug, Args)]
pub struct TrustOptions {
    /// A public key (PEM) whose signatures are trusted; repeatable. Every `*.pub` in the directory named
    /// by WASMZIP_TRUST is trusted too.
    #[arg(long = "trust", value_name = "PUB")]
    pub trust: Vec<PathBuf>,
    /// Accept a package that carries no signature (a warning is printed).
    #[arg(long)]
    pub allow_unsigned: bool,
}

impl TrustOptions {
    /// The trust policy these options describe.
    pub fn policy(&self) -> Result<TrustPolicy> {
        let mut trusted = Vec::new();
        for path in &self.trust {
            trusted.push(PublicKey::from_pem_file(path)?);
        }
        if let Some(dir) = std::env::var_os("WASMZIP_TRUST").filter(|d| !d.is_empty()) {
            let dir = PathBuf::from(dir);
            trusted.extend(PublicKey::from_dir(&dir).with_context(|| format!("WASMZIP_TRUST={}", dir.display()))?);
        }
        Ok(TrustPolicy { trusted, allow_unsigned: self.allow_unsigned })
    }
}

/// What the operator grants.
#[derive(Debug, Args)]
pub struct GrantOptions {
    /// Grant a capability token; repeatable. The guest gets what it requested as far as grants cover it.
    #[arg(long = "grant", value_name = "TOKEN")]
    pub grant: Vec<Capability>,
    /// Grant everything the package requests.
    #[arg(long)]
    pub grant_requested: bool,
    /// Map a guest directory to a host directory (GUEST=HOST); without it a guest directory is the
    /// same path on the host.
    #[arg(long = "mount", value_name = "GUEST=HOST")]
    pub mount: Vec<Mount>,
    /// Set an environment variable the guest may see (it still needs an `env:NAME` capability).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}`: expected NAME=VALUE"))?;
    if name.is_empty() {
        return Err(format!("`{text}`: the name is empty"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Limits the operator imposes; they only ever lower what a manifest asks for.
#[derive(Debug, Args)]
pub struct LimitOptions {
    /// Most linear memory (e.g. `64MiB`).
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| ByteSize::parse(s))]
    pub max_memory: Option<ByteSize>,
    /// Wall-clock limit (e.g. `500ms`, `30s`).
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| parse_duration(s))]
    pub timeout: Option<Duration>,
}

impl LimitOptions {
    /// As runtime limits.
    pub fn limits(&self) -> GuestLimits {
        GuestLimits { memory_bytes: self.max_memory.map(|m| m.0), timeout: self.timeout }
    }
}

/// Where compiled code and extracted package resources are kept.
#[derive(Debug, Args)]
pub struct CacheOptions {
    /// Cache directory (default: WASMZIP_CACHE_DIR, else $XDG_CACHE_HOME/wasmzip, else ~/.cache/wasmzip).
    /// It can be deleted at any time.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl CacheOptions {
    /// The cache root.
    pub fn root(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.cache_dir {
            return Ok(dir.clone());
        }
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(dir) = var("WASMZIP_CACHE_DIR") {
            return Ok(dir);
        }
        if let Some(dir) = var("XDG_CACHE_HOME") {
            return Ok(dir.join("wasmzip"));
        }
        match var("HOME") {
            Some(home) => Ok(home.join(".cache").join("wasmzip")),
            None => bail!("no cache directory: set --cache-dir, WASMZIP_CACHE_DIR or HOME"),
        }
    }
}
