//! TF Serving's messages <-> the Open Inference Protocol's, for a `protocol = "v2"` backend. Pure
//! functions of their arguments: the rest of the daemon speaks TF Serving's API and never sees a
//! v2 message.
//!
//! Tensor data is moved, not copied, wherever the two layouts agree: a fixed-size tensor's
//! `tensor_content` (a batch's joined rows) becomes its `raw_input_contents` entry, and a
//! `raw_output_contents` entry becomes the output's `tensor_content`; both are `Bytes`, so the
//! daemon's path copies no more than it does for TF Serving. Typed values (`float_val`, ...,
//! which the daemon writes for a request sent alone) are encoded into raw contents, because a v2
//! request carries either raw contents for every input or for none. Strings are re-encoded both
//! ways (TF's `string_val` vs v2's length-prefixed BYTES).
//!
//! Everything a v2 server sends is checked before it sizes an allocation: a shape holds at most
//! [`MAX_ELEMENTS`](crate::convert::tensor::MAX_ELEMENTS) elements, raw contents are exactly
//! shape x element size (BYTES: exactly the shape's count of length-prefixed elements), typed
//! contents exactly one value per element in the datatype's own field. Errors blame the backend
//! (INTERNAL) and quote the names it sent.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message;
use tfgate_common::echo::quote;
use tfgate_proto::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use tfgate_proto::inference::model_infer_response::InferOutputTensor;
use tfgate_proto::inference::model_metadata_response::TensorMetadata;
use tfgate_proto::inference::{InferTensorContents, ModelInferRequest, ModelInferResponse, ModelMetadataResponse};
use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::model_version_status::State;
use tfgate_proto::tensorflow::serving::{
    GetModelMetadataResponse, GetModelStatusResponse, ModelSpec, ModelVersionStatus, PredictRequest, PredictResponse,
    SignatureDefMap, StatusProto,
};
use tfgate_proto::tensorflow::{
    tensor_info::Encoding, tensor_shape_proto::Dim, SignatureDef, TensorInfo, TensorProto, TensorShapeProto,
};
use tfgate_proto::{DEFAULT_SIGNATURE, PREDICT_METHOD_NAME, SIGNATURE_DEF_FIELD, SIGNATURE_DEF_MAP_TYPE_URL};

use crate::convert::tensor::element_count;
use crate::convert::v2_dtype::{
    check_contents, contents_fields, push_raw_bytes, split_raw_bytes, V2Datatype, BYTES_LENGTH_PREFIX,
};
use crate::convert::{Blame, ConvertError, Dtype};

/// The v2 `model_version` of a TF version choice: a number as its digits, a label as it is (v2
/// versions are strings; a server that knows no such version says so), none as empty (the
/// server's own policy, as TF Serving's latest).
pub fn version_string(choice: Option<&VersionChoice>) -> String {
    match choice {
        None => String::new(),
        Some(VersionChoice::Version(v)) => v.to_string(),
        Some(VersionChoice::VersionLabel(label)) => label.clone(),
    }
}

/// A v2 version string as TF's number, when it is one (v2 versions may be any string; TF's are
/// numbers).
pub fn version_number(version: &str) -> Option<i64> {
    tfgate_common::parse_version(version.as_bytes())
}

/// A Predict call as ModelInfer. `max_raw_bytes`: the most one input's raw contents may take
/// (the message limit: the call could not be sent anyway), checked before anything is written.
pub fn infer_request(request: PredictRequest, max_raw_bytes: usize) -> Result<ModelInferRequest, ConvertError> {
    let spec = request.model_spec.unwrap_or_default();
    if !spec.signature_name.is_empty() && spec.signature_name != DEFAULT_SIGNATURE {
        return Err(ConvertError::request(format!(
            "a v2 backend serves one signature, {DEFAULT_SIGNATURE}, not \"{}\"",
            quote(&spec.signature_name)
        )));
    }
    // Sorted: the same request is the same message (the map's order is random).
    let mut named: Vec<(String, TensorProto)> = request.inputs.into_iter().collect();
    named.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut inputs = Vec::with_capacity(named.len());
    let mut raw_input_contents = Vec::with_capacity(named.len());
    for (name, proto) in named {
        let (datatype, shape, raw) = input_raw(&name, proto, max_raw_bytes)?;
        inputs.push(InferInputTensor {
            name,
            datatype: datatype.name().to_string(),
            shape,
            parameters: HashMap::new(),
            contents: None,
        });
        raw_input_contents.push(raw);
    }
    let outputs = request
        .output_filter
        .into_iter()
        .map(|name| InferRequestedOutputTensor { name, parameters: HashMap::new() })
        .collect();
    Ok(ModelInferRequest {
        model_name: spec.name,
        model_version: version_string(spec.version_choice.as_ref()),
        id: String::new(),
        parameters: HashMap::new(),
        inputs,
        outputs,
        raw_input_contents,
    })
}

/// One input's datatype, shape and raw contents.
fn input_raw(
    name: &str,
    proto: TensorProto,
    max_raw_bytes: usize,
) -> Result<(V2Datatype, Vec<i64>, Bytes), ConvertError> {
    let fail = |message: String| ConvertError::request(format!("input \"{}\": {message}", quote(name)));
    let datatype = V2Datatype::from_tf_code(proto.dtype, Blame::Request).map_err(|e| fail(e.message))?;
    let shape = match &proto.tensor_shape {
        None => Vec::new(),
        Some(shape) if shape.unknown_rank => return Err(fail("a tensor of unknown rank".to_string())),
        Some(shape) => shape.dim.iter().map(|d| d.size).collect::<Vec<i64>>(),
    };
    let dims = shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| fail(format!("dimension {d}"))))
        .collect::<Result<Vec<usize>, _>>()?;
    let count = element_count(&dims).map_err(|e| fail(e.message))?;
    let raw = match datatype.element_size() {
        Some(size) => {
            let len = count * size;
            if !proto.tensor_content.is_empty() {
                if proto.tensor_content.len() != len {
                    return Err(fail(format!(
                        "tensor_content holds {} bytes, but {count} {datatype} elements need {len}",
                        proto.tensor_content.len()
                    )));
                }
                // The batch's joined rows, handed over as they are.
                proto.tensor_content
            } else {
                if len > max_raw_bytes {
                    return Err(fail(format!(
                        "{len} bytes of {datatype} values exceed the {max_raw_bytes}-byte limit"
                    )));
                }
                typed_raw(datatype.dtype(), &proto, count, len).map_err(fail)?.into()
            }
        }
        None => {
            if !proto.tensor_content.is_empty() {
                return Err(fail("DT_STRING values cannot be in tensor_content".to_string()));
            }
            strings_raw(&proto.string_val, count, max_raw_bytes).map_err(fail)?.into()
        }
    };
    Ok((datatype, shape, raw))
}

/// A fixed-size tensor's typed values as raw contents of `len` bytes: TF's rules, a short list
/// padded with its last value (one value fills the shape) and an empty one meaning zeros.
fn typed_raw(dtype: Dtype, proto: &TensorProto, count: usize, len: usize) -> Result<Vec<u8>, String> {
    fn put<T: Copy + Default, const N: usize>(
        values: &[T],
        count: usize,
        len: usize,
        bytes: impl Fn(T) -> [u8; N],
    ) -> Result<Vec<u8>, String> {
        if values.len() > count {
            return Err(format!("{} values for {count} elements", values.len()));
        }
        let last = values.last().copied().unwrap_or_default();
        let mut out = Vec::with_capacity(len);
        for &x in values.iter().chain(std::iter::repeat_n(&last, count - values.len())) {
            out.extend_from_slice(&bytes(x));
        }
        Ok(out)
    }
    // Narrowing casts: the daemon wrote these from values checked for their dtype, and TF
    // itself narrows `int_val` the same way.
    match dtype {
        Dtype::Bool => put(&proto.bool_val, count, len, |x| [u8::from(x)]),
        Dtype::Int8 => put(&proto.int_val, count, len, |x| (x as i8).to_le_bytes()),
        Dtype::Uint8 => put(&proto.int_val, count, len, |x| (x as u8).to_le_bytes()),
        Dtype::Int16 => put(&proto.int_val, count, len, |x| (x as i16).to_le_bytes()),
        Dtype::Uint16 => put(&proto.int_val, count, len, |x| (x as u16).to_le_bytes()),
        Dtype::Int32 => put(&proto.int_val, count, len, i32::to_le_bytes),
        Dtype::Int64 => put(&proto.int64_val, count, len, i64::to_le_bytes),
        Dtype::Uint32 => put(&proto.uint32_val, count, len, u32::to_le_bytes),
        Dtype::Uint64 => put(&proto.uint64_val, count, len, u64::to_le_bytes),
        // `half_val` holds each 16-bit pattern in an int32.
        Dtype::Half | Dtype::Bfloat16 => put(&proto.half_val, count, len, |x| (x as u16).to_le_bytes()),
        Dtype::Float => put(&proto.float_val, count, len, f32::to_le_bytes),
        Dtype::Double => put(&proto.double_val, count, len, f64::to_le_bytes),
        Dtype::String => Err("strings have no fixed size".to_string()),
    }
}

/// `string_val` (padded as TF pads it) as BYTES raw contents, sized before it is written.
fn strings_raw(values: &[Vec<u8>], count: usize, max_raw_bytes: usize) -> Result<Vec<u8>, String> {
    if values.len() > count {
        return Err(format!("{} values for {count} elements", values.len()));
    }
    let last: &[u8] = values.last().map_or(&[], Vec::as_slice);
    let filled = count - values.len();
    let len = values
        .iter()
        .try_fold(0usize, |sum, v| sum.checked_add(v.len()))
        .and_then(|sum| sum.checked_add(filled.checked_mul(last.len())?))
        .and_then(|sum| sum.checked_add(count.checked_mul(BYTES_LENGTH_PREFIX)?))
        .filter(|&len| len <= max_raw_bytes)
        .ok_or_else(|| format!("{count} BYTES elements exceed the {max_raw_bytes}-byte limit"))?;
    let mut out = Vec::with_capacity(len);
    for value in values.iter().map(Vec::as_slice).chain(std::iter::repeat_n(last, filled)) {
        push_raw_bytes(&mut out, value, Blame::Request).map_err(|e| e.message)?;
    }
    Ok(out)
}

/// A ModelInfer answer as Predict's; `signature_name`: the one the call named (TF Serving names
/// it in its answer).
pub fn predict_response(response: ModelInferResponse, signature_name: &str) -> Result<PredictResponse, ConvertError> {
    let raw = !response.raw_output_contents.is_empty();
    if raw && response.raw_output_contents.len() != response.outputs.len() {
        return Err(ConvertError::backend(format!(
            "{} raw_output_contents for {} outputs",
            response.raw_output_contents.len(),
            response.outputs.len()
        )));
    }
    let mut raw_contents = response.raw_output_contents.into_iter();
    let mut outputs = HashMap::with_capacity(response.outputs.len());
    for output in response.outputs {
        let InferOutputTensor { name, datatype, shape, contents, .. } = output;
        if outputs.contains_key(&name) {
            return Err(ConvertError::backend(format!("output \"{}\" named twice", quote(&name))));
        }
        let tensor = output_tensor(&name, &datatype, &shape, contents, if raw { raw_contents.next() } else { None })?;
        outputs.insert(name, tensor);
    }
    let signature_name = if signature_name.is_empty() { DEFAULT_SIGNATURE } else { signature_name };
    Ok(PredictResponse {
        outputs,
        model_spec: Some(ModelSpec {
            name: response.model_name,
            signature_name: signature_name.to_string(),
            version_choice: version_number(&response.model_version).map(VersionChoice::Version),
        }),
    })
}

/// One output as a `TensorProto`, from its raw contents when the answer has them, else from its
/// typed contents.
fn output_tensor(
    name: &str,
    datatype: &str,
    shape: &[i64],
    contents: Option<InferTensorContents>,
    raw: Option<Bytes>,
) -> Result<TensorProto, ConvertError> {
    let name = quote(name);
    let fail = |message: String| ConvertError::backend(format!("output \"{name}\": {message}"));
    let datatype = V2Datatype::parse(datatype, Blame::Backend).map_err(|e| fail(e.message))?;
    let dims = shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| fail(format!("dimension {d}"))))
        .collect::<Result<Vec<usize>, _>>()?;
    let count = element_count(&dims).map_err(|e| fail(e.message))?;
    let mut proto = TensorProto {
        dtype: datatype.data_type() as i32,
        tensor_shape: Some(shape_proto(shape)),
        ..Default::default()
    };
    let contents = contents.unwrap_or_default();
    match raw {
        Some(raw) => {
            if let Some((field, n)) = contents_fields(&contents).into_iter().find(|&(_, n)| n > 0) {
                return Err(fail(format!("both raw contents and {n} values in {field}")));
            }
            match datatype.element_size() {
                Some(size) => {
                    // `count` is at most MAX_ELEMENTS: the product cannot overflow.
                    let len = count * size;
                    if raw.len() != len {
                        return Err(fail(format!(
                            "raw contents of {} bytes, but shape {shape:?} holds {count} {datatype} elements of {len} bytes",
                            raw.len(),
                        )));
                    }
                    proto.tensor_content = raw;
                }
                None => {
                    let elements = split_raw_bytes(&raw, count, Blame::Backend).map_err(|e| fail(e.message))?;
                    proto.string_val = elements.into_iter().map(<[u8]>::to_vec).collect();
                }
            }
        }
        None => typed_output(datatype, contents, count, &mut proto).map_err(fail)?,
    }
    Ok(proto)
}

/// Typed contents into the TF field of the same elements: exactly `count` values, all in the
/// datatype's own field.
fn typed_output(
    datatype: V2Datatype,
    contents: InferTensorContents,
    count: usize,
    proto: &mut TensorProto,
) -> Result<(), String> {
    check_contents(datatype, &contents, count)?;
    let in_range = |values: &[i32], min: i32, max: i32| match values.iter().find(|&&x| x < min || x > max) {
        Some(x) => Err(format!("{x} is not a {datatype} value")),
        None => Ok(()),
    };
    let unsigned = |values: Vec<u32>, max: u32| -> Result<Vec<i32>, String> {
        match values.iter().find(|&&x| x > max) {
            Some(x) => Err(format!("{x} is not a {datatype} value")),
            // At most u16::MAX: an i32 holds it.
            None => Ok(values.into_iter().map(|x| x as i32).collect()),
        }
    };
    match datatype {
        V2Datatype::Bool => proto.bool_val = contents.bool_contents,
        V2Datatype::Int8 => {
            in_range(&contents.int_contents, i8::MIN.into(), i8::MAX.into())?;
            proto.int_val = contents.int_contents;
        }
        V2Datatype::Int16 => {
            in_range(&contents.int_contents, i16::MIN.into(), i16::MAX.into())?;
            proto.int_val = contents.int_contents;
        }
        V2Datatype::Int32 => proto.int_val = contents.int_contents,
        V2Datatype::Int64 => proto.int64_val = contents.int64_contents,
        V2Datatype::Uint8 => proto.int_val = unsigned(contents.uint_contents, u8::MAX.into())?,
        V2Datatype::Uint16 => proto.int_val = unsigned(contents.uint_contents, u16::MAX.into())?,
        V2Datatype::Uint32 => proto.uint32_val = contents.uint_contents,
        V2Datatype::Uint64 => proto.uint64_val = contents.uint64_contents,
        V2Datatype::Fp32 => proto.float_val = contents.fp32_contents,
        V2Datatype::Fp64 => proto.double_val = contents.fp64_contents,
        V2Datatype::Bytes => proto.string_val = contents.bytes_contents,
        // Checked above: no values at all.
        V2Datatype::Fp16 | V2Datatype::Bf16 => {}
    }
    Ok(())
}

fn shape_proto(dims: &[i64]) -> TensorShapeProto {
    TensorShapeProto { dim: dims.iter().map(|&size| Dim { size, name: String::new() }).collect(), unknown_rank: false }
}

/// A ModelMetadata answer as GetModelMetadata's: one signature, `serving_default`, with the v2
/// inputs and outputs, packed as TF Serving packs it. `asked`: the version the call named.
pub fn metadata_response(
    metadata: ModelMetadataResponse,
    name: &str,
    asked: Option<&VersionChoice>,
) -> Result<GetModelMetadataResponse, ConvertError> {
    let def = SignatureDef {
        inputs: tensor_infos(metadata.inputs, "input")?,
        outputs: tensor_infos(metadata.outputs, "output")?,
        method_name: PREDICT_METHOD_NAME.to_string(),
    };
    let map = SignatureDefMap { signature_def: HashMap::from([(DEFAULT_SIGNATURE.to_string(), def)]) };
    let any = prost_types::Any { type_url: SIGNATURE_DEF_MAP_TYPE_URL.to_string(), value: map.encode_to_vec() };
    // The version the signature is of: the one asked for, else the server's only one. With
    // several, which one the server's policy picks is unknown, and a wrong guess would make every
    // answer from the right one look like a new version (see SignatureCache::observe_version).
    let version = match asked {
        Some(VersionChoice::Version(v)) => Some(*v),
        _ => match numeric_versions(&metadata.versions)[..] {
            [only] => Some(only),
            _ => None,
        },
    };
    Ok(GetModelMetadataResponse {
        model_spec: Some(ModelSpec {
            name: if metadata.name.is_empty() { name.to_string() } else { metadata.name },
            signature_name: String::new(),
            version_choice: version.map(VersionChoice::Version),
        }),
        metadata: HashMap::from([(SIGNATURE_DEF_FIELD.to_string(), any)]),
    })
}

fn tensor_infos(tensors: Vec<TensorMetadata>, kind: &str) -> Result<HashMap<String, TensorInfo>, ConvertError> {
    let mut infos = HashMap::with_capacity(tensors.len());
    for tensor in tensors {
        let name = quote(&tensor.name);
        let fail = |message: String| ConvertError::backend(format!("metadata of {kind} \"{name}\": {message}"));
        let datatype = V2Datatype::parse(&tensor.datatype, Blame::Backend).map_err(|e| fail(e.message))?;
        if let Some(&d) = tensor.shape.iter().find(|&&d| d < -1) {
            return Err(fail(format!("dimension {d}")));
        }
        // No shape at all is read as an unknown one, not a scalar: servers leave it out when the
        // model declares none (MLServer without a shape in its settings), and an unknown rank
        // still lets requests be batched, while a scalar request goes alone whatever the rank.
        let tensor_shape = match tensor.shape.is_empty() {
            true => TensorShapeProto { dim: Vec::new(), unknown_rank: true },
            false => shape_proto(&tensor.shape),
        };
        let info = TensorInfo {
            dtype: datatype.data_type() as i32,
            tensor_shape: Some(tensor_shape),
            encoding: Some(Encoding::Name(tensor.name.clone())),
        };
        if infos.insert(tensor.name, info).is_some() {
            return Err(fail("named twice".to_string()));
        }
    }
    Ok(infos)
}

/// The numeric versions of a v2 list, ascending, each once (v2 versions are strings; TF's are
/// numbers, and only those can be reported).
pub fn numeric_versions(versions: &[String]) -> Vec<i64> {
    let mut numbers: Vec<i64> = versions.iter().filter_map(|v| version_number(v)).collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

/// The GetModelStatus answer for a ready model: each of `versions` AVAILABLE, or version 0 for a
/// model without a numeric version (TF's answer needs a number; an empty list would read as
/// nothing loaded).
pub fn status_available(versions: &[i64]) -> GetModelStatusResponse {
    let available = |version| ModelVersionStatus {
        version,
        state: State::Available as i32,
        status: Some(StatusProto { error_code: 0, error_message: String::new() }),
    };
    let model_version_status = match versions {
        [] => vec![available(0)],
        versions => versions.iter().copied().map(available).collect(),
    };
    GetModelStatusResponse { model_version_status }
}

/// The message of a model the v2 server knows but does not call ready.
pub fn not_ready_message(model: &str, asked: Option<&VersionChoice>) -> String {
    let model = quote(model);
    match asked {
        None => format!("model {model} is not ready at the v2 backend"),
        Some(VersionChoice::Version(v)) => format!("version {v} of model {model} is not ready at the v2 backend"),
        Some(VersionChoice::VersionLabel(label)) => {
            format!("version \"{}\" of model {model} is not ready at the v2 backend", quote(label))
        }
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
