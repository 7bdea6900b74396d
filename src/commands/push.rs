//! `wasmzip push`: upload a package to an OCI registry under a tag.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use wasmzip_registry::{Reference, Registry};

use crate::registry_options::RegistryOptions;

/// Push a package to an OCI registry under a tag. The package is checked first (structure and
/// every digest; trust is the puller's to decide); it is stored as the CNCF Wasm layout plus the
/// package file itself (docs/registry.md). Prints where it is by digest and its archive digest.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The package.
    pub package: PathBuf,
    /// Where to push it: HOST[:PORT]/REPOSITORY:TAG.
    #[arg(value_name = "REF")]
    pub reference: Reference,
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// Runs the command.
pub async fn run(args: PushArgs) -> Result<u8> {
    let registry = Registry::new(args.registry.config()?)?;
    let pushed = registry.push(&args.package, &args.reference).await?;
    println!("pushed {}", pushed.reference);
    println!("archive sha256:{}", pushed.archive_digest);
    Ok(0)
}
