//! Reading an inference request: its outline checked first, its tensors built after (the
//! module's doc says why in two steps).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use tfgate_common::echo::quote;

use super::{HEADER_LENGTH_HEADER, MAX_ID_BYTES, MAX_RANK, MAX_TENSORS};
use crate::convert::nested::{parse_error, parse_nested, shape_string, Shape};
use crate::convert::nonfinite::{marker_token, rewrite_nonfinite};
use crate::convert::tensor::{element_count, ByteStrings, Values};
use crate::convert::v2_answer::{OutputRequest, RequestedOutput};
use crate::convert::v2_dtype::{split_raw_bytes, V2Datatype, BYTES_LENGTH_PREFIX};
use crate::convert::{Blame, ConvertError, Tensor};

/// A checked inference request whose tensors are not built yet.
#[derive(Debug)]
pub struct InferBody<'a> {
    /// The JSON, with NaN and infinities rewritten (a copy only when it has any).
    text: Cow<'a, [u8]>,
    /// The bytes after the JSON (empty for a plain JSON body).
    binary: &'a [u8],
    inputs: BTreeMap<String, InputPlan>,
    pub id: Option<String>,
    pub outputs: OutputRequest,
}

/// A request's input tensors and what it asks of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: BTreeMap<String, Tensor>,
    pub outputs: OutputRequest,
}

#[derive(Debug)]
struct InputPlan {
    datatype: V2Datatype,
    shape: Vec<usize>,
    count: usize,
    source: Source,
}

/// Where an input's elements are.
#[derive(Debug)]
enum Source {
    /// Its `data`, a range of the JSON text, and an upper bound on the elements that text can
    /// hold (one more than its commas), which bounds what parsing it may push.
    Json { text: Range<usize>, max_elements: usize },
    /// Its part of the binary data.
    Binary(Range<usize>),
}

/// A request, an input and an output: their members that matter, unparsed (`null` is absent).
#[derive(Deserialize)]
struct Outline<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    #[serde(borrow, default)]
    inputs: Option<&'a RawValue>,
    #[serde(borrow, default)]
    outputs: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InputOutline<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    shape: Option<&'a RawValue>,
    #[serde(borrow, default)]
    datatype: Option<&'a RawValue>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OutputOutline<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
}

/// The parameters tfgate reads (others are ignored).
#[derive(Deserialize)]
struct Parameters<'a> {
    #[serde(borrow, default)]
    binary_data_size: Option<&'a RawValue>,
    #[serde(borrow, default)]
    binary_data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    binary_data_output: Option<&'a RawValue>,
    #[serde(borrow, default)]
    classification: Option<&'a RawValue>,
}

/// Splits a binary-extension body at the JSON's length, `header_length` being the value of the
/// `Inference-Header-Content-Length` header.
pub fn split_binary_body<'a>(body: &'a [u8], header_length: &[u8]) -> Result<(&'a [u8], &'a [u8]), ConvertError> {
    let length = std::str::from_utf8(header_length)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<usize>().ok())
        .ok_or_else(|| {
            ConvertError::request(format!(
                "{HEADER_LENGTH_HEADER} must be a number of bytes, not '{}'",
                tfgate_common::echo::quote_bytes(header_length)
            ))
        })?;
    if length > body.len() {
        return Err(ConvertError::request(format!(
            "{HEADER_LENGTH_HEADER} is {length}, but the body has {} bytes",
            body.len()
        )));
    }
    Ok(body.split_at(length))
}

impl<'a> InferBody<'a> {
    /// A JSON body: every input carries `data`.
    pub fn parse(body: &'a [u8]) -> Result<InferBody<'a>, ConvertError> {
        InferBody::read(body, None)
    }

    /// A body with binary tensor data: the JSON `header` (its length from
    /// `Inference-Header-Content-Length`, see [`split_binary_body`]) and the `binary` bytes after
    /// it, which the inputs with a `binary_data_size` share in input order, exactly.
    pub fn parse_with_binary(header: &'a [u8], binary: &'a [u8]) -> Result<InferBody<'a>, ConvertError> {
        InferBody::read(header, Some(binary))
    }

    fn read(json: &'a [u8], binary: Option<&'a [u8]>) -> Result<InferBody<'a>, ConvertError> {
        if json.iter().all(u8::is_ascii_whitespace) {
            return Err(ConvertError::request("JSON Parse error: The document is empty"));
        }
        let text = rewrite_nonfinite(json);
        let document = std::str::from_utf8(&text)
            .map_err(|e| ConvertError::request(format!("JSON Parse error: the document is not UTF-8: {e}")))?;
        // Syntax errors first, for the whole document.
        let whole: &RawValue = serde_json::from_str(document).map_err(|e| ConvertError::request(parse_error(&e)))?;
        let outline: Outline<'_> = object(whole.get(), || "the inference request".to_string())?;
        let id = outline
            .id
            .map(|raw| string(raw).ok_or_else(|| ConvertError::request("'id' must be a string")))
            .transpose()?;
        if id.as_ref().is_some_and(|id| id.len() > MAX_ID_BYTES) {
            return Err(ConvertError::request(format!("'id' is longer than {MAX_ID_BYTES} bytes")));
        }
        // Only binary_data_output is read: other parameters are not passed on to the backend.
        let binary_data_output = match outline.parameters {
            None => false,
            Some(raw) => {
                let params: Parameters<'_> = object(raw.get(), || "'parameters'".to_string())?;
                params.binary_data_output.map(|b| boolean(b, "binary_data_output")).transpose()?.unwrap_or(false)
            }
        };
        let inputs = outline.inputs.ok_or_else(|| ConvertError::request("missing 'inputs'"))?;
        let mut binary_at = 0;
        let mut plans = BTreeMap::new();
        for (i, input) in bounded_list(inputs.get(), "inputs")?.into_iter().enumerate() {
            let (name, plan) = plan_input(document, i, input, binary, &mut binary_at)?;
            if plans.contains_key(&name) {
                return Err(ConvertError::request(format!("input '{}' is given more than once", quote(&name))));
            }
            plans.insert(name, plan);
        }
        if plans.is_empty() {
            return Err(ConvertError::request("'inputs' must list at least one input"));
        }
        // Every part was checked against the bytes left when it was cut; what remains must be
        // nothing, or the parts and the body disagree.
        if let Some(binary) = binary {
            if binary_at != binary.len() {
                return Err(ConvertError::request(format!(
                    "the inputs' binary_data_size add up to {binary_at} bytes, but {} bytes follow the JSON header",
                    binary.len()
                )));
            }
        }
        let requested = outline.outputs.map(requested_outputs).transpose()?.filter(|r| !r.is_empty());
        let outputs = OutputRequest { requested, binary_data_output };
        // Everything borrowed from `text` is owned or a range by now.
        Ok(InferBody { text, binary: binary.unwrap_or_default(), inputs: plans, id, outputs })
    }

    /// At most the bytes the input tensors take once built ([`Values::heap_bytes`]), known before
    /// any is: each element at the width the daemon holds it (an int8 as 4 bytes), for JSON as
    /// many elements as its text can hold; BYTES elements their bytes and 4 more.
    pub fn tensor_bytes(&self) -> usize {
        self.inputs.values().fold(0usize, |total, plan| {
            let dtype = plan.datatype.dtype();
            let bytes = match (&plan.source, dtype.value_width()) {
                (Source::Json { max_elements, .. }, Some(width)) => max_elements.saturating_mul(width),
                (Source::Json { text, max_elements }, None) => {
                    text.len().saturating_add(max_elements.saturating_mul(BYTES_LENGTH_PREFIX))
                }
                (Source::Binary(_), Some(width)) => plan.count.saturating_mul(width),
                // The part holds each element's bytes after a 4-byte length: as ByteStrings
                // holds them (4 bytes of end each).
                (Source::Binary(part), None) => part.len(),
            };
            total.saturating_add(bytes)
        })
    }

    /// Each input's name, datatype and shape, in name order (for checks against a signature before
    /// the tensors are built).
    pub fn input_specs(&self) -> impl Iterator<Item = (&str, V2Datatype, &[usize])> + '_ {
        self.inputs.iter().map(|(name, plan)| (name.as_str(), plan.datatype, plan.shape.as_slice()))
    }

    /// Builds the input tensors.
    pub fn into_request(self) -> Result<InferRequest, ConvertError> {
        // Parsed once as UTF-8 already.
        let document = std::str::from_utf8(&self.text).unwrap_or_default();
        let mut inputs = BTreeMap::new();
        for (name, plan) in self.inputs {
            let values = match &plan.source {
                Source::Json { text, max_elements } => {
                    json_values(&name, &plan, &document[text.clone()], *max_elements)?
                }
                Source::Binary(part) => binary_values(&name, &plan, &self.binary[part.clone()])?,
            };
            inputs.insert(name, Tensor { dtype: plan.datatype.dtype(), shape: plan.shape, values });
        }
        Ok(InferRequest { id: self.id, inputs, outputs: self.outputs })
    }
}

/// One input's outline, checked: its name and where its elements are. A binary part is cut from
/// `binary` at `binary_at`, which moves past it.
fn plan_input(
    document: &str,
    i: usize,
    raw: &RawValue,
    binary: Option<&[u8]>,
    binary_at: &mut usize,
) -> Result<(String, InputPlan), ConvertError> {
    let outline: InputOutline<'_> = object(raw.get(), || format!("inputs[{i}]"))?;
    let missing = |what: &str| ConvertError::request(format!("inputs[{i}] has no '{what}'"));
    let name = outline.name.ok_or_else(|| missing("name"))?;
    let name = string(name).ok_or_else(|| ConvertError::request(format!("inputs[{i}]: 'name' must be a string")))?;
    let fail = |message: String| ConvertError::request(format!("input '{}': {message}", quote(&name)));
    let datatype = outline.datatype.ok_or_else(|| fail("missing 'datatype'".into()))?;
    let datatype = string(datatype).ok_or_else(|| fail("'datatype' must be a string".into()))?;
    let datatype = V2Datatype::parse(&datatype, Blame::Request).map_err(|e| fail(e.message))?;
    let shape = parse_shape(outline.shape.ok_or_else(|| fail("missing 'shape'".into()))?).map_err(fail)?;
    let count = element_count(&shape).map_err(|e| fail(e.message))?;
    let binary_size = match outline.parameters {
        None => None,
        Some(raw) => {
            let params: Parameters<'_> = object(raw.get(), || format!("input '{}': 'parameters'", quote(&name)))?;
            params
                .binary_data_size
                .map(|size| unsigned(size, "binary_data_size").map_err(|e| fail(e.message)))
                .transpose()?
        }
    };
    let source = match (outline.data, binary_size) {
        (Some(_), Some(_)) => return Err(fail("has both 'data' and a binary_data_size parameter".into())),
        (None, None) => return Err(fail("missing 'data' (or a binary_data_size parameter)".into())),
        (Some(data), None) => {
            let text = data.get();
            // Elements are separated by commas: a text with fewer cannot hold the shape, and
            // parsing it can push no more than that many.
            let max_elements = 1 + text.bytes().filter(|&b| b == b',').count();
            if count > max_elements {
                return Err(fail(format!(
                    "shape {} has {count} elements, but its 'data' holds at most {max_elements}",
                    shape_string(&shape)
                )));
            }
            Source::Json { text: span(document, text), max_elements }
        }
        (None, Some(size)) => {
            let Some(binary) = binary else {
                return Err(fail(format!(
                    "has a binary_data_size parameter, but the request has no binary data ({HEADER_LENGTH_HEADER})"
                )));
            };
            check_binary_size(datatype, &shape, count, size).map_err(fail)?;
            let left = binary.len() - *binary_at;
            if size > left as u64 {
                return Err(fail(format!(
                    "binary_data_size is {size}, but only {left} bytes of binary data are left for it"
                )));
            }
            let part = *binary_at..*binary_at + size as usize;
            *binary_at = part.end;
            Source::Binary(part)
        }
    };
    Ok((name, InputPlan { datatype, shape, count, source }))
}

/// A binary part's size against its shape: exactly shape × element size, or for BYTES at least
/// a length per element.
fn check_binary_size(datatype: V2Datatype, shape: &[usize], count: usize, size: u64) -> Result<(), String> {
    match datatype.raw_len(count) {
        Some(expected) if expected as u64 != size => Err(format!(
            "binary_data_size is {size}, but shape {} of {datatype} takes {expected} bytes",
            shape_string(shape)
        )),
        None if size < (count as u64).saturating_mul(BYTES_LENGTH_PREFIX as u64) => Err(format!(
            "binary_data_size is {size}, too small for the {count} elements of shape {} (each needs a {BYTES_LENGTH_PREFIX}-byte length)",
            shape_string(shape)
        )),
        _ => Ok(()),
    }
}

/// An input's `data`, flat or nested as its shape, into a buffer sized once: for as many elements
/// as the text can hold (its count exactly for flat numbers), so that even data longer than the
/// shape never grows it beyond [`InferBody::tensor_bytes`].
fn json_values(name: &str, plan: &InputPlan, text: &str, max_elements: usize) -> Result<Values, ConvertError> {
    let fail = |message: String| ConvertError::request(format!("input '{}': {message}", quote(name)));
    let dtype = plan.datatype.dtype();
    // `{"b64": ...}` would be taken as a string by the TF Serving parser; v2 has no such element
    // (other datatypes refuse objects as elements anyway).
    if dtype.value_width().is_none() && has_object(text) {
        return Err(fail("BYTES elements must be JSON strings, not objects".into()));
    }
    let mut values = Values::empty(dtype);
    // Each string takes at least its two quotes in the text.
    values.reserve(max_elements, text.len().saturating_sub(2 * plan.count));
    let mut shape = Shape::default();
    parse_nested(text, dtype, &mut values, &mut shape)
        .map_err(|message| fail(format!("{message} (datatype {})", plan.datatype)))?;
    if values.len() != plan.count {
        return Err(fail(format!(
            "'data' holds {} elements, but shape {} has {}",
            values.len(),
            shape_string(&plan.shape),
            plan.count
        )));
    }
    let nested = shape.dims();
    if nested != plan.shape && nested != [plan.count] {
        return Err(fail(format!(
            "'data' is nested as {}: expected a flat list or lists nested as the shape {}",
            shape_string(&nested),
            shape_string(&plan.shape)
        )));
    }
    values.shrink_to_fit();
    Ok(values)
}

/// An input's binary part (its size checked against the shape already).
fn binary_values(name: &str, plan: &InputPlan, part: &[u8]) -> Result<Values, ConvertError> {
    if plan.datatype.element_size().is_some() {
        return Ok(decode_raw(plan.datatype, part));
    }
    raw_strings(part, plan.count)
        .map(Values::Bytes)
        .map_err(|e| ConvertError::request(format!("input '{}': {}", quote(name), e.message)))
}

/// The `count` elements of BYTES raw contents, copied straight into one buffer sized from the
/// contents before the walk (a count the contents cannot hold sizes nothing). Errors give
/// sizes, never the contents.
pub(crate) fn raw_strings(part: &[u8], count: usize) -> Result<ByteStrings, ConvertError> {
    if count > part.len() / BYTES_LENGTH_PREFIX {
        // The walk below would fail; its message says where.
        return Err(split_raw_bytes(part, count, Blame::Request).err().unwrap_or_else(mismatch));
    }
    let mut strings = ByteStrings::with_capacity(count, part.len().saturating_sub(BYTES_LENGTH_PREFIX * count));
    let mut rest = part;
    while strings.len() < count {
        let Some((prefix, after)) = rest.split_first_chunk::<BYTES_LENGTH_PREFIX>() else { break };
        let Some((element, next)) = after.split_at_checked(u32::from_le_bytes(*prefix) as usize) else { break };
        strings.push(element).map_err(ConvertError::request)?;
        rest = next;
    }
    if strings.len() != count || !rest.is_empty() {
        // The same walk again, for its message (it fails where this one stopped).
        return Err(split_raw_bytes(part, count, Blame::Request).err().unwrap_or_else(mismatch));
    }
    Ok(strings)
}

fn mismatch() -> ConvertError {
    ConvertError::request("BYTES contents do not match the shape")
}

/// Fixed-size raw elements (little-endian, no padding; `part` holds a whole number of them), as
/// the daemon holds them.
pub(crate) fn decode_raw(datatype: V2Datatype, part: &[u8]) -> Values {
    // Every chunk has exactly the width asked, so the conversions cannot fail.
    macro_rules! le {
        ($t:ty, $n:expr) => {
            part.chunks_exact($n).map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or_default()))
        };
    }
    match datatype {
        V2Datatype::Bool => Values::Bool(part.iter().map(|&b| b != 0).collect()),
        V2Datatype::Uint8 => Values::I32(part.iter().map(|&b| i32::from(b)).collect()),
        V2Datatype::Int8 => Values::I32(part.iter().map(|&b| i32::from(b as i8)).collect()),
        V2Datatype::Uint16 => Values::I32(le!(u16, 2).map(i32::from).collect()),
        V2Datatype::Int16 => Values::I32(le!(i16, 2).map(i32::from).collect()),
        V2Datatype::Int32 => Values::I32(le!(i32, 4).collect()),
        V2Datatype::Uint32 => Values::U32(le!(u32, 4).collect()),
        V2Datatype::Int64 => Values::I64(le!(i64, 8).collect()),
        V2Datatype::Uint64 => Values::U64(le!(u64, 8).collect()),
        V2Datatype::Fp16 => Values::F32(le!(u16, 2).map(|b| half::f16::from_bits(b).to_f32()).collect()),
        V2Datatype::Bf16 => Values::F32(le!(u16, 2).map(|b| half::bf16::from_bits(b).to_f32()).collect()),
        V2Datatype::Fp32 => Values::F32(le!(f32, 4).collect()),
        V2Datatype::Fp64 => Values::F64(le!(f64, 8).collect()),
        V2Datatype::Bytes => Values::empty(datatype.dtype()),
    }
}

/// `outputs`: a list of `{"name", "parameters"?}`, each named once.
fn requested_outputs(raw: &RawValue) -> Result<Vec<RequestedOutput>, ConvertError> {
    let mut requested: Vec<RequestedOutput> = Vec::new();
    let mut seen = HashSet::new();
    for (i, output) in bounded_list(raw.get(), "outputs")?.into_iter().enumerate() {
        let outline: OutputOutline<'_> = object(output.get(), || format!("outputs[{i}]"))?;
        let name = outline.name.ok_or_else(|| ConvertError::request(format!("outputs[{i}] has no 'name'")))?;
        let name =
            string(name).ok_or_else(|| ConvertError::request(format!("outputs[{i}]: 'name' must be a string")))?;
        let fail = |message: String| ConvertError::request(format!("output '{}': {message}", quote(&name)));
        let mut binary_data = None;
        if let Some(raw) = outline.parameters {
            let params: Parameters<'_> = object(raw.get(), || format!("output '{}': 'parameters'", quote(&name)))?;
            if params.classification.is_some() {
                return Err(fail("the classification extension is not supported".into()));
            }
            binary_data =
                params.binary_data.map(|b| boolean(b, "binary_data").map_err(|e| fail(e.message))).transpose()?;
        }
        if !seen.insert(name.clone()) {
            return Err(fail("is requested more than once".into()));
        }
        requested.push(RequestedOutput { name, binary_data });
    }
    Ok(requested)
}

/// A JSON object read into `T`; `what` names it in errors.
fn object<'d, T: Deserialize<'d>>(text: &'d str, what: impl Fn() -> String) -> Result<T, ConvertError> {
    // serde also reads a struct from a list; only objects are.
    if !text.starts_with('{') {
        return Err(ConvertError::request(format!("{} must be a JSON object", what())));
    }
    serde_json::from_str(text).map_err(|e| ConvertError::request(format!("{}: {}", what(), parse_error(&e))))
}

/// A JSON list's elements, unparsed: at most [`MAX_TENSORS`] of them, counted as they are read,
/// so a long list is refused before it is held.
fn bounded_list<'d>(text: &'d str, what: &str) -> Result<Vec<&'d RawValue>, ConvertError> {
    struct Bounded;
    impl<'de> Visitor<'de> for Bounded {
        type Value = Vec<&'de RawValue>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(element) = seq.next_element::<&'de RawValue>()? {
                if out.len() == MAX_TENSORS {
                    return Err(serde::de::Error::custom(format!("more than {MAX_TENSORS} entries")));
                }
                out.push(element);
            }
            Ok(out)
        }
    }
    if !text.starts_with('[') {
        return Err(ConvertError::request(format!("'{what}' must be a list")));
    }
    let mut reader = serde_json::Deserializer::from_str(text);
    reader.deserialize_seq(Bounded).map_err(|e| ConvertError::request(format!("'{what}': {}", parse_error(&e))))
}

/// A JSON string (a NaN or infinity token is a number, not a string).
fn string(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<String>(raw.get()).ok().filter(|s| marker_token(s).is_none())
}

fn boolean(raw: &RawValue, what: &str) -> Result<bool, ConvertError> {
    serde_json::from_str(raw.get())
        .map_err(|_| ConvertError::request(format!("parameter {what} must be true or false")))
}

fn unsigned(raw: &RawValue, what: &str) -> Result<u64, ConvertError> {
    serde_json::from_str(raw.get()).map_err(|_| {
        ConvertError::request(format!("parameter {what} must be a non-negative integer, not {}", quote(raw.get())))
    })
}

/// `shape`: at most [`MAX_RANK`] non-negative integers.
fn parse_shape(raw: &RawValue) -> Result<Vec<usize>, String> {
    let text = raw.get();
    if !text.starts_with('[') {
        return Err(format!("'shape' must be a list of dimensions, not {}", quote(text)));
    }
    // Counted before the list is read, so a long list sizes nothing.
    if text.bytes().filter(|&b| b == b',').count() >= MAX_RANK {
        return Err(format!("'shape' has more than {MAX_RANK} dimensions"));
    }
    let dims: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| format!("'shape': {}", parse_error(&e)))?;
    dims.iter()
        .map(|d| {
            serde_json::from_str::<u64>(d.get())
                .ok()
                .and_then(|d| usize::try_from(d).ok())
                .ok_or_else(|| format!("shape dimension {} is not a non-negative integer", quote(d.get())))
        })
        .collect()
}

/// Whether a JSON text has an object anywhere (outside strings).
fn has_object(text: &str) -> bool {
    let (mut in_string, mut escaped) = (false, false);
    for &b in text.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'{' {
            return true;
        }
    }
    false
}

/// The byte range of `part`, a slice of `whole`.
fn span(whole: &str, part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    start..start + part.len()
}
