//! Quotas in answers: the two fields of draft-ietf-httpapi-ratelimit-headers-11
//! (`RateLimit-Policy` on every answer to a limited caller, `RateLimit` on the answers to calls
//! that were counted), as REST headers and as gRPC metadata alike.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use crate::admission::quota::plan::LimitSet;
use crate::admission::quota::Standing;

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

/// The fields an answer carries: where a counted caller stands, else a limited caller's policy.
pub fn write_fields(headers: &mut HeaderMap, standing: Option<&Standing>, limits: Option<&LimitSet>) {
    match (standing, limits) {
        (Some(standing), _) => write(headers, standing),
        (None, Some(limits)) => write_policy(headers, limits),
        (None, None) => {}
    }
}
