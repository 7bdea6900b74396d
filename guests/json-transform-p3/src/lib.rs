//! `json-transform-p3` — the JSON transform of `json-transform` written as a user would write it
//! (typed structs and `serde_json`, in `json-records`), served as a `wasi:http/service` (WASI 0.3)
//! component. It is the benchmark's "as a user writes it" row; `json-transform-serde` is its WASI
//! 0.2 twin and `json-transform` (a hand-tuned one-pass scanner, 0.2) the second row.
//!
//! Protocol: the request body is `json-records`' input; the answer is `200`, `content-type:
//! application/json`, with `json-records`' output. A body that is not a JSON array of objects gets
//! `400`, `content-type: application/json`, `{"error":"<serde_json's message, with line and
//! column>"}`; a body that cannot be read gets `500` with the same shape.

use guest_http_p3::wasip3;
use wasip3::http::types::{ErrorCode, Request, Response};

fn failure(status: u16, error: String) -> Result<Response, ErrorCode> {
    guest_http_p3::respond(status, "application/json", json_records::failure_body(error))
}

struct JsonTransform;

wasip3::http::service::export!(JsonTransform);

impl wasip3::exports::http::handler::Guest for JsonTransform {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let input = match guest_http_p3::read_body(guest_http_p3::request(request)?).await {
            Ok((_, input)) => input,
            Err(message) => return failure(500, format!("error reading body: {message}")),
        };
        match json_records::transform(&input) {
            Ok(body) => guest_http_p3::respond(200, "application/json", body),
            Err(message) => failure(400, message),
        }
    }
}
