//! The live set of functions and every change to it: deploy, roll back, remove, and start-up from the
//! deployment store. Changes are serialised; each one is made durable (package first, then the
//! deployment record) before the new set takes over, and requests already running keep the version
//! they started on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use wasmzip_keystore::Keystore;
use wasmzip_nn::{NnConfig, NnError};
use wasmzip_package::manifest::World;
use wasmzip_package::{AdmitError, Capability, PackageError, PackageFacts, ResourceSink, TokenError, TrustPolicy};
use wasmzip_runtime::capabilities::filesystem::Mount;
use wasmzip_runtime::{Entrypoint, GuestLimits, HostResources, KeystoreSource, OperatorGrants, PlanError, Runtime, RuntimeError, plan};

use crate::function::{Handler, HttpLimits, LoadedFunction, OperatorLimits};
use crate::reuse::{PoolSlots, ReuseLimits, Service, ThreadHandlers};
use crate::metrics::Metrics;
use crate::routing::{RouteConflict, RouteTable};
use crate::spare::SpareSlot;
use crate::desired::{DesiredError, DesiredState};
use crate::packages::{PackageStorage, StorageError};
use crate::store::{DeployedVersion, DeploymentState, FunctionRecord, LocalBackend, StoreError};

/// Why a deployment change was refused. Nothing changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The package is malformed, tampered or untrusted.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// A model could not be loaded.
    #[error(transparent)]
    Model(#[from] NnError),
    /// The deployment is granted keys but the server has no keystore.
    #[error("{0} is granted crypto:key capabilities but this server has no keystore (start it with --keystore-dir or --keystore pkcs11)")]
    NoKeystore(String),
    /// The component cannot be served here.
    #[error("{0}")]
    Unsupported(String),
    /// The component could not be planned: its grants, models or code.
    #[error(transparent)]
    Plan(PlanError),
    /// The manifest asks for more memory than a pool slot holds.
    #[error("component asks for {requested} bytes of memory, more than this server's ceiling of {ceiling} (--pool-max-memory)")]
    Memory {
        /// Requested bytes.
        requested: u64,
        /// The pool's ceiling.
        ceiling: u64,
    },
    /// The component does not compile or link.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Another function already serves a route.
    #[error(transparent)]
    Routes(#[from] RouteConflict),
    /// The deploy policy refuses the package.
    #[error(transparent)]
    Policy(#[from] wasmzip_policy::Refusal),
    /// The deployment store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The desired state could not be written (another process changed the data directory, say).
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// The package could not be stored.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stored grant no longer parses.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// No such function.
    #[error("no function named `{0}` is deployed")]
    NotFound(String),
    /// Nothing to roll back to.
    #[error("function `{0}` has no previous version to roll back to")]
    NoPrevious(String),
}

impl DeployError {
    /// A planning failure, in this server's words where it has its own.
    fn from_plan(error: PlanError) -> Self {
        match error {
            PlanError::Memory { requested, ceiling, .. } => DeployError::Memory { requested, ceiling },
            PlanError::NoKeystore(what) => DeployError::NoKeystore(what),
            PlanError::Nn(e) => DeployError::Model(e),
            PlanError::Runtime(e) => DeployError::Runtime(e),
            other => DeployError::Plan(other),
        }
    }
}

/// What the operator decides for every deployment.
#[derive(Debug, Clone)]
pub struct DeployPolicy {
    /// Which signers are trusted.
    pub trust: TrustPolicy,
    /// Limits that lower every manifest's.
    pub limits: OperatorLimits,
    /// The pool's per-instance memory ceiling.
    pub pool_memory: u64,
    /// Guest directories mapped to host directories.
    pub mounts: Vec<Mount>,
    /// Values for granted environment variables.
    pub env: Vec<(String, String)>,
    /// Where package resources are extracted.
    pub resources_root: PathBuf,
    /// The cache directory, pruned to `cache_max_bytes` after a deploy writes to it.
    pub cache_root: PathBuf,
    /// The cache's size cap.
    pub cache_max_bytes: u64,
    /// The keystore for `crypto:key:` grants; a deployment granted keys is refused without one.
    pub keystore: Option<Arc<dyn Keystore>>,
    /// How models are loaded.
    pub nn: NnConfig,
    /// Most model bytes one deployment may load.
    pub max_model_bytes: u64,
    /// The pool's slots, which WASI 0.3 instances take when they are made.
    pub pool: PoolSlots,
    /// How many connection threads serve requests: a WASI 0.3 version has a handler for each.
    pub connection_threads: usize,
    /// The deploy policy (`--policy`, with `--advisories`) every version must pass before it is
    /// planned: when it is deployed, when the server starts, and when it is rolled back to.
    pub gate: Option<Arc<wasmzip_policy::Gate>>,
    /// Code compiled ahead of time (`serve --precompiled`): a package with an artefact here loads
    /// its code from it instead of compiling.
    pub precompiled: Vec<Arc<wasmzip_runtime::Artefact>>,
}

/// What a load is for, as far as the deploy policy cares.
#[derive(Debug, Clone, Default)]
struct Admission {
    /// The version of each function serving now: a new deploy must not go below it unless allowed.
    /// Empty for a version already deployed once (at start-up, and on rollback, which is an
    /// operator's explicit step back).
    deployed: BTreeMap<String, String>,
    /// `--allow-downgrade`.
    allow_downgrade: bool,
}

/// One version as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VersionInfo {
    /// Package version.
    pub version: String,
    /// Package digest.
    pub digest: String,
    /// SHA-256 of the package file.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub archive_digest: String,
    /// Where the nodes of a cluster fetch it (an OCI reference by digest).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reference: String,
    /// Keys whose signatures over the package held at deploy time.
    pub signers: Vec<String>,
    /// Deploy sequence number.
    pub sequence: u64,
    /// Grants given.
    pub grants: Vec<String>,
    /// Whether everything requested was granted.
    pub grant_requested: bool,
    /// Seconds since the Unix epoch.
    pub deployed_at: u64,
}

/// One function as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FunctionInfo {
    /// Function name.
    pub name: String,
    /// The serving version, if it loaded.
    pub active: Option<VersionInfo>,
    /// Routes it serves.
    pub routes: Vec<String>,
    /// Effective capabilities of the serving version.
    pub capabilities: Vec<String>,
    /// The WASI version of its handler (`0.2` or `0.3`).
    pub wasi: Option<String>,
    /// Requests one instance serves in all (1: a fresh instance per request).
    pub reuse_max_requests: Option<u32>,
    /// Requests one instance serves at once.
    pub reuse_max_concurrent: Option<u32>,
    /// Kept versions, oldest first.
    pub versions: Vec<VersionInfo>,
}

impl From<&DeployedVersion> for VersionInfo {
    fn from(v: &DeployedVersion) -> Self {
        VersionInfo {
            version: v.version.clone(),
            digest: v.digest.clone(),
            archive_digest: v.archive_digest.clone(),
            reference: v.reference.clone(),
            signers: v.signers.clone(),
            sequence: v.sequence,
            grants: v.grants.clone(),
            grant_requested: v.grant_requested,
            deployed_at: v.deployed_at,
        }
    }
}

#[derive(Default)]
struct Live {
    routes: RouteTable<Arc<LoadedFunction>>,
    functions: BTreeMap<String, Arc<LoadedFunction>>,
}

impl Live {
    fn with(&self, replace: Option<Arc<LoadedFunction>>, remove: Option<&str>) -> Result<Live, RouteConflict> {
        let mut functions = self.functions.clone();
        if let Some(name) = remove {
            functions.remove(name);
        }
        if let Some(f) = replace {
            functions.insert(f.name.to_string(), f);
        }
        let mut routes = RouteTable::default();
        for f in functions.values() {
            for r in &f.routes {
                routes.insert(r.clone(), &f.name, f.clone())?;
            }
        }
        Ok(Live { routes, functions })
    }
}

/// The deployed functions.
pub struct Deployments {
    runtime: Arc<Runtime>,
    store: Box<dyn LocalBackend>,
    policy: DeployPolicy,
    metrics: Arc<Metrics>,
    state: tokio::sync::Mutex<DeploymentState>,
    live: RwLock<Arc<Live>>,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl DeployedVersion {
    /// A version about to be loaded: what the operator decides, the package's part still empty.
    fn candidate(grants: &[Capability], grant_requested: bool, sequence: u64) -> Self {
        DeployedVersion {
            version: String::new(),
            digest: String::new(),
            archive_digest: String::new(),
            reference: String::new(),
            signers: Vec::new(),
            grants: grants.iter().map(|g| g.to_string()).collect(),
            grant_requested,
            sequence,
            deployed_at: now(),
        }
    }

    /// Fills in what the loaded package says of itself.
    fn describe(&mut self, loaded: &LoadedFunction) {
        self.version = loaded.version.to_string();
        self.digest = loaded.digest.clone();
        self.archive_digest = loaded.archive_digest.clone();
        self.signers = loaded.signers.clone();
    }
}

impl Deployments {
    /// Loads what the store records; a version that no longer loads is reported and left out.
    pub async fn open(runtime: Arc<Runtime>, store: Box<dyn LocalBackend>, policy: DeployPolicy, metrics: Arc<Metrics>) -> Result<Self, DeployError> {
        let state = store.load()?;
        store.collect_garbage(&state)?;
        store.clear_staging()?;
        let me = Deployments {
            runtime,
            store,
            policy,
            metrics,
            state: tokio::sync::Mutex::new(state.clone()),
            live: RwLock::new(Arc::new(Live::default())),
        };
        let mut live = Live::default();
        for (name, record) in &state.functions {
            let Some(active) = record.active() else { continue };
            match me.load_stored(active).await {
                Ok(f) => match live.with(Some(f), None) {
                    Ok(next) => live = next,
                    Err(e) => tracing::error!(function = %name, "not serving: {e}"),
                },
                Err(e) => tracing::error!(function = %name, version = %active.version, "not serving: the stored version does not load: {e}"),
            }
        }
        me.metrics.functions.set(live.functions.len() as i64);
        *me.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(live);
        Ok(me)
    }

    /// The function serving `path`, with the matched prefix and the remainder.
    pub fn route(&self, path: &str) -> Option<(Arc<LoadedFunction>, String, String)> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner()).clone();
        live.routes.route(path).map(|m| (m.target.clone(), m.prefix.to_string(), m.remainder))
    }

    /// Verifies, compiles and plans one version (blocking work runs off the async threads).
    async fn load(&self, package: &Path, version: &DeployedVersion, admission: Admission) -> Result<LoadedFunction, DeployError> {
        let grants: Vec<Capability> = version.grants.iter().map(|g| g.parse()).collect::<Result<_, _>>()?;
        let runtime = self.runtime.clone();
        let policy = self.policy.clone();
        let package = package.to_path_buf();
        let version = version.clone();
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || load_blocking(&runtime, &policy, &metrics, &package, &version, &grants, &admission))
            .await
            .map_err(|e| RuntimeError::Engine(format!("the loading task failed: {e}")))?
    }

    /// Loads a stored version, checking that the stored package is the one recorded.
    async fn load_stored(&self, version: &DeployedVersion) -> Result<Arc<LoadedFunction>, DeployError> {
        self.load_version(&self.store.package_path(&version.digest), version).await
    }

    /// Deploys the package staged at `staged` (a path from the store's staging area) with `grants`.
    /// With `allow_downgrade`, a deploy policy lets it go below the version serving now.
    pub async fn deploy(&self, staged: &Path, grants: &[Capability], grant_requested: bool, allow_downgrade: bool) -> Result<FunctionInfo, DeployError> {
        self.deploy_inner(staged, grants, grant_requested, false, allow_downgrade).await
    }

    async fn deploy_inner(&self, staged: &Path, grants: &[Capability], grant_requested: bool, unless_serving: bool, allow_downgrade: bool) -> Result<FunctionInfo, DeployError> {
        let mut state = self.state.lock().await;
        let mut candidate = DeployedVersion::candidate(grants, grant_requested, state.sequence + 1);
        let deployed = state.functions.iter().filter_map(|(name, record)| record.active().map(|a| (name.clone(), a.version.clone()))).collect();
        let loaded = Arc::new(self.load(staged, &candidate, Admission { deployed, allow_downgrade }).await?);
        candidate.describe(&loaded);
        let name = loaded.name.to_string();
        if unless_serving {
            let serving = self.current().functions.get(&name).map(|f| f.sequence);
            let active = state.functions.get(&name).and_then(|f| f.active());
            if let (Some(seq), Some(a)) = (serving, active)
                && seq == a.sequence
                && a.digest == candidate.digest
                && a.grants == candidate.grants
                && a.grant_requested == grant_requested
            {
                let _ = std::fs::remove_file(staged);
                return Ok(self.info(&state, &name).expect("present"));
            }
        }
        let live = self.current().with(Some(loaded), None)?;
        // Through the data directory's package storage and desired state, as a cluster node goes
        // through the registry's and NATS's.
        PackageStorage::put(&*self.store, staged, &name, &candidate).await?;
        let mut record = state.functions.get(&name).cloned().unwrap_or_default();
        record.push(candidate);
        self.write_desired(&mut state, &name, Some(&record)).await?;
        self.swap(live);
        // Versions beyond the kept five are gone from the record; so are their packages.
        if let Err(e) = self.store.collect_garbage(&state) {
            tracing::warn!("cannot remove packages no version refers to: {e}");
        }
        let active = state.functions.get(&name).and_then(|f| f.active());
        let (digest, archive) = active.map(|a| (a.digest.as_str(), a.archive_digest.as_str())).unwrap_or_default();
        tracing::info!(function = %name, digest = %digest, archive = %archive, "deployed");
        Ok(self.info(&state, &name).expect("just deployed"))
    }

    /// Deploys a package file from the command line unless the same digest with the same grants
    /// already serves.
    /// `allow_downgrade` is `serve --allow-downgrade`.
    pub async fn deploy_file(&self, package: &Path, grants: &[Capability], grant_requested: bool, allow_downgrade: bool) -> Result<FunctionInfo, DeployError> {
        let staged = self.store.staging_path()?;
        std::fs::copy(package, &staged).map_err(|error| StoreError::Io { action: "copy", path: package.to_path_buf(), error })?;
        let result = self.deploy_inner(&staged, grants, grant_requested, true, allow_downgrade).await;
        if result.is_err() {
            let _ = std::fs::remove_file(&staged);
        }
        result
    }

    /// Writes `name`'s record (or removes it) in the data directory's desired state, expecting the
    /// revision `state` read, and reads the state back.
    async fn write_desired(&self, state: &mut DeploymentState, name: &str, record: Option<&FunctionRecord>) -> Result<(), DeployError> {
        let expected = state.revisions.get(name).copied().unwrap_or(0);
        DesiredState::compare_and_set(&*self.store, name, record, expected).await?;
        *state = self.store.load()?;
        Ok(())
    }

    /// Makes the previous version of `name` serve again and forgets the current one.
    pub async fn rollback(&self, name: &str) -> Result<FunctionInfo, DeployError> {
        let mut state = self.state.lock().await;
        let record = state.functions.get(name).ok_or_else(|| DeployError::NotFound(name.to_string()))?;
        if record.versions.len() < 2 {
            return Err(DeployError::NoPrevious(name.to_string()));
        }
        let previous = record.versions[record.versions.len() - 2].clone();
        let loaded = self.load_stored(&previous).await?;
        let live = self.current().with(Some(loaded), Some(name))?;
        let mut record = state.functions.get(name).expect("checked").clone();
        record.versions.pop();
        self.write_desired(&mut state, name, Some(&record)).await?;
        self.swap(live);
        let _ = self.store.collect_garbage(&state);
        tracing::info!(function = %name, version = %previous.version, "rolled back");
        Ok(self.info(&state, name).expect("present"))
    }

    /// Stops serving `name` and forgets its versions.
    pub async fn remove(&self, name: &str) -> Result<(), DeployError> {
        let mut state = self.state.lock().await;
        if !state.functions.contains_key(name) {
            return Err(DeployError::NotFound(name.to_string()));
        }
        let live = self.current().with(None, Some(name))?;
        self.write_desired(&mut state, name, None).await?;
        self.swap(live);
        let _ = self.store.collect_garbage(&state);
        tracing::info!(function = %name, "removed");
        Ok(())
    }

    /// Verifies, admits and compiles an uploaded package as version `sequence` of a cluster deploy,
    /// without changing anything: `serving` is the version the cluster's desired state serves now
    /// (for the deploy policy's downgrade rule).
    pub(crate) async fn prepare(
        &self,
        staged: &Path,
        grants: &[Capability],
        grant_requested: bool,
        allow_downgrade: bool,
        sequence: u64,
        serving: Option<(String, String)>,
    ) -> Result<(Arc<LoadedFunction>, DeployedVersion), DeployError> {
        let mut candidate = DeployedVersion::candidate(grants, grant_requested, sequence);
        let deployed = serving.into_iter().collect();
        let loaded = Arc::new(self.load(staged, &candidate, Admission { deployed, allow_downgrade }).await?);
        candidate.describe(&loaded);
        Ok((loaded, candidate))
    }

    /// The stored package with `digest`, when this node holds it.
    pub(crate) fn cached_package(&self, digest: &str) -> Option<PathBuf> {
        let path = self.store.package_path(digest);
        path.exists().then_some(path)
    }

    /// Loads `version` from the package file at `path` (stored, or staged), checking that it is the
    /// package the version records.
    pub(crate) async fn load_version(&self, path: &Path, version: &DeployedVersion) -> Result<Arc<LoadedFunction>, DeployError> {
        let loaded = self.load(path, version, Admission::default()).await?;
        if loaded.digest != version.digest {
            return Err(DeployError::Package(PackageError::Signature(format!(
                "the package {} recorded with digest {} has digest {}",
                path.display(),
                version.digest,
                loaded.digest
            ))));
        }
        Ok(Arc::new(loaded))
    }

    /// The sequence, digest and grants of the version of `name` serving now.
    pub(crate) fn serving(&self, name: &str) -> Option<(u64, String, Vec<String>)> {
        self.current().functions.get(name).map(|f| (f.sequence, f.digest.clone(), f.grants.clone()))
    }

    /// Whether `loaded` can take over its function's place: its routes clash with no other
    /// function's.
    pub(crate) fn check_fits(&self, loaded: &Arc<LoadedFunction>) -> Result<(), DeployError> {
        self.current().with(Some(loaded.clone()), None).map(drop).map_err(DeployError::from)
    }

    /// What this node's data directory records for `name`.
    pub(crate) async fn recorded(&self, name: &str) -> Option<FunctionRecord> {
        self.state.lock().await.functions.get(name).cloned()
    }

    /// The functions this node's data directory records.
    pub(crate) async fn recorded_names(&self) -> Vec<String> {
        self.state.lock().await.functions.keys().cloned().collect()
    }

    /// Makes `name` serve as `record` says, with `loaded` (its active version) taking over, or, with
    /// no `loaded`, keeping the version serving now (only the kept history changes); `None` stops
    /// serving it. The data directory records the change before it takes effect.
    /// A `staged` package file (a staging path holding `loaded`'s package) is stored with it.
    pub(crate) async fn install(&self, name: &str, record: Option<FunctionRecord>, loaded: Option<Arc<LoadedFunction>>, staged: Option<&Path>) -> Result<(), DeployError> {
        let mut state = self.state.lock().await;
        if let (Some(staged), Some(loaded)) = (staged, &loaded) {
            self.store.store_package(&loaded.digest, staged)?;
        }
        let live = match (&record, loaded) {
            (None, _) => self.current().with(None, Some(name))?,
            (Some(_), Some(loaded)) => self.current().with(Some(loaded), None)?,
            (Some(_), None) => self.current().with(None, None)?,
        };
        let mut next = state.clone();
        match record {
            Some(record) => {
                next.sequence = next.sequence.max(record.versions.iter().map(|v| v.sequence).max().unwrap_or(0));
                next.functions.insert(name.to_string(), record);
            }
            None => {
                next.functions.remove(name);
            }
        }
        self.store.commit(&next)?;
        *state = next;
        self.swap(live);
        if let Err(e) = self.store.collect_garbage(&state) {
            tracing::warn!("cannot remove packages no version refers to: {e}");
        }
        Ok(())
    }

    /// One function as the admin API shows it.
    pub async fn info_of(&self, name: &str) -> Option<FunctionInfo> {
        let state = self.state.lock().await;
        self.info(&state, name)
    }

    /// Every function with its versions.
    pub async fn list(&self) -> Vec<FunctionInfo> {
        let state = self.state.lock().await;
        state.functions.keys().filter_map(|n| self.info(&state, n)).collect()
    }

    /// A fresh staging path for an upload.
    pub fn staging_path(&self) -> Result<PathBuf, DeployError> {
        Ok(self.store.staging_path()?)
    }

    fn current(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn swap(&self, live: Live) {
        self.metrics.functions.set(live.functions.len() as i64);
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(live);
    }

    fn info(&self, state: &DeploymentState, name: &str) -> Option<FunctionInfo> {
        let record = state.functions.get(name)?;
        let live = self.current();
        let loaded = live.functions.get(name);
        Some(FunctionInfo {
            name: name.to_string(),
            active: loaded.and_then(|f| record.versions.iter().find(|v| v.sequence == f.sequence)).map(VersionInfo::from),
            routes: loaded.map(|f| f.routes.iter().map(|r| r.to_string()).collect()).unwrap_or_default(),
            capabilities: loaded.map(|f| f.effective.clone()).unwrap_or_default(),
            wasi: loaded.map(|f| f.planned.entry().wasi().to_string()),
            reuse_max_requests: loaded.map(|f| f.handler.reuse().max_requests),
            reuse_max_concurrent: loaded.map(|f| f.handler.reuse().max_concurrent),
            versions: record.versions.iter().map(VersionInfo::from).collect(),
        })
    }
}

fn load_blocking(
    runtime: &Runtime,
    policy: &DeployPolicy,
    metrics: &Arc<Metrics>,
    path: &Path,
    version: &DeployedVersion,
    grants: &[Capability],
    admission: &Admission,
) -> Result<LoadedFunction, DeployError> {
    // The policy decides before any component or resource is read (or extracted into the cache).
    let admit = |facts: &PackageFacts<'_>| -> Result<(), wasmzip_policy::Refusal> {
        let Some(gate) = &policy.gate else { return Ok(()) };
        // Without its one `http` component, choosing it below refuses the package.
        let Some((component, entry)) = facts.manifest.default_component(World::Http) else { return Ok(()) };
        let deployed = admission.deployed.get(facts.manifest.name.as_str()).and_then(|v| semver::Version::parse(v).ok());
        let effective = wasmzip_package::effective_grants(&entry.capabilities, grants, version.grant_requested);
        let deployment = wasmzip_policy::Deployment {
            grants: &[(component.to_string(), effective)],
            deployed_version: deployed.as_ref(),
            allow_downgrade: admission.allow_downgrade,
        };
        gate.admit(facts, &deployment).map(drop)
    };
    let package = match wasmzip_package::verify_package_admitted(path, &policy.trust, ResourceSink::Extract { root: &policy.resources_root }, admit) {
        Ok(package) => package,
        Err(AdmitError::Package(e)) => return Err(e.into()),
        Err(AdmitError::Refused(refusal)) => return Err(refusal.into()),
    };
    let component = package.only_component(World::Http)?;
    let host = HostResources {
        mounts: policy.mounts.clone(),
        env: policy.env.clone(),
        keystore: policy.keystore.clone().map(KeystoreSource::Open).unwrap_or_default(),
        nn: policy.nn.clone(),
        max_model_bytes: policy.max_model_bytes,
        limits: GuestLimits { memory_bytes: policy.limits.memory_bytes, timeout: policy.limits.timeout },
        memory_ceiling: Some(policy.pool_memory),
        precompiled: policy.precompiled.iter().find(|a| a.header().package.digest == package.digest()).cloned(),
    };
    let grants = OperatorGrants { tokens: grants.to_vec(), grant_requested: version.grant_requested };
    let planned = plan(runtime, component, World::Http, &grants, &host).map_err(DeployError::from_plan)?;
    let manifest = package.manifest();
    for warning in planned.warnings() {
        tracing::warn!(function = %manifest.name, version = %manifest.version, "{warning}");
    }
    if package.wrote_resources() || planned.cache_outcome() == wasmzip_runtime::CacheOutcome::Compiled {
        wasmzip_runtime::cache_dir::CacheDir::new(&policy.cache_root).enforce_cap(policy.cache_max_bytes);
    }
    let component = planned.component();
    let name: Arc<str> = Arc::from(manifest.name.as_str());
    let version_name: Arc<str> = Arc::from(manifest.version.to_string());
    let limits = HttpLimits::resolve(component.limits(), &policy.limits, policy.pool_memory);
    let function_metrics = metrics.for_function(&name, &version_name);
    let routes = component.routes().to_vec();
    let reuse = ReuseLimits::resolve(component.reuse(), &policy.limits.reuse);
    let effective = planned.effective().iter().map(|c| c.to_string()).collect();
    let planned = Arc::new(planned);
    let handler = match planned.entry() {
        Entrypoint::HttpP2(pre) => Handler::Fresh(pre.clone()),
        Entrypoint::HttpP3(pre) => Handler::Reused(ThreadHandlers::new(
            Service {
                pre: pre.clone(),
                planned: planned.clone(),
                limits,
                reuse,
                function: name.clone(),
                version: version_name.clone(),
                metrics: function_metrics.clone(),
                server_metrics: metrics.clone(),
                pool: policy.pool.clone(),
                made: Default::default(),
            },
            policy.connection_threads,
        )),
        _ => return Err(DeployError::Unsupported(format!("{}: not a wasi:http handler", planned.component().description()))),
    };
    Ok(LoadedFunction {
        name,
        version: version_name,
        digest: package.digest().to_string(),
        archive_digest: package.archive_digest()?.to_string(),
        signers: package.trusted_signers().iter().map(|k| k.to_string()).collect(),
        sequence: version.sequence,
        routes,
        limits,
        grants: version.grants.clone(),
        effective,
        metrics: function_metrics,
        handler,
        planned,
        spare: SpareSlot::default(),
    })
}
