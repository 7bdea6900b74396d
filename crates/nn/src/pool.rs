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
//! Elsewhere (no multi-threaded runtime) a pass runs on the calling thread. A pass that panics is
//! an error for its caller, never a panic of the host.
//!
//! A request the server has given up on (its client went away, or its time limit passed) should not
//! keep an inference thread busy: the host marks it [`Abandoned`] and runs the guest's wasi-nn calls
//! inside [`Abandoned::scope`]. A pass of an abandoned request that is still queued is skipped, and
//! its caller stops waiting at once (the guest gets a wasi-nn error; its store is then dropped).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// How often a caller waiting for its pass checks whether its request was abandoned.
const ABANDON_POLL: Duration = Duration::from_millis(20);

/// Whether the request an instance serves was given up by the host. Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct Abandoned(Arc<AtomicBool>);

impl Abandoned {
    /// A flag not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the request abandoned: its queued passes are skipped and its waits end.
    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether [`set`](Self::set) was called.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Runs `f` (a guest's wasi-nn call, on this thread) with passes it starts tied to this flag.
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let previous = CURRENT.with(|c| c.replace(Some(self.clone())));
        struct Restore(Option<Abandoned>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = previous);
            }
        }
        let _restore = Restore(previous);
        f()
    }
}

thread_local! {
    /// The flag of the request whose wasi-nn call this thread is running, if any.
    static CURRENT: RefCell<Option<Abandoned>> = const { RefCell::new(None) };
}

/// Why a pass was not run or not waited for.
const ABANDONED: &str = "the request was abandoned (its client went away or its time limit passed)";

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
    let abandoned = CURRENT.with(|c| c.borrow().clone());
    if abandoned.as_ref().is_some_and(Abandoned::is_set) {
        return Err(ABANDONED.into());
    }
    let on_worker = tokio::runtime::Handle::try_current().is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if !on_worker {
        return catch_unwind(AssertUnwindSafe(job)).map_err(|p| format!("the back-end panicked: {}", panic_message(&*p)));
    }
    let pool = pool()?;
    let (done, result) = sync_channel(1);
    let skip = abandoned.clone();
    let wrapped: Job = Box::new(move || {
        if skip.as_ref().is_some_and(Abandoned::is_set) {
            tracing::debug!(target: "wasmzip::nn", "skipped a queued inference: {ABANDONED}");
            let _ = done.send(Err(ABANDONED.to_string()));
            return;
        }
        let outcome = catch_unwind(AssertUnwindSafe(job)).map_err(|p| format!("the back-end panicked: {}", panic_message(&*p)));
        // The caller may have stopped waiting (abandoned request); the result is then dropped.
        let _ = done.send(outcome);
    });
    let sent = match pool.queue.lock() {
        Ok(queue) => queue.send(wrapped),
        Err(poisoned) => poisoned.into_inner().send(wrapped),
    };
    sent.map_err(|_| "the inference threads have stopped".to_string())?;
    tokio::task::block_in_place(|| {
        loop {
            match result.recv_timeout(ABANDON_POLL) {
                Ok(outcome) => return outcome,
                Err(RecvTimeoutError::Timeout) if abandoned.as_ref().is_some_and(Abandoned::is_set) => return Err(ABANDONED.into()),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Err("an inference thread stopped before finishing".into()),
            }
        }
    })
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
    async fn passes_of_an_abandoned_request_are_skipped_and_not_waited_for() {
        use std::sync::atomic::AtomicUsize;
        static RAN: AtomicUsize = AtomicUsize::new(0);
        let threads = inference_threads();
        // Fill every inference thread with a slow pass, then queue passes of one request.
        let busy: Vec<_> = (0..threads)
            .map(|_| tokio::spawn(async { run(|| std::thread::sleep(Duration::from_millis(300))).unwrap() }))
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let request = Abandoned::new();
        let queued: Vec<_> = (0..4)
            .map(|_| {
                let request = request.clone();
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let r = request.scope(|| run(|| RAN.fetch_add(1, Ordering::SeqCst)));
                    (r, started.elapsed())
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        request.set();
        for q in queued {
            let (r, waited) = q.await.unwrap();
            assert!(r.unwrap_err().contains("abandoned"));
            assert!(waited < Duration::from_millis(250), "waited {waited:?} after being abandoned");
        }
        for b in busy {
            b.await.unwrap();
        }
        // Their passes never ran, and new ones of the abandoned request fail at once.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(RAN.load(Ordering::SeqCst), 0);
        assert!(request.scope(|| run(|| 1)).unwrap_err().contains("abandoned"));
        // Another request is unaffected.
        assert_eq!(Abandoned::new().scope(|| run(|| 2)), Ok(2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_is_an_error() {
        let err = run(|| -> u32 { panic!("boom") }).unwrap_err();
        assert!(err.contains("panicked: boom"), "{err}");
        // The pool still works.
        assert_eq!(run(|| 7).unwrap(), 7);
    }
}
