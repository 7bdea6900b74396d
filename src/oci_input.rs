//! Where `serve` and `deploy` take an OCI reference in place of a package file: the package is
//! pulled (its digests checked against the registry's manifest) into a temporary file, which is then
//! verified and deployed like any package file.

use anyhow::{Context, Result};
use wasmzip_registry::{Reference, Registry};

use crate::registry_options::RegistryOptions;

/// Whether `text` names an OCI reference rather than a file: no file of that name exists here, and
/// it reads as `HOST[:PORT]/PATH[:TAG][@DIGEST]`.
pub fn is_reference(text: &std::path::Path) -> bool {
    !text.exists() && text.to_str().is_some_and(Reference::looks_like_reference)
}

/// Pulls the package `text` names into a temporary file (removed when dropped).
pub async fn pull_to_temp(options: &RegistryOptions, text: &str) -> Result<tempfile::NamedTempFile> {
    let reference: Reference = text.parse().with_context(|| format!("`{text}` is not an OCI reference"))?;
    let registry = Registry::new(options.config()?)?;
    let file = tempfile::Builder::new()
        .prefix("wasmzip-pulled-")
        .suffix(".wasmzip")
        .tempfile()
        .context("cannot make a temporary file for the pulled package")?;
    let pulled = registry.pull(&reference, file.path(), None).await?;
    tracing::info!("pulled {} (archive sha256:{})", pulled.reference, pulled.archive_digest);
    Ok(file)
}
