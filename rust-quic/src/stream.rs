//! `us_quic_stream_t`: one request/response (HTTP/3) or one raw byte stream.
//!
//! Receive side: frames are parsed as they arrive; DATA payload goes to
//! on_stream_data straight from the read buffer; a header block is decoded,
//! validated and kept until the stream closes. Every message rule that fails is a
//! stream error (RESET_STREAM + STOP_SENDING) and the connection lives on.
//!
//! Send side: header blocks are queued whole in `pending` (they cannot be split by
//! flow control); body bytes are framed to fit the stream's capacity, so
//! `write` returns exactly what QUIC accepted and never buffers body bytes.

use std::ffi::{c_char, c_int, c_uint};
use std::time::{Duration, Instant};

use crate::context::{self, Role};
use crate::ext::Ext;
use crate::http3::{self, FieldRef, FrameEvent, FrameReader};
use crate::peer_context::{self, PeerContext};

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

pub struct Stream {
    pub id: u64,
    pub conn: *mut PeerContext,
    pub ext: Ext,
    pub local: bool,
    pub(crate) announced: bool,
    /// Close decided: no callback but on_stream_close will fire.
    pub finished: bool,
    pub(crate) close_fired: bool,
    pub error_code: Option<u64>,

    reader: FrameReader,
    header_block: Vec<u8>,
    header_discard: bool,
    headers: Vec<quiche::h3::Header>,
    header_view: Vec<QuicHeader>,
    pub headers_kind: HeadersKind,
    head_done: bool,
    trailers_done: bool,
    content_length: Option<u64>,
    body_received: u64,
    /// Servers: the request body is awaited, and made progress last then.
    body_progress_at: Option<Instant>,
    fin_received: bool,
    pub(crate) read_paused: bool,
    read_shut: bool,

    pending: Vec<u8>,
    final_headers_sent: bool,
    fin_requested: bool,
    fin_sent: bool,
    reset_sent: bool,
    pub want_write: bool,
    is_head_request: bool,
    /// A WebTransport stream of this session (its CONNECT stream id): carries
    /// bytes, not HTTP/3 frames.
    pub wt_session: Option<u64>,
}

pub(crate) unsafe fn create(pc: *mut PeerContext, id: u64, ext_size: usize, local: bool) -> *mut Stream {
    let s = Box::into_raw(Box::new(Stream {
        id,
        conn: pc,
        ext: Ext::new(ext_size),
        local,
        announced: false,
        finished: false,
        close_fired: false,
        error_code: None,
        reader: FrameReader::default(),
        header_block: Vec::new(),
        header_discard: false,
        headers: Vec::new(),
        header_view: Vec::new(),
        headers_kind: HeadersKind::None,
        head_done: false,
        trailers_done: false,
        content_length: None,
        body_received: 0,
        body_progress_at: None,
        fin_received: false,
        read_paused: false,
        read_shut: false,
        pending: Vec::new(),
        final_headers_sent: false,
        fin_requested: false,
        fin_sent: false,
        reset_sent: false,
        want_write: false,
        is_head_request: false,
        wt_session: None,
    }));
    if id & 0x2 != 0 {
        // A unidirectional stream has one side: ours (write-only) or theirs (read-only).
        if local {
            (*s).read_shut = true;
        } else {
            (*s).fin_requested = true;
            (*s).fin_sent = true;
        }
    }
    (*pc).streams.insert(id, s);
    s
}

pub(crate) unsafe fn announce(s: *mut Stream, is_client: bool) {
    (*s).announced = true;
    let ctx = (*(*s).conn).ctx;
    if let Some(cb) = (*ctx).callbacks.on_stream_open {
        cb(s, c_int::from(is_client));
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
    s.wt_session.is_none() && unsafe { peer_context::is_h3(&*s.conn) }
}

fn webtransport_enabled(s: &Stream) -> bool {
    // SAFETY: a stream's connection and context outlive it.
    unsafe { (*(*s.conn).ctx).settings.webtransport_sessions > 0 }
}

/// Hands the stream to WebTransport session `session`: announced through
/// on_stream_headers with HeadersKind::WebTransport; bytes flow unframed from now on.
pub(crate) unsafe fn become_webtransport(s: *mut Stream, session: u64) {
    if !announce_late(s) {
        return;
    }
    // From here `wt_session` alone makes the stream unframed (see is_h3).
    (*s).wt_session = Some(session);
    (*s).headers_kind = HeadersKind::WebTransport;
    let ctx = (*(*s).conn).ctx;
    if let Some(cb) = (*ctx).callbacks.on_stream_headers {
        cb(s);
    }
}

/// A locally opened WebTransport stream: its first bytes name the session
/// (RFC-draft signal 0x41 on a bidirectional stream, type 0x54 on a unidirectional one).
pub(crate) unsafe fn open_webtransport(s: *mut Stream, session: u64) {
    (*s).wt_session = Some(session);
    let mut prefix = Vec::with_capacity(16);
    let signal = if (*s).id & 0x2 != 0 { http3::STREAM_TYPE_WEBTRANSPORT } else { http3::FRAME_WT_STREAM };
    http3::put_varint(&mut prefix, signal);
    http3::put_varint(&mut prefix, session);
    send_all_or_queue(s, &prefix);
    context::mark_dirty((*s).conn);
}

/// Bytes of a stream without HTTP/3 framing (raw QUIC or WebTransport).
pub(crate) unsafe fn deliver_unframed(s: *mut Stream, data: &[u8], fin: bool) {
    if data.is_empty() && !fin {
        return;
    }
    if fin {
        (*s).fin_received = true;
    }
    deliver_data(s, data, fin);
    if fin && !(*s).finished {
        check_stopped(s);
        maybe_complete(s);
    }
}

pub fn headers(s: &Stream) -> &[QuicHeader] {
    &s.header_view
}

/// Decide the close; on_stream_close fires when the current engine frame unwinds.
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
    (*(*pc).ctx).closing_streams.push(s);
    context::mark_dirty(pc);
}

unsafe fn maybe_complete(s: *mut Stream) {
    if ((*s).fin_received || (*s).read_shut) && ((*s).fin_sent || (*s).reset_sent) {
        close_stream(s);
    }
}

/// A stream error: reset both directions with `code`; the connection lives on.
pub(crate) unsafe fn fail(s: *mut Stream, code: u64) {
    if (*s).finished {
        return;
    }
    let pc = (*s).conn;
    (*s).error_code = Some(code);
    (*(*pc).ctx).stats.stream_errors += 1;
    if !(*s).fin_sent {
        let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Write, code);
    }
    if !(*s).fin_received {
        let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Read, code);
    }
    (*s).reset_sent = true;
    (*s).read_shut = true;
    close_stream(s);
}

/// The connection is gone: close without touching QUIC.
pub(crate) unsafe fn abandon(s: *mut Stream, code: u64) {
    if !((*s).fin_received && (*s).fin_sent) && (*s).error_code.is_none() {
        (*s).error_code = Some(code);
    }
    close_stream(s);
}

unsafe fn deliver_data(s: *mut Stream, data: &[u8], fin: bool) {
    let ctx = (*(*s).conn).ctx;
    if let Some(cb) = (*ctx).callbacks.on_stream_data {
        cb(s, data.as_ptr().cast(), data.len() as c_uint, c_int::from(fin));
    }
}

pub(crate) unsafe fn on_readable(s: *mut Stream) {
    let pc = (*s).conn;
    let ctx = (*pc).ctx;
    while !(*s).finished && !(*s).read_paused && !(*s).read_shut && !(*s).fin_received && !(*pc).finalized {
        let mut buf = std::mem::take(&mut (*ctx).recv_buf);
        let result = (*pc).conn.stream_recv((*s).id, &mut buf);
        let more = match result {
            Ok((n, fin)) => {
                if is_h3(&*s) {
                    feed_h3(s, &buf[..n], fin);
                } else {
                    deliver_unframed(s, &buf[..n], fin);
                }
                !fin
            }
            Err(quiche::Error::StreamReset(code)) => {
                peer_reset(s, code);
                false
            }
            Err(_) => false,
        };
        (*ctx).recv_buf = buf;
        if !more {
            break;
        }
    }
}

/// The peer reset its sending side: the exchange is over for us too.
unsafe fn peer_reset(s: *mut Stream, code: u64) {
    let pc = (*s).conn;
    if is_peer_request(&*s) && !(*s).fin_sent {
        peer_context::request_cancelled(pc);
    }
    (*s).error_code = Some(code);
    (*s).read_shut = true;
    if !(*s).fin_sent && !(*s).reset_sent {
        let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Write, http3::H3_REQUEST_CANCELLED);
        (*s).reset_sent = true;
    }
    close_stream(s);
}

/// The peer sent STOP_SENDING (quiche already answered with RESET_STREAM).
unsafe fn peer_stopped(s: *mut Stream, code: u64) {
    let pc = (*s).conn;
    (*s).reset_sent = true;
    (*s).pending.clear();
    if (*(*pc).ctx).role == Role::Client && is_h3(&*s) && code == http3::H3_NO_ERROR {
        // The server answered without needing the rest of the request: keep reading.
        maybe_complete(s);
        return;
    }
    if is_peer_request(&*s) {
        peer_context::request_cancelled(pc);
    }
    (*s).error_code = Some(code);
    if !(*s).fin_received && !(*s).read_shut {
        let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Read, http3::H3_REQUEST_CANCELLED);
        (*s).read_shut = true;
    }
    close_stream(s);
}

unsafe fn feed_h3(s: *mut Stream, data: &[u8], fin: bool) {
    let pc = (*s).conn;
    let ctx = (*pc).ctx;
    let max_header = (*ctx).settings.max_header_size;
    let mut input = data;
    while let Some(ev) = (*s).reader.next(&mut input) {
        match ev {
            FrameEvent::Start { ty: http3::FRAME_WT_STREAM, len: session } if opens_as_webtransport(s) => {
                become_webtransport(s, session);
                if !(*s).finished && !(*pc).finalized {
                    deliver_unframed(s, input, fin);
                }
                return;
            }
            FrameEvent::Start { .. } if !(*s).local && (*ctx).role == Role::Client => {
                // Servers open bidirectional streams for WebTransport only.
                peer_context::connection_error(pc, http3::H3_STREAM_CREATION_ERROR, "server-initiated request stream");
                return;
            }
            FrameEvent::Start { ty, len } => match ty {
                http3::FRAME_WT_STREAM if webtransport_enabled(&*s) => {
                    peer_context::connection_error(pc, http3::H3_FRAME_UNEXPECTED, "WT_STREAM inside a message");
                    return;
                }
                http3::FRAME_HEADERS if len > max_header => {
                    // Encoded size beyond the limit means a decoded size beyond it too
                    // (QPACK literals only grow when decoded): refused at once (431 on
                    // a server), not read on.
                    header_too_large(s);
                    return;
                }
                http3::FRAME_HEADERS => {
                    (*s).header_block.clear();
                    (*s).header_discard = false;
                }
                ty if http3::is_reserved_http2_frame(ty) => {
                    peer_context::connection_error(pc, http3::H3_FRAME_UNEXPECTED, "reserved HTTP/2 frame type");
                    return;
                }
                http3::FRAME_DATA if !(*s).head_done || (*s).trailers_done => {
                    peer_context::connection_error(pc, http3::H3_FRAME_UNEXPECTED, "DATA outside a message body");
                    return;
                }
                http3::FRAME_SETTINGS
                | http3::FRAME_GOAWAY
                | http3::FRAME_MAX_PUSH_ID
                | http3::FRAME_CANCEL_PUSH
                | http3::FRAME_PUSH_PROMISE => {
                    peer_context::connection_error(pc, http3::H3_FRAME_UNEXPECTED, "control frame on a request stream");
                    return;
                }
                _ => {}
            },
            FrameEvent::Chunk { ty: http3::FRAME_HEADERS, data } if !(*s).header_discard => {
                (*s).header_block.extend_from_slice(data);
            }
            FrameEvent::Chunk { ty: http3::FRAME_DATA, data } => {
                (*s).body_received += data.len() as u64;
                if (*s).body_progress_at.is_some() && !data.is_empty() {
                    (*s).body_progress_at = Some(Instant::now());
                }
                if (*s).content_length.is_some_and(|cl| (*s).body_received > cl) {
                    fail(s, http3::H3_MESSAGE_ERROR);
                    return;
                }
                if !data.is_empty() {
                    // Deliver FIN with the last bytes when they end the stream exactly.
                    let last = fin && input.is_empty() && (*s).reader.payload_complete();
                    if last && !body_length_matches(s) {
                        fail(s, http3::H3_MESSAGE_ERROR);
                        return;
                    }
                    if last {
                        (*s).fin_received = true;
                    }
                    deliver_data(s, data, last);
                    if (*s).finished || (*pc).finalized {
                        return;
                    }
                    if last {
                        check_stopped(s);
                        maybe_complete(s);
                        return;
                    }
                }
            }
            FrameEvent::End { ty: http3::FRAME_HEADERS } => {
                on_header_block(s);
                if (*s).finished || (*pc).finalized {
                    return;
                }
            }
            _ => {}
        }
    }
    if fin && !(*s).finished {
        on_fin(s);
    }
}

/// A peer's bidirectional stream whose first frame type is the WebTransport signal.
unsafe fn opens_as_webtransport(s: *mut Stream) -> bool {
    !(*s).local && !(*s).head_done && (*s).headers_kind == HeadersKind::None && webtransport_enabled(&*s)
}

unsafe fn body_length_matches(s: *mut Stream) -> bool {
    (*s).content_length.is_none_or(|cl| cl == (*s).body_received)
}

unsafe fn on_fin(s: *mut Stream) {
    let pc = (*s).conn;
    if !(*s).reader.at_frame_boundary() {
        peer_context::connection_error(pc, http3::H3_FRAME_ERROR, "stream ended inside a frame");
        return;
    }
    if !(*s).head_done {
        let code =
            if (*(*pc).ctx).role == Role::Server { http3::H3_REQUEST_INCOMPLETE } else { http3::H3_MESSAGE_ERROR };
        fail(s, code);
        return;
    }
    if !body_length_matches(s) {
        fail(s, http3::H3_MESSAGE_ERROR);
        return;
    }
    (*s).fin_received = true;
    deliver_data(s, &[], true);
    check_stopped(s);
    maybe_complete(s);
}

unsafe fn on_header_block(s: *mut Stream) {
    let pc = (*s).conn;
    let ctx = (*pc).ctx;
    let block = std::mem::take(&mut (*s).header_block);
    if (*s).header_discard {
        header_too_large(s);
        return;
    }
    let fields = match http3::decode_header_block(&block, (*ctx).settings.max_header_size) {
        Ok(f) => f,
        Err(http3::DecodeError::TooLarge) => {
            header_too_large(s);
            return;
        }
        Err(http3::DecodeError::Malformed) => {
            peer_context::connection_error(pc, http3::QPACK_DECOMPRESSION_FAILED, "bad QPACK header block");
            return;
        }
    };
    let kind = if !(*s).head_done {
        if (*ctx).role == Role::Server {
            let max_fields = (*ctx).settings.limits.max_header_fields as usize;
            if max_fields > 0 && fields.len() > max_fields {
                header_too_large(s);
                return;
            }
            let Ok(head) = http3::validate_request(&fields, webtransport_enabled(&*s)) else {
                fail(s, http3::H3_MESSAGE_ERROR);
                return;
            };
            (*s).content_length = head.content_length;
            (*s).is_head_request = head.is_head_request;
            (*s).head_done = true;
            // An extended CONNECT's stream carries a session, not a body.
            if !head.is_connect && !(*s).fin_received && head.content_length != Some(0) {
                let now = Instant::now();
                (*s).body_progress_at = Some(now);
                (*pc).guard.watch_body(&(*ctx).settings.limits, now);
            }
            (*ctx).stats.requests += 1;
            if !(*ctx).static_routes.is_empty() && serve_static(s, &fields) {
                return;
            }
            HeadersKind::Initial
        } else {
            let Ok(head) = http3::validate_response(&fields) else {
                fail(s, http3::H3_MESSAGE_ERROR);
                return;
            };
            if head.status == 101 {
                fail(s, http3::H3_MESSAGE_ERROR);
                return;
            }
            if head.status < 200 {
                HeadersKind::Informational
            } else {
                (*s).head_done = true;
                let bodyless = (*s).is_head_request || head.status == 204 || head.status == 304;
                (*s).content_length = if bodyless { None } else { head.content_length };
                HeadersKind::Initial
            }
        }
    } else if !(*s).trailers_done {
        if http3::validate_trailers(&fields).is_err() {
            fail(s, http3::H3_MESSAGE_ERROR);
            return;
        }
        (*s).trailers_done = true;
        HeadersKind::Trailers
    } else {
        peer_context::connection_error(pc, http3::H3_FRAME_UNEXPECTED, "HEADERS after trailers");
        return;
    };
    (*s).headers = fields;
    (*s).header_view = (*s)
        .headers
        .iter()
        .map(|h| {
            use quiche::h3::NameValue;
            QuicHeader {
                name: h.name().as_ptr().cast(),
                name_len: h.name().len() as c_uint,
                value: h.value().as_ptr().cast(),
                value_len: h.value().len() as c_uint,
                qpack_index: -1,
            }
        })
        .collect();
    (*s).headers_kind = kind;
    if !announce_late(s) {
        return;
    }
    if kind == HeadersKind::Initial && (*ctx).defer_answers {
        (*pc).awaiting_answers = true;
    }
    if let Some(cb) = (*ctx).callbacks.on_stream_headers {
        cb(s);
    }
}

/// A server's request streams are announced (on_stream_open) with their head,
/// not when their first bytes arrive: a stream that is answered by the engine
/// (static route, 431) or fails before a head never costs the application a
/// callback. False when the application closed the stream in on_stream_open.
unsafe fn announce_late(s: *mut Stream) -> bool {
    if !(*s).announced {
        announce(s, false);
    }
    !(*s).finished && !(*(*s).conn).finalized
}

/// Answers a GET/HEAD of a static route; false when no route matches.
unsafe fn serve_static(s: *mut Stream, fields: &[quiche::h3::Header]) -> bool {
    use quiche::h3::NameValue;
    let pc = (*s).conn;
    let ctx = (*pc).ctx;
    let field = |name: &[u8]| fields.iter().find(|h| h.name() == name).map(|h| h.value());
    let (Some(method), Some(path)) = (field(b":method"), field(b":path")) else { return false };
    let Some((head, body)) = (*ctx).static_routes.answer(method, path, field(b"if-none-match")) else { return false };
    let body = if (*s).is_head_request { &[][..] } else { body };
    if respond_whole(s, &head, body).is_ok() && !(*s).fin_received {
        // A GET has nothing more to say; don't wait for it.
        stop_sending(s, http3::H3_NO_ERROR);
    }
    maybe_complete(s);
    context::mark_dirty(pc);
    true
}

/// A whole response in one call: head, body (queued whole, so keep it small:
/// flow control drains it) and FIN.
pub unsafe fn respond_whole(s: *mut Stream, fields: &[FieldRef<'_>], body: &[u8]) -> Result<(), SendRefused> {
    send_headers_inner(s, fields, body.is_empty(), false)?;
    if !body.is_empty() {
        let mut frame = Vec::with_capacity(body.len() + 9);
        http3::put_frame_header(&mut frame, http3::FRAME_DATA, body.len() as u64);
        frame.extend_from_slice(body);
        send_all_or_queue(s, &frame);
        (*s).fin_requested = true;
        flush_pending(s);
    }
    Ok(())
}

/// Server: answer 431 and stop reading; client: stream error. Either way the
/// connection and its other streams are untouched.
unsafe fn header_too_large(s: *mut Stream) {
    let ctx = (*(*s).conn).ctx;
    if (*ctx).role == Role::Client || (*s).head_done {
        fail(s, http3::H3_EXCESSIVE_LOAD);
        return;
    }
    (*ctx).stats.headers_too_large += 1;
    refuse_request(s, b"431", http3::H3_EXCESSIVE_LOAD);
}

/// A server request stream still waiting for its head.
pub(crate) fn awaits_head(s: &Stream) -> bool {
    !s.finished && !s.head_done
}

/// Servers: when the request body this stream awaits last made progress, if
/// it awaits one, the application is reading it, and no response has begun
/// (once one has, the exchange is moving: a long response to a request whose
/// client never ends its body, as with event streams, is not cut).
pub(crate) fn body_awaited_since(s: &Stream) -> Option<Instant> {
    if s.finished || s.fin_received || s.read_shut || s.read_paused || s.final_headers_sent {
        return None;
    }
    s.body_progress_at
}

/// Server: a request past a deadline (its head not complete within the
/// request-head timeout, or its body stalled for the body timeout before any
/// response) gets 408 and is no longer read. False when it no longer awaited
/// anything.
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
unsafe fn refuse_request(s: *mut Stream, status: &[u8], code: u64) {
    let pc = (*s).conn;
    (*(*pc).ctx).stats.stream_errors += 1;
    (*s).error_code = Some(code);
    let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Read, http3::H3_NO_ERROR);
    (*s).read_shut = true;
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
pub(crate) unsafe fn check_stopped(s: *mut Stream) {
    if (*s).finished || (*s).fin_sent || (*s).reset_sent {
        return;
    }
    match (*(*s).conn).conn.stream_capacity((*s).id) {
        Err(quiche::Error::StreamStopped(code)) => peer_stopped(s, code),
        // quiche already collected the stream: its send side was reset on the
        // peer's STOP_SENDING and the receive side was read to the end.
        Err(quiche::Error::InvalidStreamState(_)) => {
            let code = if (*s).fin_received { http3::H3_NO_ERROR } else { http3::H3_REQUEST_CANCELLED };
            peer_stopped(s, code);
        }
        _ => {}
    }
}

/// A stream waiting to write: blocked by flow control or holding queued bytes.
pub fn is_send_blocked(s: &Stream) -> bool {
    !s.finished && (s.want_write || !s.pending.is_empty())
}

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
        let ctx = (*pc).ctx;
        if let Some(cb) = (*ctx).callbacks.on_stream_writable {
            cb(s);
        }
    }
}

/// Hands queued bytes (and a requested FIN) to QUIC; true when nothing is left.
unsafe fn flush_pending(s: *mut Stream) -> bool {
    let pc = (*s).conn;
    let id = (*s).id;
    if (*s).fin_requested && !(*s).fin_sent && !(*s).reset_sent && (*s).pending.is_empty() && is_h3(&*s) {
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
        let fin = (*s).fin_requested && !(*s).reset_sent;
        match (*pc).conn.stream_send(id, &(*s).pending, fin) {
            Ok(n) if n == (*s).pending.len() => {
                (*s).pending.clear();
                if fin {
                    (*s).fin_sent = true;
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
    if (*s).fin_requested && !(*s).fin_sent && !(*s).reset_sent {
        // Raw QUIC and WebTransport streams carry bytes of the application's
        // only: their FIN goes alone (still exposed to quiche#2525 until quiche
        // ships the fix).
        match (*pc).conn.stream_send(id, &[], true) {
            Ok(_) => {
                (*s).fin_sent = true;
                maybe_complete(s);
            }
            Err(quiche::Error::StreamStopped(code)) => {
                peer_stopped(s, code);
                return false;
            }
            Err(_) => return false,
        }
    }
    context::mark_dirty(pc);
    true
}

/// How much a write takes when the stream has too little credit for a frame (see `write`).
const BLOCKED_PROBE_LEN: usize = 1024;

/// Writes body bytes. Returns the bytes accepted, or -1 when the stream cannot
/// carry a body (finished, reset, FIN already requested, no head sent yet).
pub unsafe fn write(s: *mut Stream, data: &[u8]) -> isize {
    let pc = (*s).conn;
    if (*s).finished || (*s).fin_requested || (*s).reset_sent || (*pc).finalized {
        return -1;
    }
    let h3 = is_h3(&*s);
    if h3 && !(*s).final_headers_sent {
        return -1;
    }
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
        send_all_or_queue(s, &frame_header);
        send_all_or_queue(s, &data[..n]);
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
    context::mark_dirty(pc);
    accepted as isize
}

/// Sends bytes already accounted for; whatever QUIC does not take is queued.
unsafe fn send_all_or_queue(s: *mut Stream, bytes: &[u8]) {
    let pc = (*s).conn;
    let sent = if (*s).pending.is_empty() { (*pc).conn.stream_send((*s).id, bytes, false).unwrap_or(0) } else { 0 };
    if sent < bytes.len() {
        (*s).pending.extend_from_slice(&bytes[sent..]);
    }
}

/// Sends a header block. The first final block is the message head; a block
/// after it is trailers (no pseudo-headers allowed).
pub unsafe fn send_headers(s: *mut Stream, fields: &[FieldRef<'_>], end_stream: bool) -> Result<(), SendRefused> {
    send_headers_inner(s, fields, end_stream, false)
}

pub unsafe fn send_informational(s: *mut Stream, status: &[u8]) -> Result<(), SendRefused> {
    let is_1xx = status.len() == 3 && status[0] == b'1' && status.iter().all(u8::is_ascii_digit);
    if !is_1xx || status == b"101" || (*(*(*s).conn).ctx).role != Role::Server {
        return Err(SendRefused);
    }
    send_headers_inner(s, &[FieldRef { name: b":status", value: status }], false, true)
}

unsafe fn send_headers_inner(
    s: *mut Stream,
    fields: &[FieldRef<'_>],
    end_stream: bool,
    informational: bool,
) -> Result<(), SendRefused> {
    let pc = (*s).conn;
    if (*s).finished || (*s).fin_requested || (*s).reset_sent || (*pc).finalized || !is_h3(&*s) {
        return Err(SendRefused);
    }
    if informational && (*s).final_headers_sent {
        return Err(SendRefused);
    }
    let trailers = (*s).final_headers_sent;
    if trailers && fields.iter().any(|f| f.name.first() == Some(&b':')) {
        return Err(SendRefused);
    }
    if !trailers && !informational && (*(*pc).ctx).role == Role::Client {
        (*s).is_head_request = fields.iter().any(|f| f.name == b":method" && f.value == b"HEAD");
    }
    let mut frame = Vec::with_capacity(256);
    http3::encode_headers_frame(fields, &mut frame).map_err(|_| SendRefused)?;
    (*s).pending.extend_from_slice(&frame);
    if !informational {
        (*s).final_headers_sent = true;
    }
    if end_stream {
        (*s).fin_requested = true;
    }
    flush_pending(s);
    context::mark_dirty(pc);
    Ok(())
}

/// FIN after what was written.
pub unsafe fn shutdown(s: *mut Stream) {
    if (*s).finished || (*s).fin_requested || (*s).reset_sent {
        return;
    }
    (*s).fin_requested = true;
    flush_pending(s);
}

pub unsafe fn shutdown_read(s: *mut Stream) {
    stop_sending(s, http3::H3_NO_ERROR);
}

/// STOP_SENDING with `code`: the peer should stop writing.
pub unsafe fn stop_sending(s: *mut Stream, code: u64) {
    let pc = (*s).conn;
    if (*s).finished || (*s).fin_received || (*s).read_shut {
        return;
    }
    let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Read, code);
    (*s).read_shut = true;
    context::mark_dirty(pc);
    maybe_complete(s);
}

/// FIN if not sent, stop reading; on_stream_close follows once queued bytes are out.
pub unsafe fn close(s: *mut Stream) {
    if (*s).finished {
        return;
    }
    shutdown_read(s);
    if !(*s).fin_requested && !(*s).reset_sent {
        (*s).fin_requested = true;
    }
    flush_pending(s);
    maybe_complete(s);
}

/// RESET_STREAM (never FIN) and STOP_SENDING with `code`.
pub unsafe fn reset(s: *mut Stream, code: u64) {
    if (*s).finished {
        return;
    }
    let pc = (*s).conn;
    (*s).error_code = Some(code);
    if !(*s).fin_sent {
        let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Write, code);
    }
    if !(*s).fin_received && !(*s).read_shut {
        let _ = (*pc).conn.stream_shutdown((*s).id, quiche::Shutdown::Read, code);
    }
    (*s).pending.clear();
    (*s).reset_sent = true;
    (*s).read_shut = true;
    close_stream(s);
}

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
        context::mark_dirty((*s).conn);
    }
}

pub unsafe fn set_want_write(s: *mut Stream, want: bool) {
    if (*s).finished {
        return;
    }
    (*s).want_write = want;
    if want {
        context::mark_dirty((*s).conn);
    }
}

pub fn has_unsent(s: &Stream) -> bool {
    !s.pending.is_empty() || (s.fin_requested && !s.fin_sent && !s.reset_sent)
}
