//! The OTLP side of request traces: the exporter, the sampler, and the `tracing` layer that
//! turns the request spans into OpenTelemetry spans. Built once at start-up, inside the async
//! runtime (the gRPC exporter's connection runs on it); a reload does not change it.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Link, SpanKind, TraceId, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample};
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::{TracingSettings, BATCH, TARGET};
use crate::log_limit::LogLimit;

/// Spans being exported: flushed when the daemon stops.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Sends what is still buffered (within a few seconds) and stops exporting.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::warn!("traces: the last spans may not have been exported: {e}");
        }
    }
}

/// The layer that exports the request spans (and nothing else) to `settings.otlp_endpoint`;
/// `None` when tracing is off. Must be called inside the tokio runtime.
pub fn layer<S>(settings: &TracingSettings) -> Result<Option<(impl Layer<S>, Exporter)>, String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(endpoint) = &settings.otlp_endpoint else { return Ok(None) };
    // Once per process: the layer is built once, at start-up.
    let _ = SAMPLING_RATIO.set(settings.sampling_ratio);
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|e| format!("[tracing] otlp_endpoint = {endpoint:?}: {e}"))?;
    let exporter = Watched { inner: exporter, endpoint: endpoint.clone(), failures: Mutex::new(FAILURE_LOG) };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(CallsFirst)
        .with_resource(Resource::builder().with_service_name("tfgate-batcher").build())
        .build();
    let tracer = provider.tracer("tfgate-batcher");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
        .with_tracked_inactivity(false);
    let only_requests = filter_fn(|metadata| metadata.target() == TARGET);
    Ok(Some((layer.with_filter(only_requests), Exporter { provider })))
}

/// A failed export is logged at most this often (with how many failed since).
const FAILURE_LOG: LogLimit = LogLimit::new(Duration::from_secs(60));

/// The OTLP exporter, saying when exports fail: the SDK's own logs are off (they would go to
/// the log for every span dropped), and a collector that is down must not go unnoticed.
#[derive(Debug)]
struct Watched {
    inner: SpanExporter,
    endpoint: String,
    failures: Mutex<LogLimit>,
}

impl opentelemetry_sdk::trace::SpanExporter for Watched {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        if let Err(e) = &result {
            let log = self.failures.lock().ok().and_then(|mut limit| limit.event(Instant::now()));
            if let Some(more) = log {
                tracing::warn!(
                    "traces: {spans} spans not exported to {} ({more} more failed exports since the last warning): {e}",
                    self.endpoint
                );
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// `sampling_ratio`, once tracing is on.
static SAMPLING_RATIO: OnceLock<f64> = OnceLock::new();

/// Whether request traces are exported (the layer was built).
pub(super) fn is_on() -> bool {
    SAMPLING_RATIO.get().is_some()
}

/// Whether a call is traced: as its caller's `traceparent` says (OpenTelemetry's parent-based
/// sampling), else by `sampling_ratio`. Decided before its span exists, so that a call not
/// traced costs a random draw; a root's trace id is random anyway, so drawing here is the
/// same as the SDK's ratio sampler drawing on it.
pub(super) fn samples(traceparent: Option<&str>) -> bool {
    match traceparent {
        Some(traceparent) => sampled_flag(traceparent),
        None => {
            let ratio = SAMPLING_RATIO.get().copied().unwrap_or(0.0);
            ratio >= 1.0 || (ratio > 0.0 && rand::random::<f64>() < ratio)
        }
    }
}

/// The `sampled` bit of a `traceparent`'s flags (`00-TRACE-PARENT-FLAGS`).
fn sampled_flag(traceparent: &str) -> bool {
    traceparent.get(53..55).and_then(|flags| u8::from_str_radix(flags, 16).ok()).is_some_and(|flags| flags & 1 == 1)
}

/// Which spans the SDK records: a call's span exists only when the call is traced
/// ([`samples`]), so it is; a batch is recorded when, and only when, a call it carries is (it
/// has no parent, only links to its traced calls), so that a traced call's batch is never
/// missing whatever the ratio.
#[derive(Debug, Clone)]
struct CallsFirst;

impl ShouldSample for CallsFirst {
    fn should_sample(
        &self,
        _parent: Option<&Context>,
        _trace_id: TraceId,
        name: &str,
        _kind: &SpanKind,
        _attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let decision = if name != BATCH || links.iter().any(|link| link.span_context.is_sampled()) {
            SamplingDecision::RecordAndSample
        } else {
            SamplingDecision::Drop
        };
        SamplingResult { decision, attributes: Vec::new(), trace_state: Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};

    use super::*;

    fn link(sampled: bool) -> Link {
        let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        Link::with_context(SpanContext::new(TraceId::from(7), SpanId::from(9), flags, true, TraceState::default()))
    }

    fn decide(name: &str, links: Vec<Link>) -> SamplingDecision {
        CallsFirst.should_sample(None, TraceId::from(1), name, &SpanKind::Internal, &[], &links).decision
    }

    #[test]
    fn a_call_follows_its_callers_flag() {
        assert!(sampled_flag("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        assert!(sampled_flag("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"));
        assert!(!sampled_flag("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
        assert!(!sampled_flag("00-4bf92f"));
        assert!(samples(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")));
        assert_eq!(decide("call", vec![]), SamplingDecision::RecordAndSample);
    }

    #[test]
    fn a_batch_is_recorded_when_any_call_it_carries_is() {
        assert_eq!(decide(BATCH, vec![link(false), link(true)]), SamplingDecision::RecordAndSample);
        assert_eq!(decide(BATCH, vec![link(false), link(false)]), SamplingDecision::Drop);
        assert_eq!(decide(BATCH, vec![]), SamplingDecision::Drop, "a batch none of whose calls is traced");
    }
}
