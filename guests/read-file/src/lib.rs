//! `read-file` — an HTTP function that answers with the contents of the file named by its query.
//!
//! Protocol: `GET /...?/guest/path` → `200` with the file's bytes (`text/plain`), or `404` with
//! `error <ErrorKind:?>` when it cannot be read. The path is the whole query string, not decoded.

use std::io::Write as _;

use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct ReadFile;

wasip2::http::proxy::export!(ReadFile);

impl wasip2::exports::http::incoming_handler::Guest for ReadFile {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let path = path_with_query.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let (status, body) = match std::fs::read(path) {
            Ok(bytes) => (200, bytes),
            Err(e) => (404, format!("error {:?}\n", e.kind()).into_bytes()),
        };
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).expect("valid header");
        let response = OutgoingResponse::new(headers);
        response.set_status_code(status).expect("valid status");
        let out = response.body().expect("body taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let mut stream = out.write().expect("stream taken once");
        stream.write_all(&body).expect("write body");
        stream.flush().expect("flush body");
        drop(stream);
        OutgoingBody::finish(out, None).expect("finish body");
    }
}
