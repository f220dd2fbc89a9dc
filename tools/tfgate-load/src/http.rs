//! HTTP clients: one keep-alive HTTP/1.1 connection each, one request after another.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::report::Recorder;
use crate::{Window, ERROR_PAUSE};

pub async fn run(url: &str, body: &str, clients: usize, window: Window) -> Result<Vec<Recorder>, String> {
    let uri: Uri = url.parse().map_err(|e| format!("--url {url:?}: {e}"))?;
    let host = uri.host().ok_or("--url needs a host")?.to_string();
    let address = format!("{host}:{}", uri.port_u16().unwrap_or(80));
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let body = Bytes::from(body.to_string());
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (address, path, body) = (address.clone(), path.clone(), body.clone());
            tokio::spawn(async move { client(&address, &path, body, window).await })
        })
        .collect();
    let mut recorders = Vec::new();
    for task in tasks {
        recorders.push(task.await.map_err(|e| e.to_string())??);
    }
    Ok(recorders)
}

async fn client(address: &str, path: &str, body: Bytes, window: Window) -> Result<Recorder, String> {
    let mut recorder = Recorder::default();
    let mut sender = None;
    while !window.over() {
        if sender.is_none() {
            match connect(address).await {
                Ok(s) => sender = Some(s),
                Err(_) => {
                    tokio::time::sleep(ERROR_PAUSE).await;
                    continue;
                }
            }
        }
        let Some(conn) = sender.as_mut() else {
            continue;
        };
        // The server may close a keep-alive connection after an answer (nginx does every
        // `keepalive_requests`): reconnect then, which is not an error.
        if conn.ready().await.is_err() {
            sender = None;
            continue;
        }
        let request = Request::post(path)
            .header(HOST, address)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let ok = match conn.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                let complete = response.into_body().collect().await.is_ok();
                complete && status.is_success()
            }
            Err(_) => {
                sender = None;
                false
            }
        };
        window.record(&mut recorder, started, ok);
        if !ok {
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
    Ok(recorder)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(address: &str) -> Result<Sender, String> {
    let stream = TcpStream::connect(address).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}
