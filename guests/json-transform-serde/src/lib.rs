//! `json-transform-serde` — the WASI 0.2 (`wasi:http/proxy`) twin of `json-transform-p3`: the same
//! typed-serde transform (`json-records`) behind the 0.2 incoming handler, so the benchmark can
//! set the two WASI versions side by side on one computation.
//!
//! Protocol: as `json-transform-p3` (200 with `json-records`' output; 400 with `{"error":...}`
//! for a body that is not a JSON array of objects; 500 when the body cannot be read).

use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct JsonTransformSerde;

wasip2::http::proxy::export!(JsonTransformSerde);

impl wasip2::exports::http::incoming_handler::Guest for JsonTransformSerde {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let (status, body) = match guest_http::read_body(request) {
            Err(message) => (500, json_records::failure_body(format!("error reading body: {message}"))),
            Ok(input) => match json_records::transform(&input) {
                Ok(body) => (200, body),
                Err(message) => (400, json_records::failure_body(message)),
            },
        };
        guest_http::respond(response_out, status, "application/json", &body);
    }
}
