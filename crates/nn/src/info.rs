//! What a model takes and gives: input and output names, element types and shapes, read from the
//! ONNX protobuf itself (symbolic dimensions keep their names).

use std::fmt;

use tract_onnx::pb;
use tract_onnx::prelude::Framework as _;

use crate::NnError;

/// One input or output of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Its name.
    pub name: String,
    /// Element type (`f32`, `f16`, `u8`, `i64`, ...).
    pub element: String,
    /// Dimensions: a number, or the name of a symbolic dimension (`N`).
    pub shape: Vec<String>,
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}[{}]", self.name, self.element, self.shape.join(","))
    }
}

/// The inputs and outputs of a model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelInfo {
    /// Graph inputs that are not initializers.
    pub inputs: Vec<TensorInfo>,
    /// Graph outputs.
    pub outputs: Vec<TensorInfo>,
}

fn element_name(code: i32) -> String {
    use pb::tensor_proto::DataType;
    match DataType::try_from(code) {
        Ok(DataType::Float) => "f32".into(),
        Ok(DataType::Float16) => "f16".into(),
        Ok(DataType::Double) => "f64".into(),
        Ok(DataType::Bfloat16) => "bf16".into(),
        Ok(DataType::Uint8) => "u8".into(),
        Ok(DataType::Int8) => "i8".into(),
        Ok(DataType::Int32) => "i32".into(),
        Ok(DataType::Int64) => "i64".into(),
        Ok(DataType::Bool) => "bool".into(),
        Ok(other) => other.as_str_name().to_ascii_lowercase(),
        Err(_) => format!("type{code}"),
    }
}

fn tensor_info(value: &pb::ValueInfoProto) -> TensorInfo {
    use pb::tensor_shape_proto::dimension::Value;
    use pb::type_proto::Value as TypeValue;
    let (element, shape) = match value.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(TypeValue::TensorType(t)) => {
            let shape = t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match &d.value {
                            Some(Value::DimValue(v)) => v.to_string(),
                            Some(Value::DimParam(p)) if !p.is_empty() => p.clone(),
                            _ => "?".to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            (element_name(t.elem_type), shape)
        }
        _ => ("?".to_string(), Vec::new()),
    };
    TensorInfo { name: value.name.clone(), element, shape }
}

/// Reads the inputs and outputs of the ONNX model in `bytes`; `name` names it in errors.
pub fn describe_onnx(name: &str, bytes: &[u8]) -> Result<ModelInfo, NnError> {
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| NnError::Invalid { model: name.to_string(), message: format!("not an ONNX model: {e:#}") })?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| NnError::Invalid { model: name.to_string(), message: "the ONNX file has no graph".into() })?;
    let initializers: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs = graph.input.iter().filter(|i| !initializers.contains(i.name.as_str())).map(tensor_info).collect();
    let outputs = graph.output.iter().map(tensor_info).collect();
    Ok(ModelInfo { inputs, outputs })
}
