//! Calendar windows in UTC: the minute, hour, day or month holding an instant. A counter keeps
//! its window's end, so a new window starts from zero. Plain arithmetic on seconds since the
//! epoch; the proleptic Gregorian calendar, no leap seconds (as Unix time).

use super::limits::Window;

/// A window `[start, end)`, in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

const DAY: u64 = 86_400;

/// The window of kind `window` that holds `now` (seconds since the epoch).
pub fn span(window: Window, now: u64) -> Span {
    let fixed = |length: u64| Span { start: now - now % length, end: now - now % length + length };
    match window {
        Window::Minute => fixed(60),
        Window::Hour => fixed(3600),
        Window::Day => fixed(DAY),
        Window::Month => {
            let (year, month, _) = civil_from_days((now / DAY) as i64);
            let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
            Span {
                start: days_from_civil(year, month, 1) as u64 * DAY,
                end: days_from_civil(next_year, next_month, 1) as u64 * DAY,
            }
        }
    }
}

/// Year, month (1-12) and day (1-31) of a day counted from 1970-01-01. Years are counted in
/// 400-year eras of 146097 days, each year starting in March so that the leap day ends it.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // from 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-04-13T13:05:42Z.
    const NOW: u64 = 1_776_085_542;

    fn at(year: i64, month: u32, day: u32, hour: u64, minute: u64) -> u64 {
        days_from_civil(year, month, day) as u64 * DAY + hour * 3600 + minute * 60
    }

    #[test]
    fn fixed_windows_align_on_utc() {
        assert_eq!(at(2026, 4, 13, 13, 5) + 42, NOW);
        assert_eq!(span(Window::Minute, NOW), Span { start: at(2026, 4, 13, 13, 5), end: at(2026, 4, 13, 13, 6) });
        assert_eq!(span(Window::Hour, NOW), Span { start: at(2026, 4, 13, 13, 0), end: at(2026, 4, 13, 14, 0) });
        let day = span(Window::Day, NOW);
        assert_eq!(day, Span { start: at(2026, 4, 13, 0, 0), end: at(2026, 4, 14, 0, 0) });
        // The last second of a window still belongs to it; the next one starts the next.
        assert_eq!(span(Window::Day, day.end - 1), day);
        assert_eq!(span(Window::Day, day.end).start, day.end);
    }

    #[test]
    fn months_have_their_calendar_lengths() {
        assert_eq!(span(Window::Month, NOW), Span { start: at(2026, 4, 1, 0, 0), end: at(2026, 5, 1, 0, 0) });
        let length = |year, month| {
            let span = span(Window::Month, at(year, month, 10, 12, 0));
            (span.end - span.start) / DAY
        };
        // February of a leap year, of a century that is not one, of one that is.
        assert_eq!((length(2026, 4), length(2028, 2), length(2100, 2), length(2000, 2)), (30, 29, 28, 29));
        // December ends in the next year.
        assert_eq!(span(Window::Month, at(2026, 12, 31, 23, 59)).end, at(2027, 1, 1, 0, 0));
    }

    #[test]
    fn calendar_round_trips() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
