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
//! `JSON.stringify`: integral values below 2^53 without a fraction (`6`, not
//! `6.0`), non-finite values as `null`. Other values are copied through as
//! parsed.
//!
//! Errors: a body that is not valid JSON, or valid JSON that is not an array,
//! gets `400`, `content-type: application/json`, `{"error":"<message>"}`.
//! A failure while reading the request body gets `500` with the same shape.
//!
//! The transform itself is the pure function [`transform`], unit-tested
//! natively: `cargo test --target x86_64-unknown-linux-gnu -p json-transform`.

use serde::Serialize;
use serde_json::{Map, Number, Value};

#[derive(Serialize)]
struct Output {
    count: usize,
    sum_total: Value,
    records: Vec<Value>,
}

/// Transforms a request body into the success response body, or returns the
/// message for a `400` response.
pub fn transform(input: &[u8]) -> Result<Vec<u8>, String> {
    let parsed: Value = serde_json::from_slice(input).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Array(items) = parsed else {
        return Err("expected a JSON array of records".to_string());
    };

    let mut records = Vec::new();
    let mut sum_total = 0.0_f64;
    for item in items {
        let Value::Object(mut record) = item else { continue };
        if record.get("active") != Some(&Value::Bool(true)) {
            continue;
        }
        let total = number_or_zero(&record, "price") * number_or_zero(&record, "quantity");
        sum_total += total;
        record.insert("total".to_string(), js_number(total));
        if let Some(Value::String(name)) = record.get("name") {
            let upper = name.to_uppercase();
            record.insert("name_upper".to_string(), Value::String(upper));
        }
        records.push(Value::Object(record));
    }

    let output = Output { count: records.len(), sum_total: js_number(sum_total), records };
    Ok(serde_json::to_vec(&output).expect("serializable"))
}

/// The error response body for a message.
pub fn error_body(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": message })).expect("serializable")
}

fn number_or_zero(record: &Map<String, Value>, key: &str) -> f64 {
    record.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

/// An f64 as `JSON.stringify` would write it: integral values (below 2^53)
/// as integers, non-finite values as `null`.
fn js_number(x: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if x.fract() == 0.0 && x.abs() < EXACT {
        Value::from(x as i64) // also maps -0.0 to 0, like JSON.stringify
    } else {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

#[cfg(target_os = "wasi")]
mod component {
    use std::io::Write as _;

    use wasip2::http::types::{
        Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
    };
    use wasip2::io::streams::StreamError;

    struct JsonTransform;

    wasip2::http::proxy::export!(JsonTransform);

    impl wasip2::exports::http::incoming_handler::Guest for JsonTransform {
        fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
            let (status, body) = match read_body(request) {
                Err(message) => (500, super::error_body(&format!("error reading body: {message}"))),
                Ok(input) => match super::transform(&input) {
                    Ok(output) => (200, output),
                    Err(message) => (400, super::error_body(&message)),
                },
            };
            respond(response_out, status, &body);
        }
    }

    /// Reads the whole request body, chunk by chunk, until the stream is closed.
    fn read_body(request: IncomingRequest) -> Result<Vec<u8>, String> {
        let body = request.consume().map_err(|()| "body already consumed".to_string())?;
        let stream = body.stream().map_err(|()| "body stream already taken".to_string())?;
        let mut bytes = Vec::new();
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(error)) => return Err(error.to_debug_string()),
            }
        }
        drop(stream); // a child of `body`
        drop(IncomingBody::finish(body));
        Ok(bytes)
    }

    fn respond(response_out: ResponseOutparam, status: u16, body_bytes: &[u8]) {
        let headers = Fields::from_list(&[("content-type".to_string(), b"application/json".to_vec())])
            .expect("valid header");
        let response = OutgoingResponse::new(headers);
        response.set_status_code(status).expect("valid status");
        let body = response.body().expect("body taken once");
        ResponseOutparam::set(response_out, Ok(response));

        let mut out = body.write().expect("stream taken once");
        out.write_all(body_bytes).expect("write body");
        out.flush().expect("flush body");
        drop(out);
        OutgoingBody::finish(body, None).expect("finish body");
    }
}

#[cfg(test)]
mod tests {
    use super::transform;

    fn run(input: &str) -> String {
        String::from_utf8(transform(input.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn sample() {
        let output = run(
            r#"[{"name":"a","price":2,"quantity":3,"active":true},{"name":"b","price":1,"quantity":1,"active":false}]"#,
        );
        println!("{output}");
        assert_eq!(
            output,
            r#"{"count":1,"sum_total":6,"records":[{"name":"a","price":2,"quantity":3,"active":true,"total":6,"name_upper":"A"}]}"#
        );
    }

    #[test]
    fn missing_and_fractional_numbers() {
        let output = run(
            r#"[{"price":1.5,"active":true},{"price":0.1,"quantity":3,"active":true,"name":7},{"active":"true"},5,{"z":1,"total":9,"active":true,"name":"straße"}]"#,
        );
        assert_eq!(
            output,
            r#"{"count":3,"sum_total":0.30000000000000004,"records":[{"price":1.5,"active":true,"total":0},{"price":0.1,"quantity":3,"active":true,"name":7,"total":0.30000000000000004},{"z":1,"total":0,"active":true,"name":"straße","name_upper":"STRASSE"}]}"#
        );
    }

    #[test]
    fn empty_array() {
        assert_eq!(run("[]"), r#"{"count":0,"sum_total":0,"records":[]}"#);
    }

    #[test]
    fn errors() {
        assert!(transform(b"").unwrap_err().starts_with("invalid JSON: "));
        assert!(transform(b"[{").unwrap_err().starts_with("invalid JSON: "));
        assert_eq!(transform(b"{\"a\":1}").unwrap_err(), "expected a JSON array of records");
    }
}
