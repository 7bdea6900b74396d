//! Software primitives shared by the keystores: public-key encodings, signature verification, DER
//! conversion of PKCS#11's raw ECDSA signatures, and PEM.

use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use p256::pkcs8::EncodePublicKey as _;

use crate::{KeyType, KeystoreError};

/// SubjectPublicKeyInfo DER of a 32-byte Ed25519 public key.
pub fn ed25519_spki(public: &[u8]) -> Result<Vec<u8>, KeystoreError> {
    let bytes: [u8; 32] = public
        .try_into()
        .map_err(|_| KeystoreError::InvalidInput(format!("an Ed25519 public key is 32 bytes, not {}", public.len())))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|e| KeystoreError::InvalidInput(format!("not an Ed25519 public key: {e}")))?;
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    key.to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| KeystoreError::InvalidInput(format!("cannot encode the Ed25519 public key: {e}")))
}

/// SubjectPublicKeyInfo DER of a P-256 public key given as a SEC1 point (uncompressed or compressed).
pub fn p256_spki(sec1_point: &[u8]) -> Result<Vec<u8>, KeystoreError> {
    let key = p256::PublicKey::from_sec1_bytes(sec1_point)
        .map_err(|_| KeystoreError::InvalidInput("not a P-256 public key point".into()))?;
    key.to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| KeystoreError::InvalidInput(format!("cannot encode the P-256 public key: {e}")))
}

/// Verifies `signature` over `message` with a public key given as SPKI DER. A malformed signature is
/// `false` for Ed25519 (every 64-byte string is a candidate) and an error naming the problem otherwise.
pub fn verify_with_spki(key_type: KeyType, spki: &[u8], message: &[u8], signature: &[u8]) -> Result<bool, KeystoreError> {
    match key_type {
        KeyType::Ed25519 => {
            let key = ed25519_dalek::VerifyingKey::from_public_key_der(spki)
                .map_err(|e| KeystoreError::InvalidInput(format!("stored Ed25519 public key: {e}")))?;
            let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
                return Err(KeystoreError::InvalidInput(format!("an Ed25519 signature is 64 bytes, not {}", signature.len())));
            };
            let sig = ed25519_dalek::Signature::from_bytes(&bytes);
            Ok(key.verify_strict(message, &sig).is_ok())
        }
        KeyType::P256 => {
            use p256::ecdsa::signature::Verifier as _;
            use p256::pkcs8::DecodePublicKey as _;
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(spki)
                .map_err(|e| KeystoreError::InvalidInput(format!("stored P-256 public key: {e}")))?;
            let sig = p256::ecdsa::Signature::from_der(signature)
                .map_err(|_| KeystoreError::InvalidInput("a P-256 signature must be a DER ECDSA-Sig-Value".into()))?;
            Ok(key.verify(message, &sig).is_ok())
        }
        other => Err(KeystoreError::InvalidInput(format!("a {other} key has no public key"))),
    }
}

/// DER `ECDSA-Sig-Value` of a raw P-256 signature `r ‖ s` (64 bytes), as PKCS#11 returns it.
pub fn p256_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, KeystoreError> {
    let sig = p256::ecdsa::Signature::from_slice(raw)
        .map_err(|_| KeystoreError::InvalidInput(format!("a raw P-256 signature is 64 bytes of r ‖ s, got {}", raw.len())))?;
    Ok(sig.to_der().as_bytes().to_vec())
}

/// A PEM `PUBLIC KEY` block of SPKI DER.
pub fn spki_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

/// Fills `buf` from the operating system's random source.
pub fn random(buf: &mut [u8]) -> Result<(), KeystoreError> {
    getrandom::fill(buf).map_err(|e| KeystoreError::Config(format!("the system random source failed: {e}")))
}

/// Checks the size of a message, plaintext or ciphertext against [`crate::MAX_MESSAGE_BYTES`].
pub fn check_len(what: &str, len: usize) -> Result<(), KeystoreError> {
    if len > crate::MAX_MESSAGE_BYTES {
        return Err(KeystoreError::InvalidInput(format!(
            "{what} is {len} bytes; the limit is {} bytes",
            crate::MAX_MESSAGE_BYTES
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer as _;

    #[test]
    fn ed25519_spki_verifies() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let spki = ed25519_spki(sk.verifying_key().as_bytes()).unwrap();
        let sig = sk.sign(b"msg").to_bytes();
        assert!(verify_with_spki(KeyType::Ed25519, &spki, b"msg", &sig).unwrap());
        assert!(!verify_with_spki(KeyType::Ed25519, &spki, b"other", &sig).unwrap());
        assert!(verify_with_spki(KeyType::Ed25519, &spki, b"msg", &sig[..10]).is_err());
        assert!(spki_pem(&spki).starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"));
    }

    #[test]
    fn p256_raw_signature_becomes_der() {
        use p256::ecdsa::signature::Signer as _;
        let sk = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
        let sig: p256::ecdsa::Signature = sk.sign(b"msg");
        let der = p256_raw_to_der(&sig.to_bytes()).unwrap();
        let point = sk.verifying_key().to_encoded_point(false);
        let spki = p256_spki(point.as_bytes()).unwrap();
        assert!(verify_with_spki(KeyType::P256, &spki, b"msg", &der).unwrap());
        assert!(!verify_with_spki(KeyType::P256, &spki, b"msh", &der).unwrap());
        assert!(p256_raw_to_der(&[1; 63]).is_err());
    }
}
