//! A REST request into the core's call: its route (the path, nginx's trusted headers), its
//! body read within the memory budget, and its payload (a Predict body is read into tensors by
//! the pipeline, once the model's signature is known).

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Body;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Request};
use serde::de::IgnoredAny;
use serde::Deserialize;
use tfgate_common::Method;

use super::route::route;
use crate::admission::Reservation;
use crate::app::App;
use crate::ingress::read::{read_body, MAX_BODY_BYTES};
use crate::pipeline::{Call, Decoded, Forward, Payload, Refused};
use crate::request::{ConnectionId, CoreError, Ingress, RequestInfo, Route};

pub async fn decode<B>(app: &App, request: Request<B>) -> Decoded
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let connection = request.extensions().get::<ConnectionId>().copied();
    let mut info = RequestInfo::from_headers(request.headers(), connection, Instant::now());
    let refuse =
        |info, route, bytes_in, error| Err(Box::new(Refused { info, ingress: Ingress::Rest, route, bytes_in, error }));
    let route = match route(request.method(), request.uri().path(), request.headers()) {
        Ok(route) => route,
        Err(error) => return refuse(info, None, 0, error),
    };
    match request_timeout(request.headers()) {
        Ok(timeout) => info.client_timeout = timeout,
        Err(error) => return refuse(info, Some(route), 0, error),
    }
    let (parts, body) = request.into_parts();
    let mut memory = app.memory.reservation();
    let body = match read_whole_body(app, &parts.headers, body, &mut memory).await {
        Ok(body) => body,
        Err(error) => return refuse(info, Some(route), 0, error),
    };
    let bytes_in = body.len() as u64;
    let payload = match payload(&route, &parts.headers, body) {
        Ok(payload) => payload,
        Err(error) => return refuse(info, Some(route), bytes_in, error),
    };
    Ok(Call { info, ingress: Ingress::Rest, route, bytes_in, memory, payload })
}

fn payload(route: &Route, headers: &HeaderMap, body: Bytes) -> Result<Payload, CoreError> {
    Ok(match route.method {
        Method::Predict => Payload::Json(body),
        Method::Status | Method::Metadata => Payload::Empty,
        Method::Classify | Method::Regress | Method::MultiInference => {
            let count = example_count(&body).ok_or_else(|| {
                CoreError::invalid("the request body must be a JSON object with at most one \"examples\" list")
            })?;
            Payload::Examples {
                count,
                forward: Forward::Rest { content_type: headers.get(CONTENT_TYPE).cloned(), body },
            }
        }
    })
}

/// The caller's deadline, `Request-Timeout: SECONDS` (decimal, as `grpc-timeout` is for gRPC).
pub(in crate::ingress) fn request_timeout(headers: &HeaderMap) -> Result<Option<Duration>, CoreError> {
    let Some(value) = headers.get(REQUEST_TIMEOUT) else { return Ok(None) };
    let seconds = value.to_str().ok().and_then(|v| v.trim().parse::<f64>().ok());
    match seconds {
        Some(s) if s.is_finite() && s > 0.0 && s <= MAX_REQUEST_TIMEOUT_S => Ok(Some(Duration::from_secs_f64(s))),
        _ => Err(CoreError::invalid(format!(
            "Request-Timeout must be a number of seconds, more than 0 and at most {MAX_REQUEST_TIMEOUT_S}"
        ))),
    }
}

const REQUEST_TIMEOUT: &str = "request-timeout";
/// A day: far beyond any model's `timeout_ms`, which bounds the deadline anyway.
const MAX_REQUEST_TIMEOUT_S: f64 = 86_400.0;

/// A request's body, read whole within the memory budget and `body_timeout` (even for GET, so
/// that the keep-alive connection stays usable).
pub(crate) async fn read_whole_body<B>(
    app: &App,
    headers: &HeaderMap,
    body: B,
    memory: &mut Reservation,
) -> Result<Bytes, CoreError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let stall = app.config().connections.body_timeout;
    read_body(body, declared_length(headers), memory, stall, MAX_BODY_BYTES).await
}

/// The body's announced `Content-Length` (nginx always sends one).
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok())
}

/// The rows of a classify or regress request: its `examples`; `None` when the body is not a
/// JSON object whose `examples` (if any) is a list, once. Such a body is refused rather than
/// counted as nothing: TF Serving's parser may take what serde refuses (a repeated
/// `"examples"` key) and would then run examples no quota counted.
fn example_count(body: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Examples {
        #[serde(default)]
        examples: Vec<IgnoredAny>,
    }
    serde_json::from_slice::<Examples>(body).ok().map(|parsed| parsed.examples.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timeouts_are_decimal_seconds() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(REQUEST_TIMEOUT, value.parse().unwrap());
            request_timeout(&headers)
        };
        assert_eq!(request_timeout(&HeaderMap::new()), Ok(None));
        assert_eq!(with("1.5"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(with(" 2 "), Ok(Some(Duration::from_secs(2))));
        for bad in ["0", "-1", "x", "NaN", "inf", "100000"] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn examples_are_counted_as_rows() {
        assert_eq!(example_count(br#"{"examples": [{"x": 1}, {"x": [2, 3]}], "context": {"y": 1}}"#), Some(2));
        assert_eq!(example_count(br#"{"signature_name": "s"}"#), Some(0));
        assert_eq!(example_count(b"not json"), None);
        assert_eq!(example_count(br#"{"examples": [], "examples": [{"x": 1}]}"#), None, "a repeated key");
    }
}
