//! `echo` — a `wasi:http/proxy` component that describes the request it got.
//!
//! Protocol: any request gets `200` with `content-type: application/json` and
//! one JSON object, keys in this order:
//!
//! ```text
//! {
//!   "method":   "GET" | "POST" | ... (upper case; other methods as sent),
//!   "path":     path with query as received, e.g. "/echo/x?a=1" ("" if none),
//!   "headers":  { "<lower-case name>": "<value>", ... }   keys sorted; a
//!               repeated header's values are joined with ", " in arrival
//!               order; values are decoded as UTF-8 (lossy),
//!   "body":     the whole request body as UTF-8 (lossy),
//!   "body_len": number of body bytes,
//!   "counter":  value of a per-instance request counter after this request
//! }
//! ```
//!
//! The request body is read to the end (streamed until the host closes it).
//! Headers added by the host (such as `x-wasmzip-route-prefix` and
//! `x-wasmzip-route-remainder`) show up in `headers` like any other.
//!
//! State check: `counter` comes from a `static` `AtomicU64` incremented on
//! every request and is always reported (`?state` is the conventional query
//! for requests that look at it, but the query does not change the output).
//! A host that gives every request a fresh instance makes it `1` each time.
//!
//! If reading the body fails, the response is `500` `text/plain`
//! `error reading body: <details>`.
//!
//! Trap check: a query containing `trap` makes the guest panic before it
//! answers (a trap the host must turn into a 500, never a crash).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use wasip2::http::types::{
    IncomingRequest, Method, ResponseOutparam,
};

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

wasip2::http::proxy::export!(EchoHandler);

impl wasip2::exports::http::incoming_handler::Guest for EchoHandler {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let counter = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
        if request.path_with_query().is_some_and(|p| p.split_once('?').is_some_and(|(_, q)| q.contains("trap"))) {
            panic!("echo asked to trap");
        }

        let method = match request.method() {
            Method::Get => "GET".to_string(),
            Method::Head => "HEAD".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            Method::Connect => "CONNECT".to_string(),
            Method::Options => "OPTIONS".to_string(),
            Method::Trace => "TRACE".to_string(),
            Method::Patch => "PATCH".to_string(),
            Method::Other(other) => other,
        };
        let path = request.path_with_query().unwrap_or_default();

        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in request.headers().entries() {
            let value = String::from_utf8_lossy(&value).into_owned();
            headers
                .entry(name.to_ascii_lowercase())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert(value);
        }

        let body = match guest_http::read_body(request) {
            Ok(body) => body,
            Err(message) => {
                guest_http::respond(response_out, 500, "text/plain", format!("error reading body: {message}").as_bytes());
                return;
            }
        };

        let echo = Echo {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            body_len: body.len(),
            counter,
        };
        let json = serde_json::to_vec(&echo).expect("serializable");
        guest_http::respond(response_out, 200, "application/json", &json);
    }
}
