//! The on-disk compile cache. Loading compiled code is `unsafe` in Wasmtime (it is trusted to be what
//! Wasmtime wrote), so each entry carries its own SHA-256, checked before the bytes are handed over. A
//! missing, stale or corrupt entry is recompiled, never trusted. The directory can be deleted at any time.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Magic at the start of every entry; the digit is the entry format version.
const MAGIC: &[u8; 8] = b"WZCACHE1";
const HEADER_LEN: usize = MAGIC.len() + 32 + 8;

/// What was compiled: the key space of components and core modules is kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// A component.
    Component,
    /// A core module.
    Module,
}

/// A directory of compiled artifacts keyed by input digest and engine compatibility.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_hash: String,
}

/// Feeds `Hash` output into SHA-256, so the engine's compatibility hash is stable across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only the full digest is used")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompileCache {
    /// A cache in `dir` for artifacts of `engine`.
    pub fn new(dir: PathBuf, engine: &wasmtime::Engine) -> Self {
        use std::hash::Hash;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hex::encode(&hasher.0.finalize()[..16]);
        CompileCache { dir, engine_hash }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry for `digest` lives.
    pub fn entry_path(&self, kind: ArtifactKind, digest: &str) -> PathBuf {
        let kind = match kind {
            ArtifactKind::Component => "component",
            ArtifactKind::Module => "module",
        };
        self.dir.join(format!("{kind}-{digest}-{}.cwasm", self.engine_hash))
    }

    /// The verified payload of an entry, or `None` when missing or corrupt (a corrupt entry is removed).
    pub fn load(&self, kind: ArtifactKind, digest: &str) -> Option<Vec<u8>> {
        let path = self.entry_path(kind, digest);
        let mut bytes = std::fs::read(&path).ok()?;
        match check_entry(&bytes) {
            Ok(()) => {
                bytes.drain(..HEADER_LEN);
                Some(bytes)
            }
            Err(why) => {
                tracing::warn!(path = %path.display(), "discarding corrupt compile-cache entry: {why}");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Removes an entry (Wasmtime rejected it).
    pub fn remove(&self, kind: ArtifactKind, digest: &str) {
        let _ = std::fs::remove_file(self.entry_path(kind, digest));
    }

    /// Writes an entry atomically: a temporary file renamed into place.
    pub fn store(&self, kind: ArtifactKind, digest: &str, payload: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let path = self.entry_path(kind, digest);
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(MAGIC)?;
            file.write_all(&Sha256::digest(payload))?;
            file.write_all(&(payload.len() as u64).to_le_bytes())?;
            file.write_all(payload)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

fn check_entry(bytes: &[u8]) -> Result<(), &'static str> {
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err("bad header");
    }
    let digest = &bytes[MAGIC.len()..MAGIC.len() + 32];
    let len = u64::from_le_bytes(bytes[MAGIC.len() + 32..HEADER_LEN].try_into().expect("8 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != len {
        return Err("truncated");
    }
    if Sha256::digest(payload).as_slice() != digest {
        return Err("checksum mismatch");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_detected() {
        let dir = tempfile::tempdir().unwrap();
        let engine = wasmtime::Engine::default();
        let cache = CompileCache::new(dir.path().join("c"), &engine);
        assert!(cache.load(ArtifactKind::Component, "abc").is_none());
        cache.store(ArtifactKind::Component, "abc", b"payload bytes").unwrap();
        assert_eq!(cache.load(ArtifactKind::Component, "abc").unwrap(), b"payload bytes");
        assert!(cache.load(ArtifactKind::Module, "abc").is_none(), "kinds are separate");

        let path = cache.entry_path(ArtifactKind::Component, "abc");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(cache.load(ArtifactKind::Component, "abc").is_none());
        assert!(!path.exists(), "a corrupt entry is removed");

        std::fs::write(&path, b"WZCACHE1short").unwrap();
        assert!(cache.load(ArtifactKind::Component, "abc").is_none());
    }
}
