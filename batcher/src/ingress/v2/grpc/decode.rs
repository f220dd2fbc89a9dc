//! A v2 gRPC call into the core's call: its method (by path), its route (nginx's trusted
//! headers merged with the message's `model_name` / `model_version`, as TF Serving's ModelSpec
//! is merged), and its payload. A message is read within the memory budget; what decoding a
//! ModelInferRequest will allocate is counted on the wire and reserved before it is decoded.

use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::HeaderMap;
use prost::Message;
use tfgate_common::{parse_v2_version, V2ModelMethod};
use tfgate_proto::inference::{
    ModelInferRequest, ModelMetadataRequest, ModelReadyRequest, ServerLiveResponse, ServerReadyResponse,
};

use super::cost;
use super::encode::V2GrpcEncoder;
use super::SERVICE_PREFIX;
use crate::admission::Reservation;
use crate::app::App;
use crate::ingress::grpc::call::{self, Named};
use crate::ingress::grpc::decode::{undecodable, MAX_QUESTION_BYTES, QUESTION_DECODING_FACTOR};
use crate::ingress::grpc::unary::{self, GrpcResponse};
use crate::ingress::read::MAX_BODY_BYTES;
use crate::ingress::v2::server;
use crate::pipeline::{self, Call, Payload, Refused, V2Message, V2Payload};
use crate::request::{ConnectionId, CoreError, Ingress, RequestInfo, Route};

/// A method of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    ServerLive,
    ServerReady,
    ServerMetadata,
    Model(V2ModelMethod),
}

/// The service's methods, by path (exact, case-sensitive).
pub fn rpc_of_path(path: &str) -> Option<Rpc> {
    Some(match path.strip_prefix(SERVICE_PREFIX)? {
        "ServerLive" => Rpc::ServerLive,
        "ServerReady" => Rpc::ServerReady,
        "ServerMetadata" => Rpc::ServerMetadata,
        "ModelReady" => Rpc::Model(V2ModelMethod::Ready),
        "ModelMetadata" => Rpc::Model(V2ModelMethod::Metadata),
        "ModelInfer" => Rpc::Model(V2ModelMethod::Infer),
        _ => return None,
    })
}

// Returned once and matched at once: boxing the call would cost every call an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Decoded {
    /// A server-level call, answered.
    Answered(GrpcResponse),
    /// A call for the pipeline, and how its outcome is written.
    Call(pipeline::Decoded, V2GrpcEncoder),
}

pub async fn decode(app: &App, request: hyper::Request<Incoming>) -> Decoded {
    let connection = request.extensions().get::<ConnectionId>().copied();
    let mut info = RequestInfo::from_headers(request.headers(), connection, Instant::now());
    info.client_timeout = call::client_timeout(request.headers());
    let (parts, body) = request.into_parts();
    let refuse = |info, route: Option<Route>, bytes_in, error| {
        let encoder = V2GrpcEncoder::for_route(route.as_ref());
        let refused = Refused { info, ingress: Ingress::V2Grpc, route, bytes_in, error };
        Decoded::Call(Err(Box::new(refused)), encoder)
    };
    let method = match rpc_of_path(parts.uri.path()) {
        Some(Rpc::Model(method)) => method,
        Some(rpc) => return Decoded::Answered(server_call(app, rpc, &parts.headers, body).await),
        None => {
            let path = tfgate_common::echo::quote(parts.uri.path());
            let error = CoreError::new(tonic::Code::Unimplemented, format!("{path} is not served by tfgate"));
            return refuse(info, None, 0, error);
        }
    };
    let tf_method = method.tf_method();
    // What nginx's headers say the call is for, should it be refused before its message says.
    let header_route = call::route_named(&parts.headers, tf_method, None).ok();
    let mut memory = app.memory.reservation();
    let stall = app.config().connections.body_timeout;
    let max = match method {
        V2ModelMethod::Infer => MAX_BODY_BYTES,
        V2ModelMethod::Ready | V2ModelMethod::Metadata => MAX_QUESTION_BYTES,
    };
    let message = match unary::read_message(&parts.headers, body, &mut memory, stall, max).await {
        Ok(message) => message,
        Err(error) => return refuse(info, header_route, 0, error),
    };
    let bytes_in = message.len() as u64;
    match payload(method, &parts.headers, message, &mut memory) {
        Ok((route, payload)) => {
            let encoder = V2GrpcEncoder::for_route(Some(&route));
            Decoded::Call(Ok(Call { info, ingress: Ingress::V2Grpc, route, bytes_in, memory, payload }), encoder)
        }
        Err(error) => refuse(info, header_route, bytes_in, error),
    }
}

fn payload(
    method: V2ModelMethod,
    headers: &HeaderMap,
    message: Bytes,
    memory: &mut Reservation,
) -> Result<(Route, Payload), CoreError> {
    let tf_method = method.tf_method();
    match method {
        V2ModelMethod::Infer => {
            let cost = cost::infer_request(&message)?;
            memory.grow(cost.decoded_bytes)?;
            let request = ModelInferRequest::decode(message).map_err(|e| undecodable(&e))?;
            let route = route(headers, tf_method, "model_name", &request.model_name, &request.model_version)?;
            let message = V2Message { request, decoded_bytes: cost.decoded_bytes, raw_bytes: cost.raw_bytes };
            Ok((route, Payload::V2(V2Payload::Grpc(Box::new(message)))))
        }
        V2ModelMethod::Ready => {
            memory.grow(QUESTION_DECODING_FACTOR * message.len())?;
            let request = ModelReadyRequest::decode(message).map_err(|e| undecodable(&e))?;
            Ok((route(headers, tf_method, "name", &request.name, &request.version)?, Payload::Empty))
        }
        V2ModelMethod::Metadata => {
            memory.grow(QUESTION_DECODING_FACTOR * message.len())?;
            let request = ModelMetadataRequest::decode(message).map_err(|e| undecodable(&e))?;
            Ok((route(headers, tf_method, "name", &request.name, &request.version)?, Payload::Empty))
        }
    }
}

/// The route of a message naming `name` and `version` (a v2 version: digits are a number,
/// anything else a label, empty the catalog's choice), merged with nginx's headers.
fn route(
    headers: &HeaderMap,
    method: tfgate_common::Method,
    field: &'static str,
    name: &str,
    version: &str,
) -> Result<Route, CoreError> {
    let selector = parse_v2_version(version).map_err(|e| CoreError::invalid(e.message))?;
    call::route_named(headers, method, Some(Named { field, model: name, selector }))
}

/// Liveness, readiness and the server's metadata: their (empty) request messages are read, not
/// decoded.
async fn server_call(app: &App, rpc: Rpc, headers: &HeaderMap, body: Incoming) -> GrpcResponse {
    let mut memory = app.memory.reservation();
    let stall = app.config().connections.body_timeout;
    if let Err(error) = unary::read_message(headers, body, &mut memory, stall, MAX_QUESTION_BYTES).await {
        return unary::error(&error, HeaderMap::new());
    }
    let frame = match rpc {
        Rpc::ServerLive => unary::encode(&ServerLiveResponse { live: true }),
        Rpc::ServerReady => unary::encode(&ServerReadyResponse { ready: server::not_ready(app).is_none() }),
        Rpc::ServerMetadata => unary::encode(&server::metadata()),
        Rpc::Model(_) => Err(CoreError::internal("a model method taken for a server one")),
    };
    match frame {
        Ok(frame) => unary::answer(vec![frame], HeaderMap::new()),
        Err(error) => unary::error(&error, HeaderMap::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use tfgate_common::{headers, Method};

    use crate::admission::MemoryBudget;
    use crate::target::VersionRef;

    #[test]
    fn methods_by_exact_path() {
        assert_eq!(rpc_of_path("/inference.GRPCInferenceService/ModelInfer"), Some(Rpc::Model(V2ModelMethod::Infer)));
        assert_eq!(rpc_of_path("/inference.GRPCInferenceService/ServerLive"), Some(Rpc::ServerLive));
        for path in [
            "/inference.GRPCInferenceService/modelinfer",
            "/inference.GRPCInferenceService/ModelStreamInfer",
            "/inference.GRPCInferenceService/RepositoryIndex",
            "/inference.GRPCInferenceService/",
            "/tensorflow.serving.PredictionService/Predict",
        ] {
            assert_eq!(rpc_of_path(path), None, "{path}");
        }
    }

    fn infer(name: &str, version: &str) -> Bytes {
        ModelInferRequest { model_name: name.into(), model_version: version.into(), ..Default::default() }
            .encode_to_vec()
            .into()
    }

    #[test]
    fn the_message_model_merges_with_nginxs_headers_as_a_model_spec_does() {
        let budget = MemoryBudget::new(1 << 20);
        let mut memory = budget.reservation();
        let mut headers = HeaderMap::new();
        // Without nginx: the message says it all.
        let (route, _) = payload(V2ModelMethod::Infer, &headers, infer("m", "3"), &mut memory).unwrap();
        assert_eq!((route.method, route.target.version), (Method::Predict, VersionRef::Number(3)));
        let (route, _) = payload(V2ModelMethod::Infer, &headers, infer("m", "canary"), &mut memory).unwrap();
        assert_eq!(
            (route.target.version, route.requested.as_str()),
            (VersionRef::Label("canary".into()), "label:canary")
        );
        assert!(payload(V2ModelMethod::Infer, &headers, infer("", ""), &mut memory).is_err());
        assert!(payload(V2ModelMethod::Infer, &headers, infer("m", "a/b"), &mut memory).is_err());
        // nginx resolved the model and version: the message must name the same model.
        headers.insert(headers::MODEL, HeaderValue::from_static("m"));
        headers.insert(headers::VERSION, HeaderValue::from_static("7"));
        let (route, _) = payload(V2ModelMethod::Infer, &headers, infer("m", "canary"), &mut memory).unwrap();
        assert_eq!(route.target.version, VersionRef::Number(7));
        let (route, _) = payload(V2ModelMethod::Infer, &headers, infer("", ""), &mut memory).unwrap();
        assert_eq!(route.target.model, "m");
        let Err(e) = payload(V2ModelMethod::Infer, &headers, infer("other", ""), &mut memory) else {
            panic!("accepted")
        };
        assert!(e.client_message().starts_with("model_name \"other\" is not the model"), "{}", e.client_message());
        // ModelReady and ModelMetadata name the model in `name` and `version`.
        let ready = ModelReadyRequest { name: "other".into(), version: String::new() }.encode_to_vec().into();
        let Err(e) = payload(V2ModelMethod::Ready, &headers, ready, &mut memory) else { panic!("accepted") };
        assert!(e.client_message().starts_with("name \"other\""), "{}", e.client_message());
        let metadata = ModelMetadataRequest { name: "m".into(), version: "2".into() }.encode_to_vec().into();
        let (route, decoded) = payload(V2ModelMethod::Metadata, &headers, metadata, &mut memory).unwrap();
        assert_eq!(route.method, Method::Metadata);
        assert!(matches!(decoded, Payload::Empty));
    }
}
