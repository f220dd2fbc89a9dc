//! `[tracing]`: request traces over OTLP/gRPC (see `trace`).

use serde::Deserialize;

use super::{err, ConfigError};
use crate::trace::TracingSettings;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    pub otlp_endpoint: Option<String>,
    pub sampling_ratio: Option<f64>,
}

pub fn resolve(raw: Option<RawTracing>) -> Result<TracingSettings, ConfigError> {
    let Some(raw) = raw else { return Ok(TracingSettings::default()) };
    let sampling_ratio = raw.sampling_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sampling_ratio) {
        return err(format!("tracing.sampling_ratio: {sampling_ratio} is not between 0 and 1"));
    }
    let otlp_endpoint = match raw.otlp_endpoint {
        Some(endpoint) => Some(check_endpoint(endpoint)?),
        None if raw.sampling_ratio.is_some() => return err("tracing.sampling_ratio: needs tracing.otlp_endpoint"),
        None => None,
    };
    Ok(TracingSettings { otlp_endpoint, sampling_ratio })
}

/// `http://HOST:PORT`: OTLP over gRPC in plain text, as collectors listen on 4317 next to
/// what they collect from (a local agent or sidecar carries traces further, over TLS if need
/// be). No path: OTLP/gRPC has one.
fn check_endpoint(endpoint: String) -> Result<String, ConfigError> {
    let key = "tracing.otlp_endpoint";
    let Some(authority) = endpoint.strip_prefix("http://") else {
        return err(format!(
            "{key}: {endpoint:?} is not http://HOST:PORT (OTLP over gRPC in plain text; for TLS, export to a local collector)"
        ));
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    match authority.parse::<hyper::http::uri::Authority>() {
        Ok(parsed) if parsed.as_str() == authority && !parsed.host().is_empty() && !authority.contains('@') => {
            Ok(format!("http://{authority}"))
        }
        _ => err(format!("{key}: {endpoint:?} is not http://HOST:PORT")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(endpoint: Option<&str>, ratio: Option<f64>) -> Result<TracingSettings, ConfigError> {
        resolve(Some(RawTracing { otlp_endpoint: endpoint.map(str::to_string), sampling_ratio: ratio }))
    }

    #[test]
    fn off_unless_an_endpoint_is_given() {
        assert_eq!(resolve(None).unwrap(), TracingSettings::default());
        assert_eq!(TracingSettings::default().otlp_endpoint, None);
        assert!(parse(None, Some(0.5)).unwrap_err().0.contains("needs tracing.otlp_endpoint"));
    }

    #[test]
    fn endpoints_are_plain_grpc_host_and_port() {
        let settings = parse(Some("http://collector:4317/"), None).unwrap();
        assert_eq!(settings.otlp_endpoint.as_deref(), Some("http://collector:4317"));
        assert_eq!(settings.sampling_ratio, 1.0);
        assert_eq!(parse(Some("http://[::1]:4317"), Some(0.0)).unwrap().sampling_ratio, 0.0);
        for bad in ["https://collector:4317", "collector:4317", "http://", "http://a:4317/v1/traces", "http://u@a:1"] {
            assert!(parse(Some(bad), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn ratios_are_shares() {
        for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(parse(Some("http://a:4317"), Some(bad)).unwrap_err().0.contains("between 0 and 1"), "{bad}");
        }
    }
}
