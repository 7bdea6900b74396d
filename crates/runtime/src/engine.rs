//! The one engine per process, the epoch ticker that drives deadlines, and compilation through the
//! compile cache.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Module, Store, UpdateDeadline, WasmBacktraceDetails};

use crate::RuntimeError;
use crate::cache::{ArtifactKind, CheckedEntry, CompileCache};
use crate::instance::{InstanceState, ModuleState};

/// How often the engine's epoch advances. Running guests yield to the async executor at each tick, so
/// this bounds how late a timeout can fire.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How many epoch ticks a running guest keeps its executor thread before it yields to other tasks:
/// 10 ms, the slice Spin gives a guest too. A yield is not free: the task goes to the back of its
/// worker's queue and an idle worker is woken, which may take it over on another core where none
/// of its memory is in cache. At 1 ms a request computing for a third of a millisecond yielded
/// once in three times, and the median request was about a tenth slower for it.
pub const GUEST_SLICE_TICKS: u64 = 10;

/// Schedules a store's running guest: it yields to the async executor every [`GUEST_SLICE_TICKS`]
/// ticks, and at the first tick after `deadline` or after `given_up` turns true (its client went
/// away), where the caller's timeout or abort drops it. Between those, a tick costs the guest one
/// host call that reads the clock and the flag.
pub fn schedule_guest<T: 'static>(
    store: &mut Store<T>,
    deadline: Option<Instant>,
    given_up: impl Fn() -> bool + Send + Sync + 'static,
) {
    let mut ticks = 0u64;
    store.epoch_deadline_callback(move |_| {
        ticks += 1;
        let yield_now =
            ticks.is_multiple_of(GUEST_SLICE_TICKS) || given_up() || deadline.is_some_and(|d| Instant::now() >= d);
        // Tokio's own yield, not Wasmtime's: it wakes the task only once the executor has run the
        // others. Wasmtime's wakes it at once, and a WASI 0.3 store's event loop then resumed the
        // guest without returning to the executor, so a guest computing without awaiting held its
        // thread until its deadline.
        Ok(if yield_now { UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())) } else { UpdateDeadline::Continue(1) })
    });
    store.set_epoch_deadline(1);
}

/// Settings for [`Runtime::new`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Directory of the compile cache; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Use Wasmtime's pooling allocator, sized so (for serving many short-lived instances).
    pub pooling: Option<PoolConfig>,
    /// What code the engines make and run.
    pub target: CodeTarget,
}

/// What code the engines make and run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CodeTarget {
    /// Native code for this machine, compiled by Cranelift (or loaded from an artefact).
    #[default]
    Native,
    /// Pulley bytecode, run by Wasmtime's portable interpreter: no memory is ever mapped executable
    /// at run time, for hosts that forbid it, at the price of speed.
    Pulley,
    /// Native code for another machine, by target triple: only for compiling artefacts
    /// (`wasmzip compile`), never run. The code assumes only the baseline CPU of its architecture.
    Foreign(String),
}

impl CodeTarget {
    /// The Pulley flavour for this machine's pointer width and byte order.
    pub const PULLEY: &str = if cfg!(target_pointer_width = "32") {
        if cfg!(target_endian = "big") { "pulley32be" } else { "pulley32" }
    } else if cfg!(target_endian = "big") {
        "pulley64be"
    } else {
        "pulley64"
    };

    /// A `--target` of `wasmzip compile`: `pulley` (or a `pulley*` name) or a target triple, which
    /// is normalised (`aarch64-linux-gnu` and `aarch64-unknown-linux-gnu` are one target).
    pub fn parse(target: &str) -> Result<Self, RuntimeError> {
        if target == "pulley" || target == Self::PULLEY {
            return Ok(CodeTarget::Pulley);
        }
        let triple: target_lexicon::Triple =
            target.parse().map_err(|e| RuntimeError::Engine(format!("`{target}` is not a target triple: {e}")))?;
        Ok(CodeTarget::Foreign(triple.to_string()))
    }

    /// The name of the code's target: this machine's triple, a Pulley flavour, or the foreign triple.
    pub fn name(&self) -> String {
        match self {
            CodeTarget::Native => target_lexicon::HOST.to_string(),
            CodeTarget::Pulley => Self::PULLEY.to_string(),
            CodeTarget::Foreign(triple) => triple.clone(),
        }
    }
}

/// Sizes of the pooling allocator: every slot is reserved up front, so a request never allocates
/// address space, and linear memories start from copy-on-write images of their initial contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most component instances alive at once (one per request in flight).
    pub instances: u32,
    /// Largest linear memory any instance may grow to: the ceiling for a manifest's memory limit.
    pub max_memory_bytes: u64,
    /// Bytes of each slot's linear memory (and at most 1 MiB of its table and stack) kept mapped when
    /// an instance ends: restored in place from the initial image instead of being unmapped and
    /// faulted in again by the next request. `None` picks [`PoolConfig::DEFAULT_KEEP_RESIDENT`].
    pub keep_resident_bytes: Option<u64>,
}

impl PoolConfig {
    /// Core instances, memories and tables per component instance: a component built by Rust's
    /// toolchain holds its main module plus a few shims, each counted separately.
    pub const CORE_PER_COMPONENT: u32 = 8;

    /// Bytes kept resident per slot by default: the initial memory of the guests we serve (a Rust
    /// HTTP handler starts at about 1.1 MiB, `json-transform` at 4 MiB), so that resetting a slot
    /// never unmaps memory. Unmapping (`madvise`) costs little itself but makes every other core of
    /// the server flush its TLB, and the next instance faults the pages in again.
    ///
    /// The reset clears all of the kept memory the instance could reach, not only what it wrote:
    /// Wasmtime 50's `PAGEMAP_SCAN` reset counts pages that were never mapped as written, so it
    /// cleared the whole budget anyway and then also unmapped the rest, and is left off. Measured
    /// against the Wasmtime 48 build at 16 connections (docs/benchmarks.md): 4 MiB cleared served
    /// hello-http at 0.8-0.9 and json-transform at 0.8-0.95 of it; 1 MiB with or without the scan,
    /// or nothing kept, at 0.45 and 0.65.
    pub const DEFAULT_KEEP_RESIDENT: u64 = 4 << 20;

    /// The bytes of linear memory kept resident per slot, after defaults.
    pub fn effective_keep_resident(&self) -> u64 {
        self.keep_resident_bytes.unwrap_or(Self::DEFAULT_KEEP_RESIDENT).min(self.max_memory_bytes)
    }
}

/// A compiled guest program.
#[derive(Clone)]
pub enum Program {
    /// A component (WASI 0.2, 0.3 or both).
    Component(Component),
    /// A WASI preview-1 core module.
    Module(Module),
}

/// Where compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a verified cache entry.
    Hit,
    /// Compiled now (and stored when a cache is configured).
    Compiled,
    /// Loaded from a precompiled artefact (`--precompiled`).
    Precompiled,
}

/// Which of the runtime's two engines a program is compiled for and runs on.
///
/// Wasmtime's support for the component model's concurrency (WASI 0.3: async functions, streams,
/// futures) is a property of the engine, and it costs every store and call something even when a
/// component uses none of it: the stores of a 0.2 HTTP handler took 2-3 times the CPU to make,
/// call and drop with it on. So components that use WASI 0.3 run on the concurrent engine, and
/// everything else on the plain one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// No component-model concurrency: WASI preview 1 and 0.2.
    Plain,
    /// Component-model concurrency on: WASI 0.3 (and 0.2 beside it).
    Concurrent,
}

/// One engine with its compile cache and linkers.
struct Flavour {
    engine: Engine,
    cache: Option<CompileCache>,
    linker: Linker<InstanceState>,
    module_linker: wasmtime::Linker<ModuleState>,
}

/// The engines, their epoch ticker, compile caches and the linkers every component and module is
/// pre-instantiated against; one per process.
pub struct Runtime {
    plain: Flavour,
    /// Built when a program first needs it: a run of a WASI 0.2 component or a preview-1 module
    /// never pays for a second engine, its linkers and (when pooling) its reserved slots.
    concurrent: OnceLock<Flavour>,
    /// What the concurrent engine is built from; held while it is built, so it is built once.
    concurrent_from: Mutex<RuntimeConfig>,
    target: CodeTarget,
    /// The engines the epoch ticker advances.
    ticking: Arc<Mutex<Vec<Engine>>>,
    ticker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

/// The linker for components: WASI 0.2, and on the concurrent engine 0.3 beside it (a component
/// may import both), then every capability unit's own interfaces (which replace some of WASI's,
/// such as name lookup).
fn component_linker(engine: &Engine, kind: EngineKind) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    if kind == EngineKind::Concurrent {
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    }
    crate::capabilities::link_all(&mut linker, kind)?;
    Ok(linker)
}

impl Flavour {
    fn new(wasm: &mut Config, kind: EngineKind, cache_dir: Option<&std::path::Path>) -> Result<Self, RuntimeError> {
        wasm.concurrency_support(kind == EngineKind::Concurrent);
        let engine = Engine::new(wasm).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        // Cache entries are keyed by the compiler's settings: a build without one has no cache (it
        // loads precompiled artefacts instead).
        #[cfg(feature = "cranelift")]
        let cache = cache_dir.map(|dir| CompileCache::new(dir.to_path_buf(), &engine));
        #[cfg(not(feature = "cranelift"))]
        let cache = cache_dir.and(None::<CompileCache>);
        let link_err = |e: wasmtime::Error| RuntimeError::Link(format!("{e:#}"));
        let linker = component_linker(&engine, kind).map_err(link_err)?;
        let mut module_linker = wasmtime::Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut module_linker, |s: &mut ModuleState| &mut s.wasi).map_err(link_err)?;
        Ok(Flavour { engine, cache, linker, module_linker })
    }
}

/// Wasmtime's settings for both engines (each then sets its own concurrency support). A change here
/// that changes the code Wasmtime compiles must raise [`ENGINE_SETTINGS`](crate::precompiled::ENGINE_SETTINGS).
fn wasm_config(config: &RuntimeConfig) -> Result<Config, RuntimeError> {
    let mut wasm = Config::new();
    let target = match &config.target {
        CodeTarget::Native => None,
        CodeTarget::Pulley => Some(CodeTarget::PULLEY.to_string()),
        CodeTarget::Foreign(triple) => Some(triple.clone()),
    };
    if let Some(target) = target {
        wasm.target(&target).map_err(|e| RuntimeError::Engine(format!("target `{target}`: {e:#}")))?;
    }
    wasm.epoch_interruption(true)
        .wasm_backtrace_details(WasmBacktraceDetails::Enable)
        .wasm_component_model(true);
    if let Some(pool) = config.pooling {
        let mut p = wasmtime::PoolingAllocationConfig::new();
        let core = pool.instances.saturating_mul(PoolConfig::CORE_PER_COMPONENT);
        p.total_component_instances(pool.instances)
            .total_core_instances(core)
            .total_memories(core)
            .total_tables(core)
            .max_memories_per_component(PoolConfig::CORE_PER_COMPONENT)
            .max_tables_per_component(PoolConfig::CORE_PER_COMPONENT)
            .max_memory_size(usize::try_from(pool.max_memory_bytes).unwrap_or(usize::MAX))
            .total_stacks(pool.instances);
        let keep = usize::try_from(pool.effective_keep_resident()).unwrap_or(usize::MAX);
        if keep > 0 {
            // Tables and fiber stacks are small; 1 MiB covers what a request dirties in either.
            let small = keep.min(1 << 20);
            p.linear_memory_keep_resident(keep)
                .table_keep_resident(small)
                .async_stack_keep_resident(small)
                // See `DEFAULT_KEEP_RESIDENT` for why the dirty-page scan is off.
                .pagemap_scan(wasmtime::Enabled::No);
        }
        wasm.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(p)).memory_init_cow(true);
    }
    Ok(wasm)
}

impl Runtime {
    /// Builds the plain engine and starts the epoch ticker; the concurrent engine is built when a
    /// program first needs it.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let plain = Flavour::new(&mut wasm_config(&config)?, EngineKind::Plain, config.cache_dir.as_deref())?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticking = Arc::new(Mutex::new(vec![plain.engine.clone()]));
        let (flag, engines) = (stop.clone(), ticking.clone());
        let handle = std::thread::Builder::new()
            .name("wasmzip-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    for engine in engines.lock().unwrap_or_else(PoisonError::into_inner).iter() {
                        engine.increment_epoch();
                    }
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch thread: {e}")))?;
        let target = config.target.clone();
        Ok(Runtime { plain, concurrent: OnceLock::new(), concurrent_from: Mutex::new(config), target, ticking, ticker: Some((stop, handle)) })
    }

    /// What code the engines make and run.
    pub fn target(&self) -> &CodeTarget {
        &self.target
    }

    /// The name of that target (see [`CodeTarget::name`]).
    pub fn target_name(&self) -> String {
        self.target.name()
    }

    fn flavour(&self, kind: EngineKind) -> Result<&Flavour, RuntimeError> {
        match kind {
            EngineKind::Plain => Ok(&self.plain),
            EngineKind::Concurrent => {
                if let Some(flavour) = self.concurrent.get() {
                    return Ok(flavour);
                }
                let config = self.concurrent_from.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(flavour) = self.concurrent.get() {
                    return Ok(flavour);
                }
                let flavour = Flavour::new(&mut wasm_config(&config)?, EngineKind::Concurrent, config.cache_dir.as_deref())?;
                self.ticking.lock().unwrap_or_else(PoisonError::into_inner).push(flavour.engine.clone());
                Ok(self.concurrent.get_or_init(|| flavour))
            }
        }
    }

    /// One of the engines (the concurrent one is built on first use, which can fail).
    pub fn engine(&self, kind: EngineKind) -> Result<&Engine, RuntimeError> {
        Ok(&self.flavour(kind)?.engine)
    }

    /// The linker components on that engine are pre-instantiated against.
    pub fn linker(&self, kind: EngineKind) -> Result<&Linker<InstanceState>, RuntimeError> {
        Ok(&self.flavour(kind)?.linker)
    }

    /// The linker preview-1 modules on that engine are pre-instantiated against.
    pub fn module_linker(&self, kind: EngineKind) -> Result<&wasmtime::Linker<ModuleState>, RuntimeError> {
        Ok(&self.flavour(kind)?.module_linker)
    }

    /// The compile cache of that engine, when configured.
    pub fn cache(&self, kind: EngineKind) -> Result<Option<&CompileCache>, RuntimeError> {
        Ok(self.flavour(kind)?.cache.as_ref())
    }

    /// Compiles (or loads from the cache) a component or core module whose bytes hash to `digest`,
    /// for the engine `kind`. `what` names it in errors.
    pub fn load_program(&self, kind: EngineKind, bytes: &[u8], digest: &str, what: &str) -> Result<(Program, CacheOutcome), RuntimeError> {
        self.flavour(kind)?.load_program(bytes, digest, what)
    }

    /// Compiles a component or core module for the engine `kind` and returns Wasmtime's
    /// serialisation of the code, for a precompiled artefact. `what` names it in errors.
    #[cfg(feature = "cranelift")]
    pub fn precompile(&self, kind: EngineKind, bytes: &[u8], what: &str) -> Result<(ArtifactKind, Vec<u8>), RuntimeError> {
        let engine = self.engine(kind)?;
        let compile_err = |e: wasmtime::Error| RuntimeError::Compile { what: what.to_string(), message: format!("{e:#}") };
        match artifact_kind(bytes, what)? {
            ArtifactKind::Component => Ok((ArtifactKind::Component, engine.precompile_component(bytes).map_err(compile_err)?)),
            ArtifactKind::Module => Ok((ArtifactKind::Module, engine.precompile_module(bytes).map_err(compile_err)?)),
        }
    }

    /// Loads code Wasmtime serialised, for the engine `kind`.
    ///
    /// # Safety
    /// `code` must be Wasmtime's serialisation of a component or module (as for
    /// `Component::deserialize`); Wasmtime checks that it was compiled for this engine's settings.
    pub unsafe fn deserialize(&self, kind: EngineKind, artifact: ArtifactKind, code: &[u8]) -> wasmtime::Result<Program> {
        let engine = self.engine(kind)?;
        // SAFETY: passed on to the caller.
        unsafe {
            match artifact {
                ArtifactKind::Component => Component::deserialize(engine, code).map(Program::Component),
                ArtifactKind::Module => Module::deserialize(engine, code).map(Program::Module),
            }
        }
    }
}

/// Whether `bytes` are a component or a core module.
fn artifact_kind(bytes: &[u8], what: &str) -> Result<ArtifactKind, RuntimeError> {
    if wasmparser::Parser::is_component(bytes) {
        Ok(ArtifactKind::Component)
    } else if wasmparser::Parser::is_core_wasm(bytes) {
        Ok(ArtifactKind::Module)
    } else {
        Err(RuntimeError::Compile { what: what.to_string(), message: "not a WebAssembly component or module".into() })
    }
}

impl Flavour {
    fn load_program(&self, bytes: &[u8], digest: &str, what: &str) -> Result<(Program, CacheOutcome), RuntimeError> {
        let kind = artifact_kind(bytes, what)?;
        if let Some(cache) = &self.cache
            && let Some(entry) = cache.load(kind, digest)
        {
            // SAFETY: the entry was written by `store` below from Wasmtime's own serialisation for an
            // engine with this compatibility hash, and its checksum was verified just now. Entries are
            // only ever replaced by renaming a new, complete file into place, never changed in place.
            let loaded = unsafe { self.load_entry(kind, &entry) };
            match loaded {
                Ok(program) => {
                    tracing::debug!(target: "wasmzip::cache", path = %entry.path.display(), "{what}: compiled code from the cache");
                    return Ok((program, CacheOutcome::Hit));
                }
                Err(e) => {
                    tracing::warn!("recompiling {what}: cached code was rejected: {e}");
                    cache.remove(kind, digest);
                }
            }
        }
        #[cfg(not(feature = "cranelift"))]
        return Err(RuntimeError::NoCompiler { what: what.to_string() });
        #[cfg(feature = "cranelift")]
        let compile_err = |e: wasmtime::Error| RuntimeError::Compile { what: what.to_string(), message: format!("{e:#}") };
        #[cfg(feature = "cranelift")]
        let (program, serialized) = match kind {
            ArtifactKind::Component => {
                let c = Component::new(&self.engine, bytes).map_err(compile_err)?;
                let s = self.cache.as_ref().map(|_| c.serialize());
                (Program::Component(c), s)
            }
            ArtifactKind::Module => {
                let m = Module::new(&self.engine, bytes).map_err(compile_err)?;
                let s = self.cache.as_ref().map(|_| m.serialize());
                (Program::Module(m), s)
            }
        };
        #[cfg(feature = "cranelift")]
        if let (Some(cache), Some(serialized)) = (&self.cache, serialized) {
            match serialized {
                Ok(bytes) => match cache.store(kind, digest, &bytes) {
                    // The code just compiled lives in anonymous memory, all of it resident; the same code
                    // mapped from the entry just written keeps what is never used (DWARF) out of memory.
                    Ok(path) => {
                        drop(bytes);
                        // SAFETY: this process wrote the entry just now from Wasmtime's serialisation.
                        match unsafe { self.map_entry(kind, &path) } {
                            Ok(mapped) => return Ok((mapped, CacheOutcome::Compiled)),
                            // Say, a cache directory mounted `noexec`: the compiled code in memory serves.
                            Err(e) => tracing::debug!(target: "wasmzip::cache", path = %path.display(), "cannot map the entry just written: {e:#}"),
                        }
                    }
                    Err(e) => tracing::warn!(dir = %cache.dir().display(), "cannot write the compile cache: {e}"),
                },
                Err(e) => tracing::warn!("cannot serialise compiled {what}: {e}"),
            }
        }
        #[cfg(feature = "cranelift")]
        Ok((program, CacheOutcome::Compiled))
    }

    /// Loads a checked compile-cache entry: mapped where the file system allows (see
    /// [`map_entry`](Self::map_entry)), else (a directory mounted `noexec` cannot map code
    /// executable) read into memory.
    ///
    /// # Safety
    /// As for [`map_entry`](Self::map_entry).
    unsafe fn load_entry(&self, kind: ArtifactKind, entry: &CheckedEntry) -> wasmtime::Result<Program> {
        // SAFETY: passed on to the caller.
        let mapped = match unsafe { self.map_entry(kind, &entry.path) } {
            Ok(program) => return Ok(program),
            Err(e) => e,
        };
        tracing::debug!(target: "wasmzip::cache", path = %entry.path.display(), "reading the entry instead of mapping it: {mapped:#}");
        let mut code = std::fs::read(&entry.path)?;
        code.truncate(usize::try_from(entry.code_len)?);
        // SAFETY: passed on to the caller.
        unsafe {
            match kind {
                ArtifactKind::Component => Component::deserialize(&self.engine, &code).map(Program::Component),
                ArtifactKind::Module => Module::deserialize(&self.engine, &code).map(Program::Module),
            }
        }
    }

    /// Maps a compile-cache entry: Wasmtime reads the code at its start (the trailer after it is
    /// ignored) straight from the file, so pages it never touches, such as the guest's DWARF, stay
    /// out of memory.
    ///
    /// # Safety
    /// The file must hold Wasmtime's serialisation for this engine (see `Component::deserialize_file`).
    unsafe fn map_entry(&self, kind: ArtifactKind, path: &std::path::Path) -> wasmtime::Result<Program> {
        // SAFETY: passed on to the caller.
        unsafe {
            match kind {
                ArtifactKind::Component => Component::deserialize_file(&self.engine, path).map(Program::Component),
                ArtifactKind::Module => Module::deserialize_file(&self.engine, path).map(Program::Module),
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(keep: Option<u64>) -> PoolConfig {
        PoolConfig { instances: 2, max_memory_bytes: 1 << 20, keep_resident_bytes: keep }
    }

    #[test]
    fn keep_resident_is_capped_at_the_largest_memory() {
        assert_eq!(pool(Some(4096)).effective_keep_resident(), 4096);
        assert_eq!(pool(Some(8 << 20)).effective_keep_resident(), 1 << 20, "capped at the largest memory");
        assert_eq!(pool(None).effective_keep_resident(), PoolConfig::DEFAULT_KEEP_RESIDENT.min(1 << 20));
    }

    /// A slot kept resident still gives the next instance fresh memory: the pages the last one wrote
    /// are restored, the data segment included.
    #[test]
    fn a_resident_slot_starts_from_the_initial_image() {
        for keep in [Some(0), Some(64 << 10), None] {
            let runtime = Runtime::new(RuntimeConfig { cache_dir: None, pooling: Some(pool(keep)), ..Default::default() }).unwrap();
            let wat = r#"(module
                (memory 2)
                (data (i32.const 16) "\2a")
                (func (export "bump") (result i32)
                    (local $old i32)
                    (local.set $old (i32.add (i32.load8_u (i32.const 16)) (i32.load8_u (i32.const 70000))))
                    (i32.store8 (i32.const 16) (i32.const 7))
                    (i32.store8 (i32.const 70000) (i32.const 9))
                    (local.get $old)))"#;
            let module = Module::new(runtime.engine(EngineKind::Plain).unwrap(), wat).unwrap();
            for round in 0..3 {
                let mut store = wasmtime::Store::new(runtime.engine(EngineKind::Plain).unwrap(), ());
                store.set_epoch_deadline(1_000_000);
                let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
                let bump = instance.get_typed_func::<(), i32>(&mut store, "bump").unwrap();
                assert_eq!(bump.call(&mut store, ()).unwrap(), 42, "keep {keep:?}, instance {round} saw an earlier one's writes");
            }
        }
    }

    /// A cached entry is mapped from its file and runs: the trailer after the code does not bother
    /// Wasmtime, for components and core modules alike.
    #[test]
    fn compiled_code_is_loaded_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new(RuntimeConfig { cache_dir: Some(dir.path().to_path_buf()), pooling: None, ..Default::default() }).unwrap();
        let component = wat::parse_str(
            r#"(component
                (core module $m (func (export "f") (result i32) i32.const 7))
                (core instance $i (instantiate $m))
                (func (export "f") (result u32) (canon lift (core func $i "f"))))"#,
        )
        .unwrap();
        let module = wat::parse_str(r#"(module (func (export "f") (result i32) i32.const 7))"#).unwrap();
        for (bytes, digest) in [(&component, "c1"), (&module, "m1")] {
            assert_eq!(runtime.load_program(EngineKind::Plain, bytes, digest, "test").unwrap().1, CacheOutcome::Compiled);
            let (program, outcome) = runtime.load_program(EngineKind::Plain, bytes, digest, "test").unwrap();
            assert_eq!(outcome, CacheOutcome::Hit, "{digest}");
            assert_eq!(call_f(&runtime, program), 7, "{digest}");
        }
    }

    /// Calls the export `f` of a test program.
    fn call_f(runtime: &Runtime, program: Program) -> u32 {
        let mut store = Store::new(runtime.engine(EngineKind::Plain).unwrap(), ());
        store.set_epoch_deadline(1_000_000);
        match program {
            Program::Component(c) => {
                let instance = Linker::new(runtime.engine(EngineKind::Plain).unwrap()).instantiate(&mut store, &c).unwrap();
                instance.get_typed_func::<(), (u32,)>(&mut store, "f").unwrap().call(&mut store, ()).unwrap().0
            }
            Program::Module(m) => {
                let instance = wasmtime::Instance::new(&mut store, &m, &[]).unwrap();
                instance.get_typed_func::<(), i32>(&mut store, "f").unwrap().call(&mut store, ()).unwrap() as u32
            }
        }
    }

    /// Where the cache directory cannot map code executable (mounted `noexec`), an entry is read into
    /// memory instead: still a hit, never a recompile. It needs a tmpfs of its own, so it runs where
    /// the test may mount one (as root, as CI does) and says it was skipped elsewhere.
    #[test]
    fn a_noexec_cache_directory_still_gives_hits() {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "noexec,size=16m", "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a noexec tmpfs here");
            return;
        }
        struct Unmount<'a>(&'a std::path::Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = Command::new("umount").arg(self.0).status();
            }
        }
        let _unmount = Unmount(dir.path());
        let runtime = Runtime::new(RuntimeConfig { cache_dir: Some(dir.path().join("cache")), pooling: None, ..Default::default() }).unwrap();
        let module = wat::parse_str(r#"(module (func (export "f") (result i32) i32.const 7))"#).unwrap();
        assert_eq!(runtime.load_program(EngineKind::Plain, &module, "m1", "test").unwrap().1, CacheOutcome::Compiled);
        let (program, outcome) = runtime.load_program(EngineKind::Plain, &module, "m1", "test").unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
        assert_eq!(call_f(&runtime, program), 7);
    }

    /// A computing guest yields once per slice, and at every tick once its deadline has passed or its
    /// request was given up. The guest makes the ticks itself (a host call advancing the epoch), so
    /// the count is exact: a check runs where each loop iteration starts, so `n` ticks are noticed
    /// `n - 1` times.
    #[tokio::test]
    async fn a_guest_yields_once_per_slice_and_at_every_tick_once_stopped() {
        let engine = Engine::new(Config::new().epoch_interruption(true)).unwrap();
        let wat = r#"(module
            (import "host" "tick" (func $tick))
            (func (export "run") (param $n i32)
                (loop $again
                    (call $tick)
                    (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                    (br_if $again (local.get $n)))))"#;
        let module = Module::new(&engine, wat).unwrap();
        let mut linker = wasmtime::Linker::new(&engine);
        let ticking = engine.clone();
        linker.func_wrap("host", "tick", move || ticking.increment_epoch()).unwrap();
        let ticks = 35;
        let passed = Instant::now();
        let cases = [(None, false, (ticks - 1) / GUEST_SLICE_TICKS), (Some(passed), false, ticks - 1), (None, true, ticks - 1)];
        for (deadline, given_up, expected) in cases {
            let mut store = Store::new(&engine, ());
            schedule_guest(&mut store, deadline, move || given_up);
            let instance = linker.instantiate_async(&mut store, &module).await.unwrap();
            let run = instance.get_typed_func::<i32, ()>(&mut store, "run").unwrap();
            let mut call = std::pin::pin!(run.call_async(&mut store, ticks as i32));
            let mut yields = 0;
            std::future::poll_fn(|cx| {
                let poll = call.as_mut().poll(cx);
                yields += u64::from(poll.is_pending());
                poll
            })
            .await
            .unwrap();
            assert_eq!(yields, expected, "deadline {deadline:?}, given up {given_up}");
        }
    }
}
