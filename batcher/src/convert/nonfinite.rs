//! NaN and infinities in request bodies. TF Serving parses JSON with NaN, Infinity, -Infinity
//! (and Inf, -Inf) allowed as bare tokens; serde_json refuses them. So before parsing, each such
//! token outside string literals is rewritten into a marker string that a client does not send
//! by accident (it starts with a NUL character), and the float conversion reads markers back as
//! the value they stand for. Everywhere else a marker is treated as the token it was. Markers
//! are short (`NaN` becomes 10 bytes), so a body of NaNs grows by a bounded factor.

use std::borrow::Cow;

/// What a marker string starts with; the token follows.
const MARKER_PREFIX: &str = "\u{0}";
/// The same prefix as JSON text, as it is written into the body.
const MARKER_JSON_PREFIX: &[u8] = br#""\u0000"#;

/// Tokens accepted, longest first so `Infinity` is not read as `Inf` + garbage.
const TOKENS: [&str; 5] = ["-Infinity", "-Inf", "Infinity", "Inf", "NaN"];

/// The body with non-finite tokens rewritten; borrowed when there are none (the usual case).
pub fn rewrite_nonfinite(body: &[u8]) -> Cow<'_, [u8]> {
    let size = rewritten_size(body);
    if size == 0 {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(size);
    let mut copied = 0;
    for (at, token) in Tokens::new(body) {
        out.extend_from_slice(&body[copied..at]);
        out.extend_from_slice(MARKER_JSON_PREFIX);
        out.extend_from_slice(token.as_bytes());
        out.push(b'"');
        copied = at + token.len();
    }
    out.extend_from_slice(&body[copied..]);
    Cow::Owned(out)
}

/// The bytes the rewritten copy of `body` takes; 0 when it needs none.
pub fn rewritten_size(body: &[u8]) -> usize {
    let markers = Tokens::new(body).count();
    if markers == 0 {
        return 0;
    }
    // Each marker adds its prefix and closing quote to the token it replaces.
    body.len() + markers * (MARKER_JSON_PREFIX.len() + 1)
}

/// The non-finite tokens outside string literals: where each starts, and which it is.
struct Tokens<'a> {
    body: &'a [u8],
    at: usize,
    in_string: bool,
}

impl<'a> Tokens<'a> {
    fn new(body: &'a [u8]) -> Tokens<'a> {
        Tokens { body, at: 0, in_string: false }
    }
}

impl Iterator for Tokens<'_> {
    type Item = (usize, &'static str);

    fn next(&mut self) -> Option<(usize, &'static str)> {
        while self.at < self.body.len() {
            let i = self.at;
            let byte = self.body[i];
            if self.in_string {
                match byte {
                    b'\\' => self.at += 2,
                    b'"' => {
                        self.in_string = false;
                        self.at += 1;
                    }
                    _ => self.at += 1,
                }
                continue;
            }
            if byte == b'"' {
                self.in_string = true;
            } else if matches!(byte, b'N' | b'I' | b'-') {
                if let Some(token) = token_at(&self.body[i..]) {
                    self.at += token.len();
                    return Some((i, token));
                }
            }
            self.at += 1;
        }
        None
    }
}

/// The token starting `text`, when it is a whole word.
fn token_at(text: &[u8]) -> Option<&'static str> {
    TOKENS.into_iter().find(|token| {
        text.starts_with(token.as_bytes())
            && !text.get(token.len()).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    })
}

/// The token a marker stands for (`"NaN"`, `"-Infinity"`...), for values and messages.
pub fn marker_token(text: &str) -> Option<&str> {
    text.strip_prefix(MARKER_PREFIX)
}

/// The value of a marker.
pub fn marker_value(text: &str) -> Option<f64> {
    match marker_token(text)? {
        "NaN" => Some(f64::NAN),
        "Infinity" | "Inf" => Some(f64::INFINITY),
        "-Infinity" | "-Inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(body: &str) -> Value {
        serde_json::from_slice(&rewrite_nonfinite(body.as_bytes())).unwrap()
    }

    #[test]
    fn tokens_outside_strings_become_markers() {
        let v = parse(r#"{"instances": [NaN, Infinity, -Infinity, -Inf, Inf, 1]}"#);
        let values: Vec<Option<f64>> = v["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().and_then(marker_value).or(x.as_f64()))
            .collect();
        assert!(values[0].unwrap().is_nan());
        assert_eq!(
            &values[1..],
            &[Some(f64::INFINITY), Some(f64::NEG_INFINITY), Some(f64::NEG_INFINITY), Some(f64::INFINITY), Some(1.0)]
        );
    }

    #[test]
    fn strings_and_ordinary_bodies_are_untouched() {
        let body = br#"{"instances": ["NaN", "a\"NaN", -1.5e3]}"#;
        assert!(matches!(rewrite_nonfinite(body), Cow::Borrowed(_)));
        let v = parse(r#"{"s": "Infinity \\", "x": [NaN]}"#);
        assert_eq!(v["s"], "Infinity \\");
        assert_eq!(marker_token(v["x"][0].as_str().unwrap()), Some("NaN"));
    }

    #[test]
    fn the_copy_is_sized_before_it_is_made() {
        for body in [&br#"[NaN, -Infinity, "NaN", Inf]"#[..], b"[1, 2]", b"NaN"] {
            let rewritten = rewrite_nonfinite(body);
            let expected = if matches!(rewritten, Cow::Borrowed(_)) { 0 } else { rewritten.len() };
            assert_eq!(rewritten_size(body), expected, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn partial_words_are_not_tokens() {
        let body = br#"{"x": NaNa}"#;
        assert!(matches!(rewrite_nonfinite(body), Cow::Borrowed(_)));
        assert!(serde_json::from_slice::<Value>(&rewrite_nonfinite(b"[Infinityy]")).is_err());
        // A truncated escape at the end never reads past the body.
        let _ = rewrite_nonfinite(b"\"\\");
    }
}
