//! The admin API, on its own listener: `/metrics` (no token; keep the listener private) and `/v1/...`,
//! which needs `Authorization: Bearer TOKEN` and is refused outright when the server has no token.

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

use crate::deployments::{DeployError, Deployments};
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
        DeployError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        DeployError::Policy(_) => StatusCode::FORBIDDEN,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
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
    let staged = match state.deployments.staging_path() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if let Err(r) = receive(body, &staged).await {
        let _ = tokio::fs::remove_file(&staged).await;
        return r;
    }
    let result = state.deployments.deploy(&staged, &grants, grant_requested, allow_downgrade).await;
    // Only a refusal names the upload: its digest is read before the staged file goes.
    let upload = match &result {
        Ok(_) => String::new(),
        Err(_) => {
            let path = staged.clone();
            tokio::task::spawn_blocking(move || upload_name(&path)).await.unwrap_or_else(|_| "the uploaded package".to_string())
        }
    };
    let _ = tokio::fs::remove_file(&staged).await;
    match result {
        Ok(info) => (StatusCode::CREATED, axum::Json(info)).into_response(),
        Err(e) => {
            tracing::warn!(target: "wasmzip::deploy", upload = %upload, "refused a deployment of {upload}: {e}");
            // A package the server will not take is named (by digest) in the answer; other refusals
            // (a route conflict, a limit) are about the deployment, and say so themselves.
            let message = match &e {
                DeployError::Package(_) => format!("{upload} was refused: {}", for_client(&e)),
                // The rule and the item, not the server's policy file path.
                DeployError::Policy(r) => format!("{upload} was refused by the deploy policy, rule {}: {}: {}", r.rule, r.package, r.message),
                other => other.to_string(),
            };
            error(status_of(&e), message)
        }
    }
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
    match state.deployments.rollback(&name).await {
        Ok(info) => axum::Json(info).into_response(),
        Err(e) => error(status_of(&e), e),
    }
}

async fn remove(State(state): State<AdminState>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    match state.deployments.remove(&name).await {
        Ok(()) => axum::Json(json!({ "removed": name })).into_response(),
        Err(e) => error(status_of(&e), e),
    }
}
