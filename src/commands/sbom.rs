//! `wasmzip sbom`: export the SBOM a package carries.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

/// Export a package's CycloneDX SBOM (checked against its pin) for standard tools.
#[derive(Debug, Args)]
pub struct SbomArgs {
    /// The package.
    pub package: PathBuf,
    /// Write the SBOM to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: SbomArgs) -> Result<u8> {
    let report = wasmzip_package::inspect_package(&args.package)?;
    let Some(sbom) = report.sbom else {
        bail!("{}: the package carries no SBOM (schema {} packages have none; re-pack it with this wasmzip)", args.package.display(), report.manifest.schema);
    };
    match &args.output {
        Some(path) => write_new_atomically(path, &sbom).with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(&sbom)?,
    }
    Ok(0)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
fn write_new_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
