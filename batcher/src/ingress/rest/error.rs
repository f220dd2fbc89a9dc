//! Every answer the daemon writes itself is JSON; errors are `{"error": "..."}` like TF Serving's.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use tfgate_common::error_body::ERROR_CONTENT_TYPE;
use tfgate_common::{error_body, PathError};

use crate::backend::BackendError;
use crate::convert::{Blame, ConvertError};

pub type HttpResponse = Response<Full<Bytes>>;

/// A JSON answer with the given status.
pub fn json_response(status: u16, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ERROR_CONTENT_TYPE));
    response
}

/// A request that ends in an error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// For 405: the method the path is served under.
    pub allow: Option<&'static str>,
    /// For 429/503: seconds after which a retry is worth it.
    pub retry_after: Option<u32>,
    /// The gRPC code when TF Serving (or the call to it) failed.
    pub grpc_code: Option<tonic::Code>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), allow: None, retry_after: None, grpc_code: None }
    }

    pub fn with_retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    pub fn into_response(self) -> HttpResponse {
        let mut response = json_response(self.status, error_body(&self.message));
        if let Some(allow) = self.allow {
            response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<PathError> for ApiError {
    fn from(e: PathError) -> ApiError {
        ApiError::new(e.status, e.message)
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> ApiError {
        ApiError { grpc_code: Some(e.code), ..ApiError::new(e.status, e.message) }
    }
}

impl From<ConvertError> for ApiError {
    fn from(e: ConvertError) -> ApiError {
        let status = match e.blame {
            Blame::Request => 400,
            Blame::Backend => 500,
        };
        ApiError::new(status, e.message)
    }
}
