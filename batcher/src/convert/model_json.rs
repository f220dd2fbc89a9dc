//! GetModelStatus and GetModelMetadata answers written the way TF Serving's REST API writes
//! them: protobuf's JSON mapping with the proto field names, default values printed and int64
//! as strings (`"version": "2"`, `"size": "-1"`).

use std::collections::BTreeMap;

use serde::Serialize;
use tfgate_proto::tensorflow::error::Code;
use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::model_version_status::State;
use tfgate_proto::tensorflow::serving::{GetModelMetadataResponse, GetModelStatusResponse, ModelSpec};
use tfgate_proto::tensorflow::{tensor_info::Encoding, SignatureDef, TensorInfo, TensorShapeProto};

use super::dtype::code_name;
use super::signature::signature_def_map;
use super::ConvertError;

/// `{"model_version_status": [{"version": "2", "state": "AVAILABLE", "status": {...}}]}`.
pub fn status_json(response: &GetModelStatusResponse) -> Vec<u8> {
    #[derive(Serialize)]
    struct Answer {
        model_version_status: Vec<VersionStatus>,
    }
    #[derive(Serialize)]
    struct VersionStatus {
        version: String,
        state: String,
        status: Status,
    }
    #[derive(Serialize)]
    struct Status {
        error_code: String,
        error_message: String,
    }
    let model_version_status = response
        .model_version_status
        .iter()
        .map(|s| {
            let status = s.status.clone().unwrap_or_default();
            VersionStatus {
                version: s.version.to_string(),
                state: enum_name(State::try_from(s.state).ok().map(|v| v.as_str_name()), s.state),
                status: Status {
                    error_code: enum_name(
                        Code::try_from(status.error_code).ok().map(|c| c.as_str_name()),
                        status.error_code,
                    ),
                    error_message: status.error_message,
                },
            }
        })
        .collect();
    serde_json::to_vec(&Answer { model_version_status }).unwrap_or_default()
}

/// `{"model_spec": {...}, "metadata": {"signature_def": {"signature_def": {...}}}}`.
pub fn metadata_json(response: &GetModelMetadataResponse) -> Result<Vec<u8>, ConvertError> {
    #[derive(Serialize)]
    struct Answer {
        model_spec: SpecJson,
        metadata: Metadata,
    }
    #[derive(Serialize)]
    struct Metadata {
        signature_def: SignatureDefMapJson,
    }
    #[derive(Serialize)]
    struct SignatureDefMapJson {
        signature_def: BTreeMap<String, SignatureDefJson>,
    }
    let map = signature_def_map(response)?;
    let signature_def =
        map.signature_def.iter().map(|(name, def)| (name.clone(), SignatureDefJson::new(def))).collect();
    let answer = Answer {
        model_spec: SpecJson::new(response.model_spec.as_ref()),
        metadata: Metadata { signature_def: SignatureDefMapJson { signature_def } },
    };
    serde_json::to_vec(&answer).map_err(|e| ConvertError::backend(format!("cannot write metadata as JSON: {e}")))
}

#[derive(Serialize)]
struct SpecJson {
    name: String,
    signature_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_label: Option<String>,
}

impl SpecJson {
    fn new(spec: Option<&ModelSpec>) -> SpecJson {
        let spec = spec.cloned().unwrap_or_default();
        let (version, version_label) = match spec.version_choice {
            Some(VersionChoice::Version(v)) => (Some(v.to_string()), None),
            Some(VersionChoice::VersionLabel(l)) => (None, Some(l)),
            None => (None, None),
        };
        SpecJson { name: spec.name, signature_name: spec.signature_name, version, version_label }
    }
}

#[derive(Serialize)]
struct SignatureDefJson {
    inputs: BTreeMap<String, TensorInfoJson>,
    outputs: BTreeMap<String, TensorInfoJson>,
    method_name: String,
}

impl SignatureDefJson {
    fn new(def: &SignatureDef) -> SignatureDefJson {
        let infos = |m: &std::collections::HashMap<String, TensorInfo>| {
            m.iter().map(|(name, info)| (name.clone(), TensorInfoJson::new(info))).collect()
        };
        SignatureDefJson {
            inputs: infos(&def.inputs),
            outputs: infos(&def.outputs),
            method_name: def.method_name.clone(),
        }
    }
}

#[derive(Serialize)]
struct TensorInfoJson {
    dtype: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tensor_shape: Option<ShapeJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    coo_sparse: Option<CooSparseJson>,
}

#[derive(Serialize)]
struct ShapeJson {
    dim: Vec<DimJson>,
    unknown_rank: bool,
}

#[derive(Serialize)]
struct DimJson {
    size: String,
    name: String,
}

#[derive(Serialize)]
struct CooSparseJson {
    values_tensor_name: String,
    indices_tensor_name: String,
    dense_shape_tensor_name: String,
}

impl TensorInfoJson {
    fn new(info: &TensorInfo) -> TensorInfoJson {
        let (name, coo_sparse) = match &info.encoding {
            Some(Encoding::Name(name)) => (Some(name.clone()), None),
            Some(Encoding::CooSparse(c)) => (
                None,
                Some(CooSparseJson {
                    values_tensor_name: c.values_tensor_name.clone(),
                    indices_tensor_name: c.indices_tensor_name.clone(),
                    dense_shape_tensor_name: c.dense_shape_tensor_name.clone(),
                }),
            ),
            None => (None, None),
        };
        TensorInfoJson {
            dtype: code_name(info.dtype),
            tensor_shape: info.tensor_shape.as_ref().map(shape_json),
            name,
            coo_sparse,
        }
    }
}

fn shape_json(shape: &TensorShapeProto) -> ShapeJson {
    let dim = shape.dim.iter().map(|d| DimJson { size: d.size.to_string(), name: d.name.clone() }).collect();
    ShapeJson { dim, unknown_rank: shape.unknown_rank }
}

/// Protobuf's JSON mapping writes an enum value it does not know as its number.
fn enum_name(name: Option<&str>, value: i32) -> String {
    name.map_or_else(|| value.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::signature::tests::metadata_response;
    use serde_json::{json, Value};
    use tfgate_proto::tensorflow::serving::{ModelVersionStatus, StatusProto};

    #[test]
    fn status_like_tf_serving() {
        let response = GetModelStatusResponse {
            model_version_status: vec![
                ModelVersionStatus {
                    version: 2,
                    state: State::Available as i32,
                    status: Some(StatusProto { error_code: Code::Ok as i32, error_message: String::new() }),
                },
                ModelVersionStatus { version: 1, state: 99, status: None },
            ],
        };
        let text = String::from_utf8(status_json(&response)).unwrap();
        assert!(
            text.starts_with(r#"{"model_version_status":[{"version":"2","state":"AVAILABLE","status":{"error_code":"OK","error_message":""}}"#),
            "{text}"
        );
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["model_version_status"][1]["state"], "99");
    }

    #[test]
    fn metadata_like_tf_serving() {
        let mut response = metadata_response("serving_default");
        response.model_spec = Some(ModelSpec {
            name: "half_plus_two".into(),
            signature_name: String::new(),
            version_choice: Some(VersionChoice::Version(2)),
        });
        let parsed: Value = serde_json::from_slice(&metadata_json(&response).unwrap()).unwrap();
        assert_eq!(parsed["model_spec"], json!({"name": "half_plus_two", "signature_name": "", "version": "2"}));
        let sig = &parsed["metadata"]["signature_def"]["signature_def"]["serving_default"];
        assert_eq!(
            sig["inputs"]["x"],
            json!({"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": false}, "name": "x:0"})
        );
        assert_eq!(sig["method_name"], "tensorflow/serving/predict");
    }

    #[test]
    fn metadata_without_signatures_is_an_error() {
        let mut response = metadata_response("s");
        response.metadata.clear();
        assert!(metadata_json(&response).is_err());
    }
}
