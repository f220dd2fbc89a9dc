//! What a gRPC call is for: the model from the trusted headers nginx set (the message's own
//! `model_spec` must agree), and the deadline (`grpc-timeout`, bounded by the model's
//! `timeout_ms`).

use std::time::Duration;

use tfgate_common::{check_name, headers, VersionSelector};
use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::ModelSpec;
use tonic::metadata::MetadataMap;

use super::CallTrail;
use crate::app::App;
use crate::request::{header_text, requested_version, CoreError, RequestInfo};
use crate::target::{ModelTarget, VersionRef};

/// A call, understood.
pub(super) struct Call {
    pub target: ModelTarget,
    pub signature_name: String,
    /// Its deadline is the earlier of `grpc-timeout` and the model's `timeout_ms`.
    pub info: RequestInfo,
    /// The model's `timeout_ms`: bounds the metadata fetch too.
    pub timeout: Duration,
}

/// The call's model (nginx's, which the message's `model_spec` must agree with) and deadline;
/// the audit record learns them.
pub(super) fn understand(
    app: &App,
    metadata: &MetadataMap,
    mut info: RequestInfo,
    spec: Option<&ModelSpec>,
    trail: &CallTrail,
) -> Result<Call, CoreError> {
    let spec_name = spec.map_or("", |s| s.name.as_str());
    let trusted = metadata.get(headers::MODEL.to_ascii_lowercase().as_str()).map(|v| header_text(v.as_bytes()));
    let model = match trusted {
        // nginx routed it: the message must be for that very model.
        Some(trusted) if !spec_name.is_empty() && trusted != spec_name => {
            return Err(CoreError::invalid(format!(
                "model_spec.name \"{}\" is not the model nginx routed this call for",
                spec_name.get(..64).unwrap_or(spec_name)
            )))
        }
        Some(trusted) => trusted,
        None if spec_name.is_empty() => return Err(CoreError::invalid("the request has no model_spec.name")),
        None => spec_name.to_string(),
    };
    check_name(&model, "model name").map_err(|e| CoreError::invalid(e.message))?;
    let selector = match spec.and_then(|s| s.version_choice.as_ref()) {
        None => VersionSelector::Unspecified,
        Some(VersionChoice::Version(n)) => VersionSelector::Number(*n),
        Some(VersionChoice::VersionLabel(label)) => VersionSelector::Label(label.clone()),
    };
    let trusted_version = metadata.get(headers::VERSION.to_ascii_lowercase().as_str()).map(|v| v.as_bytes());
    let target = ModelTarget { version: VersionRef::resolve(trusted_version, &selector), model };
    trail.with(|trail| {
        if let Some(record) = trail.record() {
            record.target(&target.model, &target.version, requested_version(&selector, metadata.as_ref()));
        }
    });
    let timeout = app.config().batching_for(&target.model).timeout;
    let allowed = grpc_timeout(metadata).map_or(timeout, |t| t.min(timeout));
    info.deadline = info.received + allowed;
    let signature_name = spec.map(|s| s.signature_name.clone()).filter(|s| !s.is_empty());
    Ok(Call { target, signature_name: signature_name.unwrap_or_else(|| DEFAULT_SIGNATURE.to_string()), info, timeout })
}

/// TF Serving's signature when a request names none.
pub(super) const DEFAULT_SIGNATURE: &str = "serving_default";

/// The client's `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    parse_grpc_timeout(metadata.get("grpc-timeout")?.as_bytes())
}

fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_grpc_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout(b"99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in [&b""[..], b"m", b"123456789S", b"10x", b"-1S", b"1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
