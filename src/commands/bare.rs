//! What a subcommand was given: a package, or a bare `.wasm` for development, which `serve` and
//! `deploy` pack on the fly into an unsigned package (`wasmzip_package::pack_bare`).

use std::io::Read as _;
use std::path::Path;
#[cfg(feature = "server")]
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
#[cfg(feature = "server")]
use wasmzip_package::{Capability, World};

/// What kind of file a subcommand was given.
pub enum Input {
    /// A `.wasmzip` package (a ZIP archive).
    Package,
    /// A WebAssembly component or module.
    Wasm,
}

/// The first four bytes of `path` (fewer for a shorter file).
fn magic(path: &Path) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(4);
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    file.take(4).read_to_end(&mut head).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(head)
}

/// Tells a package from a WebAssembly file by its first bytes.
pub fn sniff(path: &Path) -> Result<Input> {
    match magic(path)?.as_slice() {
        b"PK\x03\x04" => Ok(Input::Package),
        b"\0asm" => Ok(Input::Wasm),
        _ => bail!("{} is neither a .wasmzip package nor a WebAssembly file", path.display()),
    }
}

/// Whether `path` starts like a WebAssembly file (anything else is sent as it is, for the server
/// to judge).
#[cfg(feature = "server")]
pub fn is_wasm(path: &Path) -> Result<bool> {
    Ok(magic(path)? == b"\0asm")
}

/// A bare `.wasm` packed into an unsigned package that lives as long as this value.
#[cfg(feature = "server")]
pub struct PackedBare {
    _dir: tempfile::TempDir,
    /// The package file.
    pub path: PathBuf,
}

/// Packs the `http` component `wasm` into an unsigned package requesting exactly `grants` (so they
/// are what it gets: a bare `.wasm` requests nothing of its own). Serving it needs the server to
/// accept unsigned packages (`--allow-unsigned`). `grant_requested` (`--grant-requested`) is refused:
/// there is nothing requested to grant.
#[cfg(feature = "server")]
pub fn pack_http(wasm: &Path, grants: &[Capability], grant_requested: bool) -> Result<PackedBare> {
    if grant_requested {
        bail!("{}: --grant-requested needs a package; a bare .wasm requests nothing, so grant with --grant", wasm.display());
    }
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let path = dir.path().join(format!("{}.wasmzip", wasmzip_package::bare_package_name(wasm)));
    wasmzip_package::pack_bare(wasm, World::Http, grants, &path)?;
    Ok(PackedBare { _dir: dir, path })
}
