//! Names of the trusted headers the module sets on requests it passes to the daemon.
//!
//! Any client-sent header with [`TRUSTED_PREFIX`] is removed by the module before these are set,
//! so the daemon may believe them.

pub const TRUSTED_PREFIX: &str = "x-tfgate-";
pub const SUBJECT: &str = "X-Tfgate-Subject";
/// Longest subject in [`SUBJECT`], in bytes. Quotas, fair queues and the audit trail key on the
/// subject whole, so a longer one is refused (the module refuses such a token, the daemon such a
/// header) rather than cut: two subjects sharing their first bytes would share one identity.
pub const MAX_SUBJECT_BYTES: usize = 256;
pub const MODEL: &str = "X-Tfgate-Model";
pub const VERSION: &str = "X-Tfgate-Version";
pub const LABEL: &str = "X-Tfgate-Label";
pub const METHOD: &str = "X-Tfgate-Method";
/// On an unversioned status request: the versions the catalog exposes (`1,2`), so that the
/// daemon lists only those.
pub const VERSIONS: &str = "X-Tfgate-Versions";
/// The caller's plan of limits (quotas), set by the location from a claim.
pub const PLAN: &str = "X-Tfgate-Plan";
/// The client address, set by the shipped proxy snippet: the caller of a request without a
/// subject (anonymous callers get their fair share and quotas by address).
pub const CLIENT: &str = "X-Tfgate-Client";
/// Request id carried from nginx (`$request_id`) into the daemon's logs.
pub const REQUEST_ID: &str = "X-Request-Id";

/// True when `name` (any case) belongs to tfgate's trusted namespace.
pub fn is_trusted_name(name: &[u8]) -> bool {
    name.len() >= TRUSTED_PREFIX.len() && name[..TRUSTED_PREFIX.len()].eq_ignore_ascii_case(TRUSTED_PREFIX.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_names_match_in_any_case() {
        assert!(is_trusted_name(b"X-TFGATE-Version"));
        assert!(is_trusted_name(b"x-tfgate-subject"));
        assert!(!is_trusted_name(b"x-tfgat"));
        assert!(!is_trusted_name(b"Authorization"));
    }
}
