//! The version numbers of the wire contract between the module and the daemon: `/versions/N` in
//! a REST path, `versions=` and label versions in the catalog, and the trusted
//! `X-Tfgate-Version` / `X-Tfgate-Versions` headers. One grammar, so that both sides can never
//! read a number differently: ASCII digits only (no sign, no spaces), at most 19 of them, and
//! within `i64`.

/// Most digits a version may have (`i64::MAX` has 19).
const MAX_DIGITS: usize = 19;

/// A version number, or `None` when `raw` is not one.
pub fn parse_version(raw: &[u8]) -> Option<i64> {
    if raw.is_empty() || raw.len() > MAX_DIGITS || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Digits only, at most 19: parsing can only fail by overflowing i64.
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// A comma-separated list of versions (`X-Tfgate-Versions: 1,2`), or `None` if any item is not
/// a version.
pub fn parse_version_list(raw: &[u8]) -> Option<Vec<i64>> {
    raw.split(|&b| b == b',').map(parse_version).collect()
}

/// The list as [`parse_version_list`] reads it.
pub fn format_version_list(versions: &[i64]) -> String {
    let items: Vec<String> = versions.iter().map(i64::to_string).collect();
    items.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_only_within_i64() {
        assert_eq!(parse_version(b"0"), Some(0));
        assert_eq!(parse_version(b"42"), Some(42));
        assert_eq!(parse_version(b"9223372036854775807"), Some(i64::MAX));
        for bad in [&b""[..], b"-1", b"+1", b" 1", b"1 ", b"1.0", b"x", b"9223372036854775808", b"00000000000000000001"]
        {
            assert_eq!(parse_version(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn lists_round_trip() {
        assert_eq!(parse_version_list(b"1,2,10"), Some(vec![1, 2, 10]));
        assert_eq!(parse_version_list(format_version_list(&[3, 7]).as_bytes()), Some(vec![3, 7]));
        assert_eq!(parse_version_list(b"1,,2"), None);
        assert_eq!(parse_version_list(b""), None);
    }
}
