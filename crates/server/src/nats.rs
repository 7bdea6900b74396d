//! Desired state and node status in NATS JetStream key-value buckets: `BUCKET` holds one key per
//! function (a compare-and-set is an update expecting the key's last revision), `BUCKET-nodes` one
//! key per node, which expires when the node stops reporting.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use tokio::sync::OnceCell;

use crate::desired::{DesiredError, DesiredEvent, DesiredFunction, DesiredListing, DesiredState, decode, encode, valid_key};
use crate::store::FunctionRecord;

/// Versions of each key the bucket keeps (for an operator reading its history with `nats kv history`).
pub const BUCKET_HISTORY: i64 = 10;
/// How long one request to JetStream may take before the desired state counts as unavailable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How to reach NATS and which buckets to use.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Server URLs (`nats://HOST:PORT`), any of which will do.
    pub servers: Vec<String>,
    /// The desired-state bucket; node status goes to `BUCKET-nodes`.
    pub bucket: String,
    /// Replicas of each bucket when this node creates it.
    pub replicas: usize,
    /// How long a node's status lives without being renewed.
    pub node_ttl: Duration,
    /// A NATS credentials file (JWT and NKey seed).
    pub credentials_file: Option<PathBuf>,
    /// User and password.
    pub user_password: Option<(String, String)>,
    /// An authentication token.
    pub token: Option<String>,
    /// An NKey seed.
    pub nkey_seed: Option<String>,
    /// Extra root certificates (PEM files) to verify the servers with.
    pub tls_ca: Vec<PathBuf>,
    /// A client certificate and its key (PEM files).
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// Refuse to talk to NATS without TLS.
    pub tls_required: bool,
    /// The name this node tells the servers.
    pub client_name: String,
}

/// Why NATS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// A credentials or certificate file could not be read.
    #[error("cannot read the NATS credentials file {}: {error}", path.display())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// The options do not make a connection.
    #[error("cannot connect to NATS at {servers}: {message}")]
    Connect {
        /// The servers.
        servers: String,
        /// What failed.
        message: String,
    },
    /// The bucket name is not one JetStream takes.
    #[error("`{0}` cannot name a key-value bucket: use letters, digits, `-` and `_`")]
    Bucket(String),
}

/// A connection to NATS with the two buckets, made on first use (so that a node starts, and serves,
/// while NATS is down).
pub struct NatsCluster {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    options: NatsOptions,
    desired: OnceCell<kv::Store>,
    nodes: OnceCell<kv::Store>,
    /// Woken on every reconnection: a watch may have missed changes.
    pub reconnected: Arc<tokio::sync::Notify>,
}

impl NatsCluster {
    /// Starts connecting (in the background: this returns at once, and the client keeps trying).
    pub async fn connect(options: NatsOptions) -> Result<NatsCluster, NatsError> {
        if options.bucket.is_empty() || !options.bucket.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(NatsError::Bucket(options.bucket.clone()));
        }
        let reconnected = Arc::new(tokio::sync::Notify::new());
        let events = reconnected.clone();
        let mut connect = async_nats::ConnectOptions::new()
            .name(&options.client_name)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(REQUEST_TIMEOUT))
            // Back in well under a second once a server answers again: 0, 50, 100, 200, 400 ms, then
            // every 500 ms.
            .reconnect_delay_callback(|attempts| if attempts <= 1 { Duration::ZERO } else { Duration::from_millis((25u64 << attempts.min(5)).min(500)) })
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!(target: "wasmzip::cluster", "connected to NATS");
                            // One reconciler waits on it; a permit is kept if it is busy.
                            events.notify_one();
                        }
                        async_nats::Event::Disconnected => tracing::warn!(target: "wasmzip::cluster", "lost the connection to NATS; serving what has converged"),
                        other => tracing::debug!(target: "wasmzip::cluster", "NATS: {other}"),
                    }
                }
            });
        if let Some(path) = &options.credentials_file {
            connect = connect.credentials_file(path).await.map_err(|error| NatsError::Credentials { path: path.clone(), error })?;
        }
        if let Some((user, password)) = &options.user_password {
            connect = connect.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &options.token {
            connect = connect.token(token.clone());
        }
        if let Some(seed) = &options.nkey_seed {
            connect = connect.nkey(seed.clone());
        }
        for ca in &options.tls_ca {
            connect = connect.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &options.tls_client {
            connect = connect.add_client_certificate(cert.clone(), key.clone());
        }
        if options.tls_required {
            connect = connect.require_tls(true);
        }
        let servers: Vec<async_nats::ServerAddr> = options
            .servers
            .iter()
            .map(|s| s.parse().map_err(|e| NatsError::Connect { servers: s.clone(), message: format!("not a server address: {e}") }))
            .collect::<Result<_, _>>()?;
        let client = connect
            .connect(servers)
            .await
            .map_err(|e| NatsError::Connect { servers: options.servers.join(","), message: e.to_string() })?;
        let jetstream = jetstream::new(client.clone());
        Ok(NatsCluster { client, jetstream, options, desired: OnceCell::new(), nodes: OnceCell::new(), reconnected })
    }

    /// Whether the client is connected now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    fn unavailable(&self, what: impl std::fmt::Display) -> DesiredError {
        DesiredError::Unavailable(format!("NATS at {}: {what}", self.options.servers.join(",")))
    }

    fn check_connected(&self) -> Result<(), DesiredError> {
        if self.connected() { Ok(()) } else { Err(self.unavailable("not connected")) }
    }

    /// A bucket, made when it does not exist.
    async fn bucket(&self, name: String, max_age: Duration, history: i64) -> Result<kv::Store, DesiredError> {
        self.check_connected()?;
        match self.jetstream.get_key_value(name.clone()).await {
            Ok(store) => return Ok(store),
            Err(e) if e.kind() == jetstream::context::KeyValueErrorKind::GetBucket => {}
            Err(e) => return Err(self.unavailable(format!("cannot open bucket {name}: {e}"))),
        }
        let config = kv::Config {
            bucket: name.clone(),
            description: "wasmzip".into(),
            history,
            max_age,
            num_replicas: self.options.replicas,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        match self.jetstream.create_key_value(config).await {
            Ok(store) => {
                tracing::info!(target: "wasmzip::cluster", bucket = %name, replicas = self.options.replicas, "created the key-value bucket");
                Ok(store)
            }
            // Another node made it in between.
            Err(_) => self.jetstream.get_key_value(name.clone()).await.map_err(|e| self.unavailable(format!("cannot open bucket {name}: {e}"))),
        }
    }

    async fn desired(&self) -> Result<&kv::Store, DesiredError> {
        self.desired.get_or_try_init(|| self.bucket(self.options.bucket.clone(), Duration::ZERO, BUCKET_HISTORY)).await
    }

    async fn nodes(&self) -> Result<&kv::Store, DesiredError> {
        self.nodes.get_or_try_init(|| self.bucket(format!("{}-nodes", self.options.bucket), self.options.node_ttl, 1)).await
    }

    /// Writes this node's status (expires after the node TTL unless written again).
    pub async fn report_node(&self, node: &str, status: &serde_json::Value) -> Result<(), DesiredError> {
        self.check_connected()?;
        let store = self.nodes().await?;
        let bytes = serde_json::to_vec(status).expect("status serialises");
        store.put(node, bytes.into()).await.map_err(|e| self.unavailable(format!("cannot report node {node}: {e}")))?;
        Ok(())
    }

    /// Every node's status that has not expired.
    pub async fn node_statuses(&self) -> Result<BTreeMap<String, serde_json::Value>, DesiredError> {
        self.check_connected()?;
        let store = self.nodes().await?;
        let mut out = BTreeMap::new();
        let mut keys = match store.keys().await {
            Ok(k) => k,
            Err(e) => return Err(self.unavailable(format!("cannot list nodes: {e}"))),
        };
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| self.unavailable(format!("cannot list nodes: {e}")))?;
            if let Some(entry) = store.entry(key.clone()).await.map_err(|e| self.unavailable(e))?
                && entry.operation == kv::Operation::Put
                && let Ok(value) = serde_json::from_slice(&entry.value)
            {
                out.insert(key, value);
            }
        }
        Ok(out)
    }
}

fn record_of(entry: &kv::Entry) -> Result<Option<FunctionRecord>, DesiredError> {
    match entry.operation {
        kv::Operation::Put => decode(&entry.key, &entry.value).map(Some),
        kv::Operation::Delete | kv::Operation::Purge => Ok(None),
    }
}

#[async_trait::async_trait]
impl DesiredState for NatsCluster {
    async fn get(&self, function: &str) -> Result<(Option<FunctionRecord>, u64), DesiredError> {
        if !valid_key(function) {
            return Err(DesiredError::InvalidKey(function.to_string()));
        }
        self.check_connected()?;
        let store = self.desired().await?;
        match store.entry(function).await.map_err(|e| self.unavailable(e))? {
            Some(entry) => Ok((record_of(&entry)?, entry.revision)),
            None => Ok((None, 0)),
        }
    }

    async fn list(&self) -> Result<DesiredListing, DesiredError> {
        self.check_connected()?;
        let store = self.desired().await?;
        let mut keys = store.keys().await.map_err(|e| self.unavailable(format!("cannot list functions: {e}")))?;
        let mut names = Vec::new();
        while let Some(key) = keys.next().await {
            names.push(key.map_err(|e| self.unavailable(format!("cannot list functions: {e}")))?);
        }
        let mut out = DesiredListing::default();
        for name in names {
            let Some(entry) = store.entry(name.clone()).await.map_err(|e| self.unavailable(e))? else { continue };
            match record_of(&entry) {
                Ok(Some(record)) => {
                    out.functions.insert(name, DesiredFunction { record, revision: entry.revision });
                }
                Ok(None) => {}
                Err(e) => {
                    out.unreadable.insert(name, e.to_string());
                }
            }
        }
        Ok(out)
    }

    async fn compare_and_set(&self, function: &str, record: Option<&FunctionRecord>, expected: u64) -> Result<u64, DesiredError> {
        if !valid_key(function) {
            return Err(DesiredError::InvalidKey(function.to_string()));
        }
        self.check_connected()?;
        let store = self.desired().await?;
        let conflict = |found: u64| DesiredError::Conflict { function: function.to_string(), expected, found };
        let result = match record {
            Some(record) => store.update(function, encode(record).into(), expected).await,
            None => store.delete_expect_revision(function, Some(expected)).await.map(|()| 0),
        };
        match result {
            Ok(revision) if record.is_some() => Ok(revision),
            Ok(_) => Ok(self.get(function).await.map(|(_, r)| r).unwrap_or(0)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                let found = self.get(function).await.map(|(_, r)| r).unwrap_or(0);
                Err(conflict(found))
            }
            // The server may have taken the write before the answer was lost.
            Err(e) if e.kind() == kv::UpdateErrorKind::TimedOut => Err(self.unavailable(format!("writing function {function} timed out (it may have been written: read it back before retrying)"))),
            Err(e) => Err(self.unavailable(format!("cannot write function {function}: {e}"))),
        }
    }

    async fn watch(&self) -> Result<futures_util::stream::BoxStream<'static, DesiredEvent>, DesiredError> {
        self.check_connected()?;
        let store = self.desired().await?;
        let watch = store.watch_all().await.map_err(|e| self.unavailable(format!("cannot watch: {e}")))?;
        let stream = watch
            .take_while(|entry| std::future::ready(entry.is_ok()))
            .filter_map(|entry| async move {
                let entry = entry.ok()?;
                match record_of(&entry) {
                    Ok(record) => Some(DesiredEvent::Changed { function: entry.key.clone(), record, revision: entry.revision }),
                    Err(e) => {
                        tracing::error!(target: "wasmzip::cluster", "ignoring a change: {e}");
                        None
                    }
                }
            });
        Ok(stream.boxed())
    }
}
