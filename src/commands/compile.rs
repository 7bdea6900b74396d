//! `wasmzip compile`: a package's components compiled ahead of time, for this machine, another one
//! (`--target aarch64-unknown-linux-gnu`) or Pulley's interpreter (`--target pulley64`), into an
//! artefact that `run` and `serve` load with `--precompiled`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use wasmzip_package::ResourceSink;
use wasmzip_runtime::precompiled::{ArtefactPackage, write_artefact};
use wasmzip_runtime::{CodeTarget, Runtime, RuntimeConfig};

use crate::options::TrustOptions;

/// Compile a package's components ahead of time into an artefact for `run --precompiled` and
/// `serve --precompiled`, on this machine or another.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The package (verified first, as `run` would).
    pub package: PathBuf,
    /// The machine the code is for: a target triple (`aarch64-unknown-linux-gnu`,
    /// `riscv64gc-unknown-linux-gnu`, `x86_64-unknown-linux-gnu`) for its baseline CPU, or `pulley64`
    /// for `--engine pulley` (default: this machine, using every CPU feature it has).
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// Where to write the artefact (default: PACKAGE's name with `.TARGET.aot` in place of
    /// `.wasmzip`, beside it).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub trust: TrustOptions,
}

/// Runs the command.
pub fn run(args: CompileArgs) -> Result<u8> {
    let target = match &args.target {
        Some(t) => CodeTarget::parse(t)?,
        None => CodeTarget::Native,
    };
    let package = wasmzip_package::verify_package(&args.package, &args.trust.policy()?, ResourceSink::Discard)?;
    let manifest = package.manifest();
    if manifest.components.is_empty() {
        bail!("{} has no components to compile", args.package.display());
    }
    let runtime = Runtime::new(RuntimeConfig { cache_dir: None, pooling: None, target: target.clone() })
        .with_context(|| format!("cannot compile for `{}`", target.name()))?;
    let mut compiled = Vec::new();
    for name in manifest.components.keys() {
        let component = package.component(name)?;
        compiled.push(wasmzip_runtime::plan::precompile(&runtime, &component)?);
    }
    let output = args.output.clone().unwrap_or_else(|| {
        let stem = args.package.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| manifest.name.to_string());
        args.package.with_file_name(format!("{stem}.{}.aot", target.name()))
    });
    let from = ArtefactPackage { name: manifest.name.to_string(), version: manifest.version.to_string(), digest: package.digest().to_string() };
    let header = write_artefact(&output, from, &target.name(), compiled)?;
    let bytes: u64 = header.components.iter().map(|c| c.length).sum();
    println!(
        "compiled {} {} ({} component{}) for {} into {} ({bytes} bytes of code, {})",
        manifest.name,
        manifest.version,
        header.components.len(),
        if header.components.len() == 1 { "" } else { "s" },
        header.target,
        output.display(),
        header.engine,
    );
    Ok(0)
}
