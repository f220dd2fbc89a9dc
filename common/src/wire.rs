//! Reading protobuf's wire format from a message held in several buffers (nginx keeps a request
//! body as a chain of them), without joining them: field by field, skipping what is not needed
//! by its length; and writing the few fields tfgate adds to a message it forwards.

/// A byte string in pieces.
#[derive(Debug, Clone, Copy)]
pub struct Rope<'a> {
    parts: &'a [&'a [u8]],
}

impl<'a> Rope<'a> {
    pub fn new(parts: &'a [&'a [u8]]) -> Rope<'a> {
        Rope { parts }
    }

    pub fn len(&self) -> u64 {
        self.parts.iter().map(|p| p.len() as u64).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `out.len()` bytes from `offset`; false when there are not that many.
    pub fn copy_at(&self, offset: u64, out: &mut [u8]) -> bool {
        let mut cursor = Cursor::new(*self, offset, offset + out.len() as u64);
        out.iter_mut().all(|b| cursor.byte().map(|v| *b = v).is_ok())
    }
}

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    Truncated,
    Malformed(&'static str),
}

/// protobuf wire types.
pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
pub const FIXED32: u8 = 5;

/// Groups nest; deeper than this is an attack, not a TF Serving message.
const MAX_GROUP_DEPTH: usize = 32;

/// A position in a rope, bounded by `end` (the end of the message being read).
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    rope: Rope<'a>,
    part: usize,
    offset_in_part: usize,
    position: u64,
    end: u64,
}

impl<'a> Cursor<'a> {
    /// Reads `rope[start..end]` (clamped to the rope).
    pub fn new(rope: Rope<'a>, start: u64, end: u64) -> Cursor<'a> {
        let mut cursor = Cursor { rope, part: 0, offset_in_part: 0, position: 0, end: end.min(rope.len()) };
        cursor.advance(start.min(cursor.end));
        cursor
    }

    pub fn at_end(&self) -> bool {
        self.position >= self.end
    }

    fn advance(&mut self, mut n: u64) {
        self.position += n;
        while n > 0 {
            let Some(part) = self.rope.parts.get(self.part) else { return };
            let left = (part.len() - self.offset_in_part) as u64;
            if n < left {
                self.offset_in_part += n as usize;
                return;
            }
            n -= left;
            self.part += 1;
            self.offset_in_part = 0;
        }
        // Land on a non-empty part, so `byte` finds it at once.
        while self.rope.parts.get(self.part).is_some_and(|p| self.offset_in_part >= p.len()) {
            self.part += 1;
            self.offset_in_part = 0;
        }
    }

    pub fn byte(&mut self) -> Result<u8, WireError> {
        if self.at_end() {
            return Err(WireError::Truncated);
        }
        loop {
            let part = self.rope.parts.get(self.part).ok_or(WireError::Truncated)?;
            if let Some(&b) = part.get(self.offset_in_part) {
                self.advance(1);
                return Ok(b);
            }
            self.part += 1;
            self.offset_in_part = 0;
        }
    }

    /// A varint as prost reads one (what the daemon and its backends decode): at most 10 bytes,
    /// the 10th holding only the 64th bit (0 or 1), never a value that overflows 64 bits.
    pub fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err(WireError::Malformed("a varint beyond 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::Malformed("a varint beyond 64 bits"))
    }

    /// The next field's number and wire type; `None` at the end of the message. A key is a
    /// 32-bit value (field numbers up to 2^29 - 1), as prost and protobuf read it.
    pub fn key(&mut self) -> Result<Option<(u32, u8)>, WireError> {
        if self.at_end() {
            return Ok(None);
        }
        let key = u32::try_from(self.varint()?).map_err(|_| WireError::Malformed("a field key beyond 32 bits"))?;
        let field = key >> 3;
        if field == 0 {
            return Err(WireError::Malformed("field number 0"));
        }
        Ok(Some((field, (key & 7) as u8)))
    }

    /// A length-delimited field's contents, as a cursor of their own; this one moves past them.
    pub fn nested(&mut self) -> Result<Cursor<'a>, WireError> {
        let len = self.varint()?;
        let end = self.position.checked_add(len).filter(|&e| e <= self.end).ok_or(WireError::Truncated)?;
        let inner = Cursor { end, ..self.clone() };
        self.advance(len);
        Ok(inner)
    }

    /// A length-delimited field's bytes, at most `limit` of them.
    pub fn bytes(&mut self, limit: usize) -> Result<Vec<u8>, WireError> {
        let mut inner = self.nested()?;
        let len = inner.end - inner.position;
        if len > limit as u64 {
            return Err(WireError::Malformed("a string field too long for a model name"));
        }
        let mut out = Vec::with_capacity(len as usize);
        while !inner.at_end() {
            out.push(inner.byte()?);
        }
        Ok(out)
    }

    /// Skips a field's value of wire type `wire` (whose key was just read as `field`).
    pub fn skip(&mut self, field: u32, wire: u8) -> Result<(), WireError> {
        self.skip_at_depth(field, wire, 0)
    }

    fn skip_at_depth(&mut self, field: u32, wire: u8, depth: usize) -> Result<(), WireError> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.skip_bytes(8),
            LEN => self.nested().map(drop),
            FIXED32 => self.skip_bytes(4),
            START_GROUP if depth < MAX_GROUP_DEPTH => loop {
                match self.key()? {
                    None => return Err(WireError::Truncated),
                    Some((end, END_GROUP)) if end == field => return Ok(()),
                    Some((_, END_GROUP)) => return Err(WireError::Malformed("a group ends with another's number")),
                    Some((inner, wire)) => self.skip_at_depth(inner, wire, depth + 1)?,
                }
            },
            START_GROUP => Err(WireError::Malformed("groups nested too deep")),
            END_GROUP => Err(WireError::Malformed("a group end without its start")),
            _ => Err(WireError::Malformed("an unknown wire type")),
        }
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), WireError> {
        if self.end - self.position < n {
            return Err(WireError::Truncated);
        }
        self.advance(n);
        Ok(())
    }
}

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a length-delimited field.
pub fn put_len_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | u64::from(LEN));
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a varint field.
pub fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    put_varint(out, u64::from(field) << 3);
    put_varint(out, value);
}

impl Cursor<'_> {
    /// Where the cursor is, from the start of the rope.
    pub fn position(&self) -> u64 {
        self.position
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_across_parts_and_skips_every_wire_type() {
        // field 1 varint 300; field 2 fixed64; field 3 "abc"; field 4 group{field 5 varint 1}; field 6 fixed32
        let message: Vec<u8> = [
            &[0x08, 0xac, 0x02][..],
            &[0x11, 1, 2, 3, 4, 5, 6, 7, 8],
            &[0x1a, 3, b'a', b'b', b'c'],
            &[0x23, 0x28, 1, 0x24],
            &[0x35, 1, 2, 3, 4],
        ]
        .concat();
        for split in 0..message.len() {
            let parts: [&[u8]; 3] = [&message[..split], &[], &message[split..]];
            let rope = Rope::new(&parts);
            let mut c = Cursor::new(rope, 0, rope.len());
            assert_eq!(c.key(), Ok(Some((1, VARINT))));
            assert_eq!(c.varint(), Ok(300));
            assert_eq!(c.key(), Ok(Some((2, FIXED64))));
            c.skip(2, FIXED64).unwrap();
            assert_eq!(c.key(), Ok(Some((3, LEN))));
            assert_eq!(c.bytes(16), Ok(b"abc".to_vec()));
            assert_eq!(c.key(), Ok(Some((4, START_GROUP))));
            c.skip(4, START_GROUP).unwrap();
            assert_eq!(c.key(), Ok(Some((6, FIXED32))));
            c.skip(6, FIXED32).unwrap();
            assert_eq!(c.key(), Ok(None));
        }
    }

    #[test]
    fn written_fields_read_back() {
        let mut out = Vec::new();
        put_varint_field(&mut out, 2, 300);
        put_len_field(&mut out, 17, b"xyz");
        let parts = [&out[..]];
        let rope = Rope::new(&parts);
        let mut c = Cursor::new(rope, 0, rope.len());
        assert_eq!(c.key(), Ok(Some((2, VARINT))));
        assert_eq!(c.varint(), Ok(300));
        assert_eq!(c.key(), Ok(Some((17, LEN))));
        assert_eq!(c.bytes(8), Ok(b"xyz".to_vec()));
        assert_eq!(c.position(), out.len() as u64);
    }

    fn read_all(message: &[u8]) -> Result<Vec<(u32, u8)>, WireError> {
        let parts = [message];
        let rope = Rope::new(&parts);
        let mut c = Cursor::new(rope, 0, rope.len());
        let mut keys = Vec::new();
        while let Some((field, wire)) = c.key()? {
            keys.push((field, wire));
            c.skip(field, wire)?;
        }
        Ok(keys)
    }

    #[test]
    fn varints_and_keys_are_refused_exactly_where_prost_refuses_them() {
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        let parts = [&max[..]];
        assert_eq!(Cursor::new(Rope::new(&parts), 0, 10).varint(), Ok(u64::MAX));
        // The 10th byte above 1 would be bits 64 and beyond.
        for last in [0x02, 0x7f] {
            let varint = [&max[..9], &[last]].concat();
            let parts = [&varint[..]];
            assert_eq!(
                Cursor::new(Rope::new(&parts), 0, 10).varint(),
                Err(WireError::Malformed("a varint beyond 64 bits")),
                "{last:#x}"
            );
            assert!(read_all(&[&[0x08][..], &varint].concat()).is_err(), "as a field value, {last:#x}");
        }
        // Padded encodings stay valid, as for prost: 1 written in 10 bytes.
        let padded = [0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(read_all(&[&[0x08][..], &padded].concat()), Ok(vec![(1, VARINT)]));
        // The largest key: field 2^29 - 1, wire type 0 (u32::MAX >> 3, then 7 is an unknown
        // wire type, so use 0xfffffff8).
        let mut largest = Vec::new();
        put_varint(&mut largest, 0xffff_fff8);
        largest.push(0);
        assert_eq!(read_all(&largest), Ok(vec![((1 << 29) - 1, VARINT)]));
        // A key beyond 32 bits, even one whose field number would fit in a u32.
        for key in [1u64 << 32, (1u64 << 32) | 8, u64::MAX] {
            let mut message = Vec::new();
            put_varint(&mut message, key);
            message.push(0);
            assert_eq!(read_all(&message), Err(WireError::Malformed("a field key beyond 32 bits")), "{key:#x}");
        }
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let cases: [&[u8]; 7] = [
            &[0x08],                                                                   // varint missing
            &[0x0a, 5, 1],                                                             // length past the end
            &[0x00, 1],                                                                // field 0
            &[0x0f],                                                                   // wire type 7
            &[0x24],                                                                   // group end alone
            &[0x23, 0x2c],                                                             // group closed by another number
            &[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // 11-byte varint
        ];
        for case in cases {
            let parts = [case];
            let rope = Rope::new(&parts);
            let mut c = Cursor::new(rope, 0, rope.len());
            let result = (|| {
                while let Some((field, wire)) = c.key()? {
                    c.skip(field, wire)?;
                }
                Ok::<(), WireError>(())
            })();
            assert!(result.is_err(), "{case:?}");
        }
        let deep: Vec<u8> = std::iter::repeat_n(0x0b, 40).collect();
        let parts = [&deep[..]];
        let rope = Rope::new(&parts);
        let mut c = Cursor::new(rope, 0, rope.len());
        assert_eq!(c.key(), Ok(Some((1, START_GROUP))));
        assert_eq!(c.skip(1, START_GROUP), Err(WireError::Malformed("groups nested too deep")));
    }
}
