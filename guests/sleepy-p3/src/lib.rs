//! `sleepy-p3` — a `wasi:http/service` (WASI 0.3) component that waits before answering, twin of
//! `sleepy` (timeouts, concurrency within one instance, per-request log lines).
//!
//! Protocol: `ms` query parameter = milliseconds to wait (decimal `u64`; default 1000), e.g.
//! `GET /sleepy-p3?ms=250`.
//!
//! 1. writes `sleepy-p3: sleeping <ms> ms` + newline to stderr,
//! 2. writes `sleepy-p3: stdout line` + newline to stdout,
//! 3. awaits `wasi:clocks/monotonic-clock.wait-for` (the instance may serve other requests
//!    meanwhile),
//! 4. responds `200`, `content-type: text/plain`, body `slept <ms>\n`.
//!
//! `spin=<ms>` instead computes for that many milliseconds without awaiting anything (it reads the
//! clock in a loop), then answers `spun <ms>\n`: what a request that never yields does to the
//! other requests of its instance.
//!
//! A value that is not a decimal `u64` gets `400` `text/plain` `error invalid ms <value>\n`.

use guest_http_p3::wasip3;
use wasip3::clocks::monotonic_clock;
use wasip3::http::types::{ErrorCode, Request, Response};

struct Sleepy;

wasip3::http::service::export!(Sleepy);

impl wasip3::exports::http::handler::Guest for Sleepy {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let request = guest_http_p3::request(request)?;
        let uri = request.uri();
        if let Some(value) = guest_http_p3::query_param(uri, "spin") {
            let Ok(ms) = value.parse::<u64>() else {
                return guest_http_p3::respond(400, "text/plain", format!("error invalid ms {value}\n"));
            };
            let start = monotonic_clock::now();
            while monotonic_clock::now().saturating_sub(start) < ms * 1_000_000 {}
            return guest_http_p3::respond(200, "text/plain", format!("spun {ms}\n"));
        }
        let ms = match guest_http_p3::query_param(uri, "ms") {
            None => 1000,
            Some(value) => match value.parse::<u64>() {
                Ok(ms) => ms,
                Err(_) => return guest_http_p3::respond(400, "text/plain", format!("error invalid ms {value}\n")),
            },
        };
        eprintln!("sleepy-p3: sleeping {ms} ms");
        println!("sleepy-p3: stdout line");
        monotonic_clock::wait_for(ms * 1_000_000).await;
        guest_http_p3::respond(200, "text/plain", format!("slept {ms}\n"))
    }
}
