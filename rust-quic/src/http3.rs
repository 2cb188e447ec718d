//! HTTP/3 (RFC 9114) framing and message rules on top of quiche's transport.
//!
//! The engine does its own HTTP/3 layer instead of `quiche::h3` so that a bad
//! message stays a *stream* error (quiche::h3 closes the whole connection for an
//! oversized header block or a frame it dislikes), so that body bytes go from the
//! stream buffer to the callback without another copy, and so that extension
//! streams (WebTransport) can be routed by the engine. QPACK uses quiche's
//! static-table encoder and decoder; we advertise a zero-capacity dynamic table,
//! so no QPACK state is shared between streams.

use quiche::h3::NameValue;

pub const FRAME_DATA: u64 = 0x0;
pub const FRAME_HEADERS: u64 = 0x1;
pub const FRAME_CANCEL_PUSH: u64 = 0x3;
pub const FRAME_SETTINGS: u64 = 0x4;
pub const FRAME_PUSH_PROMISE: u64 = 0x5;
pub const FRAME_GOAWAY: u64 = 0x7;
pub const FRAME_MAX_PUSH_ID: u64 = 0xd;
/// First bytes of a WebTransport bidirectional stream: signal, then session id.
pub const FRAME_WT_STREAM: u64 = 0x41;
/// HTTP/2 frame types with no HTTP/3 counterpart (PRIORITY, PING, WINDOW_UPDATE,
/// CONTINUATION): reserved, and a connection error if received (RFC 9114 7.2.8).
pub fn is_reserved_http2_frame(ty: u64) -> bool {
    matches!(ty, 0x2 | 0x6 | 0x8 | 0x9)
}
/// A reserved frame (type 0x21, RFC 9114 7.2.8) of length 0: peers ignore it.
/// It gives a stream's FIN bytes to travel with (see stream::flush_pending).
pub const FIN_CARRIER_FRAME: [u8; 2] = [0x21, 0x00];

pub const STREAM_TYPE_CONTROL: u64 = 0x0;
pub const STREAM_TYPE_PUSH: u64 = 0x1;
pub const STREAM_TYPE_QPACK_ENCODER: u64 = 0x2;
pub const STREAM_TYPE_QPACK_DECODER: u64 = 0x3;
pub const STREAM_TYPE_WEBTRANSPORT: u64 = 0x54;

pub const SETTINGS_QPACK_MAX_TABLE_CAPACITY: u64 = 0x1;
pub const SETTINGS_MAX_FIELD_SECTION_SIZE: u64 = 0x6;
pub const SETTINGS_QPACK_BLOCKED_STREAMS: u64 = 0x7;
pub const SETTINGS_ENABLE_CONNECT_PROTOCOL: u64 = 0x8;
pub const SETTINGS_H3_DATAGRAM: u64 = 0x33;
/// WebTransport draft-02 (still what some browsers and aioquic speak).
pub const SETTINGS_ENABLE_WEBTRANSPORT: u64 = 0x2b60_3742;
/// WebTransport draft-07 and later: the version is negotiated by this codepoint.
pub const SETTINGS_WT_MAX_SESSIONS: u64 = 0xc671_706a;
/// Initial session flow-control limits of the drafts that have them; we send
/// generous values so that such a peer is never blocked by us.
pub const SETTINGS_WT_INITIAL_MAX_DATA: u64 = 0x2b61;
pub const SETTINGS_WT_INITIAL_MAX_STREAMS_UNI: u64 = 0x2b64;
pub const SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI: u64 = 0x2b65;

pub const H3_NO_ERROR: u64 = 0x100;
pub const H3_GENERAL_PROTOCOL_ERROR: u64 = 0x101;
pub const H3_INTERNAL_ERROR: u64 = 0x102;
pub const H3_STREAM_CREATION_ERROR: u64 = 0x103;
pub const H3_CLOSED_CRITICAL_STREAM: u64 = 0x104;
pub const H3_FRAME_UNEXPECTED: u64 = 0x105;
pub const H3_FRAME_ERROR: u64 = 0x106;
pub const H3_EXCESSIVE_LOAD: u64 = 0x107;
pub const H3_ID_ERROR: u64 = 0x108;
pub const H3_SETTINGS_ERROR: u64 = 0x109;
pub const H3_MISSING_SETTINGS: u64 = 0x10a;
pub const H3_REQUEST_REJECTED: u64 = 0x10b;
pub const H3_REQUEST_CANCELLED: u64 = 0x10c;
pub const H3_REQUEST_INCOMPLETE: u64 = 0x10d;
pub const H3_MESSAGE_ERROR: u64 = 0x10e;
pub const QPACK_DECOMPRESSION_FAILED: u64 = 0x200;
pub const QPACK_ENCODER_STREAM_ERROR: u64 = 0x201;
pub const H3_DATAGRAM_ERROR: u64 = 0x33;
/// A WebTransport stream or datagram for a session that is not (or no longer) open.
pub const WT_BUFFERED_STREAM_REJECTED: u64 = 0x3994_bd84;
pub const WT_SESSION_GONE: u64 = 0x170d_7b68;

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

/// What our SETTINGS frame announces beyond the basics.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalSettings {
    pub max_field_section_size: u64,
    pub h3_datagram: bool,
    /// WebTransport sessions we accept per connection (0: no WebTransport).
    /// Implies extended CONNECT (RFC 9220) and HTTP datagrams.
    pub webtransport_sessions: u64,
}

/// Our SETTINGS frame payload.
pub fn settings_payload(local: &LocalSettings) -> Vec<u8> {
    let mut pairs = vec![
        (SETTINGS_MAX_FIELD_SECTION_SIZE, local.max_field_section_size),
        (SETTINGS_QPACK_MAX_TABLE_CAPACITY, 0),
        (SETTINGS_QPACK_BLOCKED_STREAMS, 0),
    ];
    let wt = local.webtransport_sessions;
    if wt > 0 {
        pairs.extend([
            (SETTINGS_ENABLE_CONNECT_PROTOCOL, 1),
            (SETTINGS_ENABLE_WEBTRANSPORT, 1),
            (SETTINGS_WT_MAX_SESSIONS, wt),
            (SETTINGS_WT_INITIAL_MAX_DATA, 1 << 40),
            (SETTINGS_WT_INITIAL_MAX_STREAMS_UNI, 1 << 20),
            (SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI, 1 << 20),
        ]);
    }
    if local.h3_datagram || wt > 0 {
        pairs.push((SETTINGS_H3_DATAGRAM, 1));
    }
    let mut p = Vec::with_capacity(64);
    for (id, value) in pairs {
        put_varint(&mut p, id);
        put_varint(&mut p, value);
    }
    p
}

#[derive(Default, Debug, Clone)]
pub struct PeerSettings {
    pub max_field_section_size: Option<u64>,
    pub extended_connect: bool,
    pub h3_datagram: bool,
    /// Every (id, value) the peer sent, for us_quic_socket_peer_setting.
    pub all: Vec<(u64, u64)>,
}

impl PeerSettings {
    /// The peer speaks WebTransport (draft-02's flag or a later draft's session limit).
    pub fn webtransport(&self) -> bool {
        self.all
            .iter()
            .any(|&(id, v)| (id == SETTINGS_ENABLE_WEBTRANSPORT && v == 1) || (id == SETTINGS_WT_MAX_SESSIONS && v > 0))
    }
}

/// Parses a SETTINGS payload. HTTP/2 setting ids and duplicates are errors (RFC 9114 7.2.4).
pub fn parse_settings(mut p: &[u8]) -> Result<PeerSettings, u64> {
    let mut s = PeerSettings::default();
    while !p.is_empty() {
        let (id, n) = get_varint(p).ok_or(H3_FRAME_ERROR)?;
        p = &p[n..];
        let (value, n) = get_varint(p).ok_or(H3_FRAME_ERROR)?;
        p = &p[n..];
        if s.all.iter().any(|&(seen, _)| seen == id) || matches!(id, 0x0 | 0x2 | 0x3 | 0x4 | 0x5) {
            return Err(H3_SETTINGS_ERROR);
        }
        if s.all.len() >= 64 {
            return Err(H3_EXCESSIVE_LOAD);
        }
        s.all.push((id, value));
        match id {
            SETTINGS_MAX_FIELD_SECTION_SIZE => s.max_field_section_size = Some(value),
            SETTINGS_ENABLE_CONNECT_PROTOCOL => {
                if value > 1 {
                    return Err(H3_SETTINGS_ERROR);
                }
                s.extended_connect = value == 1;
            }
            SETTINGS_H3_DATAGRAM => {
                if value > 1 {
                    return Err(H3_SETTINGS_ERROR);
                }
                s.h3_datagram = value == 1;
            }
            _ => {}
        }
    }
    Ok(s)
}

/// A message (or field) that breaks HTTP/3's rules: "malformed" in RFC 9114 4.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

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

/// What the engine needs to know about a valid message head.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MessageHead {
    pub content_length: Option<u64>,
    /// Response status, or 0 for a request.
    pub status: u16,
    pub is_head_request: bool,
    pub is_connect: bool,
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.iter().all(|&c| {
            matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*'
                | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
        })
}

fn valid_value(value: &[u8]) -> bool {
    !value.iter().any(|&c| c == 0 || c == b'\r' || c == b'\n')
        && !matches!(value.first(), Some(b' ' | b'\t'))
        && !matches!(value.last(), Some(b' ' | b'\t'))
}

/// Parses content-length; repeated values (or a comma list) must all agree.
fn merge_content_length(current: Option<u64>, value: &[u8]) -> Result<Option<u64>, Malformed> {
    let mut result = current;
    for part in value.split(|&c| c == b',') {
        let part = trim(part);
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(Malformed);
        }
        let v: u64 = std::str::from_utf8(part).map_err(|_| Malformed)?.parse().map_err(|_| Malformed)?;
        match result {
            Some(prev) if prev != v => return Err(Malformed),
            _ => result = Some(v),
        }
    }
    Ok(result)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Rules common to every field section (RFC 9114 4.2, 4.3).
fn check_regular_field(name: &[u8], value: &[u8]) -> Result<(), Malformed> {
    if !valid_name(name) || !valid_value(value) {
        return Err(Malformed);
    }
    match name {
        b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade" => Err(Malformed),
        b"te" if value != b"trailers" => Err(Malformed),
        _ => Ok(()),
    }
}

/// Validates a request head: pseudo-headers present once each and first, no
/// forbidden fields, values without CR/LF/NUL (RFC 9114 4.3.1).
pub fn validate_request<H: NameValue>(fields: &[H], extended_connect: bool) -> Result<MessageHead, Malformed> {
    let mut head = MessageHead::default();
    let (mut method, mut scheme, mut path, mut authority, mut protocol) = (None, None, None, None, None);
    let mut regular_seen = false;
    let mut host: Option<&[u8]> = None;
    for f in fields {
        let (name, value) = (f.name(), f.value());
        if let Some(pseudo) = name.strip_prefix(b":") {
            if regular_seen {
                return Err(Malformed);
            }
            let slot = match pseudo {
                b"method" => &mut method,
                b"scheme" => &mut scheme,
                b"path" => &mut path,
                b"authority" => &mut authority,
                b"protocol" if extended_connect => &mut protocol,
                _ => return Err(Malformed),
            };
            if slot.is_some() || !valid_value(value) {
                return Err(Malformed);
            }
            *slot = Some(value);
            continue;
        }
        regular_seen = true;
        check_regular_field(name, value)?;
        if name == b"content-length" {
            head.content_length = merge_content_length(head.content_length, value)?;
        } else if name == b"host" {
            host = Some(value);
        }
    }
    let method = method.ok_or(Malformed)?;
    if method.is_empty() || !valid_name(&method.to_ascii_lowercase()) {
        return Err(Malformed);
    }
    head.is_head_request = method == b"HEAD";
    head.is_connect = method == b"CONNECT";
    if head.is_connect && protocol.is_none() {
        // Plain CONNECT: authority only.
        if authority.is_none() || scheme.is_some() || path.is_some() {
            return Err(Malformed);
        }
        return Ok(head);
    }
    if protocol.is_some() && !head.is_connect {
        return Err(Malformed);
    }
    let path = path.ok_or(Malformed)?;
    scheme.filter(|s| !s.is_empty()).ok_or(Malformed)?;
    if path.is_empty() || !(path[0] == b'/' || (path == b"*" && method == b"OPTIONS")) {
        return Err(Malformed);
    }
    if let (Some(a), Some(h)) = (authority, host) {
        if a != h {
            return Err(Malformed);
        }
    }
    Ok(head)
}

/// Validates a response head (informational or final).
pub fn validate_response<H: NameValue>(fields: &[H]) -> Result<MessageHead, Malformed> {
    let mut head = MessageHead::default();
    let mut status = None;
    let mut regular_seen = false;
    for f in fields {
        let (name, value) = (f.name(), f.value());
        if name.first() == Some(&b':') {
            if regular_seen || name != b":status" || status.is_some() {
                return Err(Malformed);
            }
            if value.len() != 3 || !value.iter().all(u8::is_ascii_digit) {
                return Err(Malformed);
            }
            status = Some(std::str::from_utf8(value).map_err(|_| Malformed)?.parse::<u16>().map_err(|_| Malformed)?);
            continue;
        }
        regular_seen = true;
        check_regular_field(name, value)?;
        // TE is for requests only (RFC 9114 4.2): a response carrying it is malformed.
        if name == b"te" {
            return Err(Malformed);
        }
        if name == b"content-length" {
            head.content_length = merge_content_length(head.content_length, value)?;
        }
    }
    head.status = status.filter(|s| *s >= 100).ok_or(Malformed)?;
    Ok(head)
}

/// Trailers carry no pseudo-headers.
pub fn validate_trailers<H: NameValue>(fields: &[H]) -> Result<(), Malformed> {
    for f in fields {
        if f.name().first() == Some(&b':') {
            return Err(Malformed);
        }
        check_regular_field(f.name(), f.value())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f<'a>(n: &'a str, v: &'a str) -> FieldRef<'a> {
        FieldRef { name: n.as_bytes(), value: v.as_bytes() }
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        for v in [0u64, 63, 64, 16383, 16384, 1_073_741_823, 1_073_741_824, (1 << 62) - 1] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v));
            assert_eq!(get_varint(&out), Some((v, out.len())));
            let mut acc = VarintAccumulator::default();
            let mut got = None;
            for b in &out {
                let mut one: &[u8] = std::slice::from_ref(b);
                got = acc.feed(&mut one);
            }
            assert_eq!(got, Some(v));
        }
    }

    #[test]
    fn frame_reader_handles_every_split() {
        let mut wire = Vec::new();
        put_frame_header(&mut wire, FRAME_HEADERS, 3);
        wire.extend_from_slice(b"abc");
        put_frame_header(&mut wire, FRAME_DATA, 0);
        put_frame_header(&mut wire, 0x21, 2); // reserved type
        wire.extend_from_slice(b"zz");
        for split in 0..wire.len() {
            let mut r = FrameReader::default();
            let mut payload = Vec::new();
            let mut ends = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                let mut input = part;
                while let Some(ev) = r.next(&mut input) {
                    match ev {
                        FrameEvent::Chunk { data, .. } => payload.extend_from_slice(data),
                        FrameEvent::End { ty } => ends.push(ty),
                        FrameEvent::Start { .. } => {}
                    }
                }
            }
            assert_eq!(payload, b"abczz");
            assert_eq!(ends, vec![FRAME_HEADERS, FRAME_DATA, 0x21]);
            assert!(r.at_frame_boundary());
        }
    }

    #[test]
    fn request_validation_rejects_malformed_heads() {
        let good = [f(":method", "GET"), f(":scheme", "https"), f(":authority", "a"), f(":path", "/")];
        assert!(validate_request(&good, false).is_ok());
        let bad: Vec<Vec<FieldRef>> = vec![
            vec![f(":scheme", "https"), f(":path", "/")],
            vec![f(":method", "GET"), f(":method", "GET"), f(":scheme", "https"), f(":path", "/")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "/"), f("x", "a\r\nb")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "/"), f("x", "a\0b")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "/"), f("Upper", "a")],
            vec![f(":method", "GET"), f("x", "1"), f(":scheme", "https"), f(":path", "/")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "/"), f("connection", "close")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "/"), f(":bogus", "1")],
            vec![f(":method", "POST"), f(":scheme", "https"), f(":path", "/"), f("content-length", "1, 2")],
            vec![f(":method", "POST"), f(":scheme", "https"), f(":path", "/"), f("content-length", "-1")],
            vec![f(":method", "GET"), f(":scheme", "https"), f(":path", "/"), f("te", "gzip")],
            vec![f(":method", "CONNECT"), f(":scheme", "https"), f(":path", "/")],
        ];
        for (i, fields) in bad.iter().enumerate() {
            assert!(validate_request(fields, false).is_err(), "case {i} should be rejected");
        }
        let cl = [
            f(":method", "POST"),
            f(":scheme", "https"),
            f(":path", "/"),
            f("content-length", "5"),
            f("content-length", "5"),
        ];
        assert_eq!(validate_request(&cl, false).unwrap().content_length, Some(5));
    }

    #[test]
    fn response_validation() {
        assert_eq!(validate_response(&[f(":status", "204")]).unwrap().status, 204);
        assert!(validate_response(&[f(":status", "20")]).is_err());
        assert!(validate_response(&[f("a", "b")]).is_err());
        assert!(validate_response(&[f(":status", "200"), f(":path", "/")]).is_err());
        for field in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"] {
            assert!(validate_response(&[f(":status", "200"), f(field, "trailers")]).is_err(), "{field}");
        }
        assert!(validate_trailers(&[f(":status", "200")]).is_err());
        assert!(validate_trailers(&[f("x-checksum", "abc")]).is_ok());
    }

    #[test]
    fn settings_reject_duplicates_and_http2_ids() {
        let plain =
            parse_settings(&settings_payload(&LocalSettings { max_field_section_size: 100, ..Default::default() }));
        let plain = plain.unwrap();
        assert!(!plain.extended_connect && !plain.h3_datagram && !plain.webtransport());
        let local = LocalSettings { max_field_section_size: 65536, h3_datagram: false, webtransport_sessions: 4 };
        let s = parse_settings(&settings_payload(&local)).unwrap();
        assert_eq!(s.max_field_section_size, Some(65536));
        assert!(s.extended_connect && s.h3_datagram && s.webtransport());
        assert!(s.all.contains(&(SETTINGS_WT_MAX_SESSIONS, 4)));
        let mut dup = Vec::new();
        for _ in 0..2 {
            put_varint(&mut dup, SETTINGS_MAX_FIELD_SECTION_SIZE);
            put_varint(&mut dup, 1);
        }
        assert_eq!(parse_settings(&dup).unwrap_err(), H3_SETTINGS_ERROR);
        let mut h2 = Vec::new();
        put_varint(&mut h2, 0x2);
        put_varint(&mut h2, 0);
        assert_eq!(parse_settings(&h2).unwrap_err(), H3_SETTINGS_ERROR);
    }

    #[test]
    fn headers_round_trip_through_qpack() {
        let long = "v".repeat(5000);
        let fields = [f(":status", "200"), f("content-type", "text/plain"), f("x-long", &long)];
        let mut out = Vec::new();
        encode_headers_frame(&fields, &mut out).unwrap();
        let (ty, n) = get_varint(&out).unwrap();
        assert_eq!(ty, FRAME_HEADERS);
        let (len, m) = get_varint(&out[n..]).unwrap();
        let block = &out[n + m..];
        assert_eq!(block.len() as u64, len);
        let decoded = decode_header_block(block, 1 << 20).ok().unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[2].value().len(), 5000);
        assert!(matches!(decode_header_block(block, 100), Err(DecodeError::TooLarge)));
    }
}
