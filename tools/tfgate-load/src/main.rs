//! tfgate-load: load for tfgate's benchmarks, then one JSON line with throughput and latency
//! percentiles. Two protocols (see `tfgate-load --help`):
//!
//! - `http`: POSTs a body to a URL over keep-alive HTTP/1.1 connections (one per client),
//!   e.g. TF Serving REST through nginx and tfgate.
//! - `grpc`: Predict calls over one HTTP/2 connection, straight to TF Serving or through a gRPC
//!   gateway.
//! - `v2-grpc`: the Open Inference Protocol's ModelInfer, the same way.
//!
//! Layout: `args` (command line), `driver` (closed and open loop), `http` and `grpc` (the
//! clients), `inputs` (a fixed body, or rows drawn per request), `report` (latencies).

mod args;
mod driver;
mod grpc;
mod http;
mod inputs;
mod report;

use std::process::ExitCode;

use args::{header_pair, Mode, Options};
use bytes::Bytes;
use clap::Parser;
use inputs::Inputs;

fn main() -> ExitCode {
    let options = Options::parse();
    let mut builder = if options.load.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(usize::from(options.load.threads));
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
    let load = &options.load;
    let (recorder, measured) = match &options.mode {
        Mode::Http { url, body, body_file, zipf, distinct, headers } => {
            let inputs = match (zipf, distinct, body_file) {
                (Some(n), _, _) => Inputs::zipf(*n),
                (None, true, _) => Inputs::distinct(load.seed),
                (None, false, Some(path)) => Inputs::Fixed(Bytes::from(
                    std::fs::read(path).map_err(|e| format!("--body-file {}: {e}", path.display()))?,
                )),
                (None, false, None) => Inputs::Fixed(Bytes::from(body.as_bytes().to_vec())),
            };
            let headers = headers.iter().map(|h| header_pair(h)).collect::<Result<Vec<_>, _>>()?;
            driver::run(http::Http::new(url, inputs, load.seed, &headers)?, load).await?
        }
        Mode::Grpc { target, model, version, row_floats, tensor_content, metadata } => {
            let metadata = metadata.iter().map(|h| header_pair(h)).collect::<Result<Vec<_>, _>>()?;
            let spec = grpc::Spec {
                v2: false,
                target,
                model,
                version: *version,
                row_floats: *row_floats,
                tensor_content: *tensor_content,
                metadata: &metadata,
            };
            driver::run(grpc::Grpc::new(&spec)?, load).await?
        }
        Mode::V2Grpc { target, model, version, row_floats, metadata } => {
            let metadata = metadata.iter().map(|h| header_pair(h)).collect::<Result<Vec<_>, _>>()?;
            let spec = grpc::Spec {
                v2: true,
                target,
                model,
                version: *version,
                row_floats: *row_floats,
                tensor_content: true,
                metadata: &metadata,
            };
            driver::run(grpc::Grpc::new(&spec)?, load).await?
        }
    };
    Ok(recorder.json_line(options.mode.name(), load, measured))
}
