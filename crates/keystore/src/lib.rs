//! Host-held keys for wasmzip guests.
//!
//! Guests use keys by name and never see secret material. Keys live in a [`Keystore`]: the encrypted
//! software store ([`software::SoftwareStore`], the default) or a PKCS#11 token
//! ([`pkcs11::Pkcs11Store`]), chosen by the operator with a [`KeystoreConfig`]. Each key has versions
//! 1, 2, ...; the newest signs, seals and tags, older ones still verify, open and check.
//!
//! This crate knows nothing of Wasmtime or capabilities: the runtime checks grants, then calls here.
#![deny(missing_docs)]

pub mod config;
pub mod crypto;
mod error;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod software;

use std::fmt;
use std::str::FromStr;

pub use config::{KeystoreConfig, SecretSource, open_keystore};
pub use error::KeystoreError;

/// Longest key name, in bytes.
pub const MAX_KEY_NAME_LEN: usize = 64;
/// Largest message, plaintext or sealed data one operation takes (64 MiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Most versions one key may have; `rotate` refuses beyond this.
pub const MAX_KEY_VERSIONS: u32 = 1000;
/// Length of the host-generated AES-GCM nonce.
pub const NONCE_BYTES: usize = 12;
/// Length of the AES-GCM authentication tag appended to ciphertexts.
pub const GCM_TAG_BYTES: usize = 16;

/// A key name: 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyName(String);

impl KeyName {
    /// Checks `name`; the error says what is wrong.
    pub fn parse(name: &str) -> Result<Self, String> {
        if name.is_empty() || name.len() > MAX_KEY_NAME_LEN {
            return Err(format!("a key name must be 1 to {MAX_KEY_NAME_LEN} characters"));
        }
        if !name.as_bytes()[0].is_ascii_alphanumeric() {
            return Err("a key name must start with a letter or digit".into());
        }
        if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
            return Err(format!("`{c}` is not allowed in a key name (use letters, digits, `-`, `_`, `.`)"));
        }
        Ok(KeyName(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for KeyName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        KeyName::parse(s)
    }
}

/// What a key is for; fixed when it is created, the same for all its versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum KeyType {
    /// Ed25519 signatures.
    #[serde(rename = "ed25519")]
    Ed25519,
    /// ECDSA P-256 with SHA-256, DER signatures.
    #[serde(rename = "p256")]
    P256,
    /// AES-256-GCM sealing.
    #[serde(rename = "aes256gcm")]
    Aes256Gcm,
    /// HMAC-SHA-256 tags.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
}

impl KeyType {
    /// All types, in the order the CLI lists them.
    pub const ALL: [KeyType; 4] = [KeyType::Ed25519, KeyType::P256, KeyType::Aes256Gcm, KeyType::HmacSha256];

    /// The name used on the command line and in key files.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::P256 => "p256",
            KeyType::Aes256Gcm => "aes256gcm",
            KeyType::HmacSha256 => "hmac-sha256",
        }
    }

    /// Whether keys of this type sign (and so have a public key).
    pub fn is_signing(self) -> bool {
        matches!(self, KeyType::Ed25519 | KeyType::P256)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        KeyType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown key type `{s}`: use ed25519, p256, aes256gcm or hmac-sha256"))
    }
}

/// An operation on a key, as named by `crypto:key:NAME:OP` tokens and in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// Sign, and export the public key.
    Sign,
    /// Verify signatures.
    Verify,
    /// Seal (encrypt).
    Seal,
    /// Open (decrypt).
    Open,
    /// Make and check MAC tags.
    Mac,
}

impl Operation {
    /// The token spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Sign => "sign",
            Operation::Verify => "verify",
            Operation::Seal => "seal",
            Operation::Open => "open",
            Operation::Mac => "mac",
        }
    }

    /// Whether keys of `key_type` do this operation.
    pub fn applies_to(self, key_type: KeyType) -> bool {
        match self {
            Operation::Sign | Operation::Verify => key_type.is_signing(),
            Operation::Seal | Operation::Open => key_type == KeyType::Aes256Gcm,
            Operation::Mac => key_type == KeyType::HmacSha256,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the store knows of a key: its type and versions (ascending; the last is current).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    /// The name.
    pub name: KeyName,
    /// The type.
    #[serde(rename = "type")]
    pub key_type: KeyType,
    /// Versions, ascending; never empty.
    pub versions: Vec<u32>,
}

impl serde::Serialize for KeyName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl KeyInfo {
    /// The newest version.
    pub fn current(&self) -> u32 {
        self.versions.last().copied().unwrap_or(0)
    }
}

/// A signature and the version that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Key version.
    pub version: u32,
    /// Ed25519: 64 bytes; P-256: DER.
    pub bytes: Vec<u8>,
}

/// AES-256-GCM output: the version, the host's nonce, and ciphertext with the tag appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Key version.
    pub version: u32,
    /// 96-bit nonce.
    pub nonce: [u8; NONCE_BYTES],
    /// Ciphertext ‖ 16-byte tag.
    pub ciphertext: Vec<u8>,
}

/// An HMAC-SHA-256 tag and the version that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Key version.
    pub version: u32,
    /// 32 bytes.
    pub bytes: Vec<u8>,
}

/// The public half of a signing key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// Key version.
    pub version: u32,
    /// Ed25519 or P-256.
    pub key_type: KeyType,
    /// DER `SubjectPublicKeyInfo`.
    pub spki_der: Vec<u8>,
}

impl PublicKey {
    /// The key as a PEM `PUBLIC KEY` block, as `openssl pkey -pubin` reads it.
    pub fn to_pem(&self) -> String {
        crypto::spki_pem(&self.spki_der)
    }
}

/// Where keys live. Implementations are shared by every request of a process, so they are `Sync` and
/// keep whatever sessions or caches they need inside.
///
/// Secret material never leaves an implementation: no method returns it.
pub trait Keystore: Send + Sync {
    /// What this store is, for messages (`software keystore at DIR`, `PKCS#11 token "LABEL"`).
    fn describe(&self) -> String;

    /// Whether a call may wait on something outside the process (an HSM, a network token), so that
    /// an async caller should make it off the thread that serves other connections.
    fn may_block(&self) -> bool {
        false
    }

    /// Creates `name` with version 1. Fails with [`KeystoreError::Exists`] if it exists.
    fn create(&self, name: &KeyName, key_type: KeyType) -> Result<KeyInfo, KeystoreError>;

    /// Adds a new version, which becomes current; older versions stay for verify, open and check.
    fn rotate(&self, name: &KeyName) -> Result<KeyInfo, KeystoreError>;

    /// Deletes every version of `name`; returns what was deleted.
    fn delete(&self, name: &KeyName) -> Result<KeyInfo, KeystoreError>;

    /// All keys, sorted by name.
    fn list(&self) -> Result<Vec<KeyInfo>, KeystoreError>;

    /// One key.
    fn info(&self, name: &KeyName) -> Result<KeyInfo, KeystoreError>;

    /// The public key of `version` (the current one when `None`) of a signing key.
    fn public_key(&self, name: &KeyName, version: Option<u32>) -> Result<PublicKey, KeystoreError>;

    /// Signs `message` with the current version.
    fn sign(&self, name: &KeyName, message: &[u8]) -> Result<Signature, KeystoreError>;

    /// Whether `signature` is valid for `message` under the version it names.
    fn verify(&self, name: &KeyName, message: &[u8], signature: &Signature) -> Result<bool, KeystoreError> {
        let public = self.public_key(name, Some(signature.version))?;
        crypto::verify_with_spki(public.key_type, &public.spki_der, message, &signature.bytes)
    }

    /// Seals `plaintext` with the current version under a fresh random nonce.
    fn seal(&self, name: &KeyName, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, KeystoreError>;

    /// Opens `sealed` with the version it names.
    fn open(&self, name: &KeyName, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, KeystoreError>;

    /// The HMAC-SHA-256 tag of `data` under the current version.
    fn tag(&self, name: &KeyName, data: &[u8]) -> Result<Tag, KeystoreError>;

    /// Whether `tag` is the HMAC of `data` under the version it names, compared in constant time.
    fn check(&self, name: &KeyName, data: &[u8], tag: &Tag) -> Result<bool, KeystoreError>;
}

impl fmt::Debug for dyn Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names() {
        for ok in ["payments", "a", "svc.signing-key_2", "0day"] {
            KeyName::parse(ok).unwrap();
        }
        for (bad, why) in [("", "1 to 64"), ("-x", "start"), ("a/b", "`/`"), ("a:b", "`:`"), (&"x".repeat(65), "1 to 64")] {
            let e = KeyName::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn key_types_round_trip() {
        for t in KeyType::ALL {
            assert_eq!(t.as_str().parse::<KeyType>().unwrap(), t);
        }
        assert!("rsa".parse::<KeyType>().unwrap_err().contains("ed25519"));
        assert!(Operation::Sign.applies_to(KeyType::P256));
        assert!(!Operation::Seal.applies_to(KeyType::Ed25519));
        assert!(Operation::Mac.applies_to(KeyType::HmacSha256));
    }
}
