//! gRPC clients: Predict with one row each, over one shared channel (a batching-unaware client
//! calling TF Serving directly).

use std::time::Instant;

use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::prediction_service_client::PredictionServiceClient;
use tfgate_proto::tensorflow::serving::{ModelSpec, PredictRequest};
use tfgate_proto::tensorflow::{tensor_shape_proto::Dim, DataType, TensorProto, TensorShapeProto};
use tonic::transport::Endpoint;

use crate::report::Recorder;
use crate::{Window, ERROR_PAUSE};

pub async fn run(
    target: &str,
    model: &str,
    version: Option<i64>,
    clients: usize,
    window: Window,
) -> Result<Vec<Recorder>, String> {
    let channel = Endpoint::from_shared(target.to_string())
        .map_err(|e| format!("--target {target:?}: {e}"))?
        .tcp_nodelay(true)
        .connect_lazy();
    let request = PredictRequest {
        model_spec: Some(ModelSpec {
            name: model.to_string(),
            version_choice: version.map(VersionChoice::Version),
            signature_name: String::new(),
        }),
        inputs: [("x".to_string(), one_row())].into(),
        ..Default::default()
    };
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let mut client = PredictionServiceClient::new(channel.clone());
            let request = request.clone();
            tokio::spawn(async move {
                let mut recorder = Recorder::default();
                while !window.over() {
                    let started = Instant::now();
                    let ok = client.predict(request.clone()).await.is_ok();
                    window.record(&mut recorder, started, ok);
                    if !ok {
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
                recorder
            })
        })
        .collect();
    let mut recorders = Vec::new();
    for task in tasks {
        recorders.push(task.await.map_err(|e| e.to_string())?);
    }
    Ok(recorders)
}

/// `x = [1.0]`, DT_FLOAT, shape [1].
fn one_row() -> TensorProto {
    TensorProto {
        dtype: DataType::DtFloat as i32,
        tensor_shape: Some(TensorShapeProto { dim: vec![Dim { size: 1, name: String::new() }], unknown_rank: false }),
        float_val: vec![1.0],
        ..Default::default()
    }
}
