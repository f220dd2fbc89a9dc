//! Property-style loops: random and mutated input never panics and never verifies by accident.

use serde_json::{json, Map, Value};

use super::*;
use tfgate_jwt_testkit::*;

const NOW: i64 = 1_700_000_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn strict_policy() -> Policy {
    let rules = [
        &["roles", "exists"][..],
        &["roles", "ne", "x"],
        &["a.b", "in", "1", "2", "true"],
        &["roles", "contains", "x"],
        &["roles", "any", "x", "y"],
        &["n", "gt", "-1e300"],
        &["n", "lt", "1e300"],
        &["s", "eq", "x"],
    ];
    Policy {
        algorithms: Alg::ALL.to_vec(),
        issuers: vec!["i".into()],
        audiences: vec!["a".into()],
        scopes: vec!["s".into()],
        rules: rules.iter().map(|r| ClaimRule::parse(r).unwrap()).collect(),
        typ: Some("jwt".into()),
        ..Policy::default()
    }
}

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    let scalars = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(-0.0),
        json!(1e308),
        json!(-1e308),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(NOW + 100),
        json!("x"),
        json!("i"),
        json!("a"),
        json!("s x"),
        json!(""),
        json!("\u{0}\r\n\"\\é"),
    ];
    match rng.below(if depth == 0 { 1 } else { 4 }) {
        0 => rng.pick(&scalars).clone(),
        1 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth - 1)).collect()),
        _ => Value::Object(random_claims(rng, depth - 1)),
    }
}

fn random_claims(rng: &mut Rng, depth: usize) -> Map<String, Value> {
    let names = ["exp", "nbf", "iat", "iss", "aud", "sub", "scope", "scp", "roles", "a", "b", "n", "s"];
    (0..rng.below(10)).map(|_| (rng.pick(&names).to_string(), random_value(rng, depth))).collect()
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let keys = KeySet::parse(jwks(&[hs_jwk("k", 32), ec256().jwk("e")]).as_bytes()).unwrap().0;
    let policy = strict_policy();
    let alphabet = b"Bearer eyJhbGciOiJSUzI1NiJ9.-_=+/ \t\x00\xff";
    for i in 0..20_000 {
        let header: Vec<u8> = if i % 2 == 0 {
            rng.bytes(200)
        } else {
            let mut h = b"Bearer ".to_vec();
            h.extend((0..rng.below(300)).map(|_| *rng.pick(alphabet)));
            h
        };
        if let Ok(Some(token)) = extract_bearer(Some(&header), 256) {
            assert!(verify(token, &keys, &policy, NOW).is_err());
        }
        let text = String::from_utf8_lossy(&header);
        assert!(verify(&text, &keys, &policy, NOW).is_err());
    }
}

#[test]
fn mutated_valid_tokens_never_verify_and_never_panic() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let (ec, ed) = (ec256(), ed());
    let doc = jwks(&[rsa_key().jwk("r"), ec.jwk("e"), ed.jwk("d"), hs_jwk("h", 64)]);
    let keys = KeySet::parse(doc.as_bytes()).unwrap().0;
    let policy = Policy { algorithms: Alg::ALL.to_vec(), ..Policy::default() };
    let secret = hs_secret(64);
    let claims = json!({"sub": "a", "exp": NOW + 60}).to_string();
    let signers = [
        (Alg::RS256, "r", Signer::Rsa(rsa_key())),
        (Alg::PS512, "r", Signer::Rsa(rsa_key())),
        (Alg::ES256, "e", Signer::Ec(&ec)),
        (Alg::EdDSA, "d", Signer::Ed(&ed)),
        (Alg::HS256, "h", Signer::Hmac(&secret)),
    ];
    let chars = b"AZaz09-_.=+/ ~\"{}";
    for (alg, kid, signer) in &signers {
        let header = json!({"alg": alg.name(), "kid": kid}).to_string();
        let good = sign_token(&header, &claims, *alg, signer);
        assert!(verify(&good, &keys, &policy, NOW).is_ok());
        for _ in 0..2_000 {
            let mut t = good.as_bytes().to_vec();
            for _ in 0..1 + rng.below(3) {
                if t.is_empty() {
                    break;
                }
                let at = rng.below(t.len());
                match rng.below(5) {
                    0 => t[at] = *rng.pick(chars),
                    1 => t.truncate(at),
                    2 => t.insert(at, *rng.pick(chars)),
                    3 => drop(t.drain(at..(at + rng.below(20)).min(t.len()))),
                    _ => t.extend_from_within(..at),
                }
            }
            let Ok(text) = String::from_utf8(t) else { continue };
            if let Ok(Some(token)) = extract_bearer(Some(format!("Bearer {text}").as_bytes()), 8192) {
                let result = verify(token, &keys, &policy, NOW);
                assert!(result.is_err() || token == good, "{alg:?}: a mutated token verified");
            }
        }
    }
}

#[test]
fn random_signed_claims_never_panic() {
    let mut rng = Rng(0x0bad_c0de_1234_5678);
    let secret = hs_secret(32);
    let keys = KeySet::parse(jwks(&[hs_jwk("h", 32)]).as_bytes()).unwrap().0;
    let strict = strict_policy();
    let lenient = Policy { algorithms: vec![Alg::HS256], require_subject: false, ..Policy::default() };
    let mut cache = VerifiedCache::new(64);
    let mut accepted = 0;
    for i in 0..5_000 {
        let policy = if i % 2 == 0 { &strict } else { &lenient };
        let fp = policy.fingerprint();
        let mut claims = random_claims(&mut rng, 3);
        if i % 4 == 1 {
            claims.insert("exp".into(), json!(NOW + 100));
        }
        let claims = Value::Object(claims).to_string();
        let header = json!({"alg": "HS256", "typ": *rng.pick(&["JWT", "at+jwt", "x"])}).to_string();
        let token = sign_token(&header, &claims, Alg::HS256, &Signer::Hmac(&secret));
        let now = if i % 4 == 1 { NOW } else { *rng.pick(&[NOW, i64::MIN, i64::MAX, 0]) };
        match cache.verify(&token, &keys, policy, fp, now) {
            Ok(v) => {
                accepted += 1;
                for name in ["roles", "a.b", "n", "scp", "x"] {
                    let _ = v.claim_as_string(name);
                }
            }
            Err(e) => {
                assert!(matches!(e.status(), 401 | 403));
                let _ = (e.www_authenticate("r"), e.json_body(), e.result());
            }
        }
    }
    assert!(accepted > 100 && accepted < 5_000, "{accepted}");
    let policy = strict;
    // Raw payload texts serde cannot take, and deep nesting (serde's recursion limit).
    let deep = format!("{{\"exp\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    for raw in ["{\"exp\":1e999}", "{\"exp\":-}", "{\"exp\":18446744073709551616}", deep.as_str(), "\u{feff}{}"] {
        let token = sign_token(r#"{"alg":"HS256"}"#, raw, Alg::HS256, &Signer::Hmac(&secret));
        let _ = verify(&token, &keys, &policy, NOW);
    }
    let deep_header = format!("{{\"alg\":\"HS256\",\"x\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let token = sign_token(&deep_header, "{}", Alg::HS256, &Signer::Hmac(&secret));
    assert!(verify(&token, &keys, &Policy { max_token_len: 1 << 20, ..policy }, NOW).is_err());
}

#[test]
fn random_key_documents_and_config_never_panic() {
    let mut rng = Rng(0x5eed_5eed_5eed_5eed);
    let doc = jwks(&[rsa_key().jwk("r"), ec384().jwk("e"), ed().jwk("d"), hs_jwk("h", 32)]);
    let pems = pem("PUBLIC KEY", &[0x30, 0x03, 0x02, 0x01, 0x01]);
    for _ in 0..3_000 {
        for base in [doc.as_bytes(), pems.as_bytes()] {
            let mut d = base.to_vec();
            for _ in 0..1 + rng.below(4) {
                if d.is_empty() {
                    break;
                }
                let at = rng.below(d.len());
                match rng.below(3) {
                    0 => d[at] = rng.next() as u8,
                    1 => d.truncate(at),
                    _ => drop(d.drain(at..(at + rng.below(40)).min(d.len()))),
                }
            }
            let _ = KeySet::parse(&d);
        }
        let args: Vec<String> =
            (0..rng.below(5)).map(|_| String::from_utf8_lossy(&rng.bytes(6)).into_owned()).collect();
        let mut refs: Vec<&str> = args.iter().map(String::as_str).collect();
        if !refs.is_empty() && rng.below(2) == 0 {
            let op = *rng.pick(&["eq", "ne", "in", "contains", "any", "exists", "gt", "lt"]);
            refs.insert(1.min(refs.len()), op);
        }
        let _ = ClaimRule::parse(&refs);
        let _ = Policy::parse_algorithms(&refs);
    }
}
