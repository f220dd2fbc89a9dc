//! Counters of the Predict calls served, and a minimal HTTP/1.1 endpoint exposing them so that
//! integration tests can check how a client (the batcher) called the model:
//! `GET /stats` -> `{"predict_calls":N,"predict_items":N,"predict_errors":N,"max_batch":N,"batch_sizes":{"B":N,...}}`,
//! `POST /reset` zeroes them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Predict counters. Calls rejected before running count in `predict_errors` only.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Counters>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    pub predict_calls: u64,
    pub predict_items: u64,
    pub predict_errors: u64,
    pub max_batch: u64,
    pub batch_sizes: BTreeMap<u64, u64>,
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one accepted Predict call of `batch` items.
    pub fn record_predict(&self, batch: u64) {
        let mut c = self.lock();
        c.predict_calls += 1;
        c.predict_items += batch;
        c.max_batch = c.max_batch.max(batch);
        *c.batch_sizes.entry(batch).or_default() += 1;
    }

    /// Records a rejected Predict call.
    pub fn record_error(&self) {
        self.lock().predict_errors += 1;
    }

    pub fn snapshot(&self) -> Counters {
        self.lock().clone()
    }

    pub fn reset(&self) {
        *self.lock() = Counters::default();
    }

    pub fn to_json(&self) -> String {
        let c = self.snapshot();
        let sizes: serde_json::Map<String, serde_json::Value> = c
            .batch_sizes
            .iter()
            .map(|(b, n)| (b.to_string(), (*n).into()))
            .collect();
        serde_json::json!({
            "predict_calls": c.predict_calls,
            "predict_items": c.predict_items,
            "predict_errors": c.predict_errors,
            "max_batch": c.max_batch,
            "batch_sizes": sizes,
        })
        .to_string()
    }
}

/// Serves `GET /stats` and `POST /reset` on `listener` forever, one request per connection.
pub async fn serve_http(listener: TcpListener, stats: Arc<Stats>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let _ = handle(stream, &stats).await;
        });
    }
}

const MAX_HEAD: usize = 16 * 1024;

async fn handle(mut stream: TcpStream, stats: &Stats) -> std::io::Result<()> {
    // Read the request head, then any body (so closing does not reset the connection).
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > MAX_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                r#"{"error":"head too large"}"#,
            )
            .await;
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
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    match (method, path) {
        ("GET", "/stats") => respond(&mut stream, "200 OK", &stats.to_json()).await,
        ("POST", "/reset") => {
            stats.reset();
            respond(&mut stream, "200 OK", &stats.to_json()).await
        }
        (_, "/stats") | (_, "/reset") => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                r#"{"error":"method not allowed"}"#,
            )
            .await
        }
        _ => {
            respond(
                &mut stream,
                "404 Not Found",
                r#"{"error":"not found; try GET /stats or POST /reset"}"#,
            )
            .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let s = Stats::default();
        s.record_predict(4);
        s.record_predict(1);
        s.record_predict(4);
        s.record_error();
        let c = s.snapshot();
        assert_eq!(
            (
                c.predict_calls,
                c.predict_items,
                c.max_batch,
                c.predict_errors
            ),
            (3, 9, 4, 1)
        );
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(json["batch_sizes"], serde_json::json!({"1": 1, "4": 2}));
        assert_eq!(json["predict_items"], 9);
        s.reset();
        assert_eq!(s.snapshot(), Counters::default());
    }
}
