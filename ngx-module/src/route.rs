//! Routing decisions for TF Serving requests, independent of nginx. Two stages: before the
//! token check (is this a REST request we serve at all? a gRPC call's counterpart is
//! [`crate::access::parse_grpc`]) and after it, for REST and gRPC requests alike (which version,
//! and may this caller use this model?).

use tfgate_common::{headers, parse_rest_path, ModelPath, PathError, VersionSelector};

use crate::catalog::{Catalog, Resolved};
use crate::jwt::{claims::has_scopes, JwtError, Verified};

/// Why a request is refused.
#[derive(Debug)]
pub enum Refused {
    /// Malformed, unknown or not allowed: status and message.
    Status(u16, String),
    /// Authorization: answered like a token refusal (403 with `insufficient_scope`).
    Token(JwtError),
}

/// Stage 1, before any token work: the path grammar, the HTTP method, and the catalog.
pub fn parse_request(catalog: &Catalog, http_method: &str, raw_path: &[u8]) -> Result<ModelPath, Refused> {
    let path = parse_rest_path(raw_path).map_err(|PathError { status, message }| Refused::Status(status, message))?;
    let expected = path.method.http_method();
    if !http_method.eq_ignore_ascii_case(expected) {
        return Err(Refused::Status(
            405,
            format!("{} needs {expected}, got {}", path.method.as_str(), http_method.get(..16).unwrap_or(http_method)),
        ));
    }
    catalog.check(&path).map_err(|(status, message)| Refused::Status(status, message))?;
    Ok(path)
}

/// A request ready to go upstream.
#[derive(Debug, PartialEq, Eq)]
pub struct Routed {
    pub resolved: Resolved,
    /// The decision as headers the daemon can trust (the client's own `X-Tfgate-*` are removed).
    pub trusted_headers: Vec<(&'static str, String)>,
}

/// Per-model authorization: a model declared with `scope=` needs a verified token carrying
/// all of them.
pub fn authorize(catalog: &Catalog, path: &ModelPath, token: Option<&Verified>) -> Result<(), Refused> {
    let Some(model) = catalog.model(&path.model) else {
        return Ok(());
    };
    if model.scopes.is_empty() || token.is_some_and(|t| has_scopes(&t.claims, &model.scopes)) {
        return Ok(());
    }
    Err(Refused::Token(JwtError::Forbidden {
        description: "the token lacks a scope this model requires",
        scope: Some(model.scopes.join(" ")),
    }))
}

/// Stage 2: default/label/split resolution. `subject` keeps canary splits sticky: the verified
/// subject, or a stable client key (the client address) for anonymous callers.
pub fn route_request(catalog: &Catalog, path: ModelPath, subject: &str) -> Routed {
    let resolved = catalog.resolve(path, subject);
    let trusted_headers = trusted_headers_for(&resolved);
    Routed { resolved, trusted_headers }
}

fn trusted_headers_for(resolved: &Resolved) -> Vec<(&'static str, String)> {
    let path = &resolved.path;
    let mut out = vec![(headers::MODEL, path.model.clone()), (headers::METHOD, path.method.as_str().to_owned())];
    match &path.selector {
        VersionSelector::Number(n) => out.push((headers::VERSION, n.to_string())),
        VersionSelector::Label(_) | VersionSelector::Unspecified => {}
    }
    if let Some(label) = &resolved.label {
        out.push((headers::LABEL, label.clone()));
    }
    if !resolved.listed_versions.is_empty() {
        out.push((headers::VERSIONS, tfgate_common::format_version_list(&resolved.listed_versions)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{LabelDecl, ModelDecl};

    struct Caller<'a> {
        token: Option<&'a Verified>,
        client_key: &'a str,
    }

    fn anonymous() -> Caller<'static> {
        Caller { token: None, client_key: "127.0.0.1" }
    }

    fn route(catalog: &Catalog, method: &str, path: &[u8], caller: &Caller) -> Result<Routed, Refused> {
        let path = parse_request(catalog, method, path)?;
        authorize(catalog, &path, caller.token)?;
        let subject = caller.token.and_then(|t| t.sub.as_deref()).unwrap_or(caller.client_key);
        Ok(route_request(catalog, path, subject))
    }

    fn token(sub: &str, scope: &str) -> Verified {
        let claims = serde_json::json!({"sub": sub, "scope": scope});
        Verified { sub: Some(sub.into()), exp: i64::MAX, claims: claims.as_object().unwrap().clone() }
    }

    #[test]
    fn forwards_a_predict_with_trusted_headers() {
        let routed =
            route(&Catalog::default(), "POST", b"/v1/models/half_plus_two/versions/2:predict", &anonymous()).unwrap();
        assert_eq!(
            routed.trusted_headers,
            vec![
                (headers::MODEL, "half_plus_two".to_owned()),
                (headers::METHOD, "predict".to_owned()),
                (headers::VERSION, "2".to_owned())
            ]
        );
    }

    #[test]
    fn labels_travel_as_their_own_header() {
        let routed = route(&Catalog::default(), "GET", b"/v1/models/m/labels/canary", &anonymous()).unwrap();
        assert!(routed.trusted_headers.contains(&(headers::LABEL, "canary".to_owned())));
        assert!(routed.trusted_headers.contains(&(headers::METHOD, "status".to_owned())));
    }

    #[test]
    fn wrong_http_method_is_405() {
        assert!(matches!(
            route(&Catalog::default(), "GET", b"/v1/models/m:predict", &anonymous()),
            Err(Refused::Status(405, _))
        ));
        assert!(matches!(
            route(&Catalog::default(), "POST", b"/v1/models/m/metadata", &anonymous()),
            Err(Refused::Status(405, _))
        ));
    }

    #[test]
    fn malformed_paths_are_refused_with_the_grammar_status() {
        assert!(matches!(
            route(&Catalog::default(), "POST", b"/v1/models/a%2Fb:predict", &anonymous()),
            Err(Refused::Status(400, _))
        ));
        assert!(matches!(
            route(&Catalog::default(), "POST", b"/v1/models/m:explain", &anonymous()),
            Err(Refused::Status(404, _))
        ));
    }

    #[test]
    fn per_model_scopes_need_a_token_that_has_them() {
        let mut catalog = Catalog::default();
        catalog.add_model(ModelDecl::parse(&["m", "scope=predict"]).unwrap()).unwrap();
        assert!(matches!(
            route(&catalog, "POST", b"/v1/models/m:predict", &anonymous()),
            Err(Refused::Token(JwtError::Forbidden { .. }))
        ));
        let reader = token("bob", "read");
        let caller = Caller { token: Some(&reader), client_key: "x" };
        assert!(matches!(route(&catalog, "POST", b"/v1/models/m:predict", &caller), Err(Refused::Token(_))));
        let predictor = token("alice", "read predict");
        let caller = Caller { token: Some(&predictor), client_key: "x" };
        assert!(route(&catalog, "POST", b"/v1/models/m:predict", &caller).is_ok());
    }

    #[test]
    fn the_split_follows_the_token_subject() {
        let mut catalog = Catalog::default();
        catalog.add_model(ModelDecl::parse(&["m", "versions=1,2", "default=canary"]).unwrap()).unwrap();
        catalog.add_label(LabelDecl::parse(&["m", "canary", "1", "2:50"]).unwrap()).unwrap();
        let versions: Vec<String> = (0..40)
            .map(|i| {
                let t = token(&format!("user{i}"), "");
                let routed =
                    route(&catalog, "POST", b"/v1/models/m:predict", &Caller { token: Some(&t), client_key: "same" })
                        .unwrap();
                routed.trusted_headers.iter().find(|(h, _)| *h == headers::VERSION).unwrap().1.clone()
            })
            .collect();
        assert!(versions.contains(&"1".to_owned()) && versions.contains(&"2".to_owned()), "{versions:?}");
    }
}
