//! The package-storage seam: put a verified package where the servers that need it can fetch it,
//! and fetch one by digest. The data directory ([`crate::store::LocalStore`]) implements it for one
//! server; [`RegistryPackages`] keeps packages in an OCI registry for a cluster, each node's data
//! directory being the local cache in front of it, so a node fetches a version once and never again
//! while it is kept.

use std::path::Path;

use wasmzip_registry::{Reference, Registry, RegistryError};

use crate::store::DeployedVersion;

/// Where a package was put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPackage {
    /// A reference naming it by digest, for every node to fetch.
    pub reference: String,
    /// SHA-256 of the package file.
    pub archive_digest: String,
}

/// Why a package could not be put or fetched.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The storage cannot be reached now: try again later.
    #[error("the package storage is unavailable: {0}")]
    Unavailable(String),
    /// The storage answered, and what it answered is refused (missing, other bytes, denied).
    #[error("{0}")]
    Refused(String),
    /// The package itself cannot be stored there (a format the storage does not take).
    #[error("{0}")]
    Package(String),
}

/// Package storage: put, and fetch by digest.
#[async_trait::async_trait]
pub trait PackageStorage: Send + Sync {
    /// Stores the verified package of function `name` at `package` (a staging file, which may be
    /// moved), whose loading filled in `version`.
    async fn put(&self, package: &Path, name: &str, version: &DeployedVersion) -> Result<StoredPackage, StorageError>;
    /// Fetches the package `version` refers to into `dest`, refusing bytes other than its archive
    /// digest names.
    async fn fetch(&self, version: &DeployedVersion, dest: &Path) -> Result<(), StorageError>;
}

/// Packages in an OCI registry repository: `REPOSITORY/NAME:VERSION`, named by digest in the
/// desired state. Without a repository it only fetches (from wherever the references point).
pub struct RegistryPackages {
    registry: Registry,
    repository: Option<String>,
}

impl RegistryPackages {
    /// Packages go under `repository` (`HOST[:PORT]/PATH`), when there is one.
    pub fn new(registry: Registry, repository: Option<&str>) -> Result<Self, StorageError> {
        let repository = repository.map(|r| r.trim_end_matches('/').to_string());
        if let Some(repository) = &repository {
            // The repository must make a reference once a name and a tag are added.
            format!("{repository}/probe:0.0.0")
                .parse::<Reference>()
                .map_err(|e| StorageError::Refused(format!("--cluster-registry `{repository}` is not a registry repository: {e}")))?;
        }
        Ok(RegistryPackages { registry, repository })
    }

    /// The repository packages go to, if any.
    pub fn repository(&self) -> Option<&str> {
        self.repository.as_deref()
    }
}

fn storage_error(e: RegistryError) -> StorageError {
    match e {
        e if e.is_unavailable() => StorageError::Unavailable(e.to_string()),
        e @ (RegistryError::Package { .. } | RegistryError::NotAPackage { .. }) => StorageError::Package(e.to_string()),
        e => StorageError::Refused(e.to_string()),
    }
}

#[async_trait::async_trait]
impl PackageStorage for RegistryPackages {
    async fn put(&self, package: &Path, name: &str, version: &DeployedVersion) -> Result<StoredPackage, StorageError> {
        let repository = self.repository.as_deref().ok_or_else(|| StorageError::Refused("this node has no --cluster-registry to put packages in".into()))?;
        let version = version.version.as_str();
        // Tags cannot hold `+` (build metadata); OCI tooling writes it as `_`.
        let tag = version.replace('+', "_");
        let reference: Reference = format!("{repository}/{name}:{tag}")
            .parse()
            .map_err(|e| StorageError::Refused(format!("cannot name {name} {version} in {repository}: {e}")))?;
        let pushed = self.registry.push(package, &reference).await.map_err(storage_error)?;
        Ok(StoredPackage { reference: pushed.reference.to_string(), archive_digest: pushed.archive_digest })
    }

    async fn fetch(&self, version: &DeployedVersion, dest: &Path) -> Result<(), StorageError> {
        if version.reference.is_empty() {
            return Err(StorageError::Refused(format!("version {} (sha256:{}) names no registry reference", version.version, version.digest)));
        }
        let reference: Reference = version.reference.parse().map_err(|e| StorageError::Refused(format!("`{}`: {e}", version.reference)))?;
        // The node's registry credentials go only where its operator pointed it.
        if let Some(repository) = &self.repository
            && !format!("{}/{}", reference.registry(), reference.repository()).starts_with(&format!("{repository}/"))
        {
            return Err(StorageError::Refused(format!("`{}` is not under this node's --cluster-registry {repository}: not fetched", version.reference)));
        }
        let expected = (!version.archive_digest.is_empty()).then_some(version.archive_digest.as_str());
        self.registry.pull(&reference, dest, expected).await.map_err(storage_error)?;
        Ok(())
    }
}
