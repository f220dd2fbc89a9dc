//! Quotas in REST answers: the two fields of draft-ietf-httpapi-ratelimit-headers-11 as
//! headers (`RateLimit-Policy` on every answer to a limited caller, `RateLimit` on the answers
//! to requests that were counted), and refusals as JSON errors with `Retry-After`.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::error::{ApiError, HttpResponse};
use crate::admission::quota::plan::LimitSet;
use crate::admission::quota::{Refusal, Standing};

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Both fields of `standing` (`RateLimit` only when the counters are known).
pub fn write(headers: &mut HeaderMap, standing: &Standing) {
    insert_policy(headers, standing.limits());
    let field = standing.ratelimit_field().map(|field| HeaderValue::from_maybe_shared(Bytes::from(field)));
    if let Some(Ok(value)) = field {
        headers.insert(RATELIMIT, value);
    }
}

/// `RateLimit-Policy` for an answer that was not counted (status, metadata, or a request
/// refused before its quotas were asked).
pub fn write_policy(headers: &mut HeaderMap, limits: &LimitSet) {
    insert_policy(headers, limits);
}

fn insert_policy(headers: &mut HeaderMap, limits: &LimitSet) {
    // The field is visible ASCII (quoted names escape everything else), so this never fails.
    if let Ok(value) = HeaderValue::from_maybe_shared(limits.policy_bytes()) {
        headers.insert(RATELIMIT_POLICY, value);
    }
}

/// The answer to a request the quotas refused: 429 with `Retry-After` (503 when the store
/// failed and `on_store_failure = "deny"`), and the fields.
pub fn refused(refusal: Refusal) -> HttpResponse {
    let mut response = ApiError::from(refusal.error).into_response();
    write(response.headers_mut(), &refusal.standing);
    response
}

/// The rows of a classify or regress request: its `examples`; `None` when the body is not a
/// JSON object whose `examples` (if any) is a list, once. Such a body is refused rather than
/// counted as nothing: TF Serving's parser may take what serde refuses (a repeated
/// `"examples"` key) and would then run examples no quota counted.
pub fn example_count(body: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Examples {
        #[serde(default)]
        examples: Vec<IgnoredAny>,
    }
    serde_json::from_slice::<Examples>(body).ok().map(|parsed| parsed.examples.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_are_counted_as_rows() {
        assert_eq!(example_count(br#"{"examples": [{"x": 1}, {"x": [2, 3]}], "context": {"y": 1}}"#), Some(2));
        assert_eq!(example_count(br#"{"signature_name": "s"}"#), Some(0));
        assert_eq!(example_count(b"not json"), None);
        assert_eq!(example_count(br#"{"examples": [], "examples": [{"x": 1}]}"#), None, "a repeated key");
    }
}
