//! The dispatch policy against a simulated accelerator and simulated clients: the load shapes
//! the benchmark measures for real (`scripts/bench-batching.sh`), reproduced deterministically
//! in `cargo test`.

mod engine;
#[cfg(test)]
mod tests;
