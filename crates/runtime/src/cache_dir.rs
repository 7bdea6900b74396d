//! The cache directory as a whole: what it holds (compiled code under `compiled/`, extracted
//! package resources under `packages/`), how large each entry is, when it was last used, and
//! pruning to a size cap, least recently used first.
//!
//! Use is the entry's modification time: the compile cache touches an entry whenever it hands it
//! out, and a verified package touches its extracted resources. A running wasmzip holds a shared
//! lock on the resources of every package it uses ([`wasmzip_package::ResourcesHold`]); pruning
//! takes that lock exclusively, without waiting, and leaves an entry in use alone. A compiled entry
//! can always go: a process that mapped it keeps its mapping, and the next one recompiles.

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Cache size above which entries are pruned, unless the operator says otherwise.
pub const DEFAULT_MAX_CACHE_BYTES: u64 = 4 << 30;
/// Leftovers of an interrupted write (`*.tmp-PID`, `.tmp-DIGEST-...`) older than this are removed
/// by a prune.
pub const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    /// Compiled code (`compiled/KIND-DIGEST-ENGINE.cwasm`).
    Compiled,
    /// A package's extracted resources (`packages/DIGEST/`).
    Package,
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EntryKind::Compiled => "compiled",
            EntryKind::Package => "package",
        })
    }
}

/// One entry of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// What it holds.
    pub kind: EntryKind,
    /// Its path.
    pub path: PathBuf,
    /// Bytes on disk (all files, for a package).
    pub bytes: u64,
    /// When it was last used.
    pub last_used: SystemTime,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Entries removed, least recently used first.
    pub removed: Vec<CacheEntry>,
    /// Entries a running wasmzip holds, left alone although they were due.
    pub in_use: Vec<CacheEntry>,
    /// Bytes left in the cache.
    pub remaining_bytes: u64,
}

/// Why the cache could not be listed or pruned.
#[derive(Debug, thiserror::Error)]
#[error("cache directory {}: cannot {action} {}: {error}", root.display(), path.display())]
pub struct CacheDirError {
    /// The cache root.
    pub root: PathBuf,
    /// What was being done.
    pub action: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The cause.
    pub error: std::io::Error,
}

/// A cache directory (`--cache-dir`).
#[derive(Debug, Clone)]
pub struct CacheDir {
    root: PathBuf,
}

impl CacheDir {
    /// The cache rooted at `root`; nothing is created.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CacheDir { root: root.into() }
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn err(&self, action: &'static str, path: &Path, error: std::io::Error) -> CacheDirError {
        CacheDirError { root: self.root.clone(), action, path: path.to_path_buf(), error }
    }

    /// Every entry, least recently used first (temporary leftovers are not entries).
    pub fn entries(&self) -> Result<Vec<CacheEntry>, CacheDirError> {
        let mut entries = Vec::new();
        for (kind, dir) in [(EntryKind::Compiled, "compiled"), (EntryKind::Package, "packages")] {
            let dir = self.root.join(dir);
            let listing = match std::fs::read_dir(&dir) {
                Ok(l) => l,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(self.err("list", &dir, e)),
            };
            for item in listing {
                let item = item.map_err(|e| self.err("list", &dir, e))?;
                let path = item.path();
                let name = item.file_name().to_string_lossy().into_owned();
                if is_temporary(&name) {
                    continue;
                }
                // An entry removed by another process while listing is just gone.
                let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
                let wanted = match kind {
                    EntryKind::Compiled => meta.is_file() && name.ends_with(".cwasm"),
                    EntryKind::Package => meta.is_dir(),
                };
                if !wanted {
                    continue;
                }
                let bytes = if meta.is_dir() { tree_bytes(&path) } else { meta.len() };
                entries.push(CacheEntry { kind, path, bytes, last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH) });
            }
        }
        entries.sort_by(|a, b| a.last_used.cmp(&b.last_used).then_with(|| a.path.cmp(&b.path)));
        Ok(entries)
    }

    /// Removes entries, least recently used first, until the cache holds at most `max_bytes`;
    /// entries in use stay. Stale temporary leftovers go too.
    pub fn prune(&self, max_bytes: u64) -> Result<Pruned, CacheDirError> {
        self.remove_stale_temporaries();
        let entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        let mut pruned = Pruned::default();
        for entry in entries {
            if total <= max_bytes {
                break;
            }
            match self.remove(&entry)? {
                true => {
                    total -= entry.bytes;
                    pruned.removed.push(entry);
                }
                false => pruned.in_use.push(entry),
            }
        }
        pruned.remaining_bytes = total;
        Ok(pruned)
    }

    /// Prunes to `max_bytes` after something new was written, as `run` and a deploy do: a failure
    /// is a warning, never an error (the cache is an optimisation), and what went is logged.
    pub fn enforce_cap(&self, max_bytes: u64) {
        match self.prune(max_bytes) {
            Ok(pruned) if !pruned.removed.is_empty() => {
                tracing::info!(target: "wasmzip::cache", removed = pruned.removed.len(), "pruned the cache to its cap of {max_bytes} bytes");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(target: "wasmzip::cache", "cannot prune the cache: {e}"),
        }
    }

    /// Removes one entry unless a running wasmzip holds it; true when it is gone.
    fn remove(&self, entry: &CacheEntry) -> Result<bool, CacheDirError> {
        match entry.kind {
            EntryKind::Compiled => match std::fs::remove_file(&entry.path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
                Err(e) => Err(self.err("remove", &entry.path, e)),
            },
            EntryKind::Package => {
                let dir = match File::open(&entry.path) {
                    Ok(d) => d,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(true),
                    Err(e) => return Err(self.err("open", &entry.path, e)),
                };
                match dir.try_lock() {
                    Ok(()) => {}
                    Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
                    Err(std::fs::TryLockError::Error(e)) => return Err(self.err("lock", &entry.path, e)),
                }
                // Out of the way in one step (a verifier that comes now extracts afresh), then
                // deleted; the lock is held until it is.
                let name = entry.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let doomed = entry.path.with_file_name(format!(".tmp-pruned-{name}-{}", std::process::id()));
                std::fs::rename(&entry.path, &doomed).map_err(|e| self.err("remove", &entry.path, e))?;
                std::fs::remove_dir_all(&doomed).map_err(|e| self.err("remove", &doomed, e))?;
                drop(dir);
                Ok(true)
            }
        }
    }

    fn remove_stale_temporaries(&self) {
        let now = SystemTime::now();
        for dir in ["compiled", "packages"] {
            let Ok(listing) = std::fs::read_dir(self.root.join(dir)) else { continue };
            for item in listing.flatten() {
                let name = item.file_name().to_string_lossy().into_owned();
                let Ok(meta) = item.metadata() else { continue };
                let old = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).is_some_and(|age| age > STALE_TEMPORARY);
                if is_temporary(&name) && old {
                    let path = item.path();
                    let _ = if meta.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                }
            }
        }
    }
}

/// Marks a compiled entry used now, for pruning (failure only makes it look older).
pub(crate) fn touch(path: &Path) {
    if let Ok(file) = File::open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// A write in progress or left by an interrupted one: `.tmp-…` directories, `….tmp-PID` files.
fn is_temporary(name: &str) -> bool {
    name.contains(".tmp-")
}

/// Bytes of every file below `dir` (links not followed).
fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(listing) = std::fs::read_dir(&d) else { continue };
        for item in listing.flatten() {
            let Ok(meta) = item.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                pending.push(item.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_file(path: &Path, bytes: usize, age_s: u64) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![0u8; bytes]).unwrap();
        File::open(path).unwrap().set_modified(SystemTime::now() - Duration::from_secs(age_s)).unwrap();
    }

    fn package_dir(path: &Path, bytes: usize, age_s: u64) {
        std::fs::create_dir_all(path.join("sub")).unwrap();
        std::fs::write(path.join("sub/file"), vec![1u8; bytes]).unwrap();
        File::open(path).unwrap().set_modified(SystemTime::now() - Duration::from_secs(age_s)).unwrap();
    }

    #[test]
    fn prunes_least_recently_used_first_and_spares_what_is_held() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(tmp.path());
        entry_file(&tmp.path().join("compiled/component-a-e.cwasm"), 1000, 300);
        entry_file(&tmp.path().join("compiled/component-b-e.cwasm"), 1000, 10);
        package_dir(&tmp.path().join("packages/p1"), 2000, 200);
        package_dir(&tmp.path().join("packages/p2"), 2000, 100);
        entry_file(&tmp.path().join("compiled/component-c-e.tmp-77"), 50, 7200);
        let listed = cache.entries().unwrap();
        let names: Vec<String> = listed.iter().map(|e| e.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["component-a-e.cwasm", "p1", "p2", "component-b-e.cwasm"], "oldest first, no temporaries");
        assert_eq!(listed[1].bytes, 2000, "a package counts every file below it");

        // p1 is in use: a shared lock, as a verified package holds it.
        let held = File::open(tmp.path().join("packages/p1")).unwrap();
        held.lock_shared().unwrap();
        let pruned = cache.prune(3000).unwrap();
        let gone: Vec<&str> = pruned.removed.iter().map(|e| e.path.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(gone, ["component-a-e.cwasm", "p2"]);
        assert_eq!(pruned.in_use.len(), 1);
        assert_eq!(pruned.remaining_bytes, 3000);
        assert!(tmp.path().join("packages/p1/sub/file").exists());
        assert!(!tmp.path().join("compiled/component-c-e.tmp-77").exists(), "stale leftovers go");
        drop(held);
        let pruned = cache.prune(0).unwrap();
        assert_eq!(pruned.removed.len(), 2);
        assert!(cache.entries().unwrap().is_empty());
        assert_eq!(pruned.remaining_bytes, 0);
    }

    #[test]
    fn an_empty_or_missing_cache_is_fine() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = CacheDir::new(tmp.path().join("nothing-here"));
        assert!(cache.entries().unwrap().is_empty());
        assert_eq!(cache.prune(0).unwrap(), Pruned::default());
    }
}
