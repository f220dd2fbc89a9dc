//! Wall-clock times as logs and messages write them: RFC 3339 in UTC to the microsecond
//! (`2025-01-02T03:04:05.000006Z`) or to the second (`2025-01-02T03:04:05Z`, certificate
//! expiries), and the compact form used in file names (`20250102T030405.000006Z`), which sorts
//! in time order.

use std::time::{SystemTime, UNIX_EPOCH};

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    micros: u32,
}

fn civil(time: SystemTime) -> Civil {
    // Before 1970 only with a clock set wrong: written as the epoch.
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = date_of_day(days as i64);
    Civil {
        year,
        month,
        day,
        hour: rest / 3600,
        minute: rest % 3600 / 60,
        second: rest % 60,
        micros: since.subsec_micros(),
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn date_of_day(days: i64) -> (i64, u32, u32) {
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

/// `2025-01-02T03:04:05.000006Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let c = civil(time);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", c.year, c.month, c.day, c.hour, c.minute, c.second, c.micros)
}

/// `2025-01-02T03:04:05Z`.
pub fn rfc3339_seconds(time: SystemTime) -> String {
    let c = civil(time);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// Writes RFC 3339 times into a buffer, formatting the date and time of day once per second
/// (the audit writer writes tens of thousands of records a second).
#[derive(Default)]
pub struct Rfc3339Writer {
    second: Option<u64>,
    /// `2025-01-02T03:04:05` of `second`.
    prefix: String,
}

impl Rfc3339Writer {
    /// Appends `2025-01-02T03:04:05.000006Z`.
    pub fn write(&mut self, time: SystemTime, out: &mut Vec<u8>) {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        if self.second != Some(since.as_secs()) {
            let c = civil(time);
            self.prefix =
                format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second);
            self.second = Some(since.as_secs());
        }
        out.extend_from_slice(self.prefix.as_bytes());
        let micros = since.subsec_micros();
        out.push(b'.');
        for shift in [100_000, 10_000, 1000, 100, 10, 1] {
            out.push(b'0' + (micros / shift % 10) as u8);
        }
        out.push(b'Z');
    }
}

/// `20250102T030405.000006Z`.
pub fn compact(time: SystemTime) -> String {
    let c = civil(time);
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z", c.year, c.month, c.day, c.hour, c.minute, c.second, c.micros)
}

/// Whole seconds since the epoch.
pub fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, micros: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros)
    }

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000000Z");
        // `date -u -d @951782400`: a leap day of a century divisible by 400.
        assert_eq!(rfc3339(at(951_782_400, 5)), "2000-02-29T00:00:00.000005Z");
        assert_eq!(rfc3339(at(1_735_787_045, 123_456)), "2025-01-02T03:04:05.123456Z");
        assert_eq!(rfc3339(at(4_107_542_399, 999_999)), "2100-02-28T23:59:59.999999Z");
        assert_eq!(compact(at(1_735_787_045, 6)), "20250102T030405.000006Z");
        assert_eq!(unix_seconds(at(1_735_787_045, 6)), 1_735_787_045);
    }

    #[test]
    fn the_cached_writer_writes_what_rfc3339_does() {
        let mut writer = Rfc3339Writer::default();
        for (secs, micros) in [(1_735_787_045, 123_456), (1_735_787_045, 7), (1_735_787_046, 999_999), (0, 0)] {
            let mut out = Vec::new();
            writer.write(at(secs, micros), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), rfc3339(at(secs, micros)));
        }
    }

    #[test]
    fn every_day_follows_the_one_before() {
        // Day by day over 1970..2200: the date advances by exactly one day each time.
        let mut previous = date_of_day(0);
        for day in 1..(230 * 366) {
            let next = date_of_day(day);
            let (y, m, d) = previous;
            let expected_next_day = (y, m, d + 1);
            let new_month = (y, m + 1, 1);
            let new_year = (y + 1, 1, 1);
            assert!(next == expected_next_day || next == new_month || next == new_year, "{previous:?} -> {next:?}");
            previous = next;
        }
    }
}
