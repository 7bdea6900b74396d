//! `nn:model:NAME`: wasi-nn with models shipped in the package.
//!
//! Models are loaded and compiled once per package version (see `wasmzip_nn::load_model`); every
//! instance gets a wasi-nn context whose graph registry hands out only the models the effective
//! capabilities name. `load-by-name` of a model that is not granted is `not-found` to the guest, as
//! for a model the package does not have, so the guest cannot probe for either; the host audits the
//! denial. `load` from guest-supplied bytes is always refused (and audited): a model runs only if it
//! came in the signed package and the operator granted it.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi_nn::backend::{BackendError, BackendFromDir, BackendInner};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding, WasiNnCtx, WasiNnView};
use wasmtime_wasi_nn::{Backend, Graph, GraphRegistry, Registry};
pub use wasmzip_nn::{Abandoned, NnConfig, NnError};
use wasmzip_nn::LoadedModel;
use wasmzip_package::{Capability, PackagedModel};
use wasmzip_package::capability::ModelPattern;

use super::{CapabilityError, CapabilityUnit};
use crate::audit::Auditor;
use crate::engine::EngineKind;
use crate::instance::{InstanceContext, InstanceState};
use crate::plan::{PlanContext, PlanError};

/// The wasi-nn unit: the granted models, loaded once per component.
pub struct Nn;

/// What the wasi-nn unit plans for a component.
#[derive(Clone)]
pub struct PlannedNn {
    grants: Arc<NnGrants>,
    models: Arc<ModelSet>,
}

impl PlannedNn {
    /// The models loaded for the component.
    pub fn models(&self) -> &ModelSet {
        &self.models
    }
}

impl CapabilityUnit for Nn {
    type Planned = PlannedNn;
    type Instance = NnCtx;

    fn link(linker: &mut Linker<InstanceState>, _kind: EngineKind) -> wasmtime::Result<()> {
        add_to_linker(linker)
    }

    fn plan(cx: &mut PlanContext<'_>) -> Result<PlannedNn, PlanError> {
        let grants = NnGrants::from_capabilities(cx.effective);
        let models = load_models(cx.component.models(), &grants, &cx.host.nn, cx.host.max_model_bytes)?;
        Ok(PlannedNn { grants: Arc::new(grants), models: Arc::new(models) })
    }

    fn instantiate(planned: &PlannedNn, cx: &mut InstanceContext<'_>) -> Result<NnCtx, CapabilityError> {
        Ok(NnCtx::new(planned.models.clone(), planned.grants.clone(), cx.audit.clone(), &cx.scope.abandoned))
    }
}

impl NnView for InstanceState {
    fn nn(&mut self) -> (&mut NnCtx, &mut ResourceTable) {
        let (capabilities, table) = self.capabilities_and_table();
        (&mut capabilities.nn, table)
    }
}

/// The effective `nn:model:` capabilities, as typed rules.
#[derive(Debug, Clone, Default)]
pub struct NnGrants {
    rules: Vec<ModelPattern>,
}

impl NnGrants {
    /// Collects the model capabilities among `effective`.
    pub fn from_capabilities(effective: &[Capability]) -> Self {
        let rules = effective
            .iter()
            .filter_map(|c| match c {
                Capability::NnModel(m) => Some(m.clone()),
                _ => None,
            })
            .collect();
        NnGrants { rules }
    }

    /// Whether the model `name` is granted.
    pub fn allows(&self, name: &str) -> bool {
        self.rules.iter().any(|r| r.matches(name))
    }

    /// Whether no model is granted.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The models of one package version, loaded once and shared by all its instances.
#[derive(Debug, Clone, Default)]
pub struct ModelSet {
    models: HashMap<String, LoadedModel>,
    /// Models whose bytes the back-end rejected, with why: the guest gets a wasi-nn error for them.
    failed: HashMap<String, String>,
}

impl ModelSet {
    /// A set of loaded models.
    pub fn new(models: impl IntoIterator<Item = LoadedModel>) -> Self {
        ModelSet { models: models.into_iter().map(|m| (m.name.clone(), m)).collect(), failed: HashMap::new() }
    }

    /// Why the model `name` could not be loaded, if it could not.
    pub fn failure(&self, name: &str) -> Option<&str> {
        self.failed.get(name).map(String::as_str)
    }

    /// The model `name`, if loaded.
    pub fn get(&self, name: &str) -> Option<&LoadedModel> {
        self.models.get(name)
    }

    /// Total bytes of the model files.
    pub fn bytes(&self) -> u64 {
        self.models.values().map(|m| m.bytes).sum()
    }

    /// The loaded models, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &LoadedModel> {
        self.models.values()
    }
}

/// Default cap on the model bytes one deployment may load.
pub const DEFAULT_MAX_MODEL_BYTES: u64 = 1 << 30;

/// Loads the package's `models` that `grants` name, after checking their total size (as pinned in
/// the manifest) against `cap`. Blocking.
///
/// A model whose bytes the back-end rejects (corrupt, or not ONNX) is logged as an error and left
/// out: the guest's `load-by-name` of it fails with a wasi-nn error and the rest of the package
/// still runs. An unavailable target (`gpu` without a usable GPU), a missing back-end, an unreadable
/// file or the cap are errors here, before anything runs.
pub fn load_models(models: &[PackagedModel], grants: &NnGrants, config: &NnConfig, cap: u64) -> Result<ModelSet, NnError> {
    let granted: Vec<&PackagedModel> = models.iter().filter(|m| grants.allows(m.name.as_str())).collect();
    let needed: u64 = granted.iter().map(|m| m.size).sum();
    if needed > cap {
        return Err(NnError::OverCap { needed, cap });
    }
    let mut set = ModelSet::default();
    for model in granted {
        let name = &model.name;
        let started = std::time::Instant::now();
        match wasmzip_nn::load_model(name.as_str(), &model.path, model.target, config) {
            Ok(model) => {
                tracing::info!(target: "wasmzip::nn", model = %name, backend = model.backend, device = model.device, bytes = model.bytes, "loaded model `{name}` in {:?}", started.elapsed());
                set.models.insert(name.to_string(), model);
            }
            Err(e @ NnError::Invalid { .. }) => {
                tracing::error!(target: "wasmzip::nn", model = %name, "cannot load model: {e}");
                set.failed.insert(name.to_string(), e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(set)
}

/// The registry one instance sees: the package's loaded models, filtered by its grants, each tied
/// to the instance's request (see `wasmzip_nn::for_request`).
struct GrantedModels {
    models: Arc<ModelSet>,
    graphs: HashMap<String, Graph>,
    grants: Arc<NnGrants>,
    audit: Auditor,
}

impl GraphRegistry for GrantedModels {
    fn get(&self, name: &str) -> Option<&Graph> {
        if !self.grants.allows(name) {
            let shown: String = name.chars().take(80).collect();
            self.audit.denied(&format!("loading model `{shown}`"), &format!("nn:model:{shown}"));
            return None;
        }
        let found = self.graphs.get(name);
        if found.is_none() {
            match self.models.failure(name) {
                Some(why) => tracing::error!(target: "wasmzip::nn", model = %name, "the guest asked for model `{name}`, which could not be loaded: {why}"),
                None => tracing::warn!(target: "wasmzip::nn", model = %name, "the guest asked for model `{name}`, which the package does not ship"),
            }
        }
        found
    }

    fn get_mut(&mut self, _name: &str) -> Option<&mut Graph> {
        None
    }
}

/// Stands in for a back-end so that `load` from guest bytes is refused with a reason and audited.
struct RefuseGuestBytes {
    encoding: GraphEncoding,
    audit: Auditor,
}

impl BackendInner for RefuseGuestBytes {
    fn encoding(&self) -> GraphEncoding {
        self.encoding
    }

    fn load(&mut self, _builders: &[&[u8]], _target: ExecutionTarget) -> Result<Graph, BackendError> {
        self.audit.denied("loading a model from guest-supplied bytes", "a model shipped in the package ([models.NAME]) and nn:model:NAME");
        Err(BackendError::BackendAccess(wasmtime::Error::msg(
            "loading models from guest-supplied bytes is refused: ship the model in the package and use load-by-name",
        )))
    }

    fn as_dir_loadable(&mut self) -> Option<&mut dyn BackendFromDir> {
        None
    }
}

/// Per-instance wasi-nn state.
pub struct NnCtx(WasiNnCtx);

impl NnCtx {
    /// The context for one instance of a package version with `models` and `grants`. Its forward
    /// passes are skipped, and its waits for them end, once `abandoned` is set.
    pub fn new(models: Arc<ModelSet>, grants: Arc<NnGrants>, audit: Auditor, abandoned: &Abandoned) -> Self {
        let backends = [GraphEncoding::Onnx, GraphEncoding::Autodetect]
            .map(|encoding| Backend::from(RefuseGuestBytes { encoding, audit: audit.clone() }));
        let graphs = models.iter().map(|m| (m.name.clone(), wasmzip_nn::for_request(&m.graph, abandoned))).collect();
        NnCtx(WasiNnCtx::new(backends, Registry::from(GrantedModels { models, graphs, grants, audit })))
    }
}

/// A store's data that offers wasi-nn.
pub trait NnView: Send {
    /// The instance's wasi-nn context and resource table.
    fn nn(&mut self) -> (&mut NnCtx, &mut ResourceTable);
}

fn view<T: NnView>(t: &mut T) -> WasiNnView<'_> {
    let (ctx, table) = t.nn();
    WasiNnView::new(table, &mut ctx.0)
}

/// Adds `wasi:nn` (the version `wasmtime-wasi-nn` links) to `linker`.
pub fn add_to_linker<T: NnView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_nn::wit::add_to_linker(linker, view::<T>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_name_models() {
        let caps: Vec<Capability> = ["nn:model:orientation", "env:X"].iter().map(|t| t.parse().unwrap()).collect();
        let g = NnGrants::from_capabilities(&caps);
        assert!(g.allows("orientation") && !g.allows("other"));
        assert!(NnGrants::from_capabilities(&["nn:model:*".parse().unwrap()]).allows("anything"));
        assert!(NnGrants::from_capabilities(&[]).is_empty());
    }
}
