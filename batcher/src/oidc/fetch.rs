//! The one I/O of `oidc-config`: GET the discovery document over http or https (rustls, the
//! AWS-LC provider, the system's CA certificates), with an overall time limit and a size limit.
//! HTTP/1.1 through hyper, one connection, no redirects (discovery documents are served in
//! place; a redirect would change the issuer the document is checked against).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, HOST, LOCATION, USER_AGENT};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::discovery::HttpUrl;

/// The whole fetch: connect, TLS, request, body.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Discovery documents are a few KiB; anything this large is not one.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// The body of a 200 answer to GET `url` (`shown` is the URL for messages).
pub async fn get(url: &HttpUrl, shown: &str) -> Result<Bytes, String> {
    match tokio::time::timeout(FETCH_TIMEOUT, exchange(url, shown)).await {
        Ok(result) => result,
        Err(_) => Err(format!("GET {shown}: no complete answer within {} s", FETCH_TIMEOUT.as_secs())),
    }
}

async fn exchange(url: &HttpUrl, shown: &str) -> Result<Bytes, String> {
    let stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("cannot connect to {}:{} for {shown}: {e}", url.host, url.port))?;
    if !url.https {
        return request(stream, url, shown).await;
    }
    let connector = TlsConnector::from(Arc::new(tls_config()?));
    let name = ServerName::try_from(url.host.clone())
        .map_err(|e| format!("{shown}: {:?} is not a valid TLS server name: {e}", url.host))?;
    let stream = connector
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS with {} failed for {shown}: {e}", url.authority))?;
    request(stream, url, shown).await
}

async fn request<S>(stream: S, url: &HttpUrl, shown: &str) -> Result<Bytes, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: hyper::Error| format!("GET {shown} failed: {e}");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(failed)?;
    tokio::spawn(async move {
        // Ends with the exchange; its errors surface on the request.
        let _ = connection.await;
    });
    let request = Request::get(url.path_and_query.as_str())
        .header(HOST, url.authority.as_str())
        .header(ACCEPT, "application/json")
        .header(USER_AGENT, concat!("tfgate-batcher/", env!("CARGO_PKG_VERSION"), " oidc-config"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("GET {shown}: cannot build the request: {e}"))?;
    let response = sender.send_request(request).await.map_err(failed)?;
    let status = response.status();
    if status != hyper::StatusCode::OK {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| format!(" (redirected to {l}; redirects are not followed)"))
            .unwrap_or_default();
        return Err(format!(
            "GET {shown} answered {status}{location}; is the issuer URL right? It is the URL before /.well-known/openid-configuration"
        ));
    }
    match Limited::new(response.into_body(), MAX_DOCUMENT_BYTES).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(format!(
            "GET {shown}: the document is larger than {MAX_DOCUMENT_BYTES} bytes; not a discovery document"
        )),
        Err(e) => Err(format!("GET {shown}: cannot read the answer: {e}")),
    }
}

/// TLS 1.2/1.3 with AWS-LC, trusting the system's CA certificates (what nginx will trust with
/// the printed `proxy_ssl_trusted_certificate`).
fn tls_config() -> Result<ClientConfig, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
        return Err(format!(
            "no CA certificates found in the system store (install ca-certificates, or set SSL_CERT_FILE){why}"
        ));
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
