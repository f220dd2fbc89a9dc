//! The gRPC methods tfgate serves, by request path: TF Serving's, and the Open Inference
//! Protocol's (`inference.GRPCInferenceService`).

use tfgate_common::{Method, V2ModelMethod};

use crate::route::V2Server;

/// A TF Serving gRPC method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcMethod {
    Predict,
    Classify,
    Regress,
    MultiInference,
    GetModelMetadata,
    GetModelStatus,
}

const PREDICTION_SERVICE: &str = "/tensorflow.serving.PredictionService/";
const MODEL_SERVICE: &str = "/tensorflow.serving.ModelService/";
const INFERENCE_SERVICE: &str = "/inference.GRPCInferenceService/";

/// The packages whose paths are gRPC's only: a request to any of their methods, served or not,
/// is answered in gRPC's terms (a Triton extension of `inference` as well as a TF Serving
/// method tfgate does not serve).
const GRPC_PACKAGES: [&[u8]; 2] = [b"/tensorflow.serving.", b"/inference."];

/// A gRPC method tfgate serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcCall {
    /// TF Serving's: the model is the message's `ModelSpec`.
    TfServing(GrpcMethod),
    /// `ModelInfer`, `ModelReady`, `ModelMetadata`: the model is the message's name and
    /// version (fields 1 and 2).
    V2Model(V2ModelMethod),
    /// `ServerLive`, `ServerReady`, `ServerMetadata`: no model.
    V2Server(V2Server),
}

impl GrpcCall {
    /// The method a request path names; `None` for any other path (gRPC paths are exact and
    /// case-sensitive), Triton's extensions of the v2 service included.
    pub fn from_path(path: &[u8]) -> Option<GrpcCall> {
        if let Some(method) = GrpcMethod::from_path(path) {
            return Some(GrpcCall::TfServing(method));
        }
        let name = std::str::from_utf8(path).ok()?.strip_prefix(INFERENCE_SERVICE)?;
        let server = match name {
            "ServerLive" => V2Server::Live,
            "ServerReady" => V2Server::Ready,
            "ServerMetadata" => V2Server::Metadata,
            _ => {
                return [V2ModelMethod::Infer, V2ModelMethod::Ready, V2ModelMethod::Metadata]
                    .into_iter()
                    .find(|method| method.rpc() == name)
                    .map(GrpcCall::V2Model)
            }
        };
        Some(GrpcCall::V2Server(server))
    }

    /// Whether a path is in one of the gRPC packages tfgate serves methods of (served or not).
    pub fn is_grpc_package_path(path: &[u8]) -> bool {
        GRPC_PACKAGES.iter().any(|package| path.starts_with(package))
    }
}

impl GrpcMethod {
    /// The method a request path names; `None` for any other path (gRPC paths are exact and
    /// case-sensitive).
    pub fn from_path(path: &[u8]) -> Option<GrpcMethod> {
        let path = std::str::from_utf8(path).ok()?;
        if let Some(name) = path.strip_prefix(PREDICTION_SERVICE) {
            return Some(match name {
                "Predict" => GrpcMethod::Predict,
                "Classify" => GrpcMethod::Classify,
                "Regress" => GrpcMethod::Regress,
                "MultiInference" => GrpcMethod::MultiInference,
                "GetModelMetadata" => GrpcMethod::GetModelMetadata,
                _ => return None,
            });
        }
        (path.strip_prefix(MODEL_SERVICE)? == "GetModelStatus").then_some(GrpcMethod::GetModelStatus)
    }

    /// Whether a path is in one of TF Serving's services (served or not): such a request is
    /// answered in gRPC's terms, never with an HTTP error page.
    pub fn is_tf_serving_path(path: &[u8]) -> bool {
        path.starts_with(b"/tensorflow.serving.")
    }

    /// The same operation in the module's vocabulary (trusted headers, variables, logs).
    pub fn method(self) -> Method {
        match self {
            GrpcMethod::Predict => Method::Predict,
            GrpcMethod::Classify => Method::Classify,
            GrpcMethod::Regress => Method::Regress,
            GrpcMethod::MultiInference => Method::MultiInference,
            GrpcMethod::GetModelMetadata => Method::Metadata,
            GrpcMethod::GetModelStatus => Method::Status,
        }
    }

    /// Whether the request message holds `repeated InferenceTask tasks = 1` (each with its own
    /// `model_spec = 1`) rather than `model_spec = 1` itself.
    pub fn has_tasks(self) -> bool {
        self == GrpcMethod::MultiInference
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_paths_only() {
        assert_eq!(GrpcMethod::from_path(b"/tensorflow.serving.PredictionService/Predict"), Some(GrpcMethod::Predict));
        assert_eq!(
            GrpcMethod::from_path(b"/tensorflow.serving.ModelService/GetModelStatus"),
            Some(GrpcMethod::GetModelStatus)
        );
        for other in [
            &b"/tensorflow.serving.PredictionService/predict"[..],
            b"/tensorflow.serving.ModelService/HandleReloadConfigRequest",
            b"/tensorflow.serving.PredictionService/Predict/",
            b"/v1/models/m:predict",
            b"/tensorflow.serving.PredictionService/\xff",
        ] {
            assert_eq!(GrpcMethod::from_path(other), None, "{other:?}");
        }
        assert!(GrpcMethod::is_tf_serving_path(b"/tensorflow.serving.ModelService/HandleReloadConfigRequest"));
    }

    #[test]
    fn the_v2_service_and_nothing_else_of_its_package() {
        let call = |path: &str| GrpcCall::from_path(path.as_bytes());
        let cases = [
            ("ServerLive", GrpcCall::V2Server(V2Server::Live)),
            ("ServerReady", GrpcCall::V2Server(V2Server::Ready)),
            ("ServerMetadata", GrpcCall::V2Server(V2Server::Metadata)),
            ("ModelReady", GrpcCall::V2Model(V2ModelMethod::Ready)),
            ("ModelMetadata", GrpcCall::V2Model(V2ModelMethod::Metadata)),
            ("ModelInfer", GrpcCall::V2Model(V2ModelMethod::Infer)),
        ];
        for (name, expected) in cases {
            assert_eq!(call(&format!("/inference.GRPCInferenceService/{name}")), Some(expected), "{name}");
        }
        assert_eq!(
            call("/tensorflow.serving.PredictionService/Predict"),
            Some(GrpcCall::TfServing(GrpcMethod::Predict))
        );
        // Triton's extensions, other services of the package, other spellings: not served.
        for other in [
            "/inference.GRPCInferenceService/ModelStreamInfer",
            "/inference.GRPCInferenceService/ModelConfig",
            "/inference.GRPCInferenceService/ModelStatistics",
            "/inference.GRPCInferenceService/RepositoryIndex",
            "/inference.GRPCInferenceService/RepositoryModelLoad",
            "/inference.GRPCInferenceService/SystemSharedMemoryStatus",
            "/inference.GRPCInferenceService/CudaSharedMemoryRegister",
            "/inference.GRPCInferenceService/TraceSetting",
            "/inference.GRPCInferenceService/LogSettings",
            "/inference.GRPCInferenceService/modelinfer",
            "/inference.GRPCInferenceService/ModelInfer/",
            "/inference.GRPCInferenceService/",
            "/inference.grpcinferenceservice/ModelInfer",
            "/inference.OtherService/ModelInfer",
            "/v2/models/m/infer",
        ] {
            assert_eq!(call(other), None, "{other}");
        }
        assert_eq!(GrpcCall::from_path(b"/inference.GRPCInferenceService/\xff"), None);
        for path in [&b"/inference.GRPCInferenceService/ModelStreamInfer"[..], b"/tensorflow.serving.X/Y"] {
            assert!(GrpcCall::is_grpc_package_path(path));
        }
        for path in [&b"/v2/models/m/infer"[..], b"/inferences", b"/Inference.GRPCInferenceService/ModelInfer"] {
            assert!(!GrpcCall::is_grpc_package_path(path));
        }
    }
}
