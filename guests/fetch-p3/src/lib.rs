//! `fetch-p3` — a `wasi:http/service` (WASI 0.3) component that makes one outbound HTTP GET
//! through `wasi:http/client`, twin of `fetch` (outbound allow-list, denial and audit tests).
//!
//! Protocol: the target URL is the query parameter `url`, percent-decoded, e.g.
//! `GET /fetch-p3?url=http%3A%2F%2F127.0.0.1%3A8080%2Fx`; it must be absolute
//! (`<scheme>://<authority>[<path>][?<query>]`). The guest sends `GET` with no headers of its own
//! (the host may add some, such as `traceparent`). A 3xx answer with a `location` that is absolute,
//! scheme-relative (`//host/...`) or absolute-path (`/...`) is followed once, so the host checks
//! that URL too; a second 3xx is not followed.
//!
//! Responses, all `content-type: text/plain`:
//!
//! ```text
//! 200  upstream <final upstream status>\n<final upstream body>
//! 502  error <ErrorCode>      the `ErrorCode` Debug format, e.g. `error HttpRequestDenied`
//! 400  error <message>        no `url` parameter, or not an absolute URL
//! ```

use bytes::Bytes;
use guest_http_p3::wasip3;
use http_body_util::{BodyExt as _, Empty};
use wasip3::http::types::{ErrorCode, Request, Response};
use wasip3::http_compat::{http_from_wasi_response, http_into_wasi_request};

struct Fetch;

wasip3::http::service::export!(Fetch);

impl wasip3::exports::http::handler::Guest for Fetch {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let request = guest_http_p3::request(request)?;
        let target = match guest_http_p3::query_param(request.uri(), "url") {
            None => Err("missing url query parameter".to_string()),
            Some(url) => parse_absolute(&percent_decode(url)),
        };
        let target = match target {
            Ok(target) => target,
            Err(message) => return guest_http_p3::respond(400, "text/plain", format!("error {message}")),
        };
        let mut fetched = get(&target).await;
        if let Ok((status, _, Some(location))) = &fetched
            && (300..400).contains(status)
        {
            fetched = match resolve(&target, location) {
                Ok(next) => get(&next).await,
                Err(message) => return guest_http_p3::respond(400, "text/plain", format!("error {message}")),
            };
        }
        match fetched {
            Ok((status, body, _)) => {
                let mut text = format!("upstream {status}\n").into_bytes();
                text.extend_from_slice(&body);
                guest_http_p3::respond(200, "text/plain", text)
            }
            Err(code) => guest_http_p3::respond(502, "text/plain", format!("error {}", format!("{code:?}").trim_start_matches("ErrorCode::"))),
        }
    }
}

/// One GET: the status, the whole body, and the `location` header if any.
async fn get(url: &http::Uri) -> Result<(u16, Vec<u8>, Option<String>), ErrorCode> {
    let request = http::Request::get(url.clone()).body(Empty::<Bytes>::new()).map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?;
    let response = wasip3::http::client::send(http_into_wasi_request(request)?).await?;
    let response = http_from_wasi_response(response)?;
    let status = response.status().as_u16();
    let location = response.headers().get(http::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = response.into_body().collect().await.map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))?;
    Ok((status, body.to_bytes().to_vec(), location))
}

fn parse_absolute(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url.split('#').next().unwrap_or_default().parse().map_err(|e| format!("invalid url {url}: {e}"))?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(format!("not an absolute url: {url}"));
    }
    Ok(uri)
}

/// Where a redirect goes, from `base`.
fn resolve(base: &http::Uri, location: &str) -> Result<http::Uri, String> {
    let scheme = base.scheme_str().unwrap_or("http");
    if let Some(rest) = location.strip_prefix("//") {
        parse_absolute(&format!("{scheme}://{rest}"))
    } else if location.starts_with('/') {
        parse_absolute(&format!("{scheme}://{}{location}", base.authority().map(|a| a.as_str()).unwrap_or_default()))
    } else {
        parse_absolute(location)
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
