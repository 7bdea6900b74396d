//! The `.wasmzip` package format: the author's `wasmzip.toml`, the pinned and signed `manifest.json`,
//! capability tokens, and the strict archive they live in.
//!
//! Data flows one way: [`pack`] writes an archive; [`verify_package`] reads one back and is the only way
//! to obtain a [`VerifiedPackage`], whose bytes are exactly those whose digests and signature were
//! checked. This crate touches only the paths and streams handed to it; it knows nothing of Wasmtime.
//! The format is specified in `docs/package-format.md`.
#![deny(missing_docs)]

pub mod archive;
pub mod capability;
mod component;
mod error;
mod hashing;
pub mod manifest;
mod pack;
pub mod provenance;
pub mod sbom;
pub mod signing;
mod verify;

pub use capability::{Capability, Resolution, TokenError, effective_grants, resolve};
pub use component::{ComponentSource, PackagedModel, VerifiedComponent};
pub use error::PackageError;
pub use hashing::{sha256_file, sha256_hex};
pub use manifest::{AuthorManifest, PackageManifest, World};
pub use pack::{PackOptions, PackSummary, bare_package_name, default_output_name, find_author_manifest, pack, pack_bare};
pub use provenance::{BuildFacts, Provenance, SourceRevision};
pub use signing::{KeyId, PublicKey, SignatureCheck, SigningKey};
pub use verify::{
    AdmitError, PackageFacts, PackageReport, ResourceSink, ResourcesHold, Signer, TrustPolicy, VerifiedPackage, add_signature, inspect_package, peek_manifest, verify_package,
    verify_package_admitted,
};

/// Name of the manifest member.
pub const MANIFEST_MEMBER: &str = "manifest.json";
/// Name of the signature member (a DSSE envelope).
pub const SIGNATURE_MEMBER: &str = "signature.dsse.json";
/// Largest `manifest.json` accepted.
pub const MAX_MANIFEST_SIZE: u64 = 1024 * 1024;
/// Largest component accepted (components are held in memory to be compiled).
pub const MAX_COMPONENT_SIZE: u64 = 256 * 1024 * 1024;
/// Resources of this size and more are stored uncompressed.
pub const STORE_UNCOMPRESSED_FROM: u64 = 1024 * 1024;
