//! `orientation-p3` — the WASI 0.3 (`wasi:http/service`) twin of `orientation`: classifies the
//! rotation of a posted image with a model the host provides through wasi-nn. The protocol is
//! `orientation-http`'s.
//!
//! wasi-nn's calls are synchronous: while one request's forward pass runs, the other requests of
//! the same instance wait (the host runs the pass on its inference threads, not on the
//! connection's).

use guest_http_p3::wasip3;
use orientation_http::{MODEL_HEADER, Reply};
use wasip3::http::types::{ErrorCode, Request, Response};

async fn answer(request: guest_http_p3::Request) -> Reply {
    if request.method() != http::Method::POST {
        return orientation_http::method_not_allowed();
    }
    let header = request.headers().get(MODEL_HEADER).map(|value| value.as_bytes().to_vec());
    let model = match orientation_http::model_name(header) {
        Ok(model) => model,
        Err(reply) => return reply,
    };
    match guest_http_p3::read_body(request).await {
        Ok((_, body)) => orientation_http::classify(&model, &body),
        Err(message) => orientation_http::error(500, format!("cannot read body: {message}")),
    }
}

struct Orientation;

wasip3::http::service::export!(Orientation);

impl wasip3::exports::http::handler::Guest for Orientation {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let reply = answer(guest_http_p3::request(request)?).await;
        guest_http_p3::respond(reply.status, "application/json", reply.body)
    }
}
