//! The access-phase decision, as a pure function of what the nginx shell found out: the parsed
//! request (stage 1, before any cryptography: a REST path, or the `ModelSpec` in a gRPC call's
//! message), the outcome of the token check, and the location's settings. It says what to do;
//! `nginx/access.rs` only does it.
//!
//! Policy:
//! - Stage order: the requested model and the catalog first (a malformed or unknown request
//!   costs no signature check), then the token, then per-model authorization, then label/split
//!   resolution. A gRPC call is told from a REST request by its content type and HTTP
//!   version (stage 0).
//! - Routing alone never grants access (`NGX_DECLINED`), so under `satisfy any` another access
//!   module's verdict still counts; a valid token grants it (`NGX_OK`).
//! - Under `satisfy any`, a 401/403 is returned bare (no body) so that another module may still
//!   grant the request; the request then goes on with trusted headers that are ours (no subject),
//!   never the client's.
//! - The client's own `X-Tfgate-*` headers are always replaced.

use std::rc::Rc;

use tfgate_common::{check_name, headers, ModelPath, VersionSelector};

use crate::catalog::{Catalog, Resolved};
use crate::grpc::{Framing, GrpcMethod, ModelSpec, VersionChoice};
use crate::jwt::{JwtError, Verified};
use crate::route::{authorize, parse_request, route_request, Refused};

/// The location's settings and the request's facts that the decision needs.
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    /// `tfgate_route on`: `path` is the parsed request.
    pub path: Option<ModelPath>,
    /// `satisfy any` in the location.
    pub satisfy_any: bool,
    /// The client address: the sticky-split key of callers without a subject.
    pub client_key: &'a str,
    /// Whether the upstream path names the version (REST); a gRPC request carries it in the
    /// trusted header only.
    pub rewrite_path: bool,
    /// `WWW-Authenticate` realm.
    pub realm: &'a str,
}

/// The outcome of the token check (where `tfgate_jwt on`).
pub enum Token {
    /// `tfgate_jwt off`.
    NotChecked,
    Accepted(Rc<Verified>),
    Refused(JwtError),
    /// Keys are being fetched: the request waits (`NGX_AGAIN`) and the check runs again.
    Wait,
}

/// What the access handler does.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Wait,
    /// Let the request go on to the next phases, with these changes.
    Forward {
        forward: Forward,
        granted: bool,
    },
    /// Refuse it; `forward`, under `satisfy any`, readies the request in case another access
    /// module grants it; otherwise `forward.route` keeps the model for the access log.
    Refuse {
        refusal: Refusal,
        forward: Forward,
    },
}

/// Changes made to a request that goes on.
#[derive(Debug, Default, PartialEq)]
pub struct Forward {
    /// The routing outcome, for the `$tfgate_model*` variables.
    pub route: Option<Resolved>,
    /// The path the upstream gets instead of the client's (it names the resolved version).
    pub rewrite: Option<String>,
    /// Replace the request's `X-Tfgate-*` headers with these (`None`: leave the headers alone,
    /// the request will be refused).
    pub trusted: Option<Vec<(&'static str, String)>>,
}

/// An answer from the module itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    /// Client-safe text (the JSON body's `error`, or `grpc-message`).
    pub message: String,
    /// `WWW-Authenticate`.
    pub challenge: Option<String>,
    /// For 405: the method the path is served under.
    pub allow: Option<&'static str>,
    /// `$tfgate_jwt_result`, when the token was the reason.
    pub jwt_result: Option<&'static str>,
    /// `satisfy any`: return the bare status, so another access module may grant the request.
    pub bare: bool,
    /// Logged at warn rather than info (our side failed, not the client).
    pub ours: bool,
}

impl Refusal {
    /// A refusal of the request itself (malformed, unknown, wrong method).
    pub fn status(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            challenge: None,
            allow: None,
            jwt_result: None,
            bare: false,
            ours: status >= 500,
        }
    }

    fn token(error: &JwtError, realm: &str, satisfy_any: bool) -> Refusal {
        let status = error.status();
        Refusal {
            status,
            message: error.description().to_owned(),
            challenge: error.www_authenticate(realm),
            allow: None,
            jwt_result: Some(error.result()),
            bare: satisfy_any && matches!(status, 401 | 403),
            ours: status >= 500,
        }
    }
}

/// How a request under `tfgate_route on` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// A TF Serving REST request: its path names the model.
    Rest,
    /// A gRPC call of a method tfgate serves: its message names the model, read next.
    Grpc(GrpcMethod),
}

/// Stage 0 under `tfgate_route on`: a gRPC call (its content type and HTTP version say so, see
/// [`crate::grpc::request_framing`]) or a REST request. A refusal is answered as a gRPC status
/// exactly when the request is a gRPC call.
pub fn ingress(raw_path: &[u8], framing: Framing) -> Result<Ingress, Refusal> {
    if framing == Framing::NotGrpc {
        // gRPC's rule for a server: 415 to a request of its methods without gRPC's content type,
        // so that no other client takes a gRPC error (HTTP 200) for a success.
        if GrpcMethod::is_tf_serving_path(raw_path) {
            return Err(Refusal::status(
                415,
                "TF Serving's gRPC methods take gRPC calls only (content-type application/grpc, over HTTP/2)",
            ));
        }
        return Ok(Ingress::Rest);
    }
    let Some(method) = GrpcMethod::from_path(raw_path) else {
        let shown = String::from_utf8_lossy(raw_path.get(..96).unwrap_or(raw_path)).into_owned();
        return Err(Refusal::status(501, format!("method {shown} is not served through tfgate")));
    };
    if framing == Framing::OtherCodec {
        return Err(Refusal::status(
            501,
            "tfgate reads protobuf messages only (content-type application/grpc or application/grpc+proto)",
        ));
    }
    Ok(Ingress::Grpc(method))
}

/// Stage 1 of a REST request, before any token work: the path grammar, the HTTP method and
/// the catalog.
pub fn parse_rest(catalog: &Catalog, http_method: &str, raw_path: &[u8]) -> Result<ModelPath, Refusal> {
    parse_request(catalog, http_method, raw_path).map_err(|refused| match refused {
        Refused::Status(status, message) => {
            // A 405 is for a path that parsed: say which method it is served under.
            let allow = (status == 405)
                .then(|| tfgate_common::parse_rest_path(raw_path).ok().map(|p| p.method.http_method()))
                .flatten();
            Refusal { allow, ..Refusal::status(status, message) }
        }
        Refused::Token(error) => Refusal::token(&error, "", false),
    })
}

/// Stage 1 of a gRPC request, once its first message is read: the model its `ModelSpec` names,
/// under the same rules and catalog as a REST path.
pub fn parse_grpc(catalog: &Catalog, method: GrpcMethod, spec: ModelSpec) -> Result<ModelPath, Refusal> {
    if spec.name.is_empty() {
        return Err(Refusal::status(400, "the request has no model_spec.name"));
    }
    let name_refused = |e: tfgate_common::PathError| Refusal::status(e.status, e.message);
    check_name(&spec.name, "model name").map_err(name_refused)?;
    let selector = match spec.version {
        None => VersionSelector::Unspecified,
        Some(VersionChoice::Number(n)) if n > 0 => VersionSelector::Number(n),
        Some(VersionChoice::Number(n)) => {
            return Err(Refusal::status(400, format!("version must be positive, got {n}")))
        }
        Some(VersionChoice::Label(label)) => {
            check_name(&label, "version label").map_err(name_refused)?;
            VersionSelector::Label(label)
        }
    };
    let path = ModelPath { model: spec.name, selector, method: method.method() };
    catalog.check(&path).map_err(|(status, message)| Refusal::status(status, message))?;
    Ok(path)
}

/// Stage 2 onwards: the token's outcome, authorization, resolution.
pub fn decide(ctx: Context<'_>, token: Token) -> Decision {
    let token = match token {
        Token::Wait => return Decision::Wait,
        Token::Refused(error) => return refuse(ctx, &error),
        Token::NotChecked => None,
        Token::Accepted(verified) => Some(verified),
    };
    if let Some(path) = &ctx.path {
        if let Err(Refused::Token(error)) = authorize(ctx.catalog, path, token.as_deref()) {
            return refuse(ctx, &error);
        }
    }
    let subject = token.as_ref().and_then(|t| t.sub.clone());
    let forward = forward(&ctx, subject);
    Decision::Forward { forward, granted: token.is_some() }
}

/// A refused token or scope. Under `satisfy any` the request is readied to go on anyway (if
/// another module grants it), as an anonymous one.
fn refuse(ctx: Context<'_>, error: &JwtError) -> Decision {
    let refusal = Refusal::token(error, ctx.realm, ctx.satisfy_any);
    let forward = if refusal.bare {
        forward(&ctx, None)
    } else {
        let route = ctx.path.map(|path| route_request(ctx.catalog, path, ctx.client_key).resolved);
        Forward { route, rewrite: None, trusted: None }
    };
    Decision::Refuse { refusal, forward }
}

/// Resolution, the upstream path and the trusted headers of a request that goes on.
fn forward(ctx: &Context<'_>, subject: Option<String>) -> Forward {
    let mut trusted = Vec::new();
    let mut route = None;
    let mut rewrite = None;
    if let Some(path) = ctx.path.clone() {
        let split_key = subject.as_deref().unwrap_or(ctx.client_key);
        let requested = path.selector.clone();
        let routed = route_request(ctx.catalog, path, split_key);
        // The daemon parses the path with the same grammar, so only a resolution (default,
        // label, split) needs the path rewritten to name the version.
        if ctx.rewrite_path && routed.resolved.path.selector != requested {
            rewrite = Some(routed.resolved.path.to_path());
        }
        trusted = routed.trusted_headers;
        route = Some(routed.resolved);
    }
    if let Some(subject) = subject {
        trusted.push((headers::SUBJECT, subject));
    }
    Forward { route, rewrite, trusted: Some(trusted) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{LabelDecl, ModelDecl};
    use crate::grpc::{grpc_code_for_http, request_framing};

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        c.add_model(ModelDecl::parse(&["m", "versions=1,2", "default=stable", "scope=predict"]).unwrap()).unwrap();
        c.add_label(LabelDecl::parse(&["m", "stable", "1"]).unwrap()).unwrap();
        c
    }

    fn ctx<'a>(catalog: &'a Catalog, path: &str, satisfy_any: bool) -> Context<'a> {
        Context {
            catalog,
            path: Some(parse_rest(catalog, "POST", path.as_bytes()).unwrap()),
            satisfy_any,
            client_key: "10.0.0.1",
            rewrite_path: true,
            realm: "r",
        }
    }

    fn token(sub: &str, scope: &str) -> Token {
        let claims = serde_json::json!({"sub": sub, "scope": scope});
        Token::Accepted(Rc::new(Verified {
            sub: Some(sub.into()),
            exp: i64::MAX,
            claims: claims.as_object().unwrap().clone(),
        }))
    }

    fn header<'a>(forward: &'a Forward, name: &str) -> Option<&'a str> {
        forward.trusted.as_ref()?.iter().find(|(h, _)| *h == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_valid_token_grants_and_forwards_the_resolved_request() {
        let c = catalog();
        let Decision::Forward { forward, granted } =
            decide(ctx(&c, "/v1/models/m:predict", false), token("alice", "predict"))
        else {
            panic!("not forwarded")
        };
        assert!(granted);
        assert_eq!(forward.rewrite.as_deref(), Some("/v1/models/m/versions/1:predict"));
        assert_eq!(header(&forward, headers::SUBJECT), Some("alice"));
        assert_eq!(header(&forward, headers::VERSION), Some("1"));
        assert_eq!(header(&forward, headers::LABEL), Some("stable"));
    }

    #[test]
    fn routing_alone_declines_so_other_access_modules_decide() {
        let mut c = Catalog::default();
        c.add_model(ModelDecl::parse(&["open"]).unwrap()).unwrap();
        let Decision::Forward { forward, granted } =
            decide(ctx(&c, "/v1/models/open/versions/3:predict", false), Token::NotChecked)
        else {
            panic!("not forwarded")
        };
        assert!(!granted);
        assert_eq!(forward.rewrite, None, "the path already names the version");
        assert_eq!(header(&forward, headers::SUBJECT), None);
    }

    #[test]
    fn a_refused_token_is_answered_with_its_challenge() {
        let c = catalog();
        let Decision::Refuse { refusal, forward } =
            decide(ctx(&c, "/v1/models/m:predict", false), Token::Refused(JwtError::Expired))
        else {
            panic!("not refused")
        };
        assert_eq!((refusal.status, refusal.bare, refusal.jwt_result), (401, false, Some("expired")));
        assert!(refusal.challenge.unwrap().contains("invalid_token"));
        assert_eq!(forward.trusted, None, "a refused request keeps no headers of ours");
        assert_eq!(forward.route.unwrap().path.model, "m", "but the log still gets the model");
    }

    #[test]
    fn a_missing_scope_is_403_after_the_token() {
        let c = catalog();
        let Decision::Refuse { refusal, .. } = decide(ctx(&c, "/v1/models/m:predict", false), token("bob", "read"))
        else {
            panic!("not refused")
        };
        assert_eq!(refusal.status, 403);
        assert!(refusal.challenge.unwrap().contains("scope=\"predict\""));
    }

    #[test]
    fn under_satisfy_any_refusals_are_bare_and_the_request_is_readied_as_anonymous() {
        let c = catalog();
        for t in [Token::Refused(JwtError::Missing), token("bob", "read")] {
            let Decision::Refuse { refusal, forward } = decide(ctx(&c, "/v1/models/m:predict", true), t) else {
                panic!("not refused")
            };
            assert!(refusal.bare);
            assert_eq!(header(&forward, headers::SUBJECT), None);
            assert_eq!(header(&forward, headers::VERSION), Some("1"));
        }
        // A 503 (no keys) is ours to answer, whatever `satisfy` says.
        let Decision::Refuse { refusal, .. } =
            decide(ctx(&c, "/v1/models/m:predict", true), Token::Refused(JwtError::KeysUnavailable))
        else {
            panic!("not refused")
        };
        assert!(!refusal.bare && refusal.ours);
    }

    #[test]
    fn stage_one_refusals_say_why() {
        let c = catalog();
        let wrong_method = parse_rest(&c, "GET", b"/v1/models/m:predict").unwrap_err();
        assert_eq!((wrong_method.status, wrong_method.allow), (405, Some("POST")));
        assert_eq!(parse_rest(&c, "POST", b"/v1/models/other:predict").unwrap_err().status, 404);
        assert_eq!(parse_rest(&c, "POST", b"/v1/models/a%2Fb:predict").unwrap_err().status, 400);
    }

    #[test]
    fn grpc_requests_meet_the_same_catalog_and_name_rules() {
        let c = catalog();
        let spec = |name: &str, version: Option<VersionChoice>| ModelSpec {
            name: name.into(),
            version,
            signature_name: String::new(),
        };
        let path = parse_grpc(&c, GrpcMethod::Predict, spec("m", Some(VersionChoice::Label("stable".into())))).unwrap();
        assert_eq!(
            (path.selector, path.method),
            (VersionSelector::Label("stable".into()), tfgate_common::Method::Predict)
        );
        assert_eq!(parse_grpc(&c, GrpcMethod::Predict, spec("other", None)).unwrap_err().status, 404);
        assert_eq!(
            parse_grpc(&c, GrpcMethod::Predict, spec("m", Some(VersionChoice::Number(9)))).unwrap_err().status,
            404
        );
        assert_eq!(parse_grpc(&c, GrpcMethod::Predict, spec("", None)).unwrap_err().status, 400);
        assert_eq!(
            parse_grpc(&c, GrpcMethod::Predict, spec("m", Some(VersionChoice::Number(0)))).unwrap_err().status,
            400
        );
        let open = Catalog::default();
        assert_eq!(parse_grpc(&open, GrpcMethod::Predict, spec("a/b", None)).unwrap_err().status, 400);
        assert_eq!(parse_grpc(&open, GrpcMethod::Predict, spec("a\nb", None)).unwrap_err().status, 400);
        let status = parse_grpc(&c, GrpcMethod::GetModelStatus, spec("m", None)).unwrap();
        assert_eq!(status.method, tfgate_common::Method::Status);
    }

    #[test]
    fn grpc_calls_are_known_by_their_content_type_and_always_answered_as_grpc() {
        let grpc = |content_type: &[u8]| request_framing(Some(content_type), true);
        let predict = b"/tensorflow.serving.PredictionService/Predict";
        assert_eq!(ingress(predict, grpc(b"application/grpc")), Ok(Ingress::Grpc(GrpcMethod::Predict)));
        assert_eq!(ingress(predict, grpc(b"application/grpc+proto")), Ok(Ingress::Grpc(GrpcMethod::Predict)));
        // Any other method, in any service or none, with gRPC's content type: UNIMPLEMENTED.
        for path in [
            &b"/inference.GRPCInferenceService/ModelInfer"[..],
            b"/tensorflow.serving.ModelService/HandleReloadConfigRequest",
            b"/v1/models/m:predict",
            b"/",
        ] {
            let refusal = ingress(path, grpc(b"application/grpc")).unwrap_err();
            assert_eq!(grpc_code_for_http(refusal.status), 12, "{}", String::from_utf8_lossy(path));
        }
        let json = ingress(predict, grpc(b"application/grpc+json")).unwrap_err();
        assert_eq!((grpc_code_for_http(json.status), json.message.contains("protobuf")), (12, true));
        // Not a gRPC call: REST, except on TF Serving's gRPC methods, which say 415.
        assert_eq!(ingress(b"/v1/models/m:predict", grpc(b"application/json")), Ok(Ingress::Rest));
        assert_eq!(ingress(b"/v1/models/m:predict", request_framing(None, true)), Ok(Ingress::Rest));
        for framing in [
            request_framing(None, true),
            grpc(b"application/json"),
            grpc(b"application/grpc-web+proto"),
            request_framing(Some(b"application/grpc"), false),
        ] {
            assert_eq!(ingress(predict, framing).unwrap_err().status, 415);
        }
        // The method is never echoed whole.
        let long = [&b"/x."[..], &[b'a'; 500]].concat();
        assert!(ingress(&long, grpc(b"application/grpc")).unwrap_err().message.len() < 160);
    }

    #[test]
    fn waiting_for_keys_waits() {
        let c = catalog();
        assert_eq!(decide(ctx(&c, "/v1/models/m:predict", false), Token::Wait), Decision::Wait);
    }

    #[test]
    fn without_routing_only_the_subject_is_trusted() {
        let c = Catalog::default();
        let context = Context { path: None, ..ctx(&c, "/v1/models/x:predict", false) };
        let Decision::Forward { forward, granted } = decide(context, token("carol", "")) else {
            panic!("not forwarded")
        };
        assert!(granted && forward.route.is_none());
        assert_eq!(forward.trusted, Some(vec![(headers::SUBJECT, "carol".to_owned())]));
    }
}
