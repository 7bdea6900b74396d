//! Host-held keys and hashing for wasmzip guests.
//!
//! The wasmzip host keeps secret keys (in its encrypted software keystore or a PKCS#11 token) and
//! performs every operation itself; a guest only names a key. This crate wraps the host's
//! `wasmzip:crypto@0.1.0` imports (generated at build time from the repository's `wit/` folder) in
//! a plain Rust API, so guest code never touches WIT plumbing.
//!
//! Access is granted by the operator per key and operation, with capability tokens
//! `crypto:key:NAME:OP` (`OP` is `sign`, `verify`, `seal`, `open`, `mac` or `*`). Without a grant
//! every call on a key fails with [`Error::Denied`]. [`sha256`] needs no grant.
//!
//! Keys have versions 1, 2, ...; the newest signs, seals and tags. A [`Signature`], [`Sealed`] or
//! [`Tag`] records the version that made it, so verifying, unsealing and checking keep working after
//! the operator rotates the key. All three have a stable byte format ([`Signature::to_bytes`],
//! [`Sealed::to_bytes`], [`Tag::to_bytes`]) for storing them in files.
//!
//! # Example
//!
//! ```no_run
//! use wasmzip_guest::{Key, Sealed};
//!
//! fn demo() -> Result<(), wasmzip_guest::Error> {
//!     // Signing (grant `crypto:key:payments:sign`, plus `:verify` to verify).
//!     let payments = Key::open("payments")?;
//!     let signature = payments.sign(b"pay 10 EUR to Alice")?;
//!     assert!(payments.verify(b"pay 10 EUR to Alice", &signature)?);
//!     let pem = payments.public_key(None)?.to_pem();
//!     println!("{pem}");
//!
//!     // Encryption (grants `crypto:key:backup:seal` and `crypto:key:backup:open`).
//!     let backup = Key::open("backup")?;
//!     let sealed = backup.seal(b"secret notes", b"notes.txt")?;
//!     let stored: Vec<u8> = sealed.to_bytes(); // write this to a file
//!     let plaintext = backup.unseal(&Sealed::from_bytes(&stored)?, b"notes.txt")?;
//!     assert_eq!(plaintext, b"secret notes");
//!
//!     // Hashing (no grant needed).
//!     let digest: [u8; 32] = wasmzip_guest::sha256(b"abc");
//!     # let _ = digest;
//!     Ok(())
//! }
//! ```
#![warn(missing_docs)]

use std::fmt;

#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "wasmzip:crypto/imports",
        additional_derives: [PartialEq, Eq],
    });
}

/// The bindings generated from `wasmzip:crypto@0.1.0`, for anything the wrapper types do not cover.
/// Most guests never need them.
pub mod raw {
    pub use crate::bindings::wasmzip::crypto::{hashing, keys, types};
}

use bindings::wasmzip::crypto::{hashing, keys, types};

/// Length of the nonce the host generates for every seal (96 bits, as AES-GCM wants).
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM authentication tag at the end of every ciphertext.
pub const GCM_TAG_LEN: usize = 16;
/// Length of an HMAC-SHA-256 tag.
pub const MAC_LEN: usize = 32;

/// Magic at the start of [`Sealed::to_bytes`] (format version 1).
pub const SEALED_MAGIC: [u8; 4] = *b"WZS1";
/// Magic at the start of [`Signature::to_bytes`] (format version 1).
pub const SIGNATURE_MAGIC: [u8; 4] = *b"WZG1";
/// Magic at the start of [`Tag::to_bytes`] (format version 1).
pub const TAG_MAGIC: [u8; 4] = *b"WZM1";

// ------------------------------------------------------------------------------------------------
// Errors.

/// Why a crypto operation failed.
///
/// The host's errors never reveal anything about keys the guest was not granted: in particular
/// [`Error::Denied`] does not say whether a key of that name exists.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No grant covers this key, or the operation on it.
    Denied,
    /// The key is granted but the keystore has no key of that name (never created, or deleted).
    NotFound,
    /// The key's type does not do this operation (for example sealing with an Ed25519 key).
    Unsupported,
    /// A signature, sealed message or tag names a key version that does not exist.
    UnknownVersion(u32),
    /// Sealed data did not authenticate: it was changed, or sealed with other associated data or
    /// another key.
    AuthenticationFailed,
    /// The host refused the input (too large, a malformed signature or nonce); the text says why.
    InvalidInput(String),
    /// The host's keystore failed (an HSM error, an unreadable key file); details are in the host log.
    Keystore(String),
    /// Bytes given to [`Sealed::from_bytes`], [`Signature::from_bytes`] or [`Tag::from_bytes`] are
    /// not in the format this crate writes; the text says what is wrong.
    Malformed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Denied => f.write_str("key access denied: no grant covers this key or operation"),
            Error::NotFound => f.write_str("key not found: the keystore has no key of that name"),
            Error::Unsupported => f.write_str("operation not supported: the key's type does not do this"),
            Error::UnknownVersion(v) => write!(f, "unknown key version {v}: the key has no such version"),
            Error::AuthenticationFailed => f.write_str(
                "authentication failed: the sealed data was changed, or sealed with other associated data or another key",
            ),
            Error::InvalidInput(why) => write!(f, "invalid input: {why}"),
            Error::Keystore(why) => write!(f, "keystore error: {why}"),
            Error::Malformed(why) => write!(f, "malformed data: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<types::Error> for Error {
    fn from(e: types::Error) -> Self {
        match e {
            types::Error::Denied => Error::Denied,
            types::Error::NotFound => Error::NotFound,
            types::Error::Unsupported => Error::Unsupported,
            types::Error::UnknownVersion(v) => Error::UnknownVersion(v),
            types::Error::AuthenticationFailed => Error::AuthenticationFailed,
            types::Error::InvalidInput(s) => Error::InvalidInput(s),
            types::Error::Keystore(s) => Error::Keystore(s),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Key types.

/// What a key is for; fixed when the operator creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// Ed25519 signatures (64 bytes, RFC 8032).
    Ed25519,
    /// ECDSA over P-256 with SHA-256; signatures are DER-encoded, as OpenSSL expects.
    EcdsaP256,
    /// AES-256-GCM authenticated encryption with 96-bit nonces chosen by the host.
    Aes256Gcm,
    /// HMAC-SHA-256 tags (32 bytes).
    HmacSha256,
}

impl KeyType {
    /// The algorithm's name as the WIT package spells it: `ed25519`, `ecdsa-p256`, `aes256-gcm` or
    /// `hmac-sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Aes256Gcm => "aes256-gcm",
            KeyType::HmacSha256 => "hmac-sha256",
        }
    }

    /// Whether keys of this type sign and verify (and have a public key).
    pub fn is_signing(self) -> bool {
        matches!(self, KeyType::Ed25519 | KeyType::EcdsaP256)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<types::KeyType> for KeyType {
    fn from(t: types::KeyType) -> Self {
        match t {
            types::KeyType::Ed25519 => KeyType::Ed25519,
            types::KeyType::EcdsaP256 => KeyType::EcdsaP256,
            types::KeyType::Aes256Gcm => KeyType::Aes256Gcm,
            types::KeyType::HmacSha256 => KeyType::HmacSha256,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Keys.

/// A granted key held by the host. It holds no key material; every operation runs in the host.
///
/// Dropping it releases the host's handle.
pub struct Key {
    inner: keys::Key,
    name: String,
    key_type: KeyType,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key").field("name", &self.name).field("key_type", &self.key_type).finish()
    }
}

impl Key {
    /// Opens the key `name`.
    ///
    /// Fails with [`Error::Denied`] unless some grant names the key, and with [`Error::NotFound`]
    /// when it is granted but the keystore has no such key.
    pub fn open(name: &str) -> Result<Key, Error> {
        let inner = keys::open(name)?;
        let key_type = inner.key_type().into();
        Ok(Key { inner, name: name.to_string(), key_type })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the key is for.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The newest version, the one that signs, seals and tags. Needs any grant on the key.
    pub fn current_version(&self) -> Result<u32, Error> {
        Ok(self.inner.current_version()?)
    }

    /// The public key of `version`, or of the newest version when `None`. Signing keys only; needs
    /// the `sign` grant.
    pub fn public_key(&self, version: Option<u32>) -> Result<PublicKey, Error> {
        let pk = self.inner.public_key(version)?;
        Ok(PublicKey { key_version: pk.key_version, key_type: pk.key_type.into(), spki_der: pk.spki_der })
    }

    /// Signs `message` with the newest version. Needs the `sign` grant.
    pub fn sign(&self, message: impl AsRef<[u8]>) -> Result<Signature, Error> {
        Ok(Signature { inner: self.inner.sign(message.as_ref())? })
    }

    /// Whether `signature` is valid for `message` under the key version it names. Needs the `verify`
    /// grant. A wrong signature is `Ok(false)`; an error means the check could not be made.
    pub fn verify(&self, message: impl AsRef<[u8]>, signature: &Signature) -> Result<bool, Error> {
        Ok(self.inner.verify(message.as_ref(), &signature.inner)?)
    }

    /// Encrypts and authenticates `plaintext` with the newest version under a fresh host-generated
    /// nonce. `aad` (associated data, may be empty) is authenticated but not encrypted, and the same
    /// `aad` must be given to [`Key::unseal`]. Needs the `seal` grant.
    pub fn seal(&self, plaintext: impl AsRef<[u8]>, aad: impl AsRef<[u8]>) -> Result<Sealed, Error> {
        Ok(Sealed { inner: self.inner.seal(plaintext.as_ref(), aad.as_ref())? })
    }

    /// Authenticates and decrypts `sealed` with the key version it names, returning the plaintext.
    /// Fails with [`Error::AuthenticationFailed`] if the data was changed or `aad` differs from the
    /// one given to [`Key::seal`]. Needs the `open` grant. (The WIT function is `open`; it is called
    /// `unseal` here because [`Key::open`] opens keys.)
    pub fn unseal(&self, sealed: &Sealed, aad: impl AsRef<[u8]>) -> Result<Vec<u8>, Error> {
        Ok(self.inner.open(&sealed.inner, aad.as_ref())?)
    }

    /// The HMAC-SHA-256 tag of `data` under the newest version. Needs the `mac` grant.
    pub fn tag(&self, data: impl AsRef<[u8]>) -> Result<Tag, Error> {
        Ok(Tag { inner: self.inner.tag(data.as_ref())? })
    }

    /// Whether `tag` is the HMAC of `data` under the key version it names (compared in constant time
    /// by the host). Needs the `mac` grant.
    pub fn check(&self, data: impl AsRef<[u8]>, tag: &Tag) -> Result<bool, Error> {
        Ok(self.inner.check(data.as_ref(), &tag.inner)?)
    }
}

/// SHA-256 of `data`, computed by the host. Needs no grant.
///
/// # Panics
///
/// Only if the host breaks the `wasmzip:crypto` contract by returning other than 32 bytes.
pub fn sha256(data: impl AsRef<[u8]>) -> [u8; 32] {
    let digest = hashing::sha256(data.as_ref());
    <[u8; 32]>::try_from(digest.as_slice()).expect("wasmzip:crypto/hashing.sha256 must return 32 bytes")
}

// ------------------------------------------------------------------------------------------------
// Public keys.

/// The public half of a signing key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The key version.
    pub key_version: u32,
    /// [`KeyType::Ed25519`] or [`KeyType::EcdsaP256`].
    pub key_type: KeyType,
    /// DER `SubjectPublicKeyInfo`.
    pub spki_der: Vec<u8>,
}

impl PublicKey {
    /// The key as a PEM `PUBLIC KEY` block (SPKI, base64 in 64-character lines, ending in a newline),
    /// as OpenSSL reads it.
    pub fn to_pem(&self) -> String {
        let b64 = base64(&self.spki_der);
        let mut pem = String::with_capacity(b64.len() + b64.len() / 64 + 64);
        pem.push_str("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            // Base64 is ASCII.
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }
}

/// Standard base64 with padding (RFC 4648).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Stored formats.

/// Splits `bytes` into `(key version, rest)` after checking the 4-byte `magic` (whose last byte is
/// the format version) and that at least `min_rest` bytes follow the header.
fn parse_header<'a>(what: &str, magic: &[u8; 4], bytes: &'a [u8], min_rest: usize, layout: &str) -> Result<(u32, &'a [u8]), Error> {
    if bytes.len() >= 4 && bytes[..3] == magic[..3] && bytes[3] != magic[3] {
        return Err(Error::Malformed(format!(
            "{what} in format version `{}` is not supported (this crate reads `{}`)",
            (bytes[3] as char).escape_default(),
            String::from_utf8_lossy(magic)
        )));
    }
    if bytes.len() < 4 || bytes[..4] != magic[..] {
        return Err(Error::Malformed(format!(
            "not a wasmzip {what}: it does not start with `{}`",
            String::from_utf8_lossy(magic)
        )));
    }
    if bytes.len() < 8 + min_rest {
        return Err(Error::Malformed(format!(
            "{what} is {} bytes, shorter than the {} of the smallest ({layout})",
            bytes.len(),
            8 + min_rest
        )));
    }
    let version = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if version == 0 {
        return Err(Error::Malformed(format!("{what} names key version 0 (versions start at 1)")));
    }
    Ok((version, &bytes[8..]))
}

/// Writes `magic ‖ key version (u32 big-endian) ‖ parts...`.
fn write_framed(magic: &[u8; 4], key_version: u32, parts: &[&[u8]]) -> Vec<u8> {
    let len = 8 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(magic);
    out.extend_from_slice(&key_version.to_be_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// Data sealed with an AES-256-GCM key: the key version, the host's nonce, and the ciphertext
/// followed by the 16-byte authentication tag.
///
/// # Stored format
///
/// [`Sealed::to_bytes`] writes, and [`Sealed::from_bytes`] reads, format version 1:
///
/// ```text
/// offset  length  content
/// 0       4       magic b"WZS1" ("1" is the format version)
/// 4       4       key version, u32 big-endian (1 or more)
/// 8       12      nonce
/// 20      n + 16  ciphertext (n = plaintext length) followed by the 16-byte GCM tag
/// ```
///
/// The associated data is not stored; keep it (or how to rebuild it) alongside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    inner: types::Sealed,
}

impl Sealed {
    /// Builds sealed data from its parts (for example read from another format). The host checks
    /// them when the data is unsealed.
    pub fn new(key_version: u32, nonce: Vec<u8>, ciphertext: Vec<u8>) -> Sealed {
        Sealed { inner: types::Sealed { key_version, nonce, ciphertext } }
    }

    /// The key version that sealed it.
    pub fn key_version(&self) -> u32 {
        self.inner.key_version
    }

    /// The 12-byte nonce.
    pub fn nonce(&self) -> &[u8] {
        &self.inner.nonce
    }

    /// The ciphertext followed by the 16-byte authentication tag.
    pub fn ciphertext(&self) -> &[u8] {
        &self.inner.ciphertext
    }

    /// Length of the plaintext it holds.
    pub fn plaintext_len(&self) -> usize {
        self.inner.ciphertext.len().saturating_sub(GCM_TAG_LEN)
    }

    /// The stored form (see [the format](Sealed#stored-format)).
    pub fn to_bytes(&self) -> Vec<u8> {
        write_framed(&SEALED_MAGIC, self.inner.key_version, &[&self.inner.nonce, &self.inner.ciphertext])
    }

    /// Reads the stored form; [`Error::Malformed`] says what is wrong (another format or format
    /// version, truncated data, key version 0).
    pub fn from_bytes(bytes: &[u8]) -> Result<Sealed, Error> {
        let layout = "4-byte magic, 4-byte key version, 12-byte nonce, 16-byte tag";
        let (key_version, rest) = parse_header("sealed data", &SEALED_MAGIC, bytes, NONCE_LEN + GCM_TAG_LEN, layout)?;
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        Ok(Sealed::new(key_version, nonce.to_vec(), ciphertext.to_vec()))
    }
}

/// A signature and the key version that made it. Ed25519 signatures are 64 bytes; ECDSA P-256
/// signatures are a DER `ECDSA-Sig-Value` (70 to 72 bytes, usually).
///
/// # Stored format
///
/// [`Signature::to_bytes`] writes, and [`Signature::from_bytes`] reads, format version 1:
///
/// ```text
/// offset  length  content
/// 0       4       magic b"WZG1" ("1" is the format version)
/// 4       4       key version, u32 big-endian (1 or more)
/// 8       rest    the signature bytes (at least 1)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    inner: types::Signature,
}

impl Signature {
    /// Builds a signature from its parts (for example a raw signature received from elsewhere).
    pub fn new(key_version: u32, bytes: Vec<u8>) -> Signature {
        Signature { inner: types::Signature { key_version, bytes } }
    }

    /// The key version that made it.
    pub fn key_version(&self) -> u32 {
        self.inner.key_version
    }

    /// The raw signature bytes (without the version).
    pub fn as_bytes(&self) -> &[u8] {
        &self.inner.bytes
    }

    /// The stored form (see [the format](Signature#stored-format)).
    pub fn to_bytes(&self) -> Vec<u8> {
        write_framed(&SIGNATURE_MAGIC, self.inner.key_version, &[&self.inner.bytes])
    }

    /// Reads the stored form; [`Error::Malformed`] says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Signature, Error> {
        let layout = "4-byte magic, 4-byte key version, signature bytes";
        let (key_version, rest) = parse_header("signature", &SIGNATURE_MAGIC, bytes, 1, layout)?;
        Ok(Signature::new(key_version, rest.to_vec()))
    }
}

/// An HMAC-SHA-256 tag and the key version that made it.
///
/// # Stored format
///
/// [`Tag::to_bytes`] writes, and [`Tag::from_bytes`] reads, format version 1:
///
/// ```text
/// offset  length  content
/// 0       4       magic b"WZM1" ("1" is the format version)
/// 4       4       key version, u32 big-endian (1 or more)
/// 8       32      the HMAC-SHA-256 value
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    inner: types::Tag,
}

impl Tag {
    /// Builds a tag from its parts.
    pub fn new(key_version: u32, bytes: Vec<u8>) -> Tag {
        Tag { inner: types::Tag { key_version, bytes } }
    }

    /// The key version that made it.
    pub fn key_version(&self) -> u32 {
        self.inner.key_version
    }

    /// The raw 32-byte HMAC value (without the version).
    pub fn as_bytes(&self) -> &[u8] {
        &self.inner.bytes
    }

    /// The stored form (see [the format](Tag#stored-format)).
    pub fn to_bytes(&self) -> Vec<u8> {
        write_framed(&TAG_MAGIC, self.inner.key_version, &[&self.inner.bytes])
    }

    /// Reads the stored form; [`Error::Malformed`] says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Tag, Error> {
        let layout = "4-byte magic, 4-byte key version, 32-byte HMAC";
        let (key_version, rest) = parse_header("tag", &TAG_MAGIC, bytes, MAC_LEN, layout)?;
        if rest.len() != MAC_LEN {
            return Err(Error::Malformed(format!("a tag holds a {MAC_LEN}-byte HMAC, not {} bytes", rest.len())));
        }
        Ok(Tag::new(key_version, rest.to_vec()))
    }
}

/// Lower-case hexadecimal of `bytes`, for printing signatures, tags and digests.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_round_trip_and_errors() {
        let s = Sealed::new(7, vec![1; 12], vec![2; 20]);
        let bytes = s.to_bytes();
        assert_eq!(&bytes[..8], b"WZS1\0\0\0\x07");
        assert_eq!(bytes.len(), 8 + 12 + 20);
        assert_eq!(Sealed::from_bytes(&bytes).unwrap(), s);
        assert_eq!(s.plaintext_len(), 4);

        let err = |b: &[u8]| match Sealed::from_bytes(b) {
            Err(Error::Malformed(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err(&bytes[..35]).contains("shorter"), "{}", err(&bytes[..35]));
        assert!(Sealed::from_bytes(&bytes[..36]).is_ok());
        assert!(err(b"WZS2abcd").contains("format version `2`"));
        assert!(err(b"PK\x03\x04").contains("does not start with `WZS1`"));
        assert!(err(b"").contains("does not start"));
        let mut v0 = bytes.clone();
        v0[4..8].copy_from_slice(&[0; 4]);
        assert!(err(&v0).contains("version 0"));
    }

    #[test]
    fn signature_and_tag_round_trip() {
        let s = Signature::new(3, vec![9; 64]);
        assert_eq!(Signature::from_bytes(&s.to_bytes()).unwrap(), s);
        assert!(Signature::from_bytes(b"WZG1\0\0\0\x01").is_err());
        assert!(Signature::from_bytes(&Sealed::new(1, vec![0; 12], vec![0; 16]).to_bytes()).is_err());
        let t = Tag::new(2, vec![5; 32]);
        assert_eq!(Tag::from_bytes(&t.to_bytes()).unwrap(), t);
        let mut long = t.to_bytes();
        long.push(0);
        assert!(Tag::from_bytes(&long).is_err());
    }

    #[test]
    fn encodings() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(to_hex(&[0, 0xab, 0x10]), "00ab10");
        let pk = PublicKey { key_version: 1, key_type: KeyType::Ed25519, spki_der: vec![0; 100] };
        let pem = pk.to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\nAAAA"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
    }

    #[test]
    fn messages() {
        assert_eq!(Error::Denied.to_string(), "key access denied: no grant covers this key or operation");
        assert!(Error::UnknownVersion(4).to_string().contains('4'));
    }
}
