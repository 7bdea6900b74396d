//! Spare instances. A function that serves requests keeps one instance made ahead of its next
//! request, so that request skips instantiation; and a finished request's store is torn down after
//! the fact. Both happen on a thread of their own (`wasmzip-recycler`), off the path of any
//! request, and only while the server has fewer client connections than cores, so on a core no
//! client is keeping busy.
//!
//! Every instance still serves exactly one request: a spare is made from the function's
//! pre-instantiated component in a store of its own, with a blank state that the request replaces
//! with its own before any guest code runs for it. A spare holds one admission permit, so spares
//! and requests together never need more pool slots than there are permits. When a request finds
//! no permit left, another function's spare is given up for it; a spare no request took within the idle
//! time is torn down. A spare is made with the function's own WASI configuration (a start function
//! sees what a request would), but with no request: its output is dropped, and it may make no
//! outbound request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::Proxy;
use wasmzip_nn::Abandoned;
use wasmzip_runtime::engine::EPOCH_TICK;
use wasmzip_runtime::instance::limit_store;
use wasmzip_runtime::{CapabilityError, InstanceScope, InstanceState};

use crate::function::LoadedFunction;

/// How long a spare waits for a request before it is torn down, unless the operator says otherwise.
pub const DEFAULT_SPARE_IDLE: Duration = Duration::from_secs(10);
/// Jobs queued for the recycler at most; past that, a request tears its store down itself and
/// makes no spare.
const QUEUE: usize = 256;

/// An instance made ahead of its request.
pub struct Spare {
    store: Store<InstanceState>,
    proxy: Proxy,
    permit: OwnedSemaphorePermit,
    made: Instant,
    counted: Counted,
}

impl Spare {
    /// The store, its instance and its admission permit, for a request (counted as served by a
    /// spare). The store's data is blank: the caller must [`adopt`] its request's state before
    /// calling into the instance.
    pub fn into_parts(self) -> (Store<InstanceState>, Proxy, OwnedSemaphorePermit) {
        self.counted.metrics.used.inc();
        (self.store, self.proxy, self.permit)
    }
}

/// Keeps the spare gauge right however a spare ends.
struct Counted {
    metrics: SpareMetrics,
}

impl Counted {
    fn new(metrics: &SpareMetrics) -> Self {
        metrics.alive.inc();
        Counted { metrics: metrics.clone() }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.metrics.alive.dec();
    }
}

/// The recycler's metric handles.
#[derive(Clone, Default)]
pub struct SpareMetrics {
    /// Spares waiting for a request now.
    pub alive: Gauge<i64, AtomicI64>,
    /// Requests served by a spare.
    pub used: Counter,
}

/// Puts a request's state into a spare's store in place of its blank one. What instantiation took
/// from the memory limit is carried over, so the request's limit still counts the whole instance.
pub fn adopt(store: &mut Store<InstanceState>, mut state: InstanceState) {
    state.limiter_mut().carry_from(store.data().limiter());
    *store.data_mut() = state;
}

/// A function version's spare, if any.
#[derive(Default)]
pub struct SpareSlot {
    spare: Mutex<Option<Spare>>,
    /// A spare is being made (at most one at a time).
    warming: AtomicBool,
    /// Making a spare failed once (instantiation trapped): this version never gets one.
    failed: AtomicBool,
    /// The function is in the recycler's list of spare holders (once at most).
    listed: AtomicBool,
}

impl SpareSlot {
    /// Takes the spare, if there is one.
    pub fn take(&self) -> Option<Spare> {
        self.spare.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn put(&self, spare: Spare) {
        *self.spare.lock().unwrap_or_else(|p| p.into_inner()) = Some(spare);
    }

    fn take_if_idle(&self, now: Instant, idle: Duration) -> Option<Spare> {
        let mut slot = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|s| now.duration_since(s.made) >= idle) { slot.take() } else { None }
    }
}

enum Job {
    Warm(Arc<LoadedFunction>, OwnedSemaphorePermit),
    Retire(Box<Store<InstanceState>>, OwnedSemaphorePermit),
}

/// The recycler: a thread that makes spares and tears down finished stores.
pub struct Recycler {
    /// No spares are made when this is false (finished stores are still torn down here).
    spares: bool,
    jobs: Mutex<Option<SyncSender<Job>>>,
    /// Functions that have held spares, longest first, each once (one may have none right now).
    holders: Arc<Mutex<VecDeque<Weak<LoadedFunction>>>>,
    slots: Arc<Semaphore>,
    /// Open client connections, and the cores there are: the recycler only takes work while
    /// there are fewer connections than cores, so that it runs on a core no client is keeping
    /// busy. Past that it would only add a handoff between threads (and frees of memory another
    /// thread allocated) to work that costs the same anywhere.
    connections: Arc<AtomicUsize>,
    cores: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Recycler {
    /// Starts the recycler thread. Spares take their permits from `slots` and are torn down after
    /// `idle` without a request; `None` makes none. Must be called inside a Tokio runtime, which
    /// the thread uses to instantiate.
    pub fn start(
        slots: Arc<Semaphore>,
        idle: Option<Duration>,
        metrics: SpareMetrics,
        connections: Arc<AtomicUsize>,
    ) -> std::io::Result<Recycler> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let holders = Arc::new(Mutex::new(VecDeque::new()));
        let worker = Worker {
            jobs: rx,
            holders: holders.clone(),
            idle: idle.unwrap_or(DEFAULT_SPARE_IDLE),
            metrics,
            runtime: tokio::runtime::Handle::current(),
        };
        let thread = std::thread::Builder::new().name("wasmzip-recycler".into()).spawn(move || worker.run())?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Recycler {
            spares: idle.is_some(),
            jobs: Mutex::new(Some(tx)),
            holders,
            slots,
            connections,
            cores,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Whether a core is free of client connections.
    fn core_to_spare(&self) -> bool {
        self.connections.load(Ordering::Relaxed) < self.cores
    }

    fn send(&self, job: Job) -> Result<(), Job> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        match jobs.as_ref() {
            Some(tx) => tx.try_send(job).map_err(|e| match e {
                TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
            }),
            None => Err(job),
        }
    }

    /// Asks for a spare of `function` unless it has one, one is being made, no permit is free, or
    /// every core has a client connection.
    pub fn warm(&self, function: &Arc<LoadedFunction>) {
        let slot = &function.spare;
        if !self.spares
            || function.handler.fresh().is_none()
            || slot.failed.load(Ordering::Relaxed)
            || !self.core_to_spare()
            || slot.warming.swap(true, Ordering::AcqRel)
        {
            return;
        }
        // A spare made since the caller looked (the recycler puts it before it clears `warming`).
        if slot.spare.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            slot.warming.store(false, Ordering::Release);
            return;
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            slot.warming.store(false, Ordering::Release);
            return;
        };
        if self.send(Job::Warm(function.clone(), permit)).is_err() {
            slot.warming.store(false, Ordering::Release);
        }
    }

    /// Tears `store` down, and then gives its admission permit back (so the pool slot is free
    /// before the permit is): on the recycler thread while a core is free of client connections,
    /// else here.
    pub fn retire(&self, store: Store<InstanceState>, permit: OwnedSemaphorePermit) {
        if !self.core_to_spare() {
            drop(store);
            drop(permit);
        } else if let Err(Job::Retire(store, permit)) = self.send(Job::Retire(Box::new(store), permit)) {
            drop(store);
            drop(permit);
        }
    }

    /// Gives up a spare, the one of the function that has held spares longest, returning its
    /// permit to the pool; false when there is none.
    pub fn evict_one(&self) -> bool {
        loop {
            let Some(holder) = self.holders.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else { return false };
            let Some(function) = holder.upgrade() else { continue };
            function.spare.listed.store(false, Ordering::Release);
            if let Some(spare) = function.spare.take() {
                drop(spare);
                return true;
            }
        }
    }

    /// Stops the thread after the jobs already queued.
    pub fn stop(&self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Recycler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The recycler thread's side.
struct Worker {
    jobs: Receiver<Job>,
    holders: Arc<Mutex<VecDeque<Weak<LoadedFunction>>>>,
    idle: Duration,
    metrics: SpareMetrics,
    runtime: tokio::runtime::Handle,
}

impl Worker {
    fn run(self) {
        loop {
            match self.jobs.recv_timeout(self.idle / 4) {
                Ok(Job::Retire(store, permit)) => {
                    drop(store);
                    drop(permit);
                }
                Ok(Job::Warm(function, permit)) => {
                    match self.make_spare(&function, permit) {
                        Ok(spare) => {
                            function.spare.put(spare);
                            if !function.spare.listed.swap(true, Ordering::AcqRel) {
                                self.holders.lock().unwrap_or_else(|p| p.into_inner()).push_back(Arc::downgrade(&function));
                            }
                        }
                        Err(e) => {
                            function.spare.failed.store(true, Ordering::Relaxed);
                            tracing::warn!(function = %function.name, version = %function.version, "cannot make a spare instance; requests will instantiate their own: {e:#}");
                        }
                    }
                    function.spare.warming.store(false, Ordering::Release);
                }
                Err(RecvTimeoutError::Timeout) => self.sweep(),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Tears down spares idle for longer than the idle time and forgets functions that are gone.
    fn sweep(&self) {
        let now = Instant::now();
        let mut idle = Vec::new();
        self.holders.lock().unwrap_or_else(|p| p.into_inner()).retain(|h| match h.upgrade() {
            Some(f) => match f.spare.take_if_idle(now, self.idle) {
                Some(spare) => {
                    f.spare.listed.store(false, Ordering::Release);
                    idle.push(spare);
                    false
                }
                None => true,
            },
            None => false,
        });
        drop(idle);
    }

    fn make_spare(&self, function: &LoadedFunction, permit: OwnedSemaphorePermit) -> wasmtime::Result<Spare> {
        let pre = function.handler.fresh().ok_or_else(|| wasmtime::format_err!("a WASI 0.3 function has no spares"))?;
        let mut store = Store::new(pre.instance_pre().engine(), blank_state(function)?);
        limit_store(&mut store);
        // No request's code runs yet, but a start function could spin (it traps at the function's
        // time limit) or wait in a host call (it is dropped then).
        let ticks = (function.limits.timeout.as_micros() / EPOCH_TICK.as_micros().max(1)).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        let t0 = Instant::now();
        let instantiate = async { tokio::time::timeout(function.limits.timeout, pre.instantiate_async(&mut store)).await };
        let proxy = self
            .runtime
            .block_on(instantiate)
            .map_err(|_| wasmtime::format_err!("instantiation exceeded the time limit of {:?}", function.limits.timeout))??;
        function.metrics.instantiation.observe(t0.elapsed().as_secs_f64());
        Ok(Spare { store, proxy, permit, made: Instant::now(), counted: Counted::new(&self.metrics) })
    }
}

/// The state a spare is made in: the function's WASI configuration with output dropped, no
/// outbound requests, and no request. The request that takes the spare replaces all of it.
fn blank_state(function: &LoadedFunction) -> Result<InstanceState, CapabilityError> {
    let scope = InstanceScope {
        label: Some("spare instance".into()),
        trace_id: Arc::from(""),
        outbound_limit: 0,
        denials: Arc::new(|_| {}),
        abandoned: Abandoned::new(),
        requests: None,
    };
    function.planned.instance_state(&scope, |_| {})
}
