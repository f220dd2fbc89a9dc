//! The daemon's metrics (served as Prometheus text on `metrics_listen` at `GET /metrics`).
//! Every family is listed in docs/batcher.md; the names are part of the operator contract.

mod registry;

pub use registry::{Counter, Gauge, Histogram, SecondsCounter, MAX_SERIES};

/// Seconds, from 50 us to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
];
/// Requests decided by one Redis script call.
const QUOTA_BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
/// Rows per batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Declares every family once: the field, its kind, name, help, labels (and buckets). The
/// struct, its constructor and the rendering order all come from this one list.
macro_rules! families {
    ($($field:ident: $kind:ident::new($($arg:expr),+ $(,)?);)+) => {
        pub struct Metrics {
            $(pub $field: $kind,)+
        }

        impl Default for Metrics {
            fn default() -> Self {
                Metrics { $($field: $kind::new($($arg),+),)+ }
            }
        }

        impl Metrics {
            /// Every family in the Prometheus text format.
            pub fn render(&self) -> String {
                let mut out = String::with_capacity(8192);
                $(self.$field.render(&mut out);)+
                out
            }
        }
    };
}

families! {
    // Not process_start_time_seconds: other exporters on the same host (nginx's, Prometheus
    // itself) export that one, and a restart alert should not depend on job names.
    start_time: Gauge::new(
        "tfgate_start_time_seconds",
        "When the daemon started (Unix time, whole seconds): changes() of it counts restarts.",
        &[],
    );
    requests: Counter::new(
        "tfgate_requests_total",
        "Requests answered, by model, requested version, method and HTTP status.",
        &["model", "version", "method", "code"],
    );
    request_seconds: Histogram::new(
        "tfgate_request_duration_seconds",
        "Time from the request's arrival in the daemon to its answer.",
        &["model", "method"],
        LATENCY_BUCKETS,
    );
    grpc_requests: Counter::new(
        "tfgate_grpc_requests_total",
        "gRPC calls answered, by model, version (as nginx resolved it), method and gRPC status code.",
        &["model", "version", "method", "code"],
    );
    grpc_request_seconds: Histogram::new(
        "tfgate_grpc_request_duration_seconds",
        "Time from a gRPC call's arrival in the daemon to its answer.",
        &["model", "method"],
        LATENCY_BUCKETS,
    );
    queue_requests: Gauge::new(
        "tfgate_queue_requests",
        "Predict requests waiting in the model's queue.",
        &["model"],
    );
    queue_rows: Gauge::new(
        "tfgate_queue_rows",
        "Rows (instances) waiting in the model's queue.",
        &["model"],
    );
    inflight_batches: Gauge::new(
        "tfgate_inflight_batches",
        "Batches sent to the backend and not answered yet.",
        &["model"],
    );
    rejected: Counter::new(
        "tfgate_rejected_requests_total",
        "Requests that left without an answer from the model: memory (refused on arrival: max_body_bytes_in_flight was spent, 429, or the request alone exceeds it, 413), queue_full and caller_share (429), deadline (refused on arrival: it could not be answered in time, 503), late (could not finish in time even if sent, 504), timeout (504), cancelled (client gone).",
        &["model", "reason"],
    );
    compute_seconds: SecondsCounter::new(
        "tfgate_compute_seconds_total",
        "Accelerator time spent on answered calls, by model and plan: each call's share (by rows) of its batches' learnt cost.",
        &["model", "plan"],
    );
    batches: Counter::new(
        "tfgate_batches_total",
        "Batches sent, by why they were sent now: full, slot_free, delay_elapsed, hold_elapsed, alone.",
        &["model", "reason"],
    );
    batch_rows: Histogram::new(
        "tfgate_batch_rows",
        "Request rows per batch (padding excluded).",
        &["model"],
        BATCH_BUCKETS,
    );
    batch_padding_rows: Counter::new(
        "tfgate_batch_padding_rows_total",
        "Rows added to reach an allowed batch size.",
        &["model"],
    );
    max_batch_size: Gauge::new(
        "tfgate_max_batch_size",
        "The model's max_batch_size: the most rows a batch may carry, the bound of tfgate_batch_rows (set when the model is first used and on reload).",
        &["model"],
    );
    queue_delay_seconds: Histogram::new(
        "tfgate_queue_delay_seconds",
        "Time a request waited in the queue before its (first) rows were sent.",
        &["model"],
        LATENCY_BUCKETS,
    );
    bisected_batches: Counter::new(
        "tfgate_bisected_batches_total",
        "Batches the backend refused as invalid, re-sent in halves to find the requests at fault.",
        &["model"],
    );
    backend_calls: Counter::new(
        "tfgate_backend_calls_total",
        "gRPC calls to TF Serving, by target, method and gRPC code.",
        &["target", "method", "code"],
    );
    backend_seconds: Histogram::new(
        "tfgate_backend_latency_seconds",
        "gRPC call latency, by target and method.",
        &["target", "method"],
        LATENCY_BUCKETS,
    );
    backend_retries: Counter::new(
        "tfgate_backend_retries_total",
        "Calls retried on another target after this one failed before executing them.",
        &["target"],
    );
    backend_up: Gauge::new(
        "tfgate_backend_up",
        "1 while the target answers, 0 after a transport failure until it answers again.",
        &["target"],
    );
    backend_tls_failures: Counter::new(
        "tfgate_backend_tls_failures_total",
        "TLS handshakes with a TF Serving target that failed, by reason (unknown_ca, expired, name_mismatch, bad_certificate, refused_by_server, handshake).",
        &["target", "reason"],
    );
    backend_tls_state: Gauge::new(
        "tfgate_backend_tls_state",
        "1 for the state of the target's last TLS handshake: ok, or the reason it failed (as in tfgate_backend_tls_failures_total).",
        &["target", "state"],
    );
    certificate_expiry: Gauge::new(
        "tfgate_certificate_expiry_timestamp_seconds",
        "When the earliest certificate of a configured file expires (Unix time), by the key naming the file (backend.tls.ca_file, backend.tls.cert_file, quotas.ca_file, quotas.cert_file).",
        &["key"],
    );
    row_cache_hits: Counter::new(
        "tfgate_row_cache_hits_total",
        "Rows of Predict calls answered from the model's row cache (row_cache).",
        &["model"],
    );
    row_cache_misses: Counter::new(
        "tfgate_row_cache_misses_total",
        "Rows of Predict calls to a model with row_cache not found in its cache (sent, or shared with a row computed now).",
        &["model"],
    );
    row_cache_evictions: Counter::new(
        "tfgate_row_cache_evictions_total",
        "Entries the row cache let go, by reason: size (room for newer ones, row_cache), expired (row_cache_ttl_s).",
        &["model", "reason"],
    );
    row_cache_bytes: Gauge::new(
        "tfgate_row_cache_bytes",
        "Bytes the model's row cache holds, as counted against row_cache.",
        &["model"],
    );
    rows_deduplicated: Counter::new(
        "tfgate_rows_deduplicated_total",
        "Rows of models with row_cache that were not sent because an identical row was being computed: earlier in the same call, or by another call.",
        &["model"],
    );
    peer_refusals: Counter::new(
        "tfgate_peer_refusals_total",
        "Connections to the daemon's Unix sockets refused because the peer's uid is not in allowed_peers, by socket (api, grpc).",
        &["socket"],
    );
    backend_outstanding: Gauge::new(
        "tfgate_backend_outstanding_calls",
        "Calls in flight to the target (the balancing criterion).",
        &["target"],
    );
    backend_targets: Gauge::new(
        "tfgate_backend_targets",
        "Targets a dns:// entry of backend.grpc stands for: the addresses of its last good resolution.",
        &["name"],
    );
    backend_resolutions: Counter::new(
        "tfgate_backend_resolutions_total",
        "Resolutions of dns:// entries, by result: ok, empty (no usable address), error (no answer); after empty or error the last good addresses stay in use.",
        &["name", "result"],
    );
    signature_fetches: Counter::new(
        "tfgate_signature_fetches_total",
        "GetModelMetadata calls made to learn a model version's signatures.",
        &["model"],
    );
    audit_records: Counter::new(
        "tfgate_audit_records_total",
        "Audit records written.",
        &[],
    );
    audit_bytes: Counter::new(
        "tfgate_audit_bytes_total",
        "Bytes written to the audit log.",
        &[],
    );
    audit_dropped: Counter::new(
        "tfgate_audit_dropped_total",
        "Audit records lost: queue_full (the writer fell behind), write_error (the file could not take them), closed (during a reload or shutdown).",
        &["reason"],
    );
    prediction_log_records: Counter::new(
        "tfgate_prediction_log_records_total",
        "Prediction log records written, by model.",
        &["model"],
    );
    prediction_log_bytes: Counter::new(
        "tfgate_prediction_log_bytes_total",
        "Bytes written to prediction log files.",
        &[],
    );
    prediction_log_dropped: Counter::new(
        "tfgate_prediction_log_dropped_total",
        "Sampled requests not logged: queue_full (the writer fell behind, or the queue's bytes were spent), write_error (the disk could not take them), invalid (the answer could not be cut into the request's rows), closed (during a reload or shutdown).",
        &["reason"],
    );
    prediction_log_files: Counter::new(
        "tfgate_prediction_log_files_total",
        "Prediction log files opened (rotation, reload, start).",
        &[],
    );
    quota_admitted: Counter::new(
        "tfgate_quota_admitted_total",
        "Requests of limited callers admitted by their quotas, by plan (uncounted ones included when the store failed and on_store_failure = allow).",
        &["plan"],
    );
    quota_refused: Counter::new(
        "tfgate_quota_refused_total",
        "Requests refused by their quotas, by plan and by the limit that made them wait longest (store_unavailable: the store failed and on_store_failure = deny; store_full: a new caller and memory_max_keys live records held).",
        &["plan", "limit"],
    );
    quota_store_errors: Counter::new(
        "tfgate_quota_store_errors_total",
        "Admissions the quota store could not decide: unreachable, timeout, error, full (memory_max_keys), overloaded.",
        &["reason"],
    );
    quota_store_up: Gauge::new(
        "tfgate_quota_store_up",
        "1 while the quota store is connected (always, for memory), 0 while Redis cannot be reached.",
        &[],
    );
    quota_store_records: Gauge::new(
        "tfgate_quota_store_records",
        "Counter records the memory store holds (one per caller, and one per caller and model with its own limits), as of its last sweep (every 10 s) or refusal; new callers are refused at memory_max_keys.",
        &[],
    );
    quota_store_batch: Histogram::new(
        "tfgate_quota_store_batch_requests",
        "Requests decided by one Redis script call (requests waiting together go in one round trip).",
        &[],
        QUOTA_BATCH_BUCKETS,
    );
    quota_plan_fallbacks: Counter::new(
        "tfgate_quota_plan_fallbacks_total",
        "Requests whose X-Tfgate-Plan named no configured plan (unknown) or no valid name (malformed), given the default plan.",
        &["reason"],
    );
}
