//! Ed25519 public keys that verification must not trust: the points of small order (any
//! signature with R of small order and S = 0 "verifies" for them, so a token could be forged
//! for any subject) and non-canonical encodings (y >= p, which strict verifiers refuse). Weak RSA
//! keys and EC points off the curve are refused at load in the same spirit.

/// The compressed key as JWK `x` or the last 32 bytes of an SPKI.
pub const KEY_LEN: usize = 32;

/// y coordinates (little endian, sign bit clear) of the points of order 1, 2, 4 and 8: the
/// torsion subgroup. The two of order 8 solve d y^4 + 2 y^2 - 1 = 0 on the curve.
const SMALL_ORDER_Y: [[u8; KEY_LEN]; 5] = [
    // y = 0: order 4 (x = +-sqrt(-1))
    [0; KEY_LEN],
    // y = 1: the identity
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    // y = p - 1: order 2
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    // order 8
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf,
        0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
    ],
    // order 8
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20,
        0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
    ],
];

/// p = 2^255 - 19, little endian.
const P: [u8; KEY_LEN] = [
    0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
];

/// Refuses a small-order or non-canonical compressed Ed25519 public key.
pub fn check_public_key(key: &[u8; KEY_LEN]) -> Result<(), String> {
    let mut y = *key;
    y[KEY_LEN - 1] &= 0x7f;
    if !less_than(&y, &P) {
        return Err("Ed25519 key is not canonically encoded".to_owned());
    }
    if SMALL_ORDER_Y.contains(&y) {
        return Err("Ed25519 key has small order (it would accept forged signatures)".to_owned());
    }
    Ok(())
}

/// a < b for little-endian numbers of equal length.
fn less_than(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> bool {
    for i in (0..KEY_LEN).rev() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_order_points_are_refused_with_either_sign() {
        for y in SMALL_ORDER_Y {
            assert!(check_public_key(&y).unwrap_err().contains("small order"));
            let mut negative = y;
            negative[KEY_LEN - 1] |= 0x80;
            assert!(check_public_key(&negative).is_err(), "{negative:?}");
        }
    }

    #[test]
    fn non_canonical_encodings_are_refused() {
        let mut p_plus_one = P;
        p_plus_one[0] += 1;
        assert!(check_public_key(&P).unwrap_err().contains("canonical"));
        assert!(check_public_key(&p_plus_one).unwrap_err().contains("canonical"));
        assert!(check_public_key(&[0xff; KEY_LEN]).is_err());
    }

    #[test]
    fn real_keys_pass() {
        // RFC 8032 test vector 1's public key.
        let key: [u8; KEY_LEN] = [
            0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1,
            0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
        ];
        assert_eq!(check_public_key(&key), Ok(()));
    }
}
