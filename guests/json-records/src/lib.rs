//! The JSON transform of the serde guests (`json-transform-p3`, WASI 0.3, and
//! `json-transform-serde`, WASI 0.2), written as a user would write it: typed structs and
//! `serde_json`. The guests only move bytes in and out; this crate is the whole computation.
//!
//! The input must be a JSON array of records `{name, price, quantity, active}` (each field
//! optional; others are ignored). Records with `"active": true` are kept, in input order, each as
//! `{name, price, quantity, active, total, name_upper}`: `total` is `price * quantity` (a missing
//! number counts as 0), `name_upper` the name in Unicode upper case (both absent fields are left
//! out). The output is `{"count":<kept>,"sum_total":<sum of totals>,"records":[...]}`. Unlike the
//! hand-tuned scanner (`json-transform`), fields the struct does not name are dropped, and numbers
//! come out as `serde_json` writes them (`6.0`).

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Record {
    #[serde(default)]
    active: bool,
    #[serde(default)]
    price: Option<f64>,
    #[serde(default)]
    quantity: Option<f64>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Serialize)]
struct Enriched {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    price: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantity: Option<f64>,
    active: bool,
    total: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    name_upper: Option<String>,
}

#[derive(Serialize)]
struct Summary {
    count: usize,
    sum_total: f64,
    records: Vec<Enriched>,
}

#[derive(Serialize)]
struct Failure {
    error: String,
}

/// The transform itself: a request body in, a response body or an error message out.
pub fn transform(input: &[u8]) -> Result<Vec<u8>, String> {
    let records: Vec<Record> = serde_json::from_slice(input).map_err(|e| e.to_string())?;
    let records: Vec<Enriched> = records
        .into_iter()
        .filter(|r| r.active)
        .map(|r| Enriched {
            total: r.price.unwrap_or(0.0) * r.quantity.unwrap_or(0.0),
            name_upper: r.name.as_ref().map(|n| n.to_uppercase()),
            active: r.active,
            price: r.price,
            quantity: r.quantity,
            name: r.name,
        })
        .collect();
    let summary = Summary { count: records.len(), sum_total: records.iter().map(|r| r.total).sum(), records };
    serde_json::to_vec(&summary).map_err(|e| e.to_string())
}

/// The body of an error answer: `{"error":"<message>"}`.
pub fn failure_body(error: String) -> Vec<u8> {
    serde_json::to_vec(&Failure { error }).unwrap_or_else(|_| br#"{"error":"cannot encode the error"}"#.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_active_records_and_sums_their_totals() {
        let input = br#"[{"name":"ab","price":2,"quantity":3,"active":true,"extra":1},{"name":"x","active":false},{"price":1.5,"active":true}]"#;
        let out: serde_json::Value = serde_json::from_slice(&transform(input).unwrap()).unwrap();
        let expected = serde_json::json!({"count": 2, "sum_total": 6.0, "records": [
            {"name": "ab", "price": 2.0, "quantity": 3.0, "active": true, "total": 6.0, "name_upper": "AB"},
            {"price": 1.5, "active": true, "total": 0.0},
        ]});
        assert_eq!(out, expected);
    }

    #[test]
    fn input_that_is_not_an_array_of_records_is_an_error_with_its_position() {
        let error = transform(br#"{"name": 1}"#).unwrap_err();
        assert!(error.contains("line 1 column"), "{error}");
        let error = transform(br#"[{"price": "cheap"}]"#).unwrap_err();
        assert!(error.contains("invalid type"), "{error}");
        assert_eq!(failure_body("bad".into()), br#"{"error":"bad"}"#.to_vec());
    }
}
