//! Harness pieces for the daemon's operations tests: a config the test rewrites (for SIGHUP), the
//! daemon started with extra environment (`NOTIFY_SOCKET`) or under `systemd-socket-activate`, a
//! receiver for systemd notifications, a client over the daemon's socket, and a stand-in
//! OpenID Connect provider serving a discovery document.

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::batching_stack::read_response;
use crate::client::Response;
use crate::paths::release_binary;
use crate::process::{unix_accepts, Process};

/// The daemon's TOML: `listen`, the gRPC targets, then `tables` (`[batching]`, `[models.X]`).
pub fn daemon_toml(listen: &Path, grpc_urls: &[&str], tables: &str) -> String {
    let grpc: Vec<String> = grpc_urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "listen = \"{}\"\nsocket_mode = \"0666\"\n\n[backend]\ngrpc = [{}]\nhealth_interval_ms = 200\n\n{tables}\n",
        listen.display(),
        grpc.join(", ")
    )
}

/// `tfgate-batcher --config FILE` with extra environment; waits until `socket` accepts.
pub fn start_daemon(dir: &Path, config: &Path, socket: &Path, env: &[(&str, &str)]) -> Process {
    let mut command = Command::new(release_binary("tfgate-batcher"));
    command.arg("--config").arg(config).env("RUST_LOG", "info").envs(env.iter().copied());
    let mut process = Process::spawn("tfgate-batcher", command, &dir.join("batcher.log"));
    process.wait_until("its socket accepts", || unix_accepts(socket));
    process
}

/// The daemon as systemd would start it from a socket unit: `systemd-socket-activate` binds
/// `socket` and execs the daemon (same pid) on the first connection, passing the socket as fd 3.
pub fn start_socket_activated(dir: &Path, config: &Path, socket: &Path) -> Process {
    let mut command = Command::new("systemd-socket-activate");
    command
        .arg("-l")
        .arg(socket)
        .arg("-E")
        .arg("RUST_LOG=info")
        .arg(release_binary("tfgate-batcher"))
        .arg("--config")
        .arg(config);
    let mut process = Process::spawn("tfgate-batcher (socket-activated)", command, &dir.join("batcher.log"));
    process.wait_until("systemd-socket-activate listens", || socket.exists());
    process
}

/// Waits until `needle` occurs `count` times in the process log; fails the test with the log.
pub fn wait_for_log(process: &Process, needle: &str, count: usize) {
    let start = Instant::now();
    while process.log_text().matches(needle).count() < count {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{needle:?} not logged {count} time(s):\n{}",
            process.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `$NOTIFY_SOCKET` for the daemon: a datagram socket at a path or in the abstract namespace.
pub struct NotifyReceiver {
    socket: UnixDatagram,
    /// The value of `NOTIFY_SOCKET`.
    pub address: String,
}

impl NotifyReceiver {
    pub fn at_path(path: &Path) -> NotifyReceiver {
        let socket = UnixDatagram::bind(path).expect("bind notify socket");
        NotifyReceiver { socket, address: path.display().to_string() }
    }

    pub fn abstract_named(name: &str) -> NotifyReceiver {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
        let socket = UnixDatagram::bind_addr(&address).expect("bind abstract notify socket");
        NotifyReceiver { socket, address: format!("@{name}") }
    }

    /// The next message, or `None` after `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(timeout)).expect("timeout");
        let mut buffer = vec![0u8; 4096];
        let n = self.socket.recv(&mut buffer).ok()?;
        Some(String::from_utf8_lossy(&buffer[..n]).into_owned())
    }

    /// Messages until one contains `field` (e.g. `READY=1`), which is returned; fails after 20 s.
    pub fn wait_for(&self, field: &str) -> String {
        let start = Instant::now();
        let mut seen = Vec::new();
        while start.elapsed() < Duration::from_secs(20) {
            match self.next(Duration::from_millis(200)) {
                Some(message) if message.lines().any(|l| l == field) => return message,
                Some(message) => seen.push(message),
                None => {}
            }
        }
        panic!("no {field} notification; got {seen:?}");
    }
}

/// One HTTP/1.1 POST over the daemon's socket (a fresh connection each time, as a client of
/// nginx's keep-alive pool would see new ones).
pub fn post_unix(socket: &Path, path: &str, body: &str) -> Result<Response, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: tfgate\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| format!("send: {e}"))?;
    // read_response panics on a broken answer; inside a client thread that is reported as such.
    Ok(read_response(&mut BufReader::new(stream)))
}

/// A stand-in OpenID Connect provider: answers `GET {path}` with a body the test chose for that
/// path (made from the port it listens on), 404 for anything else.
pub struct DiscoveryServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DiscoveryServer {
    /// `routes(port)` gives (path, body) pairs.
    pub fn start(routes: impl FnOnce(u16) -> Vec<(String, String)>) -> DiscoveryServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind discovery server");
        let port = listener.local_addr().expect("addr").port();
        let routes = routes(port);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        answer(stream, &routes);
                    }
                }
            })
        };
        DiscoveryServer { port, stop, thread: Some(thread) }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for DiscoveryServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(mut stream: TcpStream, routes: &[(String, String)]) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&request);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = match routes.iter().find(|(p, _)| p == path) {
        Some((_, body)) => ("200 OK", body.as_str()),
        None => ("404 Not Found", "{\"error\": \"not found\"}"),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// An https IdP: a throw-away CA and a certificate for 127.0.0.1 made with the `openssl` tool,
/// and `openssl s_server -WWW` serving the discovery document from a directory.
pub struct TlsDiscoveryServer {
    pub port: u16,
    /// The CA to trust (`SSL_CERT_FILE` for oidc-config).
    pub ca: PathBuf,
    _process: Process,
}

impl TlsDiscoveryServer {
    /// `document(issuer)` is served at `/.well-known/openid-configuration`.
    pub fn start(dir: &Path, document: impl FnOnce(&str) -> String) -> TlsDiscoveryServer {
        // Each command is written as one line; no argument has a space.
        let openssl = |line: &str| {
            let args: Vec<&str> = line.split_whitespace().collect();
            let out = Command::new("openssl").args(&args).current_dir(dir).output().expect("openssl");
            assert!(out.status.success(), "openssl {line}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        openssl(&format!("req -x509 {key} -keyout ca.key -out ca.pem -days 2 -subj /CN=tfgate-test-CA"));
        openssl(&format!("req {key} -keyout server.key -out server.csr -subj /CN=127.0.0.1"));
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("san.ext");
        openssl("x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext");
        let port = crate::process::free_port();
        let www = dir.join("www");
        std::fs::create_dir_all(www.join(".well-known")).expect("www");
        let issuer = format!("https://127.0.0.1:{port}");
        std::fs::write(www.join(".well-known/openid-configuration"), document(&issuer)).expect("document");
        let mut command = Command::new("openssl");
        command
            .args(["s_server", "-quiet", "-WWW", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(dir.join("server.pem"))
            .arg("-key")
            .arg(dir.join("server.key"))
            .current_dir(&www);
        let mut process = Process::spawn("openssl s_server", command, &dir.join("s_server.log"));
        process.wait_until("its port accepts", || crate::process::tcp_accepts(port));
        TlsDiscoveryServer { port, ca: dir.join("ca.pem"), _process: process }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

/// Runs `tfgate-batcher ARGS`: (exit code, stdout, stderr).
pub fn run_batcher(args: &[&str]) -> (Option<i32>, String, String) {
    run_batcher_with(args, &[])
}

/// [`run_batcher`] with extra environment (e.g. `SSL_CERT_FILE`).
pub fn run_batcher_with(args: &[&str], env: &[(&str, &Path)]) -> (Option<i32>, String, String) {
    let output = Command::new(release_binary("tfgate-batcher"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run tfgate-batcher");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A fresh path in `dir`.
pub fn path_in(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// Holds the daemon's listening socket across restarts, as systemd does for a socket unit:
/// each daemon it starts gets the socket as fd 3 (`LISTEN_FDS=1`, `LISTEN_PID` its own pid), so
/// connections made while no daemon runs wait in the socket's backlog.
pub struct SocketHolder {
    listener: std::os::unix::net::UnixListener,
    pub socket: PathBuf,
}

impl SocketHolder {
    pub fn bind(socket: &Path) -> SocketHolder {
        let listener = std::os::unix::net::UnixListener::bind(socket).expect("bind the held socket");
        SocketHolder { listener, socket: socket.to_path_buf() }
    }

    /// A daemon on the held socket. The socket goes in as stdin, which a shell moves to fd 3
    /// before exec'ing the daemon with its own pid in `LISTEN_PID`.
    pub fn start(&self, dir: &Path, config: &Path, generation: u32) -> Process {
        let fd = std::os::fd::OwnedFd::from(self.listener.try_clone().expect("dup the socket"));
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#)
            .arg(release_binary("tfgate-batcher"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::from(fd));
        let log = dir.join(format!("batcher-{generation}.log"));
        let mut process = Process::spawn_with_stdin("tfgate-batcher (held socket)", command, &log);
        process.wait_until("it serves on the held socket", || {
            std::fs::read_to_string(&log).unwrap_or_default().contains("socket activation")
        });
        process
    }
}
