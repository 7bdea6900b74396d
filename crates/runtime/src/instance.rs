//! One instance of a planned component: its store's data ([`InstanceState`], which implements every
//! WASI view the linker needs), built from the component's planned capabilities and what is
//! particular to this instance ([`InstanceScope`]: who it runs for, its trace id, its outbound
//! budget).

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::filesystem::WasiFilesystemCtx;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
#[cfg(feature = "nn")]
use crate::capabilities::nn::Abandoned;

use crate::audit::Auditor;
use crate::capabilities::http::DenialCounter;
use crate::capabilities::{CapabilityError, InstanceCapabilities};
use crate::limits::{GuestLimiter, MAX_HOST_TABLE_ENTRIES, MAX_RANDOM_BYTES, MAX_RESOURCE_HANDLES};
use crate::plan::PlannedComponent;
use crate::requests::RequestScopes;

/// What is particular to one instance.
#[derive(Clone)]
pub struct InstanceScope {
    /// Appended to the component's subject in audit lines (`request ID`), if any.
    pub label: Option<String>,
    /// The trace id outbound requests carry (the request id under `serve`).
    pub trace_id: Arc<str>,
    /// Most outbound HTTP requests the instance may make.
    pub outbound_limit: u32,
    /// Counts denials by kind (the server's metrics).
    pub denials: DenialCounter,
    /// Set when the instance's work is given up: queued inference is skipped (only inference
    /// reads it, so a build without wasi-nn has none).
    #[cfg(feature = "nn")]
    pub abandoned: Abandoned,
    /// For an instance that serves many requests: the scope of the one running now, which then
    /// replaces `label`, `trace_id` and `outbound_limit` above.
    pub requests: Option<Arc<RequestScopes>>,
}

impl InstanceScope {
    /// A scope for a one-off run: its own random trace id, `outbound_limit` requests, no metrics.
    pub fn run(outbound_limit: u32) -> Self {
        let mut id = [0u8; 16];
        if getrandom::fill(&mut id).is_err() {
            id = [1; 16];
        }
        InstanceScope {
            label: None,
            trace_id: Arc::from(hex::encode(id)),
            outbound_limit,
            denials: Arc::new(|_| {}),
            #[cfg(feature = "nn")]
            abandoned: Abandoned::new(),
            requests: None,
        }
    }
}

/// What a capability unit sees while an instance is configured.
pub struct InstanceContext<'a> {
    /// The instance's WASI context, being built.
    pub wasi: &'a mut WasiCtxBuilder,
    /// Who denials are audited as.
    pub audit: Auditor,
    /// The instance's scope.
    pub scope: &'a InstanceScope,
    /// The preopened directories, opened when the component was planned, to put in the built
    /// context in place of the builder's (the builder can only open directories by path).
    pub filesystem: Option<WasiFilesystemCtx>,
}

/// The data of a component instance's store: WASI, its resource table, its memory limiter and
/// every capability unit's instance state.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: GuestLimiter,
    capabilities: InstanceCapabilities,
}

impl InstanceState {
    /// Every capability unit's state in this instance.
    pub fn capabilities(&self) -> &InstanceCapabilities {
        &self.capabilities
    }

    /// The resource table.
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The capability states and the resource table at once, for host interfaces that need both.
    pub(crate) fn capabilities_and_table(&mut self) -> (&mut InstanceCapabilities, &mut ResourceTable) {
        (&mut self.capabilities, &mut self.table)
    }

    /// The memory limiter.
    pub fn limiter(&self) -> &GuestLimiter {
        &self.limiter
    }

    /// The memory limiter, mutably (a state replacing another carries its count over).
    pub fn limiter_mut(&mut self) -> &mut GuestLimiter {
        &mut self.limiter
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The data of a preview-1 module's store.
pub struct ModuleState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: GuestLimiter,
}

impl ModuleState {
    /// The memory limiter.
    pub fn limiter(&self) -> &GuestLimiter {
        &self.limiter
    }
}

impl PlannedComponent {
    /// Configures a WASI context for one instance: what is always on, then every capability unit;
    /// `stdio` sets the instance's arguments and standard streams.
    fn configure(
        &self,
        scope: &InstanceScope,
        stdio: impl FnOnce(&mut WasiCtxBuilder),
    ) -> Result<(WasiCtxBuilder, InstanceCapabilities, Option<WasiFilesystemCtx>), CapabilityError> {
        let mut builder = WasiCtxBuilder::new();
        builder.max_random_size(MAX_RANDOM_BYTES);
        stdio(&mut builder);
        let subject = match &scope.label {
            Some(label) => format!("{} {label}", self.component().subject()),
            None => self.component().subject(),
        };
        let audit = match &scope.requests {
            Some(requests) => Auditor::new(subject).for_requests(requests.clone()),
            None => Auditor::new(subject),
        };
        let mut cx = InstanceContext { wasi: &mut builder, audit, scope, filesystem: None };
        let capabilities = self.capabilities().instantiate(&mut cx)?;
        let filesystem = cx.filesystem.take();
        Ok((builder, capabilities, filesystem))
    }

    /// The state of one new component instance.
    pub fn instance_state(&self, scope: &InstanceScope, stdio: impl FnOnce(&mut WasiCtxBuilder)) -> Result<InstanceState, CapabilityError> {
        let (mut builder, capabilities, filesystem) = self.configure(scope, stdio)?;
        let mut wasi = builder.build();
        if let Some(fs) = filesystem {
            *wasi.filesystem() = fs;
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HOST_TABLE_ENTRIES);
        Ok(InstanceState { wasi, table, limiter: GuestLimiter::new(&self.limits()), capabilities })
    }

    /// A store for one new component instance, its limits in place.
    pub fn new_store(&self, scope: &InstanceScope, stdio: impl FnOnce(&mut WasiCtxBuilder)) -> Result<Store<InstanceState>, CapabilityError> {
        let mut store = Store::new(self.engine(), self.instance_state(scope, stdio)?);
        limit_store(&mut store);
        Ok(store)
    }

    /// A store for a preview-1 module: the same capabilities, through WASI preview 1.
    pub fn new_module_store(&self, scope: &InstanceScope, stdio: impl FnOnce(&mut WasiCtxBuilder)) -> Result<Store<ModuleState>, CapabilityError> {
        let (mut builder, _component_only, filesystem) = self.configure(scope, stdio)?;
        let mut wasi = builder.build_p1();
        if let Some(fs) = filesystem {
            *WasiView::ctx(&mut wasi).ctx.filesystem() = fs;
        }
        let mut store = Store::new(self.engine(), ModuleState { wasi, limiter: GuestLimiter::new(&self.limits()) });
        store.limiter(|s| &mut s.limiter);
        Ok(store)
    }
}

/// Puts a component store's limits in place: its memory limiter, the cap on the handles the guest
/// holds, and the backstop on the table the component model keeps for streams, futures and tasks
/// (WASI 0.3).
pub fn limit_store(store: &mut Store<InstanceState>) {
    store.limiter(|s| &mut s.limiter);
    store.set_max_component_handles(MAX_RESOURCE_HANDLES);
    if let Some(table) = store.concurrent_resource_table() {
        table.set_max_capacity(MAX_HOST_TABLE_ENTRIES);
    }
}
