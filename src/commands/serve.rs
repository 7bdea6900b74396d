//! `wasmzip serve`: host `wasi:http` functions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use wasmzip_package::manifest::{ByteSize, parse_duration};
use wasmzip_runtime::PoolConfig;
use wasmzip_server::nats::NatsOptions;
use wasmzip_server::{ClusterConfig, ServeConfig, Stop};
use wasmzip_server::function::OperatorLimits;
use wasmzip_server::reuse::OperatorReuse;

use crate::commands::bare::{Input, pack_http, sniff};
use crate::options::{CacheOptions, EngineOptions, GrantOptions, KeystoreOptions, LimitOptions, NnOptions, PolicyOptions, TrustOptions};
use crate::registry_options::{RegistryOptions, first_line};

/// Serve `http` packages: WASI 0.2 handlers with a fresh instance per request, WASI 0.3 handlers
/// with instances reused within limits; an admin API, metrics, graceful shutdown.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Packages to deploy at start (as new versions on top of what the data directory holds): files,
    /// OCI references (`HOST[:PORT]/PATH:TAG` or `…@sha256:…`, pulled with the --registry-* options),
    /// or bare .wasm components for development (served at `/`, granted only by --grant; they need
    /// --allow-unsigned).
    pub packages: Vec<PathBuf>,
    /// Public listener.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Admin listener for /metrics and the deploy API; keep it private.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// File holding the admin bearer token; without it the deploy API refuses every call.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Deployment data directory (default: WASMZIP_DATA_DIR, else $XDG_DATA_HOME/wasmzip, else
    /// ~/.local/share/wasmzip).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub trust: TrustOptions,
    #[command(flatten)]
    pub policy: PolicyOptions,
    /// Let a package given here replace a higher version the data directory serves (a deploy policy
    /// refuses that otherwise).
    #[arg(long)]
    pub allow_downgrade: bool,
    #[command(flatten)]
    pub grants: GrantOptions,
    #[command(flatten)]
    pub limits: LimitOptions,
    #[command(flatten)]
    pub engine: EngineOptions,
    /// Load a package's code from this artefact (made by `wasmzip compile`) instead of compiling it;
    /// repeatable, one per package. Each must fit a package served (by digest, target and engine).
    #[arg(long, value_name = "ARTEFACT")]
    pub precompiled: Vec<PathBuf>,
    /// Lower every function's request body limit.
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| ByteSize::parse(s))]
    pub max_request_body: Option<ByteSize>,
    /// Lower every function's response body limit.
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| ByteSize::parse(s))]
    pub max_response_body: Option<ByteSize>,
    /// Lower every function's request header limit.
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| ByteSize::parse(s))]
    pub max_header_size: Option<ByteSize>,
    /// Lower every function's outbound request limit.
    #[arg(long, value_name = "N")]
    pub max_outbound_requests: Option<u32>,
    /// Instances the pool holds: the most requests in flight; more are answered 503.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub pool_instances: u32,
    /// Largest memory of one instance; a manifest asking for more is refused at deploy.
    #[arg(long, default_value = "256MiB", value_name = "SIZE", value_parser = |s: &str| ByteSize::parse(s))]
    pub pool_max_memory: ByteSize,
    /// Memory each pool slot keeps mapped between requests, reset in place instead of faulted in
    /// again (default: 4MiB).
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| ByteSize::parse(s))]
    pub pool_keep_resident: Option<ByteSize>,
    /// How long a function's spare instance, made ahead of its next request so that request does
    /// not wait for instantiation, waits for one before it is torn down.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = |s: &str| parse_duration(s))]
    pub spare_idle: Duration,
    /// Make no spare instances: every request instantiates its own (less memory held between
    /// requests, slower requests).
    #[arg(long)]
    pub no_spares: bool,
    /// Give every request of a WASI 0.3 function a fresh instance, as WASI 0.2 functions get.
    #[arg(long)]
    pub no_reuse: bool,
    /// Lower the requests one WASI 0.3 instance serves in all (default 128).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub reuse_max_requests: Option<u32>,
    /// Lower the requests one WASI 0.3 instance serves at once (default 16).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub reuse_max_concurrent: Option<u32>,
    /// Lower how long an idle WASI 0.3 instance is kept for the next request (default 1s).
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| parse_duration(s))]
    pub reuse_idle_timeout: Option<Duration>,
    /// Most requests to WASI 0.3 functions in flight at once; more are answered 503 with
    /// Retry-After (default: --pool-instances times 16).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: Option<u64>,
    /// Threads serving client connections, each keeping its connections and their requests on
    /// one core (default: one per CPU).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// How long in-flight requests may take to finish after SIGTERM or SIGINT.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = |s: &str| parse_duration(s))]
    pub grace_period: Duration,
    #[command(flatten)]
    pub cache: CacheOptions,
    #[command(flatten)]
    pub keystore: KeystoreOptions,
    #[command(flatten)]
    pub nn: NnOptions,
    #[command(flatten)]
    pub cluster: ClusterOptions,
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// Cluster mode: many nodes converging on one desired state in NATS JetStream, packages in an OCI
/// registry.
#[derive(Debug, Args)]
pub struct ClusterOptions {
    /// Join a cluster whose desired state is in NATS JetStream at these servers
    /// (`nats://HOST:PORT`, comma-separated, any of which will do).
    #[arg(long, env = "WASMZIP_CLUSTER", value_name = "URL[,URL…]", value_delimiter = ',')]
    pub cluster: Vec<String>,
    /// The key-value bucket holding the desired state (one key per function); node status goes to
    /// BUCKET-nodes. Both are made when missing.
    #[arg(long, default_value = "wasmzip", value_name = "NAME", requires = "cluster")]
    pub cluster_bucket: String,
    /// Replicas of each bucket, when this node makes it (3 for a 3-node JetStream cluster).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=5), requires = "cluster")]
    pub cluster_replicas: u16,
    /// Where packages deployed through this node's admin API go: an OCI repository
    /// (`HOST[:PORT]/PATH`; each package at PATH/NAME:VERSION). Without it this node serves and
    /// rolls back but refuses package uploads.
    #[arg(long, value_name = "REPOSITORY", requires = "cluster")]
    pub cluster_registry: Option<String>,
    /// This node's name in the cluster (default: the host name).
    #[arg(long, env = "WASMZIP_NODE_NAME", value_name = "NAME", requires = "cluster")]
    pub node_name: Option<String>,
    /// How long a node's status lives unless it reports again: a node that stops reporting drops
    /// out of `wasmzip functions --nodes` after this long.
    #[arg(long, default_value = "15s", value_name = "DURATION", value_parser = |s: &str| parse_duration(s), requires = "cluster")]
    pub cluster_node_ttl: Duration,
    /// How often the whole desired state is read again, besides watching it.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = |s: &str| parse_duration(s), requires = "cluster")]
    pub cluster_resync: Duration,
    /// A NATS credentials file (user JWT and NKey seed), as `nsc` writes it.
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub cluster_creds: Option<PathBuf>,
    /// A NATS user (with --cluster-password-file).
    #[arg(long, value_name = "USER", requires = "cluster_password_file")]
    pub cluster_user: Option<String>,
    /// The file holding the NATS user's password.
    #[arg(long, value_name = "FILE", requires = "cluster_user")]
    pub cluster_password_file: Option<PathBuf>,
    /// The file holding a NATS authentication token.
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub cluster_token_file: Option<PathBuf>,
    /// The file holding an NKey seed to authenticate with.
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub cluster_nkey_file: Option<PathBuf>,
    /// A CA certificate (PEM) to verify the NATS servers with; repeatable.
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub cluster_tls_ca: Vec<PathBuf>,
    /// A client certificate (PEM) for NATS, with --cluster-tls-key.
    #[arg(long, value_name = "FILE", requires = "cluster_tls_key")]
    pub cluster_tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, value_name = "FILE", requires = "cluster_tls_cert")]
    pub cluster_tls_key: Option<PathBuf>,
    /// Refuse to talk to NATS without TLS.
    #[arg(long, requires = "cluster")]
    pub cluster_tls_required: bool,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "wasmzip".into())
}

impl ClusterOptions {
    /// The cluster configuration, when --cluster is given.
    fn config(&self, registry: &RegistryOptions) -> Result<Option<ClusterConfig>> {
        if self.cluster.is_empty() {
            return Ok(None);
        }
        let node = self.node_name.clone().unwrap_or_else(host_name);
        if !node.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')) || node.is_empty() || node.len() > 128 {
            bail!("--node-name `{node}`: a node name uses only letters, digits, `-` and `_` (it names a key)");
        }
        if self.cluster_node_ttl < Duration::from_secs(1) {
            bail!("--cluster-node-ttl must be at least 1s");
        }
        let user_password = match (&self.cluster_user, &self.cluster_password_file) {
            (Some(user), Some(file)) => Some((user.clone(), first_line(file, "NATS password")?)),
            _ => None,
        };
        Ok(Some(ClusterConfig {
            nats: NatsOptions {
                servers: self.cluster.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
                bucket: self.cluster_bucket.clone(),
                replicas: usize::from(self.cluster_replicas),
                node_ttl: self.cluster_node_ttl,
                credentials_file: self.cluster_creds.clone(),
                user_password,
                token: self.cluster_token_file.as_deref().map(|f| first_line(f, "NATS token")).transpose()?,
                nkey_seed: self.cluster_nkey_file.as_deref().map(|f| first_line(f, "NKey seed")).transpose()?,
                tls_ca: self.cluster_tls_ca.clone(),
                tls_client: self.cluster_tls_cert.clone().zip(self.cluster_tls_key.clone()),
                tls_required: self.cluster_tls_required,
                client_name: format!("wasmzip {node}"),
            },
            repository: self.cluster_registry.clone(),
            registry: registry.config()?,
            node,
            resync: self.cluster_resync,
        }))
    }
}

fn data_dir(explicit: Option<PathBuf>) -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = explicit.or_else(|| var("WASMZIP_DATA_DIR")) {
        return Ok(d);
    }
    if let Some(d) = var("XDG_DATA_HOME") {
        return Ok(d.join("wasmzip"));
    }
    match var("HOME") {
        Some(home) => Ok(home.join(".local/share/wasmzip")),
        None => bail!("no data directory: set --data-dir, WASMZIP_DATA_DIR or HOME"),
    }
}

/// Runs the command.
pub async fn run(args: ServeArgs) -> Result<u8> {
    let admin_token = match &args.admin_token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path).with_context(|| format!("cannot read the admin token file {}", path.display()))?;
            let token = token.trim().to_string();
            if token.len() < 16 {
                bail!("the admin token in {} is shorter than 16 characters", path.display());
            }
            Some(token)
        }
        None => None,
    };
    if args.pool_instances == 0 {
        bail!("--pool-instances must be at least 1");
    }
    if args.workers == Some(0) {
        bail!("--workers must be at least 1");
    }
    // Bare .wasm files are packed (unsigned, requesting exactly the --grant tokens) and deployed
    // like any package; the temporary packages live until the server stops.
    let cluster = args.cluster.config(&args.registry)?;
    if cluster.is_some() && !args.packages.is_empty() {
        bail!("a cluster node takes no packages on its command line: deploy them through any node's admin API (`wasmzip deploy`), and every node serves them");
    }
    let mut packed = Vec::new();
    let mut packages = Vec::new();
    let mut pulled = Vec::new();
    for path in args.packages {
        // An OCI reference (no such file here): pulled, then verified and deployed like a file.
        if crate::oci_input::is_reference(&path) {
            let file = crate::oci_input::pull_to_temp(&args.registry, &path.to_string_lossy()).await?;
            packages.push(file.path().to_path_buf());
            pulled.push(file);
            continue;
        }
        match sniff(&path)? {
            Input::Package => packages.push(path),
            Input::Wasm => {
                if !args.trust.allow_unsigned {
                    bail!("{} is a bare .wasm, which is never signed: serve it with --allow-unsigned (for development)", path.display());
                }
                let bare = pack_http(&path, &args.grants.grant, args.grants.grant_requested)?;
                packages.push(bare.path.clone());
                packed.push(bare);
            }
        }
    }
    let gate = args.policy.gate()?.map(std::sync::Arc::new);
    let config = ServeConfig {
        listen: args.listen,
        admin_listen: args.admin_listen,
        admin_token,
        data_dir: data_dir(args.data_dir)?,
        cache_dir: args.cache.root()?,
        cache_max_bytes: args.cache.max_size(),
        trust: args.policy.trust(args.trust.policy()?, gate.as_deref()),
        gate,
        allow_downgrade: args.allow_downgrade,
        packages,
        grants: args.grants.grant,
        grant_requested: args.grants.grant_requested,
        mounts: args.grants.mount,
        env: args.grants.env,
        limits: OperatorLimits {
            memory_bytes: args.limits.max_memory.map(|m| m.0),
            timeout: args.limits.timeout,
            request_body: args.max_request_body.map(|b| b.0),
            response_body: args.max_response_body.map(|b| b.0),
            header_bytes: args.max_header_size.map(|b| b.0),
            outbound_requests: args.max_outbound_requests,
            reuse: OperatorReuse {
                disabled: args.no_reuse,
                max_requests: args.reuse_max_requests,
                max_concurrent: args.reuse_max_concurrent,
                idle_timeout: args.reuse_idle_timeout,
            },
        },
        pool: PoolConfig {
            instances: args.pool_instances,
            max_memory_bytes: args.pool_max_memory.0,
            keep_resident_bytes: args.pool_keep_resident.map(|b| b.0),
        },
        spare_idle: (!args.no_spares).then_some(args.spare_idle),
        workers: args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        grace_period: args.grace_period,
        // Opened once, when configured: every request of every function shares it (for PKCS#11, one
        // logged-in session pool).
        keystore: if args.keystore.configured() { Some(args.keystore.open(false)?) } else { None },
        nn: args.nn.config()?,
        max_model_bytes: args.nn.max_model_bytes(),
        max_in_flight: args.max_in_flight.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        cluster,
        target: args.engine.target(),
        precompiled: args
            .precompiled
            .iter()
            .map(|p| wasmzip_runtime::Artefact::open(p).map(std::sync::Arc::new))
            .collect::<Result<_, _>>()?,
    };
    let stop = stop_signals()?;
    let listening = |bound: wasmzip_server::BoundAddrs| {
        // First on stderr, before any deploy is logged, as `wasmtime serve` does: test runners
        // read the address there. Connections wait in the backlog until the deploys are done.
        eprintln!("http://{}", bound.public);
    };
    wasmzip_server::serve(config, stop, listening, |bound| {
        println!("serving on http://{}", bound.public);
        if let Some(admin) = bound.admin {
            println!("admin on http://{admin}");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    })
    .await?;
    drop(packed);
    drop(pulled);
    Ok(0)
}

/// The one owner of the server's signals: SIGTERM asks it to drain (requests in flight finish
/// within the grace period); SIGINT, or any second signal, stops it at once. Fails when the
/// handlers cannot be installed, rather than serving a process no signal could stop gracefully.
fn stop_signals() -> Result<tokio::sync::watch::Receiver<Option<Stop>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let (tx, rx) = tokio::sync::watch::channel(None);
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = term.recv() => Stop::Drain,
            _ = int.recv() => Stop::Now,
        };
        let _ = tx.send(Some(first));
        if first == Stop::Drain {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = tx.send(Some(Stop::Now));
        }
    });
    Ok(rx)
}
