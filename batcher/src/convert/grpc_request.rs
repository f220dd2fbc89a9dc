//! A gRPC Predict request's inputs, already tensors, checked against the model's signature the
//! way TF Serving checks them: every input of the signature present, no other, each of the
//! signature's dtype.

use std::collections::{BTreeMap, HashMap};

use tfgate_proto::tensorflow::TensorProto;

use tfgate_common::echo::quote;

use super::signature::SignatureSpec;
use super::tensor::read_size;
use super::{ConvertError, Dtype, Tensor};

/// The bytes the inputs will take once read (see [`read_size`]).
pub fn inputs_read_size(protos: &HashMap<String, TensorProto>) -> Result<usize, ConvertError> {
    protos.values().try_fold(0usize, |total, proto| Ok(total.saturating_add(read_size(proto)?)))
}

/// The inputs, read as tensors, each checked against its spec in `signature`.
pub fn inputs_from_protos(
    protos: &HashMap<String, TensorProto>,
    signature: &SignatureSpec,
) -> Result<BTreeMap<String, Tensor>, ConvertError> {
    let expected = || signature.inputs.keys().cloned().collect::<Vec<_>>().join(", ");
    if let Some(missing) = signature.inputs.keys().find(|name| !protos.contains_key(*name)) {
        return Err(ConvertError::request(format!(
            "input '{missing}' of the signature is missing (expected inputs: {})",
            expected()
        )));
    }
    let mut inputs = BTreeMap::new();
    for (name, proto) in protos {
        let Some(spec) = signature.inputs.get(name) else {
            return Err(ConvertError::request(format!(
                "input '{}' is not an input of the signature (expected inputs: {})",
                quote(name),
                expected()
            )));
        };
        let tensor = Tensor::from_request_proto(proto)
            .map_err(|e| ConvertError::request(format!("input '{name}': {}", e.message)))?;
        if tensor.dtype.data_type() as i32 != spec.dtype {
            return Err(ConvertError::request(format!(
                "input '{name}' is {}, the signature expects {}",
                tensor.dtype.name(),
                Dtype::from_code(spec.dtype).map_or_else(|| format!("type {}", spec.dtype), |d| d.name().to_string())
            )));
        }
        inputs.insert(name.clone(), tensor);
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::signature::TensorSpec;
    use crate::convert::Values;

    fn signature() -> SignatureSpec {
        let mut s = SignatureSpec::default();
        s.inputs.insert("x".into(), TensorSpec { dtype: Dtype::Float.data_type() as i32, shape: Some(vec![-1]) });
        s
    }

    fn floats(values: &[f32]) -> TensorProto {
        Tensor { dtype: Dtype::Float, shape: vec![values.len()], values: Values::F32(values.to_vec()) }.into_proto()
    }

    #[test]
    fn checked_against_the_signature() {
        let inputs = inputs_from_protos(&[("x".to_string(), floats(&[1.0, 2.0]))].into(), &signature()).unwrap();
        assert_eq!(inputs["x"].values, Values::F32(vec![1.0, 2.0]));
        let missing = inputs_from_protos(&HashMap::new(), &signature()).unwrap_err();
        assert!(missing.message.contains("'x' of the signature is missing"), "{}", missing.message);
        let extra = [("x".to_string(), floats(&[1.0])), ("y".to_string(), floats(&[1.0]))];
        assert!(inputs_from_protos(&extra.into(), &signature()).unwrap_err().message.contains("is not an input"));
        let doubles = Tensor { dtype: Dtype::Double, shape: vec![1], values: Values::F64(vec![1.0]) }.into_proto();
        let e = inputs_from_protos(&[("x".to_string(), doubles)].into(), &signature()).unwrap_err();
        assert!(e.message.contains("DT_DOUBLE") || e.message.contains("double"), "{}", e.message);
        let mut short = floats(&[1.0]);
        short.tensor_content = vec![0u8; 3].into();
        let e = inputs_from_protos(&[("x".to_string(), short)].into(), &signature()).unwrap_err();
        assert_eq!(e.blame, crate::convert::Blame::Request);
    }
}
