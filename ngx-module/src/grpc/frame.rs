//! gRPC's length-prefixed message framing: a compressed flag, a 4-byte big-endian length, the
//! message. A unary call's request body is exactly one such frame.

use tfgate_common::wire::Rope;

/// The length of a frame's prefix.
const PREFIX: u64 = 5;

/// The message of a request body.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// Where the message starts in the body, and its length.
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the prefix announces.
    Truncated,
    /// The message is compressed (`grpc-encoding`), which tfgate does not read.
    Compressed,
    /// Larger than the module's limit.
    TooLarge { len: u64, limit: u64 },
    /// A body larger than one message of the limit could be, whatever it holds.
    BodyTooLarge { len: u64, limit: u64 },
    /// Bytes after the message (a second message, or anything else): every method tfgate
    /// serves is unary, and the upstream would read only the first message, the one checked.
    Trailing { extra: u64 },
}

/// Whether a body of `len` bytes may hold one message of at most `limit` bytes: checked before
/// the body is read back from a temporary file.
pub fn check_body_len(len: u64, limit: u64) -> Result<(), FrameError> {
    if len > PREFIX.saturating_add(limit) {
        return Err(FrameError::BodyTooLarge { len, limit });
    }
    Ok(())
}

/// The one message of `body`, checked against `limit` bytes.
pub fn read_frame(body: &Rope<'_>, limit: u64) -> Result<Frame, FrameError> {
    let mut prefix = [0u8; 5];
    if !body.copy_at(0, &mut prefix) {
        return Err(FrameError::Truncated);
    }
    let len = u64::from(u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]));
    match prefix[0] {
        0 => {}
        1 => return Err(FrameError::Compressed),
        // Only 0 and 1 exist; anything else is not a gRPC body.
        _ => return Err(FrameError::Truncated),
    }
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    let total = body.len();
    if total < PREFIX + len {
        return Err(FrameError::Truncated);
    }
    if total > PREFIX + len {
        return Err(FrameError::Trailing { extra: total - PREFIX - len });
    }
    Ok(Frame { offset: PREFIX, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let body = [0, 0, 0, 0, 3, 1, 2, 3];
        let parts: [&[u8]; 2] = [&body[..2], &body[2..]];
        assert_eq!(read_frame(&Rope::new(&parts), 10), Ok(Frame { offset: 5, len: 3 }));
        assert_eq!(read_frame(&Rope::new(&[&body[..6]]), 10), Err(FrameError::Truncated));
        assert_eq!(read_frame(&Rope::new(&[&body[..3]]), 10), Err(FrameError::Truncated));
        assert_eq!(read_frame(&Rope::new(&[&[1, 0, 0, 0, 0]]), 10), Err(FrameError::Compressed));
        assert_eq!(read_frame(&Rope::new(&[&body]), 2), Err(FrameError::TooLarge { len: 3, limit: 2 }));
        assert_eq!(read_frame(&Rope::new(&[&[0, 0, 0, 0, 0]]), 0), Ok(Frame { offset: 5, len: 0 }));
    }

    #[test]
    fn a_unary_body_holds_one_message_and_nothing_after_it() {
        let one = [0, 0, 0, 0, 3, 1, 2, 3];
        let two = [&one[..], &one[..]].concat();
        let parts: [&[u8]; 2] = [&two[..7], &two[7..]];
        assert_eq!(read_frame(&Rope::new(&parts), 10), Err(FrameError::Trailing { extra: 8 }));
        let trailing = [&one[..], &[0]].concat();
        assert_eq!(read_frame(&Rope::new(&[&trailing]), 10), Err(FrameError::Trailing { extra: 1 }));
        // The whole body is bounded by one message of the limit.
        assert_eq!(check_body_len(15, 10), Ok(()));
        assert_eq!(check_body_len(16, 10), Err(FrameError::BodyTooLarge { len: 16, limit: 10 }));
        assert_eq!(check_body_len(u64::MAX, u64::MAX), Ok(()), "no overflow");
    }
}
