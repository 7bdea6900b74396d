//! `echo-p3` — a `wasi:http/service` (WASI 0.3) component that describes the request it got, twin
//! of `echo`.
//!
//! Protocol: any request gets `200` with `content-type: application/json` and one JSON object:
//!
//! ```text
//! {
//!   "method":   "GET" | "POST" | ...,
//!   "path":     path with query as received, e.g. "/echo-p3/x?a=1",
//!   "headers":  { "<lower-case name>": "<value>", ... }   keys sorted; a repeated header's values
//!               are joined with ", " in arrival order; values decoded as UTF-8 (lossy),
//!   "body":     the whole request body as UTF-8 (lossy),
//!   "body_len": number of body bytes,
//!   "counter":  this instance's request counter after this request
//! }
//! ```
//!
//! `wait=<ms>` in the query makes it await `monotonic-clock.wait-for` that long first. A query
//! containing `trap` makes it panic (after any wait) before it answers: a trap the host must turn
//! into a 500 for this instance's requests, never a crash. A body that cannot be read gets `500`
//! `text/plain` `error reading body: <details>`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use guest_http_p3::wasip3;
use serde::Serialize;
use wasip3::http::types::{ErrorCode, Request, Response};

static COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Serialize)]
struct Echo {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
    body_len: usize,
    counter: u64,
}

struct EchoHandler;

wasip3::http::service::export!(EchoHandler);

impl wasip3::exports::http::handler::Guest for EchoHandler {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let counter = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
        let request = guest_http_p3::request(request)?;
        let query = request.uri().query().unwrap_or_default().to_string();
        if let Some(ms) = guest_http_p3::query_param(request.uri(), "wait").and_then(|v| v.parse::<u64>().ok()) {
            wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
        }
        if query.contains("trap") {
            panic!("echo-p3 asked to trap");
        }
        let method = request.method().to_string();
        let path = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in request.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            headers
                .entry(name.as_str().to_string())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert(value);
        }
        let body = match guest_http_p3::read_body(request).await {
            Ok((_, body)) => body,
            Err(message) => return guest_http_p3::respond(500, "text/plain", format!("error reading body: {message}")),
        };
        let echo = Echo { method, path, headers, body: String::from_utf8_lossy(&body).into_owned(), body_len: body.len(), counter };
        let json = serde_json::to_vec(&echo).map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?;
        guest_http_p3::respond(200, "application/json", json)
    }
}
