//! The one path from a verified component to something that can be instantiated: the operator's
//! grants resolved against what the component requests, warnings decided, each capability unit
//! planned (models loaded, keystore opened), the code compiled (or loaded from the compile cache)
//! and pre-instantiated against the one linker. `wasmzip run` and `wasmzip serve` both plan here,
//! once per component (per deployed version), and then only make stores.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, InstancePre};
use wasmzip_keystore::Keystore;
use crate::capabilities::nn::{NnConfig, NnError};
use wasmzip_package::manifest::World;
use wasmzip_package::{Capability, ComponentSource, Signer, VerifiedComponent, resolve};

use crate::RuntimeError;
use crate::capabilities::filesystem::Mount;
use crate::capabilities::{CapabilityError, PlannedCapabilities};
use crate::engine::{CacheOutcome, EngineKind, Program, Runtime};
use crate::inspect::{WasiVersion, component_world};
use crate::instance::{InstanceState, ModuleState};
use crate::limits::GuestLimits;
use crate::precompiled::{Artefact, ArtefactError};

/// What the operator grants a component.
#[derive(Debug, Clone, Default)]
pub struct OperatorGrants {
    /// Granted tokens.
    pub tokens: Vec<Capability>,
    /// Grant everything the component requests as well.
    pub grant_requested: bool,
}

/// Opens the keystore for a component granted keys.
pub type OpenKeystore = Arc<dyn Fn() -> Result<Arc<dyn Keystore>, String> + Send + Sync>;

/// Where keys come from, for components granted `crypto:key:` tokens.
#[derive(Clone, Default)]
pub enum KeystoreSource {
    /// No keystore is configured: planning a component granted keys fails.
    #[default]
    None,
    /// An open keystore shared by every component.
    Open(Arc<dyn Keystore>),
    /// Opened only when a component is granted keys (so others need no passphrase or PIN).
    OnDemand(OpenKeystore),
}

impl KeystoreSource {
    /// The keystore for `what` (a component description, for the error).
    pub(crate) fn open(&self, what: &str) -> Result<Arc<dyn Keystore>, PlanError> {
        match self {
            KeystoreSource::None => Err(PlanError::NoKeystore(what.to_string())),
            KeystoreSource::Open(keystore) => Ok(keystore.clone()),
            KeystoreSource::OnDemand(open) => open().map_err(PlanError::Keystore),
        }
    }
}

impl std::fmt::Debug for KeystoreSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeystoreSource::None => "None",
            KeystoreSource::Open(_) => "Open",
            KeystoreSource::OnDemand(_) => "OnDemand",
        })
    }
}

/// What the operator provides to the components it plans: directory mappings, variable values,
/// keys, model settings and limits.
#[derive(Debug, Clone, Default)]
pub struct HostResources {
    /// Guest directory mappings (`--mount`).
    pub mounts: Vec<Mount>,
    /// Values for granted environment variables (`--env`), before the host's environment.
    pub env: Vec<(String, String)>,
    /// The keystore behind `crypto:key:` grants.
    pub keystore: KeystoreSource,
    /// How models are loaded.
    pub nn: NnConfig,
    /// Most model bytes one component may load.
    pub max_model_bytes: u64,
    /// The operator's limits; they only lower the manifest's.
    pub limits: GuestLimits,
    /// The largest memory limit a manifest may ask for (the pool's slot size under `serve`).
    pub memory_ceiling: Option<u64>,
    /// Code compiled ahead of time for the component's package (`--precompiled`), loaded instead of
    /// compiling once every binding of it checks out.
    pub precompiled: Option<Arc<Artefact>>,
}

/// Something the operator should hear about, decided once when a component is planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanWarning {
    /// The package carries no signature (accepted because the operator allowed it).
    Unsigned,
    /// Requested capabilities no grant covers: the component runs without them.
    NotGranted(Vec<Capability>),
    /// A `--mount` that no effective capability uses (a mount grants nothing by itself).
    UnusedMount(Mount),
}

impl std::fmt::Display for PlanWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanWarning::Unsigned => f.write_str("running an unsigned package (accepted: --allow-unsigned)"),
            PlanWarning::NotGranted(caps) => {
                let list: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
                write!(f, "not granted, so the guest runs without: {}", list.join(", "))
            }
            PlanWarning::UnusedMount(m) => write!(f, "--mount {}={} is not used by any effective capability", m.guest, m.host.display()),
        }
    }
}

/// Why a component could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The component is not of the world the caller runs.
    #[error("{what} {found}, which `{command}` cannot run")]
    World {
        /// The component.
        what: String,
        /// What it is, in words.
        found: String,
        /// `wasmzip run` or `wasmzip serve`.
        command: &'static str,
    },
    /// `--grant-requested` for a bare `.wasm`, which requests nothing.
    #[error("--grant-requested needs a package; a bare .wasm requests nothing, so grant with --grant")]
    GrantRequestedBare,
    /// The manifest asks for more memory than this host allows any component.
    #[error("{what} asks for {requested} bytes of memory; this server allows at most {ceiling} (--max-memory)")]
    Memory {
        /// The component.
        what: String,
        /// Requested bytes.
        requested: u64,
        /// The ceiling.
        ceiling: u64,
    },
    /// The component is granted keys but no keystore is configured.
    #[error("{0} is granted keys, but no keystore is configured (--keystore-dir or --pkcs11-module)")]
    NoKeystore(String),
    /// The keystore could not be opened.
    #[error("cannot open the keystore: {0}")]
    Keystore(String),
    /// A model could not be loaded.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// A capability could not be put in place.
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    /// Compiling or linking failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A precompiled artefact does not fit (another package, target or engine) or is damaged.
    #[error(transparent)]
    Precompiled(#[from] ArtefactError),
}

/// What each capability unit's planning sees.
pub struct PlanContext<'a> {
    /// The component being planned.
    pub component: &'a VerifiedComponent,
    /// Its effective capabilities: requested and granted.
    pub effective: &'a [Capability],
    /// What the operator provides.
    pub host: &'a HostResources,
    /// Warnings for the operator.
    pub warnings: &'a mut Vec<PlanWarning>,
}

/// How a planned component is entered.
pub enum Entrypoint {
    /// A WASI preview-1 command module (`_start`).
    Preview1(wasmtime::InstancePre<ModuleState>),
    /// A WASI 0.2 command (`wasi:cli/run@0.2`).
    CommandP2(wasmtime_wasi::p2::bindings::CommandPre<InstanceState>),
    /// A WASI 0.3 command (`wasi:cli/run@0.3`).
    CommandP3(wasmtime_wasi::p3::bindings::CommandPre<InstanceState>),
    /// A WASI 0.2 HTTP handler (`wasi:http/incoming-handler@0.2`).
    HttpP2(wasmtime_wasi_http::p2::bindings::ProxyPre<InstanceState>),
    /// A WASI 0.3 HTTP handler (`wasi:http/handler@0.3`).
    HttpP3(wasmtime_wasi_http::p3::bindings::ServicePre<InstanceState>),
}

impl Entrypoint {
    /// The world it serves.
    pub fn world(&self) -> World {
        match self {
            Entrypoint::Preview1(_) | Entrypoint::CommandP2(_) | Entrypoint::CommandP3(_) => World::Cli,
            Entrypoint::HttpP2(_) | Entrypoint::HttpP3(_) => World::Http,
        }
    }

    /// The WASI version of its entry point.
    pub fn wasi(&self) -> WasiVersion {
        match self {
            Entrypoint::Preview1(_) => WasiVersion::Preview1,
            Entrypoint::CommandP2(_) | Entrypoint::HttpP2(_) => WasiVersion::P2,
            Entrypoint::CommandP3(_) | Entrypoint::HttpP3(_) => WasiVersion::P3,
        }
    }
}

/// A component planned for this host: effective capabilities, limits, every capability unit's
/// shared state, and its pre-instantiated code. Cheap to share; each instance only makes a store.
pub struct PlannedComponent {
    component: VerifiedComponent,
    engine: wasmtime::Engine,
    engine_kind: EngineKind,
    effective: Vec<Capability>,
    limits: GuestLimits,
    entry: Entrypoint,
    capabilities: PlannedCapabilities,
    warnings: Vec<PlanWarning>,
    cache: CacheOutcome,
}

impl PlannedComponent {
    /// The verified component it was planned from (its bytes dropped once compiled).
    pub fn component(&self) -> &VerifiedComponent {
        &self.component
    }

    /// The engine its code was compiled for: every store of it is made there.
    pub fn engine(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// Which of the runtime's engines that is.
    pub fn engine_kind(&self) -> EngineKind {
        self.engine_kind
    }

    /// Its effective capabilities.
    pub fn effective(&self) -> &[Capability] {
        &self.effective
    }

    /// Memory and time limits: the manifest's lowered by the operator's.
    pub fn limits(&self) -> GuestLimits {
        self.limits
    }

    /// How it is entered.
    pub fn entry(&self) -> &Entrypoint {
        &self.entry
    }

    /// Every capability unit's planned state.
    pub fn capabilities(&self) -> &PlannedCapabilities {
        &self.capabilities
    }

    /// Warnings for the operator (the caller prints or logs them).
    pub fn warnings(&self) -> &[PlanWarning] {
        &self.warnings
    }

    /// Whether its code came from the compile cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }
}

/// Plans `component` for `world` under `grants`, with what `host` provides. Blocking: models load
/// and code compiles here.
pub fn plan(
    runtime: &Runtime,
    component: VerifiedComponent,
    world: World,
    grants: &OperatorGrants,
    host: &HostResources,
) -> Result<PlannedComponent, PlanError> {
    let command = match world {
        World::Cli => "wasmzip run",
        World::Http => "wasmzip serve",
    };
    let unpackaged = matches!(component.source(), ComponentSource::Unpackaged { .. });
    if unpackaged && grants.grant_requested {
        return Err(PlanError::GrantRequestedBare);
    }
    let kind = GuestKind::detect(&component)?;
    if kind.world() != Some(world) {
        return Err(PlanError::World { what: component.description(), found: kind.describe(), command });
    }
    if let Some(declared) = component.declared_world()
        && declared != world
    {
        return Err(PlanError::World { what: component.description(), found: format!("targets world `{declared}`"), command });
    }

    let mut warnings = Vec::new();
    if !unpackaged && component.signer() == Signer::Unsigned {
        warnings.push(PlanWarning::Unsigned);
    }
    let mut granted = grants.tokens.clone();
    if grants.grant_requested {
        granted.extend(component.requested().iter().cloned());
    }
    // A bare file requests nothing: what the operator grants is what it gets.
    let effective = if unpackaged {
        granted
    } else {
        let resolution = resolve(component.requested(), &granted);
        if !resolution.uncovered.is_empty() {
            warnings.push(PlanWarning::NotGranted(resolution.uncovered));
        }
        resolution.effective
    };

    let manifest = component.limits();
    if let (Some(requested), Some(ceiling)) = (manifest.memory_bytes, host.memory_ceiling)
        && requested > ceiling
    {
        return Err(PlanError::Memory { what: component.description(), requested, ceiling });
    }
    let mut limits = GuestLimits { memory_bytes: manifest.memory_bytes, timeout: manifest.timeout_ms.map(Duration::from_millis) }
        .lowered_by(host.limits);
    if let Some(ceiling) = host.memory_ceiling {
        limits.memory_bytes = Some(limits.memory_limit().min(ceiling));
    }

    let capabilities = PlannedCapabilities::plan(&mut PlanContext { component: &component, effective: &effective, host, warnings: &mut warnings })?;
    let what = component.description();
    let (engine, program, cache) = match &host.precompiled {
        Some(artefact) => {
            let (engine, program) = artefact.load(runtime, &component)?;
            (engine, program, CacheOutcome::Precompiled)
        }
        None => {
            let loaded = on_its_engine(kind.engine(), |engine| runtime.load_program(engine, component.bytes(), component.digest(), &what))?;
            (loaded.0, loaded.1.0, loaded.1.1)
        }
    };
    let entry = kind.entry(runtime, engine, program, &what)?;
    let component = component.without_bytes();
    Ok(PlannedComponent { component, effective, limits, engine: runtime.engine(engine)?.clone(), engine_kind: engine, entry, capabilities, warnings, cache })
}

/// Runs `compile` for the engine a component needs: the concurrent one for WASI 0.3, else the plain
/// one, falling back to the concurrent one (a component may use the component model's async features
/// without any WASI 0.3 interface; only the concurrent engine compiles it then).
fn on_its_engine<T>(needed: EngineKind, compile: impl Fn(EngineKind) -> Result<T, RuntimeError>) -> Result<(EngineKind, T), RuntimeError> {
    match needed {
        EngineKind::Concurrent => Ok((EngineKind::Concurrent, compile(EngineKind::Concurrent)?)),
        EngineKind::Plain => match compile(EngineKind::Plain) {
            Ok(done) => Ok((EngineKind::Plain, done)),
            Err(plain) => compile(EngineKind::Concurrent).map(|done| (EngineKind::Concurrent, done)).map_err(|_| plain),
        },
    }
}

/// Compiles a verified component for the engine it will run on (as [`plan`] would pick it), for a
/// precompiled artefact: the code for `runtime`'s target, whatever machine this is.
#[cfg(feature = "cranelift")]
pub fn precompile(runtime: &Runtime, component: &VerifiedComponent) -> Result<crate::precompiled::CompiledCode, PlanError> {
    let kind = GuestKind::detect(component)?;
    let what = component.description();
    let (engine, (artifact, code)) = on_its_engine(kind.engine(), |engine| runtime.precompile(engine, component.bytes(), &what))?;
    let kind = match artifact {
        crate::cache::ArtifactKind::Component => crate::precompiled::CodeKind::Component,
        crate::cache::ArtifactKind::Module => crate::precompiled::CodeKind::Module,
    };
    Ok(crate::precompiled::CompiledCode { name: component.name().to_string(), digest: component.digest().to_string(), kind, engine, code })
}

/// What a component is, from its exports, before anything is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GuestKind {
    Preview1,
    Command(WasiVersion),
    Http(WasiVersion),
    Neither,
}

/// What a component is and which engine it needs.
#[derive(Debug, Clone, Copy)]
struct Detected {
    kind: GuestKind,
    uses_p3: bool,
}

impl Detected {
    fn world(self) -> Option<World> {
        self.kind.world()
    }

    fn describe(self) -> String {
        self.kind.describe()
    }

    fn engine(self) -> EngineKind {
        if self.uses_p3 { EngineKind::Concurrent } else { EngineKind::Plain }
    }

    fn entry(self, runtime: &Runtime, engine: EngineKind, program: Program, what: &str) -> Result<Entrypoint, RuntimeError> {
        self.kind.entry(runtime, engine, program, what)
    }
}

impl GuestKind {
    fn detect(component: &VerifiedComponent) -> Result<Detected, PlanError> {
        let bytes = component.bytes();
        if wasmparser::Parser::is_core_wasm(bytes) {
            return Ok(Detected { kind: GuestKind::Preview1, uses_p3: false });
        }
        let world = component_world(bytes)?;
        let uses_p3 = world.wasi_versions().contains(&WasiVersion::P3);
        let exports = |prefix: &str| world.exports.iter().any(|e| e.starts_with(prefix));
        // A component that exports both generations is entered through 0.3, as Wasmtime does.
        let kind = if exports("wasi:http/handler@0.3") {
            GuestKind::Http(WasiVersion::P3)
        } else if exports("wasi:http/incoming-handler@0.2") {
            GuestKind::Http(WasiVersion::P2)
        } else if exports("wasi:cli/run@0.3") {
            GuestKind::Command(WasiVersion::P3)
        } else if exports("wasi:cli/run@0.2") {
            GuestKind::Command(WasiVersion::P2)
        } else {
            GuestKind::Neither
        };
        Ok(Detected { kind, uses_p3 })
    }

    fn world(self) -> Option<World> {
        match self {
            GuestKind::Preview1 | GuestKind::Command(_) => Some(World::Cli),
            GuestKind::Http(_) => Some(World::Http),
            GuestKind::Neither => None,
        }
    }

    fn describe(self) -> String {
        match self {
            GuestKind::Preview1 => "is a WASI preview-1 module".into(),
            GuestKind::Command(v) => format!("is a WASI {v} command (wasi:cli/run)"),
            GuestKind::Http(v) => format!("is a WASI {v} HTTP handler"),
            GuestKind::Neither => "exports neither wasi:cli/run nor a wasi:http handler".into(),
        }
    }

    fn entry(self, runtime: &Runtime, engine: EngineKind, program: Program, what: &str) -> Result<Entrypoint, RuntimeError> {
        let link = |e: wasmtime::Error| RuntimeError::Link(format!("{what}: {e:#}"));
        let component_pre = |component: &Component| -> Result<InstancePre<InstanceState>, RuntimeError> {
            runtime.linker(engine)?.instantiate_pre(component).map_err(link)
        };
        Ok(match (self, program) {
            (GuestKind::Preview1, Program::Module(module)) => {
                Entrypoint::Preview1(runtime.module_linker(engine)?.instantiate_pre(&module).map_err(link)?)
            }
            (GuestKind::Command(WasiVersion::P3), Program::Component(c)) => {
                Entrypoint::CommandP3(wasmtime_wasi::p3::bindings::CommandPre::new(component_pre(&c)?).map_err(link)?)
            }
            (GuestKind::Command(_), Program::Component(c)) => {
                Entrypoint::CommandP2(wasmtime_wasi::p2::bindings::CommandPre::new(component_pre(&c)?).map_err(link)?)
            }
            (GuestKind::Http(WasiVersion::P3), Program::Component(c)) => {
                Entrypoint::HttpP3(wasmtime_wasi_http::p3::bindings::ServicePre::new(component_pre(&c)?).map_err(link)?)
            }
            (GuestKind::Http(_), Program::Component(c)) => {
                Entrypoint::HttpP2(wasmtime_wasi_http::p2::bindings::ProxyPre::new(component_pre(&c)?).map_err(link)?)
            }
            _ => return Err(RuntimeError::Link(format!("{what} {}", self.describe()))),
        })
    }
}
