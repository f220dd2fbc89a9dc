//! TFRecord framing, as TensorFlow's `TFRecordWriter` writes it and `tf.data.TFRecordDataset`
//! reads it. Each record is:
//!
//! ```text
//! uint64 length            little-endian
//! uint32 masked CRC32C     of the 8 length bytes
//! byte   data[length]
//! uint32 masked CRC32C     of the data
//! ```
//!
//! with `mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8` (wrapping), TensorFlow's guard
//! against checksumming data that itself holds checksums.

/// Bytes a record takes besides its data.
pub const OVERHEAD: usize = 16;

const MASK_DELTA: u32 = 0xa282_ead8;

pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Appends `data` as one framed record.
pub fn frame(data: &[u8], out: &mut Vec<u8>) {
    let length = (data.len() as u64).to_le_bytes();
    out.reserve(data.len() + OVERHEAD);
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// How many leading bytes of a file of `file_len` bytes are whole records, reading only their
/// headers (`read_header(offset)` gives the 12 bytes at `offset`, or `None` past the end): what
/// a crash mid-write leaves is cut off there at the next start.
pub fn complete_len(file_len: u64, mut read_header: impl FnMut(u64) -> Option<[u8; 12]>) -> u64 {
    let mut offset = 0u64;
    while offset < file_len {
        let Some(header) = read_header(offset) else { break };
        let (length, crc) = header.split_at(8);
        if masked_crc(length).to_le_bytes() != crc {
            break;
        }
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(length);
        let end = u64::from_le_bytes(bytes).checked_add(OVERHEAD as u64).and_then(|n| offset.checked_add(n));
        match end {
            Some(end) if end <= file_len => offset = end,
            _ => break,
        }
    }
    offset
}

/// The records of a buffer of whole frames (for tests: the reading side of `frame`).
#[cfg(test)]
pub fn read_all(mut data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut records = Vec::new();
    while !data.is_empty() {
        if data.len() < 12 {
            return Err("truncated header".into());
        }
        let length = &data[..8];
        if masked_crc(length).to_le_bytes() != data[8..12] {
            return Err("bad length checksum".into());
        }
        let n = u64::from_le_bytes(length.try_into().map_err(|_| "length")?) as usize;
        let body = data.get(12..12 + n).ok_or("truncated data")?;
        let crc = data.get(12 + n..16 + n).ok_or("truncated checksum")?;
        if masked_crc(body).to_le_bytes() != crc {
            return Err("bad data checksum".into());
        }
        records.push(body.to_vec());
        data = &data[16 + n..];
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_checksums() {
        // CRC32C check value (RFC 3720 B.4): "123456789" -> 0xe3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // The bytes TensorFlow writes for a record holding b"x" (tf.io.TFRecordWriter).
        let mut out = Vec::new();
        frame(b"x", &mut out);
        assert_eq!(out.len(), 17);
        assert_eq!(&out[..8], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(out[8..12], masked_crc(&[1, 0, 0, 0, 0, 0, 0, 0]).to_le_bytes());
        assert_eq!(read_all(&out).unwrap(), vec![b"x".to_vec()]);
    }

    #[test]
    fn a_cut_tail_is_found_at_the_last_whole_record() {
        let mut file = Vec::new();
        for n in [0usize, 5, 300] {
            frame(&vec![7u8; n], &mut file);
        }
        let header = |data: &[u8], offset: u64| -> Option<[u8; 12]> {
            data.get(offset as usize..offset as usize + 12).map(|b| b.try_into().unwrap())
        };
        let whole = file.len() as u64;
        assert_eq!(complete_len(whole, |o| header(&file, o)), whole);
        let second_end = (16 + 21) as u64;
        for cut in [whole - 1, whole - 300, second_end + 5, second_end + 1] {
            let data = &file[..cut as usize];
            assert_eq!(complete_len(cut, |o| header(data, o)), second_end, "cut at {cut}");
        }
        // A header that is not one (garbage) ends the whole part too.
        let mut garbage = file.clone();
        garbage[second_end as usize] ^= 0xff;
        assert_eq!(complete_len(whole, |o| header(&garbage, o)), second_end);
        assert!(read_all(&file[..whole as usize - 1]).is_err());
    }
}
