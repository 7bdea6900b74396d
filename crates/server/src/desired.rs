//! The desired-state seam: one key per function, holding the versions it should serve (the last one
//! serves), read, written with compare-and-set on the key's revision, and watched. A server's data
//! directory ([`crate::store::LocalStore`]) implements it for one server;
//! [`crate::nats::NatsCluster`] keeps it in a NATS JetStream key-value bucket for a cluster; another
//! backend implements [`DesiredState`] and nothing else changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{DeployedVersion, FunctionRecord};

/// Format of a function's desired-state value.
pub const DESIRED_FORMAT: u32 = 1;

/// What one key holds, with the revision it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredFunction {
    /// The versions, oldest first; the last one serves.
    pub record: FunctionRecord,
    /// The key's revision: what a compare-and-set must name to replace it.
    pub revision: u64,
}

/// The whole desired state, as read at one time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredListing {
    /// Every function with a readable desired state.
    pub functions: BTreeMap<String, DesiredFunction>,
    /// Keys whose value cannot be read, with why: neither converged to nor removed.
    pub unreadable: BTreeMap<String, String>,
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesiredEvent {
    /// A function's key was written (`Some`) or deleted (`None`) at `revision`.
    Changed {
        /// The function.
        function: String,
        /// What it holds now.
        record: Option<FunctionRecord>,
        /// The revision of the change.
        revision: u64,
    },
}

/// Why the desired state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    /// The backend cannot be reached (or did not answer in time): nothing was written.
    #[error("the desired state is unavailable: {0}")]
    Unavailable(String),
    /// The key changed since it was read: nothing was written.
    #[error("function `{function}` changed while this change was being made (it was at revision {expected}, it is now at {found}): try again")]
    Conflict {
        /// The function.
        function: String,
        /// The revision the write expected.
        expected: u64,
        /// The revision found, as far as the backend says (0 when it does not).
        found: u64,
    },
    /// A value does not parse.
    #[error("the desired state of function `{function}` is unreadable: {message}")]
    Corrupt {
        /// The function.
        function: String,
        /// What is wrong.
        message: String,
    },
    /// The name cannot be a key.
    #[error("`{0}` cannot name a desired-state key")]
    InvalidKey(String),
}

/// Desired state: get, compare-and-set and watch, one key per function.
#[async_trait::async_trait]
pub trait DesiredState: Send + Sync {
    /// What `function` should serve, if anything, with its revision (for a compare-and-set).
    /// `Ok(None)` carries the revision to expect too: that of a deletion, or 0.
    async fn get(&self, function: &str) -> Result<(Option<FunctionRecord>, u64), DesiredError>;
    /// Every function with a desired state.
    async fn list(&self) -> Result<DesiredListing, DesiredError>;
    /// Writes `record` (or deletes the key, for `None`) if the key is still at `expected`; returns
    /// the new revision. [`DesiredError::Conflict`] when it is not.
    async fn compare_and_set(&self, function: &str, record: Option<&FunctionRecord>, expected: u64) -> Result<u64, DesiredError>;
    /// Changes from now on, in order. The stream ends when the backend loses them (a disconnection):
    /// the caller lists again and watches anew.
    async fn watch(&self) -> Result<futures_util::stream::BoxStream<'static, DesiredEvent>, DesiredError>;
}

/// A function's desired-state value as stored: a format and the versions.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredValue {
    format: u32,
    versions: Vec<DeployedVersion>,
}

/// The bytes a key holds for `record`.
pub fn encode(record: &FunctionRecord) -> Vec<u8> {
    serde_json::to_vec(&StoredValue { format: DESIRED_FORMAT, versions: record.versions.clone() }).expect("a record always serialises")
}

/// The record a key's bytes hold.
pub fn decode(function: &str, bytes: &[u8]) -> Result<FunctionRecord, DesiredError> {
    let corrupt = |message: String| DesiredError::Corrupt { function: function.to_string(), message };
    let value: StoredValue = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if value.format != DESIRED_FORMAT {
        return Err(corrupt(format!("format {} is not supported (this wasmzip reads format {DESIRED_FORMAT})", value.format)));
    }
    if value.versions.is_empty() {
        return Err(corrupt("it lists no version".to_string()));
    }
    let hex64 = |d: &str| d.len() == 64 && d.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    for v in &value.versions {
        if !hex64(&v.digest) || !(v.archive_digest.is_empty() || hex64(&v.archive_digest)) {
            return Err(corrupt(format!("version {} has a digest that is not 64 lower-case hex digits", v.version)));
        }
    }
    Ok(FunctionRecord { versions: value.versions })
}

/// Whether `name` can be a key: a package name (which every key-value store takes as a key).
pub fn valid_key(name: &str) -> bool {
    wasmzip_package::manifest::Name::parse(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(n: u64) -> DeployedVersion {
        DeployedVersion {
            version: format!("1.0.{n}"),
            digest: format!("{n:064x}"),
            archive_digest: format!("{:064x}", n + 100),
            reference: format!("127.0.0.1:5000/wasmzip/f:1.0.{n}@sha256:{:064x}", n + 200),
            signers: vec!["k".into()],
            grants: vec!["env:LOG_LEVEL".into()],
            grant_requested: false,
            sequence: n,
            deployed_at: 7,
        }
    }

    #[test]
    fn round_trips() {
        let record = FunctionRecord { versions: vec![version(1), version(2)] };
        assert_eq!(decode("f", &encode(&record)).unwrap(), record);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let e = decode("orders", b"{").unwrap_err().to_string();
        assert!(e.contains("`orders`"), "{e}");
        let e = decode("orders", br#"{"format":2,"versions":[]}"#).unwrap_err().to_string();
        assert!(e.contains("format 2"), "{e}");
        let e = decode("orders", br#"{"format":1,"versions":[]}"#).unwrap_err().to_string();
        assert!(e.contains("no version"), "{e}");
        let e = decode("orders", br#"{"format":1,"versions":[],"extra":1}"#).unwrap_err().to_string();
        assert!(e.contains("extra"), "{e}");
        let mut bad = version(1);
        bad.digest = "../../etc/passwd".into();
        let e = decode("orders", &encode(&FunctionRecord { versions: vec![bad] })).unwrap_err().to_string();
        assert!(e.contains("64 lower-case hex"), "{e}");
    }

    #[test]
    fn keys() {
        assert!(valid_key("orders") && valid_key("json-transform") && valid_key("a9"));
        assert!(!valid_key("") && !valid_key("a_b") && !valid_key("A") && !valid_key("a.b") && !valid_key("a b") && !valid_key("-a") && !valid_key("a/b") && !valid_key("a>"));
    }
}
