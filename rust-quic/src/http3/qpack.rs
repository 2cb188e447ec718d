//! Header blocks (RFC 9204), static table only: we announce a zero-capacity
//! dynamic table, so no QPACK state spans streams. Encoding is quiche's;
//! decoding is ours, into one buffer per block (`Fields`), Huffman included.

use quiche::h3::NameValue;

use super::codes::FRAME_HEADERS;
use super::huffman;
use super::wire::put_frame_header;

/// A header field borrowed from the caller, for the QPACK encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// quiche's encoder refused a header block (it never should: the buffer is sized for the block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeFailed;

/// Encodes a header block as a complete HEADERS frame appended to `out`, in
/// place: the block is encoded after room for the frame header, which is then
/// written just before it.
pub fn encode_headers_frame(fields: &[FieldRef<'_>], out: &mut Vec<u8>) -> Result<(), EncodeFailed> {
    // Frame type (one byte) and the largest length varint.
    const ROOM: usize = 1 + 8;
    let bound: usize = fields.iter().map(|f| f.name.len() + f.value.len() + 16).sum::<usize>() + 16;
    let start = out.len();
    out.resize(start + ROOM + bound, 0);
    let encoded = quiche::h3::qpack::Encoder::new().encode(fields, &mut out[start + ROOM..]);
    let Ok(n) = encoded else {
        out.truncate(start);
        return Err(EncodeFailed);
    };
    let mut head = Vec::new();
    put_frame_header(&mut head, FRAME_HEADERS, n as u64);
    let block_at = start + ROOM;
    out.copy_within(block_at..block_at + n, start + head.len());
    out[start..start + head.len()].copy_from_slice(&head);
    out.truncate(start + head.len() + n);
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The decoded fields exceed the limit (RFC 9114 4.2.2: names, values and 32 bytes per field).
    TooLarge,
    Malformed,
}

/// A decoded header block: every name and value in one buffer, so decoding a
/// block costs no allocation per field (and none at all once the buffers have
/// grown to fit).
#[derive(Default, Debug, Clone)]
pub struct Fields {
    bytes: Vec<u8>,
    spans: Vec<FieldSpan>,
}

#[derive(Debug, Clone, Copy)]
struct FieldSpan {
    name_at: u32,
    name_len: u32,
    value_len: u32,
}

impl Fields {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
    }

    /// Holds no buffers yet: decoding into it would allocate them.
    pub fn is_unallocated(&self) -> bool {
        self.bytes.capacity() == 0 || self.spans.capacity() == 0
    }

    /// The fields in order. Their bytes stay where they are until the next
    /// `clear` or decode (moving the `Fields` does not move them).
    pub fn iter(&self) -> impl Iterator<Item = FieldRef<'_>> + Clone + '_ {
        self.spans.iter().map(|span| {
            let name_at = span.name_at as usize;
            let value_at = name_at + span.name_len as usize;
            FieldRef {
                name: &self.bytes[name_at..value_at],
                value: &self.bytes[value_at..value_at + span.value_len as usize],
            }
        })
    }

    /// The value of the first field named `name`.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().find(|f| f.name == name).map(|f| f.value)
    }

    /// Adds a field after the decoded ones (one the engine sets, such as `early-data`).
    pub fn append(&mut self, name: &[u8], value: &[u8]) {
        let name_at = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.push(name_at, name.len());
    }

    fn push(&mut self, name_at: usize, name_len: usize) {
        let value_len = self.bytes.len() - name_at - name_len;
        self.spans.push(FieldSpan { name_at: name_at as u32, name_len: name_len as u32, value_len: value_len as u32 });
    }
}

/// Decodes a header block (RFC 9204 4.5) into `out`, which is cleared first.
/// Static table only: we announce a zero-capacity dynamic table, so a block
/// that needs one (a Required Insert Count above zero, a dynamic or post-base
/// reference) is malformed, QPACK_DECOMPRESSION_FAILED for the caller.
/// `max_size` bounds the decoded fields as RFC 9114 4.2.2 counts them.
pub fn decode_header_block(block: &[u8], max_size: u64, out: &mut Fields) -> Result<(), DecodeError> {
    out.clear();
    let mut r = BlockReader { buf: block, left: max_size };
    if r.int(8)? != 0 {
        return Err(DecodeError::Malformed);
    }
    r.int(7)?; // Sign and Delta Base: meaningless without a dynamic table.
    while let Some(&first) = r.buf.first() {
        r.charge(32)?;
        let name_at = out.bytes.len();
        if first & 0x80 != 0 {
            // Indexed field line: 1Txxxxxx.
            if first & 0x40 == 0 {
                return Err(DecodeError::Malformed);
            }
            let (name, value) = static_entry(r.int(6)?)?;
            r.charge((name.len() + value.len()) as u64)?;
            out.bytes.extend_from_slice(name);
            out.bytes.extend_from_slice(value);
            out.push(name_at, name.len());
        } else if first & 0x40 != 0 {
            // Literal with name reference: 01NTxxxx, then the value.
            if first & 0x10 == 0 {
                return Err(DecodeError::Malformed);
            }
            let (name, _) = static_entry(r.int(4)?)?;
            r.charge(name.len() as u64)?;
            out.bytes.extend_from_slice(name);
            r.string(0x80, 7, &mut out.bytes)?;
            out.push(name_at, name.len());
        } else if first & 0x20 != 0 {
            // Literal with literal name: 001NHxxx, then the value.
            let name_len = r.string(0x08, 3, &mut out.bytes)?;
            r.string(0x80, 7, &mut out.bytes)?;
            out.push(name_at, name_len);
        } else {
            // Post-base references (0001xxxx, 0000Nxxx) name the dynamic table.
            return Err(DecodeError::Malformed);
        }
    }
    Ok(())
}

/// The unread rest of a header block, and how much of the size limit is left.
struct BlockReader<'a> {
    buf: &'a [u8],
    left: u64,
}

impl BlockReader<'_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.buf.split_first().ok_or(DecodeError::Malformed)?;
        self.buf = rest;
        Ok(b)
    }

    /// A prefixed integer (RFC 7541 5.1) whose first byte keeps `prefix` bits.
    fn int(&mut self, prefix: u32) -> Result<u64, DecodeError> {
        let mask = (1u64 << prefix) - 1;
        let mut value = u64::from(self.byte()?) & mask;
        if value < mask {
            return Ok(value);
        }
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            // Refused past 64 bits of shift or a sum beyond u64, as quiche's decoder refuses them.
            let add = u64::from(b & 0x7f).checked_shl(shift).ok_or(DecodeError::Malformed)?;
            value = value.checked_add(add).ok_or(DecodeError::Malformed)?;
            if b & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    fn charge(&mut self, n: u64) -> Result<(), DecodeError> {
        self.left = self.left.checked_sub(n).ok_or(DecodeError::TooLarge)?;
        Ok(())
    }

    /// A string literal whose first byte has the Huffman flag `huffman_bit` and
    /// a `prefix`-bit length, appended to `out` (decoded); its decoded length.
    fn string(&mut self, huffman_bit: u8, prefix: u32, out: &mut Vec<u8>) -> Result<usize, DecodeError> {
        let huffman = self.buf.first().is_some_and(|&b| b & huffman_bit != 0);
        let len = usize::try_from(self.int(prefix)?).map_err(|_| DecodeError::Malformed)?;
        if len > self.buf.len() {
            return Err(DecodeError::Malformed);
        }
        let (raw, rest) = self.buf.split_at(len);
        self.buf = rest;
        let decoded_len = if huffman {
            let limit = usize::try_from(self.left).unwrap_or(usize::MAX);
            huffman::decode(raw, limit, out).map_err(|e| match e {
                huffman::DecodeFailure::TooLong => DecodeError::TooLarge,
                // quiche's decoder calls this too large; it is a decoding error.
                huffman::DecodeFailure::Invalid => DecodeError::Malformed,
            })?
        } else {
            if len as u64 > self.left {
                return Err(DecodeError::TooLarge);
            }
            out.extend_from_slice(raw);
            len
        };
        self.charge(decoded_len as u64)?;
        Ok(decoded_len)
    }
}

/// An entry of QPACK's static table (RFC 9204 Appendix A).
fn static_entry(index: u64) -> Result<(&'static [u8], &'static [u8]), DecodeError> {
    let table = static_table();
    let (name, value) = usize::try_from(index).ok().and_then(|i| table.get(i)).ok_or(DecodeError::Malformed)?;
    Ok((name, value))
}

/// The static table, read once from quiche's decoder (which keeps it private)
/// by decoding one indexed field line per entry until it runs out.
fn static_table() -> &'static [(Vec<u8>, Vec<u8>)] {
    static TABLE: std::sync::OnceLock<Vec<(Vec<u8>, Vec<u8>)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0u8..)
            .map_while(|index| {
                // Prefix 0, 0; an indexed static line; indices from 63 continue in a second byte.
                let block = if index < 63 { vec![0, 0, 0xc0 | index] } else { vec![0, 0, 0xff, index - 63] };
                let fields = quiche::h3::qpack::Decoder::new().decode(&block, u64::MAX).ok()?;
                let field = fields.first()?;
                Some((field.name().to_vec(), field.value().to_vec()))
            })
            .collect()
    })
}
