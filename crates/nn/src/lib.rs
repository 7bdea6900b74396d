//! wasi-nn back-ends for wasmzip, plugged into `wasmtime-wasi-nn` through its public
//! `BackendGraph` / `BackendExecutionContext` traits.
//!
//! A model is loaded and compiled once per deployed version ([`load_model`]) into a
//! [`wasmtime_wasi_nn::Graph`], which every instance and request shares; per request only an
//! execution context (a run state over the shared plan) is made. Forward passes run on a fixed
//! set of inference threads when serving (see `pool`). Back-ends:
//!
//! - **tract** (the default): ONNX on `tract-onnx`, pure Rust, nothing to install. With the `cuda`
//!   feature, `tract-cuda` runs models on NVIDIA GPUs; it loads the CUDA driver, NVRTC and cuBLAS at
//!   run time, so the feature builds anywhere.
//! - **ort** (feature `ort`): ONNX Runtime through the `ort` crate with `load-dynamic`, pointed at a
//!   `libonnxruntime.so` the operator names. Nothing is downloaded.
//!
//! This crate knows models and tensors; grants, auditing and the linker are the runtime's business.
#![deny(missing_docs)]

mod info;
mod model;
#[cfg(feature = "ort")]
mod ort_backend;
mod pool;
mod tensor;
mod tract_backend;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use info::{ModelInfo, TensorInfo, describe_onnx};
pub use pool::{Abandoned, inference_threads};
pub use wasmtime_wasi_nn::Graph;
use wasmtime_wasi_nn::ExecutionContext;
use wasmtime_wasi_nn::backend::{BackendError, BackendExecutionContext, BackendGraph, Id, NamedTensor};
use wasmzip_package::manifest::ModelTarget;

/// Largest model file accepted, in bytes (2 GiB: protobuf's own limit).
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Why a model could not be loaded or described.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// The model file could not be read.
    #[error("cannot read model `{model}` from {}: {error}", path.display())]
    Read {
        /// The model name.
        model: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// The bytes are not a model this back-end can run.
    #[error("model `{model}`: {message}")]
    Invalid {
        /// The model name.
        model: String,
        /// What is wrong, from the back-end.
        message: String,
    },
    /// The requested execution target is not available.
    #[error("model `{model}`: target `{target}` is not available: {message}")]
    Target {
        /// The model name.
        model: String,
        /// The target asked for.
        target: ModelTarget,
        /// Why.
        message: String,
    },
    /// The back-end is not usable (ONNX Runtime library missing, feature compiled out).
    #[error("{0}")]
    Backend(String),
    /// The models of one deployment exceed the operator's cap.
    #[error("the models need {needed} bytes, more than the cap of {cap} bytes per deployment (--max-model-memory)")]
    OverCap {
        /// Bytes needed.
        needed: u64,
        /// The cap.
        cap: u64,
    },
}

/// Which back-end runs ONNX models.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// tract (CPU; GPU with the `cuda` feature).
    #[default]
    Tract,
    /// ONNX Runtime from this shared library (feature `ort`).
    OnnxRuntime(PathBuf),
}

/// How models are loaded: the operator's choices.
#[derive(Debug, Clone, Default)]
pub struct NnConfig {
    /// The back-end.
    pub backend: BackendChoice,
    /// Overrides every model's manifest target.
    pub target: Option<ModelTarget>,
}

/// A loaded, compiled model shared by every instance of one deployed version.
#[derive(Clone)]
pub struct LoadedModel {
    /// Its name in the manifest.
    pub name: String,
    /// The compiled graph; cloning it shares the compiled plan.
    pub graph: Graph,
    /// Size of the model file, counted against the deployment's cap.
    pub bytes: u64,
    /// Where it runs (`cpu` or `gpu`), after `auto` was resolved.
    pub device: &'static str,
    /// Which back-end runs it (`tract`, `onnxruntime`).
    pub backend: &'static str,
    /// Its inputs and outputs.
    pub info: Arc<ModelInfo>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.name)
            .field("bytes", &self.bytes)
            .field("device", &self.device)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// The graph `graph` as one request's instance sees it: its forward passes are tied to
/// `abandoned`, so that once the host gives the request up its queued passes are skipped and its
/// waits end (see [`Abandoned`]). Cheap: it shares the compiled model.
pub fn for_request(graph: &Graph, abandoned: &Abandoned) -> Graph {
    let graph: Box<dyn BackendGraph> = Box::new(RequestGraph { inner: graph.clone(), abandoned: abandoned.clone() });
    Graph::from(graph)
}

struct RequestGraph {
    inner: Graph,
    abandoned: Abandoned,
}

struct RequestContext {
    inner: ExecutionContext,
    abandoned: Abandoned,
}

impl BackendGraph for RequestGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let inner = self.inner.init_execution_context()?;
        let ctx: Box<dyn BackendExecutionContext> = Box::new(RequestContext { inner, abandoned: self.abandoned.clone() });
        Ok(ExecutionContext::from(ctx))
    }
}

impl BackendExecutionContext for RequestContext {
    fn set_input(&mut self, id: Id, tensor: &wasmtime_wasi_nn::Tensor) -> Result<(), BackendError> {
        self.inner.set_input(id, tensor)
    }

    fn compute(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        let inner = &mut self.inner;
        self.abandoned.scope(|| BackendExecutionContext::compute(&mut **inner, inputs))
    }

    fn get_output(&mut self, id: Id) -> Result<wasmtime_wasi_nn::Tensor, BackendError> {
        self.inner.get_output(id)
    }
}

/// Whether this build can run models on a GPU (the `cuda` feature).
pub const GPU_SUPPORT: bool = cfg!(feature = "cuda");

/// Loads and compiles the ONNX model in `path` for `target` (unless the operator overrides it).
/// Blocking: call it off the async threads.
pub fn load_model(name: &str, path: &Path, target: ModelTarget, config: &NnConfig) -> Result<LoadedModel, NnError> {
    let read_err = |error| NnError::Read { model: name.to_string(), path: path.to_path_buf(), error };
    let bytes = std::fs::metadata(path).map_err(read_err)?.len();
    if bytes > MAX_MODEL_BYTES {
        return Err(NnError::Invalid { model: name.into(), message: format!("{bytes} bytes; models are limited to {MAX_MODEL_BYTES}") });
    }
    let target = config.target.unwrap_or(target);
    let data = std::fs::read(path).map_err(read_err)?;
    let info = Arc::new(describe_onnx(name, &data)?);
    let (graph, device, backend) = match &config.backend {
        BackendChoice::Tract => {
            let (graph, device) = tract_backend::load(name, &data, &info, target)?;
            (graph, device, "tract")
        }
        #[cfg(feature = "ort")]
        BackendChoice::OnnxRuntime(library) => {
            let (graph, device) = ort_backend::load(name, &data, &info, target, library)?;
            (graph, device, "onnxruntime")
        }
        #[cfg(not(feature = "ort"))]
        BackendChoice::OnnxRuntime(_) => {
            return Err(NnError::Backend(
                "the ONNX Runtime back-end is disabled at compile time: build wasmzip with `--features ort`".into(),
            ));
        }
    };
    Ok(LoadedModel { name: name.to_string(), graph, bytes, device, backend, info })
}
