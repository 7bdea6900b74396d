//! The admin API, on its own listener: `/metrics`, `/healthz` and `/readyz` (no token; keep the
//! listener private) and `/v1/...`, which needs `Authorization: Bearer TOKEN` and is refused
//! outright when the server has no token. In cluster mode deploys, rollbacks and removals change the
//! cluster's desired state, and `/v1/nodes` shows every node.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::AsyncWriteExt;
use wasmzip_package::Capability;

use crate::cluster::{Cluster, ClusterError};
use crate::deployments::{DeployError, Deployments};
use crate::desired::DesiredError;
use crate::packages::StorageError;
use crate::metrics::Metrics;

/// Largest package accepted by the deploy endpoint.
pub const MAX_UPLOAD: u64 = 4 * 1024 * 1024 * 1024 - 1;

/// State shared by the admin handlers.
#[derive(Clone)]
pub struct AdminState {
    /// The deployments.
    pub deployments: Arc<Deployments>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// SHA-256 of the bearer token, when one is configured.
    pub token_digest: Option<[u8; 32]>,
    /// This node's cluster, in cluster mode.
    pub cluster: Option<Arc<Cluster>>,
}

impl AdminState {
    /// Hashes the token so comparisons take the same time whatever is presented.
    pub fn digest_token(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/nodes", get(nodes))
        .route("/v1/functions", get(list).post(deploy))
        .route("/v1/functions/{name}/rollback", post(rollback))
        .route("/v1/functions/{name}", axum::routing::delete(remove))
        .with_state(state)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": message.to_string() }))).into_response()
}

fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(expected) = state.token_digest else {
        return Err(error(StatusCode::FORBIDDEN, "the admin API is disabled: start `wasmzip serve` with --admin-token-file"));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| AdminState::digest_token(t.trim()));
    match presented {
        Some(digest) if bool::from(digest.ct_eq(&expected)) => Ok(()),
        _ => Err(error(StatusCode::UNAUTHORIZED, "a valid bearer token is required")),
    }
}

fn status_of(e: &DeployError) -> StatusCode {
    match e {
        DeployError::NotFound(_) => StatusCode::NOT_FOUND,
        DeployError::Routes(_) | DeployError::NoPrevious(_) => StatusCode::CONFLICT,
        DeployError::Desired(DesiredError::Conflict { .. }) => StatusCode::CONFLICT,
        DeployError::Store(_) | DeployError::Storage(_) | DeployError::Desired(_) => StatusCode::INTERNAL_SERVER_ERROR,
        DeployError::Policy(_) => StatusCode::FORBIDDEN,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The HTTP status of a cluster change's refusal.
fn cluster_status(e: &ClusterError) -> StatusCode {
    match e {
        ClusterError::Deploy(e) => status_of(e),
        ClusterError::Desired(DesiredError::Unavailable(_)) | ClusterError::Storage(StorageError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        ClusterError::Desired(DesiredError::Conflict { .. }) => StatusCode::CONFLICT,
        ClusterError::Desired(DesiredError::InvalidKey(_)) | ClusterError::NoRegistry => StatusCode::BAD_REQUEST,
        ClusterError::Desired(DesiredError::Corrupt { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
        ClusterError::Storage(StorageError::Refused(_)) | ClusterError::RoundTrip(_) => StatusCode::BAD_GATEWAY,
        ClusterError::Storage(StorageError::Package(_)) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// A cluster refusal as the client sees it (503 with a `Retry-After`).
fn cluster_error(e: &ClusterError, message: String) -> Response {
    let status = cluster_status(e);
    let mut response = error(status, message);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

/// Liveness: the process answers.
async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response()
}

/// Readiness: the deployments are loaded and served (the admin API answers only from then on). A
/// cluster node that cannot reach the desired state is `degraded` but ready: it serves what has
/// converged.
async fn readyz(State(state): State<AdminState>) -> Response {
    let Some(cluster) = &state.cluster else {
        return (StatusCode::OK, axum::Json(json!({ "status": "ready" }))).into_response();
    };
    let (synced, reason) = cluster.health();
    let body = if synced { json!({ "status": "ready", "node": cluster.node() }) } else { json!({ "status": "degraded", "node": cluster.node(), "reason": reason }) };
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn nodes(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    let Some(cluster) = &state.cluster else {
        return error(StatusCode::NOT_FOUND, "this server is not in cluster mode (start it with --cluster)");
    };
    match cluster.nodes().await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => cluster_error(&e, e.to_string()),
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
}

async fn list(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    axum::Json(json!({ "functions": state.deployments.list().await })).into_response()
}

async fn deploy(State(state): State<AdminState>, headers: HeaderMap, RawQuery(query): RawQuery, body: Body) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    let mut grants = Vec::new();
    let mut grant_requested = false;
    let mut allow_downgrade = false;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "grant" => match value.parse::<Capability>() {
                Ok(c) => grants.push(c),
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            },
            "grant_requested" => grant_requested = matches!(value.as_ref(), "true" | "1" | ""),
            "allow_downgrade" => allow_downgrade = matches!(value.as_ref(), "true" | "1" | ""),
            other => return error(StatusCode::BAD_REQUEST, format!("unknown query parameter `{other}`")),
        }
    }
    if let Some(cluster) = &state.cluster {
        return deploy_to_cluster(cluster, &state, body, &grants, grant_requested, allow_downgrade).await;
    }
    let staged = match stage(&state, body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let result = state.deployments.deploy(&staged, &grants, grant_requested, allow_downgrade).await;
    let upload = unstage(staged, result.is_err()).await;
    match result {
        Ok(info) => (StatusCode::CREATED, axum::Json(info)).into_response(),
        Err(e) => {
            tracing::warn!(target: "wasmzip::deploy", upload = %upload, "refused a deployment of {upload}: {e}");
            error(status_of(&e), refusal(&upload, &e))
        }
    }
}

/// A refusal in the client's words. A package the server will not take is named (by digest);
/// other refusals (a route conflict, a limit) are about the deployment, and say so themselves.
fn refusal(upload: &str, e: &DeployError) -> String {
    match e {
        DeployError::Package(_) => format!("{upload} was refused: {}", for_client(e)),
        // The rule and the item, not the server's policy file path.
        DeployError::Policy(r) => format!("{upload} was refused by the deploy policy, rule {}: {}: {}", r.rule, r.package, r.message),
        other => other.to_string(),
    }
}

/// A deploy in cluster mode: refused before the upload is read when there is nowhere to put it.
async fn deploy_to_cluster(cluster: &Cluster, state: &AdminState, body: Body, grants: &[Capability], grant_requested: bool, allow_downgrade: bool) -> Response {
    if !cluster.has_registry() {
        return cluster_error(&ClusterError::NoRegistry, ClusterError::NoRegistry.to_string());
    }
    let staged = match stage(state, body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let result = cluster.deploy(&staged, grants, grant_requested, allow_downgrade).await;
    let upload = unstage(staged, result.is_err()).await;
    match result {
        Ok(info) => (StatusCode::CREATED, axum::Json(info)).into_response(),
        Err(e) => {
            tracing::warn!(target: "wasmzip::deploy", upload = %upload, "refused a cluster deployment of {upload}: {e}");
            let message = match &e {
                ClusterError::Deploy(d) => refusal(&upload, d),
                other => format!("{upload} was not deployed: {other}"),
            };
            cluster_error(&e, message)
        }
    }
}

/// Streams an upload into a fresh staging file.
async fn stage(state: &AdminState, body: Body) -> Result<std::path::PathBuf, Response> {
    let staged = state.deployments.staging_path().map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    if let Err(r) = receive(body, &staged).await {
        let _ = tokio::fs::remove_file(&staged).await;
        return Err(r);
    }
    Ok(staged)
}

/// Removes a staged upload; for a refused one, first reads the name refusals give it (its digest).
async fn unstage(staged: std::path::PathBuf, refused: bool) -> String {
    let upload = if refused {
        let path = staged.clone();
        tokio::task::spawn_blocking(move || upload_name(&path)).await.unwrap_or_else(|_| "the uploaded package".to_string())
    } else {
        String::new()
    };
    let _ = tokio::fs::remove_file(&staged).await;
    upload
}

/// How refusals name an upload: by the SHA-256 of its bytes (nothing in it is trusted yet).
fn upload_name(staged: &std::path::Path) -> String {
    match wasmzip_package::sha256_file(staged) {
        Ok((digest, _)) => format!("the uploaded package (sha256:{digest})"),
        Err(_) => "the uploaded package".to_string(),
    }
}

/// A refusal in words for the client that deployed: what is wrong with its package, without this
/// server's file paths or advice meant for its operator.
fn for_client(e: &DeployError) -> String {
    use wasmzip_package::PackageError as P;
    let DeployError::Package(package) = e else { return e.to_string() };
    match package.fault() {
        P::Untrusted { key_ids } => format!("it is signed by key {key_ids}, which this server does not trust"),
        P::NoTrustAnchors { key_ids } => format!("it is signed by key {key_ids}, and this server trusts no signing key"),
        P::Unsigned => "it is not signed, and this server accepts only signed packages".to_string(),
        P::Archive { error, .. } => error.to_string(),
        P::Io { action, .. } => format!("the server could not {action} it"),
        // Faults inside the package name a member, the manifest or the signature, never a path.
        fault => fault.to_string(),
    }
}

/// Streams an upload into `path`, refusing more than [`MAX_UPLOAD`] bytes.
async fn receive(body: Body, path: &std::path::Path) -> Result<(), Response> {
    let io = |e: std::io::Error| error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot stage the upload: {e}"));
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut body = body;
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| error(StatusCode::BAD_REQUEST, format!("the upload broke off: {e}")))?;
        if let Some(data) = frame.data_ref() {
            total += data.len() as u64;
            if total > MAX_UPLOAD {
                return Err(error(StatusCode::PAYLOAD_TOO_LARGE, format!("packages are limited to {MAX_UPLOAD} bytes")));
            }
            file.write_all(data).await.map_err(io)?;
        }
    }
    file.flush().await.map_err(io)?;
    Ok(())
}

async fn rollback(State(state): State<AdminState>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    if let Some(cluster) = &state.cluster {
        return match cluster.rollback(&name).await {
            Ok(info) => axum::Json(info).into_response(),
            Err(e) => cluster_error(&e, e.to_string()),
        };
    }
    match state.deployments.rollback(&name).await {
        Ok(info) => axum::Json(info).into_response(),
        Err(e) => error(status_of(&e), e),
    }
}

async fn remove(State(state): State<AdminState>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    if let Some(cluster) = &state.cluster {
        return match cluster.remove(&name).await {
            Ok(()) => axum::Json(json!({ "removed": name })).into_response(),
            Err(e) => cluster_error(&e, e.to_string()),
        };
    }
    match state.deployments.remove(&name).await {
        Ok(()) => axum::Json(json!({ "removed": name })).into_response(),
        Err(e) => error(status_of(&e), e),
    }
}
