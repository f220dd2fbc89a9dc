//! End-to-end verification tests with real keys and signed tokens.

use aws_lc_rs::signature::KeyPair;
use serde_json::{json, Value};

use super::*;
use tfgate_jwt_testkit::*;

const NOW: i64 = 1_700_000_000;

struct Fixture {
    ec256: Ec,
    ec384: Ec,
    ed: Ed,
    keys: KeySet,
}

fn fixture() -> Fixture {
    let (ec256, ec384, ed) = (ec256(), ec384(), ed());
    let doc = jwks(&[rsa_key().jwk("rsa"), ec256.jwk("ec256"), ec384.jwk("ec384"), ed.jwk("ed"), hs_jwk("hs", 64)]);
    let keys = KeySet::parse(doc.as_bytes()).unwrap().0;
    Fixture { ec256, ec384, ed, keys }
}

impl Fixture {
    fn signer(&self, alg: Alg) -> (Signer<'_>, &'static str) {
        match alg {
            Alg::ES256 => (Signer::Ec(&self.ec256), "ec256"),
            Alg::ES384 => (Signer::Ec(&self.ec384), "ec384"),
            Alg::EdDSA => (Signer::Ed(&self.ed), "ed"),
            a if a.is_hmac() => (Signer::Hmac(Box::leak(hs_secret(64).into_boxed_slice())), "hs"),
            _ => (Signer::Rsa(rsa_key()), "rsa"),
        }
    }

    /// A token signed by the fixture's key for `alg`, with these claims added to good defaults.
    fn token(&self, alg: Alg, extra: Value) -> String {
        let (signer, kid) = self.signer(alg);
        let mut claims = json!({"sub": "alice", "iss": "https://idp", "aud": "api", "exp": NOW + 600, "iat": NOW});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let header = json!({"alg": alg.name(), "kid": kid, "typ": "JWT"});
        sign_token(&header.to_string(), &claims.to_string(), alg, &signer)
    }
}

fn all_algs() -> Policy {
    Policy { algorithms: Alg::ALL.to_vec(), ..Policy::default() }
}

fn err(r: Result<Verified, JwtError>) -> JwtError {
    r.map(|v| v.sub).unwrap_err()
}

#[test]
fn every_algorithm_verifies_with_its_key() {
    let f = fixture();
    for alg in Alg::ALL {
        let token = f.token(alg, json!({}));
        let v = verify(&token, &f.keys, &all_algs(), NOW).unwrap_or_else(|e| panic!("{alg:?}: {e:?}"));
        assert_eq!(v.sub.as_deref(), Some("alice"));
        assert_eq!(v.exp, NOW + 600);
        // And with the default policy, HS* is not allowed.
        let default = verify(&token, &f.keys, &Policy::default(), NOW);
        assert_eq!(default.is_ok(), !alg.is_hmac(), "{alg:?}");
    }
    let hs = f.token(Alg::HS256, json!({}));
    assert_eq!(err(verify(&hs, &f.keys, &Policy::default(), NOW)), JwtError::Invalid("token algorithm not allowed"));
}

#[test]
fn no_algorithm_confusion() {
    let f = fixture();
    let claims = json!({"sub": "x", "exp": NOW + 60}).to_string();
    // HS256 with the RSA public key's bytes as the HMAC secret, naming the RSA key.
    let rsa_pub = rsa_key().pair.public_key().as_ref().to_vec();
    let forged = sign_token(r#"{"alg":"HS256","kid":"rsa"}"#, &claims, Alg::HS256, &Signer::Hmac(&rsa_pub));
    assert_eq!(err(verify(&forged, &f.keys, &all_algs(), NOW)), JwtError::Invalid("no key for the token algorithm"));
    // The same with a PEM key set (kid-less RSA key, no kid in the token).
    let pem_keys = KeySet::parse(pem("RSA PUBLIC KEY", &rsa_pub).as_bytes()).unwrap().0;
    let forged = sign_token(r#"{"alg":"HS256"}"#, &claims, Alg::HS256, &Signer::Hmac(&rsa_pub));
    assert_eq!(err(verify(&forged, &pem_keys, &all_algs(), NOW)), JwtError::Invalid("no key for the token algorithm"));
    // An RS256 token presented to the EC key; an ES256 token to the P-384 key.
    let rs = sign_token(r#"{"alg":"RS256","kid":"ec256"}"#, &claims, Alg::RS256, &Signer::Rsa(rsa_key()));
    assert_eq!(err(verify(&rs, &f.keys, &all_algs(), NOW)), JwtError::Invalid("no key for the token algorithm"));
    let es = sign_token(r#"{"alg":"ES256","kid":"ec384"}"#, &claims, Alg::ES256, &Signer::Ec(&f.ec256));
    assert_eq!(err(verify(&es, &f.keys, &all_algs(), NOW)), JwtError::Invalid("no key for the token algorithm"));
    // alg none, any case, with or without a signature.
    for none in ["none", "None", "NONE", "nOnE"] {
        let header = format!(r#"{{"alg":"{none}"}}"#);
        let unsigned = format!("{}.{}.", b64(&header), b64(&claims));
        assert!(matches!(err(verify(&unsigned, &f.keys, &all_algs(), NOW)), JwtError::Invalid(_)));
        let with_sig = format!("{}.{}.{}", b64(&header), b64(&claims), b64("x"));
        assert_eq!(
            err(verify(&with_sig, &f.keys, &all_algs(), NOW)),
            JwtError::Invalid("unsigned tokens are not accepted")
        );
    }
    let odd = format!("{}.{}.{}", b64(r#"{"alg":"RS257"}"#), b64(&claims), b64("x"));
    assert_eq!(err(verify(&odd, &f.keys, &all_algs(), NOW)), JwtError::Invalid("unsupported token algorithm"));
}

#[test]
fn tampering_and_unknown_keys() {
    let f = fixture();
    for alg in [Alg::RS256, Alg::PS256, Alg::ES256, Alg::EdDSA, Alg::HS256] {
        let token = f.token(alg, json!({}));
        let parts: Vec<&str> = token.split('.').collect();
        let other_payload = b64(json!({"sub": "mallory", "exp": NOW + 600}).to_string());
        let tampered = format!("{}.{}.{}", parts[0], other_payload, parts[2]);
        assert_eq!(err(verify(&tampered, &f.keys, &all_algs(), NOW)), JwtError::Invalid("invalid token signature"));
        let mut sig = unb64(parts[2]);
        sig[5] ^= 1;
        let tampered = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
        assert_eq!(err(verify(&tampered, &f.keys, &all_algs(), NOW)), JwtError::Invalid("invalid token signature"));
        let truncated = format!("{}.{}.{}", parts[0], parts[1], b64(&sig[..sig.len() - 1]));
        assert_eq!(err(verify(&truncated, &f.keys, &all_algs(), NOW)), JwtError::Invalid("invalid token signature"));
    }
    // Signed by another RSA key under a known kid.
    let other = new_rsa_key();
    let token = sign_token(
        r#"{"alg":"RS256","kid":"rsa"}"#,
        r#"{"sub":"a","exp":2000000000}"#,
        Alg::RS256,
        &Signer::Rsa(&other),
    );
    assert_eq!(err(verify(&token, &f.keys, &all_algs(), NOW)), JwtError::Invalid("invalid token signature"));
    let token = sign_token(
        r#"{"alg":"RS256","kid":"new"}"#,
        r#"{"sub":"a","exp":2000000000}"#,
        Alg::RS256,
        &Signer::Rsa(&other),
    );
    let e = err(verify(&token, &f.keys, &all_algs(), NOW));
    assert_eq!(e, JwtError::UnknownKey { kid: "new".into() });
    assert_eq!((e.status(), e.result()), (401, "unknown_key"));
    // After a refetch brings the new key (merged with the old set), both kids verify.
    let new_keys = KeySet::parse(jwks(&[other.jwk("new")]).as_bytes()).unwrap().0;
    let merged = KeySet::merge([&f.keys, &new_keys]);
    assert!(verify(&token, &merged, &all_algs(), NOW).is_ok());
    assert!(verify(&f.token(Alg::RS256, json!({})), &merged, &all_algs(), NOW).is_ok());
}

fn unb64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

#[test]
fn kidless_keys_stand_in_for_any_kid() {
    let rsa_pub = rsa_key().pair.public_key().as_ref().to_vec();
    let other = new_rsa_key();
    let doc = [pem("RSA PUBLIC KEY", other.pair.public_key().as_ref()), pem("RSA PUBLIC KEY", &rsa_pub)].concat();
    let keys = KeySet::parse(doc.as_bytes()).unwrap().0;
    let claims = json!({"sub": "a", "exp": NOW + 60}).to_string();
    for header in [r#"{"alg":"RS256","kid":"whatever"}"#, r#"{"alg":"RS256"}"#] {
        let token = sign_token(header, &claims, Alg::RS256, &Signer::Rsa(rsa_key()));
        assert!(verify(&token, &keys, &Policy::default(), NOW).is_ok(), "second kid-less key is tried");
    }
    assert_eq!(keys.candidates(Some("x"), Alg::RS256).len(), 2);
    assert!(keys.find(None, Alg::ES256).is_none());
    // Without a kid, a JWKS key is used only when it is the only one for the algorithm.
    let two = KeySet::parse(jwks(&[rsa_key().jwk("a"), other.jwk("b")]).as_bytes()).unwrap().0;
    let token = sign_token(r#"{"alg":"RS256"}"#, &claims, Alg::RS256, &Signer::Rsa(rsa_key()));
    assert_eq!(verify(&token, &two, &Policy::default(), NOW).unwrap_err(), JwtError::Invalid("token has no kid"));
    let one = KeySet::parse(jwks(&[rsa_key().jwk("a"), ec256().jwk("e")]).as_bytes()).unwrap().0;
    assert!(verify(&token, &one, &Policy::default(), NOW).is_ok());
}

#[test]
fn time_claims() {
    let f = fixture();
    let p = Policy { leeway_secs: 60, ..Policy::default() };
    let check = |extra: Value| verify(&f.token(Alg::ES256, extra), &f.keys, &p, NOW).map(|v| v.exp);
    assert_eq!(check(json!({"exp": NOW - 59})), Ok(NOW - 59), "within leeway");
    assert_eq!(check(json!({"exp": NOW - 60})), Err(JwtError::Expired));
    assert_eq!(check(json!({"exp": -5})), Err(JwtError::Expired));
    assert_eq!(check(json!({"exp": (NOW + 10) as f64 + 0.9})), Ok(NOW + 10), "float exp");
    assert_eq!(check(json!({"exp": 1e300})), Ok(i64::MAX));
    assert_eq!(check(json!({"exp": u64::MAX})), Ok(i64::MAX));
    assert_eq!(check(json!({"exp": "2000000000"})), Err(JwtError::Invalid("token exp claim is not a number")));
    assert_eq!(check(json!({"exp": null})), Err(JwtError::Invalid("token exp claim is not a number")));
    assert_eq!(check(json!({"nbf": NOW + 60})), Ok(NOW + 600), "nbf within leeway");
    assert_eq!(check(json!({"nbf": NOW + 61})), Err(JwtError::NotYetValid));
    assert_eq!(check(json!({"nbf": 1e300})), Err(JwtError::NotYetValid));
    assert_eq!(check(json!({"nbf": -1e300, "iat": -1})), Ok(NOW + 600));
    assert_eq!(check(json!({"iat": NOW + 61})), Err(JwtError::Invalid("token issued in the future")));
    assert_eq!(check(json!({"iat": [1]})), Err(JwtError::Invalid("token iat claim is not a number")));
    let no_exp = sign_token(r#"{"alg":"EdDSA","kid":"ed"}"#, r#"{"sub":"a"}"#, Alg::EdDSA, &Signer::Ed(&f.ed));
    assert_eq!(err(verify(&no_exp, &f.keys, &p, NOW)), JwtError::Invalid("token has no exp claim"));
    let strict = Policy { leeway_secs: u64::MAX, ..Policy::default() };
    assert!(verify(&f.token(Alg::ES256, json!({"exp": i64::MIN})), &f.keys, &strict, i64::MAX).is_err());
}

#[test]
fn issuer_audience_typ() {
    let f = fixture();
    let p = Policy {
        issuers: vec!["https://other".into(), "https://idp".into()],
        audiences: vec!["api".into(), "api2".into()],
        ..Policy::default()
    };
    let check = |extra: Value| err(verify(&f.token(Alg::RS256, extra), &f.keys, &p, NOW));
    assert!(verify(&f.token(Alg::RS256, json!({})), &f.keys, &p, NOW).is_ok());
    assert_eq!(check(json!({"iss": "https://idp/"})), JwtError::Invalid("token issuer not accepted"));
    assert_eq!(check(json!({"iss": null})), JwtError::Invalid("token issuer not accepted"));
    assert_eq!(check(json!({"aud": "web"})), JwtError::Invalid("token audience not accepted"));
    assert_eq!(check(json!({"aud": ["web", "x"]})), JwtError::Invalid("token audience not accepted"));
    assert_eq!(check(json!({"aud": 5})), JwtError::Invalid("token audience not accepted"));
    assert!(verify(&f.token(Alg::RS256, json!({"aud": ["web", "api2"]})), &f.keys, &p, NOW).is_ok());
    let typed = Policy { typ: Some("at+jwt".into()), ..Policy::default() };
    assert_eq!(
        err(verify(&f.token(Alg::RS256, json!({})), &f.keys, &typed, NOW)),
        JwtError::Invalid("wrong token type")
    );
    let at = sign_token(
        r#"{"alg":"EdDSA","typ":"application/at+JWT"}"#,
        r#"{"sub":"a","exp":2000000000}"#,
        Alg::EdDSA,
        &Signer::Ed(&f.ed),
    );
    assert!(verify(&at, &f.keys, &typed, NOW).is_ok(), "no kid: the only EdDSA key");
}

#[test]
fn scopes_and_rules_are_403() {
    let f = fixture();
    let p = Policy { scopes: vec!["read".into(), "write".into()], ..Policy::default() };
    let ok = |extra: Value| verify(&f.token(Alg::ES384, extra), &f.keys, &p, NOW).is_ok();
    assert!(ok(json!({"scope": "openid read write"})));
    assert!(ok(json!({"scp": ["write", "read"]})));
    assert!(ok(json!({"scp": "read write"})));
    assert!(!ok(json!({"scope": "read"})));
    assert!(!ok(json!({"scp": ["read", "write-all"]})));
    let e = err(verify(&f.token(Alg::ES384, json!({})), &f.keys, &p, NOW));
    assert_eq!(e.status(), 403);
    assert!(e.www_authenticate("tfgate").unwrap().ends_with(
        r#"error="insufficient_scope", error_description="token lacks a required scope", scope="read write""#
    ));
    // Every operator with a passing and a failing token.
    let cases: Vec<(&[&str], Value, Value)> = vec![
        (&["roles", "exists"], json!({"roles": []}), json!({"roles": null})),
        (&["tier", "eq", "gold"], json!({"tier": "gold"}), json!({"tier": "silver"})),
        (&["tier", "eq", "7"], json!({"tier": 7}), json!({"tier": "7.0"})),
        (&["tier", "ne", "gold"], json!({}), json!({"tier": ["gold"]})),
        (&["roles", "in", "a", "b"], json!({"roles": ["a", "b"]}), json!({"roles": ["a", "c"]})),
        (&["roles", "contains", "a", "b"], json!({"roles": ["c", "b", "a"]}), json!({"roles": ["a"]})),
        (&["roles", "any", "a", "b"], json!({"roles": ["c", "b"]}), json!({"roles": ["c"]})),
        (&["level", "gt", "3"], json!({"level": 3.5}), json!({"level": "9"})),
        (&["level", "lt", "3"], json!({"level": -1}), json!({"level": 3})),
        (
            &["realm_access.roles", "contains", "admin"],
            json!({"realm_access": {"roles": ["admin"]}}),
            json!({"realm_access": ["admin"]}),
        ),
    ];
    for (rule, pass, fail) in cases {
        let p = Policy { rules: vec![ClaimRule::parse(rule).unwrap()], ..Policy::default() };
        assert!(verify(&f.token(Alg::ES256, pass), &f.keys, &p, NOW).is_ok(), "{rule:?}");
        let e = err(verify(&f.token(Alg::ES256, fail), &f.keys, &p, NOW));
        assert_eq!(
            e,
            JwtError::Forbidden { description: "token does not meet a claim requirement", scope: None },
            "{rule:?}"
        );
    }
}

#[test]
fn malformed_tokens() {
    let f = fixture();
    let p = Policy::default();
    let invalid = |t: &str| match verify(t, &f.keys, &p, NOW) {
        Err(JwtError::Invalid(d)) => d,
        other => panic!("{other:?}"),
    };
    let good = f.token(Alg::RS256, json!({}));
    let parts: Vec<&str> = good.split('.').collect();
    assert_eq!(invalid(&format!("{}.{}", parts[0], parts[1])), TokenError::SegmentCount.description());
    assert_eq!(invalid(&format!("{good}.x")), TokenError::SegmentCount.description());
    assert_eq!(invalid(&format!("{}.{}=.{}", parts[0], parts[1], parts[2])), TokenError::Padding.description());
    assert_eq!(invalid(&format!("{}.{}*.{}", parts[0], parts[1], parts[2])), TokenError::PayloadEncoding.description());
    assert_eq!(
        invalid(&format!("{}.{}.{}", b64("{alg:RS256}"), parts[1], parts[2])),
        TokenError::HeaderNotJson.description()
    );
    assert_eq!(invalid(&"a".repeat(p.max_token_len + 1)), TokenError::TooLarge.description());
    for payload in ["[1,2]", "\"str\"", "42", "null"] {
        let t = sign_token(r#"{"alg":"RS256","kid":"rsa"}"#, payload, Alg::RS256, &Signer::Rsa(rsa_key()));
        assert_eq!(invalid(&t), TokenError::PayloadNotObject.description());
    }
    let t = sign_token(r#"{"alg":"RS256","kid":"rsa"}"#, "{\"exp\":", Alg::RS256, &Signer::Rsa(rsa_key()));
    assert_eq!(invalid(&t), TokenError::PayloadNotJson.description());
    assert_eq!(extract_bearer(Some(b"Bearer "), 100), Err(TokenError::Empty));
    assert_eq!(
        JwtError::from(TokenError::Empty).www_authenticate("tfgate").unwrap(),
        r#"Bearer realm="tfgate", error="invalid_token", error_description="empty bearer token""#
    );
}

#[test]
fn claims_as_variables() {
    let f = fixture();
    let token = f.token(Alg::EdDSA, json!({"groups": ["a", "b"], "n": 5, "obj": {"k": [1]}}));
    let v = verify(&token, &f.keys, &Policy::default(), NOW).unwrap();
    assert_eq!(v.sub.as_deref(), Some("alice"));
    assert_eq!(v.claim_as_string("groups").as_deref(), Some("a,b"));
    assert_eq!(v.claim_as_string("n").as_deref(), Some("5"));
    assert_eq!(v.claim_as_string("obj").as_deref(), Some(r#"{"k":[1]}"#));
    assert_eq!(v.claim_as_string("obj.k").as_deref(), Some("1"));
    assert_eq!(v.claim_as_string("iss").as_deref(), Some("https://idp"));
    assert_eq!(v.claim_as_string("nope"), None);
}

#[test]
fn cached_verification_is_per_policy() {
    let f = fixture();
    let api1 = Policy { audiences: vec!["api".into()], ..Policy::default() };
    let api2 = Policy { audiences: vec!["other".into()], ..Policy::default() };
    let mut cache = VerifiedCache::new(10);
    let token = f.token(Alg::RS256, json!({}));
    let first = cache.verify(&token, &f.keys, &api1, api1.fingerprint(), NOW).unwrap();
    let hit = cache.verify(&token, &f.keys, &api1, api1.fingerprint(), NOW).unwrap();
    assert!(std::rc::Rc::ptr_eq(&first, &hit));
    assert_eq!(cache.len(), 1);
    assert_eq!(
        cache.verify(&token, &f.keys, &api2, api2.fingerprint(), NOW).map(|_| ()),
        Err(JwtError::Invalid("token audience not accepted"))
    );
    // At exp the entry is gone; within the leeway the token verifies again (and is not cached).
    let again = cache.verify(&token, &f.keys, &api1, api1.fingerprint(), NOW + 600).unwrap();
    assert!(!std::rc::Rc::ptr_eq(&first, &again));
    assert!(cache.is_empty());
    assert_eq!(cache.verify(&token, &f.keys, &api1, api1.fingerprint(), NOW + 660).map(|_| ()), Err(JwtError::Expired));
}

#[test]
fn small_order_ed25519_keys_are_refused_so_forged_tokens_never_verify() {
    // The identity point: with R = identity and S = 0, any message "verifies" under it.
    let identity = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let doc = json!({"keys": [ed().jwk("good"), {"kty": "OKP", "crv": "Ed25519", "kid": "evil", "x": identity}]});
    let (keys, skipped) = KeySet::parse(doc.to_string().as_bytes()).unwrap();
    assert_eq!(keys.keys().len(), 1, "small-order key loaded");
    assert!(skipped.iter().any(|s| s.contains("evil") && s.contains("small order")), "{skipped:?}");
    // The forgery itself, against a key set that would contain the key if it were loaded.
    let header = b64(json!({"alg": "EdDSA", "kid": "evil"}).to_string());
    let payload = b64(json!({"sub": "admin", "exp": NOW + 600}).to_string());
    let mut signature = vec![0u8; 64];
    signature[0] = 1; // R = encoded identity, S = 0
    let forged = format!("{header}.{payload}.{}", b64(signature));
    assert!(verify(&forged, &keys, &all_algs(), NOW).is_err());
    // The same point in a PEM SubjectPublicKeyInfo.
    let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    spki.extend_from_slice(&unb64(identity));
    let error = KeySet::parse(pem("PUBLIC KEY", &spki).as_bytes()).unwrap_err();
    assert!(error.contains("small order"), "{error}");
}

#[test]
fn a_token_must_name_its_subject_unless_the_location_allows_anonymous_tokens() {
    let f = fixture();
    let without = |extra: Value| {
        let mut claims = json!({"exp": NOW + 600});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        sign_token(r#"{"alg":"EdDSA","kid":"ed"}"#, &claims.to_string(), Alg::EdDSA, &Signer::Ed(&f.ed))
    };
    let strict = Policy::default();
    for (claims, why) in [
        (json!({}), "token has no subject"),
        (json!({"sub": ""}), "token has no subject"),
        (json!({"sub": 7}), "token subject is not a string"),
        (json!({"sub": ["a"]}), "token subject is not a string"),
        (json!({"sub": "a\r\nX-Tfgate-Plan: gold"}), "subject contains control characters"),
        (json!({"sub": format!("{}A", "x".repeat(256))}), "the token's subject is longer than 256 bytes"),
        // Counted in bytes, as the header carries them: 129 two-byte characters are 258.
        (json!({"sub": "é".repeat(129)}), "the token's subject is longer than 256 bytes"),
    ] {
        assert_eq!(err(verify(&without(claims.clone()), &f.keys, &strict, NOW)), JwtError::Invalid(why), "{claims}");
    }
    let lenient = Policy { require_subject: false, ..Policy::default() };
    assert_ne!(lenient.fingerprint(), strict.fingerprint(), "cached verdicts stay per policy");
    assert_eq!(verify(&without(json!({})), &f.keys, &lenient, NOW).unwrap().sub, None);
    assert_eq!(verify(&without(json!({"sub": ""})), &f.keys, &lenient, NOW).unwrap().sub, None);
    assert!(verify(&without(json!({"sub": 7})), &f.keys, &lenient, NOW).is_err(), "malformed whatever the policy");
    let too_long = without(json!({"sub": "x".repeat(257)}));
    assert!(verify(&too_long, &f.keys, &lenient, NOW).is_err(), "too long whatever the policy");
    let longest = "é".repeat(128);
    let accepted = verify(&without(json!({"sub": longest})), &f.keys, &strict, NOW).unwrap();
    assert_eq!(accepted.sub.map(|s| s.len()), Some(256), "256 bytes is still a subject");
}
