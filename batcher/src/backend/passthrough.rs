//! Classify and Regress go to TF Serving's REST API unchanged: they take `tf.Example`s, which
//! the daemon neither batches nor converts. Plain HTTP/1.1, one connection per request (these
//! calls are rare next to Predict; pooling can come with the gRPC pool).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{deadline, malformed};
use crate::request::CoreError;

/// Largest answer accepted from the REST backend.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// What the REST backend answered.
pub struct PassthroughAnswer {
    pub status: u16,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

pub struct RestPassthrough {
    /// `host:port` to connect to.
    address: String,
    /// `http://host:port`, for messages.
    base: String,
}

impl RestPassthrough {
    /// `base` is a checked `http://host[:port]` URL (see config).
    pub fn new(base: &Uri) -> RestPassthrough {
        let host = base.host().unwrap_or_default();
        let port = base.port_u16().unwrap_or(80);
        let address = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        RestPassthrough { base: format!("http://{address}"), address }
    }

    /// POSTs `body` to `path` (a canonical TF Serving REST path) and returns the answer as is.
    pub async fn forward(
        &self,
        path: &str,
        content_type: Option<&HeaderValue>,
        body: Bytes,
        timeout: Duration,
    ) -> Result<PassthroughAnswer, CoreError> {
        match tokio::time::timeout(timeout, self.exchange(path, content_type, body)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(deadline(&self.base, timeout)),
        }
    }

    async fn exchange(
        &self,
        path: &str,
        content_type: Option<&HeaderValue>,
        body: Bytes,
    ) -> Result<PassthroughAnswer, CoreError> {
        let unreachable = |e: &dyn std::fmt::Display| {
            CoreError::unavailable(format!("TF Serving REST at {} is unreachable: {e}", self.base))
        };
        let stream = TcpStream::connect(&self.address).await.map_err(|e| unreachable(&e))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| unreachable(&e))?;
        tokio::spawn(async move {
            // Ends when the exchange is over or the peer hangs up; errors surface on the request.
            let _ = connection.await;
        });
        let mut request = Request::post(path).header(HOST, &self.address[..]);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let request =
            request.body(Full::new(body)).map_err(|e| malformed(format!("cannot build the REST request: {e}")))?;
        let response = sender.send_request(request).await.map_err(|e| unreachable(&e))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| malformed(format!("cannot read the answer of TF Serving REST at {}: {e}", self.base)))?
            .to_bytes();
        Ok(PassthroughAnswer {
            status: parts.status.as_u16(),
            content_type: parts.headers.get(CONTENT_TYPE).cloned(),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_port_80() {
        let p = RestPassthrough::new(&"http://tfs:8501".parse().unwrap());
        assert_eq!(p.address, "tfs:8501");
        let p = RestPassthrough::new(&"http://tfs".parse().unwrap());
        assert_eq!(p.address, "tfs:80");
        let p = RestPassthrough::new(&"http://[::1]:8501/".parse().unwrap());
        assert_eq!(p.address, "[::1]:8501");
    }
}
