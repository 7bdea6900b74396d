//! Generates the `wasi:nn@0.2.0-rc-2024-10-28` bindings into `$OUT_DIR/wasi_nn.rs`.
//!
//! The WIT is not copied into this repository: it is read from the `wasmtime-wasi-nn` crate that
//! the host workspace (`../../Cargo.toml`) depends on, located with `cargo metadata`, so guest and
//! host always agree on the interface. `WASI_NN_WIT=/path/to/wasi-nn.wit` overrides the lookup
//! (for example to build against a registry copy before the host lists the crate).

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use wit_bindgen_core::WorldGenerator as _;

/// The host crate whose `wit/wasi-nn.wit` defines the interface.
const HOST_PACKAGE: &str = "wasmtime-wasi-nn";
/// The file inside that crate's `wit/` directory.
const WIT_FILE: &str = "wasi-nn.wit";
/// The world (in that file) whose imports the bindings cover.
const WORLD: &str = "ml";
/// The generated file in `OUT_DIR`, included by `src/lib.rs`.
const OUT_FILE: &str = "wasi_nn.rs";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: wasi-nn-guest build script: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let wit = locate_wit()?;

    let mut resolve = wit_parser::Resolve::default();
    let (package, sources) = resolve.push_path(&wit).map_err(|e| format!("cannot parse {}: {e:#}", wit.display()))?;
    // The files parsed: the wit file itself (and any it pulled in).
    for path in sources.paths() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let world = resolve
        .select_world(&[package], Some(WORLD))
        .map_err(|e| format!("no world `{WORLD}` in {}: {e:#}", wit.display()))?;

    // The same generator `wit_bindgen::generate!` runs, with its default options; formatted so
    // that OUT_DIR/wasi_nn.rs is readable.
    let opts = wit_bindgen_rust::Opts { format: true, ..Default::default() };
    let mut files = wit_bindgen_core::Files::default();
    opts.build()
        .generate(&mut resolve, world, &mut files)
        .map_err(|e| format!("cannot generate bindings from {}: {e:#}", wit.display()))?;
    let Some((_, contents)) = files.iter().next() else {
        return Err("the generator produced no file".into());
    };

    let out_dir = env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?;
    let dst = Path::new(&out_dir).join(OUT_FILE);
    std::fs::write(&dst, contents).map_err(|e| format!("cannot write {}: {e}", dst.display()))
}

/// `WASI_NN_WIT` if set, else `<dir of wasmtime-wasi-nn's Cargo.toml>/wit/wasi-nn.wit` from the
/// host workspace's `cargo metadata`.
fn locate_wit() -> Result<PathBuf, String> {
    println!("cargo:rerun-if-env-changed=WASI_NN_WIT");
    if let Some(path) = env::var_os("WASI_NN_WIT").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(format!("WASI_NN_WIT={} is not a file", path.display()));
        }
        return Ok(path);
    }

    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?;
    let repo = Path::new(&manifest_dir).join("../..");
    let repo = repo.canonicalize().map_err(|e| format!("cannot resolve {}: {e}", repo.display()))?;
    let host_manifest = repo.join("Cargo.toml");
    // Re-run when the host's dependencies change (added crate, version bump).
    println!("cargo:rerun-if-changed={}", host_manifest.display());
    println!("cargo:rerun-if-changed={}", repo.join("Cargo.lock").display());

    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let output = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(&host_manifest)
        .current_dir(&repo)
        .output()
        .map_err(|e| format!("cannot run `{} metadata`: {e}", cargo.to_string_lossy()))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo metadata --manifest-path {}` failed ({}):\n{}",
            host_manifest.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("cannot parse `cargo metadata` output: {e}"))?;
    let packages = metadata["packages"].as_array().ok_or("`cargo metadata` output has no `packages`")?;

    // The newest version if the host resolves several.
    let found = packages
        .iter()
        .filter(|p| p["name"] == HOST_PACKAGE)
        .filter_map(|p| Some((version_key(p["version"].as_str()?), p["manifest_path"].as_str()?)))
        .max_by(|a, b| a.0.cmp(&b.0));
    let Some((_, manifest_path)) = found else {
        return Err(format!(
            "the host workspace {} does not depend on `{HOST_PACKAGE}` (yet), so its WIT cannot be \
             found; add the dependency to the host, or set WASI_NN_WIT=/path/to/{WIT_FILE}",
            host_manifest.display()
        ));
    };
    let wit = Path::new(manifest_path).parent().unwrap_or(Path::new("")).join("wit").join(WIT_FILE);
    if !wit.is_file() {
        return Err(format!("`{HOST_PACKAGE}` is at {manifest_path}, but {} does not exist", wit.display()));
    }
    Ok(wit)
}

/// `1.2.3-rc.1` → `[1, 2, 3]`, enough to order the versions of one crate.
fn version_key(version: &str) -> Vec<u64> {
    let core = version.split(['-', '+']).next().unwrap_or("");
    core.split('.').map(|part| part.parse().unwrap_or(0)).collect()
}
