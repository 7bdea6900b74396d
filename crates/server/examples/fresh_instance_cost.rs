//! What a fresh Wasmtime instance per request costs on its own: no sockets, no HTTP parsing, none of
//! wasmzip's request path. The floor under `wasmzip serve`'s CPU time per request (bench/serve.sh).
//!
//! ```text
//! fresh_instance_cost COMPONENT.wasm [N]
//! ```
//!
//! Builds the engine as `wasmzip serve` does (`wasmzip_runtime::Runtime`: pooling allocator with
//! serve's default sizes, copy-on-write memory images, resident slots, epoch interruption), links
//! plain WASI 0.2 and `wasi:http` (`wasmtime-wasi`, `wasmtime-wasi-http`), pre-instantiates the
//! component once, then N times on one thread: a new store with a default WASI context, instantiate,
//! call `wasi:http/incoming-handler.handle` with a `GET /` and an empty body, read the response
//! body to its end, drop the store. Prints the mean of each phase and of the whole, in µs, and the
//! process's CPU time per iteration (user + system, from `getrusage`); on one thread the two
//! should agree. The first 10% of iterations warm up and are not counted.
//!
//! `KEEP_RESIDENT=BYTES` sets the pool's resident bytes per slot (default: serve's); with
//! `ENGINE=concurrent` the component runs on the engine with component-model concurrency on (the one
//! WASI 0.3 components use) instead of the plain one.

#[path = "cost_common/mod.rs"]
mod cost_common;

use std::time::{Duration, Instant};

use cost_common::{State, cpu_time};
use http_body_util::{BodyExt, Empty};
use wasmtime::Store;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmzip_runtime::{PoolConfig, Runtime, RuntimeConfig};

#[derive(Default)]
struct Phases {
    store: Duration,
    instantiate: Duration,
    call: Duration,
    drop: Duration,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: fresh_instance_cost COMPONENT.wasm [N]";
    let path = args.next().ok_or_else(|| anyhow::anyhow!(usage))?;
    let n: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20_000);
    anyhow::ensure!(n >= 10, "N must be at least 10");

    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: None,
        target: Default::default(),
        pooling: Some(PoolConfig { instances: 256, max_memory_bytes: 256 << 20, keep_resident_bytes: std::env::var("KEEP_RESIDENT").ok().map(|v| v.parse()).transpose()? }),
    })?;
    let kind = match std::env::var("ENGINE").as_deref() {
        Ok("concurrent") => wasmzip_runtime::EngineKind::Concurrent,
        Ok("plain") | Err(_) => wasmzip_runtime::EngineKind::Plain,
        Ok(other) => anyhow::bail!("ENGINE={other}: use plain or concurrent"),
    };
    let engine = runtime.engine(kind)?;
    let component = Component::from_file(engine, &path)?;
    let mut linker = Linker::<State>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let warm_up = n / 10;
    let mut phases = Phases::default();
    let (mut started, mut cpu_started) = (Instant::now(), cpu_time());
    let mut body_bytes = 0;
    rt.block_on(async {
        for i in 0..n + warm_up {
            if i == warm_up {
                phases = Phases::default();
                (started, cpu_started) = (Instant::now(), cpu_time());
            }
            let t0 = Instant::now();
            let state = State::new();
            let mut store = Store::new(engine, state);
            store.set_epoch_deadline(u64::MAX / 2);
            let body = Empty::<bytes::Bytes>::new().map_err(|never| -> wasmtime_wasi_http::Error { match never {} });
            let request = hyper::Request::get("http://localhost/").body(body)?;
            let incoming = store.data_mut().http().new_incoming_request(Scheme::Http, request)?;
            let (sender, receiver) = tokio::sync::oneshot::channel();
            let outparam = store.data_mut().http().new_response_outparam(sender)?;
            let t1 = Instant::now();
            let proxy = pre.instantiate_async(&mut store).await?;
            let t2 = Instant::now();
            proxy.wasi_http_incoming_handler().call_handle(&mut store, incoming, outparam).await?;
            let response = receiver.await?.map_err(|code| anyhow::anyhow!("the guest answered with an error: {code:?}"))?;
            let body = response.into_body().collect().await.map_err(|code| anyhow::anyhow!("body: {code:?}"))?.to_bytes();
            body_bytes = body.len();
            let t3 = Instant::now();
            drop(store);
            let t4 = Instant::now();
            phases.store += t1 - t0;
            phases.instantiate += t2 - t1;
            phases.call += t3 - t2;
            phases.drop += t4 - t3;
        }
        anyhow::Ok(())
    })?;
    let (wall, cpu) = (started.elapsed(), cpu_time() - cpu_started);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n);
    println!(
        "iterations={n} body_bytes={body_bytes} store_us={:.2} instantiate_us={:.2} call_us={:.2} drop_us={:.2} total_us={:.2} cpu_us={:.2}",
        per(phases.store),
        per(phases.instantiate),
        per(phases.call),
        per(phases.drop),
        per(wall),
        per(cpu)
    );
    Ok(())
}
