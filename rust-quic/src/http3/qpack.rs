//! Header blocks (RFC 9204) through quiche's QPACK, static table only: we
//! announce a zero-capacity dynamic table, so no QPACK state spans streams.

use quiche::h3::NameValue;

use super::codes::FRAME_HEADERS;
use super::message::Malformed;
use super::wire::put_frame_header;

/// A header field borrowed from the caller, for the QPACK encoder.
pub struct FieldRef<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

impl NameValue for FieldRef<'_> {
    fn name(&self) -> &[u8] {
        self.name
    }
    fn value(&self) -> &[u8] {
        self.value
    }
}

/// Encodes a header block as a complete HEADERS frame appended to `out`.
pub fn encode_headers_frame(fields: &[FieldRef<'_>], out: &mut Vec<u8>) -> Result<(), Malformed> {
    let bound: usize = fields.iter().map(|f| f.name.len() + f.value.len() + 16).sum::<usize>() + 16;
    let mut block = vec![0u8; bound];
    let n = quiche::h3::qpack::Encoder::new().encode(fields, &mut block).map_err(|_| Malformed)?;
    put_frame_header(out, FRAME_HEADERS, n as u64);
    out.extend_from_slice(&block[..n]);
    Ok(())
}

pub enum DecodeError {
    TooLarge,
    Malformed,
}

pub fn decode_header_block(block: &[u8], max_size: u64) -> Result<Vec<quiche::h3::Header>, DecodeError> {
    quiche::h3::qpack::Decoder::new().decode(block, max_size).map_err(|e| match e {
        quiche::h3::qpack::Error::HeaderListTooLarge => DecodeError::TooLarge,
        _ => DecodeError::Malformed,
    })
}
