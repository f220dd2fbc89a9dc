//! JWS compact serialization: `BASE64URL(header) . BASE64URL(payload) . BASE64URL(signature)`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Why a bearer token could not be read. Every description is short, free of token content and
/// of `"` and `\`, so it can go into `error_description` as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    Empty,
    TooLarge,
    BadCharacters,
    SegmentCount,
    Padding,
    HeaderEncoding,
    PayloadEncoding,
    SignatureEncoding,
    HeaderNotJson,
    MissingAlg,
    Critical,
    PayloadNotJson,
    PayloadNotObject,
    DuplicateClaim,
    EmptySignature,
}

impl TokenError {
    /// The RFC 6750 `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            TokenError::Empty => "empty bearer token",
            TokenError::TooLarge => "token too large",
            TokenError::BadCharacters => "token contains invalid characters",
            TokenError::SegmentCount => "token must have three dot-separated parts",
            TokenError::Padding => "token parts must not have base64 padding",
            TokenError::HeaderEncoding => "token header is not valid base64url",
            TokenError::PayloadEncoding => "token payload is not valid base64url",
            TokenError::SignatureEncoding => "token signature is not valid base64url",
            TokenError::HeaderNotJson => "token header is not a valid JSON object",
            TokenError::MissingAlg => "token header has no alg",
            TokenError::Critical => "token header has unsupported critical parameters",
            TokenError::PayloadNotJson => "token payload is not valid JSON",
            TokenError::PayloadNotObject => "token payload is not a JSON object",
            TokenError::DuplicateClaim => "token payload has a duplicate member name",
            TokenError::EmptySignature => "token has no signature",
        }
    }
}

/// The JOSE header members that matter here; others are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub alg: String,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

/// A token split and decoded, signature not yet checked, payload not yet parsed (it is parsed
/// with [`parse_claims`] only after the signature verified: a forged token costs no JSON work).
#[derive(Debug)]
pub struct Parts<'a> {
    pub header: Header,
    /// The decoded payload (JSON text, unverified).
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
    /// `header.payload`, a slice of the original token: the JWS signing input.
    pub signing_input: &'a [u8],
}

/// Splits and decodes a compact JWS.
pub fn split(token: &str) -> Result<Parts<'_>, TokenError> {
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (segments.next(), segments.next(), segments.next(), segments.next())
    else {
        return Err(TokenError::SegmentCount);
    };
    let signing_input = token.get(..header.len().saturating_add(1).saturating_add(payload.len())).unwrap_or("");
    let header = decode(header, TokenError::HeaderEncoding)?;
    let payload = decode(payload, TokenError::PayloadEncoding)?;
    let signature = decode(signature, TokenError::SignatureEncoding)?;
    if signature.is_empty() {
        return Err(TokenError::EmptySignature);
    }
    Ok(Parts { header: parse_header(&header)?, payload, signature, signing_input: signing_input.as_bytes() })
}

fn decode(segment: &str, error: TokenError) -> Result<Vec<u8>, TokenError> {
    if segment.contains('=') {
        return Err(TokenError::Padding);
    }
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| error)
}

fn parse_header(json: &[u8]) -> Result<Header, TokenError> {
    // serde would also read a struct from a JSON array: insist on an object.
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(TokenError::HeaderNotJson);
    }
    let raw: RawHeader = serde_json::from_slice(json).map_err(|_| TokenError::HeaderNotJson)?;
    if raw.crit.is_some() {
        // RFC 7515 4.1.11: extensions we do not understand must make the token invalid.
        return Err(TokenError::Critical);
    }
    let alg = raw.alg.ok_or(TokenError::MissingAlg)?;
    Ok(Header { alg, kid: raw.kid, typ: raw.typ })
}

/// Parses the (verified) payload: it must be a JSON object, and no object in it may name a
/// member twice. RFC 7519 allows the last value to win, but an upstream that reads the token
/// again with a first-wins parser would then see other claims than the ones checked here.
pub fn parse_claims(payload: &[u8]) -> Result<Map<String, Value>, TokenError> {
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let value = match Unique.deserialize(&mut deserializer).and_then(|v| deserializer.end().map(|()| v)) {
        Ok(value) => value,
        Err(e) if e.to_string().starts_with(DUPLICATE) => return Err(TokenError::DuplicateClaim),
        Err(_) => return Err(TokenError::PayloadNotJson),
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(TokenError::PayloadNotObject),
    }
}

const DUPLICATE: &str = "duplicate member";

/// A JSON value whose objects never repeat a member name.
struct Unique;

impl<'de> DeserializeSeed<'de> for Unique {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Unique)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(DUPLICATE));
            }
            let value = map.next_value_seed(Unique)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn tok(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[test]
    fn splits_a_token() {
        let token = tok(r#"{"alg":"RS256","kid":"k1","typ":"JWT","x":[1]}"#, r#"{"sub":"a"}"#);
        let parts = split(&token).unwrap();
        assert_eq!(parts.header, Header { alg: "RS256".into(), kid: Some("k1".into()), typ: Some("JWT".into()) });
        assert_eq!(parts.payload, br#"{"sub":"a"}"#);
        assert_eq!(parts.signature, b"sig");
        let dot = token.rfind('.').unwrap();
        assert_eq!(parts.signing_input, &token.as_bytes()[..dot]);
        assert_eq!(parse_claims(&parts.payload).unwrap().get("sub").and_then(Value::as_str), Some("a"));
    }

    #[test]
    fn duplicate_member_names_are_refused_at_any_depth() {
        assert_eq!(parse_claims(br#"{"sub":"a","sub":"admin"}"#), Err(TokenError::DuplicateClaim));
        assert_eq!(parse_claims(br#"{"a":{"b":1,"b":2}}"#), Err(TokenError::DuplicateClaim));
        assert_eq!(parse_claims(br#"{"a":[{"b":1,"b":2}]}"#), Err(TokenError::DuplicateClaim));
        let claims = parse_claims(br#"{"a":{"b":1},"c":[{"b":2}],"n":-1.5,"big":18446744073709551615}"#).unwrap();
        assert_eq!(claims["a"]["b"], 1);
        assert_eq!(parse_claims(br#"{"a":1} x"#), Err(TokenError::PayloadNotJson));
        assert_eq!(parse_claims(b"[1]"), Err(TokenError::PayloadNotObject));
    }

    #[test]
    fn distinct_errors() {
        let h = b64(r#"{"alg":"RS256"}"#);
        let p = b64("{}");
        let cases: Vec<(String, TokenError)> = vec![
            ("a.b".into(), TokenError::SegmentCount),
            ("a.b.c.d".into(), TokenError::SegmentCount),
            ("a.b.c.d.e".into(), TokenError::SegmentCount),
            (format!("{h}=.{p}.c2ln"), TokenError::Padding),
            (format!("{h}.{p}.c2lnMQ=="), TokenError::Padding),
            (format!("{h}!.{p}.c2ln"), TokenError::HeaderEncoding),
            (format!("{h}.{p}+.c2ln"), TokenError::PayloadEncoding),
            (format!("{h}.{p}.c2l/"), TokenError::SignatureEncoding),
            (format!("{h}.{p}.c2lnM"), TokenError::SignatureEncoding),
            (format!("{h}.{p}."), TokenError::EmptySignature),
            (format!(".{p}.c2ln"), TokenError::HeaderNotJson),
            (format!("{}.{p}.c2ln", b64("not json")), TokenError::HeaderNotJson),
            (format!("{}.{p}.c2ln", b64(r#"["RS256",null,null,null]"#)), TokenError::HeaderNotJson),
            (format!("{}.{p}.c2ln", b64(r#"{"alg":"RS256","kid":5}"#)), TokenError::HeaderNotJson),
            (format!("{}.{p}.c2ln", b64(r#"{"alg":"RS256","alg":"HS256"}"#)), TokenError::HeaderNotJson),
            (format!("{}.{p}.c2ln", b64(r#"{"kid":"a"}"#)), TokenError::MissingAlg),
            (format!("{}.{p}.c2ln", b64(r#"{"alg":"RS256","crit":["b64"]}"#)), TokenError::Critical),
        ];
        for (token, want) in cases {
            assert_eq!(split(&token).map(|_| ()), Err(want), "{token}");
        }
        assert_eq!(parse_claims(b"[1]"), Err(TokenError::PayloadNotObject));
        assert_eq!(parse_claims(b"\"x\""), Err(TokenError::PayloadNotObject));
        assert_eq!(parse_claims(b"{"), Err(TokenError::PayloadNotJson));
        assert_eq!(parse_claims(b"{\"exp\":1e999}"), Err(TokenError::PayloadNotJson));
    }

    #[test]
    fn descriptions_are_safe_for_a_quoted_string() {
        for e in [
            TokenError::Empty,
            TokenError::TooLarge,
            TokenError::BadCharacters,
            TokenError::SegmentCount,
            TokenError::Padding,
            TokenError::HeaderEncoding,
            TokenError::PayloadEncoding,
            TokenError::SignatureEncoding,
            TokenError::HeaderNotJson,
            TokenError::MissingAlg,
            TokenError::Critical,
            TokenError::PayloadNotJson,
            TokenError::PayloadNotObject,
            TokenError::EmptySignature,
        ] {
            assert!(e.description().bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'));
        }
    }
}
