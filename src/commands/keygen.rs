//! `wasmzip keygen NAME`: a new Ed25519 signing key pair.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use wasmzip_package::SigningKey;

/// Generate an Ed25519 key pair: NAME.key (PKCS#8 PEM, mode 0600) and NAME.pub (SPKI PEM).
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Path and base name of the key files.
    pub name: PathBuf,
}

/// Runs the command.
pub fn run(args: KeygenArgs) -> Result<u8> {
    let key = SigningKey::generate()?;
    let (private, public) = key.write_pair(&args.name)?;
    println!("wrote {} and {}", private.display(), public.display());
    println!("key id {}", key.public_key().id());
    Ok(0)
}
