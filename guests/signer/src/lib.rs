//! `signer` — a `wasi:http/proxy` component that signs request bodies with a host-held key
//! (through `wasmzip:crypto`, via the `wasmzip-guest` crate).
//!
//! Protocol:
//!
//! * `POST` (any path): signs the whole request body with the key named by the `x-key` request
//!   header (default `signer`). Needs the grant `crypto:key:NAME:sign`. Answers `200`,
//!   `content-type: application/json`, header `x-signature-version: N`, body
//!
//!   ```text
//!   {"key":"NAME","key_version":N,"algorithm":"ed25519"|"ecdsa-p256","signature":"<hex>"}
//!   ```
//!
//!   where `signature` is the lower-case hex of the raw signature bytes (Ed25519: 64 bytes;
//!   ECDSA P-256: DER `ECDSA-Sig-Value`) and `N` the key version that signed.
//! * `GET` of a path whose last segment is `public`, e.g. `/signer/public?key=NAME`:
//!   the public key of `NAME` (query parameter `key`, default `signer`; optional `version=N`, default
//!   the newest) as a PEM `PUBLIC KEY` block (SPKI), `200` `application/x-pem-file`, header
//!   `x-key-version: N`. Needs the `sign` grant on the key.
//! * Any other method or path: `405` `text/plain`, header `allow: GET, POST`.
//!
//! Errors are `text/plain` bodies holding the error text and a newline: key access denied → `403`,
//! key not found → `404`; a key that cannot sign (AES, HMAC), an unknown `version`, input the host
//! refused, a non-UTF-8 `x-key` header or a bad `version` → `400`; a keystore failure or a body that
//! cannot be read → `500`. The component never panics.

use std::io::Write as _;

use wasip2::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasmzip_guest::{Error, Key, to_hex};

/// Key used when the request names none.
const DEFAULT_KEY: &str = "signer";

struct Signer;

wasip2::http::proxy::export!(Signer);

impl wasip2::exports::http::incoming_handler::Guest for Signer {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let reply = match handle(request) {
            Ok(reply) => reply,
            Err(failure) => failure.into_reply(),
        };
        send(response_out, reply);
    }
}

/// A complete response.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// Why a request failed: a status and a message.
struct Failure {
    status: u16,
    message: String,
}

impl Failure {
    fn bad_request(message: impl Into<String>) -> Failure {
        Failure { status: 400, message: message.into() }
    }

    fn into_reply(self) -> Reply {
        let mut body = self.message.into_bytes();
        body.push(b'\n');
        Reply { status: self.status, headers: vec![("content-type", "text/plain".into())], body }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let status = match error {
            Error::Denied => 403,
            Error::NotFound => 404,
            Error::Unsupported | Error::UnknownVersion(_) | Error::InvalidInput(_) | Error::Malformed(_) => 400,
            _ => 500,
        };
        Failure { status, message: error.to_string() }
    }
}

fn handle(request: IncomingRequest) -> Result<Reply, Failure> {
    let path = request.path_with_query().unwrap_or_default();
    let (path_only, _) = path.split_once('?').unwrap_or((&path, ""));
    let wants_public = path_only.trim_end_matches('/').rsplit('/').next() == Some("public");
    match request.method() {
        Method::Post => sign(request),
        Method::Get if wants_public => public_key(&path),
        _ => {
            let failure = Failure { status: 405, message: "use POST to sign the body, or GET .../public?key=NAME".into() };
            let mut reply = failure.into_reply();
            reply.headers.push(("allow", "GET, POST".into()));
            Ok(reply)
        }
    }
}

/// `POST`: signs the body.
fn sign(request: IncomingRequest) -> Result<Reply, Failure> {
    let mut key_name = DEFAULT_KEY.to_string();
    for (name, value) in request.headers().entries() {
        if name.eq_ignore_ascii_case("x-key") {
            key_name = String::from_utf8(value).map_err(|_| Failure::bad_request("the x-key header is not UTF-8"))?;
        }
    }
    let body = guest_http::read_body(request)
        .map_err(|e| Failure { status: 500, message: format!("cannot read the request body: {e}") })?;

    let key = Key::open(&key_name)?;
    let signature = key.sign(&body)?;
    let json = serde_json::json!({
        "key": key_name,
        "key_version": signature.key_version(),
        "algorithm": key.key_type().as_str(),
        "signature": to_hex(signature.as_bytes()),
    });
    let mut body = json.to_string().into_bytes();
    body.push(b'\n');
    Ok(Reply {
        status: 200,
        headers: vec![
            ("content-type", "application/json".into()),
            ("x-signature-version", signature.key_version().to_string()),
        ],
        body,
    })
}

/// `GET .../public?key=NAME[&version=N]`: the public key as PEM.
fn public_key(path_with_query: &str) -> Result<Reply, Failure> {
    let key_name = query_param(path_with_query, "key").unwrap_or_else(|| DEFAULT_KEY.to_string());
    let version = match query_param(path_with_query, "version") {
        None => None,
        Some(v) => Some(
            v.parse::<u32>()
                .map_err(|_| Failure::bad_request(format!("version must be a positive integer, not `{v}`")))?,
        ),
    };
    let key = Key::open(&key_name)?;
    let public = key.public_key(version)?;
    Ok(Reply {
        status: 200,
        headers: vec![
            ("content-type", "application/x-pem-file".into()),
            ("x-key-version", public.key_version.to_string()),
        ],
        body: public.to_pem().into_bytes(),
    })
}

/// The percent-decoded value of the first query parameter `name` (`+` stays `+`).
fn query_param(path_with_query: &str, name: &str) -> Option<String> {
    let (_, query) = path_with_query.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b)))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends `reply`; failures to write are ignored (the client has gone), never a panic.
fn send(response_out: ResponseOutparam, reply: Reply) {
    let list: Vec<(String, Vec<u8>)> = reply.headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect();
    let headers = Fields::from_list(&list).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(reply.status);
    let Ok(body) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    let Ok(mut stream) = body.write() else {
        return;
    };
    let ok = stream.write_all(&reply.body).and_then(|()| std::io::Write::flush(&mut stream)).is_ok();
    drop(stream);
    if ok {
        let _ = OutgoingBody::finish(body, None);
    }
}
