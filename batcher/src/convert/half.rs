//! 16-bit floats (DT_HALF: IEEE 754 binary16; DT_BFLOAT16: the top half of an f32), carried as
//! `f32` inside the daemon and converted at the protobuf boundary, where TensorFlow stores their
//! bit patterns in `half_val` (one per int32) or as 2 little-endian bytes in `tensor_content`.
//! Conversions round to nearest, ties to even, like TensorFlow's own.

/// f32 -> binary16 bits; values beyond the half range become infinities.
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x7f_ffff;
    if exp == 0xff {
        let nan_payload = if mant != 0 { 0x200 | (mant >> 13) as u16 } else { 0 };
        return sign | 0x7c00 | nan_payload;
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal half (or zero): shift the mantissa, implicit bit included, into place.
        if e < -10 {
            return sign;
        }
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rounded = (m + half - 1 + ((m >> shift) & 1)) >> shift;
        return sign | rounded as u16;
    }
    let kept = mant >> 13;
    let rest = mant & 0x1fff;
    let mut out = ((e as u32) << 10) | kept;
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    if rest > 0x1000 || (rest == 0x1000 && kept & 1 == 1) {
        out += 1;
    }
    sign | out as u16
}

/// binary16 bits -> f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalise it.
            let mut e: u32 = 127 - 15 + 1;
            let mut m = mant;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (mant << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (mant << 13),
    };
    f32::from_bits(bits)
}

/// f32 -> bfloat16 bits.
pub fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let lsb = (bits >> 16) & 1;
    (bits.wrapping_add(0x7fff + lsb) >> 16) as u16
}

/// bfloat16 bits -> f32 (exact).
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_round_trips_and_rounds() {
        for (x, bits) in [
            (0.0f32, 0x0000u16),
            (-0.0, 0x8000),
            (1.0, 0x3c00),
            (-2.0, 0xc000),
            (0.5, 0x3800),
            (65504.0, 0x7bff),
            (6.103_515_6e-5, 0x0400),
            (5.960_464_5e-8, 0x0001),
            (f32::INFINITY, 0x7c00),
            (f32::NEG_INFINITY, 0xfc00),
        ] {
            assert_eq!(f32_to_f16(x), bits, "{x}");
            assert_eq!(f16_to_f32(bits), x, "{bits:#x}");
        }
        assert_eq!(f32_to_f16(65520.0), 0x7c00, "rounds up to infinity");
        assert_eq!(f32_to_f16(1e-9), 0);
        assert_eq!(f16_to_f32(f32_to_f16(0.1)), 0.099_975_586);
        assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
        // Ties to even: 1 + 2^-11 is halfway between 1 and the next half.
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
    }

    #[test]
    fn bfloat16_round_trips_and_rounds() {
        for x in [0.0f32, 1.0, -2.5, 2f32.powi(100), f32::INFINITY] {
            assert_eq!(bf16_to_f32(f32_to_bf16(x)), x, "{x}");
        }
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        assert_eq!(bf16_to_f32(f32_to_bf16(0.1)), 0.100_097_656);
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
        assert!(bf16_to_f32(f32_to_bf16(f32::MAX)).is_infinite());
    }
}
