//! Every answer the daemon writes itself is JSON; errors are `{"error": "..."}` like TF
//! Serving's, with the HTTP status TF Serving's REST API gives each gRPC code.

use bytes::Bytes;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use tfgate_common::error_body;
use tfgate_common::error_body::ERROR_CONTENT_TYPE;

use super::body::{full, ResponseBody};
use crate::request::CoreError;

pub type HttpResponse = Response<ResponseBody>;

/// A JSON answer with the given status.
pub fn json_response(status: u16, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ERROR_CONTENT_TYPE));
    response
}

/// The answer to a call that ended in `error`: its status, its message (request values in it
/// clipped), and `Retry-After` / `Allow` when it says.
pub fn error_response(error: &CoreError) -> HttpResponse {
    let mut response = json_response(error.http_status(), error_body(&error.client_message()));
    if let Some(allow) = error.allow {
        response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    }
    if let Some(seconds) = error.retry_after {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_hints() {
        let response = error_response(&CoreError::exhausted("queue full", 2));
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers().get(RETRY_AFTER).unwrap(), "2");
        let response = error_response(&CoreError::wrong_method("no", "POST"));
        assert_eq!((response.status().as_u16(), response.headers()[ALLOW].to_str().unwrap()), (405, "POST"));
    }
}
