//! `hello-http` — the smallest `wasi:http/proxy` component (benchmark baseline).
//!
//! Protocol: any request (any method, path or body; the request body is not
//! read) gets
//!
//! ```text
//! 200
//! content-type: text/plain
//!
//! Hello from wasmzip!\n
//! ```

use std::io::Write as _;

use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct HelloHttp;

wasip2::http::proxy::export!(HelloHttp);

impl wasip2::exports::http::incoming_handler::Guest for HelloHttp {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
            .expect("valid header");
        let response = OutgoingResponse::new(headers);
        response.set_status_code(200).expect("valid status");
        let body = response.body().expect("body taken once");
        ResponseOutparam::set(response_out, Ok(response));

        let mut out = body.write().expect("stream taken once");
        out.write_all(b"Hello from wasmzip!\n").expect("write body");
        out.flush().expect("flush body");
        drop(out);
        OutgoingBody::finish(body, None).expect("finish body");
    }
}
