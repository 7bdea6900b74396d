//! `json-transform` — a `wasi:http/proxy` component that filters and enriches
//! a JSON array of records (benchmark workload; `bench/servers/json-transform.js`
//! is the Node.js twin with the same semantics and output).
//!
//! Protocol: the request body (any method; normally `POST`) must be a JSON
//! array. Elements that are objects with `"active": true` (exactly the JSON
//! boolean `true`) are kept, in input order; everything else is dropped. Each
//! kept record keeps its fields in input order and gets, appended (or updated
//! in place if already present):
//!
//! * `"total"`: `price * quantity` in f64 arithmetic, where a missing or
//!   non-number `price` / `quantity` counts as 0;
//! * `"name_upper"`: `name` upper-cased (Unicode), only if `name` is a string.
//!
//! Success: `200`, `content-type: application/json`, body (no whitespace)
//!
//! ```text
//! {"count":<kept records>,"sum_total":<sum of totals, f64>,"records":[...]}
//! ```
//!
//! Computed numbers (`total`, `sum_total`) are written like JavaScript's
//! `JSON.stringify` (ECMAScript `Number::toString`: `6`, not `6.0`; `1e+21`;
//! non-finite values as `null`). Keys are written as `JSON.stringify` writes
//! them; other values are copied through as they came. Where this differs
//! from Node: an integer-like key (`"7"`) keeps its input position (a
//! JavaScript object lists those first), a value keeps its spelling (`1.50`
//! stays `1.50`, whitespace inside arrays and objects stays), a lone surrogate escape in a key or name becomes U+FFFD,
//! and nesting deeper than [`MAX_DEPTH`] is refused.
//!
//! Errors: a body that is not valid JSON (UTF-8 included), or valid JSON that
//! is not an array, gets `400`, `content-type: application/json`,
//! `{"error":"<message>"}`; a syntax error names its line and column. A
//! failure while reading the request body gets `500` with the same shape.
//!
//! The transform is one pass over the body with no value tree: each record's
//! fields are kept as slices of the input, validated as they are scanned, and
//! a kept record is written out at once. The common cases are read a word
//! (eight bytes) at a time instead of byte by byte: the four keys a record is
//! read for, runs of digits, short numbers' values, and upper-casing ASCII
//! names. Byte loops are what a guest pays most for under a runtime that
//! checks its deadline at every loop iteration. It is the pure function
//! [`transform`], unit-tested natively:
//! `cargo test --target x86_64-unknown-linux-gnu -p json-transform`.

mod scan;
mod write;

use scan::Scanner;
use write::{write_js_number, write_json_string};

/// Deepest nesting of arrays and objects accepted (the top-level array counts as 1), like
/// `serde_json`'s default recursion limit.
pub const MAX_DEPTH: usize = 127;

/// Room left in front of the records for the `{"count":..,"sum_total":..,"records":[` header, which
/// is only known at the end: `{"count":` (9) + 20 digits + `,"sum_total":` (13) + a number (at most 25)
/// + `,"records":[` (12).
const HEADER_ROOM: usize = 80;

/// A successful response body: `bytes()[..]` is the JSON to send.
pub struct Output {
    buf: Vec<u8>,
    start: usize,
}

impl Output {
    /// The response body.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Transforms a request body into the success response body, or returns the
/// message for a `400` response.
pub fn transform(input: &[u8]) -> Result<Output, String> {
    let mut scan = Scanner { b: input, i: 0 };
    scan.ws();
    if scan.peek() != Some(b'[') {
        // Not an array: still report malformed input as such.
        scan.value(0).and_then(|_| scan.end()).map_err(|e| e.message(input))?;
        return Err("expected a JSON array of records".to_string());
    }
    let mut out = Vec::with_capacity(HEADER_ROOM + input.len() + input.len() / 4 + 64);
    out.resize(HEADER_ROOM, 0);
    let (count, sum_total) = scan.records(&mut out).map_err(|e| e.message(input))?;
    out.extend_from_slice(b"]}");

    let mut header = Vec::with_capacity(HEADER_ROOM);
    header.extend_from_slice(b"{\"count\":");
    header.extend_from_slice(count.to_string().as_bytes());
    header.extend_from_slice(b",\"sum_total\":");
    write_js_number(&mut header, sum_total);
    header.extend_from_slice(b",\"records\":[");
    let start = HEADER_ROOM - header.len();
    out[start..HEADER_ROOM].copy_from_slice(&header);
    Ok(Output { buf: out, start })
}

/// The error response body for a message.
pub fn error_body(message: &str) -> Vec<u8> {
    let mut out = b"{\"error\":".to_vec();
    write_json_string(&mut out, message);
    out.push(b'}');
    out
}

#[cfg(target_os = "wasi")]
mod component {
    use wasip2::http::types::{IncomingRequest, ResponseOutparam};

    struct JsonTransform;

    wasip2::http::proxy::export!(JsonTransform);

    impl wasip2::exports::http::incoming_handler::Guest for JsonTransform {
        fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
            match guest_http::read_body(request) {
                Err(message) => {
                    let body = super::error_body(&format!("error reading body: {message}"));
                    guest_http::respond(response_out, 500, "application/json", &body);
                }
                Ok(input) => match super::transform(&input) {
                    Ok(output) => guest_http::respond(response_out, 200, "application/json", output.bytes()),
                    Err(message) => guest_http::respond(response_out, 400, "application/json", &super::error_body(&message)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests;
