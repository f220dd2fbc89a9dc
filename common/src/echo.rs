//! Request values in messages. A client may learn what was wrong with what it sent (a short,
//! char-safe prefix of the offending value, as TF Serving's own messages quote it); the logs
//! never keep request values, whatever the message says.
//!
//! A message is built once, with every request-supplied piece passed through [`quote`]. The
//! pieces are marked so that each reader gets its own form of the one message:
//! [`for_client`] keeps the (clipped) pieces, [`for_log`] replaces each by its length. The
//! markers are Unicode private-use characters; any a client sent are removed before marking,
//! so a value can neither close its mark early nor open one.

use std::borrow::Cow;

/// Most bytes of one request value quoted to a client.
pub const QUOTED_BYTES: usize = 64;

const OPEN: char = '\u{F8FE}';
const CLOSE: char = '\u{F8FF}';

/// `value` as a piece of a message: at most [`QUOTED_BYTES`] of it (cut on a character
/// boundary, with `...` when cut), marked as the client's.
pub fn quote(value: &str) -> String {
    let clipped = clip(value, QUOTED_BYTES);
    mark(clipped, clipped.len() < value.len())
}

/// As [`quote`], for bytes that may not be UTF-8 (a header, a protobuf string).
pub fn quote_bytes(value: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&value[..value.len().min(QUOTED_BYTES)]);
    let clipped = clip(&shown, QUOTED_BYTES);
    mark(clipped, value.len() > QUOTED_BYTES || clipped.len() < shown.len())
}

fn mark(shown: &str, cut: bool) -> String {
    let mut out = String::with_capacity(shown.len() + 2 * OPEN.len_utf8() + 3);
    out.push(OPEN);
    out.extend(shown.chars().filter(|&c| c != OPEN && c != CLOSE));
    if cut {
        out.push_str("...");
    }
    out.push(CLOSE);
    out
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The message as the client gets it: the quoted pieces as they were clipped.
pub fn for_client(message: &str) -> Cow<'_, str> {
    if !message.contains([OPEN, CLOSE]) {
        return message.into();
    }
    message.replace([OPEN, CLOSE], "").into()
}

/// The message as logs keep it: each quoted piece replaced by `<N bytes>` (its clipped length).
pub fn for_log(message: &str) -> Cow<'_, str> {
    if !message.contains([OPEN, CLOSE]) {
        return message.into();
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(OPEN) {
        out.push_str(&rest[..open].replace(CLOSE, ""));
        let inside = &rest[open + OPEN.len_utf8()..];
        let (piece, after) = match inside.find(CLOSE) {
            Some(close) => (&inside[..close], &inside[close + CLOSE.len_utf8()..]),
            None => (inside, ""),
        };
        out.push_str(&format!("<{} bytes>", piece.len()));
        rest = after;
    }
    out.push_str(&rest.replace(CLOSE, ""));
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_see_a_short_prefix_and_logs_see_none() {
        let message = format!("JSON Value: {} is not of expected type: float", quote("\"SSN-123-45-6789\""));
        assert_eq!(for_client(&message), "JSON Value: \"SSN-123-45-6789\" is not of expected type: float");
        assert_eq!(for_log(&message), "JSON Value: <17 bytes> is not of expected type: float");
        let long = "k".repeat(3 << 20);
        let message = format!("input {} is unknown", quote(&long));
        assert!(for_client(&message).len() < 100, "{}", for_client(&message).len());
        assert!(for_log(&message).len() < 40);
    }

    #[test]
    fn cuts_are_char_safe() {
        let name = format!("{}é{}", "a".repeat(QUOTED_BYTES - 1), "b".repeat(100_000));
        let client = for_client(&quote(&name)).into_owned();
        assert_eq!(client, format!("{}...", "a".repeat(QUOTED_BYTES - 1)));
        assert_eq!(clip("ééé", 3), "é");
        let bytes = [&b"x"[..], &[0xff; 200][..]].concat();
        assert!(for_client(&quote_bytes(&bytes)).ends_with("..."));
    }

    #[test]
    fn markers_sent_by_a_client_cannot_unmask_a_value() {
        let sneaky = format!("a{CLOSE} secret {OPEN}b");
        let message = format!("bad {} here", quote(&sneaky));
        assert_eq!(for_log(&message), "bad <10 bytes> here");
        assert_eq!(for_client(&message), "bad a secret b here");
        assert_eq!(for_log("plain"), "plain");
    }
}
