//! Small helpers the WASI 0.3 HTTP guests share: the request as an `http::Request`, its whole body,
//! a whole response, and a query parameter. Written as a user of `wasip3`'s `http-compat` layer
//! would write them.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use wasip3::http::types::{self, ErrorCode};
use wasip3::http_compat::{IncomingRequestBody, http_from_wasi_request, http_into_wasi_response};

pub use wasip3;

/// An incoming request with its body still to be read.
pub type Request = http::Request<IncomingRequestBody>;

/// The request the host handed the guest, as an `http::Request`.
pub fn request(request: types::Request) -> Result<Request, ErrorCode> {
    http_from_wasi_request(request)
}

/// Reads the whole body of `request`, returning its head and the bytes.
pub async fn read_body(request: Request) -> Result<(http::request::Parts, Vec<u8>), String> {
    let (parts, body) = request.into_parts();
    let collected = body.collect().await.map_err(|e| format!("{e:?}"))?;
    Ok((parts, collected.to_bytes().to_vec()))
}

/// A whole response: `status`, one `content-type`, and `body`.
pub fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Result<types::Response, ErrorCode> {
    let response = http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?;
    http_into_wasi_response(response)
}

/// The raw value of the first query parameter `name` of `uri`, if any.
pub fn query_param<'a>(uri: &'a http::Uri, name: &str) -> Option<&'a str> {
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}
