//! `us_quic_stream_t`: one request/response (HTTP/3) or one raw byte stream.
//!
//! Receive side: the edge pulls (`poll_read`) when the stream is readable.
//! Bytes are read from QUIC into a buffer the stream holds until they are all
//! delivered, frames are parsed as they are pulled, and each pull returns one
//! output: a header block (decoded, validated, kept until the next one) or DATA
//! payload straight from the read buffer. A paused stream is not pulled, so it
//! takes no more bytes from QUIC. Every message rule that fails is a stream
//! error (RESET_STREAM + STOP_SENDING) and the connection lives on.
//!
//! Send side: header blocks are queued whole in `pending` (they cannot be split by
//! flow control); body bytes are framed to fit the stream's capacity, so
//! `write` returns exactly what QUIC accepted and never buffers body bytes.

use std::ffi::{c_char, c_int, c_uint};
use std::time::{Duration, Instant};

use crate::connection::{self, ConnectionCore};
use crate::context::{EarlyData, EngineAnswer, Role};
use crate::events::Event;
use crate::ext::Ext;
use crate::handles::StreamHandle;
use crate::http3::{self, FieldRef, FrameEvent, FrameReader};
use crate::stream_state::{self, HeaderBlock, RecvState, SendState};

/// `struct us_quic_header_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct QuicHeader {
    pub name: *const c_char,
    pub name_len: c_uint,
    pub value: *const c_char,
    pub value_len: c_uint,
    pub qpack_index: c_int,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(i32)]
pub enum HeadersKind {
    None = 0,
    Informational = 1,
    Initial = 2,
    Trailers = 3,
    /// A WebTransport stream's header: no fields, the session id is
    /// us_quic_stream_webtransport_session. Its bytes follow, unframed.
    WebTransport = 4,
}

/// The stream's state does not allow this send (finished, reset, FIN already
/// requested, headers out of order, or a field the encoder refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendRefused;

/// What one pull of a readable stream yields (see `poll_read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOutput {
    /// A header block is ready (`headers`, `headers_kind`). With `announce`
    /// the application first hears of the stream itself (on_stream_open).
    Headers { announce: bool },
    /// Body bytes (or raw bytes), with the stream's end when `fin`. The bytes
    /// live in the stream's read buffer until the next pull.
    Data { ptr: *const u8, len: usize, fin: bool },
}

/// One parsing step over the stream's read buffer.
enum Step {
    Output(ReadOutput),
    /// Nothing to deliver from what was read; read more.
    NeedInput,
    /// Deliver nothing now and keep what was read: a request head that arrived
    /// in 0-RTT waits for the handshake (`release_held_head`).
    Hold,
    /// The stream (or the connection) failed: the rest of what was read is dropped.
    Stop,
}

/// Where a request head that arrived in 0-RTT is (see `Step::Hold`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) enum HeldHead {
    #[default]
    No,
    /// Decoded and kept: the application hears of it after the handshake.
    Waiting,
    /// The next pull delivers it: the handshake ended, or an engine thread read
    /// it for its host (`read_head_for_host`).
    Released,
}

pub struct Stream {
    pub id: u64,
    /// A request head held for the handshake (servers, 0-RTT).
    pub(crate) head_held: HeldHead,
    /// The core of its connection (connection.rs): all a stream may touch of it.
    pub conn: *mut ConnectionCore,
    pub ext: Ext,
    pub local: bool,
    pub(crate) announced: bool,
    /// Close decided: no callback but on_stream_close will fire.
    pub finished: bool,
    pub error_code: Option<u64>,

    /// Bytes read from QUIC and not yet delivered: `inbox[in_start..in_end]`,
    /// with QUIC's FIN after them when `in_fin`. Empty (no buffer held) between reads.
    inbox: Vec<u8>,
    in_start: usize,
    in_end: usize,
    in_fin: bool,
    /// A StreamReadable event is queued and not yet pulled.
    read_queued: bool,
    /// The FIN was delivered: the next pull completes the receive side.
    fin_delivered: bool,
    /// A peer's WebTransport unidirectional stream, announced with its first pull.
    pending_webtransport: Option<u64>,

    reader: FrameReader,
    header_block: Vec<u8>,
    headers: http3::Fields,
    header_view: Vec<QuicHeader>,
    pub headers_kind: HeadersKind,
    /// What the peer sends us: head, body, trailers, end (stream_state.rs).
    pub(crate) recv: RecvState,
    content_length: Option<u64>,
    body_received: u64,
    /// Servers: the request body is awaited, and made progress last then.
    body_progress_at: Option<Instant>,
    pub(crate) read_paused: bool,

    /// What we send: head, body, FIN or reset (stream_state.rs).
    pub(crate) send: SendState,
    pending: Vec<u8>,
    pub want_write: bool,
    is_head_request: bool,
    /// A WebTransport stream of this session (its CONNECT stream id): carries
    /// bytes, not HTTP/3 frames.
    pub wt_session: Option<u64>,
}

crate::handles::owned_by_handle!(Stream, StreamHandle);

/// # Safety
/// `pc` is the core of a live connection.
pub(crate) unsafe fn create(pc: *mut ConnectionCore, id: u64, ext_size: usize, local: bool) -> *mut Stream {
    // HTTP/3 streams carry messages (head first); raw QUIC streams carry bytes.
    let framed = (*pc).is_h3();
    let s = Box::into_raw(Box::new(Stream {
        id,
        head_held: HeldHead::No,
        conn: pc,
        ext: Ext::new(ext_size),
        local,
        announced: false,
        finished: false,
        error_code: None,
        inbox: Vec::new(),
        in_start: 0,
        in_end: 0,
        in_fin: false,
        read_queued: false,
        fin_delivered: false,
        pending_webtransport: None,
        reader: FrameReader::default(),
        header_block: Vec::new(),
        headers: http3::Fields::default(),
        header_view: Vec::new(),
        headers_kind: HeadersKind::None,
        recv: if framed { RecvState::Head } else { RecvState::Body },
        content_length: None,
        body_received: 0,
        body_progress_at: None,
        read_paused: false,
        send: if framed { SendState::Head } else { SendState::Body },
        pending: Vec::new(),
        want_write: false,
        is_head_request: false,
        wt_session: None,
    }));
    if id & 0x2 != 0 {
        // A unidirectional stream has one side: ours (write-only) or theirs (read-only).
        if local {
            (*s).recv = RecvState::Stopped;
        } else {
            (*s).send = SendState::Finished;
        }
    }
    (*pc).streams.insert(id, Stream::handle(s));
    s
}

/// Most header buffers kept for reuse (`Context::spare_fields`).
const SPARE_FIELDS: usize = 64;

/// A freed stream's header buffers go to `spare` (up to a bound) for the
/// next streams' header blocks.
pub(crate) fn recycle_headers(s: &mut Stream, spare: &mut Vec<http3::Fields>) {
    if spare.len() < SPARE_FIELDS && !s.headers.is_unallocated() {
        s.header_view.clear();
        let mut fields = std::mem::take(&mut s.headers);
        fields.clear();
        spare.push(fields);
    }
}

/// The application hears of the stream (on_stream_open); `local` when this side opened it.
///
/// # Safety
/// `s` is a live stream.
pub(crate) unsafe fn announce(s: *mut Stream, local: bool) {
    (*s).announced = true;
    (*(*(*s).conn).ctx).events.push(Event::StreamOpened { stream: Stream::handle(s), local });
}

/// The stream has something to read: the edge will pull it.
///
/// # Safety
/// `s` is a live stream.
pub(crate) unsafe fn queue_read(s: *mut Stream) {
    if !(*s).read_queued && !(*s).finished {
        (*s).read_queued = true;
        (*(*(*s).conn).ctx).events.push(Event::StreamReadable(Stream::handle(s)));
    }
}

/// The stream carries HTTP/3 frames (not raw QUIC, not WebTransport).
/// A server's request stream (a client-opened bidirectional HTTP/3 stream):
/// what the connection guard counts.
fn is_peer_request(s: &Stream) -> bool {
    // SAFETY: a stream's connection and context outlive it.
    !s.local && s.id & 0x2 == 0 && is_h3(s) && unsafe { (*(*s.conn).ctx).role == Role::Server }
}

fn is_h3(s: &Stream) -> bool {
    // SAFETY: a stream's connection outlives it.
    s.wt_session.is_none() && unsafe { (*s.conn).is_h3() }
}

fn webtransport_enabled(s: &Stream) -> bool {
    // SAFETY: a stream's connection and context outlive it.
    unsafe { (*(*s.conn).ctx).settings.webtransport_sessions > 0 }
}

/// Hands the stream to WebTransport session `session`: announced through
/// on_stream_headers with HeadersKind::WebTransport; bytes flow unframed from now on.
///
/// # Safety
/// `s` is a live stream.
unsafe fn become_webtransport(s: *mut Stream, session: u64) -> Step {
    // From here `wt_session` alone makes the stream unframed (see is_h3); the
    // session signal stands for a head both ways: bytes flow at once.
    (*s).wt_session = Some(session);
    (*s).headers_kind = HeadersKind::WebTransport;
    (*s).recv.head_received();
    (*(*s).conn).guard.head_arrived((*s).id);
    (*s).send.head_sent(false);
    Step::Output(ReadOutput::Headers { announce: announce_late(s) })
}

/// A peer's unidirectional WebTransport stream for `session`, whose first
/// bytes after its header were `rest` (and QUIC's FIN when `fin`): the stream
/// takes them over and is announced on its first pull.
///
/// # Safety
/// `s` is a live stream.
pub(crate) unsafe fn adopt_webtransport(s: *mut Stream, session: u64, rest: &[u8], fin: bool) {
    (*s).pending_webtransport = Some(session);
    if !rest.is_empty() || fin {
        let mut buf = (*(*(*s).conn).ctx).take_read_buffer();
        buf[..rest.len()].copy_from_slice(rest);
        (*s).inbox = buf;
        (*s).in_start = 0;
        (*s).in_end = rest.len();
        (*s).in_fin = fin;
    }
    queue_read(s);
}

/// A locally opened WebTransport stream: its first bytes name the session
/// (RFC-draft signal 0x41 on a bidirectional stream, type 0x54 on a unidirectional one).
///
/// # Safety
/// `s` is a live stream.
pub(crate) unsafe fn open_webtransport(s: *mut Stream, session: u64) {
    (*s).wt_session = Some(session);
    (*s).recv.head_received();
    (*s).send.head_sent(false);
    let mut prefix = Vec::with_capacity(16);
    let signal = if (*s).id & 0x2 != 0 { http3::STREAM_TYPE_WEBTRANSPORT } else { http3::FRAME_WT_STREAM };
    http3::put_varint(&mut prefix, signal);
    http3::put_varint(&mut prefix, session);
    send_all_or_queue(s, &prefix, false);
    connection::mark_dirty((*s).conn);
}

pub fn headers(s: &Stream) -> &[QuicHeader] {
    &s.header_view
}

/// Decide the close; on_stream_close fires after every event queued before it.
///
/// # Safety
/// `s` is a live stream.
pub(crate) unsafe fn close_stream(s: *mut Stream) {
    if (*s).finished {
        return;
    }
    (*s).finished = true;
    let pc = (*s).conn;
    if is_peer_request(&*s) {
        let idle = Duration::from_millis((*(*pc).ctx).settings.idle_timeout_ms);
        (*pc).guard.request_closed(idle, Instant::now());
    }
    (*pc).streams.remove(&(*s).id);
    (*pc).lingering.push((*s).id);
    (*(*pc).ctx).events.push(Event::StreamClosed(Stream::handle(s)));
    connection::mark_dirty(pc);
}

/// # Safety
/// `s` is a live stream.
unsafe fn maybe_complete(s: *mut Stream) {
    if stream_state::is_over((*s).recv, (*s).send) {
        close_stream(s);
    }
}

/// A stream error: reset both directions with `code`; the connection lives on.
///
/// # Safety
/// `s` is a live stream.
pub(crate) unsafe fn fail(s: *mut Stream, code: u64) {
    if (*s).finished {
        return;
    }
    let pc = (*s).conn;
    (*s).error_code = Some(code);
    (*(*pc).ctx).stats.stream_errors += 1;
    if !(*s).send.is_over() {
        let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Write, code);
    }
    if !(*s).recv.is_over() {
        let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Read, code);
    }
    (*s).send.reset();
    (*s).recv.stop();
    close_stream(s);
}

/// The connection is gone: close without touching QUIC.
///
/// # Safety
/// `s` is a live stream.
pub(crate) unsafe fn abandon(s: *mut Stream, code: u64) {
    if !((*s).recv.fin_received() && (*s).send.fin_was_sent()) && (*s).error_code.is_none() {
        (*s).error_code = Some(code);
    }
    close_stream(s);
}

/// The next thing the application gets from this stream, or None when there is
/// nothing (more) to deliver now: nothing readable, paused, or closed. The edge
/// calls it until None, calling back after each output; an output's bytes stay
/// valid until the next call.
///
/// # Safety
/// `s` is a live stream.
pub(crate) unsafe fn poll_read(s: *mut Stream) -> Option<ReadOutput> {
    let pc = (*s).conn;
    (*s).read_queued = false;
    if std::mem::take(&mut (*s).fin_delivered) && !(*s).finished {
        check_stopped(s);
        maybe_complete(s);
    }
    match (*s).head_held {
        HeldHead::No => {}
        HeldHead::Waiting => return None,
        HeldHead::Released => {
            (*s).head_held = HeldHead::No;
            if !(*s).finished && !(*pc).finalized() {
                if (*(*pc).ctx).defer_answers {
                    (*pc).awaiting_answers = true;
                }
                return Some(ReadOutput::Headers { announce: announce_late(s) });
            }
        }
    }
    loop {
        if (*s).finished || (*pc).finalized() {
            release_inbox(s);
            return None;
        }
        if let Some(session) = (*s).pending_webtransport.take() {
            if let Step::Output(out) = become_webtransport(s, session) {
                return Some(out);
            }
            continue;
        }
        if (*s).read_paused {
            return None; // what was read stays in the inbox until the application resumes
        }
        let inbox_empty = (*s).in_start == (*s).in_end && !(*s).in_fin;
        if inbox_empty && ((*s).recv.is_over() || !fill_inbox(s)) {
            release_inbox(s);
            return None;
        }
        let step = if is_h3(&*s) { step_h3(s) } else { step_unframed(s) };
        match step {
            Step::Output(out) => return Some(out),
            Step::NeedInput => {}
            Step::Hold => return None,
            Step::Stop => {
                (*s).in_start = (*s).in_end;
                (*s).in_fin = false;
                release_inbox(s);
                return None;
            }
        }
    }
}

/// One `stream_recv` into the inbox; false when nothing was read (nothing
/// readable, or the peer reset the stream).
///
/// # Safety
/// `s` is a live stream.
unsafe fn fill_inbox(s: *mut Stream) -> bool {
    let pc = (*s).conn;
    if (*s).inbox.is_empty() {
        (*s).inbox = (*(*pc).ctx).take_read_buffer();
    }
    match (*pc).conn.stream_recv((*s).id, &mut (*s).inbox) {
        Ok((n, fin)) => {
            (*s).in_start = 0;
            (*s).in_end = n;
            (*s).in_fin = fin;
            true
        }
        Err(quiche::Error::StreamReset(code)) => {
            peer_reset(s, code);
            false
        }
        Err(_) => false,
    }
}

/// Gives the read buffer back to the context once nothing in it is undelivered.
///
/// # Safety
/// `s` is a live stream.
unsafe fn release_inbox(s: *mut Stream) {
    if (*s).finished {
        (*s).in_start = 0;
        (*s).in_end = 0;
        (*s).in_fin = false;
    }
    if (*s).in_start == (*s).in_end && !(*s).in_fin && !(*s).inbox.is_empty() {
        let buf = std::mem::take(&mut (*s).inbox);
        (*(*(*s).conn).ctx).give_read_buffer(buf);
    }
}

/// Raw QUIC and WebTransport: everything read goes out as it is.
///
/// # Safety
/// `s` is a live stream.
unsafe fn step_unframed(s: *mut Stream) -> Step {
    let inbox = &(*s).inbox;
    let data = &inbox[(*s).in_start..(*s).in_end];
    let fin = std::mem::take(&mut (*s).in_fin);
    (*s).in_start = (*s).in_end;
    if data.is_empty() && !fin {
        return Step::NeedInput;
    }
    if fin {
        (*s).recv.finish();
        (*s).fin_delivered = true;
    }
    Step::Output(ReadOutput::Data { ptr: data.as_ptr(), len: data.len(), fin })
}

/// The peer reset its sending side: the exchange is over for us too.
///
/// # Safety
/// `s` is a live stream.
unsafe fn peer_reset(s: *mut Stream, code: u64) {
    let pc = (*s).conn;
    if is_peer_request(&*s) && !(*s).send.fin_was_sent() {
        connection::request_cancelled(pc);
    }
    (*s).error_code = Some(code);
    (*s).recv.stop();
    if !(*s).send.is_over() {
        let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Write, http3::H3_REQUEST_CANCELLED);
        (*s).send.reset();
    }
    close_stream(s);
}

/// The peer sent STOP_SENDING (quiche already answered with RESET_STREAM).
///
/// # Safety
/// `s` is a live stream.
unsafe fn peer_stopped(s: *mut Stream, code: u64) {
    let pc = (*s).conn;
    (*s).send.reset();
    (*s).pending.clear();
    if (*(*pc).ctx).role == Role::Client && is_h3(&*s) && code == http3::H3_NO_ERROR {
        // The server answered without needing the rest of the request: keep reading.
        maybe_complete(s);
        return;
    }
    if is_peer_request(&*s) {
        connection::request_cancelled(pc);
    }
    (*s).error_code = Some(code);
    if !(*s).recv.is_over() {
        let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Read, http3::H3_REQUEST_CANCELLED);
        (*s).recv.stop();
    }
    close_stream(s);
}

/// A connection error found on this stream: the connection closes, the rest
/// of what this stream read is dropped.
///
/// # Safety
/// `s` is a live stream.
unsafe fn connection_error(s: *mut Stream, code: u64, reason: &str) -> Step {
    connection::connection_error((*s).conn, code, reason);
    Step::Stop
}

/// Parses HTTP/3 frames from the inbox up to the next output.
///
/// # Safety
/// `s` is a live stream.
unsafe fn step_h3(s: *mut Stream) -> Step {
    let buf = std::mem::take(&mut (*s).inbox);
    let mut input = &buf[(*s).in_start..(*s).in_end];
    let step = parse_h3(s, &mut input);
    (*s).in_start = (*s).in_end - input.len();
    (*s).inbox = buf;
    match step {
        Step::NeedInput if (*s).in_fin && !(*s).finished => {
            (*s).in_fin = false;
            on_fin(s)
        }
        step => step,
    }
}

/// # Safety
/// `s` is a live stream.
unsafe fn parse_h3(s: *mut Stream, input: &mut &[u8]) -> Step {
    let pc = (*s).conn;
    let ctx = (*pc).ctx;
    let max_header = (*ctx).settings.max_header_size;
    // A HEADERS frame whose payload arrived in one piece is decoded where it
    // lies; only one split across reads is gathered in `header_block`.
    let mut whole_block: Option<&[u8]> = None;
    while let Some(ev) = (*s).reader.next(input) {
        match ev {
            FrameEvent::Start { ty: http3::FRAME_WT_STREAM, len: session } if opens_as_webtransport(s) => {
                return become_webtransport(s, session);
            }
            FrameEvent::Start { .. } if !(*s).local && (*ctx).role == Role::Client => {
                // Servers open bidirectional streams for WebTransport only.
                return connection_error(s, http3::H3_STREAM_CREATION_ERROR, "server-initiated request stream");
            }
            FrameEvent::Start { ty, len } => match ty {
                http3::FRAME_WT_STREAM if webtransport_enabled(&*s) => {
                    return connection_error(s, http3::H3_FRAME_UNEXPECTED, "WT_STREAM inside a message");
                }
                http3::FRAME_HEADERS if len > max_header => {
                    // Encoded size beyond the limit means a decoded size beyond it too
                    // (QPACK literals only grow when decoded): refused at once (431 on
                    // a server), not read on.
                    header_too_large(s);
                    return Step::Stop;
                }
                http3::FRAME_HEADERS => {
                    (*s).header_block.clear();
                }
                ty if http3::is_reserved_http2_frame(ty) => {
                    return connection_error(s, http3::H3_FRAME_UNEXPECTED, "reserved HTTP/2 frame type");
                }
                http3::FRAME_DATA if !(*s).recv.accepts_data() => {
                    return connection_error(s, http3::H3_FRAME_UNEXPECTED, "DATA outside a message body");
                }
                http3::FRAME_SETTINGS
                | http3::FRAME_GOAWAY
                | http3::FRAME_MAX_PUSH_ID
                | http3::FRAME_CANCEL_PUSH
                | http3::FRAME_PUSH_PROMISE => {
                    return connection_error(s, http3::H3_FRAME_UNEXPECTED, "control frame on a request stream");
                }
                _ => {}
            },
            FrameEvent::Chunk { ty: http3::FRAME_HEADERS, data } => {
                if (*s).header_block.is_empty() && whole_block.is_none() && (*s).reader.payload_complete() {
                    whole_block = Some(data);
                } else {
                    if let Some(first) = whole_block.take() {
                        (*s).header_block.extend_from_slice(first);
                    }
                    (*s).header_block.extend_from_slice(data);
                }
            }
            FrameEvent::Chunk { ty: http3::FRAME_DATA, data } => {
                (*s).body_received += data.len() as u64;
                if (*s).body_progress_at.is_some() && !data.is_empty() {
                    (*s).body_progress_at = Some(Instant::now());
                }
                if (*s).content_length.is_some_and(|cl| (*s).body_received > cl) {
                    fail(s, http3::H3_MESSAGE_ERROR);
                    return Step::Stop;
                }
                if !data.is_empty() {
                    // Deliver FIN with the last bytes when they end the stream exactly.
                    let last = (*s).in_fin && input.is_empty() && (*s).reader.payload_complete();
                    if last && !body_length_matches(s) {
                        fail(s, http3::H3_MESSAGE_ERROR);
                        return Step::Stop;
                    }
                    if last {
                        (*s).in_fin = false;
                        (*s).recv.finish();
                        (*s).fin_delivered = true;
                    }
                    return Step::Output(ReadOutput::Data { ptr: data.as_ptr(), len: data.len(), fin: last });
                }
            }
            FrameEvent::End { ty: http3::FRAME_HEADERS } => match on_header_block(s, whole_block.take()) {
                Step::NeedInput if (*s).finished => return Step::Stop,
                Step::NeedInput => {}
                step => return step,
            },
            _ => {}
        }
    }
    Step::NeedInput
}

/// A peer's bidirectional stream whose first frame type is the WebTransport signal.
///
/// # Safety
/// `s` is a live stream.
unsafe fn opens_as_webtransport(s: *mut Stream) -> bool {
    !(*s).local && (*s).recv.awaits_head() && (*s).headers_kind == HeadersKind::None && webtransport_enabled(&*s)
}

/// # Safety
/// `s` is a live stream.
unsafe fn body_length_matches(s: *mut Stream) -> bool {
    (*s).content_length.is_none_or(|cl| cl == (*s).body_received)
}

/// QUIC's FIN after the last frame read.
///
/// # Safety
/// `s` is a live stream.
unsafe fn on_fin(s: *mut Stream) -> Step {
    let pc = (*s).conn;
    if !(*s).reader.at_frame_boundary() {
        return connection_error(s, http3::H3_FRAME_ERROR, "stream ended inside a frame");
    }
    if (*s).recv.awaits_head() {
        let code =
            if (*(*pc).ctx).role == Role::Server { http3::H3_REQUEST_INCOMPLETE } else { http3::H3_MESSAGE_ERROR };
        fail(s, code);
        return Step::Stop;
    }
    if !body_length_matches(s) {
        fail(s, http3::H3_MESSAGE_ERROR);
        return Step::Stop;
    }
    (*s).recv.finish();
    (*s).fin_delivered = true;
    Step::Output(ReadOutput::Data { ptr: [].as_ptr(), len: 0, fin: true })
}

/// A complete header block: decoded and checked, answered by the engine
/// (static route, 431, stream error), or an output for the application.
///
/// # Safety
/// `s` is a live stream.
unsafe fn on_header_block(s: *mut Stream, whole_block: Option<&[u8]>) -> Step {
    let pc = (*s).conn;
    let ctx = (*pc).ctx;
    // Decoded into the context's buffers; the stream takes them only if the block is valid.
    let max_header_size = (*ctx).settings.max_header_size;
    let block = whole_block.unwrap_or(&(*s).header_block);
    let decoded = http3::decode_header_block(block, max_header_size, &mut (*ctx).decoded_fields);
    (*s).header_block.clear();
    match decoded {
        Ok(()) => {}
        Err(http3::DecodeError::TooLarge) => {
            header_too_large(s);
            return Step::Stop;
        }
        Err(http3::DecodeError::Malformed) => {
            return connection_error(s, http3::QPACK_DECOMPRESSION_FAILED, "bad QPACK header block");
        }
    }
    let fields = &(*ctx).decoded_fields;
    crate::qlog::headers(&mut (*pc).conn, (*s).id, fields.iter(), true);
    let mut held = false;
    let kind = match (*s).recv.header_block() {
        HeaderBlock::Head if (*ctx).role == Role::Server => {
            let max_fields = (*ctx).settings.limits.max_header_fields as usize;
            if max_fields > 0 && fields.len() > max_fields {
                header_too_large(s);
                return Step::Stop;
            }
            let Ok(head) = http3::validate_request(fields.iter(), webtransport_enabled(&*s)) else {
                fail(s, http3::H3_MESSAGE_ERROR);
                return Step::Stop;
            };
            (*s).content_length = head.content_length;
            (*s).is_head_request = head.is_head_request;
            (*s).recv.head_received();
            (*pc).guard.head_arrived((*s).id);
            // An extended CONNECT's stream carries a session, not a body.
            if !head.is_connect && head.content_length != Some(0) {
                let now = Instant::now();
                (*s).body_progress_at = Some(now);
                (*pc).guard.watch_body(&(*ctx).settings.limits, now);
                connection::mark_timer_stale(pc);
            }
            (*ctx).stats.requests += 1;
            if (*ctx).request_head_hook.is_some() && answer_in_engine(s) {
                return Step::NeedInput;
            }
            if (*pc).conn.is_in_early_data() {
                // Arrived in 0-RTT, which anyone who captured it can replay.
                if (*ctx).settings.early_data == EarlyData::SafeMethods && !head.is_safe_method {
                    held = true;
                } else {
                    (*ctx).stats.requests_in_early_data += 1;
                    if (*ctx).decoded_fields.get(b"early-data").is_none() {
                        (*ctx).decoded_fields.append(b"early-data", b"1"); // RFC 8470 5.1
                    }
                }
            }
            HeadersKind::Initial
        }
        HeaderBlock::Head => {
            let Ok(head) = http3::validate_response(fields.iter()) else {
                fail(s, http3::H3_MESSAGE_ERROR);
                return Step::Stop;
            };
            if head.status == 101 {
                fail(s, http3::H3_MESSAGE_ERROR);
                return Step::Stop;
            }
            if head.status < 200 {
                HeadersKind::Informational
            } else {
                (*s).recv.head_received();
                let bodyless = (*s).is_head_request || head.status == 204 || head.status == 304;
                (*s).content_length = if bodyless { None } else { head.content_length };
                HeadersKind::Initial
            }
        }
        HeaderBlock::Trailers => {
            if http3::validate_trailers(fields.iter()).is_err() {
                fail(s, http3::H3_MESSAGE_ERROR);
                return Step::Stop;
            }
            (*s).recv.trailers_received();
            HeadersKind::Trailers
        }
        HeaderBlock::Unexpected => {
            return connection_error(s, http3::H3_FRAME_UNEXPECTED, "HEADERS after trailers");
        }
    };
    std::mem::swap(&mut (*s).headers, &mut (*ctx).decoded_fields);
    if (*ctx).decoded_fields.is_unallocated() {
        // The stream's were new: the next block decodes into a freed stream's.
        if let Some(spare) = (*ctx).spare_fields.pop() {
            (*ctx).decoded_fields = spare;
        }
    }
    (*s).header_view.clear();
    (*s).header_view.extend((*s).headers.iter().map(|h| QuicHeader {
        name: h.name.as_ptr().cast(),
        name_len: h.name.len() as c_uint,
        value: h.value.as_ptr().cast(),
        value_len: h.value.len() as c_uint,
        qpack_index: -1,
    }));
    (*s).headers_kind = kind;
    if held {
        // Kept with what follows it in the inbox until `release_held_head`.
        (*s).head_held = HeldHead::Waiting;
        (*pc).held_for_handshake.push((*s).id);
        (*ctx).stats.requests_held_for_handshake += 1;
        return Step::Hold;
    }
    if kind == HeadersKind::Initial && (*ctx).defer_answers {
        (*pc).awaiting_answers = true;
    }
    if kind == HeadersKind::Initial && (*ctx).reading_heads_for_host {
        // Kept, with what follows it in the inbox, for the host's pull.
        (*s).head_held = HeldHead::Released;
        queue_read(s);
        return Step::Hold;
    }
    Step::Output(ReadOutput::Headers { announce: announce_late(s) })
}

/// A peer's request stream with no head read yet, which an engine thread may
/// read up to its head (`read_head_for_host`): nothing before a request head
/// reaches the application. Not with WebTransport, whose streams may open with
/// a signal instead of a head.
///
/// # Safety
/// `s` is a live stream.
pub(crate) unsafe fn head_readable_for_host(s: *mut Stream) -> bool {
    let pc = (*s).conn;
    is_peer_request(&*s)
        && !webtransport_enabled(&*s)
        && !(*s).announced
        && !(*s).finished
        && !(*pc).finalized()
        && (*s).head_held == HeldHead::No
        && (*s).recv.awaits_head()
}

/// On an engine thread, whose host alone calls the application: reads a
/// request stream up to its head, which the engine answers (static route,
/// 431, stream error) or keeps for the host's next pull of the stream (queued).
///
/// # Safety
/// `s` is a live stream for which `head_readable_for_host` holds.
pub(crate) unsafe fn read_head_for_host(s: *mut Stream) {
    let ctx = (*(*s).conn).ctx;
    (*ctx).reading_heads_for_host = true;
    let output = poll_read(s);
    (*ctx).reading_heads_for_host = false;
    debug_assert!(output.is_none(), "a request stream output something before its head");
}

/// The handshake of a request held in 0-RTT ended: its head (and then what
/// followed it) is delivered on the next pull.
///
/// # Safety
/// `s` is a live stream.
pub(crate) unsafe fn release_held_head(s: *mut Stream) {
    if (*s).head_held == HeldHead::Waiting {
        (*s).head_held = HeldHead::Released;
        queue_read(s);
    }
}

/// A server's request streams are announced (on_stream_open) with their head,
/// not when their first bytes arrive: a stream that is answered by the engine
/// (static route, 431) or fails before a head never costs the application a
/// callback. True when this output is the stream's announcement.
///
/// # Safety
/// `s` is a live stream.
unsafe fn announce_late(s: *mut Stream) -> bool {
    !std::mem::replace(&mut (*s).announced, true)
}

/// Sends the embedder's answer to this request head, if it has one (see
/// `context::RequestHeadHook`); false when the application is to answer.
///
/// # Safety
/// `s` is a live stream.
unsafe fn answer_in_engine(s: *mut Stream) -> bool {
    let pc = (*s).conn;
    let ctx = &mut *(*pc).ctx;
    let Some(hook) = ctx.request_head_hook.as_mut() else { return false };
    let Some(EngineAnswer { frames, head_len }) = hook.answer(&ctx.decoded_fields) else { return false };
    let frames = if (*s).is_head_request { &frames[..head_len] } else { frames };
    if respond_encoded(s, frames).is_ok() && !(*s).recv.fin_received() {
        // A GET has nothing more to say; don't wait for it.
        stop_sending(s, http3::H3_NO_ERROR);
    }
    maybe_complete(s);
    connection::mark_dirty(pc);
    true
}

/// A header block may be sent: an open HTTP/3 stream of a live connection
/// whose sending side takes headers (a head, informational or trailers).
fn accepts_headers(s: &Stream) -> bool {
    // SAFETY: a live stream's connection core outlives it.
    let finalized = unsafe { (*s.conn).finalized() };
    !s.finished && s.send.accepts_headers() && !finalized && is_h3(s)
}

/// A whole response already in HTTP/3 framing (HEADERS, then any DATA), sent
/// with its FIN in one `stream_send` when the stream takes it all.
///
/// # Safety
/// `s` is a live stream.
unsafe fn respond_encoded(s: *mut Stream, frames: &[u8]) -> Result<(), SendRefused> {
    if !accepts_headers(&*s) || (*s).send.head_is_out() {
        return Err(SendRefused);
    }
    (*s).send.head_sent(false);
    (*s).send.request_fin();
    if send_all_or_queue(s, frames, true) {
        (*s).send.fin_sent();
    } else {
        // The rest goes with the FIN from the queue (a stopped stream is found there).
        flush_pending(s);
    }
    connection::mark_dirty((*s).conn);
    Ok(())
}

/// A whole response in one call: head, body (queued whole, so keep it small:
/// flow control drains it) and FIN.
///
/// # Safety
/// `s` is a live stream.
pub unsafe fn respond_whole(s: *mut Stream, fields: &[FieldRef<'_>], body: &[u8]) -> Result<(), SendRefused> {
    send_headers_inner(s, fields, body.is_empty(), false)?;
    if !body.is_empty() {
        let mut frame = Vec::with_capacity(body.len() + 9);
        http3::put_frame_header(&mut frame, http3::FRAME_DATA, body.len() as u64);
        frame.extend_from_slice(body);
        send_all_or_queue(s, &frame, false);
        (*s).send.request_fin();
        flush_pending(s);
    }
    Ok(())
}

/// Server: answer 431 and stop reading; client: stream error. Either way the
/// connection and its other streams are untouched.
///
/// # Safety
/// `s` is a live stream.
unsafe fn header_too_large(s: *mut Stream) {
    let ctx = (*(*s).conn).ctx;
    if (*ctx).role == Role::Client || !(*s).recv.awaits_head() {
        fail(s, http3::H3_EXCESSIVE_LOAD);
        return;
    }
    (*ctx).stats.headers_too_large += 1;
    refuse_request(s, b"431", http3::H3_EXCESSIVE_LOAD);
}

/// A server request stream still waiting for its head.
pub(crate) fn awaits_head(s: &Stream) -> bool {
    !s.finished && s.recv.awaits_head()
}

/// Servers: when the request body this stream awaits last made progress, if
/// it awaits one, the application is reading it, and no response has begun
/// (once one has, the exchange is moving: a long response to a request whose
/// client never ends its body, as with event streams, is not cut).
pub(crate) fn body_awaited_since(s: &Stream) -> Option<Instant> {
    if s.finished || s.recv.is_over() || s.read_paused || s.send.head_is_out() {
        return None;
    }
    s.body_progress_at
}

/// Server: a request past a deadline (its head not complete within the
/// request-head timeout, or its body stalled for the body timeout before any
/// response) gets 408 and is no longer read. False when it no longer awaited
/// anything.
///
/// # Safety
/// `s` is a live stream.
pub(crate) unsafe fn request_timed_out(s: *mut Stream) -> bool {
    if !awaits_head(&*s) && body_awaited_since(&*s).is_none() {
        return false;
    }
    (*(*(*s).conn).ctx).stats.requests_timed_out += 1;
    refuse_request(s, b"408", http3::H3_REQUEST_REJECTED);
    true
}

/// Answers a request the server will not read (its status, no body) and stops
/// reading it; the connection and its other streams are untouched.
///
/// # Safety
/// `s` is a live stream.
unsafe fn refuse_request(s: *mut Stream, status: &[u8], code: u64) {
    let pc = (*s).conn;
    (*(*pc).ctx).stats.stream_errors += 1;
    (*s).error_code = Some(code);
    let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Read, http3::H3_NO_ERROR);
    (*s).recv.stop();
    let fields = [FieldRef { name: b":status", value: status }, FieldRef { name: b"content-length", value: b"0" }];
    if send_headers_inner(s, &fields, true, false).is_err() {
        fail(s, code);
        return;
    }
    maybe_complete(s);
}

/// Learns of a STOP_SENDING the peer sent. quiche reports stopped streams
/// through `writable()` only while the connection has send capacity, so a
/// writer blocked on flow control (or a client whose response just ended) asks.
///
/// # Safety
/// `s` is a live stream.
pub(crate) unsafe fn check_stopped(s: *mut Stream) {
    if (*s).finished || (*s).send.is_over() {
        return;
    }
    match (*(*s).conn).conn.stream_capacity((*s).id) {
        Err(quiche::Error::StreamStopped(code)) => peer_stopped(s, code),
        // quiche already collected the stream: its send side was reset on the
        // peer's STOP_SENDING and the receive side was read to the end.
        Err(quiche::Error::InvalidStreamState(_)) => {
            let code = if (*s).recv.fin_received() { http3::H3_NO_ERROR } else { http3::H3_REQUEST_CANCELLED };
            peer_stopped(s, code);
        }
        _ => {}
    }
}

/// A stream waiting to write: blocked by flow control or holding queued bytes.
pub fn is_send_blocked(s: &Stream) -> bool {
    !s.finished && (s.want_write || !s.pending.is_empty())
}

/// # Safety
/// `s` is a live stream.
pub(crate) unsafe fn on_writable(s: *mut Stream) {
    let pc = (*s).conn;
    if (*s).finished {
        return;
    }
    if let Err(quiche::Error::StreamStopped(code)) = (*pc).conn.stream_capacity((*s).id) {
        peer_stopped(s, code);
        return;
    }
    if !flush_pending(s) || (*s).finished {
        return;
    }
    if (*s).want_write {
        (*s).want_write = false;
        (*(*pc).ctx).events.push(Event::StreamWritable(Stream::handle(s)));
    }
}

/// Hands queued bytes (and a requested FIN) to QUIC; true when nothing is left.
///
/// # Safety
/// `s` is a live stream.
unsafe fn flush_pending(s: *mut Stream) -> bool {
    let pc = (*s).conn;
    let id = (*s).id;
    if (*s).send.fin_pending() && (*s).pending.is_empty() && is_h3(&*s) {
        // A FIN must not travel alone. quiche 0.30 deems a stream's sending side
        // complete once its data is acknowledged, whether or not a zero-length
        // FIN written after that data was ever sent, and then forgets the stream
        // with the FIN unsent (cloudflare/quiche#2525): the peer reads every byte
        // and waits for the end forever. That happens whenever the last bytes are
        // acknowledged between the FIN being written and the next send, routine
        // for a handler that writes its body and ends it a turn later. An HTTP/3
        // stream can carry the FIN on a reserved frame, which every peer ignores
        // (RFC 9114 7.2.8); then the FIN shares the fate of real bytes.
        (*s).pending.extend_from_slice(&http3::FIN_CARRIER_FRAME);
    }
    while !(*s).pending.is_empty() {
        // The FIN goes with the last queued bytes (quiche keeps it only when they all fit).
        let fin = (*s).send.fin_pending();
        match (*pc).conn.stream_send(id, &(*s).pending, fin) {
            Ok(n) if n == (*s).pending.len() => {
                (*s).pending.clear();
                if fin {
                    (*s).send.fin_sent();
                    maybe_complete(s);
                }
            }
            Ok(n) if n > 0 => {
                (*s).pending.drain(..n);
            }
            Err(quiche::Error::StreamStopped(code)) => {
                peer_stopped(s, code);
                return false;
            }
            _ => break,
        }
    }
    if !(*s).pending.is_empty() {
        return false;
    }
    if (*s).send.fin_pending() {
        // Raw QUIC and WebTransport streams carry bytes of the application's
        // only: their FIN goes alone (still exposed to quiche#2525 until quiche
        // ships the fix).
        match (*pc).conn.stream_send(id, &[], true) {
            Ok(_) => {
                (*s).send.fin_sent();
                maybe_complete(s);
            }
            Err(quiche::Error::StreamStopped(code)) => {
                peer_stopped(s, code);
                return false;
            }
            Err(_) => return false,
        }
    }
    connection::mark_dirty(pc);
    true
}

/// How much a write takes when the stream has too little credit for a frame (see `write`).
const BLOCKED_PROBE_LEN: usize = 1024;

/// Writes body bytes. Returns the bytes accepted, or -1 when the stream cannot
/// carry a body (finished, reset, FIN already requested, no head sent yet).
///
/// # Safety
/// `s` is a live stream.
pub unsafe fn write(s: *mut Stream, data: &[u8]) -> isize {
    let pc = (*s).conn;
    if (*s).finished || !(*s).send.accepts_body() || (*pc).finalized() {
        return -1;
    }
    let h3 = is_h3(&*s);
    if !flush_pending(s) {
        (*s).want_write = !(*s).finished;
        return if (*s).finished { -1 } else { 0 };
    }
    if data.is_empty() {
        return 0;
    }
    let id = (*s).id;
    let cap = match (*pc).conn.stream_capacity(id) {
        Ok(c) => c,
        Err(quiche::Error::StreamStopped(code)) => {
            peer_stopped(s, code);
            return -1;
        }
        Err(_) => return -1,
    };
    let accepted = if h3 {
        // Frame header (type + varint length) and payload must both fit.
        let mut n = data.len().min(cap);
        while n > 0 && 1 + http3::varint_len(n as u64) + n > cap {
            n = cap.saturating_sub(1 + http3::varint_len(n as u64));
        }
        if n == 0 {
            // Too little credit for a frame header and a byte. Hand QUIC a small
            // frame anyway (what does not fit is queued): QUIC must see the write
            // hit the limit to tell the peer it is blocked (DATA_BLOCKED /
            // STREAM_DATA_BLOCKED). Without that signal a peer that grants credit
            // only when asked, or when much was consumed, never does, and the
            // response stalls a few bytes short of its window.
            n = data.len().min(BLOCKED_PROBE_LEN);
            (*s).want_write = true;
        }
        let mut frame_header = Vec::with_capacity(9);
        http3::put_frame_header(&mut frame_header, http3::FRAME_DATA, n as u64);
        send_all_or_queue(s, &frame_header, false);
        send_all_or_queue(s, &data[..n], false);
        n
    } else {
        match (*pc).conn.stream_send(id, data, false) {
            Ok(n) => n,
            Err(quiche::Error::Done) => 0,
            Err(quiche::Error::StreamStopped(code)) => {
                peer_stopped(s, code);
                return -1;
            }
            Err(_) => return -1,
        }
    };
    if accepted < data.len() {
        (*s).want_write = true;
    }
    connection::mark_dirty(pc);
    accepted as isize
}

/// Sends bytes already accounted for, with QUIC's FIN when `fin`; whatever
/// QUIC does not take is queued (and then quiche keeps no FIN: false).
///
/// # Safety
/// `s` is a live stream.
unsafe fn send_all_or_queue(s: *mut Stream, bytes: &[u8], fin: bool) -> bool {
    let pc = (*s).conn;
    let sent = if (*s).pending.is_empty() { (*pc).conn.stream_send((*s).id, bytes, fin).unwrap_or(0) } else { 0 };
    if sent < bytes.len() {
        (*s).pending.extend_from_slice(&bytes[sent..]);
        return false;
    }
    true
}

/// Sends a header block. The first final block is the message head; a block
/// after it is trailers (no pseudo-headers allowed).
///
/// # Safety
/// `s` is a live stream.
pub unsafe fn send_headers(s: *mut Stream, fields: &[FieldRef<'_>], end_stream: bool) -> Result<(), SendRefused> {
    send_headers_inner(s, fields, end_stream, false)
}

/// # Safety
/// `s` is a live stream.
pub unsafe fn send_informational(s: *mut Stream, status: &[u8]) -> Result<(), SendRefused> {
    let is_1xx = status.len() == 3 && status[0] == b'1' && status.iter().all(u8::is_ascii_digit);
    if !is_1xx || status == b"101" || (*(*(*s).conn).ctx).role != Role::Server {
        return Err(SendRefused);
    }
    send_headers_inner(s, &[FieldRef { name: b":status", value: status }], false, true)
}

/// # Safety
/// `s` is a live stream.
unsafe fn send_headers_inner(
    s: *mut Stream,
    fields: &[FieldRef<'_>],
    end_stream: bool,
    informational: bool,
) -> Result<(), SendRefused> {
    let pc = (*s).conn;
    if !accepts_headers(&*s) {
        return Err(SendRefused);
    }
    let trailers = (*s).send.head_is_out();
    if informational && trailers {
        return Err(SendRefused);
    }
    if trailers && fields.iter().any(|f| f.name.first() == Some(&b':')) {
        return Err(SendRefused);
    }
    if !trailers && !informational && (*(*pc).ctx).role == Role::Client {
        (*s).is_head_request = fields.iter().any(|f| f.name == b":method" && f.value == b"HEAD");
    }
    let mut frame = Vec::with_capacity(256);
    http3::encode_headers_frame(fields, &mut frame).map_err(|_| SendRefused)?;
    crate::qlog::headers(&mut (*pc).conn, (*s).id, fields.iter().copied(), false);
    (*s).pending.extend_from_slice(&frame);
    if !informational {
        (*s).send.head_sent(false);
    }
    if end_stream {
        (*s).send.request_fin();
    }
    flush_pending(s);
    connection::mark_dirty(pc);
    Ok(())
}

/// FIN after what was written.
///
/// # Safety
/// `s` is a live stream.
pub unsafe fn shutdown(s: *mut Stream) {
    if (*s).finished || (*s).send.closed_for_writes() {
        return;
    }
    (*s).send.request_fin();
    flush_pending(s);
}

/// # Safety
/// `s` is a live stream.
pub unsafe fn shutdown_read(s: *mut Stream) {
    stop_sending(s, http3::H3_NO_ERROR);
}

/// STOP_SENDING with `code`: the peer should stop writing.
///
/// # Safety
/// `s` is a live stream.
pub unsafe fn stop_sending(s: *mut Stream, code: u64) {
    let pc = (*s).conn;
    if (*s).finished || (*s).recv.is_over() {
        return;
    }
    let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Read, code);
    (*s).recv.stop();
    connection::mark_dirty(pc);
    maybe_complete(s);
}

/// FIN if not sent, stop reading; on_stream_close follows once queued bytes are out.
///
/// # Safety
/// `s` is a live stream.
pub unsafe fn close(s: *mut Stream) {
    if (*s).finished {
        return;
    }
    shutdown_read(s);
    (*s).send.request_fin();
    flush_pending(s);
    maybe_complete(s);
}

/// RESET_STREAM (never FIN) and STOP_SENDING with `code`.
///
/// # Safety
/// `s` is a live stream.
pub unsafe fn reset(s: *mut Stream, code: u64) {
    if (*s).finished {
        return;
    }
    let pc = (*s).conn;
    (*s).error_code = Some(code);
    if !(*s).send.is_over() {
        let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Write, code);
    }
    if !(*s).recv.is_over() {
        let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Read, code);
    }
    (*s).pending.clear();
    (*s).send.reset();
    (*s).recv.stop();
    close_stream(s);
}

/// # Safety
/// `s` is a live stream.
pub unsafe fn set_want_read(s: *mut Stream, want: bool) {
    if (*s).finished {
        return;
    }
    let was_paused = (*s).read_paused;
    (*s).read_paused = !want;
    if was_paused && want {
        // Time spent paused by the application is not the client's stall.
        if (*s).body_progress_at.is_some() {
            let now = Instant::now();
            (*s).body_progress_at = Some(now);
            let pc = (*s).conn;
            (*pc).guard.watch_body(&(*(*pc).ctx).settings.limits, now);
        }
        // Bytes may wait in the inbox that QUIC no longer lists as readable.
        let pc = (*s).conn;
        (*pc).resumed_reads.push((*s).id);
        connection::mark_dirty(pc);
    }
}

/// # Safety
/// `s` is a live stream.
pub unsafe fn set_want_write(s: *mut Stream, want: bool) {
    if (*s).finished {
        return;
    }
    (*s).want_write = want;
    if want {
        connection::mark_dirty((*s).conn);
    }
}

pub fn has_unsent(s: &Stream) -> bool {
    !s.pending.is_empty() || s.send.fin_pending()
}
