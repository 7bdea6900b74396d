//! `wasmzip pack`: build a package from `wasmzip.toml`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use wasmzip_package::SigningKey;

/// Pack a component, its manifest and resources into a .wasmzip archive.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("signing").required(true).args(["key", "unsigned"]))]
pub struct PackArgs {
    /// The package directory or its wasmzip.toml.
    #[arg(default_value = ".")]
    pub input: PathBuf,
    /// Private key (PEM) to sign with.
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Write an unsigned package.
    #[arg(long)]
    pub unsigned: bool,
    /// Output file (default: NAME-VERSION.wasmzip in the current directory).
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: PackArgs) -> Result<u8> {
    let key = args.key.as_deref().map(SigningKey::from_pem_file).transpose()?;
    let manifest = wasmzip_package::find_author_manifest(&args.input);
    let summary = wasmzip_package::pack(&manifest, key.as_ref(), args.output.as_deref())?;
    let signer = match &key {
        Some(k) => format!("signed by key {}", k.public_key().id()),
        None => "unsigned".to_string(),
    };
    println!(
        "packed {} {} into {} ({} members, {signer})",
        summary.manifest.name,
        summary.manifest.version,
        summary.output.display(),
        summary.manifest.members.len() + 1 + usize::from(summary.signed),
    );
    println!("digest sha256:{}", summary.digest);
    Ok(0)
}
