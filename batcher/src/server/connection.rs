//! One task per connection, serving HTTP/1.1 with keep-alive, watched for graceful shutdown.
//! Each request runs in a tracing span carrying nginx's request id.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tfgate_common::headers::REQUEST_ID;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info, info_span, warn, Instrument};

use super::healthz;
use crate::app::App;
use crate::rest::{self, HttpResponse};

/// Serves the TF Serving REST API on a connection from nginx. No header read timeout: the peer
/// is nginx over a local socket, and closing its idle keep-alive connections would race with
/// the POSTs it sends on them (which nginx does not retry).
pub fn spawn_api<S>(stream: S, app: Arc<App>, graceful: &GracefulShutdown)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(serve_request(&app, request).await) }
    });
    let connection = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!("connection ended with an error: {e}");
        }
    });
}

pub fn spawn_health<S>(stream: S, app: &App, graceful: &GracefulShutdown)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let metrics = app.metrics.clone();
    let service = service_fn(move |request| healthz::handle(request, metrics.clone()));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!("health connection ended with an error: {e}");
        }
    });
}

async fn serve_request(app: &App, request: Request<Incoming>) -> HttpResponse {
    let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
    let span = info_span!("request", id = %id);
    async move {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let response = rest::handle(app, request).await;
        let status = response.status().as_u16();
        let micros = started.elapsed().as_micros();
        match status {
            500.. => warn!(status, micros, "{method} {path}"),
            400..=499 => info!(status, micros, "{method} {path}"),
            _ => debug!(status, micros, "{method} {path}"),
        }
        response
    }
    .instrument(span)
    .await
}
