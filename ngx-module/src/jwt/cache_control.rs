//! The one piece of HTTP caching a JWKS fetch needs: `Cache-Control: max-age`.

/// `max-age=N` of a `Cache-Control` header value, in seconds.
pub fn max_age_of(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    text.split(',').find_map(|directive| {
        let (name, age) = directive.trim().split_once('=')?;
        name.trim().eq_ignore_ascii_case("max-age").then(|| age.trim().trim_matches('"').parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::max_age_of;

    #[test]
    fn max_age_among_other_directives() {
        assert_eq!(max_age_of(b"public, max-age=300, must-revalidate"), Some(300));
        assert_eq!(max_age_of(b"Max-Age=\"60\""), Some(60));
        assert_eq!(max_age_of(b"no-store"), None);
        assert_eq!(max_age_of(b"max-age=-1"), None);
    }
}
