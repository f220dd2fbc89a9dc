//! The TCP side listener (`metrics_listen`): `GET /healthz` answers `ok` while the daemon runs
//! (200, so that a liveness probe never restarts it for a backend's fault), followed by a line
//! per problem an operator should know of (a TF Serving target whose TLS handshake fails, the
//! quota store refusing the daemon's credentials); `GET /metrics` answers the Prometheus text
//! format.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tfgate_common::error_body;

use crate::ingress::rest::{json_response, HttpResponse};
use crate::metrics::Metrics;

/// The problems to list under `ok`, one sentence each.
pub type Problems = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

pub async fn handle<B>(
    request: Request<B>,
    metrics: Arc<Metrics>,
    problems: Problems,
) -> Result<HttpResponse, Infallible> {
    Ok(match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => {
            let mut body = String::from("ok");
            for problem in problems() {
                body.push('\n');
                body.push_str(&problem);
            }
            text(Bytes::from(body), "text/plain")
        }
        (&Method::GET | &Method::HEAD, "/metrics") => {
            text(Bytes::from(metrics.render()), "text/plain; version=0.0.4; charset=utf-8")
        }
        (_, "/healthz" | "/metrics") => json_response(StatusCode::METHOD_NOT_ALLOWED.as_u16(), error_body("use GET")),
        _ => json_response(404, error_body("not found: this listener serves GET /healthz and GET /metrics")),
    })
}

fn text(body: Bytes, content_type: &'static str) -> HttpResponse {
    let mut response = Response::new(crate::ingress::rest::body::full(body));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};

    async fn get(method: Method, path: &str) -> (u16, String) {
        let request = Request::builder().method(method).uri(path).body(Empty::<Bytes>::new()).unwrap();
        let metrics = Arc::new(Metrics::default());
        metrics.batches.inc(&["m", "full"]);
        let problems: Problems = match path {
            "/healthz-problem" => Arc::new(|| vec!["backend https://t:1: TLS: expired".to_string()]),
            _ => Arc::new(Vec::new),
        };
        let path = path.trim_end_matches("-problem");
        let request =
            Request::builder().method(request.method().clone()).uri(path).body(Empty::<Bytes>::new()).unwrap();
        let response = handle(request, metrics, problems).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn healthz_and_metrics() {
        assert_eq!(get(Method::GET, "/healthz").await, (200, "ok".to_string()));
        let with_problem = (200, "ok\nbackend https://t:1: TLS: expired".to_string());
        assert_eq!(get(Method::GET, "/healthz-problem").await, with_problem);
        let (status, metrics) = get(Method::GET, "/metrics").await;
        assert_eq!(status, 200);
        assert!(metrics.contains("tfgate_batches_total{model=\"m\",reason=\"full\"} 1"), "{metrics}");
        assert_eq!(get(Method::POST, "/healthz").await.0, 405);
        assert_eq!(get(Method::GET, "/other").await.0, 404);
    }
}
