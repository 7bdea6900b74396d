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

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// One record: its fields in input order, values kept as the raw JSON text they came in (nothing is
/// built per value, so a request costs little more than one pass over its body). A repeated key keeps
/// its first position and its last value, like `JSON.parse`.
struct Record<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// An element of the top-level array: a record, or anything else (skipped).
struct Element<'a>(Option<Record<'a>>);

/// A key, borrowed from the input unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Element<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Element<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element<'de>, A::Error> {
                let mut fields: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
                while let Some(Key(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    set(&mut fields, key, value);
                }
                Ok(Element(Some(Record(fields))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Element(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Element<'de>, E> { Ok(Element(None)) }
            fn visit_i64<E>(self, _: i64) -> Result<Element<'de>, E> { Ok(Element(None)) }
            fn visit_u64<E>(self, _: u64) -> Result<Element<'de>, E> { Ok(Element(None)) }
            fn visit_f64<E>(self, _: f64) -> Result<Element<'de>, E> { Ok(Element(None)) }
            fn visit_str<E>(self, _: &str) -> Result<Element<'de>, E> { Ok(Element(None)) }
            fn visit_unit<E>(self) -> Result<Element<'de>, E> { Ok(Element(None)) }
        }
        d.deserialize_any(V)
    }
}

/// Sets `key` to `value`: in place when the key is already there, appended otherwise.
fn set<'a>(fields: &mut Vec<(Cow<'a, str>, &'a RawValue)>, key: Cow<'a, str>, value: &'a RawValue) {
    match fields.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => fields.push((key, value)),
    }
}

impl Record<'_> {
    fn get(&self, key: &str) -> Option<&RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    fn number_or_zero(&self, key: &str) -> f64 {
        self.get(key).and_then(|v| serde_json::from_str::<f64>(v.get()).ok()).unwrap_or(0.0)
    }
}

/// Transforms a request body into the success response body, or returns the
/// message for a `400` response.
pub fn transform(input: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(input).map_err(|e| format!("invalid JSON: {e}"))?;
    let trimmed = text.trim_start();
    if !trimmed.starts_with('[') {
        // Parse anyway so that malformed input is reported as such.
        serde_json::from_str::<IgnoredAny>(text).map_err(|e| format!("invalid JSON: {e}"))?;
        return Err("expected a JSON array of records".to_string());
    }
    let elements: Vec<Element> = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;

    let mut out = Vec::with_capacity(input.len() + input.len() / 4 + 64);
    let mut records = Vec::new();
    let mut sum_total = 0.0_f64;
    for Element(record) in elements {
        let Some(record) = record else { continue };
        if record.get("active").map(RawValue::get) != Some("true") {
            continue;
        }
        let total = record.number_or_zero("price") * record.number_or_zero("quantity");
        sum_total += total;
        let name_upper = record
            .get("name")
            .filter(|v| v.get().starts_with('"'))
            .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
            .map(|name| name.to_uppercase());
        records.push((record, total, name_upper));
    }

    out.extend_from_slice(b"{\"count\":");
    out.extend_from_slice(records.len().to_string().as_bytes());
    out.extend_from_slice(b",\"sum_total\":");
    out.extend_from_slice(js_number(sum_total).as_bytes());
    out.extend_from_slice(b",\"records\":[");
    let total_raw: Vec<Box<RawValue>> = records
        .iter()
        .map(|(_, total, _)| RawValue::from_string(js_number(*total)).expect("a number is valid JSON"))
        .collect();
    let upper_raw: Vec<Option<Box<RawValue>>> = records
        .iter()
        .map(|(_, _, upper)| upper.as_ref().map(|u| RawValue::from_string(serde_json::to_string(u).expect("a string serialises")).expect("valid JSON")))
        .collect();
    for (i, (record, _, _)) in records.into_iter().enumerate() {
        let mut fields = record.0;
        set(&mut fields, Cow::Borrowed("total"), &total_raw[i]);
        if let Some(upper) = &upper_raw[i] {
            set(&mut fields, Cow::Borrowed("name_upper"), upper);
        }
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        for (j, (key, value)) in fields.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, key.as_ref()).expect("writing to a Vec cannot fail");
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// The error response body for a message.
pub fn error_body(message: &str) -> Vec<u8> {
    let mut out = b"{\"error\":".to_vec();
    serde_json::to_writer(&mut out, message).expect("writing to a Vec cannot fail");
    out.push(b'}');
    out
}

/// An f64 as `JSON.stringify` would write it: integral values (below 2^53)
/// as integers, non-finite values as `null`.
fn js_number(x: f64) -> String {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if !x.is_finite() {
        "null".to_string()
    } else if x.fract() == 0.0 && x.abs() < EXACT {
        (x as i64).to_string() // also maps -0.0 to 0, like JSON.stringify
    } else {
        serde_json::Number::from_f64(x).map_or_else(|| "null".to_string(), |n| n.to_string())
    }
}

#[cfg(target_os = "wasi")]
mod component {
    use wasip2::http::types::{IncomingRequest, ResponseOutparam};

    struct JsonTransform;

    wasip2::http::proxy::export!(JsonTransform);

    impl wasip2::exports::http::incoming_handler::Guest for JsonTransform {
        fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
            let (status, body) = match guest_http::read_body(request) {
                Err(message) => (500, super::error_body(&format!("error reading body: {message}"))),
                Ok(input) => match super::transform(&input) {
                    Ok(output) => (200, output),
                    Err(message) => (400, super::error_body(&message)),
                },
            };
            guest_http::respond(response_out, status, "application/json", &body);
        }
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
        assert!(transform(b"[1, \"x\", [2], null, {\"active\":true,\"active\":false}]").unwrap().starts_with(b"{\"count\":0,"));
        assert!(transform(b"").unwrap_err().starts_with("invalid JSON: "));
        assert!(transform(b"[{").unwrap_err().starts_with("invalid JSON: "));
        assert_eq!(transform(b"{\"a\":1}").unwrap_err(), "expected a JSON array of records");
    }
}
