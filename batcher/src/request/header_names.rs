//! The headers the daemon reads on every call, as hyper's names: a `&str` name is parsed (and
//! lowercased) again at each lookup, these once. The trusted ones are
//! `tfgate_common::headers`'s, which a test holds them to.

use hyper::header::HeaderName;

pub const SUBJECT: HeaderName = HeaderName::from_static("x-tfgate-subject");
pub const MODEL: HeaderName = HeaderName::from_static("x-tfgate-model");
pub const VERSION: HeaderName = HeaderName::from_static("x-tfgate-version");
pub const LABEL: HeaderName = HeaderName::from_static("x-tfgate-label");
pub const VERSIONS: HeaderName = HeaderName::from_static("x-tfgate-versions");
pub const PLAN: HeaderName = HeaderName::from_static("x-tfgate-plan");
pub const CLIENT: HeaderName = HeaderName::from_static("x-tfgate-client");
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// W3C trace context, passed by nginx unchanged.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

#[cfg(test)]
mod tests {
    use super::*;
    use tfgate_common::headers;

    #[test]
    fn the_names_are_the_ones_nginx_sets() {
        for (ours, module) in [
            (SUBJECT, headers::SUBJECT),
            (MODEL, headers::MODEL),
            (VERSION, headers::VERSION),
            (LABEL, headers::LABEL),
            (VERSIONS, headers::VERSIONS),
            (PLAN, headers::PLAN),
            (CLIENT, headers::CLIENT),
            (REQUEST_ID, headers::REQUEST_ID),
        ] {
            assert_eq!(ours, HeaderName::from_bytes(module.as_bytes()).unwrap(), "{module}");
        }
    }
}
