//! The gRPC methods tfgate serves, by request path.

use tfgate_common::Method;

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
}
