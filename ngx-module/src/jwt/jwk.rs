//! JWK Sets (RFC 7517) to [`Key`]s: kty RSA (n, e), EC (P-256/P-384: x, y), OKP (Ed25519: x),
//! oct (k).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::der;
use super::key::{Key, HMAC_ALGS, RSA_ALGS};
use super::policy::Alg;

/// At most this many keys of one document are read.
pub const MAX_KEYS: usize = 256;

/// `{"keys": [...]}`, or a single JWK object. Keys that cannot be used are skipped with a
/// reason; the document fails only when it is not a JSON object of that shape.
pub(crate) fn parse_jwks(document: &[u8]) -> Result<(Vec<Key>, Vec<String>), String> {
    let value: Value = serde_json::from_slice(document).map_err(|e| format!("JWKS is not valid JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err("JWKS is not a JSON object".to_owned());
    };
    let single;
    let jwks: &[Value] = match object.get("keys") {
        Some(Value::Array(keys)) => keys,
        Some(_) => return Err("JWKS \"keys\" is not an array".to_owned()),
        None if object.contains_key("kty") => {
            single = [Value::Object(object)];
            &single
        }
        None => return Err("JWKS has no \"keys\" array".to_owned()),
    };
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (index, jwk) in jwks.iter().enumerate() {
        if index >= MAX_KEYS {
            skipped.push(format!("keys after the first {MAX_KEYS} ignored"));
            break;
        }
        let kid = jwk.get("kid").and_then(Value::as_str);
        match jwk.as_object().ok_or_else(|| "not a JSON object".to_owned()).and_then(parse_jwk) {
            Ok(key) => keys.push(key),
            Err(why) => skipped.push(format!("key #{index} (kid {kid:?}): {why}")),
        }
    }
    Ok((keys, skipped))
}

fn parse_jwk(jwk: &Map<String, Value>) -> Result<Key, String> {
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("kid is not a string".to_owned()),
    };
    match jwk.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Err("use is not \"sig\"".to_owned()),
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops.as_array().is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return Err("key_ops does not include \"verify\"".to_owned());
        }
    }
    let declared = match jwk.get("alg") {
        None => None,
        Some(Value::String(alg)) => Some(Alg::from_jose(alg).ok_or_else(|| format!("unsupported alg {alg:?}"))?),
        Some(_) => return Err("alg is not a string".to_owned()),
    };
    let kty = string(jwk, "kty")?;
    let crv = jwk.get("crv").and_then(Value::as_str);
    let algs: &[Alg] = match (kty, crv) {
        ("RSA", _) => &RSA_ALGS,
        ("EC", Some("P-256")) => &[Alg::ES256],
        ("EC", Some("P-384")) => &[Alg::ES384],
        ("OKP", Some("Ed25519")) => &[Alg::EdDSA],
        ("oct", _) => &HMAC_ALGS,
        ("EC" | "OKP", crv) => return Err(format!("unsupported curve {crv:?}")),
        (kty, _) => return Err(format!("unsupported kty {kty:?}")),
    };
    // A declared alg narrows the key to that one algorithm; it must fit the key type.
    let algs: Vec<Alg> = match declared {
        Some(alg) if algs.contains(&alg) => vec![alg],
        Some(alg) => return Err(format!("alg {} does not fit a {kty} key", alg.name())),
        None => algs.to_vec(),
    };
    match kty {
        "RSA" => {
            let der = der::rsa_public_key(&bytes(jwk, "n")?, &bytes(jwk, "e")?).ok_or("zero n or e")?;
            Key::rsa(kid, &der, &algs)
        }
        "EC" => {
            let len = if crv == Some("P-256") { 32 } else { 48 };
            let mut point = Vec::with_capacity(len * 2 + 1);
            point.push(0x04);
            coordinate(&mut point, &bytes(jwk, "x")?, len, "x")?;
            coordinate(&mut point, &bytes(jwk, "y")?, len, "y")?;
            Key::public(kid, &point, &algs)
        }
        "OKP" => {
            let x = bytes(jwk, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 x is not 32 bytes".to_owned());
            }
            Key::public(kid, &x, &algs)
        }
        _ => {
            let k = bytes(jwk, "k")?;
            Key::hmac(kid, &k, &algs)
        }
    }
}

/// A coordinate left-padded to the curve size (some encoders drop leading zeros).
fn coordinate(out: &mut Vec<u8>, value: &[u8], len: usize, name: &str) -> Result<(), String> {
    if value.len() > len || value.is_empty() {
        return Err(format!("EC {name} has the wrong length"));
    }
    out.resize(out.len().saturating_add(len - value.len()), 0);
    out.extend_from_slice(value);
    Ok(())
}

fn string<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    jwk.get(name).and_then(Value::as_str).ok_or_else(|| format!("no {name}"))
}

fn bytes(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = string(jwk, name)?;
    // Tolerate padding here: key documents come from the IdP, not the client.
    let decoded = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| format!("{name} is not base64url"))?;
    if decoded.is_empty() {
        return Err(format!("{name} is empty"));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::keys::KeySet;
    use super::*;
    use tfgate_jwt_testkit::*;

    fn one(jwk: Value) -> Result<Key, String> {
        parse_jwk(jwk.as_object().unwrap())
    }

    #[test]
    fn reads_every_key_type() {
        let rsa = rsa_key();
        let (set, skipped) = KeySet::parse(
            jwks(&[rsa.jwk("r"), ec256().jwk("e2"), ec384().jwk("e3"), ed().jwk("d"), hs_jwk("h", 64)]).as_bytes(),
        )
        .unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let algs =
            |kid: &str| set.keys().iter().find(|k| k.kid() == Some(kid)).unwrap().algorithms().collect::<Vec<_>>();
        assert_eq!(algs("r"), RSA_ALGS.to_vec());
        assert_eq!(algs("e2"), vec![Alg::ES256]);
        assert_eq!(algs("e3"), vec![Alg::ES384]);
        assert_eq!(algs("d"), vec![Alg::EdDSA]);
        assert_eq!(algs("h"), HMAC_ALGS.to_vec());
        // A bare JWK is a one-key set; `alg` narrows.
        let mut jwk = rsa.jwk("r");
        jwk["alg"] = json!("PS384");
        let (set, _) = KeySet::parse(jwk.to_string().as_bytes()).unwrap();
        assert_eq!(set.keys()[0].algorithms().collect::<Vec<_>>(), vec![Alg::PS384]);
        assert!(format!("{:?}", set.keys()[0]).contains("PS384"));
    }

    #[test]
    fn skips_unusable_keys_with_reasons() {
        let rsa = rsa_key();
        let with = |k: &str, v: Value| {
            let mut jwk = rsa.jwk("r");
            jwk[k] = v;
            one(jwk).map(|_| ()).unwrap_err()
        };
        assert!(with("use", json!("enc")).contains("use"));
        assert!(with("key_ops", json!(["encrypt"])).contains("key_ops"));
        assert!(with("alg", json!("ES256")).contains("does not fit"));
        assert!(with("alg", json!("RSA-OAEP")).contains("unsupported alg"));
        assert!(with("alg", json!("none")).contains("unsupported alg"));
        assert!(with("kid", json!(7)).contains("kid"));
        assert!(with("n", json!("AQAB")).contains("bits"));
        assert!(with("n", json!("!!")).contains("base64url"));
        assert!(with("e", json!("AA")).contains("zero"));
        assert!(one(json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"})).unwrap_err().contains("curve"));
        assert!(one(json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"})).unwrap_err().contains("32"));
        let mut bad_point = ec256().jwk("e");
        bad_point["y"] = bad_point["x"].clone();
        assert!(one(bad_point).unwrap_err().contains("rejected"));
        assert!(one(json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": URL_SAFE_NO_PAD.encode([1u8; 40])}))
            .unwrap_err()
            .contains("length"));
        assert!(one(json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode([1u8; 31])})).unwrap_err().contains("short"));
        assert!(one(json!({"kty": "oct", "k": ""})).unwrap_err().contains("empty"));
        assert!(one(json!({"kty": "ML-DSA"})).unwrap_err().contains("kty"));
        // 48 bytes: HS256 and HS384 only.
        let key = one(json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode([1u8; 48])})).unwrap();
        assert_eq!(key.algorithms().collect::<Vec<_>>(), vec![Alg::HS256, Alg::HS384]);
        let doc = json!({"keys": [rsa.jwk("ok"), {"kty": "RSA"}, 5]}).to_string();
        let (set, skipped) = KeySet::parse(doc.as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(skipped.len(), 2);
        assert!(skipped[0].starts_with("key #1") && skipped[1].contains("not a JSON object"), "{skipped:?}");
    }

    #[test]
    fn document_errors() {
        assert!(KeySet::parse(b"{").unwrap_err().contains("JSON"));
        assert!(KeySet::parse(b"{\"keys\": 1}").unwrap_err().contains("array"));
        assert!(KeySet::parse(b"{\"x\": 1}").unwrap_err().contains("keys"));
        assert!(KeySet::parse(b"{\"keys\": [5]}").unwrap_err().contains("no usable key"));
        // An explicitly empty set is a set: how an operator revokes every key of a file.
        assert_eq!(KeySet::parse(b"{\"keys\": []}").unwrap().0.keys().len(), 0);
        assert!(KeySet::parse(b"{\"keys\": [{\"kty\":\"RSA\",\"kid\":\"a\"}]}").unwrap_err().contains("no n"));
        assert!(KeySet::parse(&vec![b' '; (1 << 20) + 1]).unwrap_err().contains("larger"));
    }
}
