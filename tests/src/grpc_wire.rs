//! A raw HTTP/2 client for the daemon's gRPC socket: requests exactly as a test writes them
//! (any path, content type, several messages, trailers), answers read as they come. What a
//! generated client would never send, and nginx might let through.

use std::collections::VecDeque;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;

/// A gRPC call's answer, raw.
#[derive(Debug)]
pub struct WireAnswer {
    pub http_status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: HeaderMap,
}

impl WireAnswer {
    /// `grpc-status`, from the trailers or (a trailers-only answer) the headers.
    pub fn grpc_status(&self) -> Option<u32> {
        let value = self.trailers.get("grpc-status").or_else(|| self.headers.get("grpc-status"))?;
        value.to_str().ok()?.parse().ok()
    }

    /// `grpc-message`, percent-decoded.
    pub fn grpc_message(&self) -> String {
        let value = self.trailers.get("grpc-message").or_else(|| self.headers.get("grpc-message"));
        let raw = value.map(|v| v.as_bytes()).unwrap_or_default();
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let hex = raw.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match (raw[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'%', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The one message of the answer (its 5-byte prefix removed).
    pub fn message(&self) -> &[u8] {
        self.body.get(5..).unwrap_or_default()
    }
}

/// A request body of data frames, then (optionally) trailers.
struct Frames {
    data: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.data.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

/// `message` as one gRPC frame (uncompressed).
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Sends one request on a new HTTP/2 connection to `socket`: `path`, `headers` (besides
/// `content-type: application/grpc` unless given), `body` as one data frame, `trailers` after.
pub async fn call(
    socket: &Path,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    trailers: &[(&str, &str)],
) -> WireAnswer {
    let stream = UnixStream::connect(socket).await.expect("connect to the daemon's gRPC socket");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let to_map = |pairs: &[(&str, &str)]| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        map
    };
    let trailers = (!trailers.is_empty()).then(|| to_map(trailers));
    let body = Frames { data: VecDeque::from([Bytes::from(body)]), trailers };
    let mut request = hyper::Request::builder().method("POST").uri(format!("http://daemon{path}"));
    let headers = to_map(headers);
    if !headers.contains_key("content-type") {
        request = request.header("content-type", "application/grpc");
    }
    request = request.header("te", "trailers");
    let mut request = request.body(body).expect("request");
    request.headers_mut().extend(headers);
    let response = sender.send_request(request).await.expect("an answer");
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    let mut trailers = HeaderMap::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("the answer's body");
        match frame.into_data() {
            Ok(bytes) => data.extend_from_slice(&bytes),
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = t;
                }
            }
        }
    }
    WireAnswer { http_status: parts.status.as_u16(), headers: parts.headers, body: data.into(), trailers }
}

/// A tonic codec passing message bytes as they are, for calls no generated client would make.
#[derive(Clone, Copy, Default)]
pub struct BytesCodec;

impl tonic::codec::Codec for BytesCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;

    fn encoder(&mut self) -> BytesCodec {
        BytesCodec
    }

    fn decoder(&mut self) -> BytesCodec {
        BytesCodec
    }
}

impl tonic::codec::Encoder for BytesCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for BytesCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}
