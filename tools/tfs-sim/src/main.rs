//! tfs-sim: a TensorFlow Serving simulator speaking the real gRPC API, for tests, the demo and
//! benchmarks. See `tfs-sim --help`.
//!
//! Layout: `cli` (arguments), `models` (catalog), `kind` (what each model computes),
//! `signatures`, `tensor` (TensorProto decoding), `content` (answers in tensor_content),
//! `predict` (validation and compute), `executor` (cost model), `service` (tonic services),
//! `stats` (Predict counters), `faults` (injected failures and delays), `control` (the HTTP
//! endpoint: stats, injected failures and delays, loading versions), `tls` (the TLS listener),
//! `v2` (the Open Inference Protocol's gRPC service, on the same port).

mod cli;
mod content;
mod control;
mod executor;
mod faults;
mod kind;
mod models;
mod predict;
mod service;
mod signatures;
mod stats;
mod tensor;
mod tls;
mod v2;

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use clap::Parser;

use crate::cli::Config;
use crate::executor::Executors;
use crate::faults::Faults;
use crate::service::{Router, Sim};
use crate::stats::Stats;

fn main() -> ExitCode {
    let config = Config::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tfs-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tfs-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let sim = Arc::new(Sim {
        catalog: RwLock::new(models::Catalog::builtin()),
        stats: Arc::new(Stats::default()),
        cost: config.cost.map(|cost| (cost, Executors::start(usize::from(config.executors)))),
        faults: Faults::default(),
        tensor_content: config.tensor_content,
    });
    if let Some(addr) = config.stats_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (--stats-listen): {e}"))?;
        eprintln!("tfs-sim stats listening on {}", listener.local_addr()?);
        tokio::spawn(control::serve_http(listener, Arc::clone(&sim)));
    }

    // Read before binding: a test that waits for the line below finds a server that can answer.
    let tls = config.tls().map(|files| tls::server_config(&files)).transpose()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {} (--listen): {e}", config.listen))?;
    let addr = listener.local_addr()?;
    // Tests wait for this line: everything is bound once it is printed.
    println!("tfs-sim listening on {addr}");
    std::io::stdout().flush()?;

    // Large receive windows, as TF Serving's gRPC reaches by bandwidth-delay probing: a batch of
    // image-sized rows arrives without a window update every 64 KiB.
    let server = Server::builder().initial_stream_window_size(8 << 20).initial_connection_window_size(64 << 20);
    match tls {
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            server.serve_with_incoming_shutdown(Router::new(sim), incoming, shutdown_signal()).await?
        }
        Some(tls) => {
            let incoming = tls::incoming(listener, tls, Arc::clone(&sim.stats));
            server.serve_with_incoming_shutdown(Router::new(sim), incoming, shutdown_signal()).await?
        }
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
