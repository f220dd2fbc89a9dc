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

/// A date for messages: `2026-12-06T21:33:35Z` (UTC, civil calendar from the day count).
pub fn show(at: SystemTime) -> String {
    let seconds = unix_seconds(at);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
