//! What a request to a reused WASI 0.3 instance costs on its own: no sockets, no HTTP parsing, none
//! of wasmzip's request path. The floor under `wasmzip serve`'s CPU time per request to a 0.3
//! function (bench/serve-p3.sh), as `fresh_instance_cost` is for a fresh 0.2 instance.
//!
//! ```text
//! reused_instance_cost COMPONENT.wasm [N]
//! ```
//!
//! Builds the concurrent engine as `wasmzip serve` does (`wasmzip_runtime::Runtime`, pooling
//! allocator with serve's default sizes), links WASI 0.2 and 0.3 and `wasi:http@0.3`, and serves N
//! `GET /` requests with empty bodies one after another on one thread through Wasmtime's
//! `ProxyHandler`, reading each response body to its end. Instances are reused for up to 128
//! requests (as `wasmzip serve` and `wasmtime serve` do by default), so the cost of making one is
//! spread over 128 requests. Prints the mean wall time and the process's CPU time (user + system,
//! from `getrusage`) per request in µs, and how many instances were made. The first 10% of requests
//! warm up and are not counted.
//!
//! `BODY=FILE` sends `POST /` with FILE as the body instead (for `json-transform-p3`: the guest's
//! own compute per body, with no sockets and no HTTP parsing around it).

#[path = "cost_common/mod.rs"]
mod cost_common;

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Full};
use cost_common::{State, cpu_time};
use wasmtime::component::{Linker, TaskGroupId};
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::WasiHttpView;
use wasmzip_runtime::{EngineKind, PoolConfig, Runtime, RuntimeConfig};

/// Requests per instance, as `wasmzip serve`'s default.
const REUSE: usize = 128;

struct Service {
    engine: wasmtime::Engine,
    pre: ServicePre<State>,
    made: AtomicU32,
}

struct Worker;

impl WorkerState for Worker {
    type StoreData = State;
    type RequestData = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= REUSE {
            ShouldAccept::Never
        } else if concurrent >= 1 {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(&self, _: StoreContextMut<'_, State>, _: (), _: TaskGroupId) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        Box::pin(std::future::pending())
    }

    fn drop(&self, _store: Store<State>, _result: wasmtime::Result<()>) {
        // Every response's status is checked in `main`; the instances still alive when it returns
        // end with an error here, as their runtime goes away.
    }
}

struct NeverExpires;

impl WorkerExpiration for NeverExpires {
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>, _: WorkerStatus, _: Instant) -> Poll<()> {
        Poll::Pending
    }
}

impl HandlerState for Service {
    type StoreData = State;
    type WorkerExpiration = NeverExpires;
    type WorkerState = Worker;

    fn instantiate(&self) -> impl Future<Output = wasmtime::Result<Instance<State, NeverExpires, Worker>>> + Send {
        async move {
            self.made.fetch_add(1, Ordering::Relaxed);
            let state = State::new();
            let mut store = Store::new(&self.engine, state);
            store.set_epoch_deadline(u64::MAX / 2);
            let service = self.pre.instantiate_async(&mut store).await?;
            Ok(Instance { store, proxy: Proxy::P3(service), view: <State as WasiHttpView>::http, expiration: NeverExpires, state: Worker })
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: reused_instance_cost COMPONENT.wasm [N]";
    let path = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let n: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(50_000);
    anyhow::ensure!(n >= 10, "N must be at least 10");

    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: None,
        target: Default::default(),
        pooling: Some(PoolConfig { instances: 256, max_memory_bytes: 256 << 20, keep_resident_bytes: None }),
    })?;
    let engine = runtime.engine(EngineKind::Concurrent)?.clone();
    let component = wasmtime::component::Component::from_file(&engine, &path)?;
    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    let pre = ServicePre::new(linker.instantiate_pre(&component)?)?;
    let handler = ProxyHandler::new(Service { engine, pre, made: AtomicU32::new(0) });

    let body = std::env::var_os("BODY").map(std::fs::read).transpose()?.map(bytes::Bytes::from);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let warm_up = n / 10;
    let (mut started, mut cpu_started) = (Instant::now(), cpu_time());
    let mut body_bytes = 0;
    rt.block_on(async {
        for i in 0..n + warm_up {
            if i == warm_up {
                (started, cpu_started) = (Instant::now(), cpu_time());
            }
            let request = match &body {
                Some(bytes) => {
                    let full = Full::new(bytes.clone()).map_err(|never| -> wasmtime_wasi_http::Error { match never {} }).boxed_unsync();
                    hyper::Request::post("http://localhost/").header("content-type", "application/json").header("content-length", bytes.len()).body(full)?
                }
                None => {
                    let empty = Empty::<bytes::Bytes>::new().map_err(|never| -> wasmtime_wasi_http::Error { match never {} }).boxed_unsync();
                    hyper::Request::get("http://localhost/").body(empty)?
                }
            };
            let response = handler.handle((), request).await?;
            let status = response.status();
            let answer = response.into_body().collect().await.map_err(|code| anyhow::anyhow!("body: {code:?}"))?.to_bytes();
            anyhow::ensure!(status == 200, "the guest answered {status}: {}", String::from_utf8_lossy(&answer));
            body_bytes = answer.len();
        }
        anyhow::Ok(())
    })?;
    let (wall, cpu) = (started.elapsed(), cpu_time() - cpu_started);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n);
    println!(
        "iterations={n} body_bytes={body_bytes} reuse={REUSE} instances={} total_us={:.2} cpu_us={:.2}",
        handler.state().made.load(Ordering::Relaxed),
        per(wall),
        per(cpu)
    );
    Ok(())
}
