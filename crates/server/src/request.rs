//! One request: route, admit, check limits, make a fresh store and instantiate (or take the
//! function's spare instance, see `spare.rs`), call `wasi:http/incoming-handler`, and turn every way
//! that can end into an HTTP response. Nothing a guest does can panic the host or outlive the
//! request's deadline.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{Error as HttpError, WasiHttpView};
use wasmzip_nn::Abandoned;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, TrapOrPanicError};
use wasmzip_runtime::{InstanceScope, RequestScope};
use wasmzip_runtime::engine::schedule_guest;
use wasmzip_runtime::instance::limit_store;

use crate::ServerShared;
use crate::function::LoadedFunction;
use crate::guest_log::{GuestLog, LogTag};
use crate::metrics::DenialLabels;
use crate::function::Handler;
use crate::reuse::{PoolExhausted, ThreadHandlers, Ticket};
use crate::spare::adopt;

/// Errors carried by response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every response the server sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Header telling the guest which route prefix matched.
pub const ROUTE_PREFIX_HEADER: &str = "x-wasmzip-route-prefix";
/// Header telling the guest the rest of the path after the prefix (starting with `/`).
pub const ROUTE_REMAINDER_HEADER: &str = "x-wasmzip-route-remainder";
/// Header carrying the request id on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A response made by the host itself.
pub fn host_response(status: StatusCode, request_id: &str, message: &str) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

/// The request id: the trace id of an incoming `traceparent`, or a fresh random one.
fn request_id(req: &Request<Incoming>) -> String {
    let incoming = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).and_then(|v| {
        let parts: Vec<&str> = v.split('-').collect();
        (parts.len() == 4
            && parts[1].len() == 32
            && parts[1].bytes().all(|b| b.is_ascii_hexdigit())
            && parts[1] != "00000000000000000000000000000000")
            .then(|| parts[1].to_ascii_lowercase())
    });
    incoming.unwrap_or_else(random_id)
}

/// Request ids drawn per `getrandom` call.
const IDS_PER_DRAW: usize = 64;

/// A fresh random request id (32 hex digits). The bytes come from the OS in draws of
/// [`IDS_PER_DRAW`] ids per thread, instead of one system call per request.
fn random_id() -> String {
    thread_local! {
        static DRAWN: std::cell::RefCell<([u8; 16 * IDS_PER_DRAW], usize)> =
            const { std::cell::RefCell::new(([0; 16 * IDS_PER_DRAW], 16 * IDS_PER_DRAW)) };
    }
    DRAWN.with_borrow_mut(|(bytes, used)| {
        if *used == bytes.len() {
            if getrandom::fill(bytes).is_err() {
                // No OS randomness: ids that are at least distinct (and never all zeroes).
                static FALLBACK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                for id in bytes.chunks_exact_mut(16) {
                    let n = FALLBACK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    id[..8].fill(0);
                    id[8..].copy_from_slice(&n.to_be_bytes());
                }
            }
            *used = 0;
        }
        let id = hex::encode(&bytes[*used..*used + 16]);
        *used += 16;
        id
    })
}

/// Gives up a request's guest work when dropped while armed: aborts its task (which drops the store
/// at its next await) and marks it abandoned, so inference it queued is skipped and a wait for a
/// forward pass ends at once instead of when the pass would have finished.
struct GiveUp {
    guest: tokio::task::AbortHandle,
    abandoned: Abandoned,
    armed: bool,
}

impl Drop for GiveUp {
    fn drop(&mut self) {
        if self.armed {
            self.abandoned.set();
            self.guest.abort();
        }
    }
}

/// Decrements the in-flight gauge when the guest's work is over.
struct InFlight(Arc<ServerShared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.metrics.in_flight.dec();
    }
}

/// Handles one request end to end.
pub async fn handle(shared: Arc<ServerShared>, req: Request<Incoming>) -> Response<ResponseBody> {
    let started = Instant::now();
    let id = request_id(&req);
    let path = req.uri().path().to_string();
    let Some((function, prefix, remainder)) = shared.deployments.route(&path) else {
        return host_response(StatusCode::NOT_FOUND, &id, &format!("no function serves {path}"));
    };
    let response = serve(&shared, &function, req, &id, prefix, remainder).await;
    let status = response.status().as_u16();
    function.metrics.latency.observe(started.elapsed().as_secs_f64());
    function.metrics.count_response(&shared.metrics.requests, status);
    tracing::debug!(function = %function.name, version = %function.version, request_id = %id, status, path = %path, "request");
    response
}

async fn serve(
    shared: &Arc<ServerShared>,
    function: &Arc<LoadedFunction>,
    req: Request<Incoming>,
    id: &str,
    prefix: String,
    remainder: String,
) -> Response<ResponseBody> {
    let limits = function.limits;
    let header_bytes: u64 = req.headers().iter().map(|(n, v)| (n.as_str().len() + v.len()) as u64).sum();
    if header_bytes > limits.header_bytes {
        return host_response(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, id, &format!("request headers exceed {} bytes", limits.header_bytes));
    }
    let declared = req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.request_body) {
        return host_response(StatusCode::PAYLOAD_TOO_LARGE, id, &format!("request body exceeds {} bytes", limits.request_body));
    }
    let taken = guest_request(req, prefix, remainder, limits.request_body);
    let pre = match &function.handler {
        Handler::Reused(handlers) => return serve_reused(shared, function, handlers, taken, id).await,
        Handler::Fresh(pre) => pre.clone(),
    };
    // A spare instance comes with its own permit; otherwise this request takes one, giving up
    // another function's spare when that is what holds the last one.
    let (permit, ready) = match function.spare.take() {
        Some(spare) => {
            let (store, proxy, permit) = spare.into_parts();
            (permit, Some((store, proxy)))
        }
        None => match admit(shared).await {
            Some(permit) => (permit, None),
            None => return at_capacity(shared, id),
        },
    };
    shared.recycler.warm(function);
    shared.metrics.in_flight.inc();
    let in_flight = InFlight(shared.clone());


    let request_id: Arc<str> = Arc::from(id);
    let tag = LogTag { function: function.name.clone(), version: function.version.clone(), request_id: request_id.clone() };
    let stdout = GuestLog::new(tag.clone(), "stdout");
    let stderr = GuestLog::new(tag, "stderr");
    let abandoned = Abandoned::new();
    let metrics = shared.metrics.clone();
    let function_name = function.name.to_string();
    let scope = InstanceScope {
        label: Some(format!("request {id}")),
        trace_id: request_id.clone(),
        outbound_limit: limits.outbound_requests,
        denials: Arc::new(move |kind| {
            metrics.denials.get_or_create(&DenialLabels { function: function_name.clone(), kind: kind.to_string() }).inc();
        }),
        abandoned: abandoned.clone(),
        requests: None,
    };
    let (out, err) = (stdout.clone(), stderr.clone());
    let state = match function.planned.instance_state(&scope, |b| {
        b.stdout(out).stderr(err);
    }) {
        Ok(state) => state,
        Err(e) => {
            tracing::error!(function = %function.name, request_id = %id, "cannot set up capabilities: {e}");
            return host_response(StatusCode::INTERNAL_SERVER_ERROR, id, &format!("internal error (request {id})"));
        }
    };
    let (mut store, proxy) = match ready {
        Some((mut store, proxy)) => {
            adopt(&mut store, state);
            (store, Some(proxy))
        }
        None => {
            let mut store = Store::new(function.planned.engine(), state);
            limit_store(&mut store);
            (store, None)
        }
    };

    let (sender, receiver) = tokio::sync::oneshot::channel();
    let prepared = (|| -> wasmtime::Result<_> {
        let incoming = store.data_mut().http().new_incoming_request(Scheme::Http, taken)?;
        let outparam = store.data_mut().http().new_response_outparam(sender)?;
        Ok((incoming, outparam))
    })();
    let (incoming, outparam) = match prepared {
        Ok(p) => p,
        Err(e) => return host_response(StatusCode::BAD_REQUEST, id, &format!("malformed request: {e}")),
    };

    let fm = &function.metrics;
    let labels = &fm.labels;
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let given_up = abandoned.clone();
    schedule_guest(&mut store, Some(deadline.into_std()), move || given_up.is_set());
    let instantiation = fm.instantiation.clone();
    // The deadline covers the whole request, response body included: at the deadline the guest's
    // future is dropped inside its task, which drops the store (whether it was running wasm or waiting
    // in a host call). The 504 below does not wait for that.
    let owner = shared.clone();
    let guest = tokio::spawn(async move {
        let _in_flight = in_flight;
        let run = tokio::time::timeout_at(deadline, async {
            let proxy = match proxy {
                Some(proxy) => proxy,
                None => {
                    let t0 = Instant::now();
                    let proxy = pre.instantiate_async(&mut store).await?;
                    instantiation.observe(t0.elapsed().as_secs_f64());
                    proxy
                }
            };
            proxy.wasi_http_incoming_handler().call_handle(&mut store, incoming, outparam).await
        })
        .await;
        stdout.flush_partial();
        stderr.flush_partial();
        let outcome = run.ok().map(|result| (result, store.data().limiter().memory_refused()));
        owner.recycler.retire(store, permit);
        outcome
    });

    // Until the response head is out, the guest's work is given up when this future is dropped (the
    // client went away) or the deadline passes: the task is aborted and its queued inference skipped.
    let mut give_up = GiveUp { guest: guest.abort_handle(), abandoned, armed: true };
    let timed_out = || {
        fm.timeouts.inc();
        tracing::warn!(function = %labels.function, version = %labels.version, request_id = %id, "request exceeded its time limit of {:?}", limits.timeout);
        host_response(StatusCode::GATEWAY_TIMEOUT, id, &format!("the function exceeded its time limit (request {id})"))
    };
    match tokio::time::timeout_at(deadline, receiver).await {
        Err(_) => timed_out(),
        // `timeout_at` looks at its future first: on a loaded machine the timer may be late and the
        // head found ready after the deadline. It is still too late.
        Ok(Ok(Ok(_))) if tokio::time::Instant::now() >= deadline => timed_out(),
        Ok(Ok(Ok(response))) => {
            let (parts, body) = match guest_head(function, &request_id, response) {
                Ok(head) => head,
                Err(refused) => return refused,
            };
            // The guest goes on writing the body after the head is sent; what becomes of it is
            // reported when its task ends.
            give_up.armed = false;
            tokio::spawn(report_after_head(guest, function.clone(), id.to_string(), limits.memory_bytes));
            Response::from_parts(parts, body.boxed_unsync())
        }
        Ok(Ok(Err(code))) => {
            tracing::warn!(function = %labels.function, request_id = %id, "the function answered with an error: {code:?}");
            host_response(StatusCode::INTERNAL_SERVER_ERROR, id, &format!("the function failed (request {id})"))
        }
        Ok(Err(_)) => {
            // The guest ended without setting a response: find out how.
            match guest.await {
                Ok(Some((Err(e), memory_refused))) => {
                    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
                        shared.metrics.shed.inc();
                        return host_response(StatusCode::SERVICE_UNAVAILABLE, id, "the server is at capacity; retry shortly");
                    }
                    fm.traps.inc();
                    let cause = if memory_refused { format!("memory limit of {} bytes exceeded: {}", limits.memory_bytes, e.root_cause()) } else { e.root_cause().to_string() };
                    tracing::warn!(function = %labels.function, version = %labels.version, request_id = %id, "the function trapped: {cause}");
                    host_response(StatusCode::INTERNAL_SERVER_ERROR, id, &format!("the function trapped (request {id})"))
                }
                Ok(Some((Ok(()), _))) => {
                    tracing::warn!(function = %labels.function, request_id = %id, "the function returned without setting a response");
                    host_response(StatusCode::INTERNAL_SERVER_ERROR, id, &format!("the function sent no response (request {id})"))
                }
                Ok(None) => timed_out(),
                Err(join) => {
                    tracing::error!(function = %labels.function, request_id = %id, "the guest task failed: {join}");
                    host_response(StatusCode::INTERNAL_SERVER_ERROR, id, &format!("internal error (request {id})"))
                }
            }
        }
    }
}

/// The request as the guest sees it: the full path, plus where the route matched, a `host`, and a
/// body that fails past `limit` bytes.
fn guest_request(mut req: Request<Incoming>, prefix: String, remainder: String, limit: u64) -> Request<WasiBody> {
    let headers = req.headers_mut();
    headers.remove(ROUTE_PREFIX_HEADER);
    headers.remove(ROUTE_REMAINDER_HEADER);
    for (name, value) in [(ROUTE_PREFIX_HEADER, prefix), (ROUTE_REMAINDER_HEADER, remainder)] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    if !headers.contains_key(http::header::HOST) {
        headers.insert(http::header::HOST, HeaderValue::from_static("localhost"));
    }
    req.map(|body| {
        Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).map_err(move |e| {
            if e.is::<LengthLimitError>() {
                HttpError::HttpRequestBodySize(Some(limit))
            } else {
                match e.downcast::<hyper::Error>() {
                    Ok(h) => HttpError::Hyper(*h),
                    Err(e) => HttpError::Connect(std::io::Error::other(e.to_string())),
                }
            }
        })
        .boxed_unsync()
    })
}

/// A guest's response head, checked against the response body limit and tagged with the request
/// id, and its body capped at that limit; or the 500 that replaces a head announcing too large a
/// body.
fn guest_head<B>(function: &LoadedFunction, id: &Arc<str>, response: Response<B>) -> Result<(http::response::Parts, CappedBody), Response<ResponseBody>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Debug,
{
    let limit = function.limits.response_body;
    let (mut parts, body) = response.into_parts();
    let length = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = length.filter(|n| *n > limit) {
        tracing::warn!(function = %function.name, request_id = %id, "response body of {length} bytes exceeds the limit of {limit}");
        return Err(host_response(StatusCode::INTERNAL_SERVER_ERROR, id, &format!("the function's response is too large (request {id})")));
    }
    if let Ok(v) = HeaderValue::from_str(id) {
        parts.headers.insert(REQUEST_ID_HEADER, v);
    }
    let capped = CappedBody {
        inner: body.map_err(|e| BoxError::from(format!("{e:?}"))).boxed_unsync(),
        remaining: limit,
        limit,
        function: function.name.clone(),
        request_id: id.clone(),
    };
    Ok((parts, capped))
}

/// The 503 a request gets when the server is at capacity, counted as shed.
fn at_capacity(shared: &ServerShared, id: &str) -> Response<ResponseBody> {
    shared.metrics.shed.inc();
    let mut r = host_response(StatusCode::SERVICE_UNAVAILABLE, id, "the server is at capacity; retry shortly");
    r.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The 504 of a request past its deadline, counted and logged.
fn timed_out(function: &LoadedFunction, id: &str) -> Response<ResponseBody> {
    let labels = &function.metrics.labels;
    function.metrics.timeouts.inc();
    tracing::warn!(function = %labels.function, version = %labels.version, request_id = %id, "request exceeded its time limit of {:?}", function.limits.timeout);
    host_response(StatusCode::GATEWAY_TIMEOUT, id, &format!("the function exceeded its time limit (request {id})"))
}

/// A request to a WASI 0.3 function: admitted with a request permit, handed to Wasmtime's handler
/// with its scope and deadline (it picks or makes the instance), and every way that can end turned
/// into a response. The permit is held until the response body ends.
async fn serve_reused(
    shared: &Arc<ServerShared>,
    function: &Arc<LoadedFunction>,
    handlers: &ThreadHandlers,
    req: Request<WasiBody>,
    id: &str,
) -> Response<ResponseBody> {
    let Ok(permit) = shared.request_permits.clone().try_acquire_owned() else {
        return at_capacity(shared, id);
    };
    shared.metrics.in_flight.inc();
    let in_flight = InFlight(shared.clone());
    let limits = function.limits;
    let labels = &function.metrics.labels;
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let request_id: Arc<str> = Arc::from(id);
    let ticket = Ticket { scope: Arc::new(RequestScope::new(request_id.clone(), limits.outbound_requests)), deadline };
    let req = with_absolute_uri(req);
    let handler = handlers.current();
    let handled = handler.handle(ticket, req);
    let outcome = match tokio::time::timeout_at(deadline, handled).await {
        Err(_) => return timed_out(function, id),
        Ok(outcome) => outcome,
    };
    let error = match outcome {
        // As for WASI 0.2: a head found ready after the deadline is still too late.
        Ok(_) if tokio::time::Instant::now() >= deadline => return timed_out(function, id),
        Ok(response) => {
            let (parts, capped) = match guest_head(function, &request_id, response) {
                Ok(head) => head,
                Err(refused) => return refused,
            };
            let body = DeadlineBody {
                inner: capped,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
                function: function.clone(),
                request_id,
                _held: (permit, in_flight),
            };
            return Response::from_parts(parts, body.boxed_unsync());
        }
        Err(error) => error,
    };
    // An instance dropped from outside at the deadline (its guest computed without yielding) ends
    // its requests as if it had trapped: past the deadline, that is a timeout.
    if error.is::<ExpirationError>() || tokio::time::Instant::now() >= deadline {
        return timed_out(function, id);
    }
    if let Some(failed) = error.downcast_ref::<InstantiationError<Ticket>>() {
        let cause = &failed.error;
        if cause.is::<PoolExhausted>() || cause.is::<wasmtime::PoolConcurrencyLimitError>() {
            return at_capacity(shared, id);
        }
        tracing::error!(function = %labels.function, version = %labels.version, request_id = %id, "cannot make an instance: {:#}", cause);
        return host_response(StatusCode::INTERNAL_SERVER_ERROR, id, &format!("internal error (request {id})"));
    }
    if error.is::<TrapOrPanicError>() {
        // The instance's end is logged (and counted) once, with its cause, where it is dropped.
        tracing::warn!(function = %labels.function, version = %labels.version, request_id = %id, "the request failed: its instance trapped");
        return host_response(StatusCode::INTERNAL_SERVER_ERROR, id, &format!("the function trapped (request {id})"));
    }
    tracing::warn!(function = %labels.function, request_id = %id, "the function answered with an error: {error:#}");
    host_response(StatusCode::INTERNAL_SERVER_ERROR, id, &format!("the function failed (request {id})"))
}

/// The request with an absolute URI: scheme `http` and the `host` header's authority. A 0.3 handler
/// reads both from the request (`get-scheme`, `get-authority`), where a 0.2 handler is told the
/// scheme apart; hyper hands the server the origin form (`/path?query`) only.
fn with_absolute_uri(req: Request<WasiBody>) -> Request<WasiBody> {
    if req.uri().scheme().is_some() {
        return req;
    }
    let (mut head, body) = req.into_parts();
    let authority = head.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).and_then(|h| h.parse::<http::uri::Authority>().ok());
    let mut parts = head.uri.clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority.unwrap_or_else(|| http::uri::Authority::from_static("localhost")));
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = http::Uri::from_parts(parts) {
        head.uri = uri;
    }
    Request::from_parts(head, body)
}

/// A response body that fails at its request's deadline, holding what the request holds until it
/// ends.
struct DeadlineBody<H> {
    inner: CappedBody,
    deadline: Pin<Box<tokio::time::Sleep>>,
    function: Arc<LoadedFunction>,
    request_id: Arc<str>,
    _held: H,
}

impl<H: Unpin> Body for DeadlineBody<H> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let labels = &self.function.metrics.labels;
            self.function.metrics.timeouts.inc();
            tracing::warn!(function = %labels.function, version = %labels.version, request_id = %self.request_id, "the function exceeded its time limit while sending its response body");
            return Poll::Ready(Some(Err("the response body outlived its request's time limit".into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How long a request that finds every pool slot taken waits for one before it gets 503. A slot
/// comes back as soon as a finished request's store is torn down, which can be just after its
/// client has read the whole response; the wait covers that, not a backlog.
pub const ADMISSION_WAIT: Duration = Duration::from_millis(100);

/// An admission permit: a free one, or one a spare instance held (see `Recycler::evict_one`), or
/// one freed within [`ADMISSION_WAIT`]. At most as many requests wait as there are slots; past that,
/// and past the wait, the request is shed.
async fn admit(shared: &ServerShared) -> Option<tokio::sync::OwnedSemaphorePermit> {
    loop {
        if let Ok(permit) = shared.slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        if !shared.recycler.evict_one() {
            break;
        }
    }
    let waiting = Waiting::join(&shared.admission_waiters, shared.max_admission_waiters)?;
    let permit = tokio::time::timeout(ADMISSION_WAIT, shared.slots.clone().acquire_owned()).await.ok()?.ok();
    drop(waiting);
    permit
}

/// One request among those waiting for a slot; leaving (however the wait ends) makes room.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn join(count: &'a AtomicUsize, most: usize) -> Option<Self> {
        let before = count.fetch_add(1, Ordering::AcqRel);
        let waiting = Waiting(count);
        (before < most).then_some(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

type GuestOutcome = Option<(wasmtime::Result<()>, bool)>;

/// Logs and counts a trap or timeout that happens after the response head was sent.
async fn report_after_head(guest: tokio::task::JoinHandle<GuestOutcome>, function: Arc<LoadedFunction>, id: String, memory: u64) {
    let fm = &function.metrics;
    let labels = &fm.labels;
    match guest.await {
        Ok(Some((Err(e), memory_refused))) => {
            fm.traps.inc();
            let cause = if memory_refused { format!("memory limit of {memory} bytes exceeded: {}", e.root_cause()) } else { e.root_cause().to_string() };
            tracing::warn!(function = %labels.function, version = %labels.version, request_id = %id, "the function trapped while sending its response body: {cause}");
        }
        Ok(None) => {
            fm.timeouts.inc();
            tracing::warn!(function = %labels.function, version = %labels.version, request_id = %id, "the function exceeded its time limit while sending its response body");
        }
        Ok(Some((Ok(()), _))) => {}
        Err(e) => tracing::error!(function = %labels.function, request_id = %id, "the guest task failed: {e}"),
    }
}

/// A response body that fails once it has carried more than its limit, and says so in the log.
struct CappedBody {
    inner: ResponseBody,
    remaining: u64,
    limit: u64,
    function: Arc<str>,
    request_id: Arc<str>,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > self.remaining {
                        tracing::warn!(function = %self.function, request_id = %self.request_id, "response body cut off at its limit of {} bytes", self.limit);
                        self.remaining = 0;
                        return Poll::Ready(Some(Err("the response body exceeds its limit".into())));
                    }
                    self.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_distinct_across_draws() {
        let ids: std::collections::HashSet<String> = (0..3 * IDS_PER_DRAW + 1).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 3 * IDS_PER_DRAW + 1);
        for id in &ids {
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
            assert_ne!(id.as_str(), "00000000000000000000000000000000");
        }
    }
}
