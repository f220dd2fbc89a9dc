//! What the conversion needs from a model's signatures: the dtype of each named input and output.
//! Read out of `GetModelMetadataResponse` once and cached by the backend layer.

use std::collections::BTreeMap;

use prost::Message;
use tfgate_proto::tensorflow::serving::{GetModelMetadataResponse, SignatureDefMap};
use tfgate_proto::tensorflow::{SignatureDef, TensorInfo};
use tfgate_proto::{SIGNATURE_DEF_FIELD, SIGNATURE_DEF_MAP_TYPE_URL};

use super::ConvertError;

/// One input or output of a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Raw `DataType` code: an unsupported one only matters if a request uses it.
    pub dtype: i32,
    /// Static shape, -1 for unknown sizes; `None` when the rank is unknown.
    pub shape: Option<Vec<i64>>,
}

/// One signature: inputs and outputs by name (sorted, so messages and answers are stable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureSpec {
    pub inputs: BTreeMap<String, TensorSpec>,
    pub outputs: BTreeMap<String, TensorSpec>,
}

/// All signatures of one model version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signatures {
    pub by_name: BTreeMap<String, SignatureSpec>,
}

impl Signatures {
    /// Extracts the `signature_def` metadata of a GetModelMetadata answer.
    pub fn from_metadata(response: &GetModelMetadataResponse) -> Result<Signatures, ConvertError> {
        let map = signature_def_map(response)?;
        Ok(Signatures::from_map(&map))
    }

    pub fn from_map(map: &SignatureDefMap) -> Signatures {
        let by_name =
            map.signature_def.iter().map(|(name, def)| (name.clone(), SignatureSpec::from_def(def))).collect();
        Signatures { by_name }
    }

    /// The signature a request names, with TF Serving's message when it does not exist.
    pub fn get(&self, name: &str) -> Result<&SignatureSpec, ConvertError> {
        self.by_name.get(name).ok_or_else(|| {
            let name = tfgate_common::echo::quote(name);
            ConvertError::request(format!("Serving signature name: \"{name}\" not found in signature def"))
        })
    }
}

/// Decodes the `google.protobuf.Any` holding the `SignatureDefMap`.
pub fn signature_def_map(response: &GetModelMetadataResponse) -> Result<SignatureDefMap, ConvertError> {
    let any = response
        .metadata
        .get(SIGNATURE_DEF_FIELD)
        .ok_or_else(|| ConvertError::backend("model metadata has no signature_def"))?;
    if any.type_url != SIGNATURE_DEF_MAP_TYPE_URL {
        return Err(ConvertError::backend(format!("model metadata signature_def has type {:?}", any.type_url)));
    }
    SignatureDefMap::decode(any.value.as_slice())
        .map_err(|e| ConvertError::backend(format!("model metadata signature_def cannot be decoded: {e}")))
}

impl SignatureSpec {
    pub fn from_def(def: &SignatureDef) -> SignatureSpec {
        let specs = |m: &std::collections::HashMap<String, TensorInfo>| {
            m.iter().map(|(name, info)| (name.clone(), TensorSpec::from_info(info))).collect()
        };
        SignatureSpec { inputs: specs(&def.inputs), outputs: specs(&def.outputs) }
    }
}

impl TensorSpec {
    fn from_info(info: &TensorInfo) -> TensorSpec {
        let shape = match &info.tensor_shape {
            Some(s) if s.unknown_rank => None,
            Some(s) => Some(s.dim.iter().map(|d| d.size).collect()),
            None => None,
        };
        TensorSpec { dtype: info.dtype, shape }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use tfgate_proto::tensorflow::{tensor_shape_proto::Dim, DataType, TensorShapeProto};

    /// A signature with the given (name, dtype) inputs and outputs, shape [-1].
    pub fn signature(inputs: &[(&str, DataType)], outputs: &[(&str, DataType)]) -> SignatureSpec {
        let specs = |list: &[(&str, DataType)]| {
            list.iter()
                .map(|(n, dt)| (n.to_string(), TensorSpec { dtype: *dt as i32, shape: Some(vec![-1]) }))
                .collect()
        };
        SignatureSpec { inputs: specs(inputs), outputs: specs(outputs) }
    }

    pub fn metadata_response(name: &str) -> GetModelMetadataResponse {
        let info = |dtype: DataType| TensorInfo {
            dtype: dtype as i32,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![Dim { size: -1, name: String::new() }],
                unknown_rank: false,
            }),
            encoding: Some(tfgate_proto::tensorflow::tensor_info::Encoding::Name("x:0".into())),
        };
        let def = SignatureDef {
            inputs: [("x".to_string(), info(DataType::DtFloat))].into(),
            outputs: [("y".to_string(), info(DataType::DtFloat))].into(),
            method_name: "tensorflow/serving/predict".into(),
        };
        let map = SignatureDefMap { signature_def: [(name.to_string(), def)].into() };
        let any = prost_types::Any { type_url: SIGNATURE_DEF_MAP_TYPE_URL.into(), value: map.encode_to_vec() };
        GetModelMetadataResponse { model_spec: None, metadata: [(SIGNATURE_DEF_FIELD.to_string(), any)].into() }
    }

    #[test]
    fn reads_signatures_from_metadata() {
        let sigs = Signatures::from_metadata(&metadata_response("serving_default")).unwrap();
        let sig = sigs.get("serving_default").unwrap();
        assert_eq!(sig.inputs["x"], TensorSpec { dtype: DataType::DtFloat as i32, shape: Some(vec![-1]) });
        assert!(sig.outputs.contains_key("y"));
        let e = sigs.get("other").unwrap_err();
        let message = tfgate_common::echo::for_client(&e.message);
        assert_eq!(message, "Serving signature name: \"other\" not found in signature def");
        assert_eq!(
            tfgate_common::echo::for_log(&e.message),
            "Serving signature name: \"<5 bytes>\" not found in signature def"
        );
    }

    #[test]
    fn bad_metadata_is_a_backend_error() {
        let mut response = metadata_response("s");
        response.metadata.get_mut(SIGNATURE_DEF_FIELD).unwrap().value = vec![0xff, 0xff];
        assert!(Signatures::from_metadata(&response).is_err());
        response.metadata.get_mut(SIGNATURE_DEF_FIELD).unwrap().type_url = "x".into();
        assert!(Signatures::from_metadata(&response).is_err());
        response.metadata.clear();
        assert!(Signatures::from_metadata(&response).is_err());
    }
}
