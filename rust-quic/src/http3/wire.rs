//! The wire: QUIC variable-length integers (RFC 9000 16) and the HTTP/3 frame
//! reader, which yields frames in any split of the stream's bytes.

/// Control-stream frames larger than this are refused (SETTINGS, GOAWAY, ...).
pub const MAX_CONTROL_FRAME: u64 = 16 * 1024;

pub fn varint_len(v: u64) -> usize {
    match v {
        0..=63 => 1,
        64..=16383 => 2,
        16384..=1_073_741_823 => 4,
        _ => 8,
    }
}

pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    match varint_len(v) {
        1 => out.push(v as u8),
        2 => out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes()),
        4 => out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes()),
    }
}

/// Decodes one varint from the front of `buf`, returning it and its length.
pub fn get_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    if buf.len() < len {
        return None;
    }
    let mut v = u64::from(first & 0x3f);
    for b in &buf[1..len] {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, len))
}

/// A varint that may arrive split across reads.
#[derive(Default)]
pub struct VarintAccumulator {
    buf: [u8; 8],
    have: usize,
    need: usize,
}

impl VarintAccumulator {
    pub fn feed(&mut self, input: &mut &[u8]) -> Option<u64> {
        while let Some((&b, rest)) = input.split_first() {
            if self.have == 0 {
                self.need = 1 << (b >> 6);
            }
            self.buf[self.have] = b;
            self.have += 1;
            *input = rest;
            if self.have == self.need {
                self.have = 0;
                return get_varint(&self.buf[..self.need]).map(|(v, _)| v);
            }
        }
        None
    }

    pub fn is_partial(&self) -> bool {
        self.have != 0
    }
}

/// One step of frame parsing: a frame starts, a piece of its payload, it ends.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    Start { ty: u64, len: u64 },
    Chunk { ty: u64, data: &'a [u8] },
    End { ty: u64 },
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    #[default]
    Type,
    Length,
    Payload,
}

/// Incremental frame parser: feed it whatever the stream delivered, in any split.
#[derive(Default)]
pub struct FrameReader {
    state: ReadState,
    varint: VarintAccumulator,
    ty: u64,
    remaining: u64,
}

impl FrameReader {
    pub fn next<'a>(&mut self, input: &mut &'a [u8]) -> Option<FrameEvent<'a>> {
        loop {
            match self.state {
                ReadState::Type => {
                    self.ty = self.varint.feed(input)?;
                    self.state = ReadState::Length;
                }
                ReadState::Length => {
                    let len = self.varint.feed(input)?;
                    self.remaining = len;
                    self.state = ReadState::Payload;
                    return Some(FrameEvent::Start { ty: self.ty, len });
                }
                ReadState::Payload => {
                    if self.remaining == 0 {
                        self.state = ReadState::Type;
                        return Some(FrameEvent::End { ty: self.ty });
                    }
                    if input.is_empty() {
                        return None;
                    }
                    let take = (self.remaining as usize).min(input.len());
                    let (data, rest) = input.split_at(take);
                    *input = rest;
                    self.remaining -= take as u64;
                    return Some(FrameEvent::Chunk { ty: self.ty, data });
                }
            }
        }
    }

    /// True right after the last payload byte of a frame (its End is next).
    pub fn payload_complete(&self) -> bool {
        self.state == ReadState::Payload && self.remaining == 0
    }

    /// True between frames: a FIN here ends the stream cleanly.
    pub fn at_frame_boundary(&self) -> bool {
        self.state == ReadState::Type && !self.varint.is_partial()
    }
}

/// Appends a frame header (type and payload length).
pub fn put_frame_header(out: &mut Vec<u8>, ty: u64, len: u64) {
    put_varint(out, ty);
    put_varint(out, len);
}
