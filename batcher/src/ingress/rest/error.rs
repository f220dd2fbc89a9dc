//! Every answer the daemon writes itself is JSON; errors are `{"error": "..."}` like TF Serving's,
//! with the HTTP status TF Serving's REST API gives each gRPC code.

use bytes::Bytes;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use tfgate_common::error_body::ERROR_CONTENT_TYPE;
use tfgate_common::{error_body, PathError};

use super::body::{full, ResponseBody};
use crate::convert::ConvertError;
use crate::request::{Code, CoreError};

pub type HttpResponse = Response<ResponseBody>;

/// A JSON answer with the given status.
pub fn json_response(status: u16, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(full(body));
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
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), allow: None, retry_after: None }
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
        response.extensions_mut().insert(ErrorMessage(self.message));
        response
    }
}

/// The message of an error answer, kept with it for the audit log (whichever handler built
/// the answer: a quota refusal is an answer with headers, not an `Err`).
#[derive(Debug, Clone)]
pub struct ErrorMessage(pub String);

impl From<PathError> for ApiError {
    fn from(e: PathError) -> ApiError {
        ApiError::new(e.status, e.message)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> ApiError {
        ApiError { retry_after: e.retry_after, ..ApiError::new(http_status(e.code), e.message) }
    }
}

impl From<ConvertError> for ApiError {
    fn from(e: ConvertError) -> ApiError {
        CoreError::from(e).into()
    }
}

/// TF Serving's own mapping of gRPC codes to HTTP statuses in its REST API.
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::Unknown => 500,
        Code::InvalidArgument => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists => 409,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::FailedPrecondition => 400,
        Code::Aborted => 409,
        Code::OutOfRange => 400,
        Code::Unimplemented => 501,
        Code::Internal => 500,
        Code::Unavailable => 503,
        Code::DataLoss => 500,
        Code::Unauthenticated => 401,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_like_tf_serving() {
        assert_eq!(http_status(Code::NotFound), 404);
        assert_eq!(http_status(Code::Unavailable), 503);
        assert_eq!(http_status(Code::Cancelled), 499);
        assert_eq!(http_status(Code::ResourceExhausted), 429);
        assert_eq!(http_status(Code::FailedPrecondition), 400);
    }

    #[test]
    fn core_errors_keep_their_retry_hint() {
        let e = ApiError::from(CoreError::exhausted("queue full", 2));
        assert_eq!((e.status, e.retry_after), (429, Some(2)));
        let response = e.into_response();
        assert_eq!(response.headers().get(RETRY_AFTER).unwrap(), "2");
    }
}
