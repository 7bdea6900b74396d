//! The runtimes that serve client connections: one single-worker Tokio runtime per core, and each
//! accepted connection handed to the one with the fewest open connections.
//!
//! A connection, the guest tasks its requests spawn and the stores they use then stay on one
//! thread. On one runtime with a worker per core, a request's tasks could be stolen by the other
//! worker, and every task a request spawned could wake it: at 16 connections to `hello-http`, two
//! runs in five fell into a mode where the workers kept waking each other, at half the throughput
//! (docs/benchmarks.md). Each runtime is still Tokio's multi-thread kind (with one worker), so that
//! a blocking call such as a forward pass of inference can hand the worker's other connections to
//! another thread (`block_in_place`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Runtime;

thread_local! {
    /// Which connection runtime this thread belongs to (0 on any other thread).
    static CONNECTION_WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The index of the connection runtime the calling thread belongs to: 0 to `count - 1` on a
/// connection thread (also one that replaced a thread blocked in `block_in_place`), 0 elsewhere.
pub fn current_worker() -> usize {
    CONNECTION_WORKER.with(|w| w.get())
}

/// One runtime and the connections it serves.
struct Worker {
    runtime: Runtime,
    open: Arc<AtomicUsize>,
}

/// The connection runtimes; dropping them stops them.
pub struct ConnectionWorkers {
    workers: Vec<Worker>,
}

/// Counts one in a counter of open connections while it lives.
pub(crate) struct Counted(Arc<AtomicUsize>);

impl Counted {
    /// Adds one to `counter` until dropped.
    pub(crate) fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Counted(counter.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionWorkers {
    /// Starts `count` runtimes (at least one).
    pub fn start(count: usize) -> std::io::Result<Self> {
        let workers = (0..count.max(1))
            .map(|i| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name(format!("wasmzip-conn-{i}"))
                    .on_thread_start(move || CONNECTION_WORKER.with(|w| w.set(i)))
                    .enable_all()
                    .build()?;
                Ok(Worker { runtime, open: Arc::new(AtomicUsize::new(0)) })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(ConnectionWorkers { workers })
    }

    /// Runs a connection's task on the runtime with the fewest open connections. `connection` is
    /// called there, so that what it creates (a `TcpStream`, timers) belongs to that runtime.
    pub fn spawn<F, Fut>(&self, connection: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let worker = self.workers.iter().min_by_key(|w| w.open.load(Ordering::Relaxed)).expect("at least one worker");
        let assigned = Counted::new(&worker.open);
        worker.runtime.spawn(async move {
            let _assigned = assigned;
            connection().await;
        });
    }
}

impl Drop for ConnectionWorkers {
    /// Stops every runtime without waiting (also inside an async context); tasks still running
    /// there are dropped.
    fn drop(&mut self) {
        for worker in self.workers.drain(..) {
            worker.runtime.shutdown_background();
        }
    }
}
