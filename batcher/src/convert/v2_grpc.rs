//! The Open Inference Protocol's gRPC inference messages <-> tensors, with no I/O.
//!
//! A `ModelInferRequest` is read in two steps, as the REST bodies are ([`super::v2_json`]), so
//! that the caller can charge its memory budget in between: [`InferMessage::check`] checks every
//! input's datatype and shape and where its elements are, against the bytes that carry them
//! (a raw entry holds exactly shape × element size bytes, a typed list exactly the shape's count
//! of elements), before anything is sized by a shape; [`InferMessage::tensor_bytes`] then bounds
//! what the tensors take; [`InferMessage::into_tensors`] builds them. Typed contents already of
//! the daemon's element type (`fp32_contents`, `int64_contents`, ...) are moved into the tensor,
//! not copied; raw contents are read once, as TF's `tensor_content` is.
//!
//! An answer ([`infer_response`]) carries its outputs in `raw_output_contents`, as Triton
//! answers (tritonclient reads raw contents first), written straight from the batches' tensors.

use std::collections::BTreeMap;
use std::collections::HashSet;

use bytes::Bytes;
use tfgate_common::echo::quote;
use tfgate_proto::inference::model_infer_response::InferOutputTensor;
use tfgate_proto::inference::{InferTensorContents, ModelInferRequest, ModelInferResponse};

use super::nested::shape_string;
use super::tensor::{element_count, ByteStrings};
use super::v2_answer::select;
use super::v2_dtype::{check_contents, contents_fields, V2Datatype, BYTES_LENGTH_PREFIX};
use super::v2_json::{
    decode_raw, raw_strings, OutputRequest, RequestedOutput, ResponseMeta, MAX_ID_BYTES, MAX_RANK, MAX_TENSORS,
};
use super::{AnswerSource, Blame, ConvertError, Tensor, Values};

/// A checked request whose tensors are not built yet.
#[derive(Debug)]
pub struct InferMessage {
    request: ModelInferRequest,
    plans: Vec<Plan>,
}

/// One input, checked: `request.inputs[i]`, with its elements in raw entry `i` or in its
/// typed contents.
#[derive(Debug)]
struct Plan {
    datatype: V2Datatype,
    shape: Vec<usize>,
    count: usize,
    raw: bool,
}

impl InferMessage {
    /// Checks every input; nothing is sized by a shape before its count is known to fit the
    /// bytes that carry it.
    pub fn check(request: ModelInferRequest) -> Result<InferMessage, ConvertError> {
        let raw = !request.raw_input_contents.is_empty();
        if raw && request.raw_input_contents.len() != request.inputs.len() {
            return Err(ConvertError::request(format!(
                "raw_input_contents has {} entries for {} inputs: one per input, in order",
                request.raw_input_contents.len(),
                request.inputs.len()
            )));
        }
        if request.inputs.is_empty() {
            return Err(ConvertError::request("the request has no inputs"));
        }
        if request.inputs.len() > MAX_TENSORS || request.outputs.len() > MAX_TENSORS {
            return Err(ConvertError::request(format!("a request names at most {MAX_TENSORS} inputs and outputs")));
        }
        if request.id.len() > MAX_ID_BYTES {
            return Err(ConvertError::request(format!("the request's id is longer than {MAX_ID_BYTES} bytes")));
        }
        let mut names = HashSet::with_capacity(request.inputs.len());
        let mut plans = Vec::with_capacity(request.inputs.len());
        for (i, input) in request.inputs.iter().enumerate() {
            let fail = |message: String| ConvertError::request(format!("input '{}': {message}", quote(&input.name)));
            if input.name.is_empty() {
                return Err(ConvertError::request(format!("inputs[{i}] has no name")));
            }
            if !names.insert(input.name.as_str()) {
                return Err(fail("is given more than once".into()));
            }
            let datatype = V2Datatype::parse(&input.datatype, Blame::Request).map_err(|e| fail(e.message))?;
            if input.shape.len() > MAX_RANK {
                return Err(fail(format!("its shape has more than {MAX_RANK} dimensions")));
            }
            let shape = input
                .shape
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| fail(format!("shape dimension {d} is negative"))))
                .collect::<Result<Vec<usize>, _>>()?;
            let count = element_count(&shape).map_err(|e| fail(e.message))?;
            let typed = input.contents.as_ref().filter(|c| has_any(c));
            if raw {
                if typed.is_some() {
                    return Err(fail("has contents, but the request uses raw_input_contents".into()));
                }
                check_raw(datatype, &shape, count, request.raw_input_contents[i].len()).map_err(fail)?;
            } else {
                let empty = InferTensorContents::default();
                check_contents(datatype, input.contents.as_ref().unwrap_or(&empty), count).map_err(fail)?;
            }
            plans.push(Plan { datatype, shape, count, raw });
        }
        Ok(InferMessage { request, plans })
    }

    /// Each input's name, datatype and shape, in the request's order.
    pub fn input_specs(&self) -> impl Iterator<Item = (&str, V2Datatype, &[usize])> + '_ {
        self.request.inputs.iter().zip(&self.plans).map(|(i, p)| (i.name.as_str(), p.datatype, p.shape.as_slice()))
    }

    /// The request's `id` (`None` when empty).
    pub fn id(&self) -> Option<String> {
        Some(self.request.id.clone()).filter(|id| !id.is_empty())
    }

    /// The outputs it asks for (all when it lists none); every answer is raw contents.
    pub fn requested_outputs(&self) -> Result<OutputRequest, ConvertError> {
        let mut requested: Vec<RequestedOutput> = Vec::with_capacity(self.request.outputs.len());
        let mut names = HashSet::with_capacity(self.request.outputs.len());
        for output in &self.request.outputs {
            let fail = |message: &str| ConvertError::request(format!("output '{}': {message}", quote(&output.name)));
            if output.parameters.contains_key("classification") {
                return Err(fail("the classification extension is not supported"));
            }
            if !names.insert(output.name.as_str()) {
                return Err(fail("is requested more than once"));
            }
            requested.push(RequestedOutput { name: output.name.clone(), binary_data: Some(true) });
        }
        Ok(OutputRequest { requested: Some(requested).filter(|r| !r.is_empty()), binary_data_output: true })
    }

    /// At most the bytes the input tensors take once built ([`Values::heap_bytes`]): each element
    /// at the width the daemon holds it; BYTES elements their bytes and 4 more.
    pub fn tensor_bytes(&self) -> usize {
        let inputs = self.request.inputs.iter().zip(&self.plans).enumerate();
        inputs.fold(0usize, |total, (i, (input, plan))| {
            let bytes = match plan.datatype.dtype().value_width() {
                Some(width) => plan.count.saturating_mul(width),
                None if plan.raw => self.request.raw_input_contents[i].len(),
                None => input.contents.as_ref().map_or(0, |c| {
                    let data: usize = c.bytes_contents.iter().map(Vec::len).sum();
                    data.saturating_add(c.bytes_contents.len().saturating_mul(BYTES_LENGTH_PREFIX))
                }),
            };
            total.saturating_add(bytes)
        })
    }

    /// Builds the input tensors, by name.
    pub fn into_tensors(self) -> Result<BTreeMap<String, Tensor>, ConvertError> {
        let InferMessage { request, plans } = self;
        let ModelInferRequest { inputs, raw_input_contents, .. } = request;
        let mut tensors = BTreeMap::new();
        for (i, (input, plan)) in inputs.into_iter().zip(plans).enumerate() {
            let fail = |message: String| ConvertError::request(format!("input '{}': {message}", quote(&input.name)));
            let values = if plan.raw {
                let part = &raw_input_contents[i];
                match plan.datatype.element_size() {
                    Some(_) => decode_raw(plan.datatype, part),
                    None => Values::Bytes(raw_strings(part, plan.count).map_err(|e| fail(e.message))?),
                }
            } else {
                typed_values(plan.datatype, input.contents.unwrap_or_default()).map_err(fail)?
            };
            tensors.insert(input.name, Tensor { dtype: plan.datatype.dtype(), shape: plan.shape, values });
        }
        Ok(tensors)
    }
}

/// A raw entry's size against its shape: exactly shape × element size, or for BYTES at least a
/// length per element (the exact walk is made when the tensor is built).
fn check_raw(datatype: V2Datatype, shape: &[usize], count: usize, len: usize) -> Result<(), String> {
    match datatype.raw_len(count) {
        Some(expected) if expected != len => Err(format!(
            "its raw contents have {len} bytes, but shape {} of {datatype} takes {expected}",
            shape_string(shape)
        )),
        None if count > len / BYTES_LENGTH_PREFIX => Err(format!(
            "its raw contents have {len} bytes, too few for the {count} elements of shape {} (each needs a {BYTES_LENGTH_PREFIX}-byte length)",
            shape_string(shape)
        )),
        _ => Ok(()),
    }
}

/// Whether any typed field holds an element.
fn has_any(c: &InferTensorContents) -> bool {
    contents_fields(c).iter().any(|&(_, n)| n > 0)
}

/// A typed field as the daemon holds it: moved when it already is, else narrowed with a range
/// check (the protocol carries INT8/INT16 in int32s and UINT8/UINT16 in uint32s).
fn typed_values(datatype: V2Datatype, c: InferTensorContents) -> Result<Values, String> {
    // Sized once: the tensor takes exactly what `tensor_bytes` counted.
    let narrow = |values: &mut dyn ExactSizeIterator<Item = i64>, min: i64, max: i64| -> Result<Vec<i32>, String> {
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            match i32::try_from(v) {
                Ok(n) if (min..=max).contains(&v) => out.push(n),
                _ => return Err(format!("{} is out of range for {datatype}", quote(&v.to_string()))),
            }
        }
        Ok(out)
    };
    Ok(match datatype {
        V2Datatype::Bool => Values::Bool(c.bool_contents),
        V2Datatype::Int32 => Values::I32(c.int_contents),
        V2Datatype::Int8 => Values::I32(narrow(&mut c.int_contents.iter().map(|&v| v.into()), -128, 127)?),
        V2Datatype::Int16 => Values::I32(narrow(&mut c.int_contents.iter().map(|&v| v.into()), -32768, 32767)?),
        V2Datatype::Int64 => Values::I64(c.int64_contents),
        V2Datatype::Uint8 => Values::I32(narrow(&mut c.uint_contents.iter().map(|&v| v.into()), 0, 255)?),
        V2Datatype::Uint16 => Values::I32(narrow(&mut c.uint_contents.iter().map(|&v| v.into()), 0, 65535)?),
        V2Datatype::Uint32 => Values::U32(c.uint_contents),
        V2Datatype::Uint64 => Values::U64(c.uint64_contents),
        V2Datatype::Fp32 => Values::F32(c.fp32_contents),
        V2Datatype::Fp64 => Values::F64(c.fp64_contents),
        V2Datatype::Bytes => {
            let bytes = c.bytes_contents.iter().map(Vec::len).sum();
            let mut strings = ByteStrings::with_capacity(c.bytes_contents.len(), bytes);
            for element in &c.bytes_contents {
                strings.push(element)?;
            }
            Values::Bytes(strings)
        }
        // Checked: typed contents of these hold no element.
        V2Datatype::Fp16 | V2Datatype::Bf16 => Values::F32(Vec::new()),
    })
}

/// The answer to a request that asked for `wanted` (in its order; all outputs in name order
/// when it named none), every output in `raw_output_contents`.
pub fn infer_response(
    meta: &ResponseMeta<'_>,
    source: AnswerSource<'_>,
    wanted: &OutputRequest,
) -> Result<ModelInferResponse, ConvertError> {
    let selected = select(source, wanted)?;
    let mut outputs = Vec::with_capacity(selected.len());
    let mut raw = Vec::with_capacity(selected.len());
    for output in &selected {
        let mut content = Vec::with_capacity(output.raw_size());
        output.write_raw(&mut content)?;
        raw.push(Bytes::from(content));
        outputs.push(InferOutputTensor {
            name: output.name.to_string(),
            datatype: V2Datatype::from_dtype(output.dtype).name().to_string(),
            shape: output.shape.iter().map(|&d| d as i64).collect(),
            parameters: Default::default(),
            contents: None,
        });
    }
    Ok(ModelInferResponse {
        model_name: meta.model_name.to_string(),
        model_version: meta.model_version.to_string(),
        id: meta.id.unwrap_or_default().to_string(),
        parameters: Default::default(),
        outputs,
        raw_output_contents: raw,
    })
}

#[cfg(test)]
mod tests;
