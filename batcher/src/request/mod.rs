//! The core's vocabulary: who calls (`Caller`, `RequestInfo`), what for (`Route`, the
//! `PredictCall` the batcher takes), and the one error and status vocabulary every ingress
//! encodes back. The call itself, and the path it takes, are `pipeline`'s:
//!
//! ```text
//! ingress/<protocol>/   decode: wire -> Call (or Refused); encode: Outcome -> wire
//! pipeline/             budget -> policy -> convert -> admission -> batching -> backend
//! observe/              sees each call begin and end: metrics, audit and prediction log
//! ```

pub mod error;
pub mod header_names;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::HeaderName;
use hyper::HeaderMap;
use tfgate_common::{echo, headers, Method, VersionSelector};

pub use self::error::CoreError;
pub use self::status::Code;
use crate::convert::{Signatures, Tensor};
use crate::target::ModelTarget;
use crate::trace::CallSpan;

/// How [`Caller::client`] reads when nginx passed no `X-Tfgate-Client`: the daemon's own name
/// for the connection the request came on, followed by its number.
pub const CONNECTION_CLIENT: &str = "connection ";

/// Who sent a request, as nginx established it (trusted headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The verified subject (`X-Tfgate-Subject`); empty for anonymous callers.
    pub subject: String,
    /// The client address nginx saw (`X-Tfgate-Client`); when not passed, the connection
    /// ([`CONNECTION_CLIENT`] and its number).
    pub client: String,
    /// The plan of limits (`X-Tfgate-Plan`); `None`: the default plan.
    pub plan: Option<String>,
}

impl Caller {
    /// The unit of fairness and of quotas: the subject, or for anonymous callers their address
    /// (so that one anonymous client cannot stall all the others).
    pub fn key(&self) -> String {
        if !self.subject.is_empty() {
            format!("sub:{}", self.subject)
        } else {
            format!("addr:{}", self.client)
        }
    }

    /// Whose quotas a request counts against: the subject, else the address nginx passed. An
    /// anonymous request without an address (no `X-Tfgate-Client`: the proxy snippet is not
    /// included) came through one of nginx's upstream connections, which carry many clients'
    /// requests one after another: all such requests share one quota rather than one per
    /// connection, which would limit nothing.
    pub fn quota_key(&self) -> String {
        if self.subject.is_empty() && self.client.starts_with(CONNECTION_CLIENT) {
            "anonymous".to_string()
        } else {
            self.key()
        }
    }
}

/// What every request carries besides its payload.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// nginx's `$request_id` (`X-Request-Id`), for logs.
    pub request_id: String,
    /// A W3C `traceparent`, the parent of the call's span (or passed on to the backend as it
    /// is, with tracing off).
    pub traceparent: Option<String>,
    /// The call's span (`[tracing]`), opened by the pipeline; disabled until then.
    pub trace: CallSpan,
    pub caller: Caller,
    pub received: Instant,
    /// What the caller allows (gRPC's `grpc-timeout`), if it said.
    pub client_timeout: Option<Duration>,
    /// Not sent to the backend after this: the earlier of the client's timeout and the model's
    /// `timeout_ms` (set by the pipeline once the model is known).
    pub deadline: Instant,
    /// A trusted header that cannot be believed as it is (a subject too long to be kept whole):
    /// the pipeline refuses the call rather than merge two callers.
    pub untrusted: Option<String>,
}

/// Which connection a request came on (set by the server): the fairness key of a caller that
/// is neither a subject nor a known address.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionId(pub u64);

impl RequestInfo {
    /// Who is calling, from the trusted headers nginx set (REST headers and gRPC metadata
    /// alike). The deadline is the model's to set; until then it is the arrival.
    pub fn from_headers(headers: &HeaderMap, connection: Option<ConnectionId>, received: Instant) -> RequestInfo {
        let text = |name: HeaderName| headers.get(name).map(|v| header_text(v.as_bytes()));
        let client = text(header_names::CLIENT)
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| connection.map_or_else(String::new, |id| format!("{CONNECTION_CLIENT}{}", id.0)));
        let subject = headers.get(header_names::SUBJECT).map_or(&b""[..], |v| v.as_bytes());
        let untrusted = (subject.len() > headers::MAX_SUBJECT_BYTES).then(|| {
            format!(
                "the caller's subject ({} bytes) is longer than {} bytes; such callers are refused, never cut to one another",
                subject.len(),
                headers::MAX_SUBJECT_BYTES
            )
        });
        RequestInfo {
            request_id: text(header_names::REQUEST_ID).unwrap_or_default(),
            traceparent: text(header_names::TRACEPARENT).filter(|t| is_traceparent(t)),
            trace: CallSpan::default(),
            caller: Caller {
                subject: header_text(subject),
                client,
                plan: text(header_names::PLAN).filter(|p| !p.is_empty()),
            },
            received,
            client_timeout: None,
            deadline: received,
            untrusted,
        }
    }
}

impl RequestInfo {
    /// What is left of the call's time (at least a millisecond, so a call at its deadline still
    /// reads as a timeout rather than nothing).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
    }

    /// The `traceparent` a backend call made for this call alone carries.
    pub fn outgoing_traceparent(&self) -> Option<String> {
        self.trace.outgoing(self.traceparent.as_deref())
    }
}

/// The version or label a request asked for, as the audit log writes it: the label nginx
/// resolved (`X-Tfgate-Label`: the client's, or the model's default label; nginx then rewrites
/// the path to the version it chose), else what the path or message names.
pub fn requested_version(selector: &VersionSelector, headers: &HeaderMap) -> String {
    let label = headers.get(header_names::LABEL).map(|v| header_text(v.as_bytes())).filter(|l| !l.is_empty());
    match (label, selector) {
        (Some(label), _) => format!("label:{label}"),
        (None, VersionSelector::Unspecified) => "latest".to_string(),
        (None, VersionSelector::Number(n)) => n.to_string(),
        (None, VersionSelector::Label(label)) => format!("label:{label}"),
    }
}

/// Which wire a call came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// TF Serving's REST API (HTTP/1.1 from nginx's `proxy_pass`).
    Rest,
    /// TF Serving's gRPC API (HTTP/2 from nginx's `grpc_pass`).
    Grpc,
    /// The Open Inference Protocol's REST API (`/v2/...`, on the REST socket).
    V2Rest,
    /// The Open Inference Protocol's gRPC API (`inference.GRPCInferenceService`, on the gRPC
    /// socket).
    V2Grpc,
}

impl Ingress {
    /// As the audit log, traces and docs name it.
    pub fn name(self) -> &'static str {
        match self {
            Ingress::Rest => "rest",
            Ingress::Grpc => "grpc",
            Ingress::V2Rest => "v2_rest",
            Ingress::V2Grpc => "v2_grpc",
        }
    }

    /// Whether calls come as gRPC (their outcome is a gRPC code) rather than HTTP requests.
    pub fn is_grpc(self) -> bool {
        matches!(self, Ingress::Grpc | Ingress::V2Grpc)
    }
}

/// What a call is for, as nginx routed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub target: ModelTarget,
    /// What the caller asked for, as the audit log writes it (`requested_version`).
    pub requested: String,
    /// The versions nginx's catalog exposes (`X-Tfgate-Versions`); empty: every version.
    pub exposed_versions: Vec<i64>,
}

/// A caller's class, from its plan: a higher `priority` is served first; `weight` is its share
/// against the other callers of its priority (deficit round-robin quantum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub priority: i32,
    pub weight: u32,
}

impl Default for Class {
    fn default() -> Class {
        Class { priority: 0, weight: 1 }
    }
}

/// A Predict call, whichever wire it came in on, with its inputs already tensors.
pub struct PredictCall {
    pub target: ModelTarget,
    pub signature_name: String,
    pub inputs: BTreeMap<String, Tensor>,
    /// The model's signatures the inputs were read with: their shapes say which dimension, if
    /// any, requests may be joined along.
    pub signatures: Arc<Signatures>,
    pub info: RequestInfo,
    /// Its caller's class (priority and weight, from its plan).
    pub class: Class,
}

/// The instances (rows) a Predict call carries, as quotas count them: dimension 0 when every
/// input has it and they agree (`instances` always do), else 1 (a columnar request of scalars
/// or of inputs of different lengths is one instance, as the batcher sends it alone).
pub fn instance_count(inputs: &BTreeMap<String, Tensor>) -> u64 {
    let mut rows = None;
    for tensor in inputs.values() {
        match (tensor.shape.first(), rows) {
            (None, _) => return 1,
            (Some(&n), Some(r)) if n != r => return 1,
            (Some(&n), _) => rows = Some(n),
        }
    }
    rows.map_or(1, |n| n as u64)
}

/// A bounded-length `String` from untrusted header bytes (lossy UTF-8, cut on a character
/// boundary).
pub fn header_text(value: &[u8]) -> String {
    const MAX: usize = 256;
    let text = String::from_utf8_lossy(&value[..value.len().min(MAX)]);
    echo::clip(&text, MAX).to_string()
}

/// A W3C trace context header (`00-<32 hex>-<16 hex>-<2 hex>`, later versions may append
/// fields): only such a value is passed on to the backend.
pub fn is_traceparent(value: &str) -> bool {
    let bytes = value.as_bytes();
    let hex = |range: std::ops::Range<usize>| {
        bytes.get(range).is_some_and(|b| b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
    };
    bytes.len() >= 55
        && bytes.len() <= 512
        && hex(0..2)
        && bytes[2] == b'-'
        && hex(3..35)
        && bytes[35] == b'-'
        && hex(36..52)
        && bytes[52] == b'-'
        && hex(53..55)
        && (bytes.len() == 55 || bytes[55] == b'-')
        && &bytes[0..2] != b"ff"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_headers_are_checked() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_traceparent(good));
        assert!(!is_traceparent(&good.replace('a', "A")));
        assert!(!is_traceparent(&good[..54]));
        assert!(!is_traceparent(&good.replacen("00", "ff", 1)));
        assert!(!is_traceparent("junk\r\nx"));
    }

    #[test]
    fn anonymous_callers_are_told_apart_by_address() {
        let alice = Caller { subject: "alice".into(), client: "10.0.0.1".into(), plan: None };
        let anon = Caller { subject: String::new(), client: "10.0.0.1".into(), plan: None };
        assert_eq!(alice.key(), "sub:alice");
        assert_eq!(anon.key(), "addr:10.0.0.1");
        // A subject that looks like an address key is still a subject.
        let tricky = Caller { subject: "addr:10.0.0.1".into(), ..Caller::default() };
        assert_ne!(tricky.key(), anon.key());
    }

    #[test]
    fn the_requested_version_is_the_label_nginx_resolved_else_the_path() {
        let mut headers = HeaderMap::new();
        assert_eq!(requested_version(&VersionSelector::Unspecified, &headers), "latest");
        assert_eq!(requested_version(&VersionSelector::Number(2), &headers), "2");
        assert_eq!(requested_version(&VersionSelector::Label("canary".into()), &headers), "label:canary");
        // A default label: nginx rewrote the path to the version it chose, and says which label.
        headers.insert(headers::LABEL, "stable".parse().unwrap());
        assert_eq!(requested_version(&VersionSelector::Number(1), &headers), "label:stable");
    }

    #[test]
    fn callers_known_only_by_connection_share_one_quota() {
        let by_connection = |n: u32| Caller { client: format!("{CONNECTION_CLIENT}{n}"), ..Caller::default() };
        assert_ne!(by_connection(1).key(), by_connection(2).key());
        assert_eq!(by_connection(1).quota_key(), by_connection(2).quota_key());
        let alice = Caller { subject: "alice".into(), client: format!("{CONNECTION_CLIENT}1"), plan: None };
        assert_eq!(alice.quota_key(), "sub:alice");
        let anon = Caller { client: "10.0.0.1".into(), ..Caller::default() };
        assert_eq!(anon.quota_key(), "addr:10.0.0.1");
    }

    #[test]
    fn instances_are_dimension_zero_when_the_inputs_agree() {
        use crate::convert::{Dtype, Values};
        let tensor = |shape: &[usize]| Tensor {
            dtype: Dtype::Float,
            shape: shape.to_vec(),
            values: Values::F32(vec![0.0; shape.iter().product()]),
        };
        let inputs = |shapes: &[&[usize]]| -> BTreeMap<String, Tensor> {
            shapes.iter().enumerate().map(|(i, s)| (format!("x{i}"), tensor(s))).collect()
        };
        assert_eq!(instance_count(&inputs(&[&[7, 3], &[7]])), 7);
        assert_eq!(instance_count(&inputs(&[&[7], &[2]])), 1);
        assert_eq!(instance_count(&inputs(&[&[], &[4]])), 1);
        assert_eq!(instance_count(&inputs(&[&[0]])), 0);
    }
}
