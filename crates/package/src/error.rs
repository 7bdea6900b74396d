//! The error type of the package crate. Every variant names the file, member, key or token at fault.

use std::path::{Path, PathBuf};

use crate::archive::ArchiveError;
use crate::capability::TokenError;

/// Why a package could not be packed, read, verified or trusted.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A file could not be read or written.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`read`, `create`, ...).
        action: &'static str,
        /// The underlying error (shown in the message, so not chained as a source).
        error: std::io::Error,
    },
    /// `wasmzip.toml` is malformed; the message names the line and key.
    #[error("{}: {message}", path.display())]
    AuthorManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong, with line and column where known.
        message: String,
    },
    /// A file named by `wasmzip.toml` is missing or unusable.
    #[error("{}: {key}: {message}", path.display())]
    AuthorInput {
        /// The manifest file.
        path: PathBuf,
        /// The key naming the input (`components.hello.file`, `resources`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The archive's structure is invalid (names the member where there is one).
    #[error("{}: {error}", path.display())]
    Archive {
        /// The package file.
        path: PathBuf,
        /// The structural fault (shown in the message, so not chained as a source).
        error: ArchiveError,
    },
    /// `manifest.json` is malformed.
    #[error("manifest.json: {message}")]
    Manifest {
        /// What is wrong.
        message: String,
    },
    /// A member is not what the manifest pins, or is missing, or is not pinned.
    #[error("member `{member}`: {message}")]
    Member {
        /// The member name.
        member: String,
        /// What is wrong.
        message: String,
    },
    /// The signature envelope is malformed or does not verify.
    #[error("signature: {0}")]
    Signature(String),
    /// The package is signed, but by no trusted key.
    #[error("the package is signed by key {key_ids}, which is not trusted (add its public key with --trust or WASMZIP_TRUST)")]
    Untrusted {
        /// The key ids that signed, comma separated.
        key_ids: String,
    },
    /// The package has no component of the kind asked for.
    #[error("package {package} has no {wanted}")]
    NoComponent {
        /// The package name.
        package: String,
        /// What was looked for.
        wanted: String,
    },
    /// The package is unsigned and the policy requires a signature.
    #[error("the package is not signed; run it only if you accept that, with --allow-unsigned")]
    Unsigned,
    /// No trust anchor was given for a signed package.
    #[error("the package is signed by key {key_ids}, but no trusted keys were given (use --trust or WASMZIP_TRUST)")]
    NoTrustAnchors {
        /// The key ids that signed, comma separated.
        key_ids: String,
    },
    /// A key file is malformed.
    #[error("{}: {message}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A capability token is malformed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A fault inside the package file at `path`: its manifest, a member, or its signature.
    #[error("{}: {error}", path.display())]
    InPackage {
        /// The package file.
        path: PathBuf,
        /// The fault.
        error: Box<PackageError>,
    },
}

impl PackageError {
    /// This error, naming the package file `path` when it is about the package's contents (the
    /// manifest, a member, the signature) and does not name the file already.
    pub fn within(self, path: &Path) -> Self {
        match self {
            e @ (PackageError::Manifest { .. }
            | PackageError::Member { .. }
            | PackageError::Signature(_)
            | PackageError::Untrusted { .. }
            | PackageError::NoTrustAnchors { .. }
            | PackageError::Unsigned) => {
                PackageError::InPackage { path: path.to_path_buf(), error: Box::new(e) }
            }
            other => other,
        }
    }

    /// The fault itself, without the file it was found in.
    pub fn fault(&self) -> &PackageError {
        match self {
            PackageError::InPackage { error, .. } => error.fault(),
            other => other,
        }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        PackageError::Io { path: path.to_path_buf(), action, error: source }
    }

    /// A fault in one member.
    pub(crate) fn member(member: &str, message: impl Into<String>) -> Self {
        PackageError::Member { member: member.to_string(), message: message.into() }
    }
}
