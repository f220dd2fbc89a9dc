//! The I/O shell: the Unix socket nginx talks to, the optional TCP health listener, one tokio
//! task per connection, and a graceful shutdown on SIGTERM/SIGINT.

mod connection;
mod healthz;
mod shutdown;
mod unix_socket;

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::app::App;
use crate::config::Config;

/// How long in-flight requests get to finish after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the daemon until SIGTERM or SIGINT; `Ok` once drained and cleaned up.
pub async fn run(config: Config) -> Result<(), String> {
    let mut signals = shutdown::ShutdownSignals::install()?;
    let app = Arc::new(App::new(config));
    let health = match app.config.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("metrics_listen: cannot bind {addr}: {e}"))?;
            info!("health and metrics on http://{addr}/healthz and /metrics");
            Some(listener)
        }
        None => None,
    };
    let socket = unix_socket::bind(&app.config.listen, app.config.socket_mode)?;
    info!(
        backend = app.pool.target_names().join(", "),
        "listening on {}",
        app.config.listen.display()
    );

    let graceful = GracefulShutdown::new();
    let signal = loop {
        tokio::select! {
            signal = signals.received() => break signal,
            accepted = socket.listener.accept() => match accepted {
                Ok((stream, _)) => connection::spawn_api(stream, app.clone(), &graceful),
                Err(e) => accept_failed(e).await,
            },
            accepted = accept_tcp(health.as_ref()) => match accepted {
                Ok((stream, _)) => connection::spawn_health(stream, &app, &graceful),
                Err(e) => accept_failed(e).await,
            },
        }
    };

    info!(
        "{signal} received: no longer accepting, draining {} connection(s)",
        graceful.count()
    );
    socket.close();
    drop(health);
    match tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await {
        Ok(()) => info!("all connections closed; exiting"),
        Err(_) => warn!(
            "connections still open after {} s; exiting anyway",
            DRAIN_TIMEOUT.as_secs()
        ),
    }
    Ok(())
}

async fn accept_tcp(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => pending().await,
    }
}

/// Accept errors are mostly EMFILE/ENFILE: wait a little instead of spinning on them.
async fn accept_failed(error: std::io::Error) {
    warn!("accept failed: {error}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
