//! HTTP/3's registry numbers: frame types, stream types, SETTINGS identifiers and
//! error codes (RFC 9114 11.2, RFC 9204, RFC 9297, the WebTransport drafts).

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
