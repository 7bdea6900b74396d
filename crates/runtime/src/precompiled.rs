//! Precompiled artefacts: a package's components compiled ahead of time (`wasmzip compile`), often
//! for another machine, and loaded by `run` and `serve` with `--precompiled` instead of compiling.
//!
//! An artefact is bound to what it was compiled from and for, and every binding is checked before a
//! byte of it reaches Wasmtime:
//! - the package digest (SHA-256 of the package's `manifest.json`) and each component's digest;
//! - the target: a triple such as `aarch64-unknown-linux-gnu`, or `pulley64` for the interpreter;
//! - the engine: the Wasmtime version and the version of wasmzip's engine settings
//!   ([`ENGINE_SETTINGS`]), the same in every wasmzip build of a release whatever its cargo features.
//!
//! Wasmtime then checks its own record of the settings the code was compiled with (features,
//! tunables, CPU flags) as it deserializes, before any code is made executable; a mismatch there is
//! refused too. Integrity is checked as in the compile cache: the file ends in the SHA-256 of
//! everything before it, and each component's code has its own SHA-256 in the header.
//!
//! Layout: `MAGIC`, the header's length (u32, little-endian), the header (JSON), each component's
//! code, then the SHA-256 of all that.
//!
//! Loading native code is trusting it as much as the binary itself: the checksums find corruption
//! and mix-ups, not a forged artefact. Keep artefacts where the operator keeps the binary.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use wasmzip_package::{ComponentSource, VerifiedComponent};

use crate::cache::ArtifactKind;
use crate::engine::{EngineKind, Program, Runtime};

/// The first bytes of every artefact; the last byte is the format version.
const MAGIC: &[u8; 8] = b"WZAOT\0\0\x01";

/// The Wasmtime release wasmzip is built on (a test checks it against `Cargo.lock`).
pub const WASMTIME_VERSION: &str = "50.0.1";

/// The version of the engine settings every wasmzip engine is built with (`engine::wasm_config`):
/// raised whenever a change there changes the code Wasmtime compiles.
pub const ENGINE_SETTINGS: u32 = 1;

/// Largest artefact read (a component of 100 MiB of code is far beyond any seen).
const MAX_ARTEFACT_BYTES: u64 = 1 << 30;

/// The engine an artefact is for, in words: also its binding.
pub fn engine_binding() -> String {
    format!("wasmtime {WASMTIME_VERSION}, wasmzip engine settings {ENGINE_SETTINGS}")
}

/// Why an artefact was not written or not loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArtefactError {
    /// Reading or writing the file failed.
    #[error("cannot {action} precompiled artefact {}: {error}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// Not an artefact at all.
    #[error("{} is not a wasmzip precompiled artefact (make one with `wasmzip compile`)", path.display())]
    NotAnArtefact {
        /// The file.
        path: PathBuf,
    },
    /// The file is damaged.
    #[error("precompiled artefact {} is corrupt: {why}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Compiled from another package (or another version of it).
    #[error("precompiled artefact {} was compiled from package {artefact}, not {package}", path.display())]
    OtherPackage {
        /// The file.
        path: PathBuf,
        /// `name version (digest)` of the artefact's package.
        artefact: String,
        /// The same of the package given.
        package: String,
    },
    /// A bare `.wasm` has no package to bind to.
    #[error("precompiled artefact {} needs a package; {what} is a bare .wasm", path.display())]
    Unpackaged {
        /// The file.
        path: PathBuf,
        /// The bare file.
        what: String,
    },
    /// Compiled for another machine or engine.
    #[error("precompiled artefact {} holds code for {artefact}, but this engine runs {engine}{hint}", path.display())]
    OtherTarget {
        /// The file.
        path: PathBuf,
        /// The artefact's target.
        artefact: String,
        /// The engine's.
        engine: String,
        /// What to do.
        hint: &'static str,
    },
    /// Compiled by another engine.
    #[error("precompiled artefact {} was compiled for {artefact}; this wasmzip has {engine}: compile it again with this release", path.display())]
    OtherEngine {
        /// The file.
        path: PathBuf,
        /// The artefact's engine.
        artefact: String,
        /// This build's.
        engine: String,
    },
    /// The artefact lacks a component the package has (or its digest differs).
    #[error("precompiled artefact {} has no code for component `{component}` (digest {digest})", path.display())]
    MissingComponent {
        /// The file.
        path: PathBuf,
        /// The component.
        component: String,
        /// Its digest.
        digest: String,
    },
    /// Wasmtime refused the code (its own check of the compile settings).
    #[error("precompiled artefact {}: Wasmtime refused the code of component `{component}`: {message}", path.display())]
    Rejected {
        /// The file.
        path: PathBuf,
        /// The component.
        component: String,
        /// Wasmtime's reason.
        message: String,
    },
    /// The engine for the code could not be built.
    #[error(transparent)]
    Runtime(#[from] crate::RuntimeError),
}

/// The package an artefact was compiled from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtefactPackage {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its digest (SHA-256 of `manifest.json`, hex).
    pub digest: String,
}

impl std::fmt::Display for ArtefactPackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (sha256:{})", self.name, self.version, self.digest)
    }
}

/// One component's code in an artefact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtefactComponent {
    /// The component's name in the package.
    pub name: String,
    /// SHA-256 of the component's bytes, as pinned in the package.
    pub digest: String,
    /// `component` or `module` (a preview-1 core module).
    pub kind: CodeKind,
    /// The engine it was compiled for.
    pub engine: EngineKindName,
    /// Where its code starts, from the end of the header.
    pub offset: u64,
    /// Bytes of code.
    pub length: u64,
    /// SHA-256 of the code.
    pub sha256: String,
}

/// What a component's code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeKind {
    /// A component.
    Component,
    /// A core module.
    Module,
}

/// [`EngineKind`] as it is written in an artefact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKindName {
    /// [`EngineKind::Plain`].
    Plain,
    /// [`EngineKind::Concurrent`].
    Concurrent,
}

impl From<EngineKind> for EngineKindName {
    fn from(kind: EngineKind) -> Self {
        match kind {
            EngineKind::Plain => EngineKindName::Plain,
            EngineKind::Concurrent => EngineKindName::Concurrent,
        }
    }
}

impl From<EngineKindName> for EngineKind {
    fn from(kind: EngineKindName) -> Self {
        match kind {
            EngineKindName::Plain => EngineKind::Plain,
            EngineKindName::Concurrent => EngineKind::Concurrent,
        }
    }
}

/// An artefact's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtefactHeader {
    /// The wasmzip that wrote it.
    pub written_by: String,
    /// The package compiled.
    pub package: ArtefactPackage,
    /// The target triple, or `pulley64`.
    pub target: String,
    /// See [`engine_binding`].
    pub engine: String,
    /// The code of each component.
    pub components: Vec<ArtefactComponent>,
}

/// One component's compiled code, to be written into an artefact.
pub struct CompiledCode {
    /// The component's name in the package.
    pub name: String,
    /// SHA-256 of its bytes.
    pub digest: String,
    /// What the code is.
    pub kind: CodeKind,
    /// The engine it is for.
    pub engine: EngineKind,
    /// Wasmtime's serialised code.
    pub code: Vec<u8>,
}

/// Writes an artefact to `path` atomically (a temporary file beside it, renamed into place), so an
/// existing file is either kept whole or replaced whole.
pub fn write_artefact(path: &Path, package: ArtefactPackage, target: &str, compiled: Vec<CompiledCode>) -> Result<ArtefactHeader, ArtefactError> {
    let mut offset = 0u64;
    let components = compiled
        .iter()
        .map(|c| {
            let entry = ArtefactComponent {
                name: c.name.clone(),
                digest: c.digest.clone(),
                kind: c.kind,
                engine: c.engine.into(),
                offset,
                length: c.code.len() as u64,
                sha256: hex::encode(Sha256::digest(&c.code)),
            };
            offset += entry.length;
            entry
        })
        .collect();
    let header = ArtefactHeader {
        written_by: format!("wasmzip {}", env!("CARGO_PKG_VERSION")),
        package,
        target: target.to_string(),
        engine: engine_binding(),
        components,
    };
    let json = serde_json::to_vec(&header).expect("a header serialises");
    let io = |action, error| ArtefactError::Io { action, path: path.to_path_buf(), error };
    let mut file = tempfile::NamedTempFile::new_in(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
        .map_err(|e| io("write", e))?;
    let mut hasher = Sha256::new();
    let header_len = u32::try_from(json.len()).expect("a header is small");
    let mut put = |bytes: &[u8]| -> std::io::Result<()> {
        hasher.update(bytes);
        file.write_all(bytes)
    };
    put(MAGIC).map_err(|e| io("write", e))?;
    put(&header_len.to_le_bytes()).map_err(|e| io("write", e))?;
    put(&json).map_err(|e| io("write", e))?;
    for c in &compiled {
        put(&c.code).map_err(|e| io("write", e))?;
    }
    file.write_all(&hasher.finalize()).map_err(|e| io("write", e))?;
    file.as_file().sync_all().map_err(|e| io("write", e))?;
    file.persist(path).map_err(|e| io("write", e.error))?;
    Ok(header)
}

/// An artefact read from its file, every checksum checked.
#[derive(Debug)]
pub struct Artefact {
    path: PathBuf,
    header: ArtefactHeader,
    /// The components' code, back to back.
    code: Vec<u8>,
}

impl Artefact {
    /// Reads and checks the artefact at `path`: its format, the file's checksum, its header and each
    /// component's checksum. Nothing is handed to Wasmtime here.
    pub fn open(path: &Path) -> Result<Self, ArtefactError> {
        let io = |error| ArtefactError::Io { action: "read", path: path.to_path_buf(), error };
        let corrupt = |why: String| ArtefactError::Corrupt { path: path.to_path_buf(), why };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_ARTEFACT_BYTES {
            return Err(corrupt(format!("{size} bytes is more than any artefact holds")));
        }
        let bytes = std::fs::read(path).map_err(io)?;
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len() - 1] != MAGIC[..MAGIC.len() - 1] {
            return Err(ArtefactError::NotAnArtefact { path: path.to_path_buf() });
        }
        if bytes[MAGIC.len() - 1] != MAGIC[MAGIC.len() - 1] {
            return Err(corrupt(format!("format {} is not one this wasmzip reads (it reads {})", bytes[MAGIC.len() - 1], MAGIC[MAGIC.len() - 1])));
        }
        let fixed = MAGIC.len() + 4;
        if bytes.len() < fixed + 32 {
            return Err(corrupt("it is truncated".into()));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return Err(corrupt("its checksum does not match its contents (damaged or truncated)".into()));
        }
        let header_len = u32::from_le_bytes(body[MAGIC.len()..fixed].try_into().expect("4 bytes")) as usize;
        let Some(json) = body.get(fixed..fixed + header_len) else {
            return Err(corrupt("its header runs past the end".into()));
        };
        let header: ArtefactHeader = serde_json::from_slice(json).map_err(|e| corrupt(format!("its header: {e}")))?;
        let code = body[fixed + header_len..].to_vec();
        for c in &header.components {
            let range = usize::try_from(c.offset).ok().zip(usize::try_from(c.length).ok()).and_then(|(o, l)| code.get(o..o.checked_add(l)?));
            let Some(piece) = range else {
                return Err(corrupt(format!("the code of component `{}` lies outside the file", c.name)));
            };
            if hex::encode(Sha256::digest(piece)) != c.sha256 {
                return Err(corrupt(format!("the code of component `{}` does not match its checksum", c.name)));
            }
        }
        Ok(Artefact { path: path.to_path_buf(), header, code })
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its header.
    pub fn header(&self) -> &ArtefactHeader {
        &self.header
    }

    /// Refuses the artefact unless it was compiled from the package with `digest` (named `package`
    /// in the error).
    pub fn check_package(&self, digest: &str, package: impl FnOnce() -> String) -> Result<(), ArtefactError> {
        if self.header.package.digest != digest {
            return Err(ArtefactError::OtherPackage { path: self.path.clone(), artefact: self.header.package.to_string(), package: package() });
        }
        Ok(())
    }

    /// Loads the code of `component` for `runtime`, after checking every binding: package,
    /// component, target, engine; Wasmtime then checks its compile settings.
    pub fn load(&self, runtime: &Runtime, component: &VerifiedComponent) -> Result<(EngineKind, Program), ArtefactError> {
        let ComponentSource::Package { name, version, digest, .. } = component.source() else {
            return Err(ArtefactError::Unpackaged { path: self.path.clone(), what: component.description() });
        };
        self.check_package(digest, || format!("{name} {version} (sha256:{digest})"))?;
        let engine = runtime.target_name();
        if self.header.target != engine {
            let hint = if engine.starts_with("pulley") {
                ": compile it with `--target pulley64`, or run without `--engine pulley`"
            } else if self.header.target.starts_with("pulley") {
                ": run it with `--engine pulley`"
            } else {
                ": compile it for this machine's target"
            };
            return Err(ArtefactError::OtherTarget { path: self.path.clone(), artefact: self.header.target.clone(), engine, hint });
        }
        if self.header.engine != engine_binding() {
            return Err(ArtefactError::OtherEngine { path: self.path.clone(), artefact: self.header.engine.clone(), engine: engine_binding() });
        }
        let Some(entry) = self.header.components.iter().find(|c| c.name == component.name() && c.digest == component.digest()) else {
            return Err(ArtefactError::MissingComponent { path: self.path.clone(), component: component.name().to_string(), digest: component.digest().to_string() });
        };
        let code = &self.code[entry.offset as usize..(entry.offset + entry.length) as usize];
        let kind = EngineKind::from(entry.engine);
        let artifact = match entry.kind {
            CodeKind::Component => ArtifactKind::Component,
            CodeKind::Module => ArtifactKind::Module,
        };
        // SAFETY: the code is Wasmtime's serialisation as `wasmzip compile` wrote it, checked against
        // its SHA-256 just now; Wasmtime checks its compile settings against the engine's before
        // making it executable. The operator vouches for the file as for the binary (module docs).
        let program = unsafe { runtime.deserialize(kind, artifact, code) }
            .map_err(|e| ArtefactError::Rejected { path: self.path.clone(), component: entry.name.clone(), message: format!("{e:#}") })?;
        Ok((kind, program))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package() -> ArtefactPackage {
        ArtefactPackage { name: "hello".into(), version: "1.0.0".into(), digest: "ab".repeat(32) }
    }

    fn code(name: &str, bytes: &[u8]) -> CompiledCode {
        CompiledCode { name: name.into(), digest: "cd".repeat(32), kind: CodeKind::Component, engine: EngineKind::Plain, code: bytes.to_vec() }
    }

    #[test]
    fn an_artefact_round_trips_and_every_damage_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.aot");
        let written = write_artefact(&path, package(), "pulley64", vec![code("one", b"first code"), code("two", &[7u8; 70_000])]).unwrap();
        let read = Artefact::open(&path).unwrap();
        assert_eq!(read.header(), &written);
        assert_eq!(read.header().components[1].offset, 10);
        assert_eq!(&read.code[10..], &[7u8; 70_000][..]);

        let original = std::fs::read(&path).unwrap();
        // Any flipped byte, in the magic, the header, the code or the checksum, is refused.
        for at in [0, 7, 9, 20, original.len() - 40, original.len() - 1] {
            let mut bytes = original.clone();
            bytes[at] ^= 0x20;
            std::fs::write(&path, &bytes).unwrap();
            let err = Artefact::open(&path).unwrap_err();
            assert!(matches!(err, ArtefactError::Corrupt { .. } | ArtefactError::NotAnArtefact { .. }), "byte {at}: {err}");
        }
        std::fs::write(&path, &original[..original.len() - 5]).unwrap();
        assert!(Artefact::open(&path).unwrap_err().to_string().contains("checksum"));
        std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
        assert!(matches!(Artefact::open(&path).unwrap_err(), ArtefactError::NotAnArtefact { .. }));
    }

    #[test]
    fn another_package_is_refused_by_name_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.aot");
        write_artefact(&path, package(), "pulley64", vec![code("one", b"x")]).unwrap();
        let artefact = Artefact::open(&path).unwrap();
        artefact.check_package(&"ab".repeat(32), || unreachable!()).unwrap();
        let err = artefact.check_package(&"ef".repeat(32), || "hello 1.0.1 (sha256:efef…)".into()).unwrap_err().to_string();
        assert!(err.contains("compiled from package hello 1.0.0") && err.contains("not hello 1.0.1"), "{err}");
    }

    /// The Wasmtime version an artefact is bound to is the one actually built.
    #[test]
    fn the_bound_wasmtime_version_is_the_locked_one() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).unwrap();
        let locked = lock.split("[[package]]").find(|p| p.contains("\nname = \"wasmtime\"\n")).expect("wasmtime is locked");
        assert!(locked.contains(&format!("\nversion = \"{WASMTIME_VERSION}\"\n")), "{locked}");
    }
}
