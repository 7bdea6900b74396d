//! Ed25519 keys in PEM (PKCS#8 private, SPKI public) and the DSSE envelope that signs `manifest.json`.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
use ed25519_dalek::{Signature, Signer as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::PackageError;

/// The DSSE payload type of a signed `manifest.json`.
pub const PAYLOAD_TYPE: &str = "application/vnd.wasmzip.manifest.v1+json";
/// Largest signature envelope accepted.
pub const MAX_ENVELOPE_SIZE: u64 = 64 * 1024;
/// Most signatures one envelope may carry.
pub const MAX_SIGNATURES: usize = 16;

/// A key id: the SHA-256 of the public key's DER SubjectPublicKeyInfo, shown as lower-case hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 32]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// An Ed25519 private key used to sign packages.
pub struct SigningKey(ed25519_dalek::SigningKey);

/// An Ed25519 public key trusted to sign packages.
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    id: KeyId,
}

impl SigningKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Self, PackageError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| PackageError::Key {
            path: PathBuf::from("<random>"),
            message: format!("the operating system's random generator failed: {e}"),
        })?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// Reads a PKCS#8 PEM private key.
    pub fn from_pem_file(path: &Path) -> Result<Self, PackageError> {
        let text = std::fs::read_to_string(path).map_err(|e| PackageError::io(path, "read key", e))?;
        ed25519_dalek::SigningKey::from_pkcs8_pem(&text).map(SigningKey).map_err(|e| PackageError::Key {
            path: path.to_path_buf(),
            message: format!("not an Ed25519 PKCS#8 PEM private key ({e})"),
        })
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_verifying_key(self.0.verifying_key())
    }

    /// Writes `NAME.key` (mode 0600) and `NAME.pub`; refuses to overwrite either.
    pub fn write_pair(&self, base: &Path) -> Result<(PathBuf, PathBuf), PackageError> {
        let key_path = with_suffix(base, "key");
        let pub_path = with_suffix(base, "pub");
        for p in [&key_path, &pub_path] {
            if p.exists() {
                return Err(PackageError::Key { path: p.clone(), message: "already exists; refusing to overwrite it".into() });
            }
        }
        // PKCS#8 v1 (seed only): the form `openssl genpkey` writes and every OpenSSL 3 reads.
        let v1 = ed25519_dalek::pkcs8::KeypairBytes { secret_key: self.0.to_bytes(), public_key: None };
        let private = v1.to_pkcs8_pem(LineEnding::LF).map_err(|e| PackageError::Key {
            path: key_path.clone(),
            message: format!("cannot encode the private key: {e}"),
        })?;
        write_new(&key_path, private.as_bytes(), 0o600)?;
        write_new(&pub_path, self.public_key().to_pem().as_bytes(), 0o644)?;
        Ok((key_path, pub_path))
    }

    /// Signs `manifest` into a DSSE envelope.
    pub fn sign_manifest(&self, manifest: &[u8]) -> Vec<u8> {
        let sig = self.0.sign(&pae(PAYLOAD_TYPE, manifest));
        let envelope = Envelope {
            payload_type: PAYLOAD_TYPE.to_string(),
            payload: BASE64.encode(manifest),
            signatures: vec![EnvelopeSignature {
                keyid: self.public_key().id().to_string(),
                sig: BASE64.encode(sig.to_bytes()),
            }],
        };
        let mut bytes = serde_json::to_vec_pretty(&envelope).expect("an envelope always serialises");
        bytes.push(b'\n');
        bytes
    }
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PackageError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| PackageError::io(path, "create", e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| PackageError::io(path, "write", e))
}

impl PublicKey {
    fn from_verifying_key(key: ed25519_dalek::VerifyingKey) -> Self {
        let der = key.to_public_key_der().expect("an Ed25519 key always encodes");
        let id = KeyId(Sha256::digest(der.as_bytes()).into());
        PublicKey { key, id }
    }

    /// Reads an SPKI PEM public key.
    pub fn from_pem_file(path: &Path) -> Result<Self, PackageError> {
        let text = std::fs::read_to_string(path).map_err(|e| PackageError::io(path, "read key", e))?;
        Self::from_pem(&text).map_err(|message| PackageError::Key { path: path.to_path_buf(), message })
    }

    /// Parses an SPKI PEM public key.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        ed25519_dalek::VerifyingKey::from_public_key_pem(text)
            .map(Self::from_verifying_key)
            .map_err(|e| format!("not an Ed25519 SPKI PEM public key ({e})"))
    }

    /// Every `*.pub` file in `dir`, sorted by name.
    pub fn from_dir(dir: &Path) -> Result<Vec<Self>, PackageError> {
        let entries = std::fs::read_dir(dir).map_err(|e| PackageError::io(dir, "read trust directory", e))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pub"))
            .collect();
        paths.sort();
        paths.iter().map(|p| Self::from_pem_file(p)).collect()
    }

    /// The key id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key as SPKI PEM.
    pub fn to_pem(&self) -> String {
        self.key.to_public_key_pem(LineEnding::LF).expect("an Ed25519 key always encodes")
    }
}

/// DSSE pre-authentication encoding: `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeSignature {
    keyid: String,
    sig: String,
}

/// A DSSE envelope whose shape has been checked: the payload type is [`PAYLOAD_TYPE`], the payload is
/// base64, and it carries 1 to [`MAX_SIGNATURES`] signatures, each with a 64-hex-digit key id and a
/// base64 signature. No signature has been verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEnvelope {
    payload: Vec<u8>,
    signatures: Vec<(KeyId, Vec<u8>)>,
}

impl ParsedEnvelope {
    /// Parses the bytes of `signature.dsse.json` on their own (the reader of a package also checks
    /// that the payload is byte-identical to `manifest.json`).
    pub fn parse(envelope: &[u8]) -> Result<Self, PackageError> {
        parse_envelope(envelope, None)
    }

    /// The decoded payload: the `manifest.json` bytes that were signed.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The key ids the envelope claims, unverified.
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.signatures.iter().map(|(id, _)| *id).collect()
    }

    /// Verifies the payload with the first trusted key that signed it; strict Ed25519. Returns that
    /// key's id.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<KeyId, PackageError> {
        verify_signatures(&self.signatures, &self.payload, trusted)
    }
}

/// Parses an envelope; with `manifest`, its payload must be byte-identical to it (checked before the
/// signatures, so that a foreign envelope is named as such first).
fn parse_envelope(envelope: &[u8], manifest: Option<&[u8]>) -> Result<ParsedEnvelope, PackageError> {
    let bad = |m: String| PackageError::Signature(m);
    let env: Envelope = serde_json::from_slice(envelope).map_err(|e| bad(format!("malformed envelope: {e}")))?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(bad(format!("payload type `{}` is not `{PAYLOAD_TYPE}`", env.payload_type)));
    }
    let payload = BASE64.decode(env.payload.as_bytes()).map_err(|e| bad(format!("payload is not base64: {e}")))?;
    if manifest.is_some_and(|m| payload != m) {
        return Err(bad("the signed payload differs from manifest.json".into()));
    }
    if env.signatures.is_empty() || env.signatures.len() > MAX_SIGNATURES {
        return Err(bad(format!("an envelope carries 1 to {MAX_SIGNATURES} signatures")));
    }
    let mut signatures = Vec::new();
    for s in env.signatures {
        let mut id = [0u8; 32];
        hex::decode_to_slice(&s.keyid, &mut id).map_err(|_| bad(format!("key id `{}` is not 64 hex digits", s.keyid)))?;
        let sig = BASE64.decode(s.sig.as_bytes()).map_err(|e| bad(format!("signature of key {} is not base64: {e}", s.keyid)))?;
        signatures.push((KeyId(id), sig));
    }
    Ok(ParsedEnvelope { payload, signatures })
}

/// A parsed envelope whose payload matched the manifest; signatures not yet checked.
pub(crate) struct CheckedEnvelope {
    signatures: Vec<(KeyId, Vec<u8>)>,
}

impl CheckedEnvelope {
    /// Parses `envelope` and checks that its payload is byte-identical to `manifest`.
    pub(crate) fn parse(envelope: &[u8], manifest: &[u8]) -> Result<Self, PackageError> {
        parse_envelope(envelope, Some(manifest)).map(|e| CheckedEnvelope { signatures: e.signatures })
    }

    /// The key ids the envelope claims, unverified.
    pub(crate) fn key_ids(&self) -> Vec<KeyId> {
        self.signatures.iter().map(|(id, _)| *id).collect()
    }

    /// Verifies with the first trusted key that signed; strict Ed25519. Returns that key's id.
    pub(crate) fn verify(&self, manifest: &[u8], trusted: &[PublicKey]) -> Result<KeyId, PackageError> {
        verify_signatures(&self.signatures, manifest, trusted)
    }
}

/// Verifies `manifest` with the first trusted key among `signatures`; strict Ed25519.
fn verify_signatures(signatures: &[(KeyId, Vec<u8>)], manifest: &[u8], trusted: &[PublicKey]) -> Result<KeyId, PackageError> {
    let message = pae(PAYLOAD_TYPE, manifest);
    for (id, sig) in signatures {
        let Some(key) = trusted.iter().find(|k| k.id == *id) else { continue };
        let sig = Signature::from_slice(sig)
            .map_err(|_| PackageError::Signature(format!("signature by key {id} is not 64 bytes")))?;
        key.key.verify_strict(&message, &sig).map_err(|_| {
            PackageError::Signature(format!("signature by trusted key {id} does not verify: the package was altered"))
        })?;
        return Ok(*id);
    }
    let key_ids = signatures.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>().join(", ");
    if trusted.is_empty() {
        Err(PackageError::NoTrustAnchors { key_ids })
    } else {
        Err(PackageError::Untrusted { key_ids })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(pae("http://example.com/HelloWorld", b"hello world"), b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec());
    }

    #[test]
    fn sign_and_verify_round_trip_and_tamper() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let manifest = b"{\"schema\":1}\n";
        let env = key.sign_manifest(manifest);
        let checked = CheckedEnvelope::parse(&env, manifest).unwrap();
        assert_eq!(checked.verify(manifest, &[other.public_key(), key.public_key()]).unwrap(), key.public_key().id());
        let err = checked.verify(manifest, &[other.public_key()]).unwrap_err();
        assert!(matches!(err, PackageError::Untrusted { .. }), "{err}");
        assert!(CheckedEnvelope::parse(&env, b"{\"schema\":2}\n").is_err());
        // A different message under the same key id fails verification.
        let forged = CheckedEnvelope { signatures: checked.signatures.clone() };
        assert!(forged.verify(b"other", &[key.public_key()]).is_err());
    }

    #[test]
    fn pem_files_round_trip_with_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().unwrap();
        let (k, p) = key.write_pair(&dir.path().join("dev")).unwrap();
        assert_eq!(std::fs::metadata(&k).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(SigningKey::from_pem_file(&k).unwrap().public_key().id(), key.public_key().id());
        assert_eq!(PublicKey::from_pem_file(&p).unwrap().id(), key.public_key().id());
        assert!(key.write_pair(&dir.path().join("dev")).is_err(), "must not overwrite");
        let err = PublicKey::from_pem_file(&k).unwrap_err().to_string();
        assert!(err.contains("dev.key"), "{err}");
    }

    #[test]
    fn parsed_envelope_alone() {
        let key = SigningKey::generate().unwrap();
        let manifest = b"{\"schema\":1}\n";
        let env = ParsedEnvelope::parse(&key.sign_manifest(manifest)).unwrap();
        assert_eq!(env.payload(), manifest);
        assert_eq!(env.key_ids(), [key.public_key().id()]);
        assert_eq!(env.verify(&[key.public_key()]).unwrap(), key.public_key().id());
        assert!(matches!(env.verify(&[]).unwrap_err(), PackageError::NoTrustAnchors { .. }));
        let none = br#"{"payload":"","payloadType":"application/vnd.wasmzip.manifest.v1+json","signatures":[]}"#;
        assert!(ParsedEnvelope::parse(none).unwrap_err().to_string().contains("1 to 16 signatures"));
        // Checked against a manifest, a foreign payload is named before the missing signatures.
        let err = CheckedEnvelope::parse(none, manifest).err().unwrap().to_string();
        assert!(err.contains("differs from manifest.json"), "{err}");
    }
}
