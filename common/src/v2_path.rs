//! The Open Inference Protocol's ("KServe v2") REST path grammar:
//! `/v2`, `/v2/health/{live,ready}` and `/v2/models/NAME[/versions/VERSION][/ready | /infer]`.
//!
//! Unlike TF Serving's `/v1/` grammar ([`crate::rest_path`]), matching is case-sensitive, as the
//! protocol says of every string. The rest follows `/v1/`: names and versions are URL-decoded
//! strictly and must pass [`check_name`]; control bytes, a '#', dot segments, empty segments
//! (a duplicate or trailing slash) and overlong paths or names are refused; the caller passes
//! the path without its query string.
//!
//! A v2 version is a string. One made only of digits is a version number (the `/v1/` grammar of
//! [`crate::version`]); any other is a label; none leaves the choice to the catalog. So a
//! catalog label made only of digits cannot be named through v2.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::rest_path::{check_name, shown, Method, ModelPath, PathError, VersionSelector, MAX_PATH_LEN};

const PREFIX: &[u8] = b"/v2";

/// What a model's v2 path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2ModelMethod {
    /// `GET /v2/models/NAME[/versions/V]` (gRPC `ModelMetadata`).
    Metadata,
    /// `GET .../ready` (gRPC `ModelReady`).
    Ready,
    /// `POST .../infer` (gRPC `ModelInfer`).
    Infer,
}

impl V2ModelMethod {
    /// The name in the module's vocabulary (trusted headers, variables, logs), never one of
    /// [`Method`]'s.
    pub fn as_str(self) -> &'static str {
        match self {
            V2ModelMethod::Metadata => "model_metadata",
            V2ModelMethod::Ready => "model_ready",
            V2ModelMethod::Infer => "model_infer",
        }
    }

    /// The method of `inference.GRPCInferenceService` doing the same.
    pub fn rpc(self) -> &'static str {
        match self {
            V2ModelMethod::Metadata => "ModelMetadata",
            V2ModelMethod::Ready => "ModelReady",
            V2ModelMethod::Infer => "ModelInfer",
        }
    }

    pub fn http_method(self) -> &'static str {
        match self {
            V2ModelMethod::Metadata | V2ModelMethod::Ready => "GET",
            V2ModelMethod::Infer => "POST",
        }
    }

    /// The TF Serving operation this amounts to, under which the catalog, scopes and splits
    /// treat it: an inference is a prediction, readiness a model status.
    pub fn tf_method(self) -> Method {
        match self {
            V2ModelMethod::Metadata => Method::Metadata,
            V2ModelMethod::Ready => Method::Status,
            V2ModelMethod::Infer => Method::Predict,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            V2ModelMethod::Metadata => "",
            V2ModelMethod::Ready => "/ready",
            V2ModelMethod::Infer => "/infer",
        }
    }
}

/// A model's v2 path: the fields of [`ModelPath`], with the v2 operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2ModelPath {
    pub model: String,
    pub selector: VersionSelector,
    pub method: V2ModelMethod,
}

/// A parsed v2 REST path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2Path {
    /// `GET /v2/health/live`.
    ServerLive,
    /// `GET /v2/health/ready`.
    ServerReady,
    /// `GET /v2`.
    ServerMetadata,
    Model(V2ModelPath),
}

/// Characters left as they are when a name is written back into a path (RFC 3986 unreserved).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

impl V2ModelPath {
    /// The same request as TF Serving's catalog sees it ([`V2ModelMethod::tf_method`]).
    pub fn to_model_path(&self) -> ModelPath {
        ModelPath { model: self.model.clone(), selector: self.selector.clone(), method: self.method.tf_method() }
    }

    /// The canonical path, names percent-encoded: [`parse_v2_path`] reads it back as `self`.
    pub fn to_path(&self) -> String {
        let version = match &self.selector {
            VersionSelector::Unspecified => String::new(),
            VersionSelector::Number(n) => format!("/versions/{n}"),
            VersionSelector::Label(label) => format!("/versions/{}", utf8_percent_encode(label, PATH_SEGMENT)),
        };
        format!("/v2/models/{}{version}{}", utf8_percent_encode(&self.model, PATH_SEGMENT), self.method.suffix())
    }
}

impl V2Path {
    /// The name in the module's vocabulary: `server_live`, `server_ready`, `server_metadata`,
    /// or the model method's.
    pub fn as_str(&self) -> &'static str {
        match self {
            V2Path::ServerLive => "server_live",
            V2Path::ServerReady => "server_ready",
            V2Path::ServerMetadata => "server_metadata",
            V2Path::Model(m) => m.method.as_str(),
        }
    }

    pub fn http_method(&self) -> &'static str {
        match self {
            V2Path::Model(m) => m.method.http_method(),
            _ => "GET",
        }
    }

    /// The canonical path: [`parse_v2_path`] reads it back as `self`.
    pub fn to_path(&self) -> String {
        match self {
            V2Path::ServerLive => "/v2/health/live".to_string(),
            V2Path::ServerReady => "/v2/health/ready".to_string(),
            V2Path::ServerMetadata => "/v2".to_string(),
            V2Path::Model(m) => m.to_path(),
        }
    }
}

fn refused(status: u16, message: impl Into<String>) -> PathError {
    PathError { status, message: message.into() }
}

/// Parses a raw request path (without the query string).
pub fn parse_v2_path(raw: &[u8]) -> Result<V2Path, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(refused(400, "path too long"));
    }
    // nginx keeps a '#' in the path it forwards; HTTP libraries (the daemon's) end the path there.
    match raw.iter().find(|&&b| b < 0x20 || b == 0x7f || b == b'#') {
        Some(b'#') => return Err(refused(400, "'#' in path (a URI fragment is never sent to a server)")),
        Some(_) => return Err(refused(400, "control character in path")),
        None => {}
    }
    let rest = match raw.strip_prefix(PREFIX) {
        Some([]) => return Ok(V2Path::ServerMetadata),
        Some([b'/', rest @ ..]) => rest,
        _ => return Err(refused(404, "not an Open Inference Protocol path")),
    };
    let rest = std::str::from_utf8(rest).map_err(|_| refused(400, "path is not UTF-8"))?;
    let segments: Vec<&str> = rest.split('/').collect();
    match segments[..] {
        ["health", "live"] => Ok(V2Path::ServerLive),
        ["health", "ready"] => Ok(V2Path::ServerReady),
        ["models"] | ["models", ""] => Err(refused(400, "Missing model name")),
        _ if segments.contains(&"") => Err(refused(400, "empty path segment (duplicate or trailing slash)")),
        ["models", name, ref tail @ ..] => parse_model(name, tail).map(V2Path::Model),
        _ => Err(refused(404, "unknown Open Inference Protocol path")),
    }
}

/// `NAME` and what follows it.
fn parse_model(name: &str, tail: &[&str]) -> Result<V2ModelPath, PathError> {
    let (version, method) = match *tail {
        [] => (None, V2ModelMethod::Metadata),
        ["ready"] => (None, V2ModelMethod::Ready),
        ["infer"] => (None, V2ModelMethod::Infer),
        ["versions", v] => (Some(v), V2ModelMethod::Metadata),
        ["versions", v, "ready"] => (Some(v), V2ModelMethod::Ready),
        ["versions", v, "infer"] => (Some(v), V2ModelMethod::Infer),
        _ => return Err(refused(404, "unknown Open Inference Protocol model path")),
    };
    let model = decode_segment(name, "model name")?;
    check_name(&model, "model name")?;
    let selector = match version {
        None => VersionSelector::Unspecified,
        Some(v) => parse_v2_version(&decode_segment(v, "model version")?)?,
    };
    Ok(V2ModelPath { model, selector, method })
}

/// A v2 model version, from a path or a gRPC message: empty is unspecified, digits only a
/// version number (refused beyond what [`crate::version::parse_version`] reads), anything
/// else a label, under [`check_name`].
pub fn parse_v2_version(raw: &str) -> Result<VersionSelector, PathError> {
    if raw.is_empty() {
        return Ok(VersionSelector::Unspecified);
    }
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return crate::version::parse_version(raw.as_bytes()).map(VersionSelector::Number).ok_or_else(|| {
            refused(400, format!("version must be a number of at most 19 digits within i64, got '{}'", shown(raw)))
        });
    }
    check_name(raw, "version label")?;
    Ok(VersionSelector::Label(raw.to_owned()))
}

/// Decodes a path segment strictly: every '%' must start an escape of two hex digits, and the
/// result must be UTF-8. What it may hold is for [`check_name`] to say.
fn decode_segment(raw: &str, what: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let escapes_complete = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'%')
        .all(|(i, _)| bytes.get(i + 1..i + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)));
    if !escapes_complete {
        return Err(refused(400, format!("malformed percent-encoding in {what}")));
    }
    match percent_decode_str(raw).decode_utf8() {
        Ok(decoded) => Ok(decoded.into_owned()),
        Err(_) => Err(refused(400, format!("{what} is not UTF-8"))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rest_path::MAX_NAME_LEN;

    /// The path parsed; whatever parses must read back the same from its canonical form.
    fn ok(path: &str) -> V2Path {
        let parsed = parse_v2_path(path.as_bytes()).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(parse_v2_path(parsed.to_path().as_bytes()).as_ref(), Ok(&parsed), "{path}");
        parsed
    }

    fn model(path: &str) -> V2ModelPath {
        match ok(path) {
            V2Path::Model(m) => m,
            other => panic!("{path}: {other:?}"),
        }
    }

    fn err(path: &str) -> PathError {
        parse_v2_path(path.as_bytes()).expect_err(path)
    }

    fn expect(model: &str, selector: VersionSelector, method: V2ModelMethod) -> V2ModelPath {
        V2ModelPath { model: model.into(), selector, method }
    }

    #[test]
    fn server_paths() {
        assert_eq!(ok("/v2"), V2Path::ServerMetadata);
        assert_eq!(ok("/v2/health/live"), V2Path::ServerLive);
        assert_eq!(ok("/v2/health/ready"), V2Path::ServerReady);
        for (path, name) in
            [("/v2", "server_metadata"), ("/v2/health/live", "server_live"), ("/v2/health/ready", "server_ready")]
        {
            assert_eq!((ok(path).as_str(), ok(path).http_method()), (name, "GET"));
        }
    }

    #[test]
    fn every_model_form_and_method() {
        use V2ModelMethod::*;
        use VersionSelector::*;
        let cases = [
            ("/v2/models/m", expect("m", Unspecified, Metadata)),
            ("/v2/models/m/ready", expect("m", Unspecified, Ready)),
            ("/v2/models/m/infer", expect("m", Unspecified, Infer)),
            ("/v2/models/m/versions/3", expect("m", Number(3), Metadata)),
            ("/v2/models/m/versions/3/ready", expect("m", Number(3), Ready)),
            ("/v2/models/m/versions/3/infer", expect("m", Number(3), Infer)),
            ("/v2/models/m/versions/stable", expect("m", Label("stable".into()), Metadata)),
            ("/v2/models/m/versions/canary/ready", expect("m", Label("canary".into()), Ready)),
            ("/v2/models/m/versions/v1/infer", expect("m", Label("v1".into()), Infer)),
            // A model may be called like a fixed segment: the name is always the third.
            ("/v2/models/ready", expect("ready", Unspecified, Metadata)),
            ("/v2/models/infer/infer", expect("infer", Unspecified, Infer)),
            ("/v2/models/versions/versions/versions", expect("versions", Label("versions".into()), Metadata)),
            ("/v2/models/health", expect("health", Unspecified, Metadata)),
        ];
        for (path, expected) in cases {
            assert_eq!(model(path), expected, "{path}");
        }
    }

    #[test]
    fn methods_name_their_operation_http_method_and_tf_equivalent() {
        let table = [
            (V2ModelMethod::Metadata, "model_metadata", "ModelMetadata", "GET", Method::Metadata),
            (V2ModelMethod::Ready, "model_ready", "ModelReady", "GET", Method::Status),
            (V2ModelMethod::Infer, "model_infer", "ModelInfer", "POST", Method::Predict),
        ];
        for (method, name, rpc, http, tf) in table {
            assert_eq!(
                (method.as_str(), method.rpc(), method.http_method(), method.tf_method()),
                (name, rpc, http, tf)
            );
            let path = V2ModelPath { model: "m".into(), selector: VersionSelector::Number(2), method };
            assert_eq!(V2Path::Model(path.clone()).as_str(), name);
            assert_eq!(V2Path::Model(path.clone()).http_method(), http);
            let tf_path = path.to_model_path();
            assert_eq!(
                (tf_path.model.as_str(), tf_path.selector, tf_path.method),
                ("m", VersionSelector::Number(2), tf)
            );
        }
    }

    #[test]
    fn versions_digits_are_numbers_anything_else_a_label() {
        assert_eq!(model("/v2/models/m/versions/0").selector, VersionSelector::Number(0));
        assert_eq!(model("/v2/models/m/versions/007").selector, VersionSelector::Number(7));
        assert_eq!(model("/v2/models/m/versions/9223372036854775807").selector, VersionSelector::Number(i64::MAX));
        assert_eq!(model("/v2/models/m/versions/%31%32").selector, VersionSelector::Number(12), "decoded first");
        for label in ["-1", "+3", "1.5", "1e3", " 1", "latest", "x%20y"] {
            let expected = percent_decode_str(label).decode_utf8().unwrap().into_owned();
            assert_eq!(model(&format!("/v2/models/m/versions/{label}")).selector, VersionSelector::Label(expected));
        }
        for beyond in ["9223372036854775808", "99999999999999999999", "00000000000000000001"] {
            let e = err(&format!("/v2/models/m/versions/{beyond}/infer"));
            assert_eq!(e.status, 400, "{beyond}");
            assert!(e.message.starts_with("version must be a number"), "{beyond}: {}", e.message);
        }
        assert_eq!(parse_v2_version(""), Ok(VersionSelector::Unspecified));
        assert_eq!(parse_v2_version("12"), Ok(VersionSelector::Number(12)));
        assert_eq!(parse_v2_version("blue"), Ok(VersionSelector::Label("blue".into())));
        for bad in ["a/b", "..", ".", "a#b", "a?b", "a\u{7f}"] {
            assert_eq!(parse_v2_version(bad).unwrap_err().status, 400, "{bad:?}");
        }
    }

    #[test]
    fn case_sensitive_but_names_keep_case() {
        assert_eq!(model("/v2/models/MyModel/versions/Blue/infer").model, "MyModel");
        assert_eq!(model("/v2/models/MyModel/versions/Blue").selector, VersionSelector::Label("Blue".into()));
        for path in [
            "/V2",
            "/V2/health/live",
            "/v2/Health/live",
            "/v2/health/LIVE",
            "/v2/Models/m",
            "/v2/models/m/Infer",
            "/v2/models/m/READY",
            "/v2/models/m/Versions/1",
        ] {
            assert_eq!(err(path).status, 404, "{path}");
        }
    }

    #[test]
    fn names_and_versions_are_url_decoded() {
        assert_eq!(model("/v2/models/my%20model/infer").model, "my model");
        assert_eq!(model("/v2/models/a:b").model, "a:b");
        assert_eq!(model("/v2/models/m/versions/caf%C3%A9").selector, VersionSelector::Label("café".into()));
        assert_eq!(model("/v2/models/caf%c3%a9/ready").model, "café");
        // Fixed segments are matched as sent, never decoded.
        assert_eq!(err("/v2/%6Dodels/m").status, 404);
        assert_eq!(err("/v2/models/m/%69nfer").status, 404);
    }

    const CANONICAL: [&str; 8] = [
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/m",
        "/v2/models/a%20b/ready",
        "/v2/models/m/versions/3/infer",
        "/v2/models/m/versions/x%3Ay",
        "/v2/models/caf%C3%A9/versions/caf%C3%A9/ready",
    ];

    #[test]
    fn canonical_path_round_trips() {
        for path in CANONICAL {
            assert_eq!(ok(path).to_path(), path);
        }
        // Equivalent spellings become one canonical path.
        assert_eq!(ok("/v2/models/%6D/versions/007/infer").to_path(), "/v2/models/m/versions/7/infer");
        assert_eq!(ok("/v2/models/a%3ab").to_path(), "/v2/models/a%3Ab");
    }

    #[test]
    fn missing_name_and_empty_segments_are_400() {
        assert_eq!(err("/v2/models").message, "Missing model name");
        assert_eq!(err("/v2/models/").message, "Missing model name");
        for path in [
            "/v2/",
            "/v2//health/live",
            "/v2/health/live/",
            "/v2/health/",
            "/v2/models//",
            "/v2/models//infer",
            "/v2/models/m/",
            "/v2/models/m//infer",
            "/v2/models/m/infer/",
            "/v2/models/m/versions/",
            "/v2/models/m/versions//infer",
            "/v2/models/m/versions/1/",
        ] {
            let e = err(path);
            assert_eq!(
                (e.status, e.message.as_str()),
                (400, "empty path segment (duplicate or trailing slash)"),
                "{path}"
            );
        }
    }

    #[test]
    fn hostile_forms_are_refused() {
        let cases = [
            ("/v2/models/a%2Fb/infer", "slash"),
            ("/v2/models/a%2fb", "slash"),
            ("/v2/models/a%5Cb/ready", "slash"),
            ("/v2/models/../infer", "dot segment"),
            ("/v2/models/./infer", "dot segment"),
            ("/v2/models/%2E%2E/infer", "dot segment"),
            ("/v2/models/m/versions/../infer", "dot segment"),
            ("/v2/models/m/versions/%2e/ready", "dot segment"),
            ("/v2/models/m/versions/a%2Fb/infer", "slash"),
            ("/v2/models/m%00/infer", "control"),
            ("/v2/models/m%0a", "control"),
            ("/v2/models/m/versions/a%7F", "control"),
            ("/v2/models/m\0/infer", "control"),
            ("/v2/models/m\t", "control"),
            ("/v2\x7f", "control"),
            ("/v2/models/m%/infer", "percent-encoding"),
            ("/v2/models/m%zz", "percent-encoding"),
            ("/v2/models/m%4", "percent-encoding"),
            ("/v2/models/m%%41", "percent-encoding"),
            ("/v2/models/m/versions/1%", "percent-encoding"),
            ("/v2/models/m%C3/infer", "not UTF-8"),
            ("/v2/models/m/versions/%FF", "not UTF-8"),
            ("/v2/models/m#x", "'#'"),
            ("/v2#x", "'#'"),
            ("/v2/health/live#x", "'#'"),
            ("/v2/models/m/infer#x", "'#'"),
            ("/v2/models/m%23x/infer", "'#'"),
            ("/v2/models/m%3Fx/infer", "'?'"),
            ("/v2/models/m?x/infer", "'?'"),
            ("/v2/models/m/versions/a%3fb", "'?'"),
        ];
        for (path, why) in cases {
            let e = err(path);
            assert_eq!(e.status, 400, "{path:?}");
            assert!(e.message.contains(why), "{path:?}: {}", e.message);
        }
        let raw_invalid_utf8 = b"/v2/models/\xff/infer";
        assert_eq!(parse_v2_path(raw_invalid_utf8).unwrap_err().message, "path is not UTF-8");
        let long = format!("/v2/models/{}/infer", "a".repeat(MAX_NAME_LEN + 1));
        assert!(err(&long).message.contains("longer than"));
        assert_eq!(model(&format!("/v2/models/{}/infer", "a".repeat(MAX_NAME_LEN))).model.len(), MAX_NAME_LEN);
        let long_label = format!("/v2/models/m/versions/{}", "a".repeat(MAX_NAME_LEN + 1));
        assert!(err(&long_label).message.contains("version label longer than"));
        let longer = format!("/v2/models/{}", "a".repeat(MAX_PATH_LEN));
        assert_eq!(err(&longer).message, "path too long");
        assert_eq!(err(&format!("/v2/health/live{}", "\0".repeat(MAX_PATH_LEN))).message, "path too long");
    }

    #[test]
    fn errors_never_echo_long_input() {
        let huge = "9".repeat(1000);
        let e = err(&format!("/v2/models/m/versions/{huge}"));
        assert!(e.message.len() < 120, "{}", e.message);
        for path in [
            format!("/v2/models/{}", "a".repeat(1500)),
            format!("/v2/models/m/versions/{}", "b".repeat(1500)),
            format!("/v2/models/{}%zz", "c".repeat(1500)),
            format!("/v2/models/m/{}", "d".repeat(1500)),
            format!("/v2/{}", "e".repeat(1500)),
            "f".repeat(3000),
        ] {
            let e = err(&path);
            assert!(e.message.len() < 120, "{}", e.message);
        }
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "/v2x",
            "/v2x/health/live",
            "/v20/models/m",
            "/v1/models/m:predict",
            "/v2/health",
            "/v2/health/started",
            "/v2/health/live/x",
            "/v2/modelsx/m",
            "/v2/models/m/versions",
            "/v2/models/m/versions/1/ready/x",
            "/v2/models/m/labels/stable",
            "/v2/models/m/metadata",
            "/v2/models/m/generate",
            "/v2/models/m/stats",
            "/v2/models/m/config",
            "/v2/models/m/versions/1/stats",
            "/v2/repository/index",
            "/v2/repository/models/m/load",
            "/v2/logging",
            "/index.html",
            "",
            "/",
        ] {
            let e = err(path);
            assert_eq!(e.status, 404, "{path}: {}", e.message);
        }
    }

    /// Pseudo-random numbers (xorshift64) for the tests that feed arbitrary input.
    pub(crate) fn xorshift(mut seed: u64) -> impl Iterator<Item = u64> {
        std::iter::from_fn(move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            Some(seed)
        })
    }

    #[test]
    fn never_panics_on_arbitrary_bytes_and_what_parses_round_trips() {
        let alphabet: &[u8] = b"/v2modelsversionshealthreadyinferlive%2F.0\0\xff\xc3#?3A";
        let mut random = xorshift(0x9E3779B97F4A7C15);
        for prefix in [&b"/v2/models/"[..], b"/v2"].into_iter().cycle().take(20_000) {
            let len = random.next().unwrap_or(0) % 40;
            let tail = random.by_ref().take(len as usize).map(|r| alphabet[(r % alphabet.len() as u64) as usize]);
            let path: Vec<u8> = prefix.iter().copied().chain(tail).collect();
            if let Ok(parsed) = parse_v2_path(&path) {
                assert_eq!(parse_v2_path(parsed.to_path().as_bytes()), Ok(parsed));
            }
        }
    }
}
