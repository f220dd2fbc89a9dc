//! One task per connection, serving HTTP/1.1 with keep-alive, watched for graceful shutdown.
//! Each request runs in a tracing span carrying nginx's request id.
//!
//! API connections (from nginx) are limited in number, closed after `idle_timeout` without a
//! complete request, and told `Connection: close` once the daemon is draining. Health
//! connections (`metrics_listen`, reachable by anyone who can reach the port) have a short
//! header timeout and a cap at which the oldest connection makes room for the newest, so a
//! client holding connections cannot keep a health probe out.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, OwnedSemaphorePermit};
use tracing::{debug, info, info_span, warn, Instrument};

use super::healthz;
use crate::app::App;
use crate::backend::{CONNECTION_WINDOW_BYTES, STREAM_WINDOW_BYTES};
use crate::ingress::rest::{self, HttpResponse};
use crate::ingress::{grpc, v2};
use crate::log_limit::LogLimit;
use crate::metrics::Metrics;
use crate::request::{header_names, ConnectionId};

/// How long a `metrics_listen` client may take to send a request's headers (and how long an
/// idle keep-alive connection stays).
pub const HEALTH_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Most `metrics_listen` connections open at once; beyond, the oldest is closed.
pub const MAX_HEALTH_CONNECTIONS: usize = 64;

/// Set once a shutdown signal came: answers then carry `Connection: close`, so nginx does not
/// send more requests on connections about to close.
#[derive(Default)]
pub struct Draining(AtomicBool);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

/// Most request headers accepted on an API connection.
pub const MAX_HEADERS: usize = 1024;

/// Serves the REST APIs (TF Serving's, and the Open Inference Protocol's under `/v2`) on a
/// connection from nginx; `slot` is its place under `max_connections`, held until it closes.
pub fn spawn_api<S>(
    stream: S,
    app: Arc<App>,
    graceful: &GracefulShutdown,
    draining: Arc<Draining>,
    slot: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection_id = ConnectionId(CONNECTIONS.fetch_add(1, Ordering::Relaxed));
    let idle_timeout = app.config().connections.idle_timeout;
    let service = service_fn(move |mut request: Request<Incoming>| {
        let (app, draining) = (app.clone(), draining.clone());
        request.extensions_mut().insert(connection_id);
        async move {
            let mut response = serve_request(&app, request).await;
            if draining.is_on() {
                response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        // nginx passes on every client header: allow far more than hyper's 100, whose refusal
        // (431) has no JSON body.
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!("connection ended with an error: {e}");
        }
        drop(slot);
    });
}

/// Serves the gRPC APIs (TF Serving's, and `inference.GRPCInferenceService`) on a connection
/// from nginx's `grpc_pass`; `slot` is its place under `max_connections`, held until it closes.
pub fn spawn_grpc<S>(stream: S, app: Arc<App>, graceful: &GracefulShutdown, slot: OwnedSemaphorePermit)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection_id = ConnectionId(CONNECTIONS.fetch_add(1, Ordering::Relaxed));
    let service = service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(connection_id);
        let app = app.clone();
        let id =
            request.headers().get(header_names::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
        let span = info_span!("grpc", id = %id);
        async move {
            if v2::is_grpc_path(request.uri().path()) {
                v2::grpc::serve(app, request).await
            } else {
                grpc::serve(app, request).await
            }
        }
        .instrument(span)
    });
    // nginx sends 16 KiB frames whatever the daemon allows, but never beyond the window.
    let connection = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_header_list_size(256 << 10)
        .serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!("gRPC connection ended with an error: {e}");
        }
        drop(slot);
    });
}

/// The open `metrics_listen` connections, oldest first, each with the means to close it.
pub struct HealthSlots {
    open: Mutex<VecDeque<(u64, oneshot::Sender<()>)>>,
    cap: usize,
    next_id: AtomicU64,
    evictions: Mutex<LogLimit>,
}

impl HealthSlots {
    pub fn new(cap: usize) -> Arc<HealthSlots> {
        Arc::new(HealthSlots {
            open: Mutex::new(VecDeque::new()),
            cap,
            next_id: AtomicU64::new(0),
            evictions: Mutex::new(LogLimit::new(Duration::from_secs(10))),
        })
    }

    /// A place for a new connection: the oldest one is closed if all are taken.
    fn admit(&self) -> (u64, oneshot::Receiver<()>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (close, closed) = oneshot::channel();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.cap {
            if let Some((_, oldest)) = open.pop_front() {
                let _ = oldest.send(());
                let limit = self.evictions.lock().unwrap_or_else(|e| e.into_inner()).event(Instant::now());
                if let Some(more) = limit {
                    warn!(
                        "metrics_listen: {} connections open; closed the oldest ({more} more since the last warning)",
                        self.cap
                    );
                }
            }
        }
        open.push_back((id, close));
        (id, closed)
    }

    fn release(&self, id: u64) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).retain(|(open, _)| *open != id);
    }
}

/// Serves `/metrics` and `/healthz`.
pub fn spawn_health<S>(stream: S, app: &Arc<App>, graceful: &GracefulShutdown, slots: &Arc<HealthSlots>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let problems_of = app.clone();
    let problems: healthz::Problems = Arc::new(move || problems_of.problems());
    serve_health(stream, app.metrics.clone(), problems, graceful, slots.clone(), HEALTH_HEADER_TIMEOUT);
}

fn serve_health<S>(
    stream: S,
    metrics: Arc<Metrics>,
    problems: healthz::Problems,
    graceful: &GracefulShutdown,
    slots: Arc<HealthSlots>,
    header_timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (id, closed) = slots.admit();
    let service = service_fn(move |request| healthz::handle(request, metrics.clone(), problems.clone()));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        tokio::select! {
            ended = connection => {
                if let Err(e) = ended {
                    debug!("health connection ended with an error: {e}");
                }
            }
            _ = closed => debug!("health connection closed to make room"),
        }
        slots.release(id);
    });
}

async fn serve_request(app: &App, request: Request<Incoming>) -> HttpResponse {
    let id = request.headers().get(header_names::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
    let span = info_span!("request", id = %id);
    async move {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let response = if v2::is_rest_path(request.uri().path()) {
            v2::rest::handle(app, request).await
        } else {
            rest::handle(app, request).await
        };
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
        let slots = HealthSlots::new(MAX_HEALTH_CONNECTIONS);
        serve_health(
            server,
            Arc::new(Metrics::default()),
            Arc::new(Vec::new),
            &graceful,
            slots.clone(),
            Duration::from_millis(200),
        );
        client.write_all(b"GET /metr").await.unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "connection still open after 5 s");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        // The slot comes back once the connection is gone.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(slots.open.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn at_the_cap_the_oldest_connection_makes_room_for_a_probe() {
        let slots = HealthSlots::new(2);
        let graceful = GracefulShutdown::new();
        let metrics = Arc::new(Metrics::default());
        // Two idle clients take every slot.
        let mut idle = Vec::new();
        for _ in 0..2 {
            let (client, server) = tokio::io::duplex(4096);
            serve_health(
                server,
                metrics.clone(),
                Arc::new(Vec::new),
                &graceful,
                slots.clone(),
                Duration::from_secs(60),
            );
            idle.push(client);
        }
        // A probe still gets its answer; the oldest idle client is closed for it.
        let (mut probe, server) = tokio::io::duplex(4096);
        serve_health(server, metrics.clone(), Arc::new(Vec::new), &graceful, slots.clone(), Duration::from_secs(60));
        probe.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), probe.read_to_end(&mut answer)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
        let mut oldest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), idle[0].read_to_end(&mut oldest)).await;
        assert!(matches!(read, Ok(Ok(0))), "the oldest idle connection is still open: {read:?}");
    }
}
