//! Writes a JWKS and signed tokens for benchmarks and manual tries:
//!
//!   tfgate-mint-tokens DIR [ISSUER] [AUDIENCE]
//!
//! DIR/jwks.json (RSA kid "rsa", P-256 kid "ec"), DIR/rs256.token, DIR/es256.token, valid for a
//! day, subject "bench", scope "predict".

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use tfgate_jwt_testkit::{ec256, jwks, new_rsa_key, sign_token, Signer};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: tfgate-mint-tokens DIR [ISSUER] [AUDIENCE]");
        std::process::exit(2);
    };
    let issuer = args.next().unwrap_or_else(|| "https://idp.example".into());
    let audience = args.next().unwrap_or_else(|| "tfgate".into());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let claims =
        json!({"iss": issuer, "aud": audience, "sub": "bench", "scope": "predict", "iat": now, "exp": now + 86_400})
            .to_string();
    let rsa = new_rsa_key();
    let ec = ec256();
    let write = |name: &str, text: String| {
        let path = format!("{dir}/{name}");
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
    };
    write("jwks.json", jwks(&[rsa.jwk("rsa"), ec.jwk("ec")]));
    let header = |alg: &str, kid: &str| json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string();
    write("rs256.token", sign_token(&header("RS256", "rsa"), &claims, "RS256", &Signer::Rsa(&rsa)));
    write("es256.token", sign_token(&header("ES256", "ec"), &claims, "ES256", &Signer::Ec(&ec)));
}
