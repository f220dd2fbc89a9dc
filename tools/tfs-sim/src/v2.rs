//! The Open Inference Protocol ("KServe v2") on the same port: `inference.GRPCInferenceService`
//! over the same catalog, so tests and benchmarks have a v2 backend without Python.
//!
//! ModelInfer is Predict underneath: the v2 request becomes a `PredictRequest` (raw contents as
//! `tensor_content`, moved, not copied; typed contents as the typed fields; BYTES as
//! `string_val`), runs through the same plan, faults, counters and cost model, and its outputs
//! go back as raw contents, or as typed contents when the request sent typed contents and every
//! output has a typed field (FP16 and BF16 have none), as servers answer in the form they were
//! asked in.
//!
//! ModelReady answers false for a model or version the catalog does not have, as Triton does;
//! ModelMetadata answers NOT_FOUND for it, in TF Serving's words.

use prost::bytes::Bytes;
use tfgate_proto::inference::grpc_inference_service_server::GrpcInferenceService;
use tfgate_proto::inference::model_infer_request::InferInputTensor;
use tfgate_proto::inference::model_infer_response::InferOutputTensor;
use tfgate_proto::inference::model_metadata_response::TensorMetadata;
use tfgate_proto::inference::{
    InferTensorContents, ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse,
    ModelReadyRequest, ModelReadyResponse, ServerLiveRequest, ServerLiveResponse, ServerMetadataRequest,
    ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse,
};
use tfgate_proto::tensorflow::serving::{model_spec::VersionChoice, ModelSpec, PredictRequest, PredictResponse};
use tfgate_proto::tensorflow::{DataType, TensorProto};
use tonic::{Request, Response, Status};

use crate::content::packed;
use crate::service::Shared;
use crate::signatures::signature_of;
use crate::tensor::shape_proto;

/// Each v2 datatype, its TF dtype and its raw element size (`None`: length-prefixed BYTES).
const DATATYPES: [(&str, DataType, Option<usize>); 14] = [
    ("BOOL", DataType::DtBool, Some(1)),
    ("UINT8", DataType::DtUint8, Some(1)),
    ("UINT16", DataType::DtUint16, Some(2)),
    ("UINT32", DataType::DtUint32, Some(4)),
    ("UINT64", DataType::DtUint64, Some(8)),
    ("INT8", DataType::DtInt8, Some(1)),
    ("INT16", DataType::DtInt16, Some(2)),
    ("INT32", DataType::DtInt32, Some(4)),
    ("INT64", DataType::DtInt64, Some(8)),
    ("FP16", DataType::DtHalf, Some(2)),
    ("BF16", DataType::DtBfloat16, Some(2)),
    ("FP32", DataType::DtFloat, Some(4)),
    ("FP64", DataType::DtDouble, Some(8)),
    ("BYTES", DataType::DtString, None),
];

fn datatype_of(dtype: DataType) -> Option<&'static str> {
    DATATYPES.iter().find(|(_, d, _)| *d == dtype).map(|(name, _, _)| *name)
}

/// A v2 version string as a `ModelSpec` choice: digits are a number, anything else a label,
/// empty the latest.
fn version_choice(version: &str) -> Option<VersionChoice> {
    if version.is_empty() {
        return None;
    }
    match version.parse::<i64>() {
        Ok(number) if version.bytes().all(|b| b.is_ascii_digit()) => Some(VersionChoice::Version(number)),
        _ => Some(VersionChoice::VersionLabel(version.to_string())),
    }
}

fn spec(name: &str, version: &str) -> ModelSpec {
    ModelSpec { name: name.to_string(), version_choice: version_choice(version), signature_name: String::new() }
}

#[tonic::async_trait]
impl GrpcInferenceService for Shared {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse { ready: true }))
    }

    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Result<Response<ModelReadyResponse>, Status> {
        let ask = request.get_ref();
        let ready = self.0.catalog().resolve(Some(&spec(&ask.name, &ask.version))).is_ok();
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "tfs-sim".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            extensions: Vec::new(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let ask = request.get_ref();
        let catalog = self.0.catalog();
        let resolved = catalog.resolve(Some(&spec(&ask.name, &ask.version)))?;
        let model = resolved.model;
        let versions = match ask.version.is_empty() {
            true => model.versions.iter().map(i64::to_string).collect(),
            false => vec![resolved.version.to_string()],
        };
        let sig = signature_of(model.kind, resolved.version);
        let shape = sig.fixed_shape.unwrap_or(&[-1]).to_vec();
        let tensor = |name: &str, dtype: DataType| TensorMetadata {
            name: name.to_string(),
            datatype: datatype_of(dtype).unwrap_or("BYTES").to_string(),
            shape: shape.clone(),
        };
        Ok(Response::new(ModelMetadataResponse {
            name: model.name.to_string(),
            versions,
            platform: "tensorflow_savedmodel".to_string(),
            inputs: sig.inputs.iter().map(|&(name, dtype)| tensor(name, dtype)).collect(),
            outputs: sig.outputs.iter().map(|o| tensor(o.name, o.dtype)).collect(),
        }))
    }

    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Result<Response<ModelInferResponse>, Status> {
        let sim = &self.0;
        sim.stats.record_infer();
        let (metadata, extensions, infer) = request.into_parts();
        let id = infer.id.clone();
        let (predict, typed) = predict_request(infer).inspect_err(|_| sim.stats.record_error())?;
        let request = Request::from_parts(metadata, extensions, ());
        let response = sim.run_predict(&request, &predict).await?;
        Ok(Response::new(infer_response(response, id, typed)))
    }
}

/// A ModelInfer request as Predict's; whether it carried typed contents.
pub fn predict_request(infer: ModelInferRequest) -> Result<(PredictRequest, bool), Status> {
    let raw = !infer.raw_input_contents.is_empty();
    if raw && infer.raw_input_contents.len() != infer.inputs.len() {
        return Err(Status::invalid_argument(format!(
            "expected {} raw_input_contents (one per input), got {}",
            infer.inputs.len(),
            infer.raw_input_contents.len()
        )));
    }
    let mut raw_contents = infer.raw_input_contents.into_iter();
    let mut inputs = std::collections::HashMap::with_capacity(infer.inputs.len());
    for input in infer.inputs {
        let name = input.name.clone();
        let proto = input_proto(input, if raw { raw_contents.next() } else { None })?;
        if inputs.insert(name.clone(), proto).is_some() {
            return Err(Status::invalid_argument(format!("input '{name}' is given twice")));
        }
    }
    let predict = PredictRequest {
        model_spec: Some(spec(&infer.model_name, &infer.model_version)),
        inputs,
        output_filter: infer.outputs.into_iter().map(|o| o.name).collect(),
    };
    Ok((predict, !raw))
}

fn input_proto(input: InferInputTensor, raw: Option<Bytes>) -> Result<TensorProto, Status> {
    let name = &input.name;
    let invalid = |message: String| Status::invalid_argument(format!("input '{name}': {message}"));
    let &(_, dtype, size) = DATATYPES
        .iter()
        .find(|(n, _, _)| *n == input.datatype)
        .ok_or_else(|| invalid(format!("unsupported datatype '{}'", input.datatype)))?;
    let mut proto =
        TensorProto { dtype: dtype as i32, tensor_shape: Some(shape_proto(&input.shape)), ..Default::default() };
    let contents = input.contents.unwrap_or_default();
    match raw {
        Some(raw) => {
            if contents != InferTensorContents::default() {
                return Err(invalid("both raw contents and typed contents".to_string()));
            }
            match size {
                // Its length is checked against the shape where Predict's is.
                Some(_) => proto.tensor_content = raw,
                None => {
                    let count = input.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(u64::try_from(d).ok()?));
                    let count = count.ok_or_else(|| invalid(format!("shape {:?}", input.shape)))?;
                    proto.string_val = split_bytes(&raw, count).map_err(invalid)?;
                }
            }
        }
        None => match dtype {
            DataType::DtBool => proto.bool_val = contents.bool_contents,
            DataType::DtInt8 | DataType::DtInt16 | DataType::DtInt32 => proto.int_val = contents.int_contents,
            DataType::DtInt64 => proto.int64_val = contents.int64_contents,
            DataType::DtUint8 | DataType::DtUint16 => {
                proto.int_val = contents.uint_contents.into_iter().map(|x| x as i32).collect()
            }
            DataType::DtUint32 => proto.uint32_val = contents.uint_contents,
            DataType::DtUint64 => proto.uint64_val = contents.uint64_contents,
            DataType::DtFloat => proto.float_val = contents.fp32_contents,
            DataType::DtDouble => proto.double_val = contents.fp64_contents,
            DataType::DtString => proto.string_val = contents.bytes_contents,
            _ if contents == InferTensorContents::default() => {}
            _ => return Err(invalid(format!("{} values can only be raw contents", input.datatype))),
        },
    }
    Ok(proto)
}

/// The elements of BYTES raw contents: each a 4-byte little-endian length, then its bytes.
fn split_bytes(raw: &[u8], count: u64) -> Result<Vec<Vec<u8>>, String> {
    // Each element takes at least its length: more than that cannot be, nor size a vector.
    if count > (raw.len() / 4) as u64 {
        return Err(format!("{} bytes of BYTES contents cannot hold {count} elements", raw.len()));
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut rest = raw;
    for _ in 0..count {
        let (prefix, after) = rest.split_first_chunk::<4>().ok_or("BYTES contents end inside a length")?;
        let len = u32::from_le_bytes(*prefix) as usize;
        if len > after.len() {
            return Err(format!("a BYTES element of {len} bytes, {} remain", after.len()));
        }
        let (element, next) = after.split_at(len);
        out.push(element.to_vec());
        rest = next;
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last BYTES element", rest.len()));
    }
    Ok(out)
}

/// Predict's answer as ModelInfer's, its outputs by name (the map has no order).
pub fn infer_response(response: PredictResponse, id: String, typed: bool) -> ModelInferResponse {
    let spec = response.model_spec.unwrap_or_default();
    let version = match spec.version_choice {
        Some(VersionChoice::Version(v)) => v.to_string(),
        _ => String::new(),
    };
    let mut outputs: Vec<(String, TensorProto)> = response.outputs.into_iter().collect();
    outputs.sort_by(|a, b| a.0.cmp(&b.0));
    let dtype = |t: &TensorProto| DataType::try_from(t.dtype).unwrap_or(DataType::DtInvalid);
    let typed = typed && !outputs.iter().any(|(_, t)| matches!(dtype(t), DataType::DtHalf | DataType::DtBfloat16));
    let mut answer = ModelInferResponse { model_name: spec.name, model_version: version, id, ..Default::default() };
    for (name, tensor) in outputs {
        let dtype = dtype(&tensor);
        let shape = tensor.tensor_shape.as_ref().map(|s| s.dim.iter().map(|d| d.size).collect()).unwrap_or_default();
        let (raw, contents) = match dtype {
            DataType::DtString if typed => {
                (None, Some(InferTensorContents { bytes_contents: tensor.string_val, ..Default::default() }))
            }
            DataType::DtString => {
                let mut raw = Vec::new();
                for s in &tensor.string_val {
                    raw.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    raw.extend_from_slice(s);
                }
                (Some(Bytes::from(raw)), None)
            }
            _ => {
                // Packed first: one form whatever the plan wrote (typed fields, a single value
                // filling the shape, or the bytes it received).
                let content = packed(tensor).tensor_content;
                match typed {
                    true => (None, Some(typed_contents(dtype, &content))),
                    false => (Some(content), None),
                }
            }
        };
        answer.outputs.push(InferOutputTensor {
            name,
            datatype: datatype_of(dtype).unwrap_or("BYTES").to_string(),
            shape,
            parameters: Default::default(),
            contents,
        });
        answer.raw_output_contents.extend(raw);
    }
    answer
}

/// Little-endian elements of `dtype` as the typed contents field v2 gives them.
fn typed_contents(dtype: DataType, content: &[u8]) -> InferTensorContents {
    macro_rules! le {
        ($t:ty, $n:expr) => {
            content.chunks_exact($n).map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or_default()))
        };
    }
    let mut c = InferTensorContents::default();
    match dtype {
        DataType::DtBool => c.bool_contents = content.iter().map(|&b| b != 0).collect(),
        DataType::DtInt8 => c.int_contents = le!(i8, 1).map(i32::from).collect(),
        DataType::DtInt16 => c.int_contents = le!(i16, 2).map(i32::from).collect(),
        DataType::DtInt32 => c.int_contents = le!(i32, 4).collect(),
        DataType::DtInt64 => c.int64_contents = le!(i64, 8).collect(),
        DataType::DtUint8 => c.uint_contents = content.iter().map(|&b| u32::from(b)).collect(),
        DataType::DtUint16 => c.uint_contents = le!(u16, 2).map(u32::from).collect(),
        DataType::DtUint32 => c.uint_contents = le!(u32, 4).collect(),
        DataType::DtUint64 => c.uint64_contents = le!(u64, 8).collect(),
        DataType::DtFloat => c.fp32_contents = le!(f32, 4).collect(),
        DataType::DtDouble => c.fp64_contents = le!(f64, 8).collect(),
        _ => {}
    }
    c
}

#[cfg(test)]
#[path = "v2_tests.rs"]
mod tests;
