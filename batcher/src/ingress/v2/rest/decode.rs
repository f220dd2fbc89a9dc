//! A v2 REST request into the core's call: its path (the grammar shared with the nginx module,
//! case-sensitive), its route (the path, nginx's trusted headers), its body read within the
//! memory budget, and its payload (an inference body is read into tensors by the pipeline,
//! once the model's signature is known). Server-level paths are answered here.

use std::time::Instant;

use bytes::Bytes;
use hyper::body::Body;
use hyper::header::{HeaderValue, CONTENT_ENCODING};
use hyper::{HeaderMap, Request, Response, StatusCode};
use tfgate_common::echo::quote;
use tfgate_common::{parse_v2_path, parse_version_list, PathError, V2ModelMethod, V2ModelPath, V2Path};

use super::encode::V2RestEncoder;
use crate::admission::Reservation;
use crate::app::App;
use crate::convert::v2_json::{split_binary_body, HEADER_LENGTH_HEADER};
use crate::ingress::rest::body::full;
use crate::ingress::rest::decode::{read_whole_body, request_timeout};
use crate::ingress::rest::error::{error_response, json_response};
use crate::ingress::rest::HttpResponse;
use crate::ingress::v2::server;
use crate::pipeline::{self, Call, Payload, Refused, V2Payload};
use crate::request::header_names;
use crate::request::status::code_of_http_status;
use crate::request::{requested_version, ConnectionId, CoreError, Ingress, RequestInfo, Route};
use crate::target::{ModelTarget, VersionRef};

// Returned once and matched at once: boxing the call would cost every call an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Decoded {
    /// A server-level call, answered.
    Answered(HttpResponse),
    /// A call for the pipeline, and how its outcome is written.
    Call(pipeline::Decoded, V2RestEncoder),
}

pub async fn decode<B>(app: &App, request: Request<B>) -> Decoded
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let connection = request.extensions().get::<ConnectionId>().copied();
    let mut info = RequestInfo::from_headers(request.headers(), connection, Instant::now());
    let refuse = |info, route: Option<Route>, bytes_in, error| {
        let encoder = V2RestEncoder::for_route(route.as_ref());
        let refused = Refused { info, ingress: Ingress::V2Rest, route, bytes_in, error };
        Decoded::Call(Err(Box::new(refused)), encoder)
    };
    let path = match parse_v2_path(request.uri().path().as_bytes()) {
        Ok(path) => path,
        Err(error) => return refuse(info, None, 0, path_error(error)),
    };
    let expected = path.http_method();
    if request.method().as_str() != expected {
        let message = format!(
            "{} is served for {expected} requests only, not {}",
            path.as_str(),
            quote(request.method().as_str())
        );
        return refuse(info, None, 0, CoreError::wrong_method(message, expected));
    }
    let model = match path {
        V2Path::Model(model) => model,
        server_path => return Decoded::Answered(server_call(app, server_path, request).await),
    };
    let route = route(&model, request.headers());
    match request_timeout(request.headers()) {
        Ok(timeout) => info.client_timeout = timeout,
        Err(error) => return refuse(info, Some(route), 0, error),
    }
    if model.method == V2ModelMethod::Infer {
        if let Err(error) = check_encoding(request.headers()) {
            return refuse(info, Some(route), 0, error);
        }
    }
    let (parts, body) = request.into_parts();
    let mut memory = app.memory.reservation();
    let body = match read_whole_body(app, &parts.headers, body, &mut memory).await {
        Ok(body) => body,
        Err(error) => return refuse(info, Some(route), 0, error),
    };
    let bytes_in = body.len() as u64;
    let payload = match payload(model.method, &parts.headers, body) {
        Ok(payload) => payload,
        Err(error) => return refuse(info, Some(route), bytes_in, error),
    };
    let encoder = V2RestEncoder::for_route(Some(&route));
    Decoded::Call(Ok(Call { info, ingress: Ingress::V2Rest, route, bytes_in, memory, payload }), encoder)
}

/// The model's route, as TF Serving's REST paths get theirs: the path names the model, nginx
/// resolved the version (labels, defaults, splits) into `X-Tfgate-Version`. The catalog treats
/// each v2 operation as its TF one (an inference is a Predict).
fn route(model: &V2ModelPath, headers: &HeaderMap) -> Route {
    let trusted_version = headers.get(header_names::VERSION).map(|v| v.as_bytes());
    let exposed_versions =
        headers.get(header_names::VERSIONS).and_then(|v| parse_version_list(v.as_bytes())).unwrap_or_default();
    Route {
        method: model.method.tf_method(),
        requested: requested_version(&model.selector, headers),
        target: ModelTarget {
            model: model.model.clone(),
            version: VersionRef::resolve(trusted_version, &model.selector),
        },
        exposed_versions,
    }
}

fn payload(method: V2ModelMethod, headers: &HeaderMap, body: Bytes) -> Result<Payload, CoreError> {
    if method != V2ModelMethod::Infer {
        return Ok(Payload::Empty);
    }
    let header_len = match headers.get(HEADER_LENGTH_HEADER) {
        None => None,
        Some(value) => Some(split_binary_body(&body, value.as_bytes())?.0.len()),
    };
    Ok(Payload::V2(V2Payload::Rest { body, header_len }))
}

/// Request bodies are read as sent: a compressed one is refused (415) rather than misread.
fn check_encoding(headers: &HeaderMap) -> Result<(), CoreError> {
    match headers.get(CONTENT_ENCODING).map(HeaderValue::as_bytes) {
        None => Ok(()),
        Some(value) if value.eq_ignore_ascii_case(b"identity") => Ok(()),
        Some(_) => Err(CoreError::invalid(
            "compressed request bodies (Content-Encoding) are not supported; send them uncompressed",
        )
        .with_http_status(415)),
    }
}

/// A path the grammar refuses, with the status the grammar gives it.
fn path_error(PathError { status, message }: PathError) -> CoreError {
    CoreError::new(code_of_http_status(status), message).with_http_status(status)
}

/// Liveness, readiness and the server's metadata; the body is read (and dropped) first, so the
/// keep-alive connection stays usable.
async fn server_call<B>(app: &App, path: V2Path, request: Request<B>) -> HttpResponse
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let (parts, body) = request.into_parts();
    let mut memory: Reservation = app.memory.reservation();
    if let Err(error) = read_whole_body(app, &parts.headers, body, &mut memory).await {
        return error_response(&error);
    }
    match path {
        V2Path::ServerLive => empty(StatusCode::OK),
        V2Path::ServerReady => match server::not_ready(app) {
            None => empty(StatusCode::OK),
            Some(why) => error_response(&CoreError::unavailable(why)),
        },
        V2Path::ServerMetadata => json_response(200, server::metadata_json()),
        V2Path::Model(_) => error_response(&CoreError::internal("a model path taken for a server one")),
    }
}

/// The protocol's answer that says yes: the status alone.
fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfgate_common::headers;
    use tfgate_common::{Method, VersionSelector};

    fn model(path: &str) -> V2ModelPath {
        match parse_v2_path(path.as_bytes()).unwrap() {
            V2Path::Model(model) => model,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn routes_like_tf_serving_paths() {
        let mut headers = HeaderMap::new();
        let r = route(&model("/v2/models/m/infer"), &headers);
        assert_eq!(
            (r.method, r.target.version.clone(), r.requested.as_str()),
            (Method::Predict, VersionRef::Latest, "latest")
        );
        headers.insert(headers::VERSION, HeaderValue::from_static("7"));
        headers.insert(headers::LABEL, HeaderValue::from_static("canary"));
        let r = route(&model("/v2/models/m/versions/canary/ready"), &headers);
        assert_eq!(
            (r.method, r.target.version, r.requested.as_str()),
            (Method::Status, VersionRef::Number(7), "label:canary")
        );
        let path = model("/v2/models/m/versions/3");
        assert_eq!(path.selector, VersionSelector::Number(3));
        assert_eq!(route(&path, &HeaderMap::new()).method, Method::Metadata);
    }

    #[test]
    fn binary_bodies_are_split_where_the_header_says() {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_LENGTH_HEADER, HeaderValue::from_static("2"));
        let Payload::V2(V2Payload::Rest { header_len, .. }) =
            payload(V2ModelMethod::Infer, &headers, Bytes::from_static(b"{}abc")).unwrap()
        else {
            panic!("not a v2 payload")
        };
        assert_eq!(header_len, Some(2));
        headers.insert(HEADER_LENGTH_HEADER, HeaderValue::from_static("9"));
        assert!(payload(V2ModelMethod::Infer, &headers, Bytes::from_static(b"{}")).is_err());
        headers.insert(HEADER_LENGTH_HEADER, HeaderValue::from_static("-1"));
        assert!(payload(V2ModelMethod::Infer, &headers, Bytes::from_static(b"{}")).is_err());
        assert!(matches!(payload(V2ModelMethod::Ready, &headers, Bytes::new()), Ok(Payload::Empty)));
    }

    #[test]
    fn compressed_bodies_are_refused() {
        let mut headers = HeaderMap::new();
        assert!(check_encoding(&headers).is_ok());
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(check_encoding(&headers).unwrap_err().http_status(), 415);
    }
}
