//! TLS under a target's gRPC channel: TCP to the address, then a rustls handshake that checks the
//! server's certificate against `backend.tls` (and presents the client certificate, for mTLS).
//! tonic's channel runs HTTP/2 over what this returns and reconnects through it, so every new
//! connection uses the configuration the target was built with; a reload with other files
//! builds new targets (see `Pool::succeed`).
//!
//! Handshake failures are worded by `tls::failure` and kept as the target's TLS state: in the
//! log (once per change of state), in `/healthz`, and in metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector as RustlsConnector;
use tracing::{info, warn};

use super::connect::{self, CoalescedWrites};
use crate::metrics::Metrics;
use crate::tls::failure::{self, Failure, Reason};
use crate::tls::ClientTls;

/// The TLS settings of one target: the loaded client and the name its certificate must carry.
#[derive(Clone)]
pub struct TargetTls {
    pub client: Arc<ClientTls>,
    pub server_name: String,
}

/// The last handshake's outcome for one target, shared by its connector and `/healthz`.
pub struct TlsState {
    target: Arc<str>,
    metrics: Arc<Metrics>,
    /// `None`: no handshake yet, or the last one succeeded.
    last_failure: Mutex<Option<Failure>>,
    own_ca: bool,
    server_name: String,
}

impl TlsState {
    fn lock(&self) -> MutexGuard<'_, Option<Failure>> {
        self.last_failure.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last handshake's failure, if it failed.
    pub fn failure(&self) -> Option<Failure> {
        self.lock().clone()
    }

    fn succeeded(&self) {
        let previous = self.lock().take();
        if let Some(previous) = previous {
            self.show(Some(previous.reason), None);
            info!(target = &*self.target, "TLS handshake with the backend target succeeds again");
        } else {
            self.show(None, None);
        }
    }

    fn failed(&self, failure: Failure) {
        self.metrics.backend_tls_failures.inc(&[&self.target, failure.reason.label()]);
        let previous = self.lock().replace(failure.clone());
        if previous.as_ref() != Some(&failure) {
            warn!(
                target = &*self.target,
                reason = failure.reason.label(),
                "TLS to the backend target: {}",
                failure.message
            );
        }
        self.show(previous.map(|p| p.reason), Some(failure.reason));
    }

    /// Moves the state gauge from `from` to `to` (`None`: ok).
    fn show(&self, from: Option<Reason>, to: Option<Reason>) {
        let label = |r: Option<Reason>| r.map_or("ok", Reason::label);
        if from != to {
            self.metrics.backend_tls_state.remove(&[&self.target, label(from)]);
        }
        self.metrics.backend_tls_state.set(&[&self.target, label(to)], 1);
    }

    /// Drops the target's series (the target is gone).
    pub fn forget(&self) {
        let state = self.lock().as_ref().map_or("ok", |f| f.reason.label());
        self.metrics.backend_tls_state.remove(&[&self.target, state]);
    }
}

/// tonic's connector for one TLS target.
#[derive(Clone)]
pub struct TlsConnector {
    connector: RustlsConnector,
    /// Checked when the configuration was read (`config::targets`); an invalid one fails
    /// every connection with the reason.
    server_name: Result<ServerName<'static>, String>,
    state: Arc<TlsState>,
}

impl TlsConnector {
    /// `target` names the target in logs and metrics.
    pub fn new(tls: &TargetTls, target: Arc<str>, metrics: Arc<Metrics>) -> TlsConnector {
        let server_name = ServerName::try_from(tls.server_name.clone())
            .map_err(|_| format!("{:?} cannot be a TLS server name", tls.server_name));
        let state = Arc::new(TlsState {
            target,
            metrics,
            last_failure: Mutex::new(None),
            own_ca: tls.client.files.ca_file.is_some(),
            server_name: tls.server_name.clone(),
        });
        TlsConnector { connector: RustlsConnector::from(tls.client.config.clone()), server_name, state }
    }

    pub fn state(&self) -> Arc<TlsState> {
        self.state.clone()
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<TlsConnection, std::io::Error>> + Send>>;
type TlsConnection = CoalescedWrites<TokioIo<TlsStream<TcpStream>>>;

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TlsConnection;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    /// `uri` is the address to connect to (`http://HOST:PORT`, see `Backend::connect_lazy`).
    fn call(&mut self, uri: Uri) -> Connecting {
        let connector = self.connector.clone();
        let server_name = self.server_name.clone();
        let state = self.state.clone();
        Box::pin(async move {
            let server_name = server_name.map_err(std::io::Error::other)?;
            // TCP and the handshake share the connect timeout; only the handshake's failures
            // are TLS's.
            let deadline = tokio::time::Instant::now() + connect::CONNECT_TIMEOUT;
            let tcp = connect::within(connect::CONNECT_TIMEOUT, connect::tcp(&uri, 443)).await?;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match connect::within(left, connector.connect(server_name, tcp)).await {
                Ok(stream) => {
                    state.succeeded();
                    Ok(CoalescedWrites::new(TokioIo::new(stream)))
                }
                Err(error) => {
                    let context = failure::Context {
                        section: "backend.tls",
                        server_name: &state.server_name,
                        own_ca: state.own_ca,
                    };
                    let failure = match error.get_ref().and_then(|e| e.downcast_ref::<tokio_rustls::rustls::Error>()) {
                        Some(tls_error) => failure::classify(tls_error, &context),
                        // The peer closed or reset the connection mid-handshake: often a
                        // server that refused our client certificate without an alert.
                        None => Failure {
                            reason: Reason::Handshake,
                            message: format!("TLS handshake failed: {error} (a server requiring a client certificate may close like this: check backend.tls.cert_file)"),
                        },
                    };
                    let message = failure.message.clone();
                    state.failed(failure);
                    Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, message))
                }
            }
        })
    }
}
