//! Refusals in gRPC's terms: the status code a gRPC client sees for each of the module's HTTP
//! refusals, and `grpc-message`'s percent-encoding.

/// The gRPC status for a refusal the module words as an HTTP status (the spec's mapping:
/// no/invalid token 16, scope 7, unknown model/version/label 5, malformed 3, limits 8,
/// deadline 4, unavailable 14).
pub fn grpc_code_for_http(status: u16) -> u32 {
    match status {
        400 => 3,
        401 => 16,
        403 => 7,
        404 => 5,
        405 | 501 => 12,
        408 | 504 => 4,
        413 | 429 => 8,
        499 => 1,
        502 | 503 => 14,
        _ => 13,
    }
}

/// `grpc-message` as the gRPC protocol wants it: UTF-8, with every byte outside printable
/// ASCII, and `%` itself, percent-encoded.
pub fn percent_encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        assert_eq!(
            [400, 401, 403, 404, 413, 429, 500, 503, 504].map(grpc_code_for_http),
            [3, 16, 7, 5, 8, 8, 13, 14, 4]
        );
        assert_eq!(percent_encode_message("model \"m\" 100% ok\né"), "model \"m\" 100%25 ok%0A%C3%A9");
    }
}
