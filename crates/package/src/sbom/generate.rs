//! Writing the package's CycloneDX 1.5 SBOM from the members, the metadata sections inside each
//! component, their `.dep-v0` sections and an optional `Cargo.lock`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::lock::{self, LockPackage, is_sha256_hex};
use super::{GENERATED_SPEC_VERSION, SbomError, SbomInputs};

/// The namespace of the name-based serial numbers (a v5 UUID of the URL below).
const SERIAL_NAMESPACE: uuid::Uuid = uuid::Uuid::NAMESPACE_URL;
const SERIAL_NAME_PREFIX: &str = "https://wasmzip.dev/sbom/";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bom {
    bom_format: &'static str,
    spec_version: &'static str,
    serial_number: String,
    version: u32,
    metadata: Metadata,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<Component>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dependencies: Vec<Dependency>,
}

#[derive(Serialize)]
struct Metadata {
    tools: Tools,
    component: Component,
}

#[derive(Serialize)]
struct Tools {
    components: Vec<Component>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Component {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    bom_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<Hash>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    licenses: Vec<License>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_references: Vec<ExternalReference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
}

#[derive(Serialize)]
struct Hash {
    alg: &'static str,
    content: String,
}

#[derive(Serialize)]
struct License {
    expression: String,
}

#[derive(Serialize)]
struct ExternalReference {
    url: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Property {
    name: String,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    depends_on: BTreeSet<String>,
}

fn sha256(content: &str) -> Hash {
    Hash {
        alg: "SHA-256",
        content: content.to_ascii_lowercase(),
    }
}

fn property(name: &str, value: impl Into<String>) -> Property {
    Property {
        name: name.to_string(),
        value: value.into(),
    }
}

/// Where a Cargo package comes from, as far as its bom-ref and purl go.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    CratesIo,
    Registry,
    Git,
    Local,
    Other,
}

impl Origin {
    /// From a `.dep-v0` `source` (`crates.io`, `registry`, `git`, `local`).
    fn of_auditable(source: &str) -> Self {
        match source {
            "crates.io" => Origin::CratesIo,
            "registry" => Origin::Registry,
            "git" => Origin::Git,
            "local" => Origin::Local,
            _ => Origin::Other,
        }
    }

    /// From a `Cargo.lock` `source` (none for a path or workspace package).
    fn of_lock(source: Option<&str>) -> Self {
        match source {
            None => Origin::Local,
            Some(
                "registry+https://github.com/rust-lang/crates.io-index"
                | "sparse+https://index.crates.io/",
            ) => Origin::CratesIo,
            Some(s) if s.starts_with("registry+") || s.starts_with("sparse+") => Origin::Registry,
            Some(s) if s.starts_with("git+") => Origin::Git,
            Some(_) => Origin::Other,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Origin::CratesIo => "crates.io",
            Origin::Registry => "registry",
            Origin::Git => "git",
            Origin::Local => "local",
            Origin::Other => "other",
        }
    }
}

/// A Cargo package listed as a library, merged from every `.dep-v0` and lock file that names it.
struct Library {
    name: String,
    version: String,
    origin: Origin,
    /// The lock file's `source`, as written.
    source: Option<String>,
    checksum: Option<String>,
    build_only: bool,
    depends_on: BTreeSet<String>,
}

impl Library {
    fn bom_ref(name: &str, version: &str, origin: &Origin) -> String {
        match origin {
            Origin::CratesIo => cargo_purl(name, version),
            other => format!("cargo:{}/{name}@{version}", other.label()),
        }
    }

    fn into_component(self, bom_ref: String) -> Component {
        let purl = (self.origin == Origin::CratesIo).then(|| cargo_purl(&self.name, &self.version));
        let mut properties = vec![property(
            "wasmzip:cargo-source",
            self.source
                .unwrap_or_else(|| self.origin.label().to_string()),
        )];
        if self.build_only {
            properties.push(property("wasmzip:cargo-kind", "build"));
        }
        Component {
            kind: "library",
            bom_ref: Some(bom_ref),
            name: self.name,
            version: Some(self.version),
            hashes: self.checksum.as_deref().map(sha256).into_iter().collect(),
            purl,
            properties,
            ..Component::default()
        }
    }
}

/// The libraries of the SBOM, by bom-ref.
#[derive(Default)]
struct Libraries(BTreeMap<String, Library>);

impl Libraries {
    /// Adds (or merges into) the library `name@version` from `origin`; returns its bom-ref.
    fn add(
        &mut self,
        name: &str,
        version: &str,
        origin: Origin,
        source: Option<&str>,
        checksum: Option<&str>,
        build_only: bool,
    ) -> String {
        let bom_ref = Library::bom_ref(name, version, &origin);
        let entry = self.0.entry(bom_ref.clone()).or_insert_with(|| Library {
            name: name.to_string(),
            version: version.to_string(),
            origin,
            source: None,
            checksum: None,
            build_only,
            depends_on: BTreeSet::new(),
        });
        entry.build_only &= build_only;
        if entry.source.is_none() {
            entry.source = source.map(str::to_string);
        }
        if entry.checksum.is_none() {
            entry.checksum = checksum.map(str::to_string);
        }
        bom_ref
    }

    fn add_edge(&mut self, from: &str, to: &str) {
        if let Some(lib) = self.0.get_mut(from) {
            lib.depends_on.insert(to.to_string());
        }
    }
}

/// `pkg:cargo/NAME@VERSION`, the version percent-encoded as the purl spec asks (`+` in build metadata).
fn cargo_purl(name: &str, version: &str) -> String {
    let mut out = format!("pkg:cargo/{}@", percent_encode(name));
    out.push_str(&percent_encode(version));
    out
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// cargo-auditable's `.dep-v0` payload.
#[derive(Deserialize)]
struct DepInfo {
    packages: Vec<DepPackage>,
}

#[derive(Deserialize)]
struct DepPackage {
    name: String,
    version: String,
    source: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    dependencies: Vec<usize>,
    #[serde(default)]
    root: bool,
}

/// What a component's metadata sections say: the component's own first, then those of the modules and
/// components nested in it (where rustc puts the producers and `.dep-v0` of a wasip2 component).
#[derive(Default)]
struct WasmFacts {
    name: Option<String>,
    version: Option<String>,
    licenses: Option<String>,
    source: Option<String>,
    homepage: Option<String>,
    revision: Option<String>,
    authors: Option<String>,
    description: Option<String>,
    /// `(field, name, version)` of every producers entry, once each, in the order found.
    producers: Vec<(String, String, String)>,
    dependencies: Vec<DepInfo>,
}

fn read_wasm_facts(member: &str, bytes: &[u8]) -> Result<WasmFacts, SbomError> {
    let bad = |message: String| SbomError::ComponentMetadata {
        member: member.to_string(),
        message,
    };
    let payload = wasm_metadata::Payload::from_binary(bytes)
        .map_err(|e| bad(format!("cannot read its metadata sections: {e:#}")))?;
    let mut facts = WasmFacts {
        name: payload.metadata().name.clone(),
        ..WasmFacts::default()
    };
    let mut stack = vec![&payload];
    while let Some(p) = stack.pop() {
        let m = p.metadata();
        let first = |slot: &mut Option<String>, value: Option<String>| {
            if slot.is_none() {
                *slot = value;
            }
        };
        first(
            &mut facts.version,
            m.version.as_ref().map(|v| v.to_string()),
        );
        first(
            &mut facts.licenses,
            m.licenses.as_ref().map(|v| v.to_string()),
        );
        first(&mut facts.source, m.source.as_ref().map(|v| v.to_string()));
        first(
            &mut facts.homepage,
            m.homepage.as_ref().map(|v| v.to_string()),
        );
        first(
            &mut facts.revision,
            m.revision.as_ref().map(|v| v.to_string()),
        );
        first(
            &mut facts.authors,
            m.authors.as_ref().map(|v| v.to_string()),
        );
        first(
            &mut facts.description,
            m.description.as_ref().map(|v| v.to_string()),
        );
        if let Some(producers) = &m.producers {
            for (field, entries) in producers.iter() {
                for (name, version) in entries.iter() {
                    let entry = (field.clone(), name.clone(), version.clone());
                    if !facts.producers.contains(&entry) {
                        facts.producers.push(entry);
                    }
                }
            }
        }
        if let Some(deps) = &m.dependencies {
            let info: DepInfo = serde_json::from_str(&deps.to_string())
                .map_err(|e| bad(format!("`.dep-v0` section: {e}")))?;
            facts.dependencies.push(info);
        }
        if let wasm_metadata::Payload::Component { children, .. } = p {
            stack.extend(children.iter().rev());
        }
    }
    Ok(facts)
}

/// The lock file's packages, with which of them is which component.
struct Lock {
    packages: Vec<LockPackage>,
    /// The bom-ref of each package: a library's, or the component's the package builds.
    refs: Vec<String>,
    /// The packages no other package depends on.
    roots: Vec<usize>,
}

/// Whether a Cargo package name and a component name are the same (`my-app` builds `my_app.wasm`).
fn same_crate(package: &str, component: &str) -> bool {
    package.replace('-', "_") == component.replace('-', "_")
}

pub(super) fn generate(inputs: &SbomInputs<'_>) -> Result<Vec<u8>, SbomError> {
    for (what, digest) in inputs
        .components
        .iter()
        .map(|c| (c.member, c.sha256))
        .chain(inputs.resources.iter().map(|r| (r.member, r.sha256)))
        .chain(inputs.models.iter().map(|m| (m.member, m.sha256)))
    {
        if !is_sha256_hex(digest) {
            return Err(SbomError::Input {
                what: what.to_string(),
                message: format!("digest \"{digest}\" is not a SHA-256 digest in hex"),
            });
        }
    }

    let lock_file = inputs.cargo_lock.map(lock::read).transpose()?;
    let package_ref = format!("wasmzip:{}@{}", inputs.package_name, inputs.package_version);
    let mut libraries = Libraries::default();
    let mut component_deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();

    // The lock's packages are all libraries, except those that build a component of the package.
    let lock = lock_file.as_ref().map(|(packages, _)| {
        let refs: Vec<String> = packages
            .iter()
            .map(|p| {
                let builds = p
                    .source
                    .is_none()
                    .then(|| {
                        inputs
                            .components
                            .iter()
                            .find(|c| same_crate(&p.name, c.name))
                    })
                    .flatten();
                match builds {
                    Some(c) => c.member.to_string(),
                    None => libraries.add(
                        &p.name,
                        &p.version,
                        Origin::of_lock(p.source.as_deref()),
                        p.source.as_deref(),
                        p.checksum.as_deref(),
                        false,
                    ),
                }
            })
            .collect();
        let depended: BTreeSet<usize> = packages
            .iter()
            .flat_map(|p| p.dependencies.iter().copied())
            .collect();
        let roots = (0..packages.len())
            .filter(|i| !depended.contains(i) && packages[*i].source.is_none())
            .collect();
        for (i, p) in packages.iter().enumerate() {
            for d in &p.dependencies {
                libraries.add_edge(&refs[i], &refs[*d]);
            }
        }
        Lock {
            packages: packages.clone(),
            refs,
            roots,
        }
    });

    let mut components = Vec::new();
    for input in &inputs.components {
        let facts = read_wasm_facts(input.member, input.bytes)?;
        let bom_ref = input.member.to_string();
        let mut properties = vec![
            property("wasmzip:member", input.member),
            property("wasmzip:world", input.world),
        ];
        if let Some(name) = &facts.name {
            properties.push(property("wasmzip:wasm-name", name.as_str()));
        }
        for (field, name, version) in &facts.producers {
            let value = if version.is_empty() {
                name.clone()
            } else {
                format!("{name} {version}")
            };
            properties.push(property(&format!("wasmzip:producers:{field}"), value));
        }
        if let Some(revision) = &facts.revision {
            properties.push(property("wasmzip:revision", revision.as_str()));
        }
        let mut external_references = Vec::new();
        if let Some(url) = &facts.source {
            external_references.push(ExternalReference {
                url: url.clone(),
                kind: "vcs",
            });
        }
        if let Some(url) = &facts.homepage {
            external_references.push(ExternalReference {
                url: url.clone(),
                kind: "website",
            });
        }

        if !facts.dependencies.is_empty() {
            let deps = component_deps.entry(bom_ref.clone()).or_default();
            for info in &facts.dependencies {
                let n = info.packages.len();
                let refs: Vec<String> = info
                    .packages
                    .iter()
                    .map(|p| {
                        if p.root {
                            bom_ref.clone()
                        } else {
                            let build_only = p.kind.as_deref() == Some("build");
                            libraries.add(
                                &p.name,
                                &p.version,
                                Origin::of_auditable(&p.source),
                                None,
                                None,
                                build_only,
                            )
                        }
                    })
                    .collect();
                for (i, p) in info.packages.iter().enumerate() {
                    if p.root {
                        properties.push(property(
                            "wasmzip:cargo-package",
                            format!("{} {}", p.name, p.version),
                        ));
                    }
                    for &d in &p.dependencies {
                        if d >= n {
                            return Err(SbomError::ComponentMetadata {
                                member: input.member.to_string(),
                                message: format!(
                                    "`.dep-v0` section: packages[{i}] depends on packages[{d}], which does not exist"
                                ),
                            });
                        }
                        if p.root {
                            deps.insert(refs[d].clone());
                        } else {
                            libraries.add_edge(&refs[i], &refs[d]);
                        }
                    }
                }
                if !info.packages.iter().any(|p| p.root) {
                    let depended: BTreeSet<usize> = info
                        .packages
                        .iter()
                        .flat_map(|p| p.dependencies.iter().copied())
                        .collect();
                    deps.extend(
                        (0..n)
                            .filter(|i| !depended.contains(i))
                            .map(|i| refs[i].clone()),
                    );
                }
            }
        } else if let Some(lock) = &lock {
            let deps = component_deps.entry(bom_ref.clone()).or_default();
            match lock.refs.iter().position(|r| *r == bom_ref) {
                Some(own) => deps.extend(
                    lock.packages[own]
                        .dependencies
                        .iter()
                        .map(|d| lock.refs[*d].clone()),
                ),
                None => deps.extend(lock.roots.iter().map(|r| lock.refs[*r].clone())),
            }
        }

        components.push(Component {
            kind: "application",
            bom_ref: Some(bom_ref),
            author: facts.authors,
            name: input.name.to_string(),
            version: facts.version,
            description: facts.description,
            hashes: vec![sha256(input.sha256)],
            licenses: facts
                .licenses
                .map(|expression| License { expression })
                .into_iter()
                .collect(),
            external_references,
            properties,
            ..Component::default()
        });
    }

    for r in &inputs.resources {
        components.push(Component {
            kind: "file",
            bom_ref: Some(r.member.to_string()),
            name: r.member.to_string(),
            hashes: vec![sha256(r.sha256)],
            properties: vec![property("wasmzip:size", r.size.to_string())],
            ..Component::default()
        });
    }
    for m in &inputs.models {
        components.push(Component {
            kind: "machine-learning-model",
            bom_ref: Some(m.member.to_string()),
            name: m.name.to_string(),
            hashes: vec![sha256(m.sha256)],
            properties: vec![
                property("wasmzip:member", m.member),
                property("wasmzip:encoding", m.encoding),
            ],
            ..Component::default()
        });
    }

    let members: Vec<String> = components
        .iter()
        .filter_map(|c| c.bom_ref.clone())
        .collect();
    let mut dependencies = vec![Dependency {
        reference: package_ref.clone(),
        depends_on: members.iter().cloned().collect(),
    }];
    for c in &inputs.components {
        if let Some(deps) = component_deps.remove(c.member) {
            dependencies.push(Dependency {
                reference: c.member.to_string(),
                depends_on: deps,
            });
        }
    }
    for (bom_ref, lib) in libraries.0 {
        dependencies.push(Dependency {
            reference: bom_ref.clone(),
            depends_on: lib.depends_on.clone(),
        });
        components.push(lib.into_component(bom_ref));
    }

    let mut seen = BTreeSet::from([package_ref.clone()]);
    for c in &components {
        if let Some(r) = &c.bom_ref
            && !seen.insert(r.clone())
        {
            return Err(SbomError::Input {
                what: r.clone(),
                message: "two members or packages have this bom-ref".into(),
            });
        }
    }

    let bom = Bom {
        bom_format: "CycloneDX",
        spec_version: GENERATED_SPEC_VERSION,
        serial_number: serial_number(
            inputs,
            lock_file.as_ref().map(|(_, bytes)| bytes.as_slice()),
        ),
        version: 1,
        metadata: Metadata {
            tools: Tools {
                components: vec![Component {
                    kind: "application",
                    name: "wasmzip".into(),
                    version: Some(env!("CARGO_PKG_VERSION").into()),
                    ..Component::default()
                }],
            },
            component: Component {
                kind: "application",
                bom_ref: Some(package_ref),
                name: inputs.package_name.to_string(),
                version: Some(inputs.package_version.to_string()),
                description: inputs.description.map(str::to_string),
                ..Component::default()
            },
        },
        components,
        dependencies,
    };
    let mut out = serde_json::to_vec_pretty(&bom).map_err(|e| SbomError::Input {
        what: "SBOM".into(),
        message: e.to_string(),
    })?;
    out.push(b'\n');
    Ok(out)
}

/// `urn:uuid:` of a v5 UUID of the package's name, version, member digests and lock file.
fn serial_number(inputs: &SbomInputs<'_>, lock: Option<&[u8]>) -> String {
    let mut name = format!(
        "{SERIAL_NAME_PREFIX}{}@{}",
        inputs.package_name, inputs.package_version
    );
    for (member, digest) in inputs
        .components
        .iter()
        .map(|c| (c.member, c.sha256))
        .chain(inputs.resources.iter().map(|r| (r.member, r.sha256)))
        .chain(inputs.models.iter().map(|m| (m.member, m.sha256)))
    {
        name.push_str(&format!("\n{member}={}", digest.to_ascii_lowercase()));
    }
    if let Some(lock) = lock {
        name.push_str(&format!(
            "\nCargo.lock={}",
            hex::encode(Sha256::digest(lock))
        ));
    }
    format!(
        "urn:uuid:{}",
        uuid::Uuid::new_v5(&SERIAL_NAMESPACE, name.as_bytes()).hyphenated()
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::{Value, json};
    use wasm_metadata::{
        AddMetadata, AddMetadataField, Authors, Description, Homepage, Licenses, Revision, Source,
        Version,
    };

    use super::*;
    use crate::sbom::{ComponentInput, ModelInput, ResourceInput};

    const DEP_V0: &str = r#"{"packages":[{"name":"root","version":"0.1.0","source":"local","dependencies":[1],"root":true},{"name":"serde","version":"1.0.200","source":"crates.io"}]}"#;
    const DIGEST_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const DIGEST_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const SERDE_SUM: &str = "ddc6f9cc94d67c0e21aaf7eda3a010fd3af78ebf6e096aa6e2e13c79749cce4f";

    /// A core module as rustc leaves it in a wasip2 component: producers and a `.dep-v0` section.
    fn core_module(dep_v0: Option<&str>) -> Vec<u8> {
        let mut module = wasm_encoder::Module::new();
        if let Some(json) = dep_v0 {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(json.as_bytes()).unwrap();
            module.section(&wasm_encoder::CustomSection {
                name: ".dep-v0".into(),
                data: z.finish().unwrap().into(),
            });
        }
        let mut add = AddMetadata::default();
        add.language = vec![("Rust".into(), "".into())];
        add.processed_by = vec![("rustc".into(), "1.99.1 (58cf8f9c3 2026-10-13)".into())];
        add.sdk = vec![("wit-bindgen".into(), "0.40.0".into())];
        add.to_wasm(&module.finish()).unwrap()
    }

    /// A component around `module`.
    fn component_around(module: &[u8]) -> Vec<u8> {
        let mut component = wasm_encoder::Component::new();
        component.section(&wasm_encoder::RawSection {
            id: wasm_encoder::ComponentSectionId::CoreModule as u8,
            data: module,
        });
        component.finish()
    }

    /// The metadata an author adds to a component (`wasm-tools metadata add`).
    fn with_oci_metadata(component: &[u8]) -> Vec<u8> {
        let mut add = AddMetadata::default();
        add.name = AddMetadataField::Set("hello-world".into());
        add.authors = AddMetadataField::Set(Authors::new("Ada <ada@example.com>"));
        add.description = AddMetadataField::Set(Description::new("Says hello"));
        add.licenses =
            AddMetadataField::Set(Licenses::new("Apache-2.0 WITH LLVM-exception OR MIT").unwrap());
        add.source =
            AddMetadataField::Set(Source::new("https://github.com/example/hello").unwrap());
        add.homepage = AddMetadataField::Set(Homepage::new("https://example.com/hello").unwrap());
        add.revision =
            AddMetadataField::Set(Revision::new("de978e17a80c1118f606fce919ba9b7d5a04a5ad"));
        add.version = AddMetadataField::Set(Version::new("1.2.3"));
        add.to_wasm(component).unwrap()
    }

    fn inputs<'a>(components: Vec<ComponentInput<'a>>) -> SbomInputs<'a> {
        SbomInputs {
            package_name: "hello",
            package_version: "0.3.0",
            description: Some("A greeting"),
            components,
            resources: Vec::new(),
            models: Vec::new(),
            cargo_lock: None,
        }
    }

    fn component<'a>(
        name: &'a str,
        member: &'a str,
        bytes: &'a [u8],
        sha256: &'a str,
    ) -> ComponentInput<'a> {
        ComponentInput {
            name,
            member,
            bytes,
            sha256,
            world: "cli",
        }
    }

    fn json_of(bytes: &[u8]) -> Value {
        assert!(bytes.ends_with(b"}\n"), "pretty JSON ending in a newline");
        serde_json::from_slice(bytes).unwrap()
    }

    fn find<'v>(doc: &'v Value, bom_ref: &str) -> &'v Value {
        doc["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["bom-ref"] == bom_ref)
            .unwrap_or_else(|| panic!("no component {bom_ref}"))
    }

    fn depends_on(doc: &Value, bom_ref: &str) -> Option<Vec<String>> {
        let d = doc["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["ref"] == bom_ref)?;
        Some(
            d.get("dependsOn")
                .map(|v| {
                    v.as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    fn property_values(c: &Value, name: &str) -> Vec<String> {
        c["properties"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == name)
            .map(|p| p["value"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn lists_the_metadata_of_a_component_and_of_its_core_module() {
        let wasm = with_oci_metadata(&component_around(&core_module(Some(DEP_V0))));
        let sbom = generate(&inputs(vec![component(
            "hello",
            "components/hello.wasm",
            &wasm,
            DIGEST_A,
        )]))
        .unwrap();
        let doc = json_of(&sbom);

        assert_eq!(doc["bomFormat"], "CycloneDX");
        assert_eq!(doc["specVersion"], "1.5");
        assert_eq!(doc["version"], 1);
        assert_eq!(
            doc["metadata"]["tools"]["components"][0],
            json!({"type": "application", "name": "wasmzip", "version": env!("CARGO_PKG_VERSION")})
        );
        assert_eq!(
            doc["metadata"]["component"],
            json!({"type": "application", "bom-ref": "wasmzip:hello@0.3.0", "name": "hello", "version": "0.3.0", "description": "A greeting"})
        );

        let c = find(&doc, "components/hello.wasm");
        assert_eq!(c["type"], "application");
        assert_eq!(c["name"], "hello");
        assert_eq!(c["version"], "1.2.3");
        assert_eq!(c["author"], "Ada <ada@example.com>");
        assert_eq!(c["description"], "Says hello");
        assert_eq!(
            c["hashes"],
            json!([{"alg": "SHA-256", "content": DIGEST_A}])
        );
        assert_eq!(
            c["licenses"],
            json!([{"expression": "Apache-2.0 WITH LLVM-exception OR MIT"}])
        );
        assert_eq!(
            c["externalReferences"],
            json!([{"url": "https://github.com/example/hello", "type": "vcs"}, {"url": "https://example.com/hello", "type": "website"}])
        );
        assert_eq!(
            property_values(c, "wasmzip:member"),
            ["components/hello.wasm"]
        );
        assert_eq!(property_values(c, "wasmzip:world"), ["cli"]);
        assert_eq!(property_values(c, "wasmzip:wasm-name"), ["hello-world"]);
        assert_eq!(
            property_values(c, "wasmzip:revision"),
            ["de978e17a80c1118f606fce919ba9b7d5a04a5ad"]
        );
        assert_eq!(property_values(c, "wasmzip:cargo-package"), ["root 0.1.0"]);
        // The producers are in the core module, not at the top.
        assert_eq!(property_values(c, "wasmzip:producers:language"), ["Rust"]);
        assert!(
            property_values(c, "wasmzip:producers:processed-by")
                .contains(&"rustc 1.99.1 (58cf8f9c3 2026-10-13)".to_string())
        );
        assert_eq!(
            property_values(c, "wasmzip:producers:sdk"),
            ["wit-bindgen 0.40.0"]
        );

        // `.dep-v0`: serde is a library the component depends on; the root is the component itself.
        let serde = find(&doc, "pkg:cargo/serde@1.0.200");
        assert_eq!(serde["type"], "library");
        assert_eq!(serde["name"], "serde");
        assert_eq!(serde["version"], "1.0.200");
        assert_eq!(serde["purl"], "pkg:cargo/serde@1.0.200");
        assert!(
            serde.get("hashes").is_none(),
            "`.dep-v0` carries no checksums"
        );
        assert!(serde.get("licenses").is_none(), "no licence is guessed");
        assert_eq!(
            doc["components"].as_array().unwrap().len(),
            2,
            "the root package is not listed apart from the component"
        );
        assert_eq!(
            depends_on(&doc, "components/hello.wasm").unwrap(),
            ["pkg:cargo/serde@1.0.200"]
        );
        assert_eq!(
            depends_on(&doc, "pkg:cargo/serde@1.0.200").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            depends_on(&doc, "wasmzip:hello@0.3.0").unwrap(),
            ["components/hello.wasm"]
        );

        let inventory = crate::sbom::validate_supplied(&sbom, "generated").unwrap();
        assert_eq!(inventory, crate::sbom::read_inventory(&sbom).unwrap());
        let serde_item = inventory.items.iter().find(|i| i.name == "serde").unwrap();
        assert_eq!(serde_item.purl.as_deref(), Some("pkg:cargo/serde@1.0.200"));
        assert_eq!(
            inventory.items[0].licenses,
            ["Apache-2.0 WITH LLVM-exception OR MIT"]
        );
    }

    #[test]
    fn a_bare_component_gets_the_minimal_sbom() {
        let wasm = wat::parse_str("(component)").unwrap();
        let mut i = inputs(vec![component(
            "bare",
            "components/bare.wasm",
            &wasm,
            DIGEST_A,
        )]);
        i.description = None;
        let doc = json_of(&generate(&i).unwrap());
        assert_eq!(
            doc["components"],
            json!([{
                "type": "application",
                "bom-ref": "components/bare.wasm",
                "name": "bare",
                "hashes": [{"alg": "SHA-256", "content": DIGEST_A}],
                "properties": [{"name": "wasmzip:member", "value": "components/bare.wasm"}, {"name": "wasmzip:world", "value": "cli"}],
            }])
        );
        assert_eq!(
            doc["dependencies"],
            json!([{"ref": "wasmzip:hello@0.3.0", "dependsOn": ["components/bare.wasm"]}])
        );
        assert!(doc["metadata"]["component"].get("description").is_none());
    }

    #[test]
    fn resources_and_models_are_files_and_models_the_package_depends_on() {
        let wasm = wat::parse_str("(component)").unwrap();
        let mut i = inputs(vec![component(
            "bare",
            "components/bare.wasm",
            &wasm,
            DIGEST_A,
        )]);
        i.resources = vec![ResourceInput {
            member: "resources/static/index.html",
            size: 1234,
            sha256: DIGEST_B,
        }];
        i.models = vec![ModelInput {
            name: "mobilenet",
            member: "resources/models/mobilenet.onnx",
            encoding: "onnx",
            sha256: DIGEST_A,
        }];
        let doc = json_of(&generate(&i).unwrap());
        let file = find(&doc, "resources/static/index.html");
        assert_eq!(file["type"], "file");
        assert_eq!(file["name"], "resources/static/index.html");
        assert_eq!(file["hashes"][0]["content"], DIGEST_B);
        assert_eq!(property_values(file, "wasmzip:size"), ["1234"]);
        let model = find(&doc, "resources/models/mobilenet.onnx");
        assert_eq!(model["type"], "machine-learning-model");
        assert_eq!(model["name"], "mobilenet");
        assert_eq!(property_values(model, "wasmzip:encoding"), ["onnx"]);
        assert_eq!(
            property_values(model, "wasmzip:member"),
            ["resources/models/mobilenet.onnx"]
        );
        assert_eq!(
            depends_on(&doc, "wasmzip:hello@0.3.0").unwrap(),
            [
                "components/bare.wasm",
                "resources/models/mobilenet.onnx",
                "resources/static/index.html"
            ]
        );
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes_and_a_name_based_serial() {
        let wasm = with_oci_metadata(&component_around(&core_module(Some(DEP_V0))));
        let i = inputs(vec![component(
            "hello",
            "components/hello.wasm",
            &wasm,
            DIGEST_A,
        )]);
        let first = generate(&i).unwrap();
        assert_eq!(first, generate(&i).unwrap());
        let serial = json_of(&first)["serialNumber"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(crate::sbom::read::is_urn_uuid(&serial), "{serial}");
        assert_eq!(&serial[23..24], "5", "a name-based (v5) UUID: {serial}");

        let other = inputs(vec![component(
            "hello",
            "components/hello.wasm",
            &wasm,
            DIGEST_B,
        )]);
        let other_serial = json_of(&generate(&other).unwrap())["serialNumber"]
            .as_str()
            .unwrap()
            .to_string();
        assert_ne!(
            serial, other_serial,
            "another component digest, another serial number"
        );
    }

    const LOCK: &str = r#"version = 4

[[package]]
name = "hello"
version = "0.1.0"
dependencies = [
 "serde",
 "wit-bindgen",
]

[[package]]
name = "serde"
version = "1.0.200"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "ddc6f9cc94d67c0e21aaf7eda3a010fd3af78ebf6e096aa6e2e13c79749cce4f"

[[package]]
name = "wit-bindgen"
version = "0.40.0+wasi-0.2"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = [
 "serde 1.0.200",
]
"#;

    #[test]
    fn a_cargo_lock_describes_the_components_without_a_dep_section_and_merges_with_dep_sections() {
        let dir = tempfile::tempdir().unwrap();
        let lock_path = dir.path().join("Cargo.lock");
        std::fs::write(&lock_path, LOCK).unwrap();
        let bare = wat::parse_str("(component)").unwrap();
        let audited = component_around(&core_module(Some(DEP_V0)));
        let mut i = inputs(vec![
            component("audited", "components/audited.wasm", &audited, DIGEST_B),
            component("hello", "components/hello.wasm", &bare, DIGEST_A),
        ]);
        i.cargo_lock = Some(&lock_path);
        let sbom = generate(&i).unwrap();
        let doc = json_of(&sbom);

        // `hello` is the lock's `hello` package: it depends on what that package depends on.
        assert_eq!(
            depends_on(&doc, "components/hello.wasm").unwrap(),
            [
                "pkg:cargo/serde@1.0.200",
                "pkg:cargo/wit-bindgen@0.40.0%2Bwasi-0.2"
            ]
        );
        // `audited` has its own `.dep-v0`; the lock does not speak for it.
        assert_eq!(
            depends_on(&doc, "components/audited.wasm").unwrap(),
            ["pkg:cargo/serde@1.0.200"]
        );
        assert_eq!(
            depends_on(&doc, "pkg:cargo/wit-bindgen@0.40.0%2Bwasi-0.2").unwrap(),
            ["pkg:cargo/serde@1.0.200"]
        );

        // serde is named by both the `.dep-v0` and the lock: one library, with the lock's checksum.
        let serdes: Vec<&Value> = doc["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == "serde")
            .collect();
        assert_eq!(serdes.len(), 1);
        assert_eq!(
            serdes[0]["hashes"],
            json!([{"alg": "SHA-256", "content": SERDE_SUM}])
        );
        assert_eq!(
            property_values(serdes[0], "wasmzip:cargo-source"),
            ["registry+https://github.com/rust-lang/crates.io-index"]
        );
        let wit = find(&doc, "pkg:cargo/wit-bindgen@0.40.0%2Bwasi-0.2");
        assert_eq!(wit["version"], "0.40.0+wasi-0.2");
        assert!(
            wit.get("hashes").is_none(),
            "no checksum in the lock, no hash"
        );
        // The lock's `hello` package is the component, not a library of its own.
        assert!(
            doc["components"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["type"] != "library" || c["name"] != "hello")
        );
        crate::sbom::validate_supplied(&sbom, "generated").unwrap();
    }

    #[test]
    fn a_component_that_is_no_lock_package_depends_on_the_lock_roots() {
        let dir = tempfile::tempdir().unwrap();
        let lock_path = dir.path().join("Cargo.lock");
        std::fs::write(&lock_path, LOCK).unwrap();
        let bare = wat::parse_str("(component)").unwrap();
        let mut i = inputs(vec![component(
            "other",
            "components/other.wasm",
            &bare,
            DIGEST_A,
        )]);
        i.cargo_lock = Some(&lock_path);
        let doc = json_of(&generate(&i).unwrap());
        assert_eq!(
            depends_on(&doc, "components/other.wasm").unwrap(),
            ["cargo:local/hello@0.1.0"]
        );
        let hello = find(&doc, "cargo:local/hello@0.1.0");
        assert_eq!(hello["type"], "library");
        assert!(
            hello.get("purl").is_none(),
            "a local package has no crates.io purl"
        );
        assert_eq!(
            depends_on(&doc, "cargo:local/hello@0.1.0").unwrap(),
            [
                "pkg:cargo/serde@1.0.200",
                "pkg:cargo/wit-bindgen@0.40.0%2Bwasi-0.2"
            ]
        );
    }

    #[test]
    fn a_malformed_lock_or_digest_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let lock_path = dir.path().join("Cargo.lock");
        std::fs::write(
            &lock_path,
            LOCK.replace("\"serde 1.0.200\"", "\"serde 2.0.0\""),
        )
        .unwrap();
        let bare = wat::parse_str("(component)").unwrap();
        let mut i = inputs(vec![component(
            "hello",
            "components/hello.wasm",
            &bare,
            DIGEST_A,
        )]);
        i.cargo_lock = Some(&lock_path);
        let err = generate(&i).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: package[2] (wit-bindgen 0.40.0+wasi-0.2, line 17): dependencies[0] \"serde 2.0.0\": names no package in the lock file",
                lock_path.display()
            )
        );

        let i = inputs(vec![component(
            "hello",
            "components/hello.wasm",
            &bare,
            "abc",
        )]);
        let err = generate(&i).unwrap_err().to_string();
        assert_eq!(
            err,
            "components/hello.wasm: digest \"abc\" is not a SHA-256 digest in hex"
        );
    }

    #[test]
    fn a_dep_section_pointing_past_its_packages_is_an_error_naming_the_member() {
        let wasm = component_around(&core_module(Some(
            r#"{"packages":[{"name":"root","version":"0.1.0","source":"local","dependencies":[3],"root":true}]}"#,
        )));
        let err = generate(&inputs(vec![component(
            "hello",
            "components/hello.wasm",
            &wasm,
            DIGEST_A,
        )]))
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "components/hello.wasm: `.dep-v0` section: packages[0] depends on packages[3], which does not exist"
        );
    }

    /// A package with everything checks out as a supplied SBOM would; with `WASMZIP_SBOM_SAMPLES` set
    /// to a folder, the samples are written there for an outside schema check.
    #[test]
    fn a_full_sbom_passes_the_supplied_sbom_checks() {
        let dir = tempfile::tempdir().unwrap();
        let lock_path = dir.path().join("Cargo.lock");
        std::fs::write(&lock_path, LOCK).unwrap();
        let rich = with_oci_metadata(&component_around(&core_module(Some(DEP_V0))));
        let bare = wat::parse_str("(component)").unwrap();
        let mut i = inputs(vec![
            component("audited", "components/audited.wasm", &rich, DIGEST_B),
            component("hello", "components/hello.wasm", &bare, DIGEST_A),
        ]);
        i.resources = vec![ResourceInput {
            member: "resources/static/index.html",
            size: 1234,
            sha256: DIGEST_B,
        }];
        i.models = vec![ModelInput {
            name: "mobilenet",
            member: "resources/models/mobilenet.onnx",
            encoding: "onnx",
            sha256: DIGEST_A,
        }];
        i.cargo_lock = Some(&lock_path);
        let full = generate(&i).unwrap();
        let inventory = crate::sbom::validate_supplied(&full, "full").unwrap();
        let mut kinds: Vec<(&str, &str)> = inventory
            .items
            .iter()
            .map(|i| (i.kind.as_str(), i.name.as_str()))
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                ("application", "audited"),
                ("application", "hello"),
                ("file", "resources/static/index.html"),
                ("library", "serde"),
                ("library", "wit-bindgen"),
                ("machine-learning-model", "mobilenet")
            ]
        );
        let minimal = generate(&inputs(vec![component(
            "hello",
            "components/hello.wasm",
            &bare,
            DIGEST_A,
        )]))
        .unwrap();
        assert_eq!(
            crate::sbom::validate_supplied(&minimal, "minimal")
                .unwrap()
                .items
                .len(),
            1
        );
        if let Some(out) = std::env::var_os("WASMZIP_SBOM_SAMPLES") {
            let out = std::path::PathBuf::from(out);
            std::fs::write(out.join("full.cdx.json"), &full).unwrap();
            std::fs::write(out.join("minimal.cdx.json"), &minimal).unwrap();
        }
    }
}
