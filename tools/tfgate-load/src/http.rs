//! HTTP clients: one keep-alive HTTP/1.1 connection each.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::driver::{Client, Connect};
use crate::inputs::{Inputs, Rng};
use crate::report::Outcome;

#[derive(Clone)]
pub struct Http {
    address: String,
    path: String,
    inputs: Inputs,
    seed: u64,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Http {
    pub fn new(url: &str, inputs: Inputs, seed: u64, headers: &[(String, String)]) -> Result<Http, String> {
        let uri: Uri = url.parse().map_err(|e| format!("--url {url:?}: {e}"))?;
        let host = uri.host().ok_or("--url needs a host")?.to_string();
        let address = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let headers = headers
            .iter()
            .map(|(n, v)| {
                let name = HeaderName::try_from(n.as_str()).map_err(|e| format!("header {n:?}: {e}"))?;
                let value = HeaderValue::try_from(v.as_str()).map_err(|e| format!("header {n:?}: {e}"))?;
                Ok((name, value))
            })
            .collect::<Result<_, String>>()?;
        Ok(Http { address, path, inputs, seed, headers })
    }
}

pub struct HttpClient {
    http: Http,
    sender: Option<Connection>,
    rng: Rng,
}

/// A request sender and the task driving its connection (aborting it closes the socket).
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Connect for Http {
    type Client = HttpClient;

    async fn connect(&self) -> Result<HttpClient, String> {
        // Each client its own sequence of draws, all from the one seed.
        static CLIENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = CLIENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rng = Rng::new(self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n.wrapping_mul(0xbf58_476d_1ce4_e5b9));
        Ok(HttpClient { sender: Some(connect(&self.address).await?), http: self.clone(), rng })
    }
}

impl Client for HttpClient {
    async fn send(&mut self) -> Outcome {
        // The server may close a keep-alive connection after an answer (nginx does every
        // `keepalive_requests`): reconnect then, which is not an error.
        let ready = match self.sender.as_mut() {
            Some(connection) => connection.sender.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            self.sender = connect(&self.http.address).await.ok();
        }
        let Some(Connection { sender, .. }) = self.sender.as_mut() else {
            return Outcome::Failed;
        };
        let mut request = Request::post(self.http.path.as_str())
            .header(HOST, self.http.address.as_str())
            .header(CONTENT_TYPE, "application/json");
        for (name, value) in &self.http.headers {
            request = request.header(name, value);
        }
        let Ok(request) = request.body(Full::new(self.http.inputs.body(&mut self.rng))) else {
            return Outcome::Failed;
        };
        match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                let body = response.into_body().collect().await;
                match body {
                    Ok(_) if status.is_success() => Outcome::Answered,
                    Ok(_) if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS => {
                        Outcome::Refused
                    }
                    body => {
                        let text =
                            body.map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned()).unwrap_or_default();
                        crate::report::first_error(&format!("HTTP {status}: {}", text.get(..200).unwrap_or(&text)));
                        Outcome::Failed
                    }
                }
            }
            Err(e) => {
                crate::report::first_error(&e.to_string());
                self.sender = None;
                Outcome::Failed
            }
        }
    }

    fn hang_up(&mut self) {
        self.sender = None;
    }
}

async fn connect(address: &str) -> Result<Connection, String> {
    let stream = TcpStream::connect(address).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Connection { sender, driver })
}
