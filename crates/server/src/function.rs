//! A deployed function version, built once: its planned component (capabilities, models, compiled
//! and pre-instantiated code), its HTTP limits, and how its requests reach an instance (a fresh
//! one per request for WASI 0.2; Wasmtime's reusing handler for WASI 0.3).

use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmzip_package::manifest::{Limits, RoutePrefix};
use wasmzip_runtime::capabilities::http::DEFAULT_OUTBOUND_REQUESTS;
use wasmzip_runtime::{InstanceState, PlannedComponent};

use crate::metrics::FunctionMetrics;
use crate::reuse::{OperatorReuse, ReuseLimits, ThreadHandlers};
use crate::spare::SpareSlot;

/// Request body limit when neither manifest nor operator sets one.
pub const DEFAULT_REQUEST_BODY: u64 = 16 * 1024 * 1024;
/// Response body limit when neither manifest nor operator sets one.
pub const DEFAULT_RESPONSE_BODY: u64 = 64 * 1024 * 1024;
/// Request header limit when neither manifest nor operator sets one.
pub const DEFAULT_HEADER_BYTES: u64 = 64 * 1024;
/// Request timeout when neither manifest nor operator sets one.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Per-request limits of a function: the manifest's, lowered by the operator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Linear memory, all memories together.
    pub memory_bytes: u64,
    /// Wall-clock limit of one request, response body included.
    pub timeout: Duration,
    /// Largest request body.
    pub request_body: u64,
    /// Largest response body.
    pub response_body: u64,
    /// Largest total size of request header names and values.
    pub header_bytes: u64,
    /// Most outbound requests.
    pub outbound_requests: u32,
}

/// Operator limits for serving; each only lowers what a manifest asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperatorLimits {
    /// Memory.
    pub memory_bytes: Option<u64>,
    /// Request timeout.
    pub timeout: Option<Duration>,
    /// Request body.
    pub request_body: Option<u64>,
    /// Response body.
    pub response_body: Option<u64>,
    /// Header bytes.
    pub header_bytes: Option<u64>,
    /// Outbound requests.
    pub outbound_requests: Option<u32>,
    /// Instance reuse of WASI 0.3 functions.
    pub reuse: OperatorReuse,
}

fn lower<T: Ord + Copy>(manifest: Option<T>, operator: Option<T>, default: T) -> T {
    match (manifest, operator) {
        (Some(m), Some(o)) => m.min(o),
        (m, o) => m.or(o).unwrap_or(default),
    }
}

impl HttpLimits {
    /// The limits in force for a manifest's `limits`, the operator's, and the pool's memory ceiling.
    pub fn resolve(manifest: &Limits, operator: &OperatorLimits, pool_memory: u64) -> Self {
        HttpLimits {
            memory_bytes: lower(manifest.memory_bytes, operator.memory_bytes, pool_memory).min(pool_memory),
            timeout: lower(manifest.timeout_ms.map(Duration::from_millis), operator.timeout, DEFAULT_REQUEST_TIMEOUT),
            request_body: lower(manifest.request_body_bytes, operator.request_body, DEFAULT_REQUEST_BODY),
            response_body: lower(manifest.response_body_bytes, operator.response_body, DEFAULT_RESPONSE_BODY),
            header_bytes: lower(manifest.header_bytes, operator.header_bytes, DEFAULT_HEADER_BYTES),
            outbound_requests: lower(manifest.outbound_requests, operator.outbound_requests, DEFAULT_OUTBOUND_REQUESTS),
        }
    }
}

/// One deployed version of a function, ready to serve.
pub struct LoadedFunction {
    /// Function (package) name.
    pub name: Arc<str>,
    /// Package version.
    pub version: Arc<str>,
    /// Package digest.
    pub digest: String,
    /// SHA-256 of the package file.
    pub archive_digest: String,
    /// Keys whose signatures over the package hold.
    pub signers: Vec<String>,
    /// Deploy sequence number.
    pub sequence: u64,
    /// Routes it serves.
    pub routes: Vec<RoutePrefix>,
    /// The planned component: capabilities, models, keystore, compiled code.
    pub planned: Arc<PlannedComponent>,
    /// How its requests reach an instance.
    pub handler: Handler,
    /// Per-request limits.
    pub limits: HttpLimits,
    /// Tokens granted at deploy.
    pub grants: Vec<String>,
    /// Effective capabilities, as tokens.
    pub effective: Vec<String>,
    /// Its metric handles.
    pub metrics: FunctionMetrics,
    /// The instance made ahead of its next request, if any (WASI 0.2 functions).
    pub spare: SpareSlot,
}

/// How a function's requests reach an instance.
pub enum Handler {
    /// WASI 0.2 (`wasi:http/incoming-handler`): a fresh instance per request, from this
    /// pre-instantiated entry point (or the function's spare, made from it ahead of time).
    Fresh(ProxyPre<InstanceState>),
    /// WASI 0.3 (`wasi:http/handler`): Wasmtime's handler, which reuses instances within the limits.
    Reused(ThreadHandlers),
}

impl Handler {
    /// The WASI 0.2 entry point, for a function that has one.
    pub fn fresh(&self) -> Option<&ProxyPre<InstanceState>> {
        match self {
            Handler::Fresh(pre) => Some(pre),
            Handler::Reused(_) => None,
        }
    }

    /// The reuse limits in force (a fresh instance per request for WASI 0.2).
    pub fn reuse(&self) -> ReuseLimits {
        match self {
            Handler::Fresh(_) => ReuseLimits::FRESH,
            Handler::Reused(handlers) => handlers.service().reuse(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_lowers_and_pool_caps_memory() {
        let manifest = Limits { memory_bytes: Some(512 << 20), timeout_ms: Some(5000), request_body_bytes: Some(1024), ..Default::default() };
        let operator = OperatorLimits { timeout: Some(Duration::from_secs(1)), request_body: Some(4096), ..Default::default() };
        let l = HttpLimits::resolve(&manifest, &operator, 128 << 20);
        assert_eq!(l.memory_bytes, 128 << 20);
        assert_eq!(l.timeout, Duration::from_secs(1));
        assert_eq!(l.request_body, 1024);
        assert_eq!(l.response_body, DEFAULT_RESPONSE_BODY);
        assert_eq!(l.outbound_requests, DEFAULT_OUTBOUND_REQUESTS);
    }
}
