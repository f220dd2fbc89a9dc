//! What a gRPC call is for: the model from the trusted headers nginx set (the message's own
//! `model_spec`, or a v2 message's model name, must agree), read from the call's headers only
//! (never its trailers); and the client's `grpc-timeout`.

use std::time::Duration;

use hyper::HeaderMap;
use tfgate_common::echo::quote;
use tfgate_common::{check_name, parse_version_list, Method, VersionSelector};
use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;
use tfgate_proto::tensorflow::serving::ModelSpec;

use crate::request::{header_names, header_text, requested_version, CoreError, Route};
use crate::target::{ModelTarget, VersionRef};

/// The call's model: nginx's, which the message's `model_spec` must agree with.
pub fn route(headers: &HeaderMap, method: Method, spec: Option<&ModelSpec>) -> Result<Route, CoreError> {
    let named = spec.map(|spec| Named {
        field: "model_spec.name",
        model: &spec.name,
        selector: match &spec.version_choice {
            None => VersionSelector::Unspecified,
            Some(VersionChoice::Version(n)) => VersionSelector::Number(*n),
            Some(VersionChoice::VersionLabel(label)) => VersionSelector::Label(label.clone()),
        },
    });
    route_named(headers, method, named)
}

/// The model a message names, whichever API: its name (empty: none), the message field that
/// holds it (for errors), and the version it asks for.
pub struct Named<'a> {
    pub field: &'static str,
    pub model: &'a str,
    pub selector: VersionSelector,
}

/// The call's model: nginx's (`X-Tfgate-Model`), which the message's must agree with, else the
/// message's; the version nginx resolved (`X-Tfgate-Version`), else the message's.
pub fn route_named(headers: &HeaderMap, method: Method, named: Option<Named<'_>>) -> Result<Route, CoreError> {
    let (field, spec_name, selector) = match named {
        Some(Named { field, model, selector }) => (field, model, selector),
        None => ("model_spec.name", "", VersionSelector::Unspecified),
    };
    let trusted = headers.get(header_names::MODEL).map(|v| header_text(v.as_bytes()));
    let model = match trusted {
        // nginx routed it: the message must be for that very model.
        Some(trusted) if !spec_name.is_empty() && trusted != spec_name => {
            return Err(CoreError::invalid(format!(
                "{field} \"{}\" is not the model nginx routed this call for",
                quote(spec_name)
            )))
        }
        Some(trusted) => trusted,
        None if spec_name.is_empty() => return Err(CoreError::invalid(format!("the request has no {field}"))),
        None => spec_name.to_string(),
    };
    check_name(&model, "model name").map_err(|e| CoreError::invalid(e.message))?;
    let trusted_version = headers.get(header_names::VERSION).map(|v| v.as_bytes());
    let exposed_versions =
        headers.get(header_names::VERSIONS).and_then(|v| parse_version_list(v.as_bytes())).unwrap_or_default();
    Ok(Route {
        method,
        requested: requested_version(&selector, headers),
        target: ModelTarget { version: VersionRef::resolve(trusted_version, &selector), model },
        exposed_versions,
    })
}

/// The signature a Predict names (TF Serving's default when none).
pub fn signature_name(spec: Option<&ModelSpec>) -> String {
    spec.map(|s| s.signature_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| tfgate_proto::DEFAULT_SIGNATURE.to_string())
}

/// The client's `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn client_timeout(headers: &HeaderMap) -> Option<Duration> {
    parse_grpc_timeout(headers.get("grpc-timeout")?.as_bytes())
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
