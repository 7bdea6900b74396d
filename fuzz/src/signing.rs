//! The DSSE envelope of `signature.dsse.json` on any bytes.

use wasmzip_package::PackageError;
use wasmzip_package::signing::{MAX_SIGNATURES, ParsedEnvelope};

use crate::package::fuzz_key;

/// Parses `bytes` as a DSSE envelope. An accepted one carries 1 to `MAX_SIGNATURES` key ids; with no
/// trust anchors it never verifies (it fails for want of one, or because a signature that carries
/// its key does not hold); against the fuzz key it verifies only by a signature of that key.
pub fn envelope(bytes: &[u8]) {
    let Ok(envelope) = ParsedEnvelope::parse(bytes) else { return };
    let ids = envelope.key_ids();
    assert!((1..=MAX_SIGNATURES).contains(&ids.len()), "{} signatures", ids.len());
    let untrusted = envelope.verify(&[]);
    assert!(matches!(untrusted, Err(PackageError::NoTrustAnchors { .. } | PackageError::Signature(_))), "{untrusted:?}");
    let key = fuzz_key().public_key();
    if let Ok(checks) = envelope.verify(std::slice::from_ref(&key)) {
        assert!(checks.iter().any(|c| c.key == key.id() && c.trusted && c.verified), "verified without the fuzz key's signature");
        assert_eq!(checks.iter().map(|c| c.key).collect::<Vec<_>>(), ids);
    }
}
