//! Writes a JWKS and signed tokens for benchmarks, the demo and manual tries:
//! DIR/jwks.json (RSA kid "rsa", P-256 kid "ec"), DIR/rs256.token and DIR/es256.token for
//! subject "bench", and with `--subjects N` DIR/subjects/user-I.token (RS256) for N subjects;
//! valid for a day, scope "predict".

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde_json::json;
use tfgate_jwt_testkit::{ec256, jwks, new_rsa_key, sign_token, Signer};

#[derive(Parser)]
#[command(name = "tfgate-mint-tokens", version)]
struct Args {
    /// Where the files go (it must exist)
    dir: PathBuf,
    #[arg(default_value = "https://idp.example")]
    issuer: String,
    #[arg(default_value = "tfgate")]
    audience: String,
    /// Also write tokens for subjects user-0 .. user-(N-1)
    #[arg(long, value_name = "N", default_value_t = 0)]
    subjects: u32,
}

fn main() {
    let args = Args::parse();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let claims = |sub: &str| {
        json!({"iss": args.issuer, "aud": args.audience, "sub": sub, "scope": "predict", "iat": now, "exp": now + 86_400})
            .to_string()
    };
    let rsa = new_rsa_key();
    let ec = ec256();
    write(&args.dir.join("jwks.json"), jwks(&[rsa.jwk("rsa"), ec.jwk("ec")]));
    let header = |alg: &str, kid: &str| json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string();
    let rs256 = |sub: &str| sign_token(&header("RS256", "rsa"), &claims(sub), "RS256", &Signer::Rsa(&rsa));
    write(&args.dir.join("rs256.token"), rs256("bench"));
    write(
        &args.dir.join("es256.token"),
        sign_token(&header("ES256", "ec"), &claims("bench"), "ES256", &Signer::Ec(&ec)),
    );
    if args.subjects > 0 {
        let dir = args.dir.join("subjects");
        if let Err(e) = std::fs::create_dir_all(&dir) {
            fail(&format!("cannot create {}: {e}", dir.display()));
        }
        for i in 0..args.subjects {
            let sub = format!("user-{i}");
            write(&dir.join(format!("{sub}.token")), rs256(&sub));
        }
    }
}

fn write(path: &Path, text: String) {
    if let Err(e) = std::fs::write(path, text) {
        fail(&format!("cannot write {}: {e}", path.display()));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("tfgate-mint-tokens: {message}");
    std::process::exit(1);
}
