//! The smallest DER encoder that can write a PKCS#1 `RSAPublicKey` (RFC 8017 A.1.1):
//! `SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.

const TAG_INTEGER: u8 = 0x02;
const TAG_SEQUENCE: u8 = 0x30;

/// Encodes an RSA public key from the big-endian unsigned `n` and `e` of a JWK. Leading zero
/// bytes are tolerated (stripped); `None` if either is zero.
pub fn rsa_public_key(n: &[u8], e: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::with_capacity(n.len().saturating_add(e.len()).saturating_add(16));
    put_unsigned(&mut body, n)?;
    put_unsigned(&mut body, e)?;
    let mut out = Vec::with_capacity(body.len().saturating_add(6));
    put_header(&mut out, TAG_SEQUENCE, body.len());
    out.extend_from_slice(&body);
    Some(out)
}

/// A positive INTEGER: minimal, with a 0x00 prefix when the high bit is set.
fn put_unsigned(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    let start = bytes.iter().position(|b| *b != 0)?;
    let digits = bytes.get(start..)?;
    let high_bit = digits.first().is_some_and(|b| b & 0x80 != 0);
    put_header(out, TAG_INTEGER, digits.len().saturating_add(usize::from(high_bit)));
    if high_bit {
        out.push(0);
    }
    out.extend_from_slice(digits);
    Some(())
}

/// Tag and definite length (short form below 128, else long form).
fn put_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
    let significant = bytes.get(first..).unwrap_or(&[]);
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_small_and_long_forms() {
        assert_eq!(rsa_public_key(&[0x01], &[0x03]), Some(vec![0x30, 6, 2, 1, 1, 2, 1, 3]));
        // High bit set: a zero byte keeps the INTEGER positive; leading zeros are stripped.
        assert_eq!(rsa_public_key(&[0, 0, 0x80], &[1, 0, 1]), Some(vec![0x30, 9, 2, 2, 0, 0x80, 2, 3, 1, 0, 1]));
        assert_eq!(rsa_public_key(&[0, 0], &[3]), None);
        assert_eq!(rsa_public_key(&[], &[3]), None);
        let n = vec![0xff; 256];
        let der = rsa_public_key(&n, &[1, 0, 1]).unwrap();
        // 257-byte INTEGER (4-byte header) + 5-byte exponent = 266 = 0x010a.
        assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x0a]);
        assert_eq!(&der[4..9], &[0x02, 0x82, 0x01, 0x01, 0x00]);
        assert_eq!(der.len(), 270);
        let mut out = Vec::new();
        put_header(&mut out, 4, 0x80);
        assert_eq!(out, vec![4, 0x81, 0x80]);
    }
}
