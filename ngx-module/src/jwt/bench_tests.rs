//! `cargo test --release -p ngx-http-tfgate-module jwt -- --ignored --nocapture`

use std::hint::black_box;
use std::time::Instant;

use serde_json::json;

use super::*;
use tfgate_jwt_testkit::*;

const NOW: i64 = 1_700_000_000;
const N: u32 = 10_000;

fn per_op(label: &str, n: u32, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f(); // warm up
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("{label:<44} {us:>9.2} us");
}

#[test]
#[ignore]
fn cost_of_verification() {
    let (ec256, ec384, ed) = (ec256(), ec384(), ed());
    let secret = hs_secret(32);
    let doc = jwks(&[rsa_key().jwk("r"), ec256.jwk("e2"), ec384.jwk("e3"), ed.jwk("d"), hs_jwk("h", 32)]);
    let keys = KeySet::parse(doc.as_bytes()).unwrap().0;
    let policy = Policy {
        algorithms: Alg::ALL.to_vec(),
        issuers: vec!["https://idp.example.com/".into()],
        audiences: vec!["api".into()],
        scopes: vec!["predict".into()],
        rules: vec![ClaimRule::parse(&["groups", "any", "ml", "ops"]).unwrap()],
        ..Policy::default()
    };
    let claims = json!({
        "iss": "https://idp.example.com/", "sub": "user-1234567890", "aud": ["api", "web"],
        "exp": NOW + 3600, "iat": NOW, "nbf": NOW, "scope": "openid profile predict",
        "groups": ["ml", "staff"], "email": "someone@example.com", "jti": "0123456789abcdef",
    })
    .to_string();
    let cases = [
        (Alg::RS256, "r", Signer::Rsa(rsa_key())),
        (Alg::PS256, "r", Signer::Rsa(rsa_key())),
        (Alg::ES256, "e2", Signer::Ec(&ec256)),
        (Alg::ES384, "e3", Signer::Ec(&ec384)),
        (Alg::EdDSA, "d", Signer::Ed(&ed)),
        (Alg::HS256, "h", Signer::Hmac(&secret)),
    ];
    println!("\nper call, {N} iterations, token ~{} bytes of claims:", claims.len());
    let mut rs256 = String::new();
    for (alg, kid, signer) in &cases {
        let header = json!({"alg": alg.name(), "kid": kid, "typ": "JWT"}).to_string();
        let token = sign_token(&header, &claims, *alg, signer);
        assert!(verify(&token, &keys, &policy, NOW).is_ok());
        let n = if *alg == Alg::ES384 { N / 10 } else { N };
        per_op(&format!("verify {} (uncached, {} bytes)", alg.name(), token.len()), n, || {
            black_box(verify(black_box(&token), &keys, &policy, NOW).is_ok());
        });
        let parts = token::split(&token).unwrap();
        let key = keys.find(Some(kid), *alg).unwrap();
        per_op("  of which the signature check alone", n, || {
            black_box(key.verify(*alg, black_box(parts.signing_input), &parts.signature));
        });
        if *alg == Alg::RS256 {
            rs256 = token;
        }
    }
    let header = format!("Bearer {rs256}");
    per_op("extract_bearer + token::split (RS256)", N, || {
        let t = extract_bearer(Some(black_box(header.as_bytes())), 8192).unwrap().unwrap();
        black_box(token::split(t).is_ok());
    });
    let fp = policy.fingerprint();
    let mut cache = VerifiedCache::new(10_000);
    // A realistically full cache.
    for i in 0..9_999 {
        let v = std::rc::Rc::new(Verified { sub: None, exp: NOW + 3600, claims: Default::default() });
        cache.insert(fp, &format!("{rs256}{i}"), v, NOW);
    }
    assert!(cache.verify(&rs256, &keys, &policy, fp, NOW).is_ok());
    per_op("cache hit (RS256 token, 10k entries)", N * 10, || {
        let t = extract_bearer(Some(black_box(header.as_bytes())), 8192).unwrap().unwrap();
        black_box(cache.verify(t, &keys, &policy, fp, NOW).is_ok());
    });
    // A forged signature (one character changed mid-signature): a miss, then a full RSA verify.
    let mut forged = rs256.clone().into_bytes();
    let at = forged.len() - 20;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(verify(&forged, &keys, &policy, NOW).unwrap_err(), JwtError::Invalid("invalid token signature"));
    per_op("cache miss + verify, forged signature (RS256)", N, || {
        black_box(cache.verify(black_box(&forged), &keys, &policy, fp, NOW).is_err());
    });
    let junk = format!("{}.{}.{}", "eyJhbGciOiJSUzI1NiJ9", "e30", "x".repeat(300));
    per_op("junk token (bad signature encoding)", N, || {
        black_box(cache.verify(black_box(&junk), &keys, &policy, fp, NOW).is_err());
    });
}
