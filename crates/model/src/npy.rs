//! The `.npy` files embeddings are written to: float32 rows, a v1.0 header padded to a fixed
//! size so that it can be rewritten with the final row count when the rows are streamed.

/// The npy v1.0 header is padded to this size; it is rewritten with the final row count.
pub const HEADER_LEN: usize = 128;

pub fn header(rows: usize, dim: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    let body_len = HEADER_LEN - 10;
    h.extend_from_slice(&(body_len as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(HEADER_LEN - 1, b' ');
    h.push(b'\n');
    h
}

/// The shape (rows, dim) of a float32 `.npy` file's header as `header` writes it, or None when
/// the bytes are not one.
pub fn parse_header(bytes: &[u8]) -> Option<(usize, usize)> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return None;
    }
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let dict = std::str::from_utf8(bytes.get(10..10 + len)?).ok()?;
    if !dict.contains("'descr': '<f4'") || !dict.contains("'fortran_order': False") {
        return None;
    }
    let shape = dict.split("'shape': (").nth(1)?.split(')').next()?;
    let mut dims = shape.split(',').map(|d| d.trim().parse::<usize>());
    let rows = dims.next()?.ok()?;
    let dim = dims.next()?.ok()?;
    Some((rows, dim))
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_round_trip() {
        let h = super::header(1234, 384);
        assert_eq!(h.len(), super::HEADER_LEN);
        assert_eq!(super::parse_header(&h), Some((1234, 384)));
        assert_eq!(super::parse_header(b"not npy"), None);
    }
}
