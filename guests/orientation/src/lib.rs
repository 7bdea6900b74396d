//! `orientation` — a `wasi:http/proxy` (WASI 0.2) component that classifies the rotation of a
//! posted image with a model the host provides through wasi-nn (`load-by-name`, via
//! `wasi-nn-guest`). The protocol is `orientation-http`'s; `orientation-p3` is the WASI 0.3 twin.

use orientation_http::{MODEL_HEADER, Reply};
use wasip2::http::types::{IncomingRequest, Method, ResponseOutparam};

fn answer(request: IncomingRequest) -> Reply {
    if !matches!(request.method(), Method::Post) {
        return orientation_http::method_not_allowed();
    }
    let header = request.headers().entries().into_iter().find(|(name, _)| name.eq_ignore_ascii_case(MODEL_HEADER)).map(|(_, value)| value);
    let model = match orientation_http::model_name(header) {
        Ok(model) => model,
        Err(reply) => return reply,
    };
    match guest_http::read_body(request) {
        Ok(body) => orientation_http::classify(&model, &body),
        Err(message) => orientation_http::error(500, format!("cannot read body: {message}")),
    }
}

struct Orientation;

wasip2::http::proxy::export!(Orientation);

impl wasip2::exports::http::incoming_handler::Guest for Orientation {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let reply = answer(request);
        guest_http::respond(response_out, reply.status, "application/json", &reply.body);
    }
}
