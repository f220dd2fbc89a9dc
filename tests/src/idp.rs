//! A stand-in identity provider on loopback: serves a JWKS that a test can change, counts how
//! often it is fetched, and can be stopped (connection refused) to test outages.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Idp {
    pub port: u16,
    jwks: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    last_request: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Idp {
    pub fn start(jwks: String) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind idp");
        let port = listener.local_addr().expect("idp addr").port();
        let jwks = Arc::new(Mutex::new(jwks));
        let fetches = Arc::new(AtomicUsize::new(0));
        let last_request = Arc::new(Mutex::new(String::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (jwks, fetches, last, stop) =
                (Arc::clone(&jwks), Arc::clone(&fetches), Arc::clone(&last_request), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        serve(stream, &jwks, &fetches, &last);
                    }
                }
            })
        };
        Idp { port, jwks, fetches, last_request, stop, thread: Some(thread) }
    }

    /// The URL nginx's JWKS location proxies to.
    pub fn jwks_url(&self) -> String {
        format!("http://127.0.0.1:{}/jwks", self.port)
    }

    pub fn set_jwks(&self, jwks: String) {
        *self.jwks.lock().expect("jwks lock") = jwks;
    }

    /// The request line and headers of the latest fetch.
    pub fn last_request(&self) -> String {
        self.last_request.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Stops answering: new connections are refused from now on.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(mut stream: TcpStream, jwks: &Mutex<String>, fetches: &AtomicUsize, last: &Mutex<String>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    if let Ok(mut last) = last.lock() {
        *last = String::from_utf8_lossy(&request).into_owned();
    }
    fetches.fetch_add(1, Ordering::SeqCst);
    let body = jwks.lock().map(|j| j.clone()).unwrap_or_default();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: public, max-age=600\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        body
    );
}
