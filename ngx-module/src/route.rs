//! Routing decisions for TF Serving requests and Open Inference Protocol ("v2") requests,
//! independent of nginx. Two stages: before the token check (is this a REST request we serve at
//! all? a gRPC call's counterpart is [`crate::access::parse_grpc_message`]) and after it, for
//! REST and gRPC requests alike (which version, and may this caller use this model?).
//!
//! A v2 model operation meets the catalog, scopes and splits as the TF Serving operation it
//! amounts to ([`V2ModelMethod::tf_method`]: an inference is a prediction, readiness a status),
//! so a model is declared once for both APIs; only the names it travels under (the method
//! header, the path sent upstream) stay v2's. A v2 server call (health, server metadata) names
//! no model: nothing in the catalog applies to it.

use tfgate_common::{
    headers, parse_rest_path, parse_v2_path, ModelPath, PathError, V2ModelMethod, V2ModelPath, V2Path, VersionSelector,
};

use crate::catalog::{Catalog, Resolved};
use crate::jwt::{claims::has_scopes, JwtError, Verified};

/// Where the v2 REST grammar takes over from TF Serving's (case-sensitive, as v2 matches).
const V2_PREFIX: &[u8] = b"/v2";

/// Why a request is refused.
#[derive(Debug)]
pub enum Refused {
    /// Malformed, unknown or not allowed: status and message.
    Status(u16, String),
    /// 405: the path is served, under another HTTP method (`allow`).
    WrongMethod { allow: &'static str, message: String },
    /// Authorization: answered like a token refusal (403 with `insufficient_scope`).
    Token(JwtError),
}

/// An Open Inference Protocol call that names no model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Server {
    /// `GET /v2/health/live`, gRPC `ServerLive`.
    Live,
    /// `GET /v2/health/ready`, gRPC `ServerReady`.
    Ready,
    /// `GET /v2`, gRPC `ServerMetadata`.
    Metadata,
}

impl V2Server {
    /// The name in the module's vocabulary, the one [`V2Path::as_str`] gives the daemon too.
    pub fn as_str(self) -> &'static str {
        match self {
            V2Server::Live => V2Path::ServerLive.as_str(),
            V2Server::Ready => V2Path::ServerReady.as_str(),
            V2Server::Metadata => V2Path::ServerMetadata.as_str(),
        }
    }
}

/// A model's operation, through either API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRequest {
    /// What the catalog, scopes and splits see: a v2 call as its TF Serving equivalent.
    pub path: ModelPath,
    /// The v2 operation; `None` for TF Serving's APIs.
    pub v2: Option<V2ModelMethod>,
}

impl ModelRequest {
    pub fn tf(path: ModelPath) -> ModelRequest {
        ModelRequest { path, v2: None }
    }

    pub fn v2(path: &V2ModelPath) -> ModelRequest {
        ModelRequest { path: path.to_model_path(), v2: Some(path.method) }
    }

    /// The method in the vocabulary of the API the request came in by (`predict`, `model_infer`).
    pub fn method_name(&self) -> &'static str {
        method_name(&self.path, self.v2)
    }
}

fn method_name(path: &ModelPath, v2: Option<V2ModelMethod>) -> &'static str {
    v2.map_or_else(|| path.method.as_str(), V2ModelMethod::as_str)
}

/// What a routed request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Model(ModelRequest),
    /// No model: the location's token rules are all that apply.
    Server(V2Server),
}

impl Target {
    pub fn method_name(&self) -> &'static str {
        match self {
            Target::Model(request) => request.method_name(),
            Target::Server(server) => server.as_str(),
        }
    }
}

/// Stage 1, before any token work: the path grammar (v2's for a path under `/v2`, TF
/// Serving's otherwise), the HTTP method, and the catalog.
pub fn parse_request(catalog: &Catalog, http_method: &str, raw_path: &[u8]) -> Result<Target, Refused> {
    let refused = |PathError { status, message }| Refused::Status(status, message);
    let request = if raw_path.starts_with(V2_PREFIX) {
        let path = parse_v2_path(raw_path).map_err(refused)?;
        check_http_method(http_method, path.http_method(), path.as_str())?;
        match path {
            V2Path::ServerLive => return Ok(Target::Server(V2Server::Live)),
            V2Path::ServerReady => return Ok(Target::Server(V2Server::Ready)),
            V2Path::ServerMetadata => return Ok(Target::Server(V2Server::Metadata)),
            V2Path::Model(model) => ModelRequest::v2(&model),
        }
    } else {
        let path = parse_rest_path(raw_path).map_err(refused)?;
        check_http_method(http_method, path.method.http_method(), path.method.as_str())?;
        ModelRequest::tf(path)
    };
    catalog.check(&request.path).map_err(|(status, message)| Refused::Status(status, message))?;
    Ok(Target::Model(request))
}

fn check_http_method(http_method: &str, expected: &'static str, operation: &str) -> Result<(), Refused> {
    if http_method.eq_ignore_ascii_case(expected) {
        return Ok(());
    }
    let shown = http_method.get(..16).unwrap_or(http_method);
    Err(Refused::WrongMethod { allow: expected, message: format!("{operation} needs {expected}, got {shown}") })
}

/// A request ready to go upstream.
#[derive(Debug, PartialEq, Eq)]
pub struct Routed {
    pub resolved: Resolved,
    /// The v2 operation, for a v2 request.
    pub v2: Option<V2ModelMethod>,
    /// The decision as headers the daemon can trust (the client's own `X-Tfgate-*` are removed).
    pub trusted_headers: Vec<(&'static str, String)>,
}

impl Routed {
    pub fn method_name(&self) -> &'static str {
        method_name(&self.resolved.path, self.v2)
    }

    /// The canonical REST path of the resolved request, in its own API's grammar, which the
    /// daemon reads with the same parser.
    pub fn upstream_path(&self) -> String {
        let path = &self.resolved.path;
        match self.v2 {
            None => path.to_path(),
            Some(method) => {
                V2ModelPath { model: path.model.clone(), selector: path.selector.clone(), method }.to_path()
            }
        }
    }
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
pub fn route_request(catalog: &Catalog, request: ModelRequest, subject: &str) -> Routed {
    let resolved = catalog.resolve(request.path, subject);
    let trusted_headers = trusted_headers_for(&resolved, method_name(&resolved.path, request.v2));
    Routed { resolved, v2: request.v2, trusted_headers }
}

fn trusted_headers_for(resolved: &Resolved, method: &'static str) -> Vec<(&'static str, String)> {
    let path = &resolved.path;
    let mut out = vec![(headers::MODEL, path.model.clone()), (headers::METHOD, method.to_owned())];
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

    /// A model request through both stages.
    fn route(catalog: &Catalog, method: &str, path: &[u8], caller: &Caller) -> Result<Routed, Refused> {
        let Target::Model(request) = parse_request(catalog, method, path)? else {
            panic!("{} names no model", String::from_utf8_lossy(path))
        };
        authorize(catalog, &request.path, caller.token)?;
        let subject = caller.token.and_then(|t| t.sub.as_deref()).unwrap_or(caller.client_key);
        Ok(route_request(catalog, request, subject))
    }

    fn token(sub: &str, scope: &str) -> Verified {
        let claims = serde_json::json!({"sub": sub, "scope": scope});
        Verified { sub: Some(sub.into()), exp: i64::MAX, claims: claims.as_object().unwrap().clone() }
    }

    fn header<'a>(routed: &'a Routed, name: &str) -> Option<&'a str> {
        routed.trusted_headers.iter().find(|(h, _)| *h == name).map(|(_, v)| v.as_str())
    }

    /// `m`: versions 1 and 2, `stable` by default (1, or 2 for half of the subjects), `canary`
    /// on 2, and the scope `predict`.
    fn canary_catalog() -> Catalog {
        let mut catalog = Catalog::default();
        catalog
            .add_model(
                ModelDecl::parse(&["m", "versions=1,2", "default=stable", "scope=predict", "upstream=gpu"]).unwrap(),
            )
            .unwrap();
        catalog.add_label(LabelDecl::parse(&["m", "stable", "1", "2:50"]).unwrap()).unwrap();
        catalog.add_label(LabelDecl::parse(&["m", "canary", "2"]).unwrap()).unwrap();
        catalog
    }

    fn status(result: Result<Routed, Refused>) -> u16 {
        match result {
            Ok(_) => 200,
            Err(Refused::Status(status, _)) => status,
            Err(Refused::WrongMethod { .. }) => 405,
            Err(Refused::Token(e)) => e.status(),
        }
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
        assert_eq!(routed.upstream_path(), "/v1/models/half_plus_two/versions/2:predict");
    }

    #[test]
    fn labels_travel_as_their_own_header() {
        let routed = route(&Catalog::default(), "GET", b"/v1/models/m/labels/canary", &anonymous()).unwrap();
        assert!(routed.trusted_headers.contains(&(headers::LABEL, "canary".to_owned())));
        assert!(routed.trusted_headers.contains(&(headers::METHOD, "status".to_owned())));
    }

    #[test]
    fn wrong_http_method_is_405_with_the_method_to_use() {
        let wrong = |method, path: &[u8]| match route(&Catalog::default(), method, path, &anonymous()) {
            Err(Refused::WrongMethod { allow, message }) => (allow, message),
            other => panic!("{}: {other:?}", String::from_utf8_lossy(path)),
        };
        assert_eq!(wrong("GET", b"/v1/models/m:predict"), ("POST", "predict needs POST, got GET".to_owned()));
        assert_eq!(wrong("POST", b"/v1/models/m/metadata").0, "GET");
        assert_eq!(wrong("GET", b"/v2/models/m/infer"), ("POST", "model_infer needs POST, got GET".to_owned()));
        assert_eq!(wrong("PUT", b"/v2/models/m/versions/2/ready").0, "GET");
        assert_eq!(wrong("DELETE", b"/v2/models/m").0, "GET");
        for path in [&b"/v2"[..], b"/v2/health/live", b"/v2/health/ready"] {
            match parse_request(&Catalog::default(), "POST", path) {
                Err(Refused::WrongMethod { allow: "GET", .. }) => {}
                other => panic!("{}: {other:?}", String::from_utf8_lossy(path)),
            }
        }
        let long = wrong(&"X".repeat(200), b"/v2/models/m/infer").1;
        assert!(long.len() < 60, "the method is not echoed whole: {long}");
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

    #[test]
    fn v2_model_paths_are_routed_as_their_tf_equivalent_under_their_own_names() {
        let alice = token("alice", "predict");
        let caller = Caller { token: Some(&alice), client_key: "x" };
        let catalog = canary_catalog();
        // Each v2 operation, with the version and label the catalog gives its TF twin: (HTTP
        // method, path, method header, version, label, upstream path).
        let cases = [
            ("POST", "/v2/models/m/versions/2/infer", "model_infer", Some("2"), None, "/v2/models/m/versions/2/infer"),
            (
                "POST",
                "/v2/models/m/versions/canary/infer",
                "model_infer",
                Some("2"),
                Some("canary"),
                "/v2/models/m/versions/2/infer",
            ),
            ("GET", "/v2/models/m/versions/1", "model_metadata", Some("1"), None, "/v2/models/m/versions/1"),
            (
                "GET",
                "/v2/models/m/versions/canary/ready",
                "model_ready",
                Some("2"),
                Some("canary"),
                "/v2/models/m/versions/2/ready",
            ),
            ("GET", "/v2/models/m/versions/1/ready", "model_ready", Some("1"), None, "/v2/models/m/versions/1/ready"),
            ("GET", "/v2/models/m/ready", "model_ready", None, None, "/v2/models/m/ready"),
        ];
        for (method, path, name, version, label, upstream) in cases {
            let routed = route(&catalog, method, path.as_bytes(), &caller).unwrap_or_else(|e| panic!("{path}: {e:?}"));
            assert_eq!(header(&routed, headers::MODEL), Some("m"), "{path}");
            assert_eq!(header(&routed, headers::METHOD), Some(name), "{path}");
            assert_eq!(header(&routed, headers::VERSION), version, "{path}");
            assert_eq!(header(&routed, headers::LABEL), label, "{path}");
            assert_eq!((routed.method_name(), routed.upstream_path().as_str()), (name, upstream), "{path}");
            assert_eq!(routed.resolved.upstream.as_deref(), Some("gpu"));
        }
        // Readiness of the model as a whole is its status: every exposed version is listed.
        let ready = route(&catalog, "GET", b"/v2/models/m/ready", &caller).unwrap();
        assert_eq!(header(&ready, headers::VERSIONS), Some("1,2"));
        assert_eq!(ready.resolved.path.selector, VersionSelector::Unspecified);
    }

    #[test]
    fn v2_defaults_and_splits_resolve_as_for_v1() {
        let catalog = canary_catalog();
        let mut seen = Vec::new();
        for i in 0..40 {
            let t = token(&format!("user{i}"), "predict");
            let caller = Caller { token: Some(&t), client_key: "same" };
            let v2 = route(&catalog, "POST", b"/v2/models/m/infer", &caller).unwrap();
            let v1 = route(&catalog, "POST", b"/v1/models/m:predict", &caller).unwrap();
            // One subject, one version, whichever API it calls.
            assert_eq!(header(&v2, headers::VERSION), header(&v1, headers::VERSION));
            assert_eq!(header(&v2, headers::LABEL), Some("stable"));
            let version = header(&v2, headers::VERSION).unwrap().to_owned();
            assert_eq!(v2.upstream_path(), format!("/v2/models/m/versions/{version}/infer"));
            seen.push(version);
        }
        assert!(seen.contains(&"1".to_owned()) && seen.contains(&"2".to_owned()), "{seen:?}");
        let t = token("alice", "predict");
        let caller = Caller { token: Some(&t), client_key: "x" };
        let metadata = route(&catalog, "GET", b"/v2/models/m", &caller).unwrap();
        assert_eq!(header(&metadata, headers::METHOD), Some("model_metadata"));
        assert!(metadata.upstream_path().starts_with("/v2/models/m/versions/"), "{}", metadata.upstream_path());
        // An open catalog passes a model unresolved, and its path as it is.
        let open = route(&Catalog::default(), "POST", b"/v2/models/any/versions/blue/infer", &anonymous()).unwrap();
        assert_eq!(open.upstream_path(), "/v2/models/any/versions/blue/infer");
        assert_eq!((header(&open, headers::VERSION), header(&open, headers::LABEL)), (None, Some("blue")));
    }

    #[test]
    fn v2_model_paths_meet_the_catalog_and_the_scopes() {
        let catalog = canary_catalog();
        let alice = token("alice", "predict");
        let caller = Caller { token: Some(&alice), client_key: "x" };
        for (path, expected) in [
            (&b"/v2/models/other/infer"[..], 404),
            (b"/v2/models/M/infer", 404),
            (b"/v2/models/m/versions/3/infer", 404),
            (b"/v2/models/m/versions/beta/infer", 404),
            (b"/v2/models/m/versions/1/infer", 200),
            (b"/v2/models/a%2Fb/infer", 400),
            (b"/v2/models/m/versions/99999999999999999999/infer", 400),
            (b"/v2/models/m/Infer", 404),
            (b"/v2/models/m/generate", 404),
            (b"/v2/models", 400),
        ] {
            assert_eq!(status(route(&catalog, "POST", path, &caller)), expected, "{}", String::from_utf8_lossy(path));
        }
        assert_eq!(status(route(&catalog, "POST", b"/v2/models/m/infer", &anonymous())), 403);
        let reader = token("bob", "read");
        let caller = Caller { token: Some(&reader), client_key: "x" };
        assert_eq!(status(route(&catalog, "GET", b"/v2/models/m/ready", &caller)), 403);
    }

    #[test]
    fn v2_matching_is_case_sensitive_and_v1_stays_case_insensitive() {
        let open = Catalog::default();
        // Not under `/v2`: TF Serving's grammar reads it, and it is none of its paths either.
        match parse_request(&open, "POST", b"/V2/models/m/infer") {
            Err(Refused::Status(404, message)) => assert!(message.contains("TF Serving"), "{message}"),
            other => panic!("{other:?}"),
        }
        for path in [&b"/v2/Models/m/infer"[..], b"/v2/health/Live", b"/v2x"] {
            assert!(matches!(parse_request(&open, "GET", path), Err(Refused::Status(404, _))), "{path:?}");
        }
        let v1 = route(&open, "POST", b"/V1/MODELS/m:PREDICT", &anonymous()).unwrap();
        assert_eq!(header(&v1, headers::METHOD), Some("predict"));
    }

    #[test]
    fn v2_server_calls_name_no_model_and_skip_the_catalog() {
        // A catalog that serves nothing under these names, with a scope on its one model.
        let catalog = canary_catalog();
        for (path, server, name) in [
            (&b"/v2"[..], V2Server::Metadata, "server_metadata"),
            (b"/v2/health/live", V2Server::Live, "server_live"),
            (b"/v2/health/ready", V2Server::Ready, "server_ready"),
        ] {
            let target = parse_request(&catalog, "GET", path).unwrap();
            assert_eq!(target, Target::Server(server));
            assert_eq!(target.method_name(), name);
        }
        assert!(matches!(parse_request(&catalog, "GET", b"/v2/health/started"), Err(Refused::Status(404, _))));
        let model = parse_request(&catalog, "POST", b"/v2/models/m/infer").unwrap();
        assert_eq!(model.method_name(), "model_infer");
        let Target::Model(request) = model else { panic!("no model") };
        assert_eq!(request.path.method, tfgate_common::Method::Predict);
    }
}
