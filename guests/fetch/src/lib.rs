//! `fetch` — a `wasi:http/proxy` component that makes one outbound HTTP GET
//! (outbound allow-list / denial tests).
//!
//! Protocol: the target URL comes from the query parameter `url`,
//! percent-decoded (`+` decodes to a space), e.g.
//! `GET /fetch?url=http%3A%2F%2F127.0.0.1%3A8080%2Fx`. It must be absolute:
//! `<scheme>://<authority>[<path>][?<query>]` (a `#fragment` is dropped, an
//! empty path becomes `/`).
//!
//! The guest sends `GET` to that URL through `wasi:http/outgoing-handler`,
//! with no headers of its own (the host may add some, e.g. `traceparent`), and
//! blocks until the response arrives. If the upstream status is 3xx and it has
//! a `location` header, the guest follows it once: a new outbound GET to the
//! location (absolute, scheme-relative `//host/...`, absolute-path `/...` or
//! relative to the current path), so the host checks that URL too. A second
//! 3xx is not followed.
//!
//! Responses, all `content-type: text/plain`:
//!
//! ```text
//! 200  upstream <final upstream status>\n<final upstream body>
//! 502  error <ErrorCode>        outbound request or response failed; <ErrorCode> is
//!                               the `ErrorCode` Debug format without its `ErrorCode::`
//!                               prefix, e.g. `error HttpRequestDenied`,
//!                               `error ConnectionRefused`, `error DnsError(...)`;
//!                               other failures: `error <message>`
//! 400  error <message>          no `url` parameter, or it is not an absolute URL
//! ```


use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method, OutgoingRequest, ResponseOutparam, Scheme,
};
use wasip2::io::streams::StreamError;

struct Fetch;

wasip2::http::proxy::export!(Fetch);

impl wasip2::exports::http::incoming_handler::Guest for Fetch {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let target = match query_param(&path, "url") {
            None => Err("missing url query parameter".to_string()),
            Some(url) => Url::parse(&url),
        };
        let target = match target {
            Ok(target) => target,
            Err(message) => return guest_http::respond(response_out, 400, "text/plain", format!("error {message}").as_bytes()),
        };

        let result = get(&target).and_then(|first| match first.redirect_to() {
            Some(location) => match target.resolve(&location) {
                Ok(next) => get(&next),
                Err(message) => Err(message),
            },
            None => Ok(first),
        });
        match result {
            Ok(done) => {
                let mut body = format!("upstream {}\n", done.status).into_bytes();
                body.extend_from_slice(&done.body);
                guest_http::respond(response_out, 200, "text/plain", &body);
            }
            Err(message) => guest_http::respond(response_out, 502, "text/plain", format!("error {message}").as_bytes()),
        }
    }
}

/// An absolute URL split the way `wasi:http` wants it.
struct Url {
    scheme: String,
    authority: String,
    path_with_query: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, String> {
        let invalid = || format!("invalid url {url:?}");
        let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
        if scheme.is_empty() {
            return Err(invalid());
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() {
            return Err(invalid());
        }
        Ok(Url {
            scheme: scheme.to_ascii_lowercase(),
            authority: authority.to_string(),
            path_with_query: normalize_path(&rest[end..]),
        })
    }

    /// Resolves a `location` header value against this URL.
    fn resolve(&self, location: &str) -> Result<Url, String> {
        if location.contains("://") {
            Url::parse(location)
        } else if location.starts_with("//") {
            Url::parse(&format!("{}:{location}", self.scheme))
        } else if location.starts_with('/') {
            Ok(Url { path_with_query: normalize_path(location), ..self.clone_base() })
        } else {
            let path = self.path_with_query.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            Ok(Url { path_with_query: normalize_path(&format!("{dir}{location}")), ..self.clone_base() })
        }
    }

    fn clone_base(&self) -> Url {
        Url { scheme: self.scheme.clone(), authority: self.authority.clone(), path_with_query: String::new() }
    }
}

/// Drops a fragment and makes sure the result starts with `/`.
fn normalize_path(path_with_query: &str) -> String {
    let without_fragment = path_with_query.split('#').next().unwrap_or("");
    if without_fragment.starts_with('/') {
        without_fragment.to_string()
    } else {
        format!("/{without_fragment}")
    }
}

/// A received upstream response.
struct Fetched {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

impl Fetched {
    fn redirect_to(&self) -> Option<String> {
        if (300..400).contains(&self.status) { self.location.clone() } else { None }
    }
}

/// One outbound GET; the error is the text after `error ` in a 502 response.
fn get(url: &Url) -> Result<Fetched, String> {
    let request = OutgoingRequest::new(Fields::new());
    let scheme = match url.scheme.as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    request.set_method(&Method::Get).map_err(|()| "invalid method".to_string())?;
    request.set_scheme(Some(&scheme)).map_err(|()| format!("invalid scheme {:?}", url.scheme))?;
    request.set_authority(Some(&url.authority)).map_err(|()| format!("invalid authority {:?}", url.authority))?;
    request
        .set_path_with_query(Some(&url.path_with_query))
        .map_err(|()| format!("invalid path {:?}", url.path_with_query))?;

    // No `body()` call: the request goes out with an empty body.
    let future = outgoing_handler::handle(request, None).map_err(error_code_text)?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(error_code_text(code)),
        Some(Err(())) => return Err("response already taken".to_string()),
        None => return Err("response not ready after waiting".to_string()),
    };

    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .first()
        .map(|value| String::from_utf8_lossy(value).into_owned());

    let body = response.consume().map_err(|()| "response body already taken".to_string())?;
    let stream = body.stream().map_err(|()| "response body stream already taken".to_string())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(match wasip2::http::types::http_error_code(&error) {
                    Some(code) => error_code_text(code),
                    None => error.to_debug_string(),
                });
            }
        }
    }
    drop(stream); // a child of `body`
    drop(IncomingBody::finish(body));
    drop(response);
    drop(future);
    Ok(Fetched { status, location, body: bytes })
}

/// `ErrorCode::HttpRequestDenied` → `HttpRequestDenied`.
fn error_code_text(code: ErrorCode) -> String {
    let debug = format!("{code:?}");
    debug.strip_prefix("ErrorCode::").unwrap_or(&debug).to_string()
}

/// The first value of query parameter `name` in `path_with_query`, percent-decoded.
fn query_param(path_with_query: &str, name: &str) -> Option<String> {
    let (_, query) = path_with_query.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _, _) => {
                // Includes a `%` not followed by two hex digits, kept as is.
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
