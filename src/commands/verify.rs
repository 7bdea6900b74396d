//! `wasmzip verify`: check a package's structure, digests, signature and signer.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use wasmzip_package::{ResourceSink, Signer};

use crate::options::TrustOptions;

/// Verify a package against trusted keys, reading every member once.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The package.
    pub package: PathBuf,
    #[command(flatten)]
    pub trust: TrustOptions,
}

/// Runs the command.
pub fn run(args: VerifyArgs) -> Result<u8> {
    let policy = args.trust.policy()?;
    let package = wasmzip_package::verify_package(&args.package, &policy, ResourceSink::Discard)?;
    let manifest = package.manifest();
    let signer = match package.signer() {
        Signer::Key(id) => format!("signed by trusted key {id}"),
        Signer::Unsigned => {
            eprintln!("wasmzip: warning: {} is not signed", args.package.display());
            "unsigned".to_string()
        }
    };
    println!("verified {} {}: {} pinned members, {signer}", manifest.name, manifest.version, manifest.members.len());
    println!("digest sha256:{}", package.digest());
    Ok(0)
}
