//! `wasmzip pull`: download a package from an OCI registry and verify it before it lands.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use wasmzip_package::{ResourceSink, Signer};
use wasmzip_registry::{Reference, Registry};

use crate::options::TrustOptions;
use crate::registry_options::RegistryOptions;

/// Pull a package from an OCI registry by tag or digest. Every byte is checked against the digest
/// it was asked for, and the package is verified (structure, signatures and trust, every member
/// digest) before it is written to FILE; a refused package leaves nothing behind.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// What to pull: HOST[:PORT]/REPOSITORY:TAG or HOST[:PORT]/REPOSITORY[:TAG]@sha256:DIGEST.
    #[arg(value_name = "REF")]
    pub reference: Reference,
    /// Where to write the package (default: NAME-VERSION.wasmzip in the current directory; a
    /// directory gets NAME-VERSION.wasmzip inside it).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Refuse the package unless its archive digest (hex SHA-256 of the file, as `verify` prints it)
    /// is this.
    #[arg(long, value_name = "SHA256")]
    pub archive_digest: Option<String>,
    #[command(flatten)]
    pub trust: TrustOptions,
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// Runs the command.
pub async fn run(args: PullArgs) -> Result<u8> {
    let policy = args.trust.policy()?;
    let registry = Registry::new(args.registry.config()?)?;
    // The final name is known only once the package is verified: download into a private directory
    // beside where it goes, so that the last step is a rename on one file system.
    let target_dir = match &args.output {
        Some(out) if out.is_dir() => out.clone(),
        Some(out) => out.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        None => PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".wasmzip-pull.")
        .tempdir_in(&target_dir)
        .with_context(|| format!("cannot create a temporary directory in {}", target_dir.display()))?;
    let downloaded = staging.path().join("package.wasmzip");
    let pulled = registry.pull(&args.reference, &downloaded, args.archive_digest.as_deref()).await?;
    // The error names the fault, not the private file it was found in.
    let package = wasmzip_package::verify_package(&downloaded, &policy, ResourceSink::Discard)
        .map_err(|e| anyhow::anyhow!("{}: refused the package pulled: {}", pulled.reference, e.fault()))?;
    let manifest = package.manifest();
    let default_name = format!("{}-{}.wasmzip", manifest.name, manifest.version);
    let dest = match &args.output {
        Some(out) if out.is_dir() => out.join(&default_name),
        Some(out) => out.clone(),
        None => PathBuf::from(&default_name),
    };
    let signer = match package.signer() {
        Signer::Key(id) => format!("signed by trusted key {id}"),
        Signer::Unsigned => {
            eprintln!("wasmzip: warning: {} is not signed", pulled.reference);
            "unsigned".to_string()
        }
    };
    let digest = package.digest().to_string();
    let (name, version) = (manifest.name.to_string(), manifest.version.to_string());
    drop(package);
    std::fs::rename(&downloaded, &dest).with_context(|| format!("cannot move the pulled package to {}", dest.display()))?;
    if let Ok(dir) = std::fs::File::open(&target_dir) {
        let _ = dir.sync_all();
    }
    println!("pulled {} to {}", pulled.reference, dest.display());
    println!("verified {name} {version}: {signer}");
    println!("digest sha256:{digest}");
    println!("manifest {}", pulled.manifest_digest);
    println!("archive sha256:{}", pulled.archive_digest);
    Ok(0)
}
