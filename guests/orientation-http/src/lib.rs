//! The HTTP protocol of the orientation classifier, apart from the WASI version that carries it:
//! `orientation` (WASI 0.2) and `orientation-p3` (WASI 0.3) only move the request in and the
//! [`Reply`] out.
//!
//! Every reply is `content-type: application/json`:
//!
//! ```text
//! POST <any path>, body = PNG or JPEG bytes, optional header `x-model: NAME`
//!   200 {"label":"90","scores":{"0":S0,"90":S90,"180":S180,"270":S270},
//!        "inference_us":N,"model":"NAME"}
//!       label: the highest score; scores: the model's softmax; inference_us: microseconds for
//!       passing the input + compute + reading the output (model loading not included);
//!       model: the name used (`x-model`, default `orientation`).
//!   400 {"error":"cannot decode image: ..."}       body is not a decodable PNG / JPEG, or
//!                                                   `x-model` is not UTF-8
//!   404 {"error":"wasi-nn not-found: MSG","code":"not-found","message":"MSG","model":"NAME"}
//!                                                   the host has no model of that name
//!   500 {"error":"wasi-nn CODE: MSG","code":"CODE","message":"MSG","model":"NAME"}
//!                                                   any other wasi-nn error (CODE: invalid-argument,
//!                                                   runtime-error, ...)
//!   500 {"error":"..."}                             the body could not be read, or the model's
//!                                                   output is not a [1,4] fp32 tensor
//! any other method
//!   405 {"error":"method not allowed: POST a PNG or JPEG image"}
//! ```
//!
//! The model is loaded for every request. Nothing here panics.

use serde::Serialize;
use wasi_nn_guest::{Error, spec};

/// The header that names the model.
pub const MODEL_HEADER: &str = "x-model";

/// What to answer: a status and a JSON body.
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Vec<u8>,
}

#[derive(Serialize)]
struct Scores {
    #[serde(rename = "0")]
    r0: f32,
    #[serde(rename = "90")]
    r90: f32,
    #[serde(rename = "180")]
    r180: f32,
    #[serde(rename = "270")]
    r270: f32,
}

#[derive(Serialize)]
struct Answer<'a> {
    label: &'a str,
    scores: Scores,
    inference_us: u64,
    model: &'a str,
}

#[derive(Serialize)]
struct Problem<'a> {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
}

fn reply<T: Serialize>(status: u16, body: &T) -> Reply {
    let body = serde_json::to_vec(body).unwrap_or_else(|_| br#"{"error":"cannot encode response"}"#.to_vec());
    Reply { status, body }
}

/// A reply with only an `error` message.
pub fn error(status: u16, error: impl Into<String>) -> Reply {
    reply(status, &Problem { error: error.into(), code: None, message: None, model: None })
}

/// The reply to a method other than `POST`.
pub fn method_not_allowed() -> Reply {
    error(405, "method not allowed: POST a PNG or JPEG image")
}

/// The model a request names with its `x-model` header (the default when absent or blank), or
/// the 400 reply when the value is not UTF-8.
pub fn model_name(header: Option<Vec<u8>>) -> Result<String, Reply> {
    match header.map(String::from_utf8) {
        None => Ok(spec::DEFAULT_MODEL.to_string()),
        Some(Ok(name)) if name.trim().is_empty() => Ok(spec::DEFAULT_MODEL.to_string()),
        Some(Ok(name)) => Ok(name.trim().to_string()),
        Some(Err(_)) => Err(error(400, format!("header `{MODEL_HEADER}` is not UTF-8"))),
    }
}

/// Classifies the image in `body` with `model`: the whole protocol once the request is read.
pub fn classify(model: &str, body: &[u8]) -> Reply {
    let input = match wasi_nn_guest::preprocess(body) {
        Ok(input) => input,
        Err(e) => return error(400, e.to_string()),
    };
    match wasi_nn_guest::classify(model, &input) {
        Ok(result) => {
            let [r0, r90, r180, r270] = result.scores;
            let answer = Answer { label: result.label, scores: Scores { r0, r90, r180, r270 }, inference_us: result.inference_us, model };
            reply(200, &answer)
        }
        Err(e) => {
            let status = if e.is_not_found() { 404 } else { 500 };
            let (code, message) = match &e {
                Error::Nn { code, message } => (Some(code.name()), Some(message.as_str())),
                _ => (None, None),
            };
            let model = code.map(|_| model);
            reply(status, &Problem { error: e.to_string(), code, message, model })
        }
    }
}
