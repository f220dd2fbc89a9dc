//! When certificates stop being valid: the earliest `notAfter` of the certificates in a PEM
//! file, read with the X.509 types of RustCrypto (rustls checks validity but does not expose it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_cert::der::Decode;
use x509_cert::Certificate;

/// The `notAfter` of one DER certificate.
pub fn not_after(der: &[u8]) -> Result<SystemTime, String> {
    let certificate = Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(UNIX_EPOCH + certificate.tbs_certificate.validity.not_after.to_unix_duration())
}

/// The earliest `notAfter` of `ders` (`None` for none).
pub fn earliest_not_after<'a>(ders: impl IntoIterator<Item = &'a [u8]>) -> Result<Option<SystemTime>, String> {
    let mut earliest: Option<SystemTime> = None;
    for der in ders {
        let at = not_after(der)?;
        earliest = Some(earliest.map_or(at, |e| e.min(at)));
    }
    Ok(earliest)
}

/// Seconds since the Unix epoch, as Prometheus's `*_timestamp_seconds` convention wants.
pub fn unix_seconds(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

/// A date for messages: `2026-12-06T21:33:35Z` (UTC).
pub fn show(at: SystemTime) -> String {
    crate::clock::rfc3339_seconds(at)
}

/// How long until `at` from `now`; zero once passed.
pub fn remaining(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_shown_in_utc() {
        assert_eq!(show(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(show(UNIX_EPOCH + Duration::from_secs(1_796_592_815)), "2026-12-06T21:33:35Z");
        assert_eq!(show(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(not_after(b"\x30\x03\x02\x01\x00").unwrap_err().contains("not an X.509 certificate"));
        assert_eq!(earliest_not_after(std::iter::empty()).unwrap(), None);
    }
}
