//! A unary gRPC call on the wire (HTTP/2 from nginx's `grpc_pass`): the request's one message,
//! read within the memory budget; the answer as one message then `grpc-status` in the
//! trailers, or an error as a trailers-only answer.
//!
//! tonic's server machinery is not used for requests: it merges a request's trailers into its
//! metadata (where the trusted `x-tfgate-*` fields are), and decodes and drops any message
//! after the first. Here the trusted fields come from the headers only, a call carries exactly
//! one uncompressed message, and what decoding it will cost is known before it is decoded.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tonic::{Code, Status};

use crate::admission::Reservation;
use crate::ingress::read::read_body;
use crate::request::CoreError;

pub type GrpcResponse = Response<tonic::body::Body>;

/// The one message of a call's body (its 5-byte prefix removed).
pub async fn read_message(
    headers: &HeaderMap,
    body: Incoming,
    memory: &mut Reservation,
    stall: Duration,
    max: usize,
) -> Result<Bytes, CoreError> {
    if !is_grpc(headers.get(CONTENT_TYPE)) {
        let error = CoreError::invalid("the request's content-type is not application/grpc");
        return Err(error.with_http_status(415));
    }
    if headers.get("grpc-encoding").is_some_and(|e| e.as_bytes() != b"identity") {
        return Err(compressed());
    }
    let body = read_body(body, None, memory, stall, max.saturating_add(5)).await?;
    let Some(prefix) = body.get(..5) else {
        return Err(CoreError::invalid("the request has no complete gRPC message"));
    };
    match prefix[0] {
        0 => {}
        1 => return Err(compressed()),
        _ => return Err(CoreError::invalid("the request body is not a gRPC message")),
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if len > max {
        return Err(CoreError::too_large(format!("request message of {len} bytes, more than {max}")));
    }
    match (body.len() - 5).cmp(&len) {
        std::cmp::Ordering::Less => Err(CoreError::invalid("the request has no complete gRPC message")),
        std::cmp::Ordering::Greater => {
            Err(CoreError::invalid("a unary call carries one request message; this one has more"))
        }
        std::cmp::Ordering::Equal => Ok(body.slice(5..)),
    }
}

/// `application/grpc`, or one of its forms (`application/grpc+proto`, with parameters).
fn is_grpc(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.map(HeaderValue::as_bytes) else { return false };
    let Some(rest) = value.strip_prefix(b"application/grpc") else { return false };
    rest.is_empty() || rest.starts_with(b"+") || rest.starts_with(b";")
}

fn compressed() -> CoreError {
    CoreError::new(Code::Unimplemented, "compressed requests (grpc-encoding) are not supported; send them uncompressed")
}

/// A message on the wire: the prefix written before the encoded message, without a copy.
///
/// Into a `Vec`, not a `BytesMut`: prost writes a packed `float_val` one value at a time, and
/// `Vec`'s writes inline where `BytesMut`'s are a call each (an image-sized answer encoded 5
/// times faster).
pub fn encode<M: prost::Message>(message: &M) -> Result<Bytes, CoreError> {
    let len = message.encoded_len();
    let prefix = frame_prefix(len)?;
    let mut out = Vec::with_capacity(5 + len);
    out.extend_from_slice(&prefix);
    message.encode(&mut out).map_err(|e| CoreError::internal(format!("the answer does not encode: {e}")))?;
    Ok(Bytes::from(out))
}

/// The 5-byte prefix of an uncompressed message of `len` bytes.
pub fn frame_prefix(len: usize) -> Result<[u8; 5], CoreError> {
    if len > crate::backend::MAX_MESSAGE_BYTES {
        return Err(CoreError::too_large(format!("an answer of {len} bytes, more than a gRPC message may hold here")));
    }
    let [a, b, c, d] = (len as u32).to_be_bytes();
    Ok([0, a, b, c, d])
}

/// The answer: `frames` (one message, possibly in pieces), then `grpc-status: 0`; `metadata`
/// goes with the headers.
pub fn answer(frames: Vec<Bytes>, metadata: HeaderMap) -> GrpcResponse {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Unary { frames: frames.into(), trailers: Some(trailers) };
    let mut response = Response::new(tonic::body::Body::new(body));
    response.headers_mut().extend(metadata);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// An error as a trailers-only answer (its status, message, `retry-after` and `metadata` in
/// the headers); a request that is not gRPC at all gets HTTP 415, as gRPC prescribes.
pub fn error(error: &CoreError, metadata: HeaderMap) -> GrpcResponse {
    let mut status = Status::new(error.code, error.client_message());
    if let Some(seconds) = error.retry_after {
        status.metadata_mut().as_mut().insert("retry-after", HeaderValue::from(seconds));
    }
    status.metadata_mut().as_mut().extend(metadata);
    let mut response = status.into_http();
    if error.http == Some(415) {
        *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    response
}

/// A body of data frames, then trailers.
struct Unary {
    frames: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for Unary {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|trailers| Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_grpc_content_types_are_grpc() {
        let is = |v: &str| is_grpc(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(is("application/grpc") && is("application/grpc+proto") && is("application/grpc;charset=x"));
        assert!(!is("application/grpcx") && !is("application/json") && !is_grpc(None));
    }

    #[test]
    fn answers_are_framed() {
        let frame =
            encode(&tfgate_proto::tensorflow::serving::ModelSpec { name: "m".into(), ..Default::default() }).unwrap();
        assert_eq!(&frame[..5], &[0, 0, 0, 0, 3]);
        assert_eq!(&frame[5..], &[0x0a, 1, b'm']);
        let response = error(&CoreError::exhausted("busy", 3), HeaderMap::new());
        assert_eq!(response.headers()["grpc-status"], "8");
        assert_eq!(response.headers()["retry-after"], "3");
    }
}
