//! `sleepy` — a `wasi:http/proxy` component that waits before answering
//! (request timeout, concurrency and guest-output logging tests).
//!
//! Protocol: `ms` query parameter = milliseconds to sleep (decimal `u64`;
//! default 1000 when absent), e.g. `GET /sleepy?ms=250`.
//!
//! 1. writes `sleepy: sleeping <ms> ms` + newline to stderr,
//! 2. writes `sleepy: stdout line` + newline to stdout,
//! 3. sleeps with `std::thread::sleep` (a WASI monotonic-clock wait in the host),
//! 4. responds `200`, `content-type: text/plain`, body `slept <ms>\n`.
//!
//! An `ms` value that is not a decimal `u64` gets `400` `text/plain`
//! `error invalid ms <value>\n` (nothing printed, no sleep).
//! The request body is not read.

use std::time::Duration;

use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Sleepy;

wasip2::http::proxy::export!(Sleepy);

impl wasip2::exports::http::incoming_handler::Guest for Sleepy {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let ms = match query_param(&path, "ms") {
            None => 1000,
            Some(value) => match value.parse::<u64>() {
                Ok(ms) => ms,
                Err(_) => {
                    return guest_http::respond(response_out, 400, "text/plain", format!("error invalid ms {value}\n").as_bytes());
                }
            },
        };

        eprintln!("sleepy: sleeping {ms} ms");
        println!("sleepy: stdout line");
        std::thread::sleep(Duration::from_millis(ms));
        guest_http::respond(response_out, 200, "text/plain", format!("slept {ms}\n").as_bytes());
    }
}

/// The raw value of the first query parameter `name` (no decoding needed for digits).
fn query_param<'a>(path_with_query: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = path_with_query.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}
