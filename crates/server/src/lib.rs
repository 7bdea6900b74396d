//! `wasmzip serve`: many `wasi:http` functions behind one listener (WASI 0.2 handlers with a fresh
//! isolated instance per request, WASI 0.3 handlers with instances reused within limits), an admin API with metrics on its own listener, deployments that survive restarts, and
//! graceful shutdown.
#![deny(missing_docs)]

pub mod admin;
pub mod cluster;
pub mod deployments;
pub mod desired;
pub mod function;
pub mod guest_log;
pub mod metrics;
pub mod nats;
pub mod packages;
pub mod request;
pub mod reuse;
pub mod routing;
pub mod spare;
pub mod store;
pub mod workers;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmzip_package::{Capability, TrustPolicy};
use wasmzip_runtime::capabilities::filesystem::Mount;
use wasmzip_runtime::{PoolConfig, Runtime, RuntimeConfig};

use crate::deployments::{DeployError, DeployPolicy, Deployments};
use crate::function::OperatorLimits;
use crate::metrics::Metrics;
use crate::spare::Recycler;
use crate::store::LocalStore;
use crate::workers::{ConnectionWorkers, Counted};

/// Most requests one HTTP/2 connection may have in flight at once; admission still caps them all.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 256;

/// Everything `serve` is configured with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Public listener.
    pub listen: SocketAddr,
    /// Admin listener (metrics and the deploy API); none means no admin API.
    pub admin_listen: Option<SocketAddr>,
    /// The admin bearer token; none means every `/v1` call is refused.
    pub admin_token: Option<String>,
    /// Deployment data directory.
    pub data_dir: PathBuf,
    /// Cache directory (compiled code, extracted resources).
    pub cache_dir: PathBuf,
    /// Most bytes the cache may hold.
    pub cache_max_bytes: u64,
    /// Trusted signers.
    pub trust: TrustPolicy,
    /// The deploy policy every version must pass (`--policy`, `--advisories`).
    pub gate: Option<Arc<wasmzip_policy::Gate>>,
    /// Let the packages given on the command line go below the versions the data directory serves.
    pub allow_downgrade: bool,
    /// Packages to deploy at start, on top of what the data directory holds.
    pub packages: Vec<PathBuf>,
    /// Grants for those packages.
    pub grants: Vec<Capability>,
    /// Grant everything those packages request.
    pub grant_requested: bool,
    /// Guest directory mappings.
    pub mounts: Vec<Mount>,
    /// Values for granted environment variables.
    pub env: Vec<(String, String)>,
    /// Operator limits.
    pub limits: OperatorLimits,
    /// Pool sizing.
    pub pool: PoolConfig,
    /// How long a spare instance (made ahead of a function's next request) waits for one before it
    /// is torn down; `None` makes no spares.
    pub spare_idle: Option<Duration>,
    /// Runtimes serving client connections, each with one thread (one per core is best).
    pub workers: usize,
    /// How long in-flight requests may take to finish at shutdown.
    pub grace_period: Duration,
    /// The keystore shared by every request of every function granted keys (one session pool).
    pub keystore: Option<Arc<dyn wasmzip_keystore::Keystore>>,
    /// How models are loaded.
    pub nn: wasmzip_nn::NnConfig,
    /// Most model bytes one deployment may load.
    pub max_model_bytes: u64,
    /// Most requests to WASI 0.3 functions in flight at once, server-wide (their instances may
    /// serve several at once); more are answered 503. `None`: the pool's instances times
    /// [`reuse::DEFAULT_MAX_CONCURRENT`].
    pub max_in_flight: Option<usize>,
    /// Cluster mode: desired state in NATS JetStream, packages in an OCI registry.
    pub cluster: Option<ClusterConfig>,
    /// What code runs guests: this machine's (Cranelift) or Pulley's interpreter.
    pub target: wasmzip_runtime::CodeTarget,
    /// Artefacts compiled ahead of time for packages this server deploys (`--precompiled`); each
    /// must fit one of the packages given, or the data directory's.
    pub precompiled: Vec<Arc<wasmzip_runtime::Artefact>>,
}

/// How a node joins a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS and its buckets.
    pub nats: nats::NatsOptions,
    /// Where packages deployed through this node go (`HOST[:PORT]/PATH`), and how to reach it; a
    /// node without one can still fetch what the desired state names.
    pub repository: Option<String>,
    /// How to reach registries.
    pub registry: wasmzip_registry::RegistryConfig,
    /// This node's name.
    pub node: String,
    /// How often the whole desired state is read again.
    pub resync: Duration,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        error: std::io::Error,
    },
    /// The engine could not be built.
    #[error(transparent)]
    Runtime(#[from] wasmzip_runtime::RuntimeError),
    /// The data directory or a package given on the command line could not be deployed.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The data directory could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The connection runtimes could not be started.
    #[error("cannot start the connection threads: {0}")]
    Workers(std::io::Error),
    /// The recycler thread could not be started.
    #[error("cannot start the recycler thread: {0}")]
    Recycler(std::io::Error),
    /// Cluster mode could not be set up.
    #[error(transparent)]
    Nats(#[from] nats::NatsError),
    /// A precompiled artefact fits no package served.
    #[error("precompiled artefact {} was compiled from package {package}, which this server does not serve", path.display())]
    UnusedArtefact {
        /// The artefact.
        path: PathBuf,
        /// The package it was compiled from.
        package: String,
    },
    /// The package registry could not be set up.
    #[error(transparent)]
    Registry(#[from] wasmzip_registry::RegistryError),
    /// The package storage is misconfigured.
    #[error(transparent)]
    Storage(#[from] packages::StorageError),
}

/// What every request handler shares.
pub struct ServerShared {
    /// The deployed functions.
    pub deployments: Arc<Deployments>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The engine.
    pub runtime: Arc<Runtime>,
    /// Admission: one permit per pool slot; none left means 503.
    pub slots: Arc<Semaphore>,
    /// Makes spare instances and tears down finished stores.
    pub recycler: Arc<Recycler>,
    /// Admission of requests to WASI 0.3 functions: one permit per request in flight.
    pub request_permits: Arc<Semaphore>,
    /// Requests waiting for a slot now (see `request::ADMISSION_WAIT`).
    pub admission_waiters: AtomicUsize,
    /// The most requests that may wait for a slot at once: as many as there are slots.
    pub max_admission_waiters: usize,
}

/// Addresses the server actually listens on (useful with port 0).
#[derive(Debug, Clone, Copy)]
pub struct BoundAddrs {
    /// Public listener.
    pub public: SocketAddr,
    /// Admin listener.
    pub admin: Option<SocketAddr>,
}

/// How the server is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Stop accepting, let requests in flight finish within the grace period, then exit.
    Drain,
    /// Stop now: close every connection without waiting.
    Now,
}

/// Runs the server until `stop` says to, then stops accepting and, for [`Stop::Drain`], lets
/// in-flight requests finish within the grace period (a later [`Stop::Now`] cuts that short).
/// `listening` receives the bound addresses as soon as both listeners are bound (before the
/// deployments load; connections wait in the backlog meanwhile), `ready` once the server accepts.
/// The one owner of the signals (the binary) sends on `stop`; every part of the server watches it.
pub async fn serve(
    config: ServeConfig,
    mut stop: tokio::sync::watch::Receiver<Option<Stop>>,
    listening: impl FnOnce(BoundAddrs),
    ready: impl FnOnce(BoundAddrs),
) -> Result<(), ServeError> {
    let public = TcpListener::bind(config.listen).await.map_err(|error| ServeError::Bind { addr: config.listen, error })?;
    let admin = match config.admin_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|error| ServeError::Bind { addr, error })?),
        None => None,
    };
    let bound = BoundAddrs {
        public: public.local_addr().map_err(|error| ServeError::Bind { addr: config.listen, error })?,
        admin: admin.as_ref().and_then(|a| a.local_addr().ok()),
    };
    listening(bound);

    let runtime = Arc::new(Runtime::new(RuntimeConfig { cache_dir: Some(config.cache_dir.join("compiled")), pooling: Some(config.pool), target: config.target.clone() })?);
    let metrics = Arc::new(Metrics::default());
    let slots = Arc::new(Semaphore::new(config.pool.instances as usize));
    let connections = Arc::new(AtomicUsize::new(0));
    let recycler = Arc::new(Recycler::start(slots.clone(), config.spare_idle, metrics.spares.clone(), connections.clone()).map_err(ServeError::Recycler)?);
    let policy = DeployPolicy {
        trust: config.trust.clone(),
        limits: config.limits,
        pool_memory: config.pool.max_memory_bytes,
        mounts: config.mounts.clone(),
        env: config.env.clone(),
        resources_root: config.cache_dir.join("packages"),
        cache_root: config.cache_dir.clone(),
        cache_max_bytes: config.cache_max_bytes,
        keystore: config.keystore.clone(),
        nn: config.nn.clone(),
        max_model_bytes: config.max_model_bytes,
        pool: reuse::PoolSlots { slots: slots.clone(), recycler: recycler.clone() },
        connection_threads: config.workers.max(1),
        gate: config.gate.clone(),
        precompiled: config.precompiled.clone(),
    };
    let store = LocalStore::open(&config.data_dir)?;
    let deployments = Arc::new(Deployments::open(runtime.clone(), Box::new(store), policy, metrics.clone()).await?);
    // A cluster node serves what its data directory holds (its last converged state) at once, and
    // converges to the desired state when NATS answers: not before.
    let cluster = match &config.cluster {
        Some(c) => {
            let nats = Arc::new(nats::NatsCluster::connect(c.nats.clone()).await?);
            let packages: Arc<dyn packages::PackageStorage> =
                Arc::new(packages::RegistryPackages::new(wasmzip_registry::Registry::new(c.registry.clone())?, c.repository.as_deref())?);
            let settings = cluster::ClusterSettings {
                node: c.node.clone(),
                resync: c.resync,
                report_every: (c.nats.node_ttl / 3).max(Duration::from_millis(200)),
                public: bound.public.to_string(),
            };
            let cluster = cluster::Cluster::new(nats, packages, c.repository.is_some(), deployments.clone(), settings);
            tokio::spawn(cluster.clone().run_reconciler());
            tokio::spawn(cluster.clone().run_reporter());
            Some(cluster)
        }
        None => None,
    };
    for package in &config.packages {
        let info = deployments.deploy_file(package, &config.grants, config.grant_requested, config.allow_downgrade).await?;
        tracing::info!(function = %info.name, routes = ?info.routes, "serving {}", package.display());
    }
    // An artefact no served package uses was given for another package, or another version.
    let served: Vec<String> = deployments.list().await.into_iter().filter_map(|f| f.active.map(|v| v.digest)).collect();
    if let Some(unused) = config.precompiled.iter().find(|a| !served.iter().any(|d| d.trim_start_matches("sha256:") == a.header().package.digest)) {
        return Err(ServeError::UnusedArtefact { path: unused.path().to_path_buf(), package: unused.header().package.to_string() });
    }

    let max_in_flight = config.max_in_flight.unwrap_or(config.pool.instances as usize * reuse::DEFAULT_MAX_CONCURRENT as usize);
    let shared = Arc::new(ServerShared {
        deployments: deployments.clone(),
        metrics: metrics.clone(),
        runtime,
        slots,
        recycler,
        request_permits: Arc::new(Semaphore::new(max_in_flight)),
        admission_waiters: AtomicUsize::new(0),
        max_admission_waiters: config.pool.instances as usize,
    });
    let workers = ConnectionWorkers::start(config.workers).map_err(ServeError::Workers)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let admin_task = admin.map(|listener| {
        let state = admin::AdminState {
            deployments,
            metrics,
            token_digest: config.admin_token.as_deref().map(admin::AdminState::digest_token),
            cluster: cluster.clone(),
        };
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let app = admin::router(state);
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move { let _ = stop.changed().await; }).await;
        })
    });
    ready(bound);

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = public.accept() => {
                let (stream, _) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("cannot hand a connection to a worker: {e}");
                        continue;
                    }
                };
                let shared = shared.clone();
                let watcher = graceful.watcher();
                let open = Counted::new(&connections);
                workers.spawn(move || async move {
                    let _open = open;
                    let stream = match tokio::net::TcpStream::from_std(stream) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!("cannot register a connection: {e}");
                            return;
                        }
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(request::handle(shared, req).await) }
                    });
                    // HTTP/1.1, and HTTP/2 with prior knowledge (h2c), on the same port: the
                    // connection's first bytes say which.
                    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
                    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS);
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(connection.into_owned()).await {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            _ = stop.wait_for(Option::is_some) => break,
        }
    }
    drop(public);
    let _ = stop_tx.send(true);
    let mode = *stop.borrow();
    if mode == Some(Stop::Now) {
        tracing::info!("stopping now: closing every connection");
    } else {
        tracing::info!("shutting down: no new connections; waiting up to {:?} for in-flight requests (signal again to stop now)", config.grace_period);
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections finished"),
            () = tokio::time::sleep(config.grace_period) => tracing::warn!("grace period over; closing the remaining connections"),
            _ = stop.wait_for(|s| *s == Some(Stop::Now)) => tracing::warn!("stopping now: closing the remaining connections"),
        }
    }
    if let Some(task) = admin_task {
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
    drop(workers);
    shared.recycler.stop();
    Ok(())
}
