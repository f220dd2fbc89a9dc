use super::*;

#[test]
fn urls_are_checked_and_split() {
    let url = HttpUrl::parse("https://idp.example.com/realms/a", "x").unwrap();
    assert_eq!(
        url,
        HttpUrl {
            https: true,
            authority: "idp.example.com".into(),
            host: "idp.example.com".into(),
            port: 443,
            path_and_query: "/realms/a".into(),
        }
    );
    let url = HttpUrl::parse("http://[::1]:8080", "x").unwrap();
    assert_eq!((url.host.as_str(), url.port), ("::1", 8080));
    assert_eq!((url.authority.as_str(), url.path_and_query.as_str()), ("[::1]:8080", "/"));
    for bad in [
        "",
        "idp.example.com",
        "ftp://idp.example.com",
        "https://user@idp.example.com",
        "https://idp.example.com/a b",
        "https://idp.example.com/a;b",
        "https://idp.example.com/$x",
        "https://idp.example.com/#f",
        "https://idp.example.com/é",
    ] {
        assert!(HttpUrl::parse(bad, "x").is_err(), "{bad}");
    }
    assert!(check_issuer_url("https://idp.example.com/?tenant=a").is_err());
    assert!(check_issuer_url("https://idp.example.com/").is_ok());
}

#[test]
fn the_well_known_path_follows_the_issuer() {
    assert_eq!(discovery_url("https://idp.example.com"), "https://idp.example.com/.well-known/openid-configuration");
    assert_eq!(discovery_url("https://idp.example.com/"), "https://idp.example.com/.well-known/openid-configuration");
    assert_eq!(
        discovery_url("https://login.example.com/realms/ml/"),
        "https://login.example.com/realms/ml/.well-known/openid-configuration"
    );
}

const ISSUER: &str = "https://idp.example.com/";

fn document(fields: &str) -> Vec<u8> {
    format!("{{{fields}}}").into_bytes()
}

#[test]
fn a_good_document() {
    let body = document(
        r#""issuer": "https://idp.example.com/", "jwks_uri": "https://keys.example.com/jwks?v=1",
           "id_token_signing_alg_values_supported": ["RS256", "ES256"], "other": 1"#,
    );
    let found = parse_document(&body, ISSUER).unwrap();
    assert_eq!(found.issuer, ISSUER);
    assert_eq!(found.jwks_uri.host, "keys.example.com");
    assert_eq!(found.jwks_uri.path_and_query, "/jwks?v=1");
    assert_eq!(found.jwks_uri_text, "https://keys.example.com/jwks?v=1");
    assert_eq!(found.advertised_algorithms, Some(vec!["RS256".into(), "ES256".into()]));
    let without = parse_document(
        &document(r#""issuer": "https://idp.example.com/", "jwks_uri": "https://idp.example.com/k""#),
        ISSUER,
    )
    .unwrap();
    assert_eq!(without.advertised_algorithms, None);
}

#[test]
fn every_problem_is_named() {
    let err = |body: &[u8], issuer: &str| parse_document(body, issuer).unwrap_err();
    assert!(err(b"<html>", ISSUER).contains("not JSON"));
    assert!(err(b"[1]", ISSUER).contains("not a JSON object"));
    assert!(err(&document(r#""jwks_uri": "https://a/k""#), ISSUER).contains("no \"issuer\""));
    let mismatch = err(&document(r#""issuer": "https://idp.example.com", "jwks_uri": "https://a/k""#), ISSUER);
    assert!(mismatch.contains("issuer mismatch"), "{mismatch}");
    assert!(mismatch.contains("\"https://idp.example.com\""), "{mismatch}");
    assert!(err(&document(r#""issuer": "https://idp.example.com/""#), ISSUER).contains("no \"jwks_uri\""));
    assert!(err(&document(r#""issuer": "https://idp.example.com/", "jwks_uri": "http://a/k""#), ISSUER)
        .contains("not https"));
    assert!(err(&document(r#""issuer": "https://idp.example.com/", "jwks_uri": "https://a/k; evil""#), ISSUER)
        .contains("characters"));
    assert!(err(
        &document(
            r#""issuer": "https://idp.example.com/", "jwks_uri": "https://a/k",
               "id_token_signing_alg_values_supported": "RS256""#
        ),
        ISSUER
    )
    .contains("not an array"));
    // A plain-http issuer (a test IdP) may serve its keys over http.
    let local = "http://127.0.0.1:8080";
    let body = document(r#""issuer": "http://127.0.0.1:8080", "jwks_uri": "http://127.0.0.1:8080/jwks""#);
    assert!(parse_document(&body, local).is_ok());
}

#[test]
fn only_algorithms_the_module_verifies_are_kept() {
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (usable, other) = split_algorithms(&names(&["RS256", "HS256", "none", "ES512", "EdDSA", "RS256"]));
    assert_eq!(usable, vec!["RS256", "EdDSA"]);
    assert_eq!(other, names(&["HS256", "none", "ES512"]));
    let (usable, other) = split_algorithms(&names(&["rs256"]));
    assert!(usable.is_empty());
    assert_eq!(other, names(&["rs256"]));
}
