//! The TCP side listener (`metrics_listen`): `GET /healthz` answers `ok` while the daemon runs.
//! `/metrics` comes with the batcher; until then it is a 404 like any other path.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tfgate_common::error_body;

use crate::rest::{json_response, HttpResponse};

pub async fn handle<B>(request: Request<B>) -> Result<HttpResponse, Infallible> {
    Ok(match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        (_, "/healthz") => json_response(
            StatusCode::METHOD_NOT_ALLOWED.as_u16(),
            error_body("use GET /healthz"),
        ),
        _ => json_response(
            404,
            error_body("not found: this listener serves GET /healthz"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};

    async fn get(method: Method, path: &str) -> (u16, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = handle(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn healthz_is_ok_and_nothing_else_is_served() {
        assert_eq!(get(Method::GET, "/healthz").await, (200, "ok".to_string()));
        assert_eq!(get(Method::GET, "/metrics").await.0, 404);
        assert_eq!(get(Method::POST, "/healthz").await.0, 405);
    }
}
