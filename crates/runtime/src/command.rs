//! Running a planned WASI command once (`wasi:cli/run` of a 0.2 or 0.3 component, or `_start` of a
//! preview-1 module) under its limits, and classifying how it ended.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use wasmtime::{Store, WasmBacktrace};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use crate::RuntimeError;
use crate::capabilities::http::DEFAULT_OUTBOUND_REQUESTS;
use crate::engine::schedule_guest;
use crate::instance::{InstanceScope, InstanceState};
use crate::limits::{GuestLimiter, GuestLimits};
use crate::plan::{Entrypoint, PlannedComponent};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// The guest returned or exited with this code (`wasi:cli/run` returning an error is 1).
    Exited(i32),
    /// The guest trapped.
    Trapped {
        /// The trap.
        message: String,
        /// The guest's backtrace, with source locations when the component has debug info.
        backtrace: Option<String>,
    },
    /// The guest tried to grow its memory past the limit and then failed.
    MemoryExhausted {
        /// The limit in bytes.
        limit: u64,
        /// The trap that followed.
        message: String,
    },
    /// The wall-clock limit passed; the store was dropped.
    TimedOut {
        /// The limit.
        after: Duration,
    },
}

/// Runs a planned command with `args` (starting with the program name), its standard streams
/// inherited from this process. Errors are refusals to start (capability set-up); everything the
/// guest does, traps included, is a [`CommandOutcome`].
pub async fn run_command(planned: &PlannedComponent, args: &[String]) -> Result<Finished, RuntimeError> {
    let limits = planned.limits();
    let outbound = planned.component().limits().outbound_requests.unwrap_or(DEFAULT_OUTBOUND_REQUESTS);
    let scope = InstanceScope::run(outbound);
    let stdio = |b: &mut WasiCtxBuilder| {
        b.inherit_stdio().args(args);
    };
    // The guest yields at the first tick past this, where `within` below gives up on it.
    let deadline = limits.timeout.and_then(|limit| Instant::now().checked_add(limit));
    match planned.entry() {
        Entrypoint::Preview1(pre) => {
            let mut store = planned.new_module_store(&scope, stdio)?;
            schedule_guest(&mut store, deadline, || false);
            let pre = pre.clone();
            let run = Box::pin(async move {
                let result = async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await
                }
                .await;
                (result, store)
            });
            Ok(match within(limits.timeout, run).await {
                Err(abandoned) => timed_out(&limits, abandoned),
                Ok((Ok(()), _)) => CommandOutcome::Exited(0).into(),
                Ok((Err(e), store)) => classify(e, store.data().limiter(), &limits).into(),
            })
        }
        Entrypoint::CommandP2(pre) => {
            let mut store = planned.new_store(&scope, stdio)?;
            schedule_guest(&mut store, deadline, || false);
            let pre = pre.clone();
            let run = Box::pin(async move {
                let result = async {
                    let command = pre.instantiate_async(&mut store).await?;
                    command.wasi_cli_run().call_run(&mut store).await
                }
                .await;
                (result, store)
            });
            Ok(finish(within(limits.timeout, run).await, &limits))
        }
        Entrypoint::CommandP3(pre) => {
            let mut store = planned.new_store(&scope, stdio)?;
            schedule_guest(&mut store, deadline, || false);
            let pre = pre.clone();
            let run = Box::pin(async move {
                let result = async {
                    let command = pre.instantiate_async(&mut store).await?;
                    // `run` is an async export: it runs inside the store's event loop, which also
                    // drives the guest's other tasks and the host's futures it waits on.
                    store.run_concurrent(async |store| command.wasi_cli_run().call_run(store).await).await?
                }
                .await;
                (result, store)
            });
            Ok(finish(within(limits.timeout, run).await, &limits))
        }
        Entrypoint::HttpP2(_) | Entrypoint::HttpP3(_) => {
            Err(RuntimeError::Link(format!("{} is an HTTP handler, not a command", planned.component().description())))
        }
    }
}

type ComponentRun = (wasmtime::Result<Result<(), ()>>, Store<InstanceState>);

fn finish<F>(ended: Result<ComponentRun, Pin<Box<F>>>, limits: &GuestLimits) -> Finished
where
    F: Future + Send + 'static,
{
    match ended {
        Err(abandoned) => timed_out(limits, abandoned),
        Ok((Ok(Ok(())), _)) => CommandOutcome::Exited(0).into(),
        Ok((Ok(Err(())), _)) => CommandOutcome::Exited(1).into(),
        Ok((Err(e), store)) => classify(e, store.data().limiter(), limits).into(),
    }
}

/// A run that passed its deadline: the suspended guest and its store. Dropping it stops the guest and
/// frees everything it held. That can take milliseconds (Wasmtime unwinds the guest's stack and
/// symbolises its backtrace), so report the timeout first and drop this after.
pub struct AbandonedRun(#[allow(dead_code, reason = "held only to be dropped")] Pin<Box<dyn Future<Output = ()> + Send>>);

impl std::fmt::Debug for AbandonedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AbandonedRun")
    }
}

/// How a run ended, and what is left to drop when it was cut off.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub outcome: CommandOutcome,
    /// The suspended guest when it timed out; see [`AbandonedRun`].
    pub abandoned: Option<AbandonedRun>,
}

impl From<CommandOutcome> for Finished {
    fn from(outcome: CommandOutcome) -> Self {
        Finished { outcome, abandoned: None }
    }
}

/// Runs `f` to completion, or until `timeout`; then hands back the unfinished future.
async fn within<F>(timeout: Option<Duration>, mut f: Pin<Box<F>>) -> Result<F::Output, Pin<Box<F>>>
where
    F: Future + Send + 'static,
{
    match timeout {
        Some(limit) => match tokio::time::timeout(limit, &mut f).await {
            Ok(output) => Ok(output),
            Err(_) => Err(f),
        },
        None => Ok(f.await),
    }
}

fn timed_out<F>(limits: &GuestLimits, abandoned: Pin<Box<F>>) -> Finished
where
    F: Future + Send + 'static,
{
    let abandoned: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
        abandoned.await;
    });
    Finished {
        outcome: CommandOutcome::TimedOut { after: limits.timeout.unwrap_or_default() },
        abandoned: Some(AbandonedRun(abandoned)),
    }
}

fn classify(error: wasmtime::Error, limiter: &GuestLimiter, limits: &GuestLimits) -> CommandOutcome {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return CommandOutcome::Exited(exit.0);
    }
    let message = error.root_cause().to_string();
    if limiter.memory_refused() {
        return CommandOutcome::MemoryExhausted { limit: limits.memory_limit(), message };
    }
    let backtrace = error.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
    CommandOutcome::Trapped { message, backtrace }
}
