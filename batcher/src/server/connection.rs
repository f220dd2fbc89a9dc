//! One task per connection, serving HTTP/1.1 with keep-alive, watched for graceful shutdown.
//! Each request runs in a tracing span carrying nginx's request id.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tfgate_common::headers::REQUEST_ID;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, info_span, warn, Instrument};

use super::healthz;
use crate::app::App;
use crate::ingress::rest::{self, HttpResponse};
use crate::observe::Metrics;

/// How long a `metrics_listen` client may take to send a request's headers (and how long an
/// idle keep-alive connection stays): unlike nginx, anyone who can reach that TCP port may
/// connect, and a half-sent request would otherwise hold a file descriptor for ever.
pub const HEALTH_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most `metrics_listen` connections open at once; more are closed as soon as accepted.
pub const MAX_HEALTH_CONNECTIONS: usize = 64;

/// The connection slots of `metrics_listen`.
pub fn health_slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_HEALTH_CONNECTIONS))
}

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

/// Serves `/metrics` and `/healthz`, if one of `slots` is free (else the stream is dropped,
/// which closes it).
pub fn spawn_health<S>(stream: S, app: &App, graceful: &GracefulShutdown, slots: &Arc<Semaphore>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        warn!("metrics_listen: {MAX_HEALTH_CONNECTIONS} connections already open; closing a new one");
        return;
    };
    serve_health(stream, app.metrics.clone(), graceful, slot, HEALTH_HEADER_TIMEOUT);
}

fn serve_health<S>(
    stream: S,
    metrics: Arc<Metrics>,
    graceful: &GracefulShutdown,
    slot: OwnedSemaphorePermit,
    header_timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| healthz::handle(request, metrics.clone()));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!("health connection ended with an error: {e}");
        }
        drop(slot);
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_half_sent_request_is_closed_after_the_header_timeout() {
        let (mut client, server) = tokio::io::duplex(4096);
        let graceful = GracefulShutdown::new();
        let slots = health_slots();
        let slot = slots.clone().try_acquire_owned().unwrap();
        serve_health(server, Arc::new(Metrics::default()), &graceful, slot, Duration::from_millis(200));
        client.write_all(b"GET /metr").await.unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "connection still open after 5 s");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        // The slot comes back once the connection is gone.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(slots.available_permits(), MAX_HEALTH_CONNECTIONS);
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_closed() {
        let slots = Arc::new(Semaphore::new(0));
        let app = App::new(
            crate::config::Config::parse(
                "listen = \"/tmp/x.sock\"\n[backend]\ngrpc = [\"http://127.0.0.1:1\"]\nhealth_interval_ms = 0\n",
            )
            .unwrap(),
        );
        let (mut client, server) = tokio::io::duplex(4096);
        spawn_health(server, &app, &GracefulShutdown::new(), &slots);
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(1), client.read_to_end(&mut answer)).await;
        assert!(matches!(read, Ok(Ok(0))), "{read:?}");
    }
}
