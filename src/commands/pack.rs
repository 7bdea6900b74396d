//! `wasmzip pack`: build a package from `wasmzip.toml`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use clap::Args;
use wasmzip_package::{BuildFacts, PackOptions, SigningKey, SourceRevision};

/// Pack a component, its manifest and resources into a .wasmzip archive (package format 2, with an
/// SBOM).
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
    /// List the packages of this Cargo.lock in the SBOM, for components that carry no dependency
    /// section of their own (`cargo auditable` writes one).
    #[arg(long, value_name = "Cargo.lock")]
    pub sbom_from: Option<PathBuf>,
    /// Record provenance, signed with --key: the builder, the git revision of the package directory
    /// and the lock file's digest (--sbom-from, or the nearest Cargo.lock).
    #[arg(long, requires = "key")]
    pub provenance: bool,
    /// The builder id provenance records (default: wasmzip-pack on this host).
    #[arg(long, value_name = "URI", requires = "provenance", env = "WASMZIP_BUILDER_ID")]
    pub builder_id: Option<String>,
}

/// Runs the command.
pub fn run(args: PackArgs) -> Result<u8> {
    let key = args.key.as_deref().map(SigningKey::from_pem_file).transpose()?;
    let manifest = wasmzip_package::find_author_manifest(&args.input);
    let dir = manifest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let provenance = if args.provenance { Some(build_facts(&dir, args.sbom_from.as_deref(), args.builder_id.clone())?) } else { None };
    let options = PackOptions { key: key.as_ref(), output: args.output.as_deref(), sbom_from: args.sbom_from.as_deref(), provenance };
    let summary = wasmzip_package::pack(&manifest, &options)?;
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
    let (archive, _) = wasmzip_package::sha256_file(&summary.output)?;
    println!("archive sha256:{archive}");
    Ok(0)
}

/// What this machine can say about how the package directory was built.
fn build_facts(dir: &Path, lock: Option<&Path>, builder_id: Option<String>) -> Result<BuildFacts> {
    let builder_id = builder_id.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
        let host = if host.is_empty() { "localhost".to_string() } else { host };
        format!("urn:wasmzip:pack:{}:{host}", env!("CARGO_PKG_VERSION"))
    });
    let lock = match lock {
        Some(path) => Some(path.to_path_buf()),
        None => std::path::absolute(dir)?.ancestors().map(|d| d.join("Cargo.lock")).find(|p| p.is_file()),
    };
    let lock_file = match lock {
        Some(path) => {
            let (sha256, _) = wasmzip_package::sha256_file(&path)?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "Cargo.lock".into());
            Some((name, sha256))
        }
        None => None,
    };
    Ok(BuildFacts { builder_id, source: git_revision(dir)?, lock_file })
}

/// The commit checked out in `dir`'s git work tree, if it is one.
fn git_revision(dir: &Path) -> Result<Option<SourceRevision>> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let Some(commit) = git(&["rev-parse", "--verify", "HEAD"]) else { return Ok(None) };
    let uri = match git(&["remote", "get-url", "origin"]).filter(|u| !u.is_empty()) {
        Some(url) => format!("git+{url}"),
        None => {
            let top = git(&["rev-parse", "--show-toplevel"]).context("git knows the commit but not the work tree")?;
            format!("git+file://{top}")
        }
    };
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Ok(Some(SourceRevision { uri, commit, dirty }))
}
