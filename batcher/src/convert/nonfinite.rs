//! NaN and infinities in request bodies. TF Serving parses JSON with NaN, Infinity, -Infinity
//! (and Inf, -Inf) allowed as bare tokens; serde_json refuses them. So before parsing, each such
//! token outside string literals is rewritten into a marker string that a client does not send
//! by accident (a DEL character, then `I` for +infinity or `-` for -infinity), and the float
//! conversion reads markers back as the value they stand for. Everywhere else a marker is
//! treated as the token it stands for.
//!
//! A marker is no longer than the token it replaces (`NaN` is `"\x7f"`, `Infinity` is
//! `"\x7fI"` and four spaces), so a body the daemon owns is rewritten in place, at no cost in
//! memory; only the short form `Inf` needs a copy.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

/// What a marker string starts with (DEL: valid unescaped in a JSON string, and never typed).
const MARK: char = '\u{7f}';

/// Tokens accepted, longest first so `Infinity` is not read as `Inf` + garbage.
const TOKENS: [&str; 5] = ["-Infinity", "-Inf", "Infinity", "Inf", "NaN"];

/// The marker of a token, as JSON text.
fn marker(token: &str) -> &'static [u8] {
    match token {
        "NaN" => b"\"\x7f\"",
        "Infinity" | "Inf" => b"\"\x7fI\"",
        _ => b"\"\x7f-\"",
    }
}

/// The body with non-finite tokens rewritten; borrowed when there are none (the usual case).
pub fn rewrite_nonfinite(body: &[u8]) -> Cow<'_, [u8]> {
    if Tokens::new(body).next().is_none() {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len() + Tokens::new(body).count());
    let mut copied = 0;
    for (at, token) in Tokens::new(body) {
        out.extend_from_slice(&body[copied..at]);
        out.extend_from_slice(marker(token));
        copied = at + token.len();
    }
    out.extend_from_slice(&body[copied..]);
    Cow::Owned(out)
}

/// A body the daemon owns, rewritten: in place when every marker fits its token (padded with
/// spaces), else copied (see [`copy_cost`]).
pub fn rewrite_owned(body: Bytes) -> Bytes {
    if Tokens::new(&body).next().is_none() {
        return body;
    }
    if copy_cost(&body) > 0 {
        return Bytes::from(rewrite_nonfinite(&body).into_owned());
    }
    let mut text: BytesMut = match body.try_into_mut() {
        Ok(text) => text,
        Err(shared) => BytesMut::from(&shared[..]),
    };
    // Rewritten as they are found: nothing is collected, whatever the number of tokens.
    let mut scanner = Scanner::default();
    while let Some((at, token)) = scanner.next(&text) {
        let marker = marker(token);
        text[at..at + marker.len()].copy_from_slice(marker);
        text[at + marker.len()..at + token.len()].fill(b' ');
    }
    text.freeze()
}

/// The bytes rewriting `body` allocates: none when it has no token or can be rewritten in
/// place, else the rewritten copy.
pub fn copy_cost(body: &[u8]) -> usize {
    survey(body).unwrap_or(0)
}

/// One scan of `body`: `None` when it holds no token (nothing to rewrite), else the bytes
/// rewriting it allocates (see [`copy_cost`]).
pub fn survey(body: &[u8]) -> Option<usize> {
    let (mut found, mut grows, mut size) = (false, false, body.len());
    for (_, token) in Tokens::new(body) {
        let marker = marker(token).len();
        found = true;
        grows |= marker > token.len();
        size = size + marker - token.len().min(marker);
    }
    found.then_some(if grows { size } else { 0 })
}

/// The non-finite tokens outside string literals: where each starts, and which it is.
struct Tokens<'a> {
    body: &'a [u8],
    scanner: Scanner,
}

impl<'a> Tokens<'a> {
    fn new(body: &'a [u8]) -> Tokens<'a> {
        Tokens { body, scanner: Scanner::default() }
    }
}

impl Iterator for Tokens<'_> {
    type Item = (usize, &'static str);

    fn next(&mut self) -> Option<(usize, &'static str)> {
        self.scanner.next(self.body)
    }
}

/// Where a scan of a body is: the next token is looked for from `at`. Kept apart from the body
/// so that the body can be rewritten between two tokens.
#[derive(Default)]
struct Scanner {
    at: usize,
    in_string: bool,
}

impl Scanner {
    /// Jumps from one byte that matters to the next (`memchr`: a body without a token, the
    /// usual case, is crossed at memory speed rather than byte by byte).
    fn next(&mut self, body: &[u8]) -> Option<(usize, &'static str)> {
        while self.at < body.len() {
            if self.in_string {
                let Some(found) = memchr::memchr2(b'\\', b'"', &body[self.at..]) else { break };
                let i = self.at + found;
                if body[i] == b'"' {
                    self.in_string = false;
                    self.at = i + 1;
                } else {
                    self.at = i + 2;
                }
                continue;
            }
            // Every token holds an `N` or an `I`; a `-` counts only before `Inf`.
            let Some(found) = memchr::memchr3(b'"', b'N', b'I', &body[self.at..]) else { break };
            let i = self.at + found;
            if body[i] == b'"' {
                self.in_string = true;
                self.at = i + 1;
                continue;
            }
            let signed = (i > self.at && body[i - 1] == b'-').then(|| i - 1);
            let token = signed.and_then(|start| token_at(&body[start..]).map(|token| (start, token)));
            if let Some((start, token)) = token.or_else(|| token_at(&body[i..]).map(|token| (i, token))) {
                self.at = start + token.len();
                return Some((start, token));
            }
            self.at = i + 1;
        }
        self.at = body.len();
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
pub fn marker_token(text: &str) -> Option<&'static str> {
    match text.strip_prefix(MARK)? {
        "" => Some("NaN"),
        "I" => Some("Infinity"),
        "-" => Some("-Infinity"),
        _ => None,
    }
}

/// The value of a marker.
pub fn marker_value(text: &str) -> Option<f64> {
    match marker_token(text)? {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        _ => Some(f64::NEG_INFINITY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The scan byte by byte, as it was before `memchr`: what the jumps must agree with.
    fn tokens_byte_by_byte(body: &[u8]) -> Vec<(usize, &'static str)> {
        let (mut found, mut at, mut in_string) = (Vec::new(), 0, false);
        while at < body.len() {
            let byte = body[at];
            if in_string {
                match byte {
                    b'\\' => at += 2,
                    b'"' => (in_string, at) = (false, at + 1),
                    _ => at += 1,
                }
                continue;
            }
            if byte == b'"' {
                in_string = true;
            } else if matches!(byte, b'N' | b'I' | b'-') {
                if let Some(token) = token_at(&body[at..]) {
                    found.push((at, token));
                    at += token.len();
                    continue;
                }
            }
            at += 1;
        }
        found
    }

    #[test]
    fn the_jumping_scan_finds_what_a_byte_by_byte_scan_finds() {
        let pieces: [&[u8]; 14] =
            [b"NaN", b"-", b"Inf", b"inity", b"I", b"N", b"\"", b"\\", b"\\\"", b" ", b"1", b"x", b",", b"-Inf"];
        let (mut seed, mut tokens) = (0x2545_f491_4f6c_dd1du64, 0);
        for _ in 0..20_000 {
            let mut body = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bits = seed;
            for _ in 0..(bits % 12) {
                bits = bits.rotate_right(5) ^ seed;
                body.extend_from_slice(pieces[(bits % pieces.len() as u64) as usize]);
            }
            let expected = tokens_byte_by_byte(&body);
            assert_eq!(Tokens::new(&body).collect::<Vec<_>>(), expected, "{:?}", String::from_utf8_lossy(&body));
            tokens += expected.len();
        }
        assert!(tokens > 5_000, "the bodies held too few tokens to tell: {tokens}");
    }

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
    fn owned_bodies_are_rewritten_in_place_unless_a_marker_does_not_fit() {
        let body = Bytes::from_static(br#"{"x": [NaN, Infinity, -Infinity, -Inf, "NaN", 1]}"#);
        assert_eq!(copy_cost(&body), 0);
        let rewritten = rewrite_owned(body.clone());
        assert_eq!(rewritten.len(), body.len(), "the same length");
        let v: Value = serde_json::from_slice(&rewritten).unwrap();
        let tokens: Vec<Option<&str>> =
            v["x"].as_array().unwrap().iter().map(|x| x.as_str().and_then(marker_token)).collect();
        assert_eq!(tokens, vec![Some("NaN"), Some("Infinity"), Some("-Infinity"), Some("-Infinity"), None, None]);
        assert_eq!(v["x"][4], "NaN", "a string is a string");
        // `Inf` has no room for its marker: copied, and the copy's size known first.
        let short = Bytes::from_static(b"[Inf, NaN]");
        let copied = rewrite_owned(short.clone());
        assert_eq!(copy_cost(&short), copied.len());
        let first = serde_json::from_slice::<Value>(&copied).unwrap()[0].as_str().and_then(marker_value);
        assert_eq!(first, Some(f64::INFINITY));
        assert_eq!(copy_cost(b"[1, 2]"), 0);
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
