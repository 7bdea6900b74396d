//! `wasmzip.toml` and `manifest.json`: parsing never panics, and `manifest.json` round-trips through
//! its canonical bytes.

use std::path::Path;

use wasmzip_package::{AuthorManifest, PackageManifest};

/// Parses `bytes` as `wasmzip.toml`. An accepted manifest has at least one component, and every
/// capability it requests round-trips through its text.
pub fn author_manifest(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let Ok(manifest) = AuthorManifest::parse(text, Path::new("wasmzip.toml")) else { return };
    assert!(!manifest.components.is_empty());
    for component in manifest.components.values() {
        component.capabilities.iter().for_each(crate::capability::round_trips);
    }
}

/// Parses `bytes` as `manifest.json`. An accepted manifest's canonical bytes (`to_bytes`) parse back
/// to an equal manifest, whose canonical bytes are the same again.
pub fn package_manifest(bytes: &[u8]) {
    let Ok(manifest) = PackageManifest::from_bytes(bytes) else { return };
    package_manifest_round_trips(&manifest);
}

/// `to_bytes` then `from_bytes` gives back `manifest`, and the canonical bytes are stable.
pub fn package_manifest_round_trips(manifest: &PackageManifest) {
    let canonical = manifest.to_bytes();
    let again = match PackageManifest::from_bytes(&canonical) {
        Ok(again) => again,
        Err(e) => panic!("the canonical bytes of an accepted manifest do not parse: {e}\n{}", String::from_utf8_lossy(&canonical)),
    };
    assert_eq!(&again, manifest, "manifest.json changed through its canonical bytes");
    assert!(again.to_bytes() == canonical, "canonical bytes are not stable");
}
