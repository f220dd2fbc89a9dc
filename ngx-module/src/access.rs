//! The access-phase decision, as a pure function of what the nginx shell found out: the parsed
//! request (stage 1, before any cryptography: a REST path, or the model a gRPC call's message
//! names), the outcome of the token check, and the location's settings. It says what to do;
//! `nginx/access.rs` only does it.
//!
//! Policy:
//! - Stage order: the requested model and the catalog first (a malformed or unknown request
//!   costs no signature check), then the token, then per-model authorization, then label/split
//!   resolution. A gRPC call is told from a REST request by its content type and HTTP
//!   version (stage 0).
//! - TF Serving's APIs and the Open Inference Protocol's go through the same stages; a v2
//!   server call (health, server metadata) names no model, so only the token applies to it.
//! - Routing alone never grants access (`NGX_DECLINED`), so under `satisfy any` another access
//!   module's verdict still counts; a valid token grants it (`NGX_OK`).
//! - Under `satisfy any`, a 401/403 is returned bare (no body) so that another module may still
//!   grant the request; the request then goes on with trusted headers that are ours (no subject),
//!   never the client's.
//! - The client's own `X-Tfgate-*` headers are always replaced.

use std::rc::Rc;

use tfgate_common::{check_name, headers, read_v2_spec, ModelPath, V2ModelMethod, V2Spec, VersionSelector};

use crate::catalog::{Catalog, Resolved};
use crate::grpc::{read_model_spec, Framing, GrpcCall, GrpcMethod, ModelSpec, Rope, VersionChoice};
use crate::jwt::{JwtError, Verified};
use crate::route::{authorize, parse_request, route_request, ModelRequest, Refused, Target, V2Server};

/// The location's settings and the request's facts that the decision needs.
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    /// `tfgate_route on`: what the request asks for.
    pub target: Option<Target>,
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
    /// `$tfgate_model_method`: the operation in its API's vocabulary (`predict`, `model_infer`,
    /// `server_live`), set for a v2 server call too, which has no `route`.
    pub method: Option<&'static str>,
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

    fn refused(refused: Refused) -> Refusal {
        match refused {
            Refused::Status(status, message) => Refusal::status(status, message),
            Refused::WrongMethod { allow, message } => Refusal { allow: Some(allow), ..Refusal::status(405, message) },
            Refused::Token(error) => Refusal::token(&error, "", false),
        }
    }
}

/// How a request under `tfgate_route on` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// A REST request: its path names the model.
    Rest,
    /// A gRPC call of a method tfgate serves whose message names the model, read next.
    Grpc(GrpcCall),
    /// A gRPC call naming no model: nothing to read.
    GrpcServer(V2Server),
}

/// Stage 0 under `tfgate_route on`: a gRPC call (its content type and HTTP version say so, see
/// [`crate::grpc::request_framing`]) or a REST request. A refusal is answered as a gRPC status
/// exactly when the request is a gRPC call.
pub fn ingress(raw_path: &[u8], framing: Framing) -> Result<Ingress, Refusal> {
    if framing == Framing::NotGrpc {
        // gRPC's rule for a server: 415 to a request of its methods without gRPC's content type,
        // so that no other client takes a gRPC error (HTTP 200) for a success.
        if GrpcCall::is_grpc_package_path(raw_path) {
            return Err(Refusal::status(
                415,
                "gRPC methods (TF Serving's, the Open Inference Protocol's) take gRPC calls only \
                 (content-type application/grpc, over HTTP/2)",
            ));
        }
        return Ok(Ingress::Rest);
    }
    let Some(call) = GrpcCall::from_path(raw_path) else {
        let shown = String::from_utf8_lossy(raw_path.get(..96).unwrap_or(raw_path)).into_owned();
        return Err(Refusal::status(501, format!("method {shown} is not served through tfgate")));
    };
    if framing == Framing::OtherCodec {
        return Err(Refusal::status(
            501,
            "tfgate reads protobuf messages only (content-type application/grpc or application/grpc+proto)",
        ));
    }
    Ok(match call {
        GrpcCall::V2Server(server) => Ingress::GrpcServer(server),
        call => Ingress::Grpc(call),
    })
}

/// Stage 1 of a REST request, before any token work: the path grammar, the HTTP method and
/// the catalog.
pub fn parse_rest(catalog: &Catalog, http_method: &str, raw_path: &[u8]) -> Result<Target, Refusal> {
    parse_request(catalog, http_method, raw_path).map_err(Refusal::refused)
}

/// Stage 1 of a gRPC call of `call`, once its message, `body[offset..offset + len]`, is read:
/// the model it names, under the same rules and catalog as a REST path.
pub fn parse_grpc_message(
    catalog: &Catalog,
    call: GrpcCall,
    body: &Rope<'_>,
    offset: u64,
    len: u64,
) -> Result<Target, Refusal> {
    match call {
        GrpcCall::TfServing(method) => {
            let spec = read_model_spec(method, body, offset, len).map_err(|e| Refusal::status(400, e.0))?;
            parse_grpc(catalog, method, spec).map(|path| Target::Model(ModelRequest::tf(path)))
        }
        GrpcCall::V2Model(method) => {
            let spec = read_v2_spec(body, offset, len).map_err(|e| Refusal::status(400, e.to_string()))?;
            parse_grpc_v2(catalog, method, spec)
        }
        GrpcCall::V2Server(server) => Ok(Target::Server(server)),
    }
}

/// The model a TF Serving request's `ModelSpec` names, under the same rules and catalog as a
/// REST path.
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

/// The model a v2 request's name and version fields name, read as a v2 path would be (a
/// version of digits is a number, another a label) and checked against the same catalog.
pub fn parse_grpc_v2(catalog: &Catalog, method: V2ModelMethod, spec: V2Spec) -> Result<Target, Refusal> {
    let path = spec.into_model_path(method).map_err(|e| Refusal::status(e.status, e.message))?;
    let request = ModelRequest::v2(&path);
    catalog.check(&request.path).map_err(|(status, message)| Refusal::status(status, message))?;
    Ok(Target::Model(request))
}

/// Stage 2 onwards: the token's outcome, authorization, resolution.
pub fn decide(ctx: Context<'_>, token: Token) -> Decision {
    let token = match token {
        Token::Wait => return Decision::Wait,
        Token::Refused(error) => return refuse(ctx, &error),
        Token::NotChecked => None,
        Token::Accepted(verified) => Some(verified),
    };
    if let Some(Target::Model(request)) = &ctx.target {
        if let Err(Refused::Token(error)) = authorize(ctx.catalog, &request.path, token.as_deref()) {
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
        let method = ctx.target.as_ref().map(Target::method_name);
        let route = match ctx.target {
            Some(Target::Model(request)) => Some(route_request(ctx.catalog, request, ctx.client_key).resolved),
            Some(Target::Server(_)) | None => None,
        };
        Forward { route, method, rewrite: None, trusted: None }
    };
    Decision::Refuse { refusal, forward }
}

/// Resolution, the upstream path and the trusted headers of a request that goes on.
fn forward(ctx: &Context<'_>, subject: Option<String>) -> Forward {
    let mut trusted = Vec::new();
    let mut forward = Forward::default();
    match ctx.target.clone() {
        Some(Target::Model(request)) => {
            let split_key = subject.as_deref().unwrap_or(ctx.client_key);
            let requested = request.path.selector.clone();
            let routed = route_request(ctx.catalog, request, split_key);
            // The daemon parses the path with the same grammar, so only a resolution (default,
            // label, split) needs the path rewritten to name the version.
            if ctx.rewrite_path && routed.resolved.path.selector != requested {
                forward.rewrite = Some(routed.upstream_path());
            }
            forward.method = Some(routed.method_name());
            trusted = routed.trusted_headers;
            forward.route = Some(routed.resolved);
        }
        Some(Target::Server(server)) => {
            forward.method = Some(server.as_str());
            trusted.push((headers::METHOD, server.as_str().to_owned()));
        }
        None => {}
    }
    if let Some(subject) = subject {
        trusted.push((headers::SUBJECT, subject));
    }
    forward.trusted = Some(trusted);
    forward
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
            target: Some(parse_rest(catalog, "POST", path.as_bytes()).unwrap()),
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
        let tf_predict = Ok(Ingress::Grpc(GrpcCall::TfServing(GrpcMethod::Predict)));
        assert_eq!(ingress(predict, grpc(b"application/grpc")), tf_predict);
        assert_eq!(ingress(predict, grpc(b"application/grpc+proto")), tf_predict);
        // Any other method, in any service or none, with gRPC's content type: UNIMPLEMENTED.
        for path in [
            &b"/inference.GRPCInferenceService/ModelStreamInfer"[..],
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
        let context = Context { target: None, ..ctx(&c, "/v1/models/x:predict", false) };
        let Decision::Forward { forward, granted } = decide(context, token("carol", "")) else {
            panic!("not forwarded")
        };
        assert!(granted && forward.route.is_none());
        assert_eq!(forward.trusted, Some(vec![(headers::SUBJECT, "carol".to_owned())]));
    }

    fn forwarded(decision: Decision) -> Forward {
        match decision {
            Decision::Forward { forward, .. } => forward,
            other => panic!("not forwarded: {other:?}"),
        }
    }

    #[test]
    fn a_v2_inference_is_resolved_and_rewritten_in_v2_terms() {
        let c = catalog();
        let forward = forwarded(decide(ctx(&c, "/v2/models/m/infer", false), token("alice", "predict")));
        assert_eq!(forward.rewrite.as_deref(), Some("/v2/models/m/versions/1/infer"));
        assert_eq!(forward.method, Some("model_infer"));
        assert_eq!(header(&forward, headers::METHOD), Some("model_infer"));
        assert_eq!(header(&forward, headers::MODEL), Some("m"));
        assert_eq!(header(&forward, headers::VERSION), Some("1"));
        assert_eq!(header(&forward, headers::LABEL), Some("stable"));
        assert_eq!(header(&forward, headers::SUBJECT), Some("alice"));
        assert_eq!(forward.route.unwrap().path.method, tfgate_common::Method::Predict);
        // A path naming its version is forwarded as it is.
        let forward = forwarded(decide(ctx(&c, "/v2/models/m/versions/2/infer", false), token("a", "predict")));
        assert_eq!((forward.rewrite.as_deref(), header(&forward, headers::VERSION)), (None, Some("2")));
        // The model's scope, as for v1.
        let Decision::Refuse { refusal, forward } = decide(ctx(&c, "/v2/models/m/infer", false), token("bob", "read"))
        else {
            panic!("not refused")
        };
        assert_eq!((refusal.status, forward.method), (403, Some("model_infer")));
        assert_eq!(forward.route.unwrap().path.model, "m", "the log gets the model");
    }

    #[test]
    fn v2_server_calls_need_the_token_only() {
        let c = catalog();
        let live = |satisfy_any| Context {
            target: Some(parse_rest(&c, "GET", b"/v2/health/live").unwrap()),
            ..ctx(&c, "/v1/models/m:predict", satisfy_any)
        };
        // The model's scope is not asked for: no model is named.
        let forward = forwarded(decide(live(false), token("bob", "read")));
        assert_eq!((forward.route, forward.rewrite, forward.method), (None, None, Some("server_live")));
        assert_eq!(
            forward.trusted,
            Some(vec![(headers::METHOD, "server_live".to_owned()), (headers::SUBJECT, "bob".to_owned())])
        );
        let forward = forwarded(decide(live(false), Token::NotChecked));
        assert_eq!(forward.trusted, Some(vec![(headers::METHOD, "server_live".to_owned())]));
        // The location's token rules still hold.
        let Decision::Refuse { refusal, forward } = decide(live(false), Token::Refused(JwtError::Missing)) else {
            panic!("not refused")
        };
        assert_eq!((refusal.status, forward.method, forward.trusted), (401, Some("server_live"), None));
        let Decision::Refuse { refusal, forward } = decide(live(true), Token::Refused(JwtError::Missing)) else {
            panic!("not refused")
        };
        assert!(refusal.bare);
        assert_eq!(forward.trusted, Some(vec![(headers::METHOD, "server_live".to_owned())]));
    }

    #[test]
    fn v2_wrong_methods_say_which_one_to_use() {
        let c = catalog();
        let refusal = parse_rest(&c, "GET", b"/v2/models/m/infer").unwrap_err();
        assert_eq!((refusal.status, refusal.allow), (405, Some("POST")));
        let refusal = parse_rest(&c, "POST", b"/v2/health/ready").unwrap_err();
        assert_eq!((refusal.status, refusal.allow), (405, Some("GET")));
        assert_eq!(parse_rest(&c, "POST", b"/v2/models/other/infer").unwrap_err().status, 404);
        assert_eq!(parse_rest(&c, "POST", b"/v2/models/m/versions/beta/infer").unwrap_err().status, 404);
    }

    #[test]
    fn v2_grpc_calls_are_read_from_their_own_service() {
        let grpc = request_framing(Some(b"application/grpc"), true);
        let service = "/inference.GRPCInferenceService/";
        let path = |name: &str| format!("{service}{name}").into_bytes();
        assert_eq!(ingress(&path("ModelInfer"), grpc), Ok(Ingress::Grpc(GrpcCall::V2Model(V2ModelMethod::Infer))));
        assert_eq!(ingress(&path("ModelReady"), grpc), Ok(Ingress::Grpc(GrpcCall::V2Model(V2ModelMethod::Ready))));
        assert_eq!(ingress(&path("ServerLive"), grpc), Ok(Ingress::GrpcServer(V2Server::Live)));
        assert_eq!(ingress(&path("ServerMetadata"), grpc), Ok(Ingress::GrpcServer(V2Server::Metadata)));
        // Triton's extensions: UNIMPLEMENTED, in gRPC's terms.
        for name in ["ModelStreamInfer", "ModelConfig", "RepositoryIndex", "ModelStatistics"] {
            let refusal = ingress(&path(name), grpc).unwrap_err();
            assert_eq!(grpc_code_for_http(refusal.status), 12, "{name}");
            assert!(refusal.message.contains("not served through tfgate"), "{}", refusal.message);
        }
        let json = ingress(&path("ServerLive"), request_framing(Some(b"application/grpc+json"), true));
        assert_eq!(json.map_err(|r| grpc_code_for_http(r.status)), Err(12));
        // Not a gRPC call, in the package's paths: 415, as for TF Serving's.
        for framing in [request_framing(None, true), request_framing(Some(b"application/grpc"), false)] {
            for name in ["ModelInfer", "ModelStreamInfer"] {
                assert_eq!(ingress(&path(name), framing).unwrap_err().status, 415, "{name}");
            }
        }
    }

    fn len_field(number: u32, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        tfgate_common::wire::put_len_field(&mut out, number, bytes);
        out
    }

    /// `message` behind a gRPC frame's prefix, read as the body of a call of `call`.
    fn grpc_message(c: &Catalog, call: GrpcCall, message: &[u8]) -> Result<Target, Refusal> {
        let framed = [&[0u8, 0, 0, 0, 0][..], message].concat();
        let parts = [&framed[..]];
        parse_grpc_message(c, call, &Rope::new(&parts), 5, message.len() as u64)
    }

    fn v2_request(name: &str, version: &str) -> Vec<u8> {
        let tensors = len_field(5, &len_field(1, b"INPUT0"));
        [tensors, len_field(1, name.as_bytes()), len_field(2, version.as_bytes()), len_field(7, &[0; 8])].concat()
    }

    #[test]
    fn v2_grpc_messages_name_their_model_under_the_same_catalog() {
        let c = catalog();
        let infer = GrpcCall::V2Model(V2ModelMethod::Infer);
        let Target::Model(request) = grpc_message(&c, infer, &v2_request("m", "stable")).unwrap() else {
            panic!("no model")
        };
        assert_eq!(request.v2, Some(V2ModelMethod::Infer));
        assert_eq!(request.path.selector, VersionSelector::Label("stable".into()));
        assert_eq!(request.path.method, tfgate_common::Method::Predict);
        let status = |call, message: &[u8]| grpc_message(&c, call, message).map(|_| 200).unwrap_or_else(|r| r.status);
        let ready = GrpcCall::V2Model(V2ModelMethod::Ready);
        let metadata = GrpcCall::V2Model(V2ModelMethod::Metadata);
        assert_eq!(status(infer, &v2_request("m", "2")), 200);
        assert_eq!(status(ready, &len_field(1, b"m")), 200);
        assert_eq!(status(metadata, &[len_field(1, b"m"), len_field(2, b"1")].concat()), 200);
        assert_eq!(status(infer, &v2_request("other", "")), 404);
        assert_eq!(status(infer, &v2_request("m", "3")), 404);
        assert_eq!(status(infer, &v2_request("m", "beta")), 404);
        assert_eq!(status(infer, &v2_request("", "1")), 400);
        assert_eq!(status(infer, &v2_request("a/b", "")), 400);
        assert_eq!(status(infer, &[0x08, 1]), 400, "a name of the wrong wire type");
        assert_eq!(status(infer, &[0x0a, 9, b'm']), 400, "truncated");
        let refusal = grpc_message(&c, infer, &[]).unwrap_err();
        assert_eq!(refusal.message, "the request has no model name");
        // The last occurrence of the name is the model the upstream reads, so it is the one
        // checked (and authorized).
        let twice = [len_field(1, b"m"), v2_request("other", "")].concat();
        assert_eq!(status(infer, &twice), 404);
        // A v2 server call has no message to read; TF Serving's calls keep their reader.
        assert_eq!(grpc_message(&c, GrpcCall::V2Server(V2Server::Ready), &[]), Ok(Target::Server(V2Server::Ready)));
        let spec = len_field(1, &len_field(1, b"m"));
        let Target::Model(tf) = grpc_message(&c, GrpcCall::TfServing(GrpcMethod::Predict), &spec).unwrap() else {
            panic!("no model")
        };
        assert_eq!((tf.v2, tf.method_name()), (None, "predict"));
    }

    #[test]
    fn a_v2_grpc_call_is_forwarded_with_its_names_and_no_rewrite() {
        let c = catalog();
        let target = grpc_message(&c, GrpcCall::V2Model(V2ModelMethod::Infer), &v2_request("m", "")).unwrap();
        let context = Context { target: Some(target), rewrite_path: false, ..ctx(&c, "/v1/models/m:predict", false) };
        let forward = forwarded(decide(context, token("alice", "predict")));
        assert_eq!(forward.rewrite, None);
        assert_eq!(header(&forward, headers::METHOD), Some("model_infer"));
        assert_eq!(header(&forward, headers::VERSION), Some("1"));
        let target = grpc_message(&c, GrpcCall::V2Model(V2ModelMethod::Infer), &v2_request("m", "")).unwrap();
        let context = Context { target: Some(target), rewrite_path: false, ..ctx(&c, "/v1/models/m:predict", false) };
        let Decision::Refuse { refusal, .. } = decide(context, token("bob", "read")) else { panic!("not refused") };
        assert_eq!(grpc_code_for_http(refusal.status), 7);
    }
}
