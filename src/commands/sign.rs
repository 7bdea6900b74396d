//! `wasmzip sign`: add a signature to a package without changing what is signed.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use wasmzip_package::SigningKey;

/// Add a signature (a release team's, say) to a package. Its content, manifest and package digest stay
/// as they are; only the signature envelope grows, so the archive's own SHA-256 changes.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The package.
    pub package: PathBuf,
    /// Private key (PEM) to sign with.
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Write the signed package here instead of replacing PACKAGE.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: SignArgs) -> Result<u8> {
    let key = SigningKey::from_pem_file(&args.key)?;
    let output = args.output.as_deref().unwrap_or(&args.package);
    let signers = wasmzip_package::add_signature(&args.package, &key, output)?;
    println!("signed {} with key {} ({} signatures)", output.display(), key.public_key().id(), signers.len());
    Ok(0)
}
