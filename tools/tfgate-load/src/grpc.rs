//! gRPC clients over one shared HTTP/2 channel: TF Serving's Predict, or the Open Inference
//! Protocol's ModelInfer (the row in `raw_input_contents`, as `tritonclient` sends it).

use tfgate_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use tfgate_proto::inference::model_infer_request::InferInputTensor;
use tfgate_proto::inference::ModelInferRequest;
use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::prediction_service_client::PredictionServiceClient;
use tfgate_proto::tensorflow::serving::{ModelSpec, PredictRequest};
use tfgate_proto::tensorflow::{tensor_shape_proto::Dim, DataType, TensorProto, TensorShapeProto};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::driver::{Client, Connect};
use crate::report::Outcome;

/// What every call sends.
#[derive(Clone)]
pub struct Grpc {
    channel: Channel,
    request: Request,
    metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
}

/// The call every client repeats.
#[derive(Clone)]
enum Request {
    Predict(PredictRequest),
    ModelInfer(ModelInferRequest),
}

pub struct Spec<'a> {
    /// ModelInfer (Open Inference Protocol) rather than Predict.
    pub v2: bool,
    pub target: &'a str,
    pub model: &'a str,
    pub version: Option<i64>,
    pub row_floats: usize,
    pub tensor_content: bool,
    pub metadata: &'a [(String, String)],
}

impl Grpc {
    pub fn new(spec: &Spec<'_>) -> Result<Grpc, String> {
        let channel = Endpoint::from_shared(spec.target.to_string())
            .map_err(|e| format!("--target {:?}: {e}", spec.target))?
            .tcp_nodelay(true)
            .connect_lazy();
        let request = if spec.v2 {
            Request::ModelInfer(model_infer(spec))
        } else {
            Request::Predict(PredictRequest {
                model_spec: Some(ModelSpec {
                    name: spec.model.to_string(),
                    version_choice: spec.version.map(VersionChoice::Version),
                    signature_name: String::new(),
                }),
                inputs: [("x".to_string(), one_row(spec.row_floats, spec.tensor_content))].into(),
                ..Default::default()
            })
        };
        let metadata = spec
            .metadata
            .iter()
            .map(|(n, v)| {
                let key = AsciiMetadataKey::from_bytes(n.to_ascii_lowercase().as_bytes())
                    .map_err(|e| format!("metadata {n:?}: {e}"))?;
                let value = AsciiMetadataValue::try_from(v.as_str()).map_err(|e| format!("metadata {n:?}: {e}"))?;
                Ok((key, value))
            })
            .collect::<Result<_, String>>()?;
        Ok(Grpc { channel, request, metadata })
    }
}

pub struct GrpcClient {
    predict: PredictionServiceClient<Channel>,
    infer: GrpcInferenceServiceClient<Channel>,
    grpc: Grpc,
}

impl Connect for Grpc {
    type Client = GrpcClient;

    async fn connect(&self) -> Result<GrpcClient, String> {
        let predict = PredictionServiceClient::new(self.channel.clone())
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        let infer = GrpcInferenceServiceClient::new(self.channel.clone())
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        Ok(GrpcClient { predict, infer, grpc: self.clone() })
    }
}

impl Client for GrpcClient {
    async fn send(&mut self) -> Outcome {
        let answered = match &self.grpc.request {
            Request::Predict(message) => {
                self.predict.predict(with_metadata(message.clone(), &self.grpc.metadata)).await.map(drop)
            }
            Request::ModelInfer(message) => {
                self.infer.model_infer(with_metadata(message.clone(), &self.grpc.metadata)).await.map(drop)
            }
        };
        match answered {
            Ok(()) => Outcome::Answered,
            Err(status) if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::ResourceExhausted) => {
                Outcome::Refused
            }
            Err(status) => {
                crate::report::first_error(&format!("{:?}: {}", status.code(), status.message()));
                Outcome::Failed
            }
        }
    }

    fn hang_up(&mut self) {
        // Dropping the call's future reset its stream; the connection serves the next one.
    }
}

fn with_metadata<T>(message: T, metadata: &[(AsciiMetadataKey, AsciiMetadataValue)]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for (key, value) in metadata {
        request.metadata_mut().insert(key.clone(), value.clone());
    }
    request
}

/// The same row as [`one_row`], as a ModelInfer request: input `x`, FP32, raw contents.
fn model_infer(spec: &Spec<'_>) -> ModelInferRequest {
    let n = spec.row_floats;
    let shape: Vec<i64> = if n == 1 { vec![1] } else { vec![1, n as i64] };
    let raw: Vec<u8> = (0..n).flat_map(|i| ((i % 255) as f32 / 255.0).to_le_bytes()).collect();
    ModelInferRequest {
        model_name: spec.model.to_string(),
        model_version: spec.version.map(|v| v.to_string()).unwrap_or_default(),
        inputs: vec![InferInputTensor {
            name: "x".to_string(),
            datatype: "FP32".to_string(),
            shape,
            ..Default::default()
        }],
        raw_input_contents: vec![raw.into()],
        ..Default::default()
    }
}

/// `x`: one row of `n` floats (shape [1, n], or [1] for n = 1), DT_FLOAT.
fn one_row(n: usize, tensor_content: bool) -> TensorProto {
    let dims: Vec<i64> = if n == 1 { vec![1] } else { vec![1, n as i64] };
    let values: Vec<f32> = (0..n).map(|i| (i % 255) as f32 / 255.0).collect();
    let mut tensor = TensorProto {
        dtype: DataType::DtFloat as i32,
        tensor_shape: Some(TensorShapeProto {
            dim: dims.into_iter().map(|size| Dim { size, name: String::new() }).collect(),
            unknown_rank: false,
        }),
        ..Default::default()
    };
    if tensor_content {
        tensor.tensor_content = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    } else {
        tensor.float_val = values;
    }
    tensor
}
