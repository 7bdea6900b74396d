//! `counter-p3` — a `wasi:http/service` (WASI 0.3) component that shows instance reuse.
//!
//! Protocol: any request gets `200`, `content-type: application/json`,
//! `{"instance":"<16 hex digits>","count":<n>}`: `instance` is drawn from `wasi:random` the first
//! time an instance handles a request, and `count` is how many requests that instance has handled,
//! this one included. Under reuse `count` climbs within one `instance` up to the host's
//! per-instance limit, and a new `instance` starts over at 1; with a fresh instance per request it
//! is always 1.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use guest_http_p3::wasip3;
use wasip3::http::types::{ErrorCode, Request, Response};

static COUNT: AtomicU64 = AtomicU64::new(0);
static INSTANCE: OnceLock<String> = OnceLock::new();

#[derive(serde::Serialize)]
struct Answer<'a> {
    instance: &'a str,
    count: u64,
}

struct Counter;

wasip3::http::service::export!(Counter);

impl wasip3::exports::http::handler::Guest for Counter {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        let instance = INSTANCE.get_or_init(|| format!("{:016x}", wasip3::random::random::get_random_u64()));
        let count = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
        let body = serde_json::to_vec(&Answer { instance, count }).map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?;
        guest_http_p3::respond(200, "application/json", body)
    }
}
