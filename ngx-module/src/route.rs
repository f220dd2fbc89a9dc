//! Routing decisions for TF Serving REST requests, independent of nginx.

use tfgate_common::{headers, parse_rest_path, ModelPath, PathError, VersionSelector};

use crate::catalog::Catalog;

/// What the module does with a request in a location with `tfgate_route on`.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteDecision {
    /// Pass it on, with these trusted headers.
    Forward { path: ModelPath, trusted_headers: Vec<(&'static str, String)> },
    /// Answer it here with this status and error message.
    Refuse { status: u16, message: String },
}

/// Decides what to do with a request given its HTTP method and raw path (no query string).
pub fn route_request(catalog: &Catalog, http_method: &str, raw_path: &[u8]) -> RouteDecision {
    let path = match parse_rest_path(raw_path) {
        Ok(path) => path,
        Err(PathError { status, message }) => return RouteDecision::Refuse { status, message },
    };
    let expected = path.method.http_method();
    if !http_method.eq_ignore_ascii_case(expected) {
        return RouteDecision::Refuse {
            status: 405,
            message: format!("{} needs {expected}, got {}", path.method.as_str(), truncate(http_method)),
        };
    }
    let path = match catalog.resolve(path) {
        Ok(path) => path,
        Err((status, message)) => return RouteDecision::Refuse { status, message },
    };
    let trusted_headers = trusted_headers_for(&path);
    RouteDecision::Forward { path, trusted_headers }
}

/// The decision as headers the daemon can trust (the client's own `X-Tfgate-*` are removed).
fn trusted_headers_for(path: &ModelPath) -> Vec<(&'static str, String)> {
    let mut out = vec![(headers::MODEL, path.model.clone()), (headers::METHOD, path.method.as_str().to_owned())];
    match &path.selector {
        VersionSelector::Unspecified => {}
        VersionSelector::Number(n) => out.push((headers::VERSION, n.to_string())),
        VersionSelector::Label(label) => out.push((headers::LABEL, label.clone())),
    }
    out
}

fn truncate(s: &str) -> &str {
    s.get(..16).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ModelDecl;

    fn route_request(http_method: &str, raw_path: &[u8]) -> RouteDecision {
        super::route_request(&Catalog::default(), http_method, raw_path)
    }

    #[test]
    fn the_catalog_default_becomes_the_trusted_version() {
        let mut catalog = Catalog::default();
        catalog.add(ModelDecl::parse(&["m", "versions=1,2", "default=1"]).unwrap()).unwrap();
        let RouteDecision::Forward { trusted_headers, .. } = super::route_request(&catalog, "POST", b"/v1/models/m:predict") else {
            panic!("refused");
        };
        assert!(trusted_headers.contains(&(headers::VERSION, "1".to_owned())));
        assert!(matches!(
            super::route_request(&catalog, "POST", b"/v1/models/x:predict"),
            RouteDecision::Refuse { status: 404, .. }
        ));
    }

    #[test]
    fn forwards_a_predict_with_trusted_headers() {
        let RouteDecision::Forward { path, trusted_headers } = route_request("POST", b"/v1/models/half_plus_two/versions/2:predict") else {
            panic!("refused");
        };
        assert_eq!(path.model, "half_plus_two");
        assert_eq!(
            trusted_headers,
            vec![
                (headers::MODEL, "half_plus_two".to_owned()),
                (headers::METHOD, "predict".to_owned()),
                (headers::VERSION, "2".to_owned())
            ]
        );
    }

    #[test]
    fn labels_travel_as_their_own_header() {
        let RouteDecision::Forward { trusted_headers, .. } = route_request("GET", b"/v1/models/m/labels/canary") else {
            panic!("refused");
        };
        assert!(trusted_headers.contains(&(headers::LABEL, "canary".to_owned())));
        assert!(trusted_headers.contains(&(headers::METHOD, "status".to_owned())));
    }

    #[test]
    fn wrong_http_method_is_405() {
        assert!(matches!(route_request("GET", b"/v1/models/m:predict"), RouteDecision::Refuse { status: 405, .. }));
        assert!(matches!(route_request("POST", b"/v1/models/m/metadata"), RouteDecision::Refuse { status: 405, .. }));
    }

    #[test]
    fn malformed_paths_are_refused_with_the_grammar_status() {
        assert!(matches!(route_request("POST", b"/v1/models/a%2Fb:predict"), RouteDecision::Refuse { status: 400, .. }));
        assert!(matches!(route_request("POST", b"/v1/models/m:explain"), RouteDecision::Refuse { status: 404, .. }));
    }
}
