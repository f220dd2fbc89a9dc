//! Limits as an operator writes them: `"20/s"` (a rate, for the token bucket) and `"10000/day"`
//! (a count per calendar window). Parsing only; what they mean over time is in `bucket` and
//! `calendar`.

/// Largest count or burst accepted. Counters are summed in Redis's Lua, whose numbers are
/// doubles: below 2^53 every sum is exact, and 10^15 leaves room for the rows of a request.
pub const MAX_COUNT: u64 = 1_000_000_000_000_000;

/// The period of a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Second,
    Minute,
    Hour,
    Day,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Second => "second",
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
        }
    }

    pub fn micros(self) -> u64 {
        match self {
            Period::Second => 1_000_000,
            Period::Minute => 60_000_000,
            Period::Hour => 3_600_000_000,
            Period::Day => 86_400_000_000,
        }
    }

    fn parse(unit: &str) -> Option<Period> {
        match unit {
            "s" | "sec" | "second" => Some(Period::Second),
            "min" | "minute" => Some(Period::Minute),
            "h" | "hour" => Some(Period::Hour),
            "d" | "day" => Some(Period::Day),
            _ => None,
        }
    }
}

/// A calendar window (UTC): counters start from zero when the next one begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Window {
    Minute,
    Hour,
    Day,
    Month,
}

impl Window {
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    fn parse(unit: &str) -> Option<Window> {
        match unit {
            "min" | "minute" => Some(Window::Minute),
            "h" | "hour" => Some(Window::Hour),
            "d" | "day" => Some(Window::Day),
            "month" => Some(Window::Month),
            _ => None,
        }
    }
}

/// `count` per `period`, e.g. `"20/s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    pub count: u64,
    pub period: Period,
}

/// `count` per calendar `window`, e.g. `"10000/day"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSpec {
    pub count: u64,
    pub window: Window,
}

pub fn parse_rate(text: &str) -> Result<RateSpec, String> {
    let (count, unit) = split(text, "20/s")?;
    let period = Period::parse(unit).ok_or_else(|| {
        format!("{text:?}: the period must be s, minute, hour or day (e.g. \"20/s\", \"600/minute\")")
    })?;
    Ok(RateSpec { count, period })
}

pub fn parse_quota(text: &str) -> Result<QuotaSpec, String> {
    let (count, unit) = split(text, "10000/day")?;
    let window = Window::parse(unit).ok_or_else(|| {
        format!("{text:?}: the window must be minute, hour, day or month (calendar windows, UTC; e.g. \"10000/day\")")
    })?;
    Ok(QuotaSpec { count, window })
}

/// Accelerator time per calendar window, e.g. `"60s/hour"`, `"90m/day"`, `"1h/month"`: the
/// count is in microseconds.
pub fn parse_compute(text: &str) -> Result<QuotaSpec, String> {
    let example = "(e.g. \"60s/hour\", \"90m/day\", \"1h/month\")";
    let Some((amount, unit)) = text.trim().split_once('/') else {
        return Err(format!("{text:?}: expected TIME/WINDOW {example}"));
    };
    let amount = amount.trim();
    let split_at = amount.find(|c: char| !c.is_ascii_digit() && c != '_').unwrap_or(amount.len());
    let (digits, time_unit) = amount.split_at(split_at);
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    let per_unit: u64 = match time_unit {
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" | "min" => 60_000_000,
        "h" => 3_600_000_000,
        _ => return Err(format!("{text:?}: the time needs a unit, ms, s, m or h {example}")),
    };
    let count = match digits.parse::<u64>().ok().and_then(|n| n.checked_mul(per_unit)) {
        Some(n) if (1..=MAX_COUNT).contains(&n) => n,
        _ => return Err(format!("{text:?}: the time must be a whole number of {time_unit}, more than 0")),
    };
    let window = Window::parse(unit.trim())
        .ok_or_else(|| format!("{text:?}: the window must be minute, hour, day or month {example}"))?;
    Ok(QuotaSpec { count, window })
}

/// `COUNT/UNIT`, with `_` allowed between digits (`"10_000/day"`).
fn split<'a>(text: &'a str, example: &str) -> Result<(u64, &'a str), String> {
    let Some((count, unit)) = text.trim().split_once('/') else {
        return Err(format!("{text:?}: expected COUNT/UNIT, e.g. \"{example}\""));
    };
    let digits: String = count.trim().chars().filter(|&c| c != '_').collect();
    let count = match digits.parse::<u64>() {
        Ok(n) if (1..=MAX_COUNT).contains(&n) && digits.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => return Err(format!("{text:?}: the count must be a whole number from 1 to {MAX_COUNT}")),
    };
    Ok((count, unit.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_quotas_parse() {
        assert_eq!(parse_rate("20/s"), Ok(RateSpec { count: 20, period: Period::Second }));
        assert_eq!(parse_rate(" 600 / minute "), Ok(RateSpec { count: 600, period: Period::Minute }));
        assert_eq!(parse_rate("1/day"), Ok(RateSpec { count: 1, period: Period::Day }));
        assert_eq!(parse_quota("10_000/day"), Ok(QuotaSpec { count: 10_000, window: Window::Day }));
        assert_eq!(parse_quota("5/month"), Ok(QuotaSpec { count: 5, window: Window::Month }));
        assert_eq!(parse_quota("7/min").unwrap().window, Window::Minute);
        assert_eq!(parse_quota("7/h").unwrap().window, Window::Hour);
        assert_eq!(parse_compute("60s/hour"), Ok(QuotaSpec { count: 60_000_000, window: Window::Hour }));
        assert_eq!(parse_compute("90m/day"), Ok(QuotaSpec { count: 5_400_000_000, window: Window::Day }));
        assert_eq!(parse_compute("250ms/minute").unwrap().count, 250_000);
        for bad in ["60/hour", "0s/hour", "1x/day", "5s/s", "s/hour"] {
            assert!(parse_compute(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mistakes_are_explained() {
        for bad in ["20", "0/s", "-1/s", "1.5/s", "x/s", "20/fortnight", "20/ms", "+3/s", "99999999999999999/s", ""] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        // A month is no rate period, a second no calendar window.
        assert!(parse_rate("5/month").unwrap_err().contains("s, minute, hour or day"));
        assert!(parse_quota("5/s").unwrap_err().contains("minute, hour, day or month"));
        assert!(parse_quota("0/day").unwrap_err().contains("from 1"));
    }
}
