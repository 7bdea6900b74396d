//! One component handed out by a verified package: the verified bytes with everything the runtime
//! needs to plan it (world, requested capabilities, limits, routes, the package's models and
//! resources). Only [`VerifiedPackage`](crate::VerifiedPackage) makes one from a package; a bare
//! `.wasm` given for development becomes one through [`VerifiedComponent::unpackaged`], which
//! requests nothing and is marked as such.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::capability::Capability;
use crate::manifest::{Limits, ModelTarget, Name, Reuse, RoutePrefix, World};
use crate::verify::{ResourcesHold, Signer};

/// Where a component came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A verified package.
    Package {
        /// Package name.
        name: Name,
        /// Package version.
        version: semver::Version,
        /// The package digest (SHA-256 of `manifest.json`).
        digest: String,
        /// Who signed it.
        signer: Signer,
    },
    /// A bare `.wasm` file given for development: nothing signed, nothing requested.
    Unpackaged {
        /// The file it was read from.
        path: PathBuf,
    },
}

/// A model shipped in the component's package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagedModel {
    /// The name guests load it by.
    pub name: Name,
    /// Its file in the package's extracted resources.
    pub path: PathBuf,
    /// Its size as pinned in the manifest.
    pub size: u64,
    /// Where the manifest says it runs.
    pub target: ModelTarget,
}

/// A component whose bytes, manifest entry and package were verified, ready to be planned.
#[derive(Debug, Clone)]
pub struct VerifiedComponent {
    source: ComponentSource,
    name: String,
    bytes: Arc<[u8]>,
    digest: String,
    world: Option<World>,
    capabilities: Vec<Capability>,
    limits: Limits,
    reuse: Option<Reuse>,
    routes: Vec<RoutePrefix>,
    resources_dir: Option<PathBuf>,
    /// Keeps the extracted resources from being pruned while this component lives.
    _resources_hold: Option<Arc<ResourcesHold>>,
    models: Vec<PackagedModel>,
}

/// The parts of a packaged component, as verification found them.
pub(crate) struct PackagedParts {
    pub source: ComponentSource,
    pub name: String,
    pub bytes: Arc<[u8]>,
    pub digest: String,
    pub world: World,
    pub capabilities: Vec<Capability>,
    pub limits: Limits,
    pub reuse: Option<Reuse>,
    /// The routes in force (see [`ComponentEntry::effective_routes`](crate::manifest::ComponentEntry::effective_routes)).
    pub routes: Vec<RoutePrefix>,
    pub resources_dir: Option<PathBuf>,
    pub resources_hold: Option<Arc<ResourcesHold>>,
    pub models: Vec<PackagedModel>,
}

impl VerifiedComponent {
    pub(crate) fn from_package(parts: PackagedParts) -> Self {
        VerifiedComponent {
            source: parts.source,
            name: parts.name,
            bytes: parts.bytes,
            digest: parts.digest,
            world: Some(parts.world),
            capabilities: parts.capabilities,
            limits: parts.limits,
            reuse: parts.reuse,
            routes: parts.routes,
            resources_dir: parts.resources_dir,
            _resources_hold: parts.resources_hold,
            models: parts.models,
        }
    }

    /// A bare `.wasm` (component or preview-1 module) read from `path` for development: it requests
    /// nothing (the operator's grants alone decide), has no limits of its own, and its world is
    /// detected from its exports. Callers decide whether unsigned code may run at all.
    pub fn unpackaged(path: &Path, bytes: Vec<u8>) -> Self {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "wasm".into());
        VerifiedComponent {
            digest: crate::sha256_hex(&bytes),
            source: ComponentSource::Unpackaged { path: path.to_path_buf() },
            name,
            bytes: bytes.into(),
            world: None,
            capabilities: Vec::new(),
            limits: Limits::default(),
            reuse: None,
            routes: vec![RoutePrefix::parse("/").expect("`/` is a route")],
            resources_dir: None,
            _resources_hold: None,
            models: Vec::new(),
        }
    }

    /// Where it came from.
    pub fn source(&self) -> &ComponentSource {
        &self.source
    }

    /// The component's name in its package (a bare file's stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The program name a command sees as its first argument: the component's name in its package,
    /// or a bare file's name (`hello.wasm`, as Wasmtime passes it).
    pub fn program_name(&self) -> String {
        match &self.source {
            ComponentSource::Package { .. } => self.name.clone(),
            ComponentSource::Unpackaged { path } => {
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| self.name.clone())
            }
        }
    }

    /// The function it belongs to: the package name (a bare file's stem).
    pub fn function_name(&self) -> &str {
        match &self.source {
            ComponentSource::Package { name, .. } => name.as_str(),
            ComponentSource::Unpackaged { .. } => &self.name,
        }
    }

    /// The package version, if packaged.
    pub fn version(&self) -> Option<&semver::Version> {
        match &self.source {
            ComponentSource::Package { version, .. } => Some(version),
            ComponentSource::Unpackaged { .. } => None,
        }
    }

    /// The package digest; for a bare file, the SHA-256 of its bytes.
    pub fn package_digest(&self) -> &str {
        match &self.source {
            ComponentSource::Package { digest, .. } => digest,
            ComponentSource::Unpackaged { .. } => &self.digest,
        }
    }

    /// Who signed the package, or `Unsigned`.
    pub fn signer(&self) -> Signer {
        match &self.source {
            ComponentSource::Package { signer, .. } => *signer,
            ComponentSource::Unpackaged { .. } => Signer::Unsigned,
        }
    }

    /// `name@version` for audit lines and logs (a bare file's name).
    pub fn subject(&self) -> String {
        match &self.source {
            ComponentSource::Package { name, version, .. } => format!("{name}@{version}"),
            ComponentSource::Unpackaged { .. } => self.name.clone(),
        }
    }

    /// How errors name it: ``component `NAME` of PACKAGE VERSION``, or the file.
    pub fn description(&self) -> String {
        match &self.source {
            ComponentSource::Package { name, version, .. } => format!("component `{}` of {name} {version}", self.name),
            ComponentSource::Unpackaged { path } => path.display().to_string(),
        }
    }

    /// The verified bytes (empty once planned: see [`VerifiedComponent::without_bytes`]).
    pub fn bytes(&self) -> &Arc<[u8]> {
        &self.bytes
    }

    /// The same component without its bytes, for keeping once its code is compiled: the bytes of a
    /// component with debug info are megabytes that nothing reads again.
    pub fn without_bytes(mut self) -> Self {
        self.bytes = Arc::from(Vec::new());
        self
    }

    /// SHA-256 of the bytes (the compile cache's key).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The world its manifest declares; `None` for a bare file (detect it from the component).
    pub fn declared_world(&self) -> Option<World> {
        self.world
    }

    /// The capabilities it requests.
    pub fn requested(&self) -> &[Capability] {
        &self.capabilities
    }

    /// Its manifest limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Its instance reuse settings, if the manifest has any.
    pub fn reuse(&self) -> Option<Reuse> {
        self.reuse
    }

    /// Routes it serves (`http`): the declared ones, else `/PACKAGE`; a bare file serves `/`.
    pub fn routes(&self) -> &[RoutePrefix] {
        &self.routes
    }

    /// The package's verified resources, extracted (none for a package without resources).
    pub fn resources_dir(&self) -> Option<&Path> {
        self.resources_dir.as_deref()
    }

    /// The models its package ships.
    pub fn models(&self) -> &[PackagedModel] {
        &self.models
    }
}
