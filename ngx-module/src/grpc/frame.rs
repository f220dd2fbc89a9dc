//! gRPC's length-prefixed message framing: a compressed flag, a 4-byte big-endian length, the
//! message. A unary call's request body is one such frame.

use tfgate_common::wire::Rope;

/// The first message of a request body.
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
}

/// The first frame of `body`, checked against `limit` bytes.
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
    if body.len() < 5 + len {
        return Err(FrameError::Truncated);
    }
    Ok(Frame { offset: 5, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let body = [0, 0, 0, 0, 3, 1, 2, 3, 9];
        let parts: [&[u8]; 2] = [&body[..2], &body[2..]];
        assert_eq!(read_frame(&Rope::new(&parts), 10), Ok(Frame { offset: 5, len: 3 }));
        assert_eq!(read_frame(&Rope::new(&[&body[..6]]), 10), Err(FrameError::Truncated));
        assert_eq!(read_frame(&Rope::new(&[&body[..3]]), 10), Err(FrameError::Truncated));
        assert_eq!(read_frame(&Rope::new(&[&[1, 0, 0, 0, 0]]), 10), Err(FrameError::Compressed));
        assert_eq!(read_frame(&Rope::new(&[&body]), 2), Err(FrameError::TooLarge { len: 3, limit: 2 }));
    }
}
