//! The length-prefixed encoding that [`super::Policy::fingerprint`] hashes. Each part of a
//! policy (its claim rules included) writes itself with these, so that no two different
//! policies encode to the same bytes: every string and list carries its length.

/// Writes `n` as 8 little-endian bytes.
pub(crate) fn put_u64(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_le_bytes());
}

/// Writes `s` with its length in front.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// Writes the number of items, then each item as [`put_str`] does.
pub(crate) fn put_list<'a>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'a str>) {
    let items: Vec<&str> = items.into_iter().collect();
    put_u64(out, items.len());
    for item in items {
        put_str(out, item);
    }
}
