//! WASI 0.3 handlers (`wasi:http/handler@0.3`), served through Wasmtime's own
//! [`ProxyHandler`]: an instance serves up to `max_concurrent` requests at once and `max_requests`
//! in all, and is dropped after `idle_timeout` without one. This module supplies what the handler
//! asks its embedder for: how an instance is made (its pool slot, its store, its limits, its log
//! streams), when it takes another request, when it expires, and what is reported when it ends.
//!
//! Per request, not per instance: each request's scope (id, trace context, audit label, outbound
//! budget) is registered under its task group as the handler starts it, and the host interfaces
//! read the running one (`wasmzip_runtime::requests`). A request past its deadline gets 504 and its
//! instance then takes no new requests; the others finish within their own deadlines and the
//! instance is dropped. A trap ends the instance: its requests in flight fail (500), the next
//! request gets a new instance.
//!
//! Each connection thread has its own handler for a version ([`ThreadHandlers`]), so a request is
//! served by instances that run on its own thread; the version's [`Service`] (limits, pool,
//! metrics) is shared by them all.
//!
//! Admission: a request needs one of the server's request permits (`--max-in-flight`), and a new
//! instance needs one of the pool's slots, taken when it is made and given back when it is
//! dropped. Neither waits: without a permit or a slot the answer is 503 with `Retry-After`.
//! [`ProxyHandler`]'s own queue then holds at most the requests that hold permits.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{Store, StoreContextMut};
use wasmtime::component::TaskGroupId;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmzip_nn::Abandoned;
use wasmzip_package::manifest::Reuse;
use wasmzip_runtime::engine::schedule_guest;
use wasmzip_runtime::instance::limit_store;
use wasmzip_runtime::{InstanceScope, InstanceState, PlannedComponent, RequestScope, RequestScopes};

use crate::function::HttpLimits;
use crate::guest_log::{GuestLog, LogTag};
use crate::metrics::{DenialLabels, FunctionMetrics, Metrics};
use crate::spare::Recycler;

/// Requests one instance serves in all when neither manifest nor operator says (as `wasmtime serve`).
pub const DEFAULT_MAX_REQUESTS: u32 = 128;
/// Requests one instance serves at once when neither manifest nor operator says.
pub const DEFAULT_MAX_CONCURRENT: u32 = 16;
/// How long an idle instance waits for a request when neither manifest nor operator says.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// The operator's say on reuse: each setting only lowers the manifest's; `disabled` turns it off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperatorReuse {
    /// A fresh instance per request for every function (`--no-reuse`).
    pub disabled: bool,
    /// Lowers requests per instance.
    pub max_requests: Option<u32>,
    /// Lowers concurrent requests per instance.
    pub max_concurrent: Option<u32>,
    /// Lowers the idle time.
    pub idle_timeout: Option<Duration>,
}

/// The reuse limits in force for one function version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReuseLimits {
    /// Requests per instance in all (1: a fresh instance per request).
    pub max_requests: u32,
    /// Requests per instance at once.
    pub max_concurrent: u32,
    /// Idle time before an instance is dropped.
    pub idle_timeout: Duration,
}

impl ReuseLimits {
    /// One request per instance.
    pub const FRESH: ReuseLimits = ReuseLimits { max_requests: 1, max_concurrent: 1, idle_timeout: DEFAULT_IDLE_TIMEOUT };

    /// The manifest's settings (if any) lowered by the operator's.
    pub fn resolve(manifest: Option<Reuse>, operator: &OperatorReuse) -> Self {
        let manifest = manifest.unwrap_or(Reuse { enabled: true, ..Reuse::default() });
        if !manifest.enabled || operator.disabled {
            return ReuseLimits::FRESH;
        }
        let lower = |m: Option<u32>, o: Option<u32>, default: u32| m.unwrap_or(default).min(o.unwrap_or(u32::MAX));
        ReuseLimits {
            max_requests: lower(manifest.max_requests, operator.max_requests, DEFAULT_MAX_REQUESTS),
            max_concurrent: lower(manifest.max_concurrent, operator.max_concurrent, DEFAULT_MAX_CONCURRENT),
            idle_timeout: manifest.idle_timeout_ms.map(Duration::from_millis).unwrap_or(DEFAULT_IDLE_TIMEOUT).min(operator.idle_timeout.unwrap_or(Duration::MAX)),
        }
    }

    /// Whether an instance serves more than one request.
    pub fn reused(&self) -> bool {
        self.max_requests > 1
    }
}

/// The pool's slots, which instances of every function share, and the recycler that can give up
/// a WASI 0.2 function's spare instance to free one.
#[derive(Clone)]
pub struct PoolSlots {
    /// One permit per slot.
    pub slots: Arc<Semaphore>,
    /// Holds the spares.
    pub recycler: Arc<Recycler>,
}

impl std::fmt::Debug for PoolSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolSlots").field("free", &self.slots.available_permits()).finish()
    }
}

impl PoolSlots {
    /// A free slot, giving up spares for it while there are any; none when every slot serves.
    pub fn take(&self) -> Option<OwnedSemaphorePermit> {
        loop {
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                return Some(permit);
            }
            if !self.recycler.evict_one() {
                return None;
            }
        }
    }
}

/// Every pool slot serves: a new instance cannot be made now.
#[derive(Debug, thiserror::Error)]
#[error("every pool slot is in use")]
pub struct PoolExhausted;

/// A request on its way into an instance: its scope and its deadline.
pub struct Ticket {
    /// What belongs to the request.
    pub scope: Arc<RequestScope>,
    /// When it must have its response head.
    pub deadline: tokio::time::Instant,
}

/// One deployed WASI 0.3 function version: how its instances are made and limited.
pub struct Service {
    /// The pre-instantiated `wasi:http/handler@0.3` entry point.
    pub pre: ServicePre<InstanceState>,
    /// The planned component its instances are made from.
    pub planned: Arc<PlannedComponent>,
    /// Per-request limits.
    pub limits: HttpLimits,
    /// Reuse limits.
    pub reuse: ReuseLimits,
    /// Function name, for logs and metrics.
    pub function: Arc<str>,
    /// Version, for logs and metrics.
    pub version: Arc<str>,
    /// The version's metric handles.
    pub metrics: FunctionMetrics,
    /// The server's metrics (denials).
    pub server_metrics: Arc<Metrics>,
    /// Where instances take their pool slots.
    pub pool: PoolSlots,
    /// Instances made so far.
    pub made: AtomicU64,
}

impl Service {
    /// The reuse limits in force.
    pub fn reuse(&self) -> ReuseLimits {
        self.reuse
    }

    async fn make(&self) -> wasmtime::Result<Instance<InstanceState, Expiry, InstanceWorker>> {
        let permit = self.pool.take().ok_or(PoolExhausted)?;
        let number = self.made.fetch_add(1, Ordering::Relaxed) + 1;
        let requests = Arc::new(RequestScopes::default());
        let tag = LogTag { function: self.function.clone(), version: self.version.clone(), request_id: Arc::from(format!("instance-{number}")) };
        let stdout = GuestLog::shared(tag.clone(), "stdout", requests.clone());
        let stderr = GuestLog::shared(tag, "stderr", requests.clone());
        let metrics = self.server_metrics.clone();
        let function = self.function.to_string();
        let scope = InstanceScope {
            label: Some(format!("instance {number}")),
            trace_id: Arc::from(""),
            outbound_limit: self.limits.outbound_requests,
            denials: Arc::new(move |kind| {
                metrics.denials.get_or_create(&DenialLabels { function: function.clone(), kind: kind.to_string() }).inc();
            }),
            abandoned: Abandoned::new(),
            requests: Some(requests.clone()),
        };
        let (out, err) = (stdout.clone(), stderr.clone());
        let state = self.planned.instance_state(&scope, |b| {
            b.stdout(out).stderr(err);
        })?;
        let mut store = Store::new(self.planned.engine(), state);
        limit_store(&mut store);
        store.task_group_hook(requests.hook());
        // Yields every slice so the handler can see expirations; deadlines are the requests' own.
        schedule_guest(&mut store, None, || false);
        let t0 = Instant::now();
        let service = tokio::time::timeout(self.limits.timeout, self.pre.instantiate_async(&mut store))
            .await
            .map_err(|_| wasmtime::format_err!("instantiation exceeded the time limit of {:?}", self.limits.timeout))??;
        self.metrics.instantiation.observe(t0.elapsed().as_secs_f64());
        tracing::debug!(function = %self.function, version = %self.version, instance = number, "made an instance");
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: <InstanceState as WasiHttpView>::http,
            expiration: Expiry::new(self.reuse.idle_timeout, self.limits.timeout),
            state: InstanceWorker {
                reuse: self.reuse,
                requests,
                logs: [stdout, stderr],
                number,
                function: self.function.clone(),
                version: self.version.clone(),
                metrics: self.metrics.clone(),
                memory_limit: self.limits.memory_bytes,
                accepted: AtomicU64::new(0),
                _slot: permit,
            },
        })
    }
}

/// One connection thread's share of a [`Service`]: the state of that thread's [`ProxyHandler`].
pub struct ThreadService(Arc<Service>);

impl HandlerState for ThreadService {
    type StoreData = InstanceState;
    type WorkerExpiration = Expiry;
    type WorkerState = InstanceWorker;

    fn instantiate(&self) -> impl Future<Output = wasmtime::Result<Instance<InstanceState, Expiry, InstanceWorker>>> + Send {
        self.0.make()
    }
}

/// A WASI 0.3 function version's handlers, one per connection thread: a request goes to its
/// thread's handler, whose instances run on that thread. So a client never waits for another
/// thread to wake, and instances spread over the cores as the connections do. The limits, the
/// pool and the metrics are the version's, shared by every thread.
pub struct ThreadHandlers {
    service: Arc<Service>,
    handlers: Box<[ProxyHandler<ThreadService>]>,
}

impl ThreadHandlers {
    /// Handlers for `threads` connection threads (at least one).
    pub fn new(service: Service, threads: usize) -> Self {
        let service = Arc::new(service);
        let handlers = (0..threads.max(1)).map(|_| ProxyHandler::new(ThreadService(service.clone()))).collect();
        ThreadHandlers { service, handlers }
    }

    /// The calling connection thread's handler.
    pub fn current(&self) -> &ProxyHandler<ThreadService> {
        &self.handlers[crate::workers::current_worker() % self.handlers.len()]
    }

    /// The version these handlers serve.
    pub fn service(&self) -> &Service {
        &self.service
    }
}

/// What one instance's worker knows: its limits, its requests' scopes, its log streams and its
/// pool slot (given back when the worker is dropped).
pub struct InstanceWorker {
    reuse: ReuseLimits,
    requests: Arc<RequestScopes>,
    logs: [GuestLog; 2],
    number: u64,
    function: Arc<str>,
    version: Arc<str>,
    metrics: FunctionMetrics,
    memory_limit: u64,
    accepted: AtomicU64,
    _slot: OwnedSemaphorePermit,
}

impl WorkerState for InstanceWorker {
    type StoreData = InstanceState;
    type RequestData = Ticket;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.reuse.max_requests as usize {
            ShouldAccept::Never
        } else if concurrent >= self.reuse.max_concurrent as usize {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(&self, _store: StoreContextMut<'_, InstanceState>, ticket: Ticket, group: TaskGroupId) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.requests.begin(group, ticket.scope);
        Box::pin(tokio::time::sleep_until(ticket.deadline))
    }

    fn drop(&self, store: Store<InstanceState>, result: wasmtime::Result<()>) {
        for log in &self.logs {
            log.flush_partial();
        }
        let (function, version, instance) = (&self.function, &self.version, self.number);
        match result {
            Ok(()) => tracing::debug!(function = %function, version = %version, instance, "dropped an instance"),
            Err(e) if e.to_string() == "guest timed out" => {
                tracing::warn!(function = %function, version = %version, instance, "dropped an instance whose requests outlived their time limit");
            }
            Err(e) => {
                self.metrics.traps.inc();
                let accepted = self.accepted.load(Ordering::Relaxed);
                let cause = if store.data().limiter().memory_refused() {
                    format!("memory limit of {} bytes exceeded: {}", self.memory_limit, e.root_cause())
                } else {
                    e.root_cause().to_string()
                };
                tracing::warn!(function = %function, version = %version, instance, "the function trapped: {cause} (instance {instance} ended after {accepted} request{}; those in flight failed)", if accepted == 1 { "" } else { "s" });
            }
        }
        drop(store);
    }
}

/// When an instance is dropped from outside its event loop: after its idle time without a
/// request, or once even its newest request is past the time limit (a guest that computes without
/// yielding keeps the loop from noticing its requests' own deadlines).
pub struct Expiry {
    idle: Duration,
    busy: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Expiry {
    fn new(idle: Duration, busy: Duration) -> Self {
        Expiry { idle, busy, timer: Box::pin(tokio::time::sleep(busy.max(idle))) }
    }
}

impl WorkerExpiration for Expiry {
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>, status: WorkerStatus, start: Instant) -> Poll<()> {
        let me = self.get_mut();
        let limit = if status == WorkerStatus::Idle { me.idle } else { me.busy };
        let at = tokio::time::Instant::from_std(start) + limit;
        if tokio::time::Instant::now() >= at {
            return Poll::Ready(());
        }
        if me.timer.deadline() != at {
            me.timer.as_mut().reset(at);
        }
        me.timer.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_only_lowers_reuse() {
        let defaults = ReuseLimits::resolve(None, &OperatorReuse::default());
        assert_eq!(defaults, ReuseLimits { max_requests: 128, max_concurrent: 16, idle_timeout: Duration::from_secs(1) });
        let manifest = Reuse { enabled: true, max_requests: Some(4), max_concurrent: Some(32), idle_timeout_ms: Some(5000) };
        let operator = OperatorReuse { max_concurrent: Some(8), idle_timeout: Some(Duration::from_millis(200)), ..OperatorReuse::default() };
        let l = ReuseLimits::resolve(Some(manifest), &operator);
        assert_eq!(l, ReuseLimits { max_requests: 4, max_concurrent: 8, idle_timeout: Duration::from_millis(200) });
        assert_eq!(ReuseLimits::resolve(Some(Reuse { enabled: false, ..Reuse::default() }), &OperatorReuse::default()), ReuseLimits::FRESH);
        assert_eq!(ReuseLimits::resolve(Some(manifest), &OperatorReuse { disabled: true, ..OperatorReuse::default() }), ReuseLimits::FRESH);
        assert!(!ReuseLimits::FRESH.reused());
    }
}
