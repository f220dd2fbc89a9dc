//! tfgate-load: N concurrent clients for a fixed time, each sending one request after another,
//! then one JSON line with throughput and latency percentiles. Two modes:
//!
//! - `http`: POSTs a body to a URL over keep-alive HTTP/1.1 connections (one per client),
//!   e.g. TF Serving REST through nginx and tfgate.
//! - `grpc`: Predict calls with one row (`half_plus_two`-style float input `x`) straight to a
//!   TF Serving gRPC target, over one shared HTTP/2 connection, as a batching-unaware client.
//!
//! Layout: `args` (command line), `http` and `grpc` (the clients), `report` (latencies).

mod args;
mod grpc;
mod http;
mod report;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use args::{Mode, Options};
use report::Recorder;

fn main() -> ExitCode {
    let options = match args::parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tfgate-load: {e}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let mut builder = if options.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(options.threads);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tfgate-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&options)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tfgate-load: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: &Options) -> Result<String, String> {
    let start = Instant::now();
    let measure_from = start + options.warmup;
    let stop_at = measure_from + options.duration;
    let window = Window { measure_from, stop_at };
    let recorders = match &options.mode {
        Mode::Http { url, body } => http::run(url, body, options.concurrency, window).await?,
        Mode::Grpc { target, model, version } => {
            grpc::run(target, model, *version, options.concurrency, window).await?
        }
    };
    let merged = Recorder::merge(recorders);
    Ok(merged.json_line(options.mode.name(), options.concurrency, options.duration))
}

/// When requests count (those completed after the warm-up) and when clients stop.
#[derive(Clone, Copy)]
pub struct Window {
    pub measure_from: Instant,
    pub stop_at: Instant,
}

impl Window {
    /// Records a request that started at `started` and just finished: counted when it
    /// finished inside the window (so slow requests count in throughput even if they started
    /// during the warm-up).
    pub fn record(&self, recorder: &mut Recorder, started: Instant, ok: bool) {
        let now = Instant::now();
        if now >= self.measure_from && now <= self.stop_at {
            recorder.record(now - started, ok);
        }
    }

    pub fn over(&self) -> bool {
        Instant::now() >= self.stop_at
    }
}

/// How long a failing client waits before trying again (keeps a dead target from spinning).
pub const ERROR_PAUSE: Duration = Duration::from_millis(10);
