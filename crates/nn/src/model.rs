//! The wasi-nn plumbing every back-end shares: a compiled model becomes a `Graph` whose execution
//! contexts all point at it, and a context does one thing, `compute` with named inputs.

use std::sync::Arc;

use wasmtime_wasi_nn::backend::{BackendError, BackendExecutionContext, BackendGraph, Id, NamedTensor};
use wasmtime_wasi_nn::{ExecutionContext, Graph};

use crate::tensor::error;

/// A compiled model of one back-end.
pub(crate) trait Model: Send + Sync + 'static {
    /// One forward pass from the guest's named tensors to the named outputs.
    fn compute(model: &Arc<Self>, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, BackendError>;
}

/// `model` as a wasi-nn graph; every context made from it shares the model.
pub(crate) fn graph<M: Model>(model: M) -> Graph {
    let graph: Box<dyn BackendGraph> = Box::new(Shared(Arc::new(model)));
    Graph::from(graph)
}

struct Shared<M>(Arc<M>);

struct Context<M>(Arc<M>);

impl<M: Model> BackendGraph for Shared<M> {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let ctx: Box<dyn BackendExecutionContext> = Box::new(Context(self.0.clone()));
        Ok(ExecutionContext::from(ctx))
    }
}

impl<M: Model> BackendExecutionContext for Context<M> {
    fn set_input(&mut self, _id: Id, _tensor: &wasmtime_wasi_nn::Tensor) -> Result<(), BackendError> {
        Err(error("set-input is not part of this wasi-nn version: pass inputs to compute"))
    }

    fn get_output(&mut self, _id: Id) -> Result<wasmtime_wasi_nn::Tensor, BackendError> {
        Err(error("get-output is not part of this wasi-nn version: compute returns the outputs"))
    }

    fn compute(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        M::compute(&self.0, inputs.unwrap_or_default()).map(Some)
    }
}
