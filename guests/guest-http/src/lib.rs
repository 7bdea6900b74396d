//! Small helpers the HTTP guests share: read a whole request body, send a whole response.

use std::io::Write as _;

use wasip2::http::types::{Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasip2::io::streams::StreamError;

/// Reads the whole request body, chunk by chunk, until the host closes the stream.
pub fn read_body(request: IncomingRequest) -> Result<Vec<u8>, String> {
    // Sized from `content-length` when there is one (the host has already checked it against the
    // body limit), so the body is not copied again each time the buffer doubles.
    let expected = request
        .headers()
        .get("content-length")
        .first()
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let body = request.consume().map_err(|()| "body already consumed".to_string())?;
    let stream = body.stream().map_err(|()| "body stream already taken".to_string())?;
    let mut bytes = Vec::with_capacity(expected.min(64 << 20));
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => return Err(error.to_debug_string()),
        }
    }
    // The stream is a child of the body: drop it before finishing the body.
    drop(stream);
    drop(IncomingBody::finish(body));
    Ok(bytes)
}

/// Sends a complete response with one `content-type` header.
pub fn respond(response_out: ResponseOutparam, status: u16, content_type: &str, body_bytes: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_string(), content_type.as_bytes().to_vec())]).expect("valid header");
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
