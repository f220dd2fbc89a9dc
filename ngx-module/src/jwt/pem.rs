//! PEM public keys: `PUBLIC KEY` (SubjectPublicKeyInfo: RSA, EC P-256/P-384, Ed25519) and
//! `RSA PUBLIC KEY` (PKCS#1). PEM keys have no `kid`.

use aws_lc_rs::rsa::PublicKey as RsaPublicKey;
use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::key::{Key, RSA_ALGS};
use super::policy::Alg;

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";

/// Every PEM block of the document; blocks of other types (certificates, private keys) are
/// skipped with a reason.
pub(crate) fn parse_pem(document: &[u8]) -> Result<(Vec<Key>, Vec<String>), String> {
    let text = std::str::from_utf8(document).map_err(|_| "key file is neither JSON nor PEM text".to_owned())?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    let mut rest = text;
    let mut index = 0usize;
    while let Some(start) = rest.find(BEGIN) {
        let after = rest.get(start.saturating_add(BEGIN.len())..).unwrap_or("");
        let Some((label, body_and_rest)) = after.split_once(DASHES) else {
            return Err(format!("PEM block #{index}: unterminated BEGIN line"));
        };
        let end_line = format!("{END}{label}{DASHES}");
        let Some((body, tail)) = body_and_rest.split_once(end_line.as_str()) else {
            return Err(format!("PEM block #{index} ({label}): no END line"));
        };
        rest = tail;
        match decode_body(body).and_then(|der| parse_block(label, &der)) {
            Ok(key) => keys.push(key),
            Err(why) => skipped.push(format!("PEM block #{index} ({label}): {why}")),
        }
        index = index.saturating_add(1);
    }
    if index == 0 {
        return Err("key file is neither JSON nor PEM (no BEGIN line)".to_owned());
    }
    Ok((keys, skipped))
}

fn decode_body(body: &str) -> Result<Vec<u8>, String> {
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).map_err(|_| "bad base64".to_owned())
}

fn parse_block(label: &str, der: &[u8]) -> Result<Key, String> {
    match label {
        "PUBLIC KEY" => parse_spki(der),
        "RSA PUBLIC KEY" => Key::rsa(None, der, &RSA_ALGS),
        other => Err(format!("{other} is not supported (a public key is needed)")),
    }
}

/// The key type is found by letting aws-lc parse the SPKI as each type in turn (each parser
/// checks the algorithm identifier and, for EC, the curve).
fn parse_spki(der: &[u8]) -> Result<Key, String> {
    if let Ok(rsa) = RsaPublicKey::from_der(der) {
        return Key::rsa(None, rsa.as_ref(), &RSA_ALGS);
    }
    let types = [
        (&signature::ECDSA_P256_SHA256_FIXED as &'static dyn signature::VerificationAlgorithm, Alg::ES256),
        (&signature::ECDSA_P384_SHA384_FIXED, Alg::ES384),
        (&signature::ED25519, Alg::EdDSA),
    ];
    for (algorithm, alg) in types {
        if der.len() > 32 && ParsedPublicKey::new(algorithm, der).is_ok() {
            return Key::public(None, der, &[alg]);
        }
    }
    Err("unsupported or malformed public key".to_owned())
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;

    use super::super::keys::KeySet;
    use super::*;
    use tfgate_jwt_testkit::*;

    fn algs(set: &KeySet, i: usize) -> Vec<Alg> {
        set.keys()[i].algorithms().collect()
    }

    #[test]
    fn reads_spki_and_pkcs1() {
        let rsa = rsa_key();
        let spki = |der: &[u8]| pem("PUBLIC KEY", der);
        let doc = [
            spki(rsa.pair.public_key().as_der().unwrap().as_ref()),
            pem("RSA PUBLIC KEY", rsa.pair.public_key().as_ref()),
            spki(ec256().pair.public_key().as_der().unwrap().as_ref()),
            spki(ec384().pair.public_key().as_der().unwrap().as_ref()),
            spki(ed().pair.public_key().as_der().unwrap().as_ref()),
            "junk between blocks\n".to_owned(),
            pem("CERTIFICATE", b"xx"),
        ]
        .concat();
        let (set, skipped) = KeySet::parse(doc.as_bytes()).unwrap();
        assert_eq!(set.len(), 5);
        assert!(set.keys().iter().all(|k| k.kid().is_none()));
        assert_eq!(algs(&set, 0), RSA_ALGS.to_vec());
        assert_eq!(algs(&set, 1), RSA_ALGS.to_vec());
        assert_eq!(algs(&set, 2), vec![Alg::ES256]);
        assert_eq!(algs(&set, 3), vec![Alg::ES384]);
        assert_eq!(algs(&set, 4), vec![Alg::EdDSA]);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].contains("CERTIFICATE is not supported"), "{skipped:?}");
    }

    #[test]
    fn pem_errors() {
        assert!(KeySet::parse(b"hello").unwrap_err().contains("no BEGIN"));
        assert!(KeySet::parse(b"\xff\xfe").unwrap_err().contains("neither"));
        assert!(KeySet::parse(b"-----BEGIN PUBLIC KEY").unwrap_err().contains("unterminated"));
        assert!(KeySet::parse(b"-----BEGIN PUBLIC KEY-----\nAAAA\n").unwrap_err().contains("END"));
        let bad = pem("PUBLIC KEY", b"not a key at all");
        assert!(KeySet::parse(bad.as_bytes()).unwrap_err().contains("unsupported or malformed"));
        let bad = "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n";
        assert!(KeySet::parse(bad.as_bytes()).unwrap_err().contains("bad base64"));
        let small = pem("RSA PUBLIC KEY", &super::super::der::rsa_public_key(&[0xc5; 128], &[1, 0, 1]).unwrap());
        assert!(KeySet::parse(small.as_bytes()).unwrap_err().contains("1024 bits"));
    }
}
