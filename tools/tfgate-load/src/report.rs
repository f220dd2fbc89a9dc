//! Latencies of one or more clients and the summary line.

use std::time::Duration;

use crate::args::Load;

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    /// The server declined it for now (HTTP 503 or 429, gRPC UNAVAILABLE or
    /// RESOURCE_EXHAUSTED): the caller may retry elsewhere or later.
    Refused,
    /// Any other failure: an error status, a broken connection.
    Failed,
    /// No answer within `--give-up`: the client hung up.
    GaveUp,
}

#[derive(Default, Clone)]
pub struct Recorder {
    /// Answered requests' latencies in microseconds.
    latencies: Vec<u64>,
    /// How long refusals took, in microseconds: a refusal is only useful when it is quick.
    refusals: Vec<u64>,
    errors: u64,
    gave_up: u64,
    /// Open loop: some requests were still unanswered when the run ended.
    unanswered: bool,
}

/// The first failure of a run, on stderr (the summary line only counts them).
pub fn first_error(what: &str) {
    static REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !REPORTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        eprintln!("tfgate-load: first error: {what}");
    }
}

impl Recorder {
    pub fn record(&mut self, latency: Duration, outcome: Outcome) {
        let us = latency.as_micros() as u64;
        match outcome {
            Outcome::Answered => self.latencies.push(us),
            Outcome::Refused => self.refusals.push(us),
            Outcome::Failed => self.errors += 1,
            Outcome::GaveUp => self.gave_up += 1,
        }
    }

    pub fn merge(all: Vec<Recorder>) -> Recorder {
        let mut merged = Recorder::default();
        for r in all {
            merged.latencies.extend(r.latencies);
            merged.refusals.extend(r.refusals);
            merged.errors += r.errors;
            merged.gave_up += r.gave_up;
            merged.unanswered |= r.unanswered;
        }
        merged.sort();
        merged
    }

    pub fn sort(&mut self) {
        self.latencies.sort_unstable();
        self.refusals.sort_unstable();
    }

    pub fn note_unanswered(&mut self) {
        self.unanswered = true;
    }

    /// The `q` quantile (0..=1) of the answered requests' latencies, nearest rank.
    pub fn quantile(&self, q: f64) -> u64 {
        nearest_rank(&self.latencies, q)
    }

    pub fn json_line(&self, mode: &str, load: &Load, measured: Duration) -> String {
        let requests = self.latencies.len();
        let rps = requests as f64 / measured.as_secs_f64().max(1e-9);
        let rate = load.rate.map_or_else(|| "null".to_string(), |r| format!("{r}"));
        format!(
            "{{\"mode\":\"{mode}\",\"concurrency\":{},\"rate\":{rate},\"seconds\":{:.3},\"requests\":{requests},\"errors\":{},\"refused\":{},\"gave_up\":{},\"unanswered\":{},\"rps\":{rps:.1},\"refused_p90_us\":{},\"refused_p99_us\":{},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"max_us\":{}}}",
            load.concurrency,
            measured.as_secs_f64(),
            self.errors,
            self.refusals.len(),
            self.gave_up,
            self.unanswered,
            nearest_rank(&self.refusals, 0.9),
            nearest_rank(&self.refusals, 0.99),
            self.quantile(0.5),
            self.quantile(0.9),
            self.quantile(0.99),
            self.latencies.last().copied().unwrap_or(0),
        )
    }
}

/// The `q` quantile (0..=1) of sorted values, nearest rank; 0 when there are none.
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut a = Recorder::default();
        for us in (1..=100).rev() {
            a.record(Duration::from_micros(us), Outcome::Answered);
        }
        let mut b = Recorder::default();
        b.record(Duration::from_micros(5), Outcome::Failed);
        b.record(Duration::from_micros(700), Outcome::Refused);
        b.record(Duration::from_micros(900), Outcome::GaveUp);
        let m = Recorder::merge(vec![a, b]);
        assert_eq!((m.quantile(0.5), m.quantile(0.99), m.quantile(1.0)), (50, 99, 100));
        let load = Load {
            concurrency: 4,
            rate: None,
            requests: None,
            duration: Duration::from_secs(2),
            warmup: Duration::ZERO,
            threads: 1,
            seed: 1,
            give_up: None,
        };
        let line = m.json_line("http", &load, load.duration);
        assert!(line.contains("\"requests\":100,\"errors\":1,\"refused\":1,\"gave_up\":1,\"unanswered\":false,\"rps\":50.0,\"refused_p90_us\":700,\"refused_p99_us\":700"), "{line}");
        assert_eq!(Recorder::default().quantile(0.5), 0);
    }
}
