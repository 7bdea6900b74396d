//! CycloneDX SBOMs for packages: [`generate`] writes one from what `pack` knows (the members, the
//! metadata sections inside each component, cargo-auditable's `.dep-v0` section, a `Cargo.lock`);
//! [`validate_supplied`] checks one an author supplies; [`read_inventory`] reads an embedded one back for
//! a deploy policy.
//!
//! The SBOM `pack` writes is CycloneDX 1.5 JSON, deterministic (no timestamp; the serial number is a
//! name-based UUID of the package's name, version and member digests), and states only what is written
//! in the inputs: no licence or version is guessed. Supplied SBOMs may be CycloneDX 1.4, 1.5 or 1.6.

use std::path::PathBuf;

mod generate;
mod lock;
mod read;

/// CycloneDX versions accepted in an author-supplied or embedded SBOM.
pub const SUPPORTED_SPEC_VERSIONS: &[&str] = &["1.4", "1.5", "1.6"];
/// The CycloneDX version of the SBOM [`generate`] writes.
pub const GENERATED_SPEC_VERSION: &str = "1.5";
/// Largest SBOM read ([`validate_supplied`], [`read_inventory`]).
pub const MAX_SBOM_SIZE: usize = 16 * 1024 * 1024;
/// Largest `Cargo.lock` read for `pack --sbom-from`.
pub const MAX_CARGO_LOCK_SIZE: u64 = 16 * 1024 * 1024;

/// Everything `pack` knows about the package, to describe it.
#[derive(Debug, Clone)]
pub struct SbomInputs<'a> {
    /// The package name.
    pub package_name: &'a str,
    /// The package version (SemVer text).
    pub package_version: &'a str,
    /// The package description, when the author gave one.
    pub description: Option<&'a str>,
    /// The wasm components, in name order.
    pub components: Vec<ComponentInput<'a>>,
    /// The pinned resource members (models excluded).
    pub resources: Vec<ResourceInput<'a>>,
    /// The models.
    pub models: Vec<ModelInput<'a>>,
    /// A `Cargo.lock` describing the components' dependencies (`pack --sbom-from Cargo.lock`).
    pub cargo_lock: Option<&'a std::path::Path>,
}

/// One wasm component of the package.
#[derive(Debug, Clone)]
pub struct ComponentInput<'a> {
    /// The component name.
    pub name: &'a str,
    /// Its member, `components/NAME.wasm`.
    pub member: &'a str,
    /// The component binary, whose metadata sections are read.
    pub bytes: &'a [u8],
    /// SHA-256 of `bytes`, lower-case hex.
    pub sha256: &'a str,
    /// Its world, `cli` or `http`.
    pub world: &'a str,
}

/// One pinned resource member.
#[derive(Debug, Clone)]
pub struct ResourceInput<'a> {
    /// The member, `resources/PATH`.
    pub member: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: &'a str,
}

/// One model of the package.
#[derive(Debug, Clone)]
pub struct ModelInput<'a> {
    /// The model name.
    pub name: &'a str,
    /// Its member.
    pub member: &'a str,
    /// Its encoding (`onnx`, ...).
    pub encoding: &'a str,
    /// Its SHA-256, lower-case hex.
    pub sha256: &'a str,
}

/// What a policy checks: every component the SBOM lists (the wasm components, their dependencies,
/// resources, models), nested components flattened in document order. The SBOM's subject
/// (`metadata.component`) is not an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// The SBOM's `specVersion`.
    pub spec_version: String,
    /// The components listed.
    pub items: Vec<InventoryItem>,
}

/// One component an SBOM lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InventoryItem {
    /// Its `bom-ref`, when it has one.
    pub bom_ref: Option<String>,
    /// The CycloneDX component `type`: `application`, `library`, `file`, `machine-learning-model`, ...
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its version, when the SBOM gives one.
    pub version: Option<String>,
    /// Its package URL, e.g. `pkg:cargo/serde@1.0.200`.
    pub purl: Option<String>,
    /// Its licences, each an SPDX id, an SPDX expression, or a licence name as written.
    pub licenses: Vec<String>,
}

impl InventoryItem {
    /// `NAME@VERSION` (or `NAME`), how a policy's refusal names it.
    pub fn id(&self) -> String {
        match &self.version {
            Some(v) => format!("{}@{v}", self.name),
            None => self.name.clone(),
        }
    }

    /// How messages name it: ``dependency `foo 1.0.0` `` (a `library`, or an item of no type, is a
    /// dependency).
    pub fn describe(&self) -> String {
        let kind = if self.kind.is_empty() || self.kind == "library" { "dependency" } else { self.kind.as_str() };
        match &self.version {
            Some(v) => format!("{kind} `{} {v}`", self.name),
            None => format!("{kind} `{}` (no version)", self.name),
        }
    }
}

/// Why an SBOM could not be generated, validated or read. Each variant names the file, member or JSON
/// location at fault.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// The SBOM is not JSON.
    #[error("{label}: not JSON: {message}")]
    NotJson {
        /// The SBOM file (or member).
        label: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The SBOM is larger than [`MAX_SBOM_SIZE`].
    #[error("{label}: {size} bytes, more than the {MAX_SBOM_SIZE} byte limit for an SBOM")]
    TooLarge {
        /// The SBOM file (or member).
        label: String,
        /// Its size.
        size: usize,
    },
    /// `bomFormat` is not `CycloneDX`.
    #[error("{label}: bomFormat: expected \"CycloneDX\", found {found}")]
    NotCycloneDx {
        /// The SBOM file (or member).
        label: String,
        /// What was found, as JSON.
        found: String,
    },
    /// `specVersion` is one this crate does not read.
    #[error("{label}: specVersion: {found} is not supported (supported: {})", SUPPORTED_SPEC_VERSIONS.join(", "))]
    UnsupportedSpecVersion {
        /// The SBOM file (or member).
        label: String,
        /// What was found, as JSON.
        found: String,
    },
    /// The SBOM breaks a rule of the CycloneDX specification.
    #[error("{label}: {location}: {message}")]
    Invalid {
        /// The SBOM file (or member).
        label: String,
        /// Where, as a JSON path: `components[3].bom-ref`, `dependencies[0].dependsOn[1]`.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A component's metadata sections cannot be read.
    #[error("{member}: {message}")]
    ComponentMetadata {
        /// The component member.
        member: String,
        /// What is wrong.
        message: String,
    },
    /// The `Cargo.lock` cannot be read.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error (shown in the message, so not chained as a source).
        error: std::io::Error,
    },
    /// The `Cargo.lock` is malformed.
    #[error("{}: {location}{message}", path.display())]
    CargoLock {
        /// The lock file.
        path: PathBuf,
        /// Where, `package[3] (serde 1.0.200, line 40): `, or empty when the message says.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// An input handed to [`generate`] is unusable (a digest that is not SHA-256 hex, two members
    /// with one name).
    #[error("{what}: {message}")]
    Input {
        /// The input at fault.
        what: String,
        /// What is wrong.
        message: String,
    },
}

/// Generates the package's SBOM (CycloneDX 1.5 JSON, pretty-printed, ending in a newline): the same
/// inputs give the same bytes.
pub fn generate(inputs: &SbomInputs<'_>) -> Result<Vec<u8>, SbomError> {
    generate::generate(inputs)
}

/// Checks an author-supplied SBOM (`[sbom] file` in `wasmzip.toml`) and returns what it lists; the
/// caller embeds the bytes unchanged. `label` is the file path for error messages.
pub fn validate_supplied(bytes: &[u8], label: &str) -> Result<Inventory, SbomError> {
    read::validate_supplied(bytes, label)
}

/// Reads an embedded SBOM back (at verify or deploy time) into what a deploy policy needs. It accepts
/// what [`generate`] writes and what [`validate_supplied`] accepts, without validating again.
pub fn read_inventory(bytes: &[u8]) -> Result<Inventory, SbomError> {
    read::read_inventory(bytes, crate::manifest::SBOM_MEMBER)
}
