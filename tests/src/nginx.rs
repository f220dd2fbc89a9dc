use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::client::HttpClient;
use crate::paths::{release_binary, repo_root};
use crate::process::{free_port, tcp_accepts, Process};

/// What a test adds to the generated nginx.conf.
#[derive(Clone)]
pub struct NginxConfig {
    /// Directives at http level (after the upstream).
    pub http_extra: String,
    /// Directives at server level (by default the catalog: `half_plus_two`, versions 1 and 2,
    /// version 1 for requests naming none).
    pub server_extra: String,
    /// Directives inside the model location (`location ~* ^/v1/models`).
    pub location_extra: String,
    /// Where the model location proxies to.
    pub proxy_pass: String,
    /// Replaces the `load_module` line of the fresh build (e.g. an `include` of an installed one).
    pub load_module: Option<String>,
    /// Where tfgate-errors.conf and tfgate-proxy.conf are included from.
    pub conf_dir: PathBuf,
    /// The daemon's gRPC socket: a second server (`listen ... http2`) with the gRPC location.
    pub grpc_socket: Option<PathBuf>,
    /// Directives inside the gRPC location (`location /tensorflow.serving.`).
    pub grpc_location_extra: String,
}

impl Default for NginxConfig {
    fn default() -> Self {
        NginxConfig {
            http_extra: String::new(),
            server_extra: "tfgate_model half_plus_two versions=1,2 default=1;".into(),
            location_extra: "tfgate_route on;".into(),
            proxy_pass: "http://tfgate_batcher".into(),
            load_module: None,
            conf_dir: repo_root().join("nginx-conf"),
            grpc_socket: None,
            grpc_location_extra: String::new(),
        }
    }
}

/// The installed nginx binary running the fresh module in its own prefix.
pub struct Nginx {
    pub port: u16,
    /// The gRPC server's port, where `grpc_socket` was set.
    pub grpc_port: u16,
    pub prefix: PathBuf,
    pub conf: PathBuf,
    pub process: Process,
}

impl Nginx {
    pub fn start(dir: &Path, daemon_socket: &Path, config: &NginxConfig) -> Nginx {
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("logs")).expect("nginx prefix");
        let port = free_port();
        let grpc_port = if config.grpc_socket.is_some() { free_port() } else { 0 };
        let conf = prefix.join("nginx.conf");
        let mut text = render_conf(&prefix, port, daemon_socket, config);
        if let Some(socket) = &config.grpc_socket {
            let server = render_grpc_server(grpc_port, socket, config);
            // Into the http block, before its closing brace.
            let end = text.rfind('}').expect("http block");
            text.insert_str(end, &server);
        }
        std::fs::write(&conf, text).expect("nginx.conf");
        let mut command = Command::new("nginx");
        command.arg("-p").arg(&prefix).arg("-c").arg(&conf).arg("-e").arg(prefix.join("logs/error.log"));
        let mut process = Process::spawn("nginx", command, &prefix.join("logs/stderr.log"));
        process.wait_until("its port accepts", || tcp_accepts(port));
        Nginx { port, grpc_port, prefix, conf, process }
    }

    pub fn client(&self) -> HttpClient {
        HttpClient::new(format!("http://127.0.0.1:{}", self.port))
    }

    /// Asks the running master to reload its configuration (`nginx -s reload`).
    pub fn reload(&self) -> Output {
        Command::new("nginx")
            .arg("-p")
            .arg(&self.prefix)
            .arg("-c")
            .arg(&self.conf)
            .arg("-e")
            .arg(self.prefix.join("logs/error.log"))
            .arg("-s")
            .arg("reload")
            .output()
            .expect("nginx -s reload")
    }

    /// The log `logs/NAME` once `done` holds for it (up to 5 s): nginx writes access-log lines
    /// after the answer has gone out, so a test that just got its answer may be early.
    pub fn log_when(&self, name: &str, done: impl Fn(&str) -> bool) -> String {
        let path = self.prefix.join("logs").join(name);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            if done(&log) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }
}

/// Runs `nginx -t` on a configuration made of `main_extra` (before events) and `http_body`.
pub fn nginx_test_config(dir: &Path, main_extra: &str, http_body: &str) -> Output {
    let conf = dir.join("nginx-t.conf");
    std::fs::write(&conf, format!("{main_extra}\nevents {{}}\nhttp {{\n{}\n{http_body}\n}}\n", temp_paths(dir)))
        .expect("conf");
    Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("t-error.log"))
        .output()
        .expect("nginx -t")
}

/// The `load_module` line for the freshly built module.
pub fn load_module_line() -> String {
    format!("load_module {};", release_binary("libngx_http_tfgate_module.so").display())
}

fn temp_paths(prefix: &Path) -> String {
    let p = prefix.display();
    format!(
        "client_body_temp_path {p}/client_body; proxy_temp_path {p}/proxy; fastcgi_temp_path {p}/fastcgi;\n\
         uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;"
    )
}

fn render_conf(prefix: &Path, port: u16, daemon_socket: &Path, config: &NginxConfig) -> String {
    let conf_dir = config.conf_dir.display();
    // As root, workers would run as `nobody`, which cannot reach the test's private temp dir.
    let user = if is_root() { "user root;" } else { "" };
    format!(
        r#"{load_module}
{user}
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;

events {{ worker_connections 1024; }}

http {{
    access_log {prefix}/logs/access.log;
    {temp_paths}
    upstream tfgate_batcher {{
        server unix:{socket} max_fails=0;
        server unix:{socket} max_fails=0 backup;
        keepalive 16;
    }}
    {http_extra}

    server {{
        listen 127.0.0.1:{port};
        include {conf_dir}/tfgate-errors.conf;
        {server_extra}

        location ~* ^/v1/models {{
            proxy_pass {proxy_pass};
            include {conf_dir}/tfgate-proxy.conf;
            {location_extra}
        }}
    }}
}}
"#,
        load_module = config.load_module.clone().unwrap_or_else(load_module_line),
        prefix = prefix.display(),
        temp_paths = temp_paths(prefix),
        socket = daemon_socket.display(),
        http_extra = config.http_extra,
        server_extra = config.server_extra,
        location_extra = config.location_extra,
        proxy_pass = config.proxy_pass,
    )
}

/// The gRPC server: the snippets of nginx-conf/ around `grpc_pass` to the daemon's socket.
fn render_grpc_server(port: u16, socket: &Path, config: &NginxConfig) -> String {
    format!(
        r#"
    upstream tfgate_batcher_grpc {{
        server unix:{socket} max_fails=0;
        server unix:{socket} max_fails=0 backup;
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port} http2;
        include {conf_dir}/tfgate-grpc-errors.conf;
        {server_extra}

        location /tensorflow.serving. {{
            tfgate_route on;
            grpc_pass grpc://tfgate_batcher_grpc;
            include {conf_dir}/tfgate-grpc.conf;
            {location_extra}
        }}
    }}
"#,
        socket = socket.display(),
        conf_dir = config.conf_dir.display(),
        server_extra = config.server_extra,
        location_extra = config.grpc_location_extra,
    )
}

pub(crate) fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}
