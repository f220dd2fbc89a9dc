//! A TF model's signature as the Open Inference Protocol sees it: which signature a v2 call
//! uses, whether a v2 request's inputs and requested outputs fit it, and the model's v2
//! metadata (`GET /v2/models/NAME`, gRPC `ModelMetadata`).
//!
//! v2 has no signature name: a call uses TF Serving's default, `serving_default`, or the
//! model's only signature when it has no default (what a client of TF Serving's REST API gets
//! by not naming one, and more). A request's inputs are checked here before any tensor is built:
//! names (every input of the signature, no other), the datatype equal to the signature's (v2
//! clients say their datatype; nothing is converted), and the shape compatible (same rank, each
//! dimension equal where the signature fixes it). TF Serving checks the same again.

use tfgate_common::echo::quote;
use tfgate_proto::inference::model_metadata_response::TensorMetadata;
use tfgate_proto::inference::ModelMetadataResponse;

use super::dtype::code_name;
use super::nested::shape_string;
use super::request::DEFAULT_SIGNATURE;
use super::signature::TensorSpec;
use super::v2_dtype::V2Datatype;
use super::{Blame, ConvertError, SignatureSpec, Signatures};

/// `platform` of a TF model's metadata, as Triton and KServe name TensorFlow SavedModels.
pub const PLATFORM: &str = "tensorflow_savedmodel";

/// The signature v2 calls of a model use, and its name.
pub fn v2_signature(signatures: &Signatures) -> Result<(&str, &SignatureSpec), ConvertError> {
    if let Some((name, spec)) = signatures.by_name.get_key_value(DEFAULT_SIGNATURE) {
        return Ok((name, spec));
    }
    let mut all = signatures.by_name.iter();
    match (all.next(), all.next()) {
        (Some((name, spec)), None) => Ok((name, spec)),
        (None, _) => Err(ConvertError::backend("the model has no signature")),
        (Some(_), Some(_)) => Err(ConvertError::request(format!(
            "the model has no {DEFAULT_SIGNATURE} signature and {} others, which the Open Inference Protocol cannot name",
            signatures.by_name.len()
        ))),
    }
}

/// Whether `inputs` (name, datatype, shape; each name once) are exactly the signature's, each
/// of its datatype and of a compatible shape.
pub fn check_inputs<'a>(
    inputs: impl IntoIterator<Item = (&'a str, V2Datatype, &'a [usize])>,
    signature: &SignatureSpec,
) -> Result<(), ConvertError> {
    let mut given: Vec<&str> = Vec::with_capacity(signature.inputs.len());
    for (name, datatype, shape) in inputs {
        let Some(spec) = signature.inputs.get(name) else {
            return Err(ConvertError::request(format!(
                "unexpected input '{}': the model's inputs are {}",
                quote(name),
                names(signature.inputs.keys())
            )));
        };
        given.push(name);
        if datatype.data_type() as i32 != spec.dtype {
            return Err(ConvertError::request(format!(
                "input '{}' has datatype {datatype}, the model expects {}",
                quote(name),
                datatype_name(spec.dtype)
            )));
        }
        if !fits(shape, spec) {
            return Err(ConvertError::request(format!(
                "input '{}' has shape {}, the model expects {}",
                quote(name),
                shape_string(shape),
                expected_shape(spec)
            )));
        }
    }
    if let Some(missing) = signature.inputs.keys().find(|name| !given.contains(&name.as_str())) {
        return Err(ConvertError::request(format!(
            "input '{missing}' of the model is missing (its inputs are {})",
            names(signature.inputs.keys())
        )));
    }
    Ok(())
}

/// Whether every requested output is one of the signature's.
pub fn check_outputs<'a>(
    requested: impl IntoIterator<Item = &'a str>,
    signature: &SignatureSpec,
) -> Result<(), ConvertError> {
    for name in requested {
        if !signature.outputs.contains_key(name) {
            return Err(ConvertError::request(format!(
                "unknown output '{}': the model's outputs are {}",
                quote(name),
                names(signature.outputs.keys())
            )));
        }
    }
    Ok(())
}

/// The model's v2 metadata from its signatures: `versions` the version that answered (when
/// known), tensors in name order, -1 for a dimension the signature leaves open and `[-1]` for
/// a tensor of unknown rank (v2 cannot say "any rank").
pub fn model_metadata(
    name: &str,
    version: Option<i64>,
    signatures: &Signatures,
) -> Result<ModelMetadataResponse, ConvertError> {
    let (_, signature) = v2_signature(signatures)?;
    let tensors = |specs: &std::collections::BTreeMap<String, TensorSpec>| {
        specs
            .iter()
            .map(|(name, spec)| {
                let datatype = V2Datatype::from_tf_code(spec.dtype, Blame::Backend)
                    .map_err(|e| ConvertError::backend(format!("tensor {name}: {}", e.message)))?;
                let shape = spec.shape.clone().unwrap_or_else(|| vec![-1]);
                Ok(TensorMetadata { name: name.clone(), datatype: datatype.name().to_string(), shape })
            })
            .collect::<Result<Vec<_>, ConvertError>>()
    };
    Ok(ModelMetadataResponse {
        name: name.to_string(),
        versions: version.map(|v| v.to_string()).into_iter().collect(),
        platform: PLATFORM.to_string(),
        inputs: tensors(&signature.inputs)?,
        outputs: tensors(&signature.outputs)?,
    })
}

/// The metadata as the REST API writes it: `{"name", "versions", "platform", "inputs",
/// "outputs"}`, tensors as `{"name", "datatype", "shape"}`.
pub fn model_metadata_json(metadata: &ModelMetadataResponse) -> Vec<u8> {
    use serde_json::json;
    let tensors = |list: &[TensorMetadata]| {
        list.iter().map(|t| json!({"name": t.name, "datatype": t.datatype, "shape": t.shape})).collect::<Vec<_>>()
    };
    let value = json!({
        "name": metadata.name,
        "versions": metadata.versions,
        "platform": metadata.platform,
        "inputs": tensors(&metadata.inputs),
        "outputs": tensors(&metadata.outputs),
    });
    // A `Value` of strings and numbers always serialises.
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Same rank, and every dimension the signature fixes (not -1) equal.
fn fits(shape: &[usize], spec: &TensorSpec) -> bool {
    let Some(expected) = &spec.shape else { return true };
    shape.len() == expected.len()
        && shape.iter().zip(expected).all(|(&given, &fixed)| fixed < 0 || u64::try_from(fixed) == Ok(given as u64))
}

fn expected_shape(spec: &TensorSpec) -> String {
    match &spec.shape {
        None => "any shape".to_string(),
        Some(dims) => format!("[{}]", dims.iter().map(i64::to_string).collect::<Vec<_>>().join(",")),
    }
}

/// The v2 name of a signature's dtype, else its TF name (a type v2 has none for).
fn datatype_name(code: i32) -> String {
    V2Datatype::from_tf_code(code, Blame::Backend).map_or_else(|_| code_name(code), |d| d.name().to_string())
}

fn names<'a>(list: impl Iterator<Item = &'a String>) -> String {
    list.map(String::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::signature::tests::{metadata_response, signature};
    use tfgate_common::echo::for_client;
    use tfgate_proto::tensorflow::DataType;

    fn sig(inputs: &[(&str, DataType, Option<Vec<i64>>)]) -> SignatureSpec {
        let mut s = signature(&[], &[("y", DataType::DtFloat)]);
        for (name, dtype, shape) in inputs {
            s.inputs.insert(name.to_string(), TensorSpec { dtype: *dtype as i32, shape: shape.clone() });
        }
        s
    }

    fn message(e: ConvertError) -> String {
        assert_eq!(e.blame, Blame::Request);
        for_client(&e.message).into_owned()
    }

    #[test]
    fn inputs_must_be_the_signatures_of_its_datatypes_and_shapes() {
        let s = sig(&[("x", DataType::DtFloat, Some(vec![-1, 3])), ("n", DataType::DtInt64, None)]);
        let x = ("x", V2Datatype::Fp32, &[2usize, 3][..]);
        let n = ("n", V2Datatype::Int64, &[5usize, 1, 1][..]);
        assert!(check_inputs([x, n], &s).is_ok());
        let e = check_inputs([x], &s).unwrap_err();
        assert_eq!(message(e), "input 'n' of the model is missing (its inputs are n, x)");
        let e = check_inputs([x, n, ("z", V2Datatype::Fp32, &[1usize][..])], &s).unwrap_err();
        assert_eq!(message(e), "unexpected input 'z': the model's inputs are n, x");
        let e = check_inputs([("x", V2Datatype::Fp64, &[2usize, 3][..]), n], &s).unwrap_err();
        assert_eq!(message(e), "input 'x' has datatype FP64, the model expects FP32");
        let e = check_inputs([("x", V2Datatype::Fp32, &[2usize, 4][..]), n], &s).unwrap_err();
        assert_eq!(message(e), "input 'x' has shape [2,4], the model expects [-1,3]");
        let e = check_inputs([("x", V2Datatype::Fp32, &[6usize][..]), n], &s).unwrap_err();
        assert_eq!(message(e), "input 'x' has shape [6], the model expects [-1,3]");
        let complex = sig(&[("c", DataType::DtComplex64, None)]);
        let e = check_inputs([("c", V2Datatype::Fp32, &[1usize][..])], &complex).unwrap_err();
        assert!(message(e).ends_with("expects DT_COMPLEX64"));
    }

    #[test]
    fn requested_outputs_must_exist() {
        let s = sig(&[]);
        assert!(check_outputs(["y"], &s).is_ok());
        assert_eq!(
            message(check_outputs(["y", "q"], &s).unwrap_err()),
            "unknown output 'q': the model's outputs are y"
        );
    }

    #[test]
    fn the_default_signature_else_the_only_one() {
        let one = Signatures::from_metadata(&metadata_response("predict")).unwrap();
        assert_eq!(v2_signature(&one).unwrap().0, "predict");
        let mut two = one.clone();
        two.by_name.insert("other".into(), SignatureSpec::default());
        assert!(v2_signature(&two).is_err());
        two.by_name.insert(DEFAULT_SIGNATURE.into(), SignatureSpec::default());
        assert_eq!(v2_signature(&two).unwrap().0, DEFAULT_SIGNATURE);
    }

    #[test]
    fn metadata_from_the_signature() {
        let mut signatures = Signatures::from_metadata(&metadata_response(DEFAULT_SIGNATURE)).unwrap();
        let spec = signatures.by_name.get_mut(DEFAULT_SIGNATURE).unwrap();
        spec.inputs.insert("s".into(), TensorSpec { dtype: DataType::DtString as i32, shape: None });
        let metadata = model_metadata("m", Some(3), &signatures).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&model_metadata_json(&metadata)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "m", "versions": ["3"], "platform": "tensorflow_savedmodel",
                "inputs": [{"name": "s", "datatype": "BYTES", "shape": [-1]},
                           {"name": "x", "datatype": "FP32", "shape": [-1]}],
                "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}]})
        );
        assert!(model_metadata("m", None, &signatures).unwrap().versions.is_empty());
        let spec = signatures.by_name.get_mut(DEFAULT_SIGNATURE).unwrap();
        spec.outputs.insert("v".into(), TensorSpec { dtype: DataType::DtVariant as i32, shape: None });
        assert_eq!(model_metadata("m", None, &signatures).unwrap_err().blame, Blame::Backend);
    }
}
