//! Load-time faults of a policy or an advisories directory, and the refusal of a package.

use std::path::PathBuf;

use wasmzip_package::PackageError;

/// Why a policy or the advisories could not be loaded. Every variant names the file, and for the
/// policy the line, column and key at fault.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or directory could not be read.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error (shown in the message, so not chained as a source).
        error: std::io::Error,
    },
    /// The policy is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The policy file, as labelled.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What the TOML reader said.
        message: String,
    },
    /// A value is well-formed TOML but not a valid policy.
    #[error("{file}:{line}:{column}: {key}: {message}")]
    Invalid {
        /// The policy file, as labelled.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The key at fault (`functions[1].signers`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A key file named in `[keys]` cannot be read or is not a public key.
    #[error("{file}:{line}:{column}: keys.{name}: {error}")]
    Key {
        /// The policy file, as labelled.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The key's name in `[keys]`.
        name: String,
        /// The package crate's error, which names the key file (boxed: it is large).
        error: Box<PackageError>,
    },
    /// An advisory file is not a usable OSV record.
    #[error("advisory {}: {message}", path.display())]
    Advisory {
        /// The file (or directory) at fault.
        path: PathBuf,
        /// What is wrong, with the JSON path where there is one.
        message: String,
    },
}

/// Why a package may not run or be deployed: the policy file, the rule, the package and what in it
/// broke the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy {policy}, rule {rule}: {package}: {message}")]
pub struct Refusal {
    /// The policy file, as labelled.
    pub policy: String,
    /// The rule (`functions[0].signatures`, `sbom.refuse_licenses`, `advisories`, ...).
    pub rule: String,
    /// `NAME@VERSION` of the package.
    pub package: String,
    /// The offending item: a dependency `NAME@VERSION`, a `component: token`, a key list, a version.
    pub item: String,
    /// The whole explanation, naming the item.
    pub message: String,
}
