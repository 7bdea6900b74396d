//! Tensors between wasi-nn (dimensions, type, little-endian bytes) and tract, checked against what
//! the model declares so that a wrong shape or type is a clear error, never a panic.

use tract_onnx::prelude::*;
use wasmtime_wasi_nn::backend::BackendError;
use wasmtime_wasi_nn::wit::TensorType;

use crate::info::{ModelInfo, TensorInfo};

/// Most elements one input tensor may hold (1 Gi: 4 GiB of f32).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 30;

/// A back-end failure. wasmtime-wasi-nn shows the guest only "Failed while accessing backend" for
/// these, so the reason is logged here for the operator.
pub(crate) fn error(message: impl Into<String>) -> BackendError {
    let message = message.into();
    tracing::warn!(target: "wasmzip::nn", "{message}");
    BackendError::BackendAccess(wasmtime::Error::msg(message))
}

/// An input the model cannot take. This variant carries its text through to the guest's
/// `error.data()` (as "Unsupported tensor type: ..."), so the guest learns what was wrong.
pub(crate) fn tensor_error(message: String) -> BackendError {
    tracing::warn!(target: "wasmzip::nn", "{message}");
    BackendError::UnsupportedTensorType(message)
}

/// Puts the guest's named tensors in the model's input order, each converted by `convert` (which
/// checks it against its declared input). An unknown name or a missing input is an error the guest
/// sees; a name given twice keeps the last tensor.
pub(crate) fn ordered_inputs<V>(
    info: &ModelInfo,
    inputs: &[wasmtime_wasi_nn::backend::NamedTensor],
    mut convert: impl FnMut(&TensorInfo, &wasmtime_wasi_nn::Tensor) -> Result<V, BackendError>,
) -> Result<Vec<V>, BackendError> {
    let mut ordered: Vec<Option<V>> = (0..info.inputs.len()).map(|_| None).collect();
    for named in inputs {
        let Some(ix) = info.inputs.iter().position(|i| i.name == named.name) else {
            let known: Vec<&str> = info.inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(tensor_error(format!("the model has no input `{}` (inputs: {})", named.name, known.join(", "))));
        };
        ordered[ix] = Some(convert(&info.inputs[ix], &named.tensor)?);
    }
    ordered
        .into_iter()
        .zip(&info.inputs)
        .map(|(v, declared)| v.ok_or_else(|| tensor_error(format!("input `{}` is missing", declared.name))))
        .collect()
}

fn type_name(ty: TensorType) -> &'static str {
    match ty {
        TensorType::Fp16 => "f16",
        TensorType::Fp32 => "f32",
        TensorType::Fp64 => "f64",
        TensorType::Bf16 => "bf16",
        TensorType::U8 => "u8",
        TensorType::I32 => "i32",
        TensorType::I64 => "i64",
    }
}

/// Bytes per element of a wasi-nn tensor type.
pub(crate) fn element_width(ty: TensorType) -> usize {
    match ty {
        TensorType::U8 => 1,
        TensorType::Fp16 | TensorType::Bf16 => 2,
        TensorType::Fp32 | TensorType::I32 => 4,
        TensorType::Fp64 | TensorType::I64 => 8,
    }
}

/// Checks a guest tensor against the declared input (element type, rank, fixed dimensions, no zero
/// dimension, element count, byte length) and returns its shape. Every back-end validates inputs
/// with this, so all of them refuse the same tensors with the same message.
pub(crate) fn check_input(declared: &TensorInfo, t: &wasmtime_wasi_nn::Tensor) -> Result<Vec<usize>, BackendError> {
    let given = format!("{}[{}]", type_name(t.ty), t.dimensions.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
    let mismatch = |why: &str| tensor_error(format!("input `{}` expects {}[{}]; got {given}: {why}", declared.name, declared.element, declared.shape.join(",")));
    if type_name(t.ty) != declared.element {
        return Err(mismatch("wrong element type"));
    }
    let declared_rank = declared.shape.len();
    if declared_rank != 0 && t.dimensions.len() != declared_rank {
        return Err(mismatch("wrong number of dimensions"));
    }
    for (d, want) in t.dimensions.iter().zip(&declared.shape) {
        if let Ok(n) = want.parse::<u32>()
            && n != *d
        {
            return Err(mismatch("a fixed dimension differs"));
        }
    }
    if t.dimensions.contains(&0) {
        return Err(mismatch("a dimension is zero"));
    }
    let shape: Vec<usize> = t.dimensions.iter().map(|d| *d as usize).collect();
    let elements = shape.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d)).filter(|n| *n <= MAX_TENSOR_ELEMENTS);
    let Some(elements) = elements else {
        return Err(mismatch("too many elements"));
    };
    let width = element_width(t.ty);
    if t.data.len() != elements * width {
        return Err(mismatch(&format!("{} bytes of data for {elements} elements of {width} bytes", t.data.len())));
    }
    Ok(shape)
}

/// Little-endian `N`-byte chunks of `data` decoded with `f` (the length was checked already).
pub(crate) fn decode_le<const N: usize, T>(data: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect()
}

/// Checks a guest tensor against the declared input and turns it into a tract tensor.
pub(crate) fn to_tract(declared: &TensorInfo, t: &wasmtime_wasi_nn::Tensor) -> Result<Tensor, BackendError> {
    let shape = check_input(declared, t)?;
    let d = &t.data;
    let tensor = match t.ty {
        TensorType::Fp32 => Tensor::from_shape(&shape, &decode_le(d, f32::from_le_bytes)),
        TensorType::Fp64 => Tensor::from_shape(&shape, &decode_le(d, f64::from_le_bytes)),
        TensorType::Fp16 => Tensor::from_shape(&shape, &decode_le::<2, _>(d, |b| f16::from_bits(u16::from_le_bytes(b)))),
        TensorType::U8 => Tensor::from_shape(&shape, d),
        TensorType::I32 => Tensor::from_shape(&shape, &decode_le(d, i32::from_le_bytes)),
        TensorType::I64 => Tensor::from_shape(&shape, &decode_le(d, i64::from_le_bytes)),
        TensorType::Bf16 => return Err(tensor_error("bf16 tensors are not supported".into())),
    };
    tensor.map_err(|e| error(format!("input `{}`: {e:#}", declared.name)))
}

fn plain<D: Datum>(name: &str, t: &Tensor) -> Result<Vec<D>, BackendError> {
    let view = t.try_as_plain_ram().map_err(|e| error(format!("output `{name}`: {e:#}")))?;
    let slice = view.as_slice::<D>().map_err(|e| error(format!("output `{name}`: {e:#}")))?;
    Ok(slice.to_vec())
}

/// Turns a tract output into a wasi-nn tensor.
pub(crate) fn from_tract(name: &str, t: &Tensor) -> Result<wasmtime_wasi_nn::Tensor, BackendError> {
    let dimensions = t.shape().iter().map(|d| u32::try_from(*d).map_err(|_| error(format!("output `{name}` has a dimension over u32")))).collect::<Result<Vec<_>, _>>()?;
    let (ty, data): (TensorType, Vec<u8>) = match t.datum_type() {
        DatumType::F32 => (TensorType::Fp32, plain::<f32>(name, t)?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DatumType::F64 => (TensorType::Fp64, plain::<f64>(name, t)?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DatumType::F16 => (TensorType::Fp16, plain::<f16>(name, t)?.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect()),
        DatumType::U8 => (TensorType::U8, plain::<u8>(name, t)?),
        DatumType::I32 => (TensorType::I32, plain::<i32>(name, t)?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DatumType::I64 => (TensorType::I64, plain::<i64>(name, t)?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        other => return Err(error(format!("output `{name}` has type {other:?}, which wasi-nn cannot carry"))),
    };
    Ok(wasmtime_wasi_nn::Tensor::new(dimensions, ty, data))
}
