//! TLS on the gRPC port, as TF Serving's `--ssl_config_file` sets it up: the server's certificate
//! and key, and, for mutual TLS, the CA that client certificates must chain to (TF Serving's
//! `custom_ca` with `client_verify`). HTTP/2 is offered by ALPN, as gRPC servers do.
//!
//! Handshakes run in their own tasks so that a slow or hostile client never holds up the accept
//! loop; the connections that complete one are handed to tonic in order of completion.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::stats::Stats;

/// The files named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Present: clients must present a certificate that chains to one of these.
    pub client_ca: Option<PathBuf>,
}

/// The server configuration, or what is wrong with the files (naming the option).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let read = |option: &str, path: &PathBuf| {
        std::fs::read(path).map_err(|e| format!("cannot read {} ({option}): {e}", path.display()))
    };
    let certificates = |option: &str, path: &PathBuf| -> Result<Vec<CertificateDer<'static>>, String> {
        let pem = read(option, path)?;
        let found = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{} ({option}) is not PEM certificates: {e}", path.display()))?;
        if found.is_empty() {
            return Err(format!("{} ({option}) holds no certificate", path.display()));
        }
        Ok(found)
    };
    let chain = certificates("--tls-cert", &files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read("--tls-key", &files.key)?)
        .map_err(|e| format!("{} (--tls-key) is not a PEM private key: {e}", files.key.display()))?;
    let builder = ServerConfig::builder();
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates("--tls-client-ca", path)? {
                roots.add(ca).map_err(|e| format!("{} (--tls-client-ca): {e}", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| format!("{} (--tls-client-ca): {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("--tls-cert and --tls-key do not make a certificate and its key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// One accepted TLS connection, as tonic serves it.
pub struct TlsConnection(TlsStream<TcpStream>);

impl Connected for TlsConnection {
    type ConnectInfo = ();

    fn connect_info(&self) {}
}

impl AsyncRead for TlsConnection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Accepts on `listener` and yields the connections whose handshake succeeded. A failed
/// handshake is counted in the stats and printed on stderr (a test reads why a client was
/// refused); the listener goes on.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    stats: Arc<Stats>,
) -> ReceiverStream<io::Result<TlsConnection>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    // The sending half lives in the accept loop's task; the loop ends with the server.
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait for some to close.
                    eprintln!("tfs-sim: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, sender, stats) = (acceptor.clone(), sender.clone(), stats.clone());
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        stats.record_tls_handshake(true);
                        let _ = sender.send(Ok(TlsConnection(stream))).await;
                    }
                    Err(e) => {
                        stats.record_tls_handshake(false);
                        eprintln!("tfs-sim: TLS handshake with {peer} failed: {e}");
                    }
                }
            });
        }
    });
    ReceiverStream::new(receiver)
}
