//! `hello-http-p3` — the smallest `wasi:http/service` (WASI 0.3) component, twin of `hello-http`
//! (benchmark baseline).
//!
//! Protocol: any request (any method, path or body; the request body is not read) gets `200`,
//! `content-type: text/plain`, body `Hello from wasmzip!\n`.

use guest_http_p3::wasip3;
use wasip3::http::types::{ErrorCode, Request, Response};

struct HelloHttp;

wasip3::http::service::export!(HelloHttp);

impl wasip3::exports::http::handler::Guest for HelloHttp {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        guest_http_p3::respond(200, "text/plain", "Hello from wasmzip!\n")
    }
}
