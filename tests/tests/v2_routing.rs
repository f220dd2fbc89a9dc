//! The Open Inference Protocol ("KServe v2") through nginx with the module, REST and gRPC: what
//! the module itself answers (its refusals) and what it hands the upstream (the trusted headers,
//! the path naming the resolved version). The upstream is an echo server in the test, answering
//! with what reached it, so nothing depends on the daemon's own v2 answers. (An nginx server
//! cannot stand in for it: the module removes every `X-Tfgate-*` header a request arrives with,
//! in any server of an nginx that loads it.)

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tfgate_jwt_testkit::{hs_jwk, hs_secret, jwks, sign_token, Signer};
use tfgate_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use tfgate_proto::inference::{
    ModelInferRequest, ModelMetadataRequest, ModelReadyRequest, ServerLiveRequest, ServerMetadataRequest,
    ServerReadyRequest,
};
use tfgate_tests::grpc_wire::BytesCodec;
use tfgate_tests::{free_port, repo_root, HttpClient, Nginx, NginxConfig, Response};
use tonic::transport::Channel;
use tonic::Code;

/// `m`: versions 1 and 2, `stable` (1) by default, `canary` on 2, only for tokens with the scope
/// `predict`.
const CATALOG: &str = "tfgate_model m versions=1,2 default=stable scope=predict;\n\
                       tfgate_model_label m stable 1;\n\
                       tfgate_model_label m canary 2;";

/// What reached the echo: the path (with the query) and the `x-tfgate-*` headers, in order.
#[derive(Debug)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn parse(text: &str) -> Seen {
        let value: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("not what the echo writes ({e}): {text}"));
        let path = value["path"].as_str().unwrap_or_default().to_owned();
        let headers = value["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|pair| {
                (pair[0].as_str().unwrap_or_default().to_owned(), pair[1].as_str().unwrap_or_default().to_owned())
            })
            .collect();
        Seen { path, headers }
    }

    /// Asserts the trusted headers exactly (`X-Tfgate-Client`, which the shipped snippets add,
    /// aside): each once, with this value, and no other.
    fn assert_trusted(&self, expected: &[(&str, &str)]) {
        let mut seen: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .filter(|(n, _)| *n != "x-tfgate-client")
            .collect();
        let mut expected: Vec<(String, &str)> = expected.iter().map(|(n, v)| (format!("x-tfgate-{n}"), *v)).collect();
        seen.sort_unstable();
        expected.sort_unstable();
        let expected: Vec<(&str, &str)> = expected.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        assert_eq!(seen, expected, "at {}", self.path);
    }
}

/// Starts an upstream on a free port that answers every request with a [`Seen`]: as a JSON
/// body (HTTP/1), or in the `grpc-message` of a status no real answer carries, ALREADY_EXISTS
/// (HTTP/2, a trailers-only gRPC answer).
fn start_echo(grpc: bool) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("echo port");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("echo address").port();
    // The test process ends it.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("echo listener");
            while let Ok((stream, _)) = listener.accept().await {
                let io = TokioIo::new(stream);
                let service = hyper::service::service_fn(move |request| echo(request, grpc));
                tokio::spawn(async move {
                    let _ = if grpc {
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await
                    } else {
                        hyper::server::conn::http1::Builder::new().serve_connection(io, service).await
                    };
                });
            }
        });
    });
    port
}

async fn echo(
    request: hyper::Request<hyper::body::Incoming>,
    grpc: bool,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let _ = body.collect().await;
    let headers: Vec<[&str; 2]> = parts
        .headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-tfgate-"))
        .map(|(name, value)| [name.as_str(), value.to_str().unwrap_or("(not text)")])
        .collect();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or_default();
    let seen = serde_json::json!({"path": path, "headers": headers}).to_string();
    let answer = hyper::Response::builder().status(200);
    let answer = if grpc {
        answer
            .header("content-type", "application/grpc")
            .header("grpc-status", "6")
            .header("grpc-message", percent_encode(&seen))
            .body(Full::new(Bytes::new()))
    } else {
        answer.header("content-type", "application/json").body(Full::new(Bytes::from(seen)))
    };
    Ok(answer.expect("echo answer"))
}

/// `grpc-message`'s encoding: printable ASCII but `%` as it is, every other byte escaped.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| if (0x20..0x7f).contains(&b) && b != b'%' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// nginx with the module: a REST server with `location ^~ /v2` and a gRPC server with
/// `location /inference.GRPCInferenceService/`, both requiring tokens (HS256 from a key file)
/// and passing to the echo servers ([`start_echo`]).
struct Gate {
    nginx: Nginx,
    grpc_port: u16,
    secret: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Gate {
    fn start() -> Gate {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = dir.path().join("jwks.json");
        std::fs::write(&keys, jwks(&[hs_jwk("h", 64)])).expect("jwks");
        let jwt = format!("tfgate_jwt on; tfgate_jwt_key_file {}; tfgate_jwt_algorithms HS256;", keys.display());
        let conf_dir = repo_root().join("nginx-conf");
        let conf_dir = conf_dir.display();
        let (rest_echo, grpc_echo, grpc_port) = (start_echo(false), start_echo(true), free_port());
        let log = "access_log logs/v2.log tfgate_v2;";
        let http_extra = format!(
            r#"
    log_format tfgate_v2 '$tfgate_model_method|$tfgate_model|$tfgate_model_version|$tfgate_model_label|$status';
    server {{
        listen 127.0.0.1:{grpc_port} http2;
        include {conf_dir}/tfgate-grpc-errors.conf;
        {CATALOG}
        location /inference.GRPCInferenceService/ {{
            tfgate_route on;
            {jwt}
            grpc_pass grpc://127.0.0.1:{grpc_echo};
            include {conf_dir}/tfgate-grpc.conf;
            {log}
        }}
    }}
"#
        );
        let server_extra = format!(
            "{CATALOG}\nlocation ^~ /v2 {{ tfgate_route on; {jwt} proxy_pass http://127.0.0.1:{rest_echo}; \
             include {conf_dir}/tfgate-proxy.conf; {log} }}"
        );
        let config = NginxConfig { http_extra, server_extra, ..NginxConfig::default() };
        // No daemon: the v1 location's socket is never used.
        let nginx = Nginx::start(dir.path(), &dir.path().join("absent.sock"), &config);
        Gate { nginx, grpc_port, secret: hs_secret(64), _dir: dir }
    }

    fn token(&self, sub: &str, scope: &str) -> String {
        let claims = serde_json::json!({"sub": sub, "scope": scope, "exp": 4_000_000_000u64});
        sign_token(
            r#"{"alg":"HS256","kid":"h","typ":"JWT"}"#,
            &claims.to_string(),
            "HS256",
            &Signer::Hmac(&self.secret),
        )
    }

    fn rest(&self) -> HttpClient {
        self.nginx.client()
    }

    async fn grpc(&self) -> GrpcInferenceServiceClient<Channel> {
        GrpcInferenceServiceClient::connect(self.grpc_url()).await.expect("connect to nginx's gRPC server")
    }

    fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    fn log(&self, done: impl Fn(&str) -> bool) -> String {
        self.nginx.log_when("v2.log", done)
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A REST call with a token (or none) and forged trusted headers, which must never reach the
/// upstream.
fn call(client: &HttpClient, method: &str, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(bearer);
    let mut headers = vec![("X-Tfgate-Model", "forged"), ("X-Tfgate-Version", "9"), ("X-Tfgate-Subject", "root")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    let body = (method == "POST").then_some(r#"{"inputs": []}"#);
    client.send(method, path, &headers, body)
}

/// What the REST echo received.
fn reached(answer: &Response) -> Seen {
    assert_eq!(answer.status, 200, "not the echo: {answer:?}");
    Seen::parse(&answer.body)
}

#[test]
fn rest_refusals_come_from_the_module_as_json() {
    let gate = Gate::start();
    let client = gate.rest();
    let alice = gate.token("alice", "predict");
    // No token: 401 with the challenge and no `error` attribute (none was sent).
    let answer = call(&client, "POST", "/v2/models/m/infer", None);
    answer.assert_json_error(401);
    assert_eq!(answer.header("www-authenticate"), Some("Bearer realm=\"tfgate\""), "{answer:?}");
    let answer = call(&client, "POST", "/v2/models/m/infer", Some("not.a.token"));
    answer.assert_json_error(401);
    assert!(answer.header("www-authenticate").unwrap_or_default().contains("invalid_token"), "{answer:?}");
    // A model, version or label the catalog does not serve: 404, before any token work.
    for path in ["/v2/models/other/infer", "/v2/models/m/versions/3/infer", "/v2/models/m/versions/beta/infer"] {
        let error = call(&client, "POST", path, None).assert_json_error(404);
        assert!(error.contains("not served here"), "{path}: {error}");
    }
    // The model's scope.
    let answer = call(&client, "POST", "/v2/models/m/infer", Some(&gate.token("bob", "read")));
    answer.assert_json_error(403);
    let challenge = answer.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("insufficient_scope") && challenge.contains("scope=\"predict\""), "{challenge}");
    // The wrong HTTP method: 405 with the one to use.
    for (method, path, allow) in [
        ("GET", "/v2/models/m/infer", "POST"),
        ("POST", "/v2/models/m/ready", "GET"),
        ("PUT", "/v2/models/m", "GET"),
        ("POST", "/v2/health/live", "GET"),
        ("DELETE", "/v2", "GET"),
    ] {
        let answer = call(&client, method, path, Some(&alice));
        answer.assert_json_error(405);
        assert_eq!(answer.header("allow"), Some(allow), "{method} {path}");
    }
    // Malformed or unknown v2 paths, case-sensitively.
    for (path, status) in [
        ("/v2/models/a%2Fb/infer", 400),
        ("/v2/models/m//infer", 400),
        ("/v2/models", 400),
        ("/v2/models/m/versions/99999999999999999999/infer", 400),
        ("/v2/Models/m/infer", 404),
        ("/v2/models/m/Infer", 404),
        ("/v2/models/m/generate", 404),
        ("/v2/repository/index", 404),
        ("/v2x", 404),
    ] {
        call(&client, "POST", path, Some(&alice)).assert_json_error(status);
    }
    // Upper case is not v2's: no location of the module's takes it, and nothing reaches the echo.
    let answer = call(&client, "POST", "/V2/models/m/infer", Some(&alice));
    assert_eq!(answer.status, 404, "{answer:?}");
    assert!(!answer.body.contains("\"path\""), "{answer:?}");
}

#[test]
fn rest_calls_reach_the_upstream_resolved_with_trusted_headers() {
    let gate = Gate::start();
    let client = gate.rest();
    let alice = gate.token("alice", "predict");
    // The default label, resolved and named in the path sent upstream (the query kept).
    let seen = reached(&call(&client, "POST", "/v2/models/m/infer?x=1", Some(&alice)));
    assert_eq!(seen.path, "/v2/models/m/versions/1/infer?x=1");
    seen.assert_trusted(&[
        ("model", "m"),
        ("version", "1"),
        ("label", "stable"),
        ("method", "model_infer"),
        ("subject", "alice"),
    ]);
    let seen = reached(&call(&client, "GET", "/v2/models/m/versions/canary/ready", Some(&alice)));
    assert_eq!(seen.path, "/v2/models/m/versions/2/ready");
    seen.assert_trusted(&[
        ("model", "m"),
        ("version", "2"),
        ("label", "canary"),
        ("method", "model_ready"),
        ("subject", "alice"),
    ]);
    let seen = reached(&call(&client, "GET", "/v2/models/m/versions/2", Some(&alice)));
    assert_eq!(seen.path, "/v2/models/m/versions/2");
    seen.assert_trusted(&[("model", "m"), ("version", "2"), ("method", "model_metadata"), ("subject", "alice")]);
    // A model's readiness with no version is its status: the versions exposed, no default.
    let seen = reached(&call(&client, "GET", "/v2/models/m/ready", Some(&alice)));
    assert_eq!(seen.path, "/v2/models/m/ready");
    seen.assert_trusted(&[("model", "m"), ("versions", "1,2"), ("method", "model_ready"), ("subject", "alice")]);
    // Server calls name no model: the token alone (without the model's scope) lets them through.
    let bob = gate.token("bob", "read");
    for (path, method) in
        [("/v2", "server_metadata"), ("/v2/health/live", "server_live"), ("/v2/health/ready", "server_ready")]
    {
        let seen = reached(&call(&client, "GET", path, Some(&bob)));
        assert_eq!(seen.path, path);
        seen.assert_trusted(&[("method", method), ("subject", "bob")]);
        call(&client, "GET", path, None).assert_json_error(401);
    }
    // $tfgate_model_method and the other variables (nginx logs an empty one as "-").
    let log = gate.log(|log| log.contains("server_ready|-|-|-|401"));
    for line in [
        "model_infer|m|1|stable|200",
        "model_ready|m|2|canary|200",
        "model_metadata|m|2|-|200",
        "model_ready|m|-|-|200",
        "server_live|-|-|-|200",
        "server_metadata|-|-|-|401",
    ] {
        assert!(log.lines().any(|l| l == line), "{line} not in\n{log}");
    }
}

/// A gRPC call's outcome as the echo or the module word it: the code and the message.
fn outcome<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> (Code, String) {
    match result {
        Ok(answer) => panic!("the echo never answers OK: {answer:?}"),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}

fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut call = tonic::Request::new(message);
    call.metadata_mut().insert("x-tfgate-model", "forged".parse().unwrap());
    call.metadata_mut().insert("x-tfgate-method", "predict".parse().unwrap());
    if let Some(token) = token {
        call.metadata_mut().insert("authorization", bearer(token).parse().unwrap());
    }
    call
}

fn infer(model: &str, version: &str) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        model_version: version.into(),
        raw_input_contents: vec![vec![0u8; 64].into()],
        ..Default::default()
    }
}

/// What the gRPC echo received.
fn grpc_reached(outcome: (Code, String)) -> Seen {
    let (code, message) = outcome;
    assert_eq!(code, Code::AlreadyExists, "not the echo: {message}");
    Seen::parse(&message)
}

#[tokio::test]
async fn grpc_refusals_are_grpc_statuses_from_the_module() {
    let gate = tokio::task::spawn_blocking(Gate::start).await.unwrap();
    let mut client = gate.grpc().await;
    let alice = gate.token("alice", "predict");
    let bob = gate.token("bob", "read");
    let (code, message) = outcome(client.model_infer(with_token(infer("m", ""), None)).await);
    assert_eq!(code, Code::Unauthenticated, "{message}");
    let (code, _) = outcome(client.model_infer(with_token(infer("m", ""), Some("not.a.token"))).await);
    assert_eq!(code, Code::Unauthenticated);
    for (model, version) in [("other", ""), ("m", "3"), ("m", "beta")] {
        let (code, message) = outcome(client.model_infer(with_token(infer(model, version), Some(&alice))).await);
        assert_eq!(code, Code::NotFound, "{model} {version}: {message}");
    }
    let (code, message) = outcome(client.model_infer(with_token(infer("m", ""), Some(&bob))).await);
    assert_eq!(code, Code::PermissionDenied, "{message}");
    let ready = ModelReadyRequest { name: "m".into(), version: String::new() };
    let (code, _) = outcome(client.model_ready(with_token(ready, Some(&bob))).await);
    assert_eq!(code, Code::PermissionDenied);
    // No model name, or a malformed one.
    for (model, version) in [("", "1"), ("a/b", ""), ("m", "a/b")] {
        let (code, message) = outcome(client.model_infer(with_token(infer(model, version), Some(&alice))).await);
        assert_eq!(code, Code::InvalidArgument, "{model:?} {version:?}: {message}");
    }
    // Triton's extensions of the service: UNIMPLEMENTED, in gRPC's terms.
    let channel = Channel::from_shared(gate.grpc_url()).unwrap().connect().await.unwrap();
    for name in ["ModelStreamInfer", "ModelConfig", "ModelStatistics", "RepositoryIndex", "RepositoryModelLoad"] {
        let path = format!("/inference.GRPCInferenceService/{name}");
        let status = raw_unary(&channel, &path, infer("m", "").encode_to_vec(), &alice).await.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{name}: {status:?}");
        assert!(status.message().contains("not served through tfgate"), "{name}: {status:?}");
    }
    tokio::task::spawn_blocking(move || drop(gate)).await.unwrap();
}

#[tokio::test]
async fn grpc_calls_reach_the_upstream_with_trusted_headers() {
    let gate = tokio::task::spawn_blocking(Gate::start).await.unwrap();
    let mut client = gate.grpc().await;
    let alice = gate.token("alice", "predict");
    let seen = grpc_reached(outcome(client.model_infer(with_token(infer("m", ""), Some(&alice))).await));
    assert_eq!(seen.path, "/inference.GRPCInferenceService/ModelInfer", "never rewritten");
    seen.assert_trusted(&[
        ("model", "m"),
        ("version", "1"),
        ("label", "stable"),
        ("method", "model_infer"),
        ("subject", "alice"),
    ]);
    let seen = grpc_reached(outcome(client.model_infer(with_token(infer("m", "canary"), Some(&alice))).await));
    seen.assert_trusted(&[
        ("model", "m"),
        ("version", "2"),
        ("label", "canary"),
        ("method", "model_infer"),
        ("subject", "alice"),
    ]);
    let ready = ModelReadyRequest { name: "m".into(), version: String::new() };
    let seen = grpc_reached(outcome(client.model_ready(with_token(ready, Some(&alice))).await));
    seen.assert_trusted(&[("model", "m"), ("versions", "1,2"), ("method", "model_ready"), ("subject", "alice")]);
    let metadata = ModelMetadataRequest { name: "m".into(), version: "2".into() };
    let seen = grpc_reached(outcome(client.model_metadata(with_token(metadata, Some(&alice))).await));
    seen.assert_trusted(&[("model", "m"), ("version", "2"), ("method", "model_metadata"), ("subject", "alice")]);
    // Server calls: no model, the token only.
    let bob = gate.token("bob", "read");
    let seen = grpc_reached(outcome(client.server_live(with_token(ServerLiveRequest {}, Some(&bob))).await));
    assert_eq!(seen.path, "/inference.GRPCInferenceService/ServerLive");
    seen.assert_trusted(&[("method", "server_live"), ("subject", "bob")]);
    let seen = grpc_reached(outcome(client.server_ready(with_token(ServerReadyRequest {}, Some(&bob))).await));
    seen.assert_trusted(&[("method", "server_ready"), ("subject", "bob")]);
    let seen = grpc_reached(outcome(client.server_metadata(with_token(ServerMetadataRequest {}, Some(&bob))).await));
    seen.assert_trusted(&[("method", "server_metadata"), ("subject", "bob")]);
    let (code, _) = outcome(client.server_live(with_token(ServerLiveRequest {}, None)).await);
    assert_eq!(code, Code::Unauthenticated);
    // $tfgate_model_method and the other variables (nginx logs an empty one as "-"); a gRPC
    // refusal is an HTTP 200.
    let done = |log: &str| log.matches("server_live|-|-|-|200").count() == 2;
    let log = tokio::task::spawn_blocking(move || gate.log(done)).await.unwrap();
    for line in [
        "model_infer|m|1|stable|200",
        "model_infer|m|2|canary|200",
        "model_ready|m|-|-|200",
        "model_metadata|m|2|-|200",
        "server_ready|-|-|-|200",
        "server_metadata|-|-|-|200",
    ] {
        assert!(log.lines().any(|l| l == line), "{line} not in\n{log}");
    }
}

/// A unary call of `path` with these message bytes and a token.
async fn raw_unary(channel: &Channel, path: &str, message: Vec<u8>, token: &str) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).unwrap();
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", bearer(token).parse().unwrap());
    grpc.unary(request, path, BytesCodec).await.map(tonic::Response::into_inner)
}

/// The shipped servers route v2 beside v1 (module_loading.rs runs `nginx -t` on them).
#[test]
fn the_shipped_servers_route_v2() {
    let conf_dir = repo_root().join("nginx-conf");
    for example in ["example.conf", "minimal.conf"] {
        let text = std::fs::read_to_string(conf_dir.join(example)).unwrap();
        assert!(text.contains("location ~* ^/v1/models {") && text.contains("location ^~ /v2 {"), "{example}");
        assert_eq!(text.matches("tfgate_route on;").count(), 2, "{example}: both locations route");
    }
    let grpc = std::fs::read_to_string(conf_dir.join("tfgate-grpc.conf")).unwrap();
    assert!(grpc.contains("/inference.GRPCInferenceService/"));
}
