//! Certificates for the TLS tests, made by Debian's `openssl` command in a temp dir: a test CA,
//! a second CA nobody trusts, server certificates (valid, expired, for another name) and client
//! certificates; and `nginx` (Debian's, no module) terminating TLS in front of a gRPC server, the
//! way a TF Serving deployment often is, with `ssl_verify_client on` for mTLS.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{free_port, tcp_accepts, Process};

/// A test PKI under one directory.
pub struct Pki {
    pub dir: PathBuf,
}

/// A certificate and its key, as files.
#[derive(Clone, Debug)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output =
        Command::new("openssl").current_dir(dir).args(args).output().expect("openssl (Debian package openssl)");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// `openssl req` with a new EC P-256 key `NAME.key`, writing `NAME.EXT` (a request, or with
/// `-x509` in `extra` a self-signed certificate).
fn new_key(dir: &Path, name: &str, extra: &[&str], subject: &str, ext: &str) {
    let (key, out) = (format!("{name}.key"), format!("{name}.{ext}"));
    let mut args = vec!["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    args.extend(["-keyout", &key, "-out", &out, "-subj", subject]);
    args.extend(extra);
    openssl(dir, &args);
}

impl Pki {
    /// Two CAs: `ca` (trusted by the tests) and `rogue`.
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).expect("pki dir");
        for name in ["ca", "rogue"] {
            new_key(dir, name, &["-x509", "-days", "30"], &format!("/CN=tfgate test {name}"), "pem");
        }
        Pki { dir: dir.to_path_buf() }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn rogue_ca(&self) -> PathBuf {
        self.dir.join("rogue.pem")
    }

    /// A certificate named `name` (file stem), signed by `issuer` ("ca" or "rogue"), for the DNS
    /// names in `dns` (and 127.0.0.1), valid for `days` (negative: already expired).
    pub fn issue(&self, name: &str, issuer: &str, dns: &[&str], days: i32, client: bool) -> Pair {
        let dir = &self.dir;
        new_key(dir, name, &[], &format!("/CN={name}"), "csr");
        let mut ext = String::new();
        if !dns.is_empty() {
            let names: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
            ext.push_str(&format!("subjectAltName={},IP:127.0.0.1\n", names.join(",")));
        }
        // A server's certificate may also serve as a client's (redis-cli against a server that
        // requires client certificates).
        ext.push_str(if client { "extendedKeyUsage=clientAuth\n" } else { "extendedKeyUsage=serverAuth,clientAuth\n" });
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext file");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{issuer}.pem"),
                "-CAkey",
                &format!("{issuer}.key"),
                "-CAcreateserial",
                "-days",
                &days.to_string(),
                "-out",
                &format!("{name}.pem"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
        Pair { cert: dir.join(format!("{name}.pem")), key: dir.join(format!("{name}.key")) }
    }
}

/// Debian's nginx terminating TLS (HTTP/2) and passing gRPC on to `upstream_port` in plaintext,
/// closing connections after a few calls.
pub struct TlsTerminator {
    pub port: u16,
    pub prefix: PathBuf,
    process: Process,
}

impl TlsTerminator {
    /// `client_ca`: require a client certificate signed by it (`ssl_verify_client on`).
    pub fn start(dir: &Path, server: &Pair, client_ca: Option<&Path>, upstream_port: u16) -> TlsTerminator {
        let prefix = dir.to_path_buf();
        std::fs::create_dir_all(prefix.join("logs")).expect("nginx prefix");
        let port = free_port();
        let p = prefix.display();
        let verify = match client_ca {
            Some(ca) => format!("ssl_client_certificate {}; ssl_verify_client on;", ca.display()),
            None => String::new(),
        };
        let user = if crate::nginx::is_root() { "user root;" } else { "" };
        let conf = format!(
            r#"{user}
daemon off;
master_process on;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/logs/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {p}/logs/access.log;
    client_body_temp_path {p}/client_body; proxy_temp_path {p}/proxy; fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        {verify}
        client_max_body_size 0;
        # Closes each connection after 50 calls (GOAWAY), as nginx does after 1000 by default:
        # calls racing with the GOAWAY must go again, not fail.
        keepalive_requests 50;
        location / {{
            grpc_pass grpc://127.0.0.1:{upstream_port};
        }}
    }}
}}
"#,
            cert = server.cert.display(),
            key = server.key.display(),
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let mut command = Command::new("nginx");
        command.arg("-p").arg(&prefix).arg("-c").arg(&conf_path).arg("-e").arg(prefix.join("logs/error.log"));
        let mut process = Process::spawn("nginx (TLS)", command, &prefix.join("logs/stderr.log"));
        process.wait_until("its TLS port accepts", || tcp_accepts(port));
        TlsTerminator { port, prefix, process }
    }

    /// Re-reads its configuration and certificates (SIGHUP), as a rotation on the server does.
    pub fn reload(&self) {
        self.process.signal("HUP");
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }
}
