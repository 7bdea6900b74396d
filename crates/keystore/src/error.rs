//! The keystore's error type. Messages name the key, version, file or PKCS#11 call at fault and never
//! contain secret material.

use std::path::PathBuf;

use crate::{KeyName, KeyType, Operation};

/// Why a keystore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// No key of that name.
    #[error("no key named `{0}`")]
    NotFound(KeyName),
    /// `create` of a name that exists.
    #[error("a key named `{0}` already exists (use `wasmzip keys rotate` for a new version)")]
    Exists(KeyName),
    /// The key has no such version.
    #[error("key `{name}` has no version {version}")]
    UnknownVersion {
        /// The key.
        name: KeyName,
        /// The version asked for.
        version: u32,
    },
    /// The key's type does not do the operation.
    #[error("key `{name}` is a {key_type} key and cannot {operation}")]
    Unsupported {
        /// The key.
        name: KeyName,
        /// Its type.
        key_type: KeyType,
        /// The operation.
        operation: Operation,
    },
    /// Sealed data or a tag did not authenticate.
    #[error("authentication failed: the data was changed or sealed with another key, version or associated data")]
    AuthenticationFailed,
    /// Input refused before any key was used.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The key has as many versions as allowed.
    #[error("key `{0}` has reached the limit of {max} versions", max = crate::MAX_KEY_VERSIONS)]
    TooManyVersions(KeyName),
    /// The passphrase does not open the software keystore.
    #[error("wrong passphrase for the keystore at {}", .0.display())]
    WrongPassphrase(PathBuf),
    /// A passphrase, PIN, module or token setting is missing or unusable.
    #[error("{0}")]
    Config(String),
    /// A file of the software keystore could not be read or written.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A key file is malformed or was tampered with.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A PKCS#11 call failed.
    #[error("PKCS#11 {call} failed: {message}")]
    Pkcs11 {
        /// The call or step (`C_Login`, `C_Sign`, `loading the module`).
        call: String,
        /// The module's error.
        message: String,
    },
}

impl KeystoreError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, error: std::io::Error) -> Self {
        KeystoreError::Io { path: path.into(), action, error }
    }
}
