//! Where deployments live. The [`DeploymentStore`] trait keeps the server independent of the storage;
//! [`LocalStore`] (a data directory) is the default. Every write is a temporary file made durable and
//! renamed into place, so a crash at any point leaves either the old or the new state, never half of one.
//!
//! The data directory is also the embedded backend of the two seams cluster mode is built on: it is
//! a [`DesiredState`] (one record per function, compare-and-set on a per-function revision, watched
//! within the process) and a [`PackageStorage`] (packages by digest). A server without `--cluster`
//! deploys through both; a cluster node uses NATS and an OCI registry instead, with its data
//! directory as the record of what it serves and the cache of the packages it holds.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::desired::{DesiredError, DesiredEvent, DesiredFunction, DesiredListing, DesiredState, valid_key};
use crate::packages::{PackageStorage, StorageError, StoredPackage};

/// How many versions of each function are kept for rollback.
pub const KEPT_VERSIONS: usize = 5;
/// Current format of the deployment record.
pub const STATE_FORMAT: u32 = 1;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// The deployment record is unreadable.
    #[error("{}: {message}", path.display())]
    Corrupt {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One deployed version of a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployedVersion {
    /// The package version.
    pub version: String,
    /// SHA-256 of the package's manifest (the package digest).
    pub digest: String,
    /// SHA-256 of the package file as deployed (what an OCI registry names it by; records written
    /// before format 2 have none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub archive_digest: String,
    /// Where every node fetches the package, in cluster mode: an OCI reference naming it by digest
    /// (`HOST/REPO:TAG@sha256:…`). Empty in local mode.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reference: String,
    /// The keys whose signatures over the package held when it was deployed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<String>,
    /// Grants given at deploy time, as tokens.
    pub grants: Vec<String>,
    /// Whether everything requested was granted.
    pub grant_requested: bool,
    /// A number that grows with every deploy across the server, to tell versions apart.
    pub sequence: u64,
    /// Seconds since the Unix epoch.
    pub deployed_at: u64,
}

/// The versions of one function, oldest first; the last one serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionRecord {
    /// Kept versions, oldest first (at most [`KEPT_VERSIONS`]).
    pub versions: Vec<DeployedVersion>,
}

impl FunctionRecord {
    /// The version that serves.
    pub fn active(&self) -> Option<&DeployedVersion> {
        self.versions.last()
    }

    /// Adds a version on top, forgetting the oldest beyond [`KEPT_VERSIONS`].
    pub fn push(&mut self, version: DeployedVersion) {
        self.versions.push(version);
        let excess = self.versions.len().saturating_sub(KEPT_VERSIONS);
        self.versions.drain(..excess);
    }
}

/// Everything deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentState {
    /// Format of this record.
    pub format: u32,
    /// The last sequence number handed out.
    pub sequence: u64,
    /// Functions by name.
    pub functions: BTreeMap<String, FunctionRecord>,
    /// The last desired-state revision handed out (one per write of a function's record).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revision: u64,
    /// Each function's revision: that of the last write of its record (kept after a removal, so a
    /// compare-and-set that read the record before it was removed fails).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revisions: BTreeMap<String, u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Default for DeploymentState {
    fn default() -> Self {
        DeploymentState { format: STATE_FORMAT, sequence: 0, functions: BTreeMap::new(), revision: 0, revisions: BTreeMap::new() }
    }
}

impl DeploymentState {
    /// Digests of every package any kept version refers to.
    pub fn referenced_digests(&self) -> std::collections::BTreeSet<String> {
        self.functions.values().flat_map(|f| f.versions.iter().map(|v| v.digest.clone())).collect()
    }
}

/// Storage for packages and the deployment record.
pub trait DeploymentStore: Send + Sync {
    /// The deployment record (empty when none was ever written).
    fn load(&self) -> Result<DeploymentState, StoreError>;
    /// Stores a verified package file under its digest, durably, moving `staged` (a file this store
    /// handed out with [`DeploymentStore::staging_path`]). Storing a digest again is a no-op.
    fn store_package(&self, digest: &str, staged: &Path) -> Result<PathBuf, StoreError>;
    /// Where the package with `digest` is stored.
    fn package_path(&self, digest: &str) -> PathBuf;
    /// A fresh path to stage an upload on, on the same file system as the packages.
    fn staging_path(&self) -> Result<PathBuf, StoreError>;
    /// Replaces the deployment record atomically.
    fn commit(&self, state: &DeploymentState) -> Result<(), StoreError>;
    /// Removes stored packages no kept version refers to, and leftover temporary records.
    fn collect_garbage(&self, state: &DeploymentState) -> Result<(), StoreError>;
    /// Removes abandoned uploads; only safe while no upload is in progress (at start).
    fn clear_staging(&self) -> Result<(), StoreError>;
}

/// Everything a server keeps in its data directory: the record of what it serves
/// ([`DeploymentStore`]), its desired state and its packages (the seams cluster mode replaces).
pub trait LocalBackend: DeploymentStore + DesiredState + PackageStorage {}

impl<T: DeploymentStore + DesiredState + PackageStorage> LocalBackend for T {}

/// A data directory: `packages/DIGEST.wasmzip`, `staging/`, and `deployments.json`.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
    /// Serialises compare-and-set writes within the process.
    writes: std::sync::Arc<std::sync::Mutex<()>>,
    /// Every desired-state change, for watches.
    changes: tokio::sync::broadcast::Sender<DesiredEvent>,
}

impl LocalStore {
    /// Opens (creating) a data directory.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        for sub in ["packages", "staging"] {
            let path = dir.join(sub);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .map_err(|error| StoreError::Io { action: "create", path, error })?;
        }
        Ok(LocalStore { dir: dir.to_path_buf(), writes: Default::default(), changes: tokio::sync::broadcast::channel(64).0 })
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("deployments.json")
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |error| StoreError::Io { action, path, error }
}

/// Makes a rename durable: syncs the directory holding it.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("sync", dir))
}

impl DeploymentStore for LocalStore {
    fn load(&self) -> Result<DeploymentState, StoreError> {
        let path = self.state_path();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let state: DeploymentState = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupt { path: path.clone(), message: e.to_string() })?;
                if state.format != STATE_FORMAT {
                    return Err(StoreError::Corrupt { path, message: format!("format {} is not supported", state.format) });
                }
                Ok(state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DeploymentState::default()),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    fn store_package(&self, digest: &str, staged: &Path) -> Result<PathBuf, StoreError> {
        let target = self.package_path(digest);
        if target.exists() {
            let _ = std::fs::remove_file(staged);
            return Ok(target);
        }
        std::fs::File::open(staged).and_then(|f| f.sync_all()).map_err(io("sync", staged))?;
        std::fs::rename(staged, &target).map_err(io("store", &target))?;
        sync_dir(&self.dir.join("packages"))?;
        Ok(target)
    }

    fn package_path(&self, digest: &str) -> PathBuf {
        self.dir.join("packages").join(format!("{digest}.wasmzip"))
    }

    fn staging_path(&self) -> Result<PathBuf, StoreError> {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Io {
            action: "name a staging file",
            path: self.dir.join("staging"),
            error: std::io::Error::other(e.to_string()),
        })?;
        Ok(self.dir.join("staging").join(format!("{}.upload", hex::encode(nonce))))
    }

    fn commit(&self, state: &DeploymentState) -> Result<(), StoreError> {
        let path = self.state_path();
        let tmp = self.dir.join(format!("deployments.json.tmp-{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(state).expect("the state always serialises");
        let result = (|| {
            let mut file = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
            file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(io("write", &tmp))?;
            std::fs::rename(&tmp, &path).map_err(io("replace", &path))?;
            sync_dir(&self.dir)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn collect_garbage(&self, state: &DeploymentState) -> Result<(), StoreError> {
        let keep = state.referenced_digests();
        let packages = self.dir.join("packages");
        for entry in std::fs::read_dir(&packages).map_err(io("list", &packages))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = name.strip_suffix(".wasmzip").unwrap_or(&name);
            if !keep.contains(digest) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        for entry in std::fs::read_dir(&self.dir).map_err(io("list", &self.dir))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with("deployments.json.tmp-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    fn clear_staging(&self) -> Result<(), StoreError> {
        let staging = self.dir.join("staging");
        for entry in std::fs::read_dir(&staging).map_err(io("list", &staging))?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(())
    }
}

fn desired_error(e: StoreError) -> DesiredError {
    match e {
        StoreError::Corrupt { path, message } => DesiredError::Corrupt { function: path.display().to_string(), message },
        io => DesiredError::Unavailable(io.to_string()),
    }
}

#[async_trait::async_trait]
impl DesiredState for LocalStore {
    async fn get(&self, function: &str) -> Result<(Option<FunctionRecord>, u64), DesiredError> {
        let state = self.load().map_err(desired_error)?;
        Ok((state.functions.get(function).cloned(), state.revisions.get(function).copied().unwrap_or(0)))
    }

    async fn list(&self) -> Result<DesiredListing, DesiredError> {
        let state = self.load().map_err(desired_error)?;
        let functions = state
            .functions
            .into_iter()
            .map(|(name, record)| {
                let revision = state.revisions.get(&name).copied().unwrap_or(0);
                (name, DesiredFunction { record, revision })
            })
            .collect();
        Ok(DesiredListing { functions, unreadable: BTreeMap::new() })
    }

    async fn compare_and_set(&self, function: &str, record: Option<&FunctionRecord>, expected: u64) -> Result<u64, DesiredError> {
        if !valid_key(function) {
            return Err(DesiredError::InvalidKey(function.to_string()));
        }
        let _writing = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        // Another process on the same directory waits too (an advisory lock on a file of its own).
        let lock_path = self.dir.join("deployments.lock");
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| desired_error(io("open", &lock_path)(e)))?;
        lock.lock().map_err(|e| desired_error(io("lock", &lock_path)(e)))?;
        let mut state = self.load().map_err(desired_error)?;
        let found = state.revisions.get(function).copied().unwrap_or(0);
        if found != expected {
            return Err(DesiredError::Conflict { function: function.to_string(), expected, found });
        }
        state.revision += 1;
        let revision = state.revision;
        match record {
            Some(record) => {
                state.sequence = state.sequence.max(record.versions.iter().map(|v| v.sequence).max().unwrap_or(0));
                state.functions.insert(function.to_string(), record.clone());
            }
            None => {
                state.functions.remove(function);
            }
        }
        state.revisions.insert(function.to_string(), revision);
        self.commit(&state).map_err(desired_error)?;
        let _ = self.changes.send(DesiredEvent::Changed { function: function.to_string(), record: record.cloned(), revision });
        Ok(revision)
    }

    async fn watch(&self) -> Result<futures_util::stream::BoxStream<'static, DesiredEvent>, DesiredError> {
        use futures_util::StreamExt;
        // A watcher that falls behind loses changes: the stream ends, and the caller lists again.
        let changes = self.changes.subscribe();
        Ok(futures_util::stream::unfold(changes, |mut rx| async move { rx.recv().await.ok().map(|event| (event, rx)) }).boxed())
    }
}

#[async_trait::async_trait]
impl PackageStorage for LocalStore {
    /// Moves the staged package into `packages/` under its digest.
    async fn put(&self, package: &Path, _name: &str, version: &DeployedVersion) -> Result<StoredPackage, StorageError> {
        self.store_package(&version.digest, package).map_err(|e| StorageError::Unavailable(e.to_string()))?;
        Ok(StoredPackage { reference: String::new(), archive_digest: version.archive_digest.clone() })
    }

    async fn fetch(&self, version: &DeployedVersion, dest: &Path) -> Result<(), StorageError> {
        let stored = self.package_path(&version.digest);
        if !stored.exists() {
            return Err(StorageError::Refused(format!("no stored package has digest {}", version.digest)));
        }
        std::fs::hard_link(&stored, dest)
            .or_else(|_| std::fs::copy(&stored, dest).map(drop))
            .map_err(|e| StorageError::Unavailable(format!("cannot copy {}: {e}", stored.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(n: u64) -> DeployedVersion {
        DeployedVersion {
            version: format!("1.0.{n}"),
            digest: format!("{n:064x}"),
            archive_digest: String::new(),
            reference: String::new(),
            signers: vec![],
            grants: vec![],
            grant_requested: false,
            sequence: n,
            deployed_at: 0,
        }
    }

    #[test]
    fn keeps_five_versions() {
        let mut f = FunctionRecord::default();
        for n in 1..=7 {
            f.push(version(n));
        }
        assert_eq!(f.versions.len(), KEPT_VERSIONS);
        assert_eq!(f.versions[0].sequence, 3);
        assert_eq!(f.active().unwrap().sequence, 7);
    }

    #[test]
    fn commit_load_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), DeploymentState::default());
        let staged = store.staging_path().unwrap();
        std::fs::write(&staged, b"package").unwrap();
        let stored = store.store_package(&version(1).digest, &staged).unwrap();
        assert!(stored.exists() && !staged.exists());
        let orphan = store.staging_path().unwrap();
        std::fs::write(&orphan, b"half an upload").unwrap();
        std::fs::write(store.package_path(&version(9).digest), b"unreferenced").unwrap();

        let mut state = DeploymentState::default();
        state.functions.entry("f".into()).or_default().push(version(1));
        store.commit(&state).unwrap();
        assert_eq!(store.load().unwrap(), state);
        store.collect_garbage(&state).unwrap();
        assert!(stored.exists());
        assert!(orphan.exists(), "uploads in progress survive garbage collection");
        store.clear_staging().unwrap();
        assert!(!orphan.exists());
        assert!(!store.package_path(&version(9).digest).exists());
    }

    #[tokio::test]
    async fn the_data_directory_is_a_desired_state_with_compare_and_set_and_a_watch() {
        use futures_util::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let mut watch = store.watch().await.unwrap();
        assert_eq!(store.get("f").await.unwrap(), (None, 0));
        let one = FunctionRecord { versions: vec![version(1)] };
        let r1 = store.compare_and_set("f", Some(&one), 0).await.unwrap();
        assert_eq!(watch.next().await, Some(DesiredEvent::Changed { function: "f".into(), record: Some(one.clone()), revision: r1 }));
        // A write that read an older revision changes nothing.
        let two = FunctionRecord { versions: vec![version(1), version(2)] };
        let stale = store.compare_and_set("f", Some(&two), 0).await.unwrap_err();
        assert!(matches!(stale, DesiredError::Conflict { expected: 0, found, .. } if found == r1), "{stale}");
        assert_eq!(store.get("f").await.unwrap(), (Some(one.clone()), r1));
        let r2 = store.compare_and_set("f", Some(&two), r1).await.unwrap();
        assert!(r2 > r1);
        assert_eq!(store.load().unwrap().sequence, 2);
        // Removed, the key keeps its revision: a write that read it before the removal fails.
        let r3 = store.compare_and_set("f", None, r2).await.unwrap();
        assert_eq!(store.get("f").await.unwrap(), (None, r3));
        assert!(store.compare_and_set("f", Some(&one), r2).await.is_err());
        assert!(store.list().await.unwrap().functions.is_empty());
        assert!(matches!(store.compare_and_set("A b", Some(&one), 0).await, Err(DesiredError::InvalidKey(_))));
        // Another store on the same directory (another process) sees what was written.
        let again = LocalStore::open(dir.path()).unwrap();
        assert_eq!(again.get("f").await.unwrap(), (None, r3));
    }

    #[tokio::test]
    async fn the_data_directory_is_a_package_storage() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let staged = store.staging_path().unwrap();
        std::fs::write(&staged, b"package bytes").unwrap();
        let mut v = version(1);
        v.archive_digest = "ab".repeat(32);
        let stored = store.put(&staged, "f", &v).await.unwrap();
        assert_eq!(stored, StoredPackage { reference: String::new(), archive_digest: v.archive_digest.clone() });
        assert!(!staged.exists());
        let out = dir.path().join("fetched");
        store.fetch(&v, &out).await.unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"package bytes");
        let e = store.fetch(&version(2), &dir.path().join("none")).await.unwrap_err().to_string();
        assert!(e.contains(&version(2).digest), "{e}");
    }

    #[test]
    fn corrupt_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("deployments.json"), b"{not json").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("deployments.json"), "{err}");
    }
}
