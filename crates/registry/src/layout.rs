//! How a package is laid out in a registry: one OCI image manifest with our artifact type, the CNCF
//! Wasm config, each component as an `application/wasm` layer and the package file as the last
//! layer. Pure functions: the bytes of a manifest and config from a package's parts, and the package
//! layer found back in a manifest (docs/registry.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wasmparser::{Parser, Payload};

use crate::reference::check_digest;
use crate::{ARTIFACT_TYPE, PACKAGE_LAYER_MEDIA_TYPE, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};

/// The media type of the manifest itself.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The layer annotation OCI tools name the pulled file by.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The manifest annotation holding the package digest (SHA-256 of its `manifest.json`): a hint for
/// listing, never trusted; the verified package says what it is.
pub const PACKAGE_DIGEST_ANNOTATION: &str = "dev.wasmzip.package.digest";
/// Largest manifest read back (the distribution spec's recommended limit).
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;
/// Largest package layer accepted: the archive writer keeps every file under 4 GiB.
pub const MAX_PACKAGE_SIZE: u64 = u32::MAX as u64;
/// The config's `created`: fixed, as the archive's own timestamps are, so that the same package
/// always gives the same manifest digest.
pub const CREATED: &str = "1980-01-01T00:00:00Z";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type.
    pub media_type: String,
    /// `sha256:…`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// Annotations (the title, for layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Descriptor {
    fn of(media_type: &str, bytes: &[u8], title: Option<String>) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            annotations: title.map(|t| BTreeMap::from([(TITLE_ANNOTATION.to_string(), t)])),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u32,
    media_type: &'a str,
    artifact_type: &'a str,
    config: &'a Descriptor,
    layers: &'a [Descriptor],
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestIn {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// The CNCF Wasm config (`application/vnd.wasm.config.v0+json`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig {
    created: &'static str,
    architecture: &'static str,
    os: &'static str,
    layer_digests: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<ComponentWorld>,
}

#[derive(Serialize, Default)]
struct ComponentWorld {
    exports: Vec<String>,
    imports: Vec<String>,
}

/// What a push uploads: the config, the component layers and the package layer, and the manifest
/// that names them.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The config blob's bytes.
    pub config: Vec<u8>,
    /// Its descriptor.
    pub config_descriptor: Descriptor,
    /// Every layer: the components (in name order), then the package.
    pub layers: Vec<Descriptor>,
    /// The manifest's bytes, exactly as pushed.
    pub manifest: Vec<u8>,
    /// `sha256:…` of the manifest bytes.
    pub manifest_digest: String,
}

/// A package's facts that go into its registry manifest.
#[derive(Debug, Clone, Copy)]
pub struct PackageParts<'a> {
    /// Package name.
    pub name: &'a str,
    /// Package version.
    pub version: &'a str,
    /// The package digest (hex SHA-256 of `manifest.json`).
    pub package_digest: &'a str,
    /// The archive digest (hex SHA-256 of the file) and its size.
    pub archive: (&'a str, u64),
}

/// The manifest and config for a package whose components are `components` (name, bytes).
pub fn build(package: PackageParts<'_>, components: &[(&str, &[u8])]) -> Artifact {
    let mut layers: Vec<Descriptor> =
        components.iter().map(|(name, bytes)| Descriptor::of(WASM_LAYER_MEDIA_TYPE, bytes, Some(format!("{name}.wasm")))).collect();
    let (archive, size) = package.archive;
    layers.push(Descriptor {
        media_type: PACKAGE_LAYER_MEDIA_TYPE.to_string(),
        digest: format!("sha256:{archive}"),
        size,
        annotations: Some(BTreeMap::from([(TITLE_ANNOTATION.to_string(), format!("{}-{}.wasmzip", package.name, package.version))])),
    });
    let mut world: Option<ComponentWorld> = None;
    for (_, bytes) in components {
        if let Some((imports, exports)) = component_world(bytes) {
            let w = world.get_or_insert_with(ComponentWorld::default);
            w.imports.extend(imports);
            w.exports.extend(exports);
        }
    }
    if let Some(w) = world.as_mut() {
        for names in [&mut w.imports, &mut w.exports] {
            names.sort();
            names.dedup();
        }
    }
    let config = WasmConfig {
        created: CREATED,
        architecture: "wasm",
        // The spec knows `wasip1` (core modules) and `wasip2` (components, whatever WASI they use).
        os: if world.is_some() || components.is_empty() { "wasip2" } else { "wasip1" },
        layer_digests: layers.iter().map(|l| l.digest.clone()).collect(),
        component: world,
    };
    let config = serde_json::to_vec(&config).expect("the config serialises");
    let config_descriptor = Descriptor::of(WASM_CONFIG_MEDIA_TYPE, &config, None);
    let annotations = BTreeMap::from([
        ("org.opencontainers.image.title".to_string(), package.name.to_string()),
        ("org.opencontainers.image.version".to_string(), package.version.to_string()),
        (PACKAGE_DIGEST_ANNOTATION.to_string(), format!("sha256:{}", package.package_digest)),
    ]);
    let manifest = ManifestOut {
        schema_version: 2,
        media_type: OCI_MANIFEST_MEDIA_TYPE,
        artifact_type: ARTIFACT_TYPE,
        config: &config_descriptor,
        layers: &layers,
        annotations,
    };
    let manifest = serde_json::to_vec(&manifest).expect("the manifest serialises");
    let manifest_digest = sha256_digest(&manifest);
    Artifact { config, config_descriptor, layers, manifest, manifest_digest }
}

/// The package layer of a manifest, checked: an OCI image manifest (schema 2) with exactly one layer
/// of [`PACKAGE_LAYER_MEDIA_TYPE`], whose digest is SHA-256 and whose size is within
/// [`MAX_PACKAGE_SIZE`]. The error says what is wrong (the caller adds the reference).
pub fn package_layer(manifest: &[u8]) -> Result<Descriptor, String> {
    if manifest.len() > MAX_MANIFEST_SIZE {
        return Err(format!("the manifest is {} bytes, more than the {MAX_MANIFEST_SIZE} read", manifest.len()));
    }
    let parsed: ManifestIn = serde_json::from_slice(manifest).map_err(|e| {
        // An image index, or a Docker schema-1 manifest, has no `config`: say what it is.
        let media_type = serde_json::from_slice::<serde_json::Value>(manifest).ok().and_then(|v| v.get("mediaType")?.as_str().map(str::to_string));
        match media_type {
            Some(mt) if mt != OCI_MANIFEST_MEDIA_TYPE => format!("not a wasmzip package: its manifest is a {mt}"),
            _ => format!("the manifest is not an OCI image manifest: {e}"),
        }
    })?;
    if parsed.schema_version != 2 {
        return Err(format!("the manifest has schemaVersion {}, not 2", parsed.schema_version));
    }
    if let Some(mt) = parsed.media_type.as_deref().filter(|mt| *mt != OCI_MANIFEST_MEDIA_TYPE) {
        return Err(format!("not a wasmzip package: its manifest is a {mt}, not an {OCI_MANIFEST_MEDIA_TYPE}"));
    }
    let mut packages = parsed.layers.into_iter().filter(|l| l.media_type == PACKAGE_LAYER_MEDIA_TYPE);
    let (Some(layer), None) = (packages.next(), packages.next()) else {
        let kind = parsed.artifact_type.as_deref().map_or_else(|| format!("config {}", parsed.config.media_type), |at| format!("artifactType {at}"));
        return Err(format!("not a wasmzip package: its manifest ({kind}) does not have exactly one layer of {PACKAGE_LAYER_MEDIA_TYPE}"));
    };
    check_digest(&layer.digest).map_err(|e| format!("the package layer: {e}"))?;
    if layer.size > MAX_PACKAGE_SIZE {
        return Err(format!("the package layer is {} bytes, more than the {MAX_PACKAGE_SIZE} a package can be", layer.size));
    }
    Ok(layer)
}

/// `sha256:` and the hex SHA-256 of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", wasmzip_package::sha256_hex(bytes))
}

/// The top-level import and export names of a component, or `None` for anything else (a core
/// module).
fn component_world(bytes: &[u8]) -> Option<(Vec<String>, Vec<String>)> {
    if !Parser::is_component(bytes) {
        return None;
    }
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    imports.push(import.ok()?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    exports.push(export.ok()?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Some((imports, exports))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARCHIVE: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    fn parts() -> PackageParts<'static> {
        PackageParts { name: "orders", version: "1.4.0", package_digest: "22", archive: (ARCHIVE, 1234) }
    }

    fn component() -> Vec<u8> {
        wat::parse_str(
            r#"(component
                (import "wasi:cli/environment@0.2.0" (instance))
                (core module $m (func (export "run")))
                (core instance $i (instantiate $m))
                (func $run (canon lift (core func $i "run")))
                (instance $runner (export "run" (func $run)))
                (export "wasi:cli/run@0.2.0" (instance $runner)))"#,
        )
        .expect("the test component assembles")
    }

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn the_manifest_has_our_artifact_type_the_wasm_config_and_the_package_last() {
        let wasm = component();
        let artifact = build(parts(), &[("cli", &wasm)]);
        let m = json(&artifact.manifest);
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["mediaType"], OCI_MANIFEST_MEDIA_TYPE);
        assert_eq!(m["artifactType"], ARTIFACT_TYPE);
        assert_eq!(m["config"]["mediaType"], WASM_CONFIG_MEDIA_TYPE);
        assert_eq!(m["config"]["digest"], sha256_digest(&artifact.config));
        assert_eq!(m["config"]["size"], artifact.config.len());
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0]["mediaType"], WASM_LAYER_MEDIA_TYPE);
        assert_eq!(layers[0]["digest"], sha256_digest(&wasm));
        assert_eq!(layers[0]["annotations"][TITLE_ANNOTATION], "cli.wasm");
        assert_eq!(layers[1]["mediaType"], PACKAGE_LAYER_MEDIA_TYPE);
        assert_eq!(layers[1]["digest"], format!("sha256:{ARCHIVE}"));
        assert_eq!(layers[1]["size"], 1234);
        assert_eq!(layers[1]["annotations"][TITLE_ANNOTATION], "orders-1.4.0.wasmzip");
        assert_eq!(m["annotations"][PACKAGE_DIGEST_ANNOTATION], "sha256:22");
        assert_eq!(artifact.manifest_digest, sha256_digest(&artifact.manifest));

        let c = json(&artifact.config);
        assert_eq!(c["architecture"], "wasm");
        assert_eq!(c["os"], "wasip2");
        assert_eq!(c["created"], CREATED);
        assert_eq!(c["layerDigests"], serde_json::json!([sha256_digest(&wasm), format!("sha256:{ARCHIVE}")]));
        assert_eq!(c["component"]["imports"], serde_json::json!(["wasi:cli/environment@0.2.0"]));
        assert_eq!(c["component"]["exports"], serde_json::json!(["wasi:cli/run@0.2.0"]));
    }

    #[test]
    fn the_same_package_gives_the_same_manifest() {
        let wasm = component();
        assert_eq!(build(parts(), &[("cli", &wasm)]).manifest, build(parts(), &[("cli", &wasm)]).manifest);
    }

    #[test]
    fn a_core_module_is_wasip1_without_a_component_world() {
        let module = wat::parse_str("(module)").unwrap();
        let artifact = build(parts(), &[("legacy", &module)]);
        let c = json(&artifact.config);
        assert_eq!(c["os"], "wasip1");
        assert!(c.get("component").is_none());
    }

    #[test]
    fn the_package_layer_is_found_back() {
        let wasm = component();
        let artifact = build(parts(), &[("cli", &wasm)]);
        let layer = package_layer(&artifact.manifest).unwrap();
        assert_eq!(layer, artifact.layers[1]);
    }

    fn manifest_with(layers: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": WASM_CONFIG_MEDIA_TYPE, "digest": format!("sha256:{ARCHIVE}"), "size": 2},
            "layers": layers,
        }))
        .unwrap()
    }

    #[test]
    fn other_manifests_are_refused_saying_why() {
        let wasm_only = manifest_with(serde_json::json!([{"mediaType": WASM_LAYER_MEDIA_TYPE, "digest": format!("sha256:{ARCHIVE}"), "size": 1}]));
        let e = package_layer(&wasm_only).unwrap_err();
        assert!(e.contains("not a wasmzip package") && e.contains(WASM_CONFIG_MEDIA_TYPE), "{e}");
        let package = serde_json::json!({"mediaType": PACKAGE_LAYER_MEDIA_TYPE, "digest": format!("sha256:{ARCHIVE}"), "size": 1});
        let e = package_layer(&manifest_with(serde_json::json!([package.clone(), package.clone()]))).unwrap_err();
        assert!(e.contains("exactly one layer"), "{e}");
        let sha512 = serde_json::json!([{"mediaType": PACKAGE_LAYER_MEDIA_TYPE, "digest": "sha512:abcd", "size": 1}]);
        assert!(package_layer(&manifest_with(sha512)).unwrap_err().contains("only sha256"));
        let huge = serde_json::json!([{"mediaType": PACKAGE_LAYER_MEDIA_TYPE, "digest": format!("sha256:{ARCHIVE}"), "size": MAX_PACKAGE_SIZE + 1}]);
        assert!(package_layer(&manifest_with(huge)).unwrap_err().contains("more than"));
        let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []})).unwrap();
        assert!(package_layer(&index).unwrap_err().contains("is a application/vnd.oci.image.index.v1+json"));
        assert!(package_layer(b"not json").unwrap_err().contains("not an OCI image manifest"));
        assert!(package_layer(&vec![b' '; MAX_MANIFEST_SIZE + 1]).unwrap_err().contains("more than"));
        let v1 = serde_json::to_vec(&serde_json::json!({"schemaVersion": 1, "config": {"mediaType": "x", "digest": "sha256:00", "size": 0}})).unwrap();
        assert!(package_layer(&v1).unwrap_err().contains("schemaVersion 1"));
        assert!(package_layer(&manifest_with(serde_json::json!([package]))).is_ok());
    }
}
