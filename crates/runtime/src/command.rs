//! Running a WASI command (`wasi:cli/run` of a component, or `_start` of a preview-1 module) once, with
//! a capability plan and limits, and classifying how it ended.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Store, WasmBacktrace};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::RuntimeError;
use crate::audit::Auditor;
use crate::capabilities::CapabilityPlan;
use crate::capabilities::crypto::{self, CryptoCtx, CryptoHost, CryptoView};
use crate::capabilities::nn::{self, ModelSet, NnCtx, NnView};
use crate::capabilities::network::{NameLookupView, NetworkGuard, add_name_lookup_to_linker};
use crate::engine::{Program, Runtime, schedule_guest};
use crate::limits::{GuestLimiter, GuestLimits, MAX_RESOURCE_HANDLES};
use wasmzip_keystore::Keystore;

/// One run of a command.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Who runs, for audit lines (`name@version`).
    pub subject: String,
    /// The arguments, starting with the program name.
    pub args: Vec<String>,
    /// What the guest may touch.
    pub plan: CapabilityPlan,
    /// Limits it runs under.
    pub limits: GuestLimits,
    /// The operator's keystore, when one is configured (needed when the plan grants keys).
    pub keystore: Option<Arc<dyn Keystore>>,
    /// The package's loaded models (those granted).
    pub models: Arc<ModelSet>,
}

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

struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: GuestLimiter,
    network: Arc<NetworkGuard>,
    crypto: CryptoCtx,
    nn: NnCtx,
}

impl NnView for ComponentState {
    fn nn(&mut self) -> (&mut NnCtx, &mut ResourceTable) {
        (&mut self.nn, &mut self.table)
    }
}

impl CryptoView for ComponentState {
    fn crypto(&mut self) -> CryptoHost<'_> {
        CryptoHost { ctx: &self.crypto, table: &mut self.table }
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl NameLookupView for ComponentState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    fn network_guard(&self) -> Arc<NetworkGuard> {
        self.network.clone()
    }
}

struct ModuleState {
    wasi: WasiP1Ctx,
    limiter: GuestLimiter,
}

/// Runs `program` as a command. Errors are refusals to start (missing imports, capability set-up);
/// everything the guest does, traps included, is a [`CommandOutcome`].
pub async fn run_command(runtime: &Runtime, program: &Program, spec: CommandSpec) -> Result<Finished, RuntimeError> {
    let engine = runtime.engine();
    let audit = Auditor::new(spec.subject.clone());
    let guard = NetworkGuard::new(spec.plan.network.clone(), audit.clone());
    let crypto_ctx = CryptoCtx::new(spec.plan.crypto.clone(), spec.keystore.clone(), audit.clone());
    // A command is never abandoned: its time limit ends the process.
    let nn_ctx = NnCtx::new(spec.models.clone(), spec.plan.nn.clone(), audit, &wasmzip_nn::Abandoned::new());
    let mut builder = WasiCtxBuilder::new();
    builder.inherit_stdio().args(&spec.args);
    spec.plan.configure(&mut builder, &guard)?;
    let limiter = GuestLimiter::new(&spec.limits);
    let link_err = |e: wasmtime::Error| RuntimeError::Link(format!("{e:#}"));

    // The guest yields at the first tick past this, where `within` below gives up on it.
    let deadline = spec.limits.timeout.and_then(|limit| Instant::now().checked_add(limit));
    match program {
        Program::Component(component) => {
            let mut linker = Linker::<ComponentState>::new(engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link_err)?;
            add_name_lookup_to_linker(&mut linker).map_err(link_err)?;
            crypto::add_to_linker(&mut linker).map_err(link_err)?;
            nn::add_to_linker(&mut linker).map_err(link_err)?;
            let pre = CommandPre::new(linker.instantiate_pre(component).map_err(link_err)?).map_err(link_err)?;

            let mut table = ResourceTable::new();
            table.set_max_capacity(MAX_RESOURCE_HANDLES);
            let mut store = Store::new(engine, ComponentState { wasi: builder.build(), table, limiter, network: guard, crypto: crypto_ctx, nn: nn_ctx });
            store.limiter(|s| &mut s.limiter);
            schedule_guest(&mut store, deadline, || false);

            let run = Box::pin(async move {
                let result = async {
                    let command = pre.instantiate_async(&mut store).await?;
                    command.wasi_cli_run().call_run(&mut store).await
                }
                .await;
                (result, store)
            });
            Ok(match within(spec.limits.timeout, run).await {
                Err(abandoned) => timed_out(&spec.limits, abandoned),
                Ok((Ok(Ok(())), _)) => CommandOutcome::Exited(0).into(),
                Ok((Ok(Err(())), _)) => CommandOutcome::Exited(1).into(),
                Ok((Err(e), store)) => classify(e, &store.data().limiter, &spec.limits).into(),
            })
        }
        Program::Module(module) => {
            let mut linker = wasmtime::Linker::<ModuleState>::new(engine);
            wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| &mut s.wasi).map_err(link_err)?;
            let pre = linker.instantiate_pre(module).map_err(link_err)?;
            let mut store = Store::new(engine, ModuleState { wasi: builder.build_p1(), limiter });
            store.limiter(|s| &mut s.limiter);
            schedule_guest(&mut store, deadline, || false);

            let run = Box::pin(async move {
                let result = async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await
                }
                .await;
                (result, store)
            });
            Ok(match within(spec.limits.timeout, run).await {
                Err(abandoned) => timed_out(&spec.limits, abandoned),
                Ok((Ok(()), _)) => CommandOutcome::Exited(0).into(),
                Ok((Err(e), store)) => classify(e, &store.data().limiter, &spec.limits).into(),
            })
        }
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
