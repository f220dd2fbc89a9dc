//! The TF Serving REST path grammar:
//! `/v1/models/NAME[/versions/N | /labels/LABEL][:predict|:classify|:regress | /metadata]`.
//!
//! Matching is case-insensitive like TF Serving's; names and labels are URL-decoded. Everything
//! that could make the daemon (or TF Serving behind it) read a path differently from the module
//! is refused here: encoded slashes, dot segments, empty segments, control bytes, overlong names,
//! and a '#' or '?' (raw or encoded) anywhere a name could carry it.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Longest model name or label accepted, in bytes after decoding.
pub const MAX_NAME_LEN: usize = 256;
/// Longest raw path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 2048;

const PREFIX: &[u8] = b"/v1/models";

/// What a REST path asks TF Serving to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Predict,
    Classify,
    Regress,
    /// gRPC only (`PredictionService/MultiInference`): no REST path names it.
    MultiInference,
    Status,
    Metadata,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Predict => "predict",
            Method::Classify => "classify",
            Method::Regress => "regress",
            Method::MultiInference => "multi_inference",
            Method::Status => "status",
            Method::Metadata => "metadata",
        }
    }

    /// The HTTP method TF Serving serves this under.
    pub fn http_method(self) -> &'static str {
        match self {
            Method::Predict | Method::Classify | Method::Regress | Method::MultiInference => "POST",
            Method::Status | Method::Metadata => "GET",
        }
    }

    fn from_suffix(suffix: &str) -> Option<Method> {
        [Method::Predict, Method::Classify, Method::Regress]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(suffix))
    }
}

/// Which version of the model a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSelector {
    /// Neither a version nor a label: the server's default.
    Unspecified,
    Number(i64),
    Label(String),
}

/// A parsed TF Serving REST path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPath {
    pub model: String,
    pub selector: VersionSelector,
    pub method: Method,
}

/// Why a path was refused, with the HTTP status to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    pub status: u16,
    pub message: String,
}

impl PathError {
    fn bad_request(message: impl Into<String>) -> Self {
        PathError { status: 400, message: message.into() }
    }

    fn not_found(message: impl Into<String>) -> Self {
        PathError { status: 404, message: message.into() }
    }
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PathError {}

/// Characters left as they are when a name is written back into a path (RFC 3986 unreserved).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

impl ModelPath {
    /// The canonical path for this request, with names percent-encoded, so that whoever reads
    /// it next sees exactly what this parser saw.
    pub fn to_path(&self) -> String {
        let mut path = String::from("/v1/models/");
        path.extend(utf8_percent_encode(&self.model, PATH_SEGMENT));
        match &self.selector {
            VersionSelector::Unspecified => {}
            VersionSelector::Number(n) => path.push_str(&format!("/versions/{n}")),
            VersionSelector::Label(label) => {
                path.push_str("/labels/");
                path.extend(utf8_percent_encode(label, PATH_SEGMENT));
            }
        }
        match self.method {
            Method::Status => {}
            Method::Metadata => path.push_str("/metadata"),
            m => {
                path.push(':');
                path.push_str(m.as_str());
            }
        }
        path
    }
}

/// Parses a raw request path (without the query string).
pub fn parse_rest_path(raw: &[u8]) -> Result<ModelPath, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::bad_request("path too long"));
    }
    if raw.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(PathError::bad_request("control character in path"));
    }
    // nginx keeps a '#' in the path it forwards while HTTP libraries (the daemon's) cut the
    // path there, as a fragment: two readers, two models.
    if raw.contains(&b'#') {
        return Err(PathError::bad_request("'#' in path (a URI fragment is never sent to a server)"));
    }
    if raw.len() < PREFIX.len() || !raw[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        return Err(PathError::not_found("not a TF Serving REST path"));
    }
    let rest = &raw[PREFIX.len()..];
    if rest.is_empty() || rest == b"/" {
        return Err(PathError::bad_request("Missing model name"));
    }
    let Some(rest) = rest.strip_prefix(b"/") else {
        return Err(PathError::not_found("not a TF Serving REST path"));
    };
    let rest = std::str::from_utf8(rest).map_err(|_| PathError::bad_request("path is not UTF-8"))?;

    let (segments_part, suffix_method) = split_method_suffix(rest)?;
    let mut segments: Vec<&str> = segments_part.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(PathError::bad_request("empty path segment (duplicate or trailing slash)"));
    }

    let method = match suffix_method {
        Some(m) => m,
        None if segments.len().is_multiple_of(2)
            && segments.last().is_some_and(|s| s.eq_ignore_ascii_case("metadata")) =>
        {
            segments.pop();
            Method::Metadata
        }
        None => Method::Status,
    };

    let model = decode_name(segments[0], "model name")?;
    let selector = match segments[1..] {
        [] => VersionSelector::Unspecified,
        [kind, value] if kind.eq_ignore_ascii_case("versions") => VersionSelector::Number(parse_version(value)?),
        [kind, value] if kind.eq_ignore_ascii_case("labels") => VersionSelector::Label(decode_name(value, "label")?),
        [a, _, b, _]
            if (a.eq_ignore_ascii_case("versions") && b.eq_ignore_ascii_case("labels"))
                || (a.eq_ignore_ascii_case("labels") && b.eq_ignore_ascii_case("versions")) =>
        {
            return Err(PathError::bad_request("a version and a label cannot both be given"));
        }
        _ => return Err(PathError::not_found("unknown TF Serving REST path")),
    };
    Ok(ModelPath { model, selector, method })
}

/// Splits `name...:predict` into the segments and the method named after the colon.
fn split_method_suffix(rest: &str) -> Result<(&str, Option<Method>), PathError> {
    let last_segment_start = rest.rfind('/').map_or(0, |i| i + 1);
    if rest[..last_segment_start].contains(':') {
        return Err(PathError::bad_request("':' is only allowed before the method"));
    }
    let Some((segments, suffix)) = rest.rsplit_once(':') else {
        return Ok((rest, None));
    };
    if segments[last_segment_start..].contains(':') {
        return Err(PathError::bad_request("':' is only allowed before the method"));
    }
    match Method::from_suffix(suffix) {
        Some(method) => Ok((segments, Some(method))),
        None => Err(PathError::not_found(format!("unknown method ':{}'", shown(suffix)))),
    }
}

fn parse_version(raw: &str) -> Result<i64, PathError> {
    crate::version::parse_version(raw.as_bytes())
        .ok_or_else(|| PathError::bad_request(format!("version must be a number, got '{}'", shown(raw))))
}

/// Decodes a name or label strictly: malformed escapes and decoded separators are refused.
fn decode_name(raw: &str, what: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                return Err(PathError::bad_request(format!("malformed percent-encoding in {what}")));
            };
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let name = String::from_utf8(decoded).map_err(|_| PathError::bad_request(format!("{what} is not UTF-8")))?;
    check_name(&name, what)?;
    Ok(name)
}

/// The rule for model names and labels, however they arrive (a REST path, a gRPC ModelSpec):
/// they become path segments and header values upstream.
pub fn check_name(name: &str, what: &str) -> Result<(), PathError> {
    if name.len() > MAX_NAME_LEN {
        return Err(PathError::bad_request(format!("{what} longer than {MAX_NAME_LEN} bytes")));
    }
    if name == "." || name == ".." {
        return Err(PathError::bad_request(format!("{what} cannot be a dot segment")));
    }
    if name.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
        return Err(PathError::bad_request(format!("{what} contains a slash or a control character")));
    }
    // Whoever writes the name into a URI unencoded would end the path there.
    if name.contains(['#', '?']) {
        return Err(PathError::bad_request(format!("{what} contains '#' or '?' (a URI fragment or query)")));
    }
    Ok(())
}

/// At most a short, char-safe prefix of client input, for error messages and logs: a request
/// value is never echoed whole.
pub fn shown(s: &str) -> &str {
    crate::echo::clip(s, 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str) -> ModelPath {
        parse_rest_path(path.as_bytes()).unwrap_or_else(|e| panic!("{path}: {e:?}"))
    }

    fn err(path: &str) -> PathError {
        parse_rest_path(path.as_bytes()).expect_err(path)
    }

    #[test]
    fn every_form_and_method() {
        let p = ok("/v1/models/half_plus_two:predict");
        assert_eq!(
            (p.model.as_str(), p.selector, p.method),
            ("half_plus_two", VersionSelector::Unspecified, Method::Predict)
        );
        assert_eq!(ok("/v1/models/m/versions/2:classify").selector, VersionSelector::Number(2));
        assert_eq!(ok("/v1/models/m/versions/2:classify").method, Method::Classify);
        assert_eq!(ok("/v1/models/m/labels/stable:regress").selector, VersionSelector::Label("stable".into()));
        assert_eq!(ok("/v1/models/m").method, Method::Status);
        assert_eq!(ok("/v1/models/m/versions/7").method, Method::Status);
        assert_eq!(ok("/v1/models/m/metadata").method, Method::Metadata);
        assert_eq!(ok("/v1/models/m/labels/canary/metadata").method, Method::Metadata);
        assert_eq!(ok("/v1/models/metadata").model, "metadata");
    }

    #[test]
    fn case_insensitive_like_tf_serving_but_names_keep_case() {
        let p = ok("/V1/MODELS/MyModel/VERSIONS/3:PREDICT");
        assert_eq!((p.model.as_str(), p.selector, p.method), ("MyModel", VersionSelector::Number(3), Method::Predict));
        assert_eq!(ok("/v1/models/m/Labels/Blue/METADATA").selector, VersionSelector::Label("Blue".into()));
    }

    #[test]
    fn names_and_labels_are_url_decoded() {
        assert_eq!(ok("/v1/models/my%20model:predict").model, "my model");
        assert_eq!(ok("/v1/models/m/labels/caf%C3%A9").selector, VersionSelector::Label("café".into()));
    }

    #[test]
    fn canonical_path_round_trips() {
        for path in [
            "/v1/models/m:predict",
            "/v1/models/a%20b/versions/3:regress",
            "/v1/models/m/labels/x%3Ay/metadata",
            "/v1/models/m",
        ] {
            let parsed = ok(path);
            assert_eq!(parsed.to_path(), path);
            assert_eq!(ok(&parsed.to_path()), parsed);
        }
    }

    #[test]
    fn missing_name_is_400() {
        assert_eq!(err("/v1/models").status, 400);
        assert_eq!(err("/v1/models/").message, "Missing model name");
    }

    #[test]
    fn version_and_label_together_is_400() {
        assert_eq!(err("/v1/models/m/versions/1/labels/x:predict").status, 400);
        assert_eq!(err("/v1/models/m/labels/x/versions/1").status, 400);
    }

    #[test]
    fn version_must_be_a_number() {
        for v in ["x", "-1", "1.5", "99999999999999999999", "+3"] {
            let e = err(&format!("/v1/models/m/versions/{v}:predict"));
            assert_eq!(e.status, 400, "{v}");
            assert!(e.message.contains("version must be a number"), "{v}");
        }
    }

    #[test]
    fn hostile_forms_are_refused() {
        let cases = [
            "/v1/models/a%2Fb:predict",
            "/v1/models/a%2fb:predict",
            "/v1/models/a%5Cb:predict",
            "/v1/models/..:predict",
            "/v1/models/%2E%2E:predict",
            "/v1/models/.",
            "/v1/models//m:predict",
            "/v1/models/m//versions/1:predict",
            "/v1/models/m/",
            "/v1/models/m%00:predict",
            "/v1/models/m%0a:predict",
            "/v1/models/m\0:predict",
            "/v1/models/m\t:predict",
            "/v1/models/m%:predict",
            "/v1/models/m%zz:predict",
            "/v1/models/m%C3:predict",
            "/v1/models/a:b:predict",
            "/v1/models/a:x/versions/1:predict",
        ];
        for path in cases {
            assert_eq!(err(path).status, 400, "{path:?}");
        }
        // A '#' starts a fragment for HTTP libraries, never for nginx; encoded, it would still
        // end a path wherever a name is written back unencoded; so would a '?'.
        for path in [
            "/v1/models/m#x",
            "/v1/models/m#x:predict",
            "/v1/models/m:predict#x",
            "/v1/models/m/labels/a#b",
            "/v1/models/m%23x:predict",
            "/v1/models/m/labels/a%23b:predict",
            "/v1/models/m%3Fx:predict",
            "/v1/models/m/labels/a%3fb/metadata",
        ] {
            let e = err(path);
            assert_eq!(e.status, 400, "{path:?}");
            assert!(e.message.contains('#'), "{path:?}: {}", e.message);
        }
        assert_eq!(check_name("a#b", "model name").unwrap_err().status, 400, "gRPC names too");
        assert_eq!(check_name("a?b", "version label").unwrap_err().status, 400);
        let long = format!("/v1/models/{}:predict", "a".repeat(MAX_NAME_LEN + 1));
        assert_eq!(err(&long).status, 400);
        let longer = format!("/v1/models/{}:predict", "a".repeat(MAX_PATH_LEN));
        assert_eq!(err(&longer).message, "path too long");
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "/v2/models/m:predict",
            "/v1/modelsx/m",
            "/v1/models/m:explain",
            "/v1/models/m/foo/bar/baz",
            "/v1/models/m/versions",
            "/index.html",
        ] {
            assert_eq!(err(path).status, 404, "{path}");
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let alphabet: &[u8] = b"/v1modelsVERSIONlabe:%2F.0\0\xff\xc3#?3";
        let mut seed = 0x2545F4914F6CDD1Du64;
        for _ in 0..20_000 {
            let len = (seed % 40) as usize;
            let mut path = b"/v1/models/".to_vec();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                path.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            if let Ok(parsed) = parse_rest_path(&path) {
                assert_eq!(parse_rest_path(parsed.to_path().as_bytes()), Ok(parsed));
            }
        }
    }
}
