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
/// Largest signature envelope accepted: room for the base64 of the largest manifest (1 MiB) and
/// every signature.
pub const MAX_ENVELOPE_SIZE: u64 = 2 * 1024 * 1024;

/// Refuses an envelope too large for a reader to accept, before it is written.
pub(crate) fn check_envelope_size(envelope: &[u8]) -> Result<(), PackageError> {
    if envelope.len() as u64 > MAX_ENVELOPE_SIZE {
        return Err(PackageError::Signature(format!("the envelope would be {} bytes, more than the {MAX_ENVELOPE_SIZE} a reader accepts", envelope.len())));
    }
    Ok(())
}
/// Most signatures one envelope may carry.
pub const MAX_SIGNATURES: usize = 16;

/// A key id: the SHA-256 of the public key's DER SubjectPublicKeyInfo, shown as lower-case hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 32]);

impl KeyId {
    /// A key id from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        KeyId(bytes)
    }

    /// Parses 64 hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let mut id = [0u8; 32];
        hex::decode_to_slice(text, &mut id).ok().map(|()| KeyId(id))
    }

    /// The first 16 hex digits, for short listings.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..8])
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// An Ed25519 private key used to sign packages.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret: the key id says which key it is.
        write!(f, "SigningKey({})", self.public_key().id())
    }
}

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

    /// Signs `manifest` into a DSSE envelope of one signature, carrying the public key (as format 2
    /// requires) when `with_public_key`.
    pub fn sign_manifest(&self, manifest: &[u8], with_public_key: bool) -> Vec<u8> {
        envelope_bytes(manifest, &[self.signature(manifest, with_public_key)])
    }

    /// This key's signature over `manifest`, to add to an envelope.
    pub fn signature(&self, manifest: &[u8], with_public_key: bool) -> EnvelopeSignature {
        self.sign_payload(PAYLOAD_TYPE, manifest, with_public_key)
    }

    /// This key's signature over `payload` of `payload_type` (the DSSE PAE of the two).
    pub fn sign_payload(&self, payload_type: &str, payload: &[u8], with_public_key: bool) -> EnvelopeSignature {
        let sig = self.0.sign(&pae(payload_type, payload));
        let public = self.public_key();
        EnvelopeSignature {
            keyid: public.id().to_string(),
            sig: BASE64.encode(sig.to_bytes()),
            public_key: with_public_key.then(|| BASE64.encode(public.to_der())),
        }
    }
}

/// The canonical bytes of a manifest envelope holding `signatures`, in that order: pretty JSON,
/// fields in the order `payload`, `payloadType`, `signatures`, and a trailing newline.
pub fn envelope_bytes(manifest: &[u8], signatures: &[EnvelopeSignature]) -> Vec<u8> {
    dsse_bytes(PAYLOAD_TYPE, manifest, signatures)
}

/// The canonical bytes of a DSSE envelope of `payload_type` over `payload`.
pub(crate) fn dsse_bytes(payload_type: &str, payload: &[u8], signatures: &[EnvelopeSignature]) -> Vec<u8> {
    let envelope = Envelope { payload: BASE64.encode(payload), payload_type: payload_type.to_string(), signatures: signatures.to_vec() };
    let mut bytes = serde_json::to_vec_pretty(&envelope).expect("an envelope always serialises");
    bytes.push(b'\n');
    bytes
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

    /// The key as DER SubjectPublicKeyInfo (44 bytes; its SHA-256 is the key id).
    pub fn to_der(&self) -> Vec<u8> {
        self.key.to_public_key_der().expect("an Ed25519 key always encodes").as_bytes().to_vec()
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        ed25519_dalek::VerifyingKey::from_public_key_der(der)
            .map(Self::from_verifying_key)
            .map_err(|e| format!("not an Ed25519 SubjectPublicKeyInfo ({e})"))
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

/// One signature of a DSSE envelope, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The signer's key id (64 lower-case hex digits).
    pub keyid: String,
    /// Standard padded base64 of the signer's DER SubjectPublicKeyInfo. Format 2 requires it, so that
    /// every signature can be checked whether or not its key is trusted. (Fields are in byte order,
    /// as in every object of the envelope.)
    #[serde(rename = "publicKey", default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Standard padded base64 of the 64-byte Ed25519 signature.
    pub sig: String,
}

/// One signature of an envelope, decoded; not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DecodedSignature {
    id: KeyId,
    sig: Vec<u8>,
    public_key: Option<PublicKey>,
    raw: EnvelopeSignature,
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for PublicKey {}

/// What checking one signature of a package found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCheck {
    /// The signer's key id.
    pub key: KeyId,
    /// Whether the key is among the trusted keys.
    pub trusted: bool,
    /// Whether the signature was checked and holds. A schema-1 signature by a key that is not trusted
    /// cannot be checked (it does not carry its key); every other signature is checked, and one that
    /// fails refuses the package.
    pub verified: bool,
}

/// A DSSE envelope whose shape has been checked: the payload type is [`PAYLOAD_TYPE`], the payload is
/// base64, and it carries 1 to [`MAX_SIGNATURES`] signatures, each with a 64-hex-digit key id and a
/// base64 signature. No signature has been verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEnvelope {
    payload: Vec<u8>,
    signatures: Vec<DecodedSignature>,
}

impl ParsedEnvelope {
    /// Parses the bytes of `signature.dsse.json` on their own (the reader of a package also checks
    /// that the payload is byte-identical to `manifest.json`).
    pub fn parse(envelope: &[u8]) -> Result<Self, PackageError> {
        parse_envelope(PAYLOAD_TYPE, envelope, None, false)
    }

    /// The decoded payload: the `manifest.json` bytes that were signed.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The key ids the envelope claims, unverified.
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.signatures.iter().map(|s| s.id).collect()
    }

    /// Checks every signature it can, strictly, and requires at least one trusted key among those that
    /// hold. Returns what each signature showed, in envelope order.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<Vec<SignatureCheck>, PackageError> {
        verify_signatures(PAYLOAD_TYPE, &self.signatures, &self.payload, trusted)
    }
}

/// Parses an envelope of `payload_type`; with `payload`, its payload must be byte-identical to it
/// (checked before the signatures, so that a foreign envelope is named as such first). `strict` is
/// format 2: every signature carries its public key, whose id is the key id, and the bytes are exactly
/// the canonical serialisation, so that no byte of the envelope can change unnoticed.
fn parse_envelope(payload_type: &str, envelope: &[u8], payload: Option<&[u8]>, strict: bool) -> Result<ParsedEnvelope, PackageError> {
    let bad = |m: String| PackageError::Signature(m);
    let env: Envelope = serde_json::from_slice(envelope).map_err(|e| bad(format!("malformed envelope: {e}")))?;
    if env.payload_type != payload_type {
        return Err(bad(format!("payload type `{}` is not `{payload_type}`", env.payload_type)));
    }
    let decoded = BASE64.decode(env.payload.as_bytes()).map_err(|e| bad(format!("payload is not base64: {e}")))?;
    if payload.is_some_and(|m| decoded != m) {
        return Err(bad("the signed payload differs from manifest.json".into()));
    }
    if env.signatures.is_empty() || env.signatures.len() > MAX_SIGNATURES {
        return Err(bad(format!("an envelope carries 1 to {MAX_SIGNATURES} signatures")));
    }
    let mut signatures: Vec<DecodedSignature> = Vec::new();
    for (i, s) in env.signatures.iter().enumerate() {
        let n = i + 1;
        let mut id = [0u8; 32];
        hex::decode_to_slice(&s.keyid, &mut id).map_err(|_| bad(format!("signature {n}: key id `{}` is not 64 hex digits", s.keyid)))?;
        let id = KeyId(id);
        let sig = BASE64.decode(s.sig.as_bytes()).map_err(|e| bad(format!("signature {n} (key {id}) is not base64: {e}")))?;
        let public_key = match &s.public_key {
            Some(text) => {
                let der = BASE64.decode(text.as_bytes()).map_err(|e| bad(format!("signature {n} (key {id}): publicKey is not base64: {e}")))?;
                let key = PublicKey::from_der(&der).map_err(|m| bad(format!("signature {n} (key {id}): publicKey is {m}")))?;
                if key.id != id {
                    return Err(bad(format!("signature {n}: publicKey has key id {}, not the {id} it claims", key.id)));
                }
                Some(key)
            }
            None if strict => return Err(bad(format!("signature {n} (key {id}) carries no publicKey, which format 2 requires"))),
            None => None,
        };
        if signatures.iter().any(|other| other.id == id) {
            return Err(bad(format!("signature {n}: key {id} signs twice")));
        }
        if strict && signatures.last().is_some_and(|previous| previous.id > id) {
            return Err(bad(format!("signature {n} (key {id}) is out of key id order, and format 2 keeps signatures sorted by key id")));
        }
        signatures.push(DecodedSignature { id, sig, public_key, raw: s.clone() });
    }
    let canonical: Vec<EnvelopeSignature> = signatures
        .iter()
        .map(|s| EnvelopeSignature { keyid: s.id.to_string(), sig: BASE64.encode(&s.sig), public_key: s.public_key.as_ref().map(|k| BASE64.encode(k.to_der())) })
        .collect();
    if strict && dsse_bytes(payload_type, &decoded, &canonical) != envelope {
        return Err(bad("the envelope is not in its canonical form (format 2 allows exactly one serialisation)".into()));
    }
    Ok(ParsedEnvelope { payload: decoded, signatures })
}

/// A parsed envelope whose payload matched the manifest; signatures not yet checked.
#[derive(Debug, Clone)]
pub(crate) struct CheckedEnvelope {
    signatures: Vec<DecodedSignature>,
}

impl CheckedEnvelope {
    /// Parses `envelope` and checks that its payload is byte-identical to `manifest`; `strict` for
    /// format 2.
    pub(crate) fn parse(envelope: &[u8], manifest: &[u8], strict: bool) -> Result<Self, PackageError> {
        parse_envelope(PAYLOAD_TYPE, envelope, Some(manifest), strict).map(|e| CheckedEnvelope { signatures: e.signatures })
    }

    /// The key ids the envelope claims, unverified.
    pub(crate) fn key_ids(&self) -> Vec<KeyId> {
        self.signatures.iter().map(|s| s.id).collect()
    }

    /// The signatures as written, in order (to add one more).
    pub(crate) fn raw(&self) -> Vec<EnvelopeSignature> {
        self.signatures.iter().map(|s| s.raw.clone()).collect()
    }

    /// Checks every signature it can and requires one trusted key among those that hold.
    pub(crate) fn verify(&self, manifest: &[u8], trusted: &[PublicKey]) -> Result<Vec<SignatureCheck>, PackageError> {
        verify_signatures(PAYLOAD_TYPE, &self.signatures, manifest, trusted)
    }

    /// Checks every signature that carries its key (format 2), trusting none: for `inspect` and `sign`.
    pub(crate) fn check_integrity(&self, manifest: &[u8]) -> Result<Vec<SignatureCheck>, PackageError> {
        check_each(PAYLOAD_TYPE, &self.signatures, manifest, &[])
    }
}

/// Checks each signature it can: those by a trusted key, and those that carry their own key. One
/// that fails means the payload was altered.
fn check_each(payload_type: &str, signatures: &[DecodedSignature], payload: &[u8], trusted: &[PublicKey]) -> Result<Vec<SignatureCheck>, PackageError> {
    let message = pae(payload_type, payload);
    let mut checks = Vec::new();
    for (i, s) in signatures.iter().enumerate() {
        let trusted_key = trusted.iter().find(|k| k.id == s.id);
        let Some(key) = trusted_key.or(s.public_key.as_ref()) else {
            checks.push(SignatureCheck { key: s.id, trusted: false, verified: false });
            continue;
        };
        let n = i + 1;
        let sig = Signature::from_slice(&s.sig)
            .map_err(|_| PackageError::Signature(format!("signature {n} (key {}) is not 64 bytes", s.id)))?;
        key.key.verify_strict(&message, &sig).map_err(|_| {
            let whose = if trusted_key.is_some() { "trusted key" } else { "key" };
            PackageError::Signature(format!("signature {n} by {whose} {} does not verify: the package was altered", s.id))
        })?;
        checks.push(SignatureCheck { key: s.id, trusted: trusted_key.is_some(), verified: true });
    }
    Ok(checks)
}

/// Checks every signature it can (strict Ed25519) and requires at least one trusted key among them.
fn verify_signatures(payload_type: &str, signatures: &[DecodedSignature], payload: &[u8], trusted: &[PublicKey]) -> Result<Vec<SignatureCheck>, PackageError> {
    let checks = check_each(payload_type, signatures, payload, trusted)?;
    if checks.iter().any(|c| c.trusted && c.verified) {
        return Ok(checks);
    }
    let key_ids = signatures.iter().map(|s| s.id.to_string()).collect::<Vec<_>>().join(", ");
    if trusted.is_empty() {
        Err(PackageError::NoTrustAnchors { key_ids })
    } else {
        Err(PackageError::Untrusted { key_ids })
    }
}

/// A DSSE envelope of any payload type (the provenance statement's), parsed and with every signature
/// that carries its key checked.
pub(crate) fn open_dsse(payload_type: &str, envelope: &[u8], trusted: &[PublicKey]) -> Result<(Vec<u8>, Vec<SignatureCheck>), PackageError> {
    let parsed = parse_envelope(payload_type, envelope, None, true)?;
    let checks = check_each(payload_type, &parsed.signatures, &parsed.payload, trusted)?;
    Ok((parsed.payload, checks))
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
        let env = key.sign_manifest(manifest, false);
        let checked = CheckedEnvelope::parse(&env, manifest, false).unwrap();
        let checks = checked.verify(manifest, &[other.public_key(), key.public_key()]).unwrap();
        assert_eq!(checks, [SignatureCheck { key: key.public_key().id(), trusted: true, verified: true }]);
        let err = checked.verify(manifest, &[other.public_key()]).unwrap_err();
        assert!(matches!(err, PackageError::Untrusted { .. }), "{err}");
        assert!(CheckedEnvelope::parse(&env, b"{\"schema\":2}\n", false).is_err());
        // Format 2 wants the public key in every signature.
        let err = CheckedEnvelope::parse(&env, manifest, true).err().unwrap().to_string();
        assert!(err.contains("carries no publicKey"), "{err}");
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
        let env = ParsedEnvelope::parse(&key.sign_manifest(manifest, true)).unwrap();
        assert_eq!(env.payload(), manifest);
        assert_eq!(env.key_ids(), [key.public_key().id()]);
        assert_eq!(env.verify(&[key.public_key()]).unwrap(), [SignatureCheck { key: key.public_key().id(), trusted: true, verified: true }]);
        assert!(matches!(env.verify(&[]).unwrap_err(), PackageError::NoTrustAnchors { .. }));
        let none = br#"{"payload":"","payloadType":"application/vnd.wasmzip.manifest.v1+json","signatures":[]}"#;
        assert!(ParsedEnvelope::parse(none).unwrap_err().to_string().contains("1 to 16 signatures"));
        // Checked against a manifest, a foreign payload is named before the missing signatures.
        let err = CheckedEnvelope::parse(none, manifest, false).err().unwrap().to_string();
        assert!(err.contains("differs from manifest.json"), "{err}");
    }

    #[test]
    fn every_signature_is_checked_and_reported() {
        let (a, b, c) = (SigningKey::generate().unwrap(), SigningKey::generate().unwrap(), SigningKey::generate().unwrap());
        let manifest = b"{\"schema\":2}\n";
        // Format 2 keeps signatures in key id order.
        let (a, b) = if a.public_key().id() < b.public_key().id() { (a, b) } else { (b, a) };
        let env = envelope_bytes(manifest, &[a.signature(manifest, true), b.signature(manifest, true)]);
        let checked = CheckedEnvelope::parse(&env, manifest, true).unwrap();
        let swapped = envelope_bytes(manifest, &[b.signature(manifest, true), a.signature(manifest, true)]);
        let err = CheckedEnvelope::parse(&swapped, manifest, true).err().unwrap().to_string();
        assert!(err.contains("out of key id order"), "{err}");
        assert!(CheckedEnvelope::parse(&swapped, manifest, false).is_ok(), "schema 1 takes any order");
        // Trusting only b: a's signature still holds (it carries its key), and is reported untrusted.
        let checks = checked.verify(manifest, &[b.public_key()]).unwrap();
        assert_eq!(checks, [
            SignatureCheck { key: a.public_key().id(), trusted: false, verified: true },
            SignatureCheck { key: b.public_key().id(), trusted: true, verified: true },
        ]);
        // Trusting neither refuses, naming both keys.
        let err = checked.verify(manifest, &[c.public_key()]).unwrap_err().to_string();
        assert!(err.contains(&a.public_key().id().to_string()) && err.contains(&b.public_key().id().to_string()), "{err}");
        // A signature that does not hold refuses the package, even by a key nobody trusts.
        let mut bad = a.signature(manifest, true);
        bad.sig = b.signature(manifest, true).sig;
        let env = envelope_bytes(manifest, &[bad, b.signature(manifest, true)]);
        let err = CheckedEnvelope::parse(&env, manifest, true).unwrap().verify(manifest, &[b.public_key()]).unwrap_err().to_string();
        assert!(err.contains("signature 1 by key") && err.contains("does not verify"), "{err}");
    }

    #[test]
    fn format_2_envelopes_have_one_serialisation() {
        let (a, b) = (SigningKey::generate().unwrap(), SigningKey::generate().unwrap());
        let manifest = b"{}\n";
        let env = envelope_bytes(manifest, &[a.signature(manifest, true)]);
        assert!(CheckedEnvelope::parse(&env, manifest, true).is_ok());
        let text = String::from_utf8(env.clone()).unwrap();
        let id = a.public_key().id().to_string();
        for changed in [text.replace("\n", "\r\n"), text.replacen("  ", "   ", 1), text.replace(&id, &id.to_uppercase()), text.trim_end().to_string()] {
            let err = CheckedEnvelope::parse(changed.as_bytes(), manifest, true).err().expect("refused").to_string();
            assert!(err.contains("canonical form"), "{err}");
            // The lenient schema-1 reading accepts the same envelope.
            assert!(CheckedEnvelope::parse(changed.as_bytes(), manifest, false).is_ok());
        }
        // A public key that is not the key id's.
        let mut swapped = a.signature(manifest, true);
        swapped.public_key = b.signature(manifest, true).public_key;
        let err = CheckedEnvelope::parse(&envelope_bytes(manifest, &[swapped]), manifest, true).err().unwrap().to_string();
        assert!(err.contains("publicKey has key id"), "{err}");
        // The same key twice.
        let err = CheckedEnvelope::parse(&envelope_bytes(manifest, &[a.signature(manifest, true), a.signature(manifest, true)]), manifest, true).err().unwrap().to_string();
        assert!(err.contains("signs twice"), "{err}");
    }
}
