//! Which model version a request is for: the path (parsed by the grammar shared with the nginx
//! module), the HTTP method, and the trusted headers nginx set.

use hyper::{HeaderMap, Method as HttpMethod};
use tfgate_common::{parse_rest_path, parse_version_list, PathError};

use crate::request::status::code_of_http_status;
use crate::request::{header_names, requested_version, CoreError, Route};
use crate::target::{ModelTarget, VersionRef};

pub fn route(method: &HttpMethod, path: &str, headers: &HeaderMap) -> Result<Route, CoreError> {
    let parsed = parse_rest_path(path.as_bytes()).map_err(path_error)?;
    let expected = parsed.method.http_method();
    if method.as_str() != expected {
        return Err(CoreError::wrong_method(
            format!("{} is served for {expected} requests only, not {}", parsed.method.as_str(), method.as_str()),
            expected,
        ));
    }
    let trusted_version = headers.get(header_names::VERSION).map(|v| v.as_bytes());
    let version = VersionRef::resolve(trusted_version, &parsed.selector);
    let exposed_versions =
        headers.get(header_names::VERSIONS).and_then(|v| parse_version_list(v.as_bytes())).unwrap_or_default();
    Ok(Route {
        method: parsed.method,
        requested: requested_version(&parsed.selector, headers),
        target: ModelTarget { model: parsed.model, version },
        exposed_versions,
    })
}

/// A path the grammar refuses, with the status the grammar gives it.
fn path_error(PathError { status, message }: PathError) -> CoreError {
    CoreError::new(code_of_http_status(status), message).with_http_status(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use tfgate_common::headers;
    use tfgate_common::Method;

    fn ok(method: HttpMethod, path: &str, version_header: Option<&str>) -> Route {
        let mut headers = HeaderMap::new();
        if let Some(v) = version_header {
            headers.insert(headers::VERSION, HeaderValue::from_str(v).unwrap());
        }
        route(&method, path, &headers).unwrap()
    }

    #[test]
    fn routes_by_path_and_trusted_version() {
        let r = ok(HttpMethod::POST, "/v1/models/half_plus_two:predict", None);
        assert_eq!((r.method, r.target.version), (Method::Predict, VersionRef::Latest));
        let r = ok(HttpMethod::POST, "/v1/models/m/labels/canary:predict", Some("2"));
        assert_eq!(r.target.version, VersionRef::Number(2));
        let r = ok(HttpMethod::GET, "/v1/models/m/labels/canary", Some(""));
        assert_eq!((r.method, r.target.version), (Method::Status, VersionRef::Label("canary".into())));
        let r = ok(HttpMethod::GET, "/v1/models/m/versions/3/metadata", None);
        assert_eq!((r.method, r.target.version), (Method::Metadata, VersionRef::Number(3)));
    }

    #[test]
    fn status_may_be_limited_to_the_exposed_versions() {
        let mut headers = HeaderMap::new();
        headers.insert(headers::VERSIONS, HeaderValue::from_static("1,2"));
        assert_eq!(route(&HttpMethod::GET, "/v1/models/m", &headers).unwrap().exposed_versions, vec![1, 2]);
        headers.insert(headers::VERSIONS, HeaderValue::from_static("1,x"));
        assert!(route(&HttpMethod::GET, "/v1/models/m", &headers).unwrap().exposed_versions.is_empty());
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        let e = route(&HttpMethod::GET, "/v1/models/m:predict", &HeaderMap::new()).unwrap_err();
        assert_eq!((e.http_status(), e.allow), (405, Some("POST")));
        let e = route(&HttpMethod::POST, "/v1/models/m/metadata", &HeaderMap::new()).unwrap_err();
        assert_eq!((e.http_status(), e.allow), (405, Some("GET")));
    }

    #[test]
    fn bad_paths_keep_their_status() {
        assert_eq!(route(&HttpMethod::GET, "/v1/models", &HeaderMap::new()).unwrap_err().http_status(), 400);
        assert_eq!(route(&HttpMethod::GET, "/healthz", &HeaderMap::new()).unwrap_err().http_status(), 404);
    }
}
