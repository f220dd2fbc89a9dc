//! The fields of a protobuf message held in one buffer, visited in order with the shared wire
//! reader (`tfgate_common::wire`), without decoding them: how this ingress counts what a
//! message holds before anything is allocated for it.

use tfgate_common::wire::{Cursor, Rope, WireError, FIXED32, FIXED64, LEN, VARINT};

/// One field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    /// A fixed32 or fixed64 (its width).
    Fixed(u8),
    /// A length-delimited field's bytes (a string, bytes, a message, or packed numbers).
    Len(&'a [u8]),
    /// A group, skipped (proto3 messages have none).
    Group,
}

/// Calls `visit` with each field of `message` (its number and value), in order.
pub fn for_each<'a>(
    message: &'a [u8],
    mut visit: impl FnMut(u32, Value<'a>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    for_each_at(message, |field, value, _| visit(field, value))
}

/// As [`for_each`], with where each field (its key) starts in `message`.
pub fn for_each_at<'a>(
    message: &'a [u8],
    mut visit: impl FnMut(u32, Value<'a>, usize) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let parts = [message];
    let rope = Rope::new(&parts);
    let mut cursor = Cursor::new(rope, 0, rope.len());
    loop {
        let start = cursor.position() as usize;
        let Some((field, wire)) = cursor.key()? else { break };
        let value = match wire {
            VARINT => Value::Varint(cursor.varint()?),
            LEN => {
                let inner = cursor.nested()?;
                Value::Len(&message[inner.position() as usize..cursor.position() as usize])
            }
            FIXED32 | FIXED64 => {
                cursor.skip(field, wire)?;
                Value::Fixed(if wire == FIXED32 { 4 } else { 8 })
            }
            _ => {
                cursor.skip(field, wire)?;
                Value::Group
            }
        };
        visit(field, value, start)?;
    }
    Ok(())
}

/// How many times length-delimited field `number` occurs.
pub fn count(message: &[u8], number: u32) -> Result<u64, WireError> {
    let mut count = 0;
    for_each(message, |field, value| {
        if field == number && matches!(value, Value::Len(_)) {
            count += 1;
        }
        Ok(())
    })?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfgate_common::wire::{put_len_field, put_varint_field};

    #[test]
    fn visits_every_field_with_its_bytes() {
        let mut message = Vec::new();
        put_varint_field(&mut message, 1, 300);
        put_len_field(&mut message, 2, b"abc");
        message.extend_from_slice(&[0x1d, 1, 2, 3, 4]); // field 3, fixed32
        put_len_field(&mut message, 2, b"");
        let mut seen = Vec::new();
        for_each(&message, |field, value| {
            seen.push((field, value));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![(1, Value::Varint(300)), (2, Value::Len(b"abc")), (3, Value::Fixed(4)), (2, Value::Len(b""))]
        );
        assert_eq!(count(&message, 2), Ok(2));
        assert!(count(&[0x12, 5, 1], 2).is_err(), "a length past the end");
    }
}
