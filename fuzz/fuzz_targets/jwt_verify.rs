//! The token parser and verifier with a fixed key set (RSA, P-256, Ed25519, HMAC) and a strict
//! policy. Input starting with 0: `header \0 payload`, signed with the HMAC key, so the claims
//! checks run too; anything else: the token as sent.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ngx_http_tfgate_module::jwt::{verify, Alg, ClaimRule, KeySet, Policy};
use tfgate_jwt_testkit::{ec256, ed, hs_jwk, hs_secret, jwks, rsa_key, sign_token, Signer};

const NOW: i64 = 1_700_000_000;

struct Fixture {
    keys: KeySet,
    policy: Policy,
    secret: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let document = jwks(&[rsa_key().jwk("rsa"), ec256().jwk("ec"), ed().jwk("ed"), hs_jwk("h", 64)]);
        let (keys, _) = KeySet::parse(document.as_bytes()).expect("fixed key set");
        let rules: Vec<ClaimRule> = [&["roles", "any", "a", "b"][..], &["n", "gt", "1"], &["a.b", "exists"]]
            .iter()
            .map(|r| ClaimRule::parse(r).expect("rule"))
            .collect();
        let policy = Policy {
            algorithms: Alg::ALL.to_vec(),
            issuers: vec!["https://idp.example".into()],
            audiences: vec!["tfgate".into()],
            scopes: vec!["predict".into()],
            rules,
            ..Policy::default()
        };
        Fixture { keys, policy, secret: hs_secret(64) }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let token = match data.split_first() {
        Some((0, rest)) => {
            let mut parts = rest.splitn(2, |&b| b == 0);
            let header = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let payload = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            sign_token(&header, &payload, "HS256", &Signer::Hmac(&f.secret))
        }
        _ => match std::str::from_utf8(data) {
            Ok(token) => token.to_owned(),
            Err(_) => return,
        },
    };
    if let Ok(verified) = verify(&token, &f.keys, &f.policy, NOW) {
        // What an accepted token guarantees.
        assert!(verified.exp > NOW - f.policy.leeway_secs as i64, "expired token accepted");
        assert!(!verified.sub.as_deref().unwrap_or("").chars().any(char::is_control));
    }
});
