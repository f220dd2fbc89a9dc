//! A gRPC call into the core's call: its method (by path), its route (nginx's trusted headers,
//! the message's model spec), and its payload. A message is read within the memory budget, and
//! what decoding it will allocate is counted on the wire and reserved before it is decoded.

use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use prost::Message;
use tfgate_common::Method;
use tfgate_proto::tensorflow::serving::{GetModelMetadataRequest, GetModelStatusRequest, ModelSpec, PredictRequest};

use super::{call, cost, forward, unary};
use crate::admission::Reservation;
use crate::app::App;
use crate::ingress::read::MAX_BODY_BYTES;
use crate::pipeline::{Call, Decoded, Forward, Payload, ProtoInputs, Refused};
use crate::request::{ConnectionId, CoreError, Ingress, RequestInfo, Route};

/// Largest GetModelMetadata or GetModelStatus message: a model spec and a field name or two.
pub(in crate::ingress) const MAX_QUESTION_BYTES: usize = 64 << 10;
/// What decoding a small message may take per byte at most (a string's `Vec` per 2 bytes).
pub(in crate::ingress) const QUESTION_DECODING_FACTOR: usize = 32;

/// TF Serving's methods, by path (exact, case-sensitive).
pub fn method_of_path(path: &str) -> Option<Method> {
    Some(match path {
        "/tensorflow.serving.PredictionService/Predict" => Method::Predict,
        "/tensorflow.serving.PredictionService/Classify" => Method::Classify,
        "/tensorflow.serving.PredictionService/Regress" => Method::Regress,
        "/tensorflow.serving.PredictionService/MultiInference" => Method::MultiInference,
        "/tensorflow.serving.PredictionService/GetModelMetadata" => Method::Metadata,
        "/tensorflow.serving.ModelService/GetModelStatus" => Method::Status,
        _ => return None,
    })
}

pub async fn decode(app: &App, request: hyper::Request<Incoming>) -> Decoded {
    let connection = request.extensions().get::<ConnectionId>().copied();
    let mut info = RequestInfo::from_headers(request.headers(), connection, Instant::now());
    info.client_timeout = call::client_timeout(request.headers());
    let (parts, body) = request.into_parts();
    let refuse =
        |info, route, bytes_in, error| Err(Box::new(Refused { info, ingress: Ingress::Grpc, route, bytes_in, error }));
    let Some(method) = method_of_path(parts.uri.path()) else {
        let path = tfgate_common::echo::quote(parts.uri.path());
        let error = CoreError::new(tonic::Code::Unimplemented, format!("{path} is not served by tfgate"));
        return refuse(info, None, 0, error);
    };
    // What nginx's headers say the call is for, should it be refused before its message says.
    let header_route = call::route(&parts.headers, method, None).ok();
    let mut memory = app.memory.reservation();
    let stall = app.config().connections.body_timeout;
    let max = match method {
        Method::Metadata | Method::Status => MAX_QUESTION_BYTES,
        _ => MAX_BODY_BYTES,
    };
    let message = match unary::read_message(&parts.headers, body, &mut memory, stall, max).await {
        Ok(message) => message,
        Err(error) => return refuse(info, header_route, 0, error),
    };
    let bytes_in = message.len() as u64;
    match payload(method, &parts.headers, message, &mut memory) {
        Ok((route, payload)) => Ok(Call { info, ingress: Ingress::Grpc, route, bytes_in, memory, payload }),
        Err(failure) => {
            let (route, error) = *failure;
            refuse(info, route.or(header_route), bytes_in, error)
        }
    }
}

type Failure = Box<(Option<Route>, CoreError)>;

fn payload(
    method: Method,
    headers: &hyper::HeaderMap,
    message: Bytes,
    memory: &mut Reservation,
) -> Result<(Route, Payload), Failure> {
    let route = |spec: Option<&ModelSpec>| call::route(headers, method, spec).map_err(|e| Box::new((None, e)));
    match method {
        Method::Predict => {
            let decoded_bytes = cost::predict_request(&message).map_err(|e| Box::new((None, e)))?;
            memory.grow(decoded_bytes).map_err(|e| Box::new((None, e)))?;
            let request = PredictRequest::decode(message).map_err(|e| Box::new((None, undecodable(&e))))?;
            let route = route(request.model_spec.as_ref())?;
            let protos = ProtoInputs {
                signature_name: call::signature_name(request.model_spec.as_ref()),
                inputs: request.inputs,
                output_filter: request.output_filter,
                decoded_bytes,
            };
            Ok((route, Payload::Protos(protos)))
        }
        Method::Metadata => {
            memory.grow(QUESTION_DECODING_FACTOR * message.len()).map_err(|e| Box::new((None, e)))?;
            let request = GetModelMetadataRequest::decode(message).map_err(|e| Box::new((None, undecodable(&e))))?;
            Ok((route(request.model_spec.as_ref())?, Payload::Empty))
        }
        Method::Status => {
            memory.grow(QUESTION_DECODING_FACTOR * message.len()).map_err(|e| Box::new((None, e)))?;
            let request = GetModelStatusRequest::decode(message).map_err(|e| Box::new((None, undecodable(&e))))?;
            Ok((route(request.model_spec.as_ref())?, Payload::Empty))
        }
        Method::Classify | Method::Regress | Method::MultiInference => {
            let spec = forward::read_spec(method, &message, memory).map_err(|e| Box::new((None, e)))?;
            let route = route(Some(&spec))?;
            let fail = |e| Box::new((Some(route.clone()), e));
            let message = forward::with_target(method, &message, &route.target, memory).map_err(fail)?;
            let count = forward::example_count(&message).map_err(fail)?;
            Ok((route, Payload::Examples { count, forward: Forward::Grpc { message } }))
        }
    }
}

pub(in crate::ingress) fn undecodable(error: &prost::DecodeError) -> CoreError {
    CoreError::invalid(format!("the request message does not decode: {error}"))
}
