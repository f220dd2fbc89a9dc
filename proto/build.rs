//! Compiles tfgate's own copies of TensorFlow Serving's and the Open Inference Protocol's .proto
//! files (under `proto/`) into Rust with prost (messages) and tonic (clients and servers).

const PROTOS: &[&str] = &[
    "proto/tensorflow/core/framework/types.proto",
    "proto/tensorflow/core/framework/tensor_shape.proto",
    "proto/tensorflow/core/framework/tensor.proto",
    "proto/tensorflow/core/protobuf/meta_graph.proto",
    "proto/tensorflow/core/protobuf/error_codes.proto",
    "proto/tensorflow_serving/util/status.proto",
    "proto/tensorflow_serving/apis/model.proto",
    "proto/tensorflow_serving/apis/predict.proto",
    "proto/tensorflow_serving/apis/get_model_metadata.proto",
    "proto/tensorflow_serving/apis/get_model_status.proto",
    "proto/tensorflow_serving/apis/prediction_service.proto",
    "proto/tensorflow_serving/apis/model_service.proto",
    "proto/tensorflow_serving/config/logging_config.proto",
    "proto/tensorflow_serving/apis/logging.proto",
    "proto/tensorflow_serving/apis/prediction_log.proto",
    "proto/inference/grpc_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Tensor data as `Bytes`: a batch's joined rows are written into it once, and a copy
        // kept for a retry on another target costs a reference count, not the data. The same holds
        // for the v2 raw contents.
        .bytes(".tensorflow.TensorProto.tensor_content")
        .bytes(".inference.ModelInferRequest.raw_input_contents")
        .bytes(".inference.ModelInferResponse.raw_output_contents")
        .compile_protos(PROTOS, &["proto"])?;
    Ok(())
}
