//! The HTTP side endpoint (`--stats-listen`) that lets tests observe and steer the simulator:
//!
//! - `GET /stats`: Predict counters as JSON (see `stats`); `POST /reset` zeroes them.
//! - `POST /fail?code=N&count=K`: the next K Predict calls fail with gRPC code N before running
//!   (14 = UNAVAILABLE, as when TF Serving refuses a call); `count` defaults to 1.
//! - `POST /delay?us=N`: every Predict call takes N microseconds more (a slow backend).
//! - `POST /load?model=M&version=V`: version V of M becomes available (the new latest).
//!
//! One request per connection; a deliberately small HTTP/1.1 subset.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::service::Sim;

/// Serves the endpoint on `listener` forever.
pub async fn serve_http(listener: TcpListener, sim: Arc<Sim>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let sim = Arc::clone(&sim);
        tokio::spawn(async move {
            let _ = handle(stream, &sim).await;
        });
    }
}

const MAX_HEAD: usize = 16 * 1024;

async fn handle(mut stream: TcpStream, sim: &Sim) -> std::io::Result<()> {
    // Read the request head, then any body (so closing does not reset the connection).
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > MAX_HEAD {
            return respond(&mut stream, "431 Request Header Fields Too Large", r#"{"error":"head too large"}"#).await;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let content_length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut have = buf.len() - head_end;
    while have < content_length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        have += n;
    }

    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, body) = route(sim, method, path, query);
    respond(&mut stream, status, &body).await
}

fn route(sim: &Sim, method: &str, path: &str, query: &str) -> (&'static str, String) {
    let param = |name: &str| {
        query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    };
    let number = |name: &str| param(name).and_then(|v| v.parse::<i64>().ok());
    let ok = || ("200 OK", sim.stats.to_json());
    let bad = |message: String| ("400 Bad Request", serde_json::json!({ "error": message }).to_string());
    match (method, path) {
        ("GET", "/stats") => ok(),
        ("POST", "/reset") => {
            sim.stats.reset();
            ok()
        }
        ("POST", "/fail") => match (number("code"), number("count").unwrap_or(1)) {
            (Some(code), count) if (1..=16).contains(&code) && count >= 0 => {
                sim.faults.fail_next(code as i32, count as u64);
                ok()
            }
            _ => bad("use /fail?code=1..16&count=N".into()),
        },
        ("POST", "/delay") => match number("us") {
            Some(us) if us >= 0 => {
                sim.faults.set_extra_delay_us(us as u64);
                ok()
            }
            _ => bad("use /delay?us=N".into()),
        },
        ("POST", "/load") => match (param("model"), number("version")) {
            (Some(model), Some(version)) => {
                let mut catalog = sim.catalog.write().unwrap_or_else(|e| e.into_inner());
                match catalog.load_version(&model, version) {
                    Ok(()) => ok(),
                    Err(e) => bad(e),
                }
            }
            _ => bad("use /load?model=M&version=V".into()),
        },
        (_, "/stats" | "/reset" | "/fail" | "/delay" | "/load") => {
            ("405 Method Not Allowed", r#"{"error":"method not allowed"}"#.to_string())
        }
        _ => {
            ("404 Not Found", r#"{"error":"not found; try GET /stats, POST /reset, /fail, /delay, /load"}"#.to_string())
        }
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
