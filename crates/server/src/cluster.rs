//! Cluster mode: many `serve` nodes converging on one desired state. Deploys, rollbacks and removals
//! through any node's admin API become compare-and-set writes of the desired state (packages go to
//! the package storage first); every node's reconciler watches the desired state and converges to
//! it exactly as a local deploy would, each node verifying every package against its own trust
//! keys. What a node serves is recorded in its data directory first, so it serves its last
//! converged state when the desired state cannot be reached, and after a restart.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use wasmzip_package::Capability;

use crate::deployments::{DeployError, Deployments, FunctionInfo};
use crate::desired::{DesiredError, DesiredEvent, DesiredState};

/// The longest a full read of the desired state may take before it counts as unavailable.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(10);
use crate::nats::NatsCluster;
use crate::packages::{PackageStorage, StorageError};
use crate::store::{DeployedVersion, FunctionRecord};

/// Why a cluster change was refused. Desired state is unchanged when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The change itself was refused (the package, the policy, the routes…).
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The desired state could not be read or written.
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// The package could not be stored or fetched.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Deploying a package file needs somewhere to put it.
    #[error("this cluster node has no package registry (start it with --cluster-registry): it cannot take a package file")]
    NoRegistry,
    /// The package the registry gave back is not the one uploaded.
    #[error("the registry gave back another package than the one pushed: {0}")]
    RoundTrip(String),
}

/// What a node last failed to converge to, for one function.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The version it should serve.
    pub version: String,
    /// Its sequence.
    pub sequence: u64,
    /// Why it does not.
    pub error: String,
}

/// How the node stands with the desired state.
#[derive(Debug, Clone, Default)]
struct Health {
    /// The last listing of the desired state succeeded, and the client is connected.
    synced: bool,
    /// Why not, when not.
    reason: Option<String>,
}

/// What the reconciler applied last, per function.
#[derive(Debug, Clone, Copy)]
struct Applied {
    revision: u64,
    at: Instant,
}

/// Cluster settings.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// This node's name (its status key).
    pub node: String,
    /// How often the whole desired state is read again (besides watching it).
    pub resync: Duration,
    /// How often this node reports its status (well within the status TTL).
    pub report_every: Duration,
    /// This node's public address, as reported.
    pub public: String,
}

/// One node of a cluster.
pub struct Cluster {
    nats: Arc<NatsCluster>,
    desired: Arc<dyn DesiredState>,
    packages: Arc<dyn PackageStorage>,
    /// Whether `packages` takes uploads (a `--cluster-registry` is configured).
    uploads: bool,
    deployments: Arc<Deployments>,
    settings: ClusterSettings,
    /// Serialises every change to what this node serves, and remembers what was applied.
    apply: tokio::sync::Mutex<BTreeMap<String, Applied>>,
    failures: Mutex<BTreeMap<String, Failure>>,
    health: Mutex<Health>,
    /// Wakes the status reporter.
    changed: tokio::sync::Notify,
}

impl Cluster {
    /// A node over `nats` (desired state and node status) and `packages` (which take uploads when
    /// `uploads`).
    pub fn new(nats: Arc<NatsCluster>, packages: Arc<dyn PackageStorage>, uploads: bool, deployments: Arc<Deployments>, settings: ClusterSettings) -> Arc<Cluster> {
        Arc::new(Cluster {
            desired: nats.clone(),
            nats,
            packages,
            uploads,
            deployments,
            settings,
            apply: tokio::sync::Mutex::new(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
            health: Mutex::new(Health { synced: false, reason: Some("not synchronised with the desired state yet".into()) }),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// Whether package files can be deployed (there is a package storage to put them in).
    pub fn has_registry(&self) -> bool {
        self.uploads
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.settings.node
    }

    /// Whether this node is synchronised with the desired state, and why not.
    pub fn health(&self) -> (bool, Option<String>) {
        let h = self.health.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (h.synced && self.nats.connected(), if self.nats.connected() { h.reason } else { Some("not connected to NATS".into()) })
    }

    fn set_health(&self, synced: bool, reason: Option<String>) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if h.synced != synced {
            match &reason {
                Some(r) if !synced => tracing::warn!(target: "wasmzip::cluster", "degraded: {r}; serving what has converged"),
                _ => tracing::info!(target: "wasmzip::cluster", "synchronised with the desired state"),
            }
        }
        *h = Health { synced, reason };
    }

    /// Deploys a staged upload to the cluster: verifies and compiles it here, puts it in the package
    /// storage, fetches it back and verifies that, then writes the desired state if the function's
    /// key is still at the revision read first (else [`DesiredError::Conflict`]), and serves it here.
    pub async fn deploy(&self, staged: &Path, grants: &[Capability], grant_requested: bool, allow_downgrade: bool) -> Result<FunctionInfo, ClusterError> {
        if !self.uploads {
            return Err(ClusterError::NoRegistry);
        }
        let packages = self.packages.clone();
        let peek = staged.to_path_buf();
        let (manifest, _) = tokio::task::spawn_blocking(move || wasmzip_package::peek_manifest(&peek))
            .await
            .map_err(|e| DeployError::Unsupported(format!("the reading task failed: {e}")))?
            .map_err(DeployError::from)?;
        let name = manifest.name.to_string();
        let (record, revision) = self.desired.get(&name).await?;
        let serving = record.as_ref().and_then(|r| r.active()).map(|a| (name.clone(), a.version.clone()));
        let (_, mut candidate) = self.deployments.prepare(staged, grants, grant_requested, allow_downgrade, revision + 1, serving).await?;
        let stored = packages.put(staged, &name, &candidate).await?;
        if stored.archive_digest != candidate.archive_digest {
            return Err(ClusterError::RoundTrip(format!("pushed sha256:{}, uploaded sha256:{}", stored.archive_digest, candidate.archive_digest)));
        }
        candidate.reference = stored.reference;
        // What every node will fetch, fetched and verified here before anyone is told to.
        let fetched = self.deployments.staging_path()?;
        let result = async {
            packages.fetch(&candidate, &fetched).await?;
            let loaded = self.deployments.load_version(&fetched, &candidate).await?;
            self.deployments.check_fits(&loaded)?;
            let mut next = record.clone().unwrap_or_default();
            next.push(candidate.clone());
            let new_revision = self.desired.compare_and_set(&name, Some(&next), revision).await?;
            self.install(&name, Some(next), Some(loaded), Some(&fetched), new_revision).await?;
            Ok::<_, ClusterError>(())
        }
        .await;
        let _ = std::fs::remove_file(&fetched);
        result?;
        tracing::info!(target: "wasmzip::deploy", function = %name, digest = %candidate.digest, archive = %candidate.archive_digest, reference = %candidate.reference, "deployed to the cluster");
        self.deployments.info_of(&name).await.ok_or_else(|| DeployError::NotFound(name).into())
    }

    /// Makes the previous version of `name` the desired one, cluster-wide.
    pub async fn rollback(&self, name: &str) -> Result<FunctionInfo, ClusterError> {
        let (record, revision) = self.desired.get(name).await?;
        let record = record.ok_or_else(|| DeployError::NotFound(name.to_string()))?;
        if record.versions.len() < 2 {
            return Err(DeployError::NoPrevious(name.to_string()).into());
        }
        let mut next = record.clone();
        next.versions.pop();
        let previous = next.active().expect("two versions").clone();
        let (loaded, fetched) = self.fetch_and_load(name, &previous).await?;
        self.deployments.check_fits(&loaded)?;
        let result = async {
            let new_revision = self.desired.compare_and_set(name, Some(&next), revision).await?;
            self.install(name, Some(next), Some(loaded), fetched.as_deref(), new_revision).await?;
            Ok::<_, ClusterError>(())
        }
        .await;
        if let Some(f) = &fetched {
            let _ = std::fs::remove_file(f);
        }
        result?;
        tracing::info!(target: "wasmzip::deploy", function = %name, version = %previous.version, "rolled back in the cluster");
        self.deployments.info_of(name).await.ok_or_else(|| DeployError::NotFound(name.to_string()).into())
    }

    /// Removes `name` from the desired state, cluster-wide.
    pub async fn remove(&self, name: &str) -> Result<(), ClusterError> {
        let (record, revision) = self.desired.get(name).await?;
        if record.is_none() {
            return Err(DeployError::NotFound(name.to_string()).into());
        }
        let new_revision = self.desired.compare_and_set(name, None, revision).await?;
        self.install(name, None, None, None, new_revision).await?;
        tracing::info!(target: "wasmzip::deploy", function = %name, "removed from the cluster");
        Ok(())
    }

    /// The package of `version`, loaded: from this node's store, else fetched (the fetched file is
    /// returned, to be stored with the version).
    async fn fetch_and_load(&self, name: &str, version: &DeployedVersion) -> Result<(Arc<crate::function::LoadedFunction>, Option<std::path::PathBuf>), ClusterError> {
        let named = |loaded: Arc<crate::function::LoadedFunction>| -> Result<_, ClusterError> {
            if &*loaded.name != name {
                return Err(DeployError::Unsupported(format!("the package recorded for function `{name}` is package `{}`", loaded.name)).into());
            }
            Ok(loaded)
        };
        if let Some(path) = self.deployments.cached_package(&version.digest) {
            // The same manifest signed again is another archive: the cached one serves only if it
            // is the archive recorded.
            match self.deployments.load_version(&path, version).await {
                Ok(loaded) if version.archive_digest.is_empty() || loaded.archive_digest == version.archive_digest => return Ok((named(loaded)?, None)),
                Ok(_) | Err(_) => {
                    tracing::info!(target: "wasmzip::cluster", function = %name, "the stored package for sha256:{} is not the archive recorded; fetching it", version.digest);
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let packages = self.packages.clone();
        let fetched = self.deployments.staging_path()?;
        let result = async {
            packages.fetch(version, &fetched).await?;
            named(self.deployments.load_version(&fetched, version).await?)
        }
        .await;
        match result {
            Ok(loaded) => Ok((loaded, Some(fetched))),
            Err(e) => {
                let _ = std::fs::remove_file(&fetched);
                Err(e)
            }
        }
    }

    /// Records and serves a change whose desired state is at `revision`.
    /// A change older than one the reconciler has applied meanwhile is not installed: the newer one
    /// serves.
    async fn install(&self, name: &str, record: Option<FunctionRecord>, loaded: Option<Arc<crate::function::LoadedFunction>>, staged: Option<&Path>, revision: u64) -> Result<(), DeployError> {
        let mut applied = self.apply.lock().await;
        if applied.get(name).is_some_and(|a| a.revision >= revision) {
            return Ok(());
        }
        self.deployments.install(name, record, loaded, staged).await?;
        applied.insert(name.to_string(), Applied { revision, at: Instant::now() });
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        self.changed.notify_one();
        Ok(())
    }

    /// Brings one function in line with the desired state at `revision` (from a watch or a listing;
    /// `None` for a function a listing made at `listed_at` does not have). A change older than what
    /// was applied is skipped, and so is a listing older than what a deploy
    /// through this node has applied since).
    async fn converge(&self, name: &str, desired: Option<FunctionRecord>, revision: Option<u64>, listed_at: Instant) {
        let mut applied = self.apply.lock().await;
        if let Some(done) = applied.get(name)
            && (revision.is_some_and(|r| r <= done.revision) || done.at > listed_at)
        {
            return;
        }
        let recorded = self.deployments.recorded(name).await;
        let outcome = match &desired {
            None if recorded.is_none() => Ok(false),
            None => self.deployments.install(name, None, None, None).await.map(|()| true).map_err(ClusterError::from),
            Some(record) => {
                let active = record.active().expect("decoded records have a version");
                let serving = self.deployments.serving(name);
                if serving.as_ref() == Some(&(active.sequence, active.digest.clone(), active.grants.clone())) {
                    if recorded.as_ref() == Some(record) {
                        Ok(false)
                    } else {
                        self.deployments.install(name, Some(record.clone()), None, None).await.map(|()| true).map_err(ClusterError::from)
                    }
                } else {
                    match self.fetch_and_load(name, active).await {
                        Ok((loaded, fetched)) => {
                            let r = self.deployments.install(name, Some(record.clone()), Some(loaded), fetched.as_deref()).await;
                            if let Some(f) = &fetched {
                                let _ = std::fs::remove_file(f);
                            }
                            r.map(|()| true).map_err(ClusterError::from)
                        }
                        Err(e) => Err(e),
                    }
                }
            }
        };
        match outcome {
            Ok(changed) => {
                let revision = revision.unwrap_or(0).max(applied.get(name).map_or(0, |a| a.revision));
                applied.insert(name.to_string(), Applied { revision, at: Instant::now() });
                let cleared = self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(name).is_some();
                if changed {
                    let what = desired.as_ref().and_then(|r| r.active()).map(|a| format!("{} (sequence {})", a.version, a.sequence)).unwrap_or_else(|| "removed".into());
                    tracing::info!(target: "wasmzip::cluster", function = %name, "converged: {what}");
                }
                if changed || cleared {
                    self.changed.notify_one();
                }
            }
            Err(e) => {
                let active = desired.as_ref().and_then(|r| r.active());
                self.fail(
                    name,
                    Failure { version: active.map(|a| a.version.clone()).unwrap_or_default(), sequence: active.map(|a| a.sequence).unwrap_or(0), error: e.to_string() },
                );
            }
        }
    }

    /// Reads the whole desired state and converges every function; a function this node serves
    /// that the desired state no longer has is removed. Nothing changes when it cannot be read.
    async fn resync(&self) -> Result<(), DesiredError> {
        let listed_at = Instant::now();
        let listing = tokio::time::timeout(LIST_TIMEOUT, self.desired.list())
            .await
            .map_err(|_| DesiredError::Unavailable(format!("reading the desired state took more than {LIST_TIMEOUT:?}")))??;
        let mut names: Vec<String> = self.deployments.recorded_names().await;
        names.extend(listing.functions.keys().cloned());
        names.sort();
        names.dedup();
        for name in names {
            if let Some(problem) = listing.unreadable.get(&name) {
                // Neither converged nor removed: what serves keeps serving.
                self.fail(name.as_str(), Failure { version: String::new(), sequence: 0, error: problem.clone() });
                continue;
            }
            match listing.functions.get(&name) {
                Some(d) => self.converge(&name, Some(d.record.clone()), Some(d.revision), listed_at).await,
                None => self.converge(&name, None, None, listed_at).await,
            }
        }
        Ok(())
    }

    fn fail(&self, name: &str, failure: Failure) {
        tracing::warn!(target: "wasmzip::cluster", function = %name, version = %failure.version, "keeping the version serving now: cannot converge: {}", failure.error);
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), failure);
        self.changed.notify_one();
    }

    /// Runs the reconciler until the process ends: watch, list, converge; on any loss of the
    /// desired state, keep serving and try again.
    pub async fn run_reconciler(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let watch = self.desired.watch().await;
            let mut events = match watch {
                Ok(w) => w,
                Err(e) => {
                    self.set_health(false, Some(e.to_string()));
                    self.wait(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            if let Err(e) = self.resync().await {
                self.set_health(false, Some(e.to_string()));
                self.wait(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
            backoff = Duration::from_millis(100);
            self.set_health(true, None);
            self.changed.notify_one();
            let watching_since = Instant::now();
            let mut tick = tokio::time::interval(self.settings.resync);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    event = events.next() => match event {
                        Some(DesiredEvent::Changed { function, record, revision }) => {
                            self.converge(&function, record, Some(revision), Instant::now()).await;
                        }
                        None => {
                            // A watch that keeps ending at once must not turn into a busy loop.
                            if watching_since.elapsed() < Duration::from_secs(2) {
                                self.wait(Duration::from_secs(1)).await;
                            }
                            break;
                        }
                    },
                    _ = tick.tick() => {
                        match self.resync().await {
                            Ok(()) => self.set_health(true, None),
                            Err(e) => {
                                self.set_health(false, Some(e.to_string()));
                                break;
                            }
                        }
                    }
                    () = self.nats.reconnected.notified() => break,
                }
            }
        }
    }

    /// Sleeps for `backoff`, or until NATS is back.
    async fn wait(&self, backoff: Duration) {
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = self.nats.reconnected.notified() => {}
        }
    }

    /// This node's status: what it serves, what it failed to converge to.
    pub async fn status(&self) -> serde_json::Value {
        let functions: BTreeMap<String, serde_json::Value> = self
            .deployments
            .list()
            .await
            .into_iter()
            .filter_map(|f| f.active.map(|a| (f.name, json!({ "version": a.version, "sequence": a.sequence, "digest": a.digest }))))
            .collect();
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (synced, reason) = self.health();
        json!({
            "node": self.settings.node,
            "public": self.settings.public,
            "reported_at": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "synced": synced,
            "reason": reason,
            "functions": functions,
            "failures": failures,
        })
    }

    /// Reports this node's status now and then, and whenever it changes, until the process ends.
    pub async fn run_reporter(self: Arc<Self>) {
        loop {
            let status = self.status().await;
            if let Err(e) = self.nats.report_node(&self.settings.node, &status).await {
                tracing::debug!(target: "wasmzip::cluster", "cannot report this node's status: {e}");
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.report_every) => {}
                () = self.changed.notified() => {}
            }
        }
    }

    /// Every live node's status against the desired state: what each serves and whether it has
    /// converged.
    pub async fn nodes(&self) -> Result<serde_json::Value, ClusterError> {
        let desired = self.desired.list().await?;
        let statuses = self.nats.node_statuses().await?;
        let want: BTreeMap<&str, (u64, &str, &str)> = desired
            .functions
            .iter()
            .filter_map(|(n, d)| d.record.active().map(|a| (n.as_str(), (a.sequence, a.digest.as_str(), a.version.as_str()))))
            .collect();
        let nodes: Vec<serde_json::Value> = statuses
            .into_iter()
            .map(|(node, status)| {
                let serves = status["functions"].as_object().cloned().unwrap_or_default();
                let mut functions = Vec::new();
                let mut converged = true;
                for (name, (sequence, digest, version)) in &want {
                    let here = serves.get(*name);
                    let ok = here.is_some_and(|h| h["sequence"].as_u64() == Some(*sequence) && h["digest"].as_str() == Some(*digest));
                    converged &= ok;
                    functions.push(json!({
                        "name": name,
                        "desired_version": version,
                        "desired_sequence": sequence,
                        "version": here.map(|h| h["version"].clone()),
                        "sequence": here.map(|h| h["sequence"].clone()),
                        "converged": ok,
                        "error": status["failures"][*name]["error"],
                    }));
                }
                for (name, h) in &serves {
                    if !want.contains_key(name.as_str()) {
                        converged = false;
                        functions.push(json!({ "name": name, "desired_version": null, "version": h["version"], "sequence": h["sequence"], "converged": false }));
                    }
                }
                json!({
                    "node": node,
                    "public": status["public"],
                    "reported_at": status["reported_at"],
                    "synced": status["synced"],
                    "reason": status["reason"],
                    "converged": converged,
                    "functions": functions,
                })
            })
            .collect();
        Ok(json!({ "nodes": nodes }))
    }
}
