//! The core's outcome as the protocol's REST answer: an inference's outputs in JSON or as
//! binary tensor data (`Inference-Header-Content-Length`), readiness as the status alone (a
//! model with no version ready is 400, as Triton answers), metadata in the protocol's JSON,
//! errors as `{"error": ...}`; and the RateLimit fields.

use std::future::Future;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tfgate_common::echo::quote;

use crate::convert::v2_json::{infer_response_from, ResponseMeta};
use crate::convert::v2_signature::model_metadata_json;
use crate::ingress::ratelimit;
use crate::ingress::rest::body::full;
use crate::ingress::rest::error::{error_response, json_response, HttpResponse};
use crate::ingress::v2::model::{answered_version, is_ready, metadata, write_outputs};
use crate::observe::call_log::Ending;
use crate::pipeline::{Answer, Encode, Outcome, Predicted};
use crate::request::{Code, CoreError, Route};

/// Binary outputs follow the JSON: the body as a whole is not JSON.
const BINARY_CONTENT_TYPE: &str = "application/octet-stream";

pub struct V2RestEncoder {
    /// The model the call is for, as its route names it.
    model: String,
}

impl V2RestEncoder {
    pub fn for_route(route: Option<&Route>) -> V2RestEncoder {
        V2RestEncoder { model: route.map(|r| r.target.model.clone()).unwrap_or_default() }
    }
}

impl Encode for V2RestEncoder {
    type Response = HttpResponse;

    fn encode(self, outcome: Outcome) -> impl Future<Output = (HttpResponse, Ending)> + Send {
        encode(self.model, outcome)
    }
}

async fn encode(model: String, outcome: Outcome) -> (HttpResponse, Ending) {
    let Outcome { result, standing, limits, .. } = outcome;
    let written = match result {
        Ok(answer) => answer_response(&model, answer).await,
        Err(error) => Err(error),
    };
    let (mut response, ending) = written.unwrap_or_else(|error| (error_response(&error), Ending::of_error(&error)));
    ratelimit::write_fields(response.headers_mut(), standing.as_ref(), limits.as_deref());
    (response, ending)
}

async fn answer_response(model: &str, answer: Answer) -> Result<(HttpResponse, Ending), CoreError> {
    match answer {
        Answer::Predict(predicted) => infer(*predicted).await,
        Answer::Status(status) if is_ready(&status) => {
            let mut response = Response::new(full(Bytes::new()));
            *response.status_mut() = StatusCode::OK;
            Ok((response, Ending::answered(Some(0))))
        }
        // Triton's answer: the spec leaves any 4xx to say "not ready".
        Answer::Status(_) => Err(CoreError::new(
            Code::FailedPrecondition,
            format!("model '{}' has no version ready to serve", quote(model)),
        )
        .with_http_status(400)),
        Answer::Metadata(response) => {
            let body = model_metadata_json(&metadata(model, &response)?);
            let bytes_out = Some(body.len() as u64);
            Ok((json_response(200, body), Ending::answered(bytes_out)))
        }
        Answer::Forwarded(_) => Err(CoreError::internal("a forwarded answer to a v2 request")),
    }
}

async fn infer(predicted: Predicted) -> Result<(HttpResponse, Ending), CoreError> {
    // The call's memory stays reserved until its answer is written out.
    let Predicted { target, outputs, v2, memory: _memory, .. } = predicted;
    let reply = v2.unwrap_or_default();
    let ((body, header_len), bytes) = write_outputs(outputs, |source, version| {
        let version = answered_version(version, &target);
        let meta = ResponseMeta { model_name: &target.model, model_version: &version, id: reply.id.as_deref() };
        let answer = infer_response_from(&meta, source, &reply.outputs)?;
        let bytes = answer.body.len();
        Ok(((answer.body, answer.header_len), bytes))
    })
    .await?;
    let mut response = json_response(200, body);
    if let Some(len) = header_len {
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(BINARY_CONTENT_TYPE));
        headers.insert(HeaderName::from_static(LENGTH_HEADER), HeaderValue::from(len));
    }
    Ok((response, Ending::answered(Some(bytes as u64))))
}

/// `Inference-Header-Content-Length`, as `HeaderName` wants it (lower case).
const LENGTH_HEADER: &str = "inference-header-content-length";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::MemoryBudget;
    use crate::batching::BatchFacts;
    use crate::convert::v2_json::{OutputRequest, RequestedOutput, HEADER_LENGTH_HEADER};
    use crate::convert::{Dtype, Format, Tensor, Values};
    use crate::pipeline::{PredictedOutputs, V2Reply};
    use crate::target::{ModelTarget, VersionRef};
    use http_body_util::BodyExt;
    use std::sync::Arc;
    use tfgate_proto::tensorflow::serving::model_version_status::State;
    use tfgate_proto::tensorflow::serving::{GetModelStatusResponse, ModelVersionStatus};

    async fn encoded(answer: Answer) -> (u16, hyper::HeaderMap, Vec<u8>, Ending) {
        let encoder = V2RestEncoder { model: "m".into() };
        let (response, ending) = encoder.encode(Outcome::answered(answer)).await;
        let (parts, body) = response.into_parts();
        (parts.status.as_u16(), parts.headers, body.collect().await.unwrap().to_bytes().to_vec(), ending)
    }

    fn status(state: State) -> Answer {
        let version = ModelVersionStatus { version: 1, state: state as i32, status: None };
        Answer::Status(GetModelStatusResponse { model_version_status: vec![version] })
    }

    #[tokio::test]
    async fn readiness_is_the_status_alone() {
        let (code, _, body, ending) = encoded(status(State::Available)).await;
        assert_eq!((code, body.len(), ending.code), (200, 0, Code::Ok));
        let (code, _, body, ending) = encoded(status(State::Loading)).await;
        assert_eq!((code, ending.code), (400, Code::FailedPrecondition));
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "model 'm' has no version ready to serve");
    }

    #[tokio::test]
    async fn binary_outputs_say_where_the_json_ends() {
        let budget = MemoryBudget::new(1 << 20);
        let y = Tensor { dtype: Dtype::Float, shape: vec![2], values: Values::F32(vec![1.0, 2.0]) };
        let facts = BatchFacts {
            id: 1,
            rows: 2,
            target: "t".into(),
            sent: std::time::Instant::now(),
            backend: std::time::Duration::ZERO,
            version: Some(4),
            cost: std::time::Duration::ZERO,
            packed: Vec::new(),
            shared: false,
        };
        let outputs = PredictedOutputs::Whole(Arc::new([("y".to_string(), y)].into()), Arc::new(facts));
        let wanted = OutputRequest {
            requested: Some(vec![RequestedOutput { name: "y".into(), binary_data: Some(true) }]),
            binary_data_output: false,
        };
        let predicted = Predicted {
            format: Format::Row,
            target: ModelTarget { model: "m".into(), version: VersionRef::Latest },
            signature_name: "serving_default".into(),
            output_filter: vec!["y".into()],
            v2: Some(V2Reply { id: Some("7".into()), outputs: wanted }),
            outputs,
            memory: budget.reservation(),
        };
        let (code, headers, body, ending) = encoded(Answer::Predict(Box::new(predicted))).await;
        assert_eq!((code, ending.bytes_out), (200, Some(body.len() as u64)));
        assert_eq!(headers[CONTENT_TYPE], BINARY_CONTENT_TYPE);
        let len: usize = headers[HEADER_LENGTH_HEADER].to_str().unwrap().parse().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body[..len]).unwrap();
        assert_eq!((json["model_version"].as_str(), json["id"].as_str()), (Some("4"), Some("7")));
        assert_eq!(&body[len..], [1.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat());
        assert!(LENGTH_HEADER.eq_ignore_ascii_case(HEADER_LENGTH_HEADER));
    }
}
