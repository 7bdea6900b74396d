//! `wasmzip deploy`: send a package to a running server's admin API.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use http::Method;
use wasmzip_package::Capability;

use crate::commands::bare::{is_wasm, pack_http};
use crate::admin_client::{AdminClient, ServerOptions, encode};
use crate::registry_options::RegistryOptions;

/// Deploy a package to a running `wasmzip serve` (verified against the server's trusted keys).
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The package: a file, an OCI reference (`HOST[:PORT]/PATH:TAG` or `…@sha256:…`, pulled here
    /// with the --registry-* options and sent as a file), or a bare .wasm component for development:
    /// it is packed unsigned, requesting exactly the --grant tokens, named after the file and served
    /// at `/` (the server must allow unsigned packages).
    pub package: PathBuf,
    #[command(flatten)]
    pub server: ServerOptions,
    #[command(flatten)]
    pub registry: RegistryOptions,
    /// Grant a capability to this deployment; repeatable.
    #[arg(long = "grant", value_name = "TOKEN")]
    pub grant: Vec<Capability>,
    /// Grant everything the package requests.
    #[arg(long)]
    pub grant_requested: bool,
    /// Deploy a version lower than the one serving, which a deploy policy refuses otherwise.
    #[arg(long)]
    pub allow_downgrade: bool,
}

/// Runs the command.
pub async fn run(args: DeployArgs) -> Result<u8> {
    let client = AdminClient::new(&args.server)?;
    // Check the token with a cheap call first: a server refusing the upload answers before reading
    // it, and the refusal could otherwise be lost to a broken pipe while the package is still sending.
    client.call(Method::GET, "/v1/functions", Bytes::new()).await?;
    // Anything but a bare .wasm goes up as it is: the server verifies packages.
    let pulled = if crate::oci_input::is_reference(&args.package) { Some(crate::oci_input::pull_to_temp(&args.registry, &args.package.to_string_lossy()).await?) } else { None };
    let packed = if pulled.is_none() && is_wasm(&args.package)? { Some(pack_http(&args.package, &args.grant, args.grant_requested)?) } else { None };
    let path = match (&pulled, &packed) {
        (Some(file), _) => file.path(),
        (None, Some(p)) => p.path.as_path(),
        (None, None) => args.package.as_path(),
    };
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut query: Vec<String> = args.grant.iter().map(|g| format!("grant={}", encode(&g.to_string()))).collect();
    if args.grant_requested {
        query.push("grant_requested=true".into());
    }
    if args.allow_downgrade {
        query.push("allow_downgrade=true".into());
    }
    let target = if query.is_empty() { "/v1/functions".to_string() } else { format!("/v1/functions?{}", query.join("&")) };
    let info = client.call(Method::POST, &target, Bytes::from(bytes)).await?;
    let active = &info["active"];
    println!(
        "deployed {} {} (sequence {}) on {}",
        info["name"].as_str().unwrap_or("?"),
        active["version"].as_str().unwrap_or("?"),
        active["sequence"],
        info["routes"].as_array().map(|r| r.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()
    );
    Ok(0)
}
