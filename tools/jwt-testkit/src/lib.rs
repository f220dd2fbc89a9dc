//! Test support for tfgate's JWT checks: keys generated with aws-lc-rs, their JWKs and PEMs,
//! and tokens signed with them. Algorithms are named as in JOSE ("RS256", ...).

use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, RsaEncoding, RsaKeyPair,
};
use aws_lc_rs::{hmac, rsa::KeySize};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub struct Rsa {
    pub pair: RsaKeyPair,
}

/// One RSA-2048 key per test process (generation is slow in debug builds).
pub fn rsa_key() -> &'static Rsa {
    static KEY: OnceLock<Rsa> = OnceLock::new();
    KEY.get_or_init(new_rsa_key)
}

pub fn new_rsa_key() -> Rsa {
    Rsa { pair: RsaKeyPair::generate(KeySize::Rsa2048).unwrap() }
}

impl Rsa {
    /// The public key as PKCS#1 DER (what an attacker would try as an HMAC secret).
    pub fn public_der(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    pub fn jwk(&self, kid: &str) -> Value {
        let (n, e) = read_pkcs1(self.pair.public_key().as_ref());
        json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(n), "e": b64(e)})
    }
}

/// (n, e) of a PKCS#1 RSAPublicKey: just enough DER reading for keys we generated.
fn read_pkcs1(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn tlv(input: &[u8]) -> (&[u8], &[u8]) {
        let (len, header) = match input[1] {
            l if l < 0x80 => (l as usize, 2),
            l => {
                let count = (l & 0x7f) as usize;
                (input[2..2 + count].iter().fold(0usize, |acc, b| acc << 8 | *b as usize), 2 + count)
            }
        };
        (&input[header..header + len], &input[header + len..])
    }
    let (body, _) = tlv(der);
    let (n, rest) = tlv(body);
    let (e, _) = tlv(rest);
    let strip = |v: &[u8]| v.iter().skip_while(|b| **b == 0).copied().collect::<Vec<u8>>();
    (strip(n), strip(e))
}

pub struct Ec {
    pub pair: EcdsaKeyPair,
    crv: &'static str,
}

pub fn ec_key(alg: &'static EcdsaSigningAlgorithm, crv: &'static str) -> Ec {
    Ec { pair: EcdsaKeyPair::generate(alg).unwrap(), crv }
}

pub fn ec256() -> Ec {
    ec_key(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256")
}

pub fn ec384() -> Ec {
    ec_key(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384")
}

impl Ec {
    pub fn jwk(&self, kid: &str) -> Value {
        let point = self.pair.public_key().as_ref();
        let len = (point.len() - 1) / 2;
        json!({"kty": "EC", "kid": kid, "crv": self.crv, "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])})
    }
}

pub struct Ed {
    pub pair: Ed25519KeyPair,
}

pub fn ed() -> Ed {
    Ed { pair: Ed25519KeyPair::generate().unwrap() }
}

impl Ed {
    pub fn jwk(&self, kid: &str) -> Value {
        json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(self.pair.public_key().as_ref())})
    }
}

pub fn hs_secret(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect()
}

pub fn hs_jwk(kid: &str, len: usize) -> Value {
    json!({"kty": "oct", "kid": kid, "k": b64(hs_secret(len))})
}

pub fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

pub enum Signer<'a> {
    Rsa(&'a Rsa),
    Ec(&'a Ec),
    Ed(&'a Ed),
    Hmac(&'a [u8]),
}

/// Signs `header.payload` (both JSON texts, encoded as given) with `alg`.
pub fn sign_token(header: &str, payload: &str, alg: impl AsRef<str>, signer: &Signer) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = sign(input.as_bytes(), alg, signer);
    format!("{input}.{}", b64(sig))
}

pub fn sign(msg: &[u8], alg: impl AsRef<str>, signer: &Signer) -> Vec<u8> {
    let alg = alg.as_ref();
    let rng = SystemRandom::new();
    match signer {
        Signer::Rsa(key) => {
            let padding: &'static dyn RsaEncoding = match alg {
                "RS256" => &signature::RSA_PKCS1_SHA256,
                "RS384" => &signature::RSA_PKCS1_SHA384,
                "RS512" => &signature::RSA_PKCS1_SHA512,
                "PS256" => &signature::RSA_PSS_SHA256,
                "PS384" => &signature::RSA_PSS_SHA384,
                _ => &signature::RSA_PSS_SHA512,
            };
            let mut sig = vec![0; key.pair.public_modulus_len()];
            key.pair.sign(padding, &rng, msg, &mut sig).unwrap();
            sig
        }
        Signer::Ec(key) => key.pair.sign(&rng, msg).unwrap().as_ref().to_vec(),
        Signer::Ed(key) => key.pair.sign(msg).as_ref().to_vec(),
        Signer::Hmac(secret) => {
            let algorithm = match alg {
                "HS384" => hmac::HMAC_SHA384,
                "HS512" => hmac::HMAC_SHA512,
                _ => hmac::HMAC_SHA256,
            };
            hmac::sign(&hmac::Key::new(algorithm, secret), msg).as_ref().to_vec()
        }
    }
}
