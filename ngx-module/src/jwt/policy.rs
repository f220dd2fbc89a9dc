//! What a location accepts: algorithms, issuers, audiences, leeway, scopes, claim rules.

use aws_lc_rs::digest;

use super::canonical::{put_list, put_u64};
use super::claims::ClaimRule;

/// A JWS signature algorithm (RFC 7518, RFC 8037). There is deliberately no `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl Alg {
    /// Every supported algorithm.
    pub const ALL: [Alg; 12] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
    ];

    /// The default allowlist of `tfgate_jwt_algorithms`: every asymmetric algorithm, no HS*.
    pub const DEFAULT: [Alg; 9] =
        [Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512, Alg::ES256, Alg::ES384, Alg::EdDSA];

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
        }
    }

    /// The algorithm named by a token header or a JWK `alg`: exact, case-sensitive (RFC 7515
    /// 4.1.1). `Ed25519` (RFC 9864's fully-specified name) is read as `EdDSA`.
    pub fn from_jose(name: &str) -> Option<Alg> {
        if name == "Ed25519" {
            return Some(Alg::EdDSA);
        }
        Alg::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// An algorithm named in the configuration: case-insensitive; `none` is refused.
    pub fn parse_config(name: &str) -> Result<Alg, String> {
        if name.eq_ignore_ascii_case("none") {
            return Err("\"none\" is never accepted: unsigned tokens prove nothing".to_owned());
        }
        Alg::ALL.into_iter().find(|alg| alg.name().eq_ignore_ascii_case(name)).ok_or_else(|| {
            format!(
                "unknown algorithm \"{}\" (supported: {})",
                name.escape_default(),
                Alg::ALL.map(Alg::name).join(" ")
            )
        })
    }

    /// The HMAC algorithms, usable only with `oct` keys.
    pub fn is_hmac(self) -> bool {
        matches!(self, Alg::HS256 | Alg::HS384 | Alg::HS512)
    }
}

/// Token size limit applied when the configuration does not set one (bytes of the token).
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8192;
/// `tfgate_jwt_leeway` default.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

impl AsRef<str> for Alg {
    fn as_ref(&self) -> &str {
        self.name()
    }
}

/// The acceptance policy of one location.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Allowlist (`tfgate_jwt_algorithms`).
    pub algorithms: Vec<Alg>,
    /// Accepted `iss` values, exact; empty: not checked.
    pub issuers: Vec<String>,
    /// `aud` (string or array) must contain one of these; empty: not checked.
    pub audiences: Vec<String>,
    /// Clock skew tolerated for `exp`, `nbf` and `iat`.
    pub leeway_secs: u64,
    /// All required (from `scope` and/or `scp`); failure is 403.
    pub scopes: Vec<String>,
    /// `tfgate_jwt_require` rules, all must hold; failure is 403.
    pub rules: Vec<ClaimRule>,
    /// Required header `typ` (compared case-insensitively, `application/` prefix optional).
    pub typ: Option<String>,
    /// Tokens longer than this are refused without decoding.
    pub max_token_len: usize,
    /// Refuse tokens without a (non-empty string) `sub` (`tfgate_jwt_require_subject`): every
    /// caller must be someone for fairness, quotas and the audit trail. RFC 9068 access tokens
    /// always carry one.
    pub require_subject: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            algorithms: Alg::DEFAULT.to_vec(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            scopes: Vec::new(),
            rules: Vec::new(),
            typ: None,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            require_subject: true,
        }
    }
}

impl Policy {
    /// Parses the arguments of `tfgate_jwt_algorithms` (at least one; duplicates ignored).
    pub fn parse_algorithms(args: &[&str]) -> Result<Vec<Alg>, String> {
        if args.is_empty() {
            return Err("at least one algorithm is needed".to_owned());
        }
        let mut out = Vec::new();
        for arg in args {
            let alg = Alg::parse_config(arg)?;
            if !out.contains(&alg) {
                out.push(alg);
            }
        }
        Ok(out)
    }

    /// Whether the allowlist has `alg`.
    pub fn allows(&self, alg: Alg) -> bool {
        self.algorithms.contains(&alg)
    }

    /// A stable 64-bit digest of everything that affects acceptance (the first 8 bytes of a
    /// SHA-256 over a length-prefixed canonical encoding). Part of the verified-token cache key,
    /// so a token accepted under one location's policy is never a hit under another's.
    /// Compute it once per location at configuration time.
    pub fn fingerprint(&self) -> u64 {
        let mut out = Vec::with_capacity(256);
        put_list(&mut out, self.algorithms.iter().map(|a| a.name()));
        put_list(&mut out, self.issuers.iter().map(String::as_str));
        put_list(&mut out, self.audiences.iter().map(String::as_str));
        out.extend_from_slice(&self.leeway_secs.to_le_bytes());
        put_list(&mut out, self.scopes.iter().map(String::as_str));
        put_u64(&mut out, self.rules.len());
        for rule in &self.rules {
            rule.canonical(&mut out);
        }
        put_list(&mut out, self.typ.as_deref());
        put_u64(&mut out, self.max_token_len);
        put_u64(&mut out, usize::from(self.require_subject));
        let digest = digest::digest(&digest::SHA256, &out);
        let mut first = [0u8; 8];
        for (dst, src) in first.iter_mut().zip(digest.as_ref()) {
            *dst = *src;
        }
        u64::from_le_bytes(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alg_names_round_trip_and_none_is_refused() {
        for alg in Alg::ALL {
            assert_eq!(Alg::from_jose(alg.name()), Some(alg));
            assert_eq!(Alg::parse_config(&alg.name().to_lowercase()), Ok(alg));
        }
        assert_eq!(Alg::from_jose("rs256"), None, "token alg is case-sensitive");
        assert_eq!(Alg::from_jose("none"), None);
        assert_eq!(Alg::from_jose("Ed25519"), Some(Alg::EdDSA));
        for none in ["none", "None", "NONE"] {
            assert!(Alg::parse_config(none).unwrap_err().contains("never"));
        }
        assert!(Alg::parse_config("ES512").unwrap_err().contains("unknown algorithm"));
        assert!(Policy::parse_algorithms(&[]).is_err());
        assert_eq!(Policy::parse_algorithms(&["HS256", "hs256", "RS256"]), Ok(vec![Alg::HS256, Alg::RS256]));
    }

    #[test]
    fn default_policy_matches_the_spec() {
        let policy = Policy::default();
        assert_eq!(policy.algorithms, Alg::DEFAULT.to_vec());
        assert!(!policy.algorithms.iter().any(|a| a.is_hmac()));
        assert_eq!(policy.leeway_secs, 60);
    }

    #[test]
    fn fingerprint_changes_with_every_field() {
        let base = Policy::default();
        let fp = base.fingerprint();
        assert_eq!(fp, Policy::default().fingerprint(), "stable");
        type Change = Box<dyn Fn(&mut Policy)>;
        let variants: Vec<Change> = vec![
            Box::new(|p| p.algorithms.push(Alg::HS256)),
            Box::new(|p| p.issuers.push("a".into())),
            Box::new(|p| p.audiences.push("a".into())),
            Box::new(|p| p.leeway_secs = 0),
            Box::new(|p| p.scopes.push("a".into())),
            Box::new(|p| p.rules.push(ClaimRule::parse(&["x", "exists"]).unwrap())),
            Box::new(|p| p.typ = Some("JWT".into())),
            Box::new(|p| p.max_token_len = 10),
        ];
        for change in variants {
            let mut p = base.clone();
            change(&mut p);
            assert_ne!(p.fingerprint(), fp);
        }
        // Length prefixes: moving a boundary between list items changes the fingerprint.
        let mut a = base.clone();
        a.issuers = vec!["ab".into(), "c".into()];
        let mut b = base.clone();
        b.issuers = vec!["a".into(), "bc".into()];
        assert_ne!(a.fingerprint(), b.fingerprint());
        let mut c = base.clone();
        c.issuers = vec!["x".into()];
        let mut d = base;
        d.audiences = vec!["x".into()];
        assert_ne!(c.fingerprint(), d.fingerprint());
    }
}
