//! `orientation` — a `wasi:http/proxy` component that classifies the rotation of a posted image
//! with a model the host provides through wasi-nn (`load-by-name`, via `wasi-nn-guest`).
//!
//! Protocol (every response is `content-type: application/json`):
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
//! The model is loaded for every request. The guest never panics.

use serde::Serialize;
use wasi_nn_guest::{Error, spec};
use wasip2::http::types::{IncomingRequest, Method, ResponseOutparam};

/// The header that names the model.
const MODEL_HEADER: &str = "x-model";

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

fn send<T: Serialize>(response_out: ResponseOutparam, status: u16, body: &T) {
    let json = serde_json::to_vec(body).unwrap_or_else(|_| br#"{"error":"cannot encode response"}"#.to_vec());
    guest_http::respond(response_out, status, "application/json", &json);
}

fn send_error(response_out: ResponseOutparam, status: u16, error: impl Into<String>) {
    send(response_out, status, &Problem { error: error.into(), code: None, message: None, model: None });
}

struct Orientation;

wasip2::http::proxy::export!(Orientation);

impl wasip2::exports::http::incoming_handler::Guest for Orientation {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        if !matches!(request.method(), Method::Post) {
            send_error(response_out, 405, "method not allowed: POST a PNG or JPEG image");
            return;
        }

        let header = request
            .headers()
            .entries()
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(MODEL_HEADER))
            .map(|(_, value)| value);
        let model = match header.map(String::from_utf8) {
            None => spec::DEFAULT_MODEL.to_string(),
            Some(Ok(name)) if name.trim().is_empty() => spec::DEFAULT_MODEL.to_string(),
            Some(Ok(name)) => name.trim().to_string(),
            Some(Err(_)) => {
                send_error(response_out, 400, format!("header `{MODEL_HEADER}` is not UTF-8"));
                return;
            }
        };

        let body = match guest_http::read_body(request) {
            Ok(body) => body,
            Err(message) => {
                send_error(response_out, 500, format!("cannot read body: {message}"));
                return;
            }
        };

        let input = match wasi_nn_guest::preprocess(&body) {
            Ok(input) => input,
            Err(error) => {
                send_error(response_out, 400, error.to_string());
                return;
            }
        };

        match wasi_nn_guest::classify(&model, &input) {
            Ok(result) => {
                let [r0, r90, r180, r270] = result.scores;
                let answer = Answer {
                    label: result.label,
                    scores: Scores { r0, r90, r180, r270 },
                    inference_us: result.inference_us,
                    model: &model,
                };
                send(response_out, 200, &answer);
            }
            Err(error) => {
                let status = if error.is_not_found() { 404 } else { 500 };
                let (code, message) = match &error {
                    Error::Nn { code, message } => (Some(code.name()), Some(message.as_str())),
                    _ => (None, None),
                };
                let model = code.map(|_| model.as_str());
                send(response_out, status, &Problem { error: error.to_string(), code, message, model });
            }
        }
    }
}
