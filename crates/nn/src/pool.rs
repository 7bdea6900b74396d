//! The threads that run inference.
//!
//! Inference is blocking work: a forward pass takes milliseconds to tens of milliseconds of CPU.
//! On a multi-threaded Tokio runtime (`wasmzip serve`) it runs on a fixed set of long-lived
//! threads, one per CPU, while the calling worker has handed its other tasks to another thread
//! (`block_in_place`). Two things follow from the fixed set:
//!
//! - **Bounded memory.** At most one forward pass per inference thread is in flight, however many
//!   requests wait: the back-ends' per-run buffers (ONNX Runtime's arena, tract's run states, the
//!   allocator's per-thread caches) are sized by the number of CPUs, not by the request
//!   concurrency. Left on the calling threads, sixteen concurrent requests made sixteen concurrent
//!   passes on sixteen threads, and the server's RSS grew by their sum.
//! - **Warm threads.** Every pass runs on a thread that has run the model before, with its caches
//!   and allocator state already in place, instead of on whichever thread `block_in_place` left the
//!   request on.
//!
//! Elsewhere (`wasmzip run`: one guest, no multi-threaded runtime) a pass runs on the calling
//! thread. A pass that panics is an error for its caller, never a panic of the host.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads taking jobs from one queue.
struct Pool {
    queue: Mutex<Sender<Job>>,
    threads: usize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

impl Pool {
    fn start(threads: usize) -> std::io::Result<Pool> {
        let (queue, jobs) = std::sync::mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new().name(format!("wasmzip-nn-{i}")).spawn(move || worker(&jobs))?;
        }
        Ok(Pool { queue: Mutex::new(queue), threads })
    }
}

fn worker(jobs: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let next = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match next {
            Ok(job) => job(),
            Err(_) => return, // the pool is gone (process exit)
        }
    }
}

/// The process's inference pool, started on first use with one thread per CPU.
fn pool() -> Result<&'static Pool, String> {
    if let Some(pool) = POOL.get() {
        return Ok(pool);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Pool::start(threads).map_err(|e| format!("cannot start the inference threads: {e}"))?;
    // Two first callers may race; the loser's threads exit when its queue is dropped.
    Ok(POOL.get_or_init(|| started))
}

/// How many inference threads the pool has (started or not).
pub fn inference_threads() -> usize {
    POOL.get().map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |p| p.threads)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs one forward pass `job` and returns its result, or why it did not finish (a panic in the
/// back-end, or no inference thread). On a multi-threaded Tokio runtime the pass runs on the
/// inference pool while the calling worker's other tasks move to another thread; elsewhere it runs
/// here.
pub(crate) fn run<R: Send + 'static>(job: impl FnOnce() -> R + Send + 'static) -> Result<R, String> {
    let on_worker = tokio::runtime::Handle::try_current().is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if !on_worker {
        return catch_unwind(AssertUnwindSafe(job)).map_err(|p| format!("the back-end panicked: {}", panic_message(&*p)));
    }
    let pool = pool()?;
    let (done, result) = sync_channel(1);
    let wrapped: Job = Box::new(move || {
        let outcome = catch_unwind(AssertUnwindSafe(job)).map_err(|p| format!("the back-end panicked: {}", panic_message(&*p)));
        // The caller may be gone only if its thread died; nothing to do then.
        let _ = done.send(outcome);
    });
    let sent = match pool.queue.lock() {
        Ok(queue) => queue.send(wrapped),
        Err(poisoned) => poisoned.into_inner().send(wrapped),
    };
    sent.map_err(|_| "the inference threads have stopped".to_string())?;
    tokio::task::block_in_place(|| result.recv()).map_err(|_| "an inference thread stopped before finishing".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_here_without_a_runtime() {
        let here = std::thread::current().id();
        assert_eq!(run(move || std::thread::current().id() == here), Ok(true));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_on_the_pool_on_a_multi_threaded_runtime() {
        let mut names = std::collections::HashSet::new();
        for _ in 0..20 {
            let name = run(|| std::thread::current().name().map(str::to_string)).unwrap().unwrap();
            assert!(name.starts_with("wasmzip-nn-"), "{name}");
            names.insert(name);
        }
        assert!(names.len() <= inference_threads(), "{names:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_is_bounded_by_the_pool() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NOW: AtomicUsize = AtomicUsize::new(0);
        static MAX: AtomicUsize = AtomicUsize::new(0);
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                tokio::spawn(async {
                    run(|| {
                        let n = NOW.fetch_add(1, Ordering::SeqCst) + 1;
                        MAX.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        NOW.fetch_sub(1, Ordering::SeqCst);
                    })
                    .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(MAX.load(Ordering::SeqCst) <= inference_threads(), "{} passes at once", MAX.load(Ordering::SeqCst));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_is_an_error() {
        let err = run(|| -> u32 { panic!("boom") }).unwrap_err();
        assert!(err.contains("panicked: boom"), "{err}");
        // The pool still works.
        assert_eq!(run(|| 7).unwrap(), 7);
    }
}
