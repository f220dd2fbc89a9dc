//! The I/O shell: the Unix socket nginx talks to (bound, or passed by systemd), the optional
//! TCP health listener, one tokio task per connection, SIGHUP reloads, readiness notification,
//! and a graceful shutdown on SIGTERM/SIGINT.

mod connection;
mod healthz;
mod read_armed_stream;
mod reload;
mod signals;
mod unix_socket;

use std::future::pending;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use self::connection::{Draining, HealthSlots};
use self::read_armed_stream::ReadArmedStream;
use self::signals::{Received, Signals};
use self::unix_socket::ApiSocket;
use crate::app::App;
use crate::config::Config;
use crate::log_limit::LogLimit;
use crate::systemd::notify;

/// How long in-flight requests get to finish after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long idle connections stay open after a shutdown signal, answering with
/// `Connection: close`, before they are closed.
pub const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// How long start-up waits for the `dns://` names' first answers, so that the first requests
/// find their targets; a DNS server slower than this only delays them.
const FIRST_ANSWERS_WAIT: Duration = Duration::from_secs(5);

/// Runs the daemon until SIGTERM or SIGINT; `Ok` once drained and cleaned up. `config_path` is
/// read again on SIGHUP.
pub async fn run(config: Config, config_path: &Path) -> Result<(), String> {
    let mut signals = Signals::install()?;
    let app = Arc::new(App::new(config)?);
    app.watch_tls_files();
    if !app.first_answers(FIRST_ANSWERS_WAIT).await {
        warn!(
            "some dns:// backend names are still resolving after {} s; starting anyway",
            FIRST_ANSWERS_WAIT.as_secs()
        );
    }
    let config = app.config();
    let health = match config.metrics_listen {
        Some(addr) => {
            let listener =
                TcpListener::bind(addr).await.map_err(|e| format!("metrics_listen: cannot bind {addr}: {e}"))?;
            info!("health and metrics on http://{addr}/healthz and /metrics");
            Some(listener)
        }
        None => None,
    };
    if let Some(warning) = crate::config::open_socket_warning(config.socket_mode, config.allowed_peers.as_ref()) {
        warn!("{warning}");
    }
    let socket = ApiSocket::open(&config.listen, config.socket_mode)?;
    let grpc_socket = match &config.grpc_listen {
        Some(path) => Some(unix_socket::bind(path, config.socket_mode, "grpc_listen")?),
        None => None,
    };
    if let Some(grpc) = &grpc_socket {
        info!("gRPC API on {}", grpc.path().display());
    }
    let serving = format!("serving on {}", socket.describe());
    info!(backend = app.pool().target_names().join(", "), "listening on {}", socket.describe());
    // Ready: the socket accepts (connections queue in its backlog until the loop takes them).
    notify::ready(&serving);

    let graceful = GracefulShutdown::new();
    let health_slots = HealthSlots::new(connection::MAX_HEALTH_CONNECTIONS);
    let draining = Arc::new(Draining::default());
    // Beyond `max_connections`, new connections wait in the socket's backlog.
    let api_slots = Arc::new(Semaphore::new(config.connections.max_connections));
    let signal = loop {
        tokio::select! {
            received = signals.received() => match received {
                Received::Stop(signal) => break signal,
                Received::Reload => reload::reload(&app, config_path, &serving),
            },
            accepted = accept_api(&socket, &api_slots) => match accepted {
                Ok((stream, slot)) if peer_allowed(&app, &stream, "api") => match ReadArmedStream::new(stream) {
                    Ok(stream) => connection::spawn_api(stream, app.clone(), &graceful, draining.clone(), slot),
                    Err(e) => accept_failed(e).await,
                },
                Ok(_refused) => {}
                Err(e) => accept_failed(e).await,
            },
            accepted = accept_grpc(grpc_socket.as_ref(), &api_slots) => match accepted {
                Ok((stream, slot)) if peer_allowed(&app, &stream, "grpc") => match ReadArmedStream::new(stream) {
                    Ok(stream) => connection::spawn_grpc(stream, app.clone(), &graceful, slot),
                    Err(e) => accept_failed(e).await,
                },
                Ok(_refused) => {}
                Err(e) => accept_failed(e).await,
            },
            accepted = accept_tcp(health.as_ref()) => match accepted {
                Ok((stream, _)) => connection::spawn_health(stream, &app, &graceful, &health_slots),
                Err(e) => accept_failed(e).await,
            },
        }
    };

    let open = graceful.count();
    info!("{signal} received: no longer accepting, draining {open} connection(s)");
    notify::stopping(&format!("{signal}: draining {open} connection(s)"));
    socket.close();
    if let Some(grpc) = grpc_socket {
        grpc.close();
    }
    drop(health);
    // Connections nginx may be about to reuse are not closed under it: for a moment they are
    // served, with `Connection: close`, then the idle ones close.
    draining.start();
    tokio::time::sleep(DRAIN_GRACE).await;
    match tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await {
        Ok(()) => info!("all connections closed; exiting"),
        Err(_) => warn!("connections still open after {} s; exiting anyway", DRAIN_TIMEOUT.as_secs()),
    }
    // After the last answer: what the logs hold is written and their files closed cleanly.
    let logs = app.clone();
    let _ = tokio::task::spawn_blocking(move || logs.logs.close()).await;
    Ok(())
}

/// The next API connection, once one of `slots` is free.
async fn accept_api(socket: &ApiSocket, slots: &Arc<Semaphore>) -> std::io::Result<(UnixStream, OwnedSemaphorePermit)> {
    let slot = slots.clone().acquire_owned().await.map_err(|_| std::io::Error::other("closed"))?;
    let (stream, _) = socket.listener().accept().await?;
    Ok((stream, slot))
}

/// The next gRPC connection (never, without `grpc_listen`), once one of `slots` is free: the
/// API connections of both kinds share `max_connections`.
async fn accept_grpc(
    socket: Option<&unix_socket::BoundSocket>,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(UnixStream, OwnedSemaphorePermit)> {
    let Some(socket) = socket else { return pending().await };
    let slot = slots.clone().acquire_owned().await.map_err(|_| std::io::Error::other("closed"))?;
    let (stream, _) = socket.listener.accept().await?;
    Ok((stream, slot))
}

async fn accept_tcp(listener: Option<&TcpListener>) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => pending().await,
    }
}

/// Whether the process at the other end of `stream` may use the daemon (`allowed_peers`, read
/// once per connection from the kernel's SO_PEERCRED); a refused connection is closed at once,
/// counted, and logged at a bounded rate.
fn peer_allowed(app: &App, stream: &UnixStream, socket: &'static str) -> bool {
    let config = app.config();
    let Some(peers) = &config.allowed_peers else { return true };
    let credentials = stream.peer_cred();
    if let Ok(credentials) = &credentials {
        if peers.allows(credentials.uid()) {
            return true;
        }
    }
    app.metrics.peer_refusals.inc(&[socket]);
    static LIMIT: std::sync::Mutex<LogLimit> = std::sync::Mutex::new(LogLimit::new(Duration::from_secs(10)));
    let event = LIMIT.lock().unwrap_or_else(|e| e.into_inner()).event(std::time::Instant::now());
    if let Some(more) = event {
        let who = match &credentials {
            Ok(c) => format!("uid {} (pid {})", c.uid(), c.pid().map_or("?".to_string(), |p| p.to_string())),
            Err(e) => format!("a peer whose credentials cannot be read ({e})"),
        };
        warn!(
            "refused a connection on the {socket} socket from {who}: not in allowed_peers [{}] ({more} more since the last warning)",
            peers.names.join(", ")
        );
    }
    false
}

/// Accept errors are mostly EMFILE/ENFILE: wait a little instead of spinning on them (and log
/// them at a bounded rate).
async fn accept_failed(error: std::io::Error) {
    static LIMIT: std::sync::Mutex<LogLimit> = std::sync::Mutex::new(LogLimit::new(Duration::from_secs(10)));
    let event = LIMIT.lock().unwrap_or_else(|e| e.into_inner()).event(std::time::Instant::now());
    if let Some(more) = event {
        warn!("accept failed: {error} ({more} more since the last warning)");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}
