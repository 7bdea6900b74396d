//! The on-disk compile cache. Loading compiled code is `unsafe` in Wasmtime (it is trusted to be what
//! Wasmtime wrote), so each entry carries its own SHA-256, checked before the entry is handed over. A
//! missing, stale or corrupt entry is recompiled, never trusted. The directory can be deleted at any time.
//!
//! An entry is Wasmtime's serialised code followed by a trailer (magic, SHA-256 of the code, its
//! length). The code starts at offset 0, so Wasmtime maps the file instead of copying it: pages of it
//! that are never used (the guest's DWARF, kept for trap backtraces) never become resident.

#[cfg(feature = "cranelift")]
use std::hash::Hasher;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Magic in every entry's trailer; the digit is the entry format version.
const MAGIC: &[u8; 8] = b"WZCACHE2";
/// The first bytes of an entry in the earlier format (a header in front of the code).
const MAGIC_V1: &[u8; 8] = b"WZCACHE1";
const TRAILER_LEN: u64 = MAGIC.len() as u64 + 32 + 8;

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
#[cfg(feature = "cranelift")]
struct Sha256Hasher(Sha256);

#[cfg(feature = "cranelift")]
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
    #[cfg(feature = "cranelift")]
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

    /// The path of an entry whose code matched its checksum just now, or `None` when missing or
    /// corrupt (a corrupt entry, or one in an earlier format, is removed). The file holds Wasmtime's
    /// code from offset 0 up to [`CheckedEntry::code_len`], then the trailer.
    pub fn load(&self, kind: ArtifactKind, digest: &str) -> Option<CheckedEntry> {
        let path = self.entry_path(kind, digest);
        let file = std::fs::File::open(&path).ok()?;
        match check_entry(file) {
            Ok(code_len) => {
                crate::cache_dir::touch(&path);
                Some(CheckedEntry { path, code_len })
            }
            Err(EntryError::OlderFormat) => {
                tracing::debug!(path = %path.display(), "replacing a compile-cache entry of an earlier format");
                let _ = std::fs::remove_file(&path);
                None
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

    /// Writes an entry atomically (a temporary file renamed into place) and returns its path.
    pub fn store(&self, kind: ArtifactKind, digest: &str, payload: &[u8]) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let path = self.entry_path(kind, digest);
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(payload)?;
            file.write_all(MAGIC)?;
            file.write_all(&Sha256::digest(payload))?;
            file.write_all(&(payload.len() as u64).to_le_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map(|()| path)
    }
}

/// An entry whose checksum was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedEntry {
    /// The entry's file.
    pub path: PathBuf,
    /// Bytes of Wasmtime's code at its start; the trailer follows.
    pub code_len: u64,
}

/// Why an entry was not used.
#[derive(Debug, thiserror::Error)]
enum EntryError {
    #[error("written in an earlier format")]
    OlderFormat,
    #[error("no trailer")]
    BadTrailer,
    #[error("its length does not match its trailer")]
    LengthMismatch,
    #[error("checksum mismatch")]
    Checksum,
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks an entry's trailer and the SHA-256 of its code, reading the file in pieces (nothing of it
/// stays in memory). Returns the code's length.
fn check_entry(mut file: std::fs::File) -> Result<u64, EntryError> {
    let size = file.metadata()?.len();
    let mut start = [0u8; 8];
    if size >= 8 {
        file.read_exact(&mut start)?;
        if &start == MAGIC_V1 {
            return Err(EntryError::OlderFormat);
        }
    }
    if size < TRAILER_LEN {
        return Err(EntryError::BadTrailer);
    }
    let mut trailer = [0u8; TRAILER_LEN as usize];
    file.seek(SeekFrom::Start(size - TRAILER_LEN))?;
    file.read_exact(&mut trailer)?;
    if &trailer[..MAGIC.len()] != MAGIC {
        return Err(EntryError::BadTrailer);
    }
    let digest = &trailer[MAGIC.len()..MAGIC.len() + 32];
    let code_len = u64::from_le_bytes(trailer[MAGIC.len() + 32..].try_into().expect("8 bytes"));
    if code_len != size - TRAILER_LEN {
        return Err(EntryError::LengthMismatch);
    }
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = code_len;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).expect("at most 64 KiB");
        file.read_exact(&mut buf[..want])?;
        hasher.update(&buf[..want]);
        left -= want as u64;
    }
    if hasher.finalize().as_slice() != digest {
        return Err(EntryError::Checksum);
    }
    Ok(code_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "cranelift")]
    fn round_trip_and_corruption_detected() {
        let dir = tempfile::tempdir().unwrap();
        let engine = wasmtime::Engine::default();
        let cache = CompileCache::new(dir.path().join("c"), &engine);
        assert!(cache.load(ArtifactKind::Component, "abc").is_none());
        // More than one read's worth of code, so the checksum covers several pieces.
        let code: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        cache.store(ArtifactKind::Component, "abc", &code).unwrap();
        let path = cache.entry_path(ArtifactKind::Component, "abc");
        let entry = cache.load(ArtifactKind::Component, "abc").unwrap();
        assert_eq!(entry, CheckedEntry { path: path.clone(), code_len: code.len() as u64 });
        assert_eq!(&std::fs::read(&path).unwrap()[..code.len()], &code[..], "the code starts the file");
        assert!(cache.load(ArtifactKind::Module, "abc").is_none(), "kinds are separate");

        // A flipped byte in the code, in the trailer's checksum, or in its length: discarded and removed.
        for at in [0, code.len() - 1, code.len() + 8, code.len() + 40] {
            cache.store(ArtifactKind::Component, "abc", &code).unwrap();
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[at] ^= 1;
            std::fs::write(&path, &bytes).unwrap();
            assert!(cache.load(ArtifactKind::Component, "abc").is_none(), "byte {at} flipped");
            assert!(!path.exists(), "a corrupt entry is removed");
        }
        // Truncated, too short for a trailer, and an entry of the earlier format.
        cache.store(ArtifactKind::Component, "abc", &code).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(cache.load(ArtifactKind::Component, "abc").is_none());
        for junk in [&b"WZCACHE2"[..], b"WZCACHE1 and what was then the header and code"] {
            std::fs::write(&path, junk).unwrap();
            assert!(cache.load(ArtifactKind::Component, "abc").is_none());
            assert!(!path.exists());
        }
    }
}
