//! WebTransport over HTTP/3 and HTTP datagrams (RFC 9297) in the engine:
//! extended CONNECT, streams linked to a session from either side (bidi signal
//! 0x41, uni type 0x54), datagrams by quarter stream id, and what happens to
//! bad input.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint};

use common::{header, read_headers, BarePair};
use rust_quic::context::{Context, Role};
use rust_quic::ffi::*;
use rust_quic::http3;
use rust_quic::peer_context::PeerContext;
use rust_quic::stream::Stream;

#[derive(Default)]
struct Log {
    client_conn: usize,
    server_conn: usize,
    server_ctx: usize,
    client_settings: u32,
    /// The client's CONNECT stream, once opened.
    connect_stream: usize,
    /// Status the client's CONNECT got.
    connect_status: Option<String>,
    /// The CONNECT the server accepted (its stream id is the session id).
    server_session: Option<u64>,
    /// Headers the server saw on request streams.
    server_heads: Vec<Vec<(String, String)>>,
    /// Client-side WebTransport streams opened for us, in order.
    client_wt_opened: Vec<usize>,
    /// Bytes per (side is server, stream id), with the session id the stream named and FIN.
    wt_data: HashMap<(bool, u64), (i64, Vec<u8>, bool)>,
    client_datagrams: Vec<(u64, Vec<u8>)>,
    server_datagrams: Vec<(u64, Vec<u8>)>,
    stream_errors: Vec<(bool, u64, i64)>,
    closed: Vec<(bool, u64, bool)>,
    /// Connections that ended (is server, close error code): read in on_close,
    /// the only time the connection is still valid.
    conn_closes: Vec<(bool, u64)>,
}

thread_local! {
    static LOG: RefCell<Log> = RefCell::new(Log::default());
}

fn log<R>(f: impl FnOnce(&mut Log) -> R) -> R {
    LOG.with(|l| f(&mut l.borrow_mut()))
}

unsafe fn is_server_stream(s: *mut Stream) -> bool {
    (*us_quic_stream_context(s)).role == Role::Server
}

unsafe fn write_all(s: *mut Stream, bytes: &[u8]) {
    assert_eq!(us_quic_stream_write(s, bytes.as_ptr().cast(), bytes.len() as c_uint), bytes.len() as i32);
}

unsafe extern "C" fn on_open(s: *mut PeerContext) {
    let server = (*us_quic_socket_context(s)).role == Role::Server;
    log(|l| if server { l.server_conn = s as usize } else { l.client_conn = s as usize });
}

unsafe extern "C" fn on_close(s: *mut PeerContext) {
    let (mut code, mut app) = (0, 0);
    us_quic_socket_close_error(s, &mut code, &mut app);
    let server = us_quic_socket_context(s) == log(|l| l.server_ctx) as *mut Context;
    log(|l| l.conn_closes.push((server, code)));
}

unsafe extern "C" fn on_settings(_s: *mut PeerContext) {
    log(|l| l.client_settings += 1);
}

unsafe extern "C" fn on_stream_open(s: *mut Stream, is_client: c_int) {
    if is_client == 0 || is_server_stream(s) {
        return;
    }
    if us_quic_stream_webtransport_session(s) >= 0 {
        log(|l| l.client_wt_opened.push(s as usize));
        return;
    }
    log(|l| l.connect_stream = s as usize);
    let h = [
        header(":method", "CONNECT"),
        header(":protocol", "webtransport"),
        header(":scheme", "https"),
        header(":authority", "localhost"),
        header(":path", "/wt"),
        header("origin", "https://localhost"),
    ];
    assert_eq!(us_quic_stream_send_headers(s, h.as_ptr(), h.len() as c_uint, 0), 0);
}

unsafe extern "C" fn on_stream_headers(s: *mut Stream) {
    let server = is_server_stream(s);
    match us_quic_stream_headers_kind(s) {
        4 => {
            let key = (server, us_quic_stream_id(s));
            let session = us_quic_stream_webtransport_session(s);
            log(|l| l.wt_data.insert(key, (session, Vec::new(), false)));
        }
        2 if server => {
            let head = read_headers(s);
            let is_wt = head.iter().any(|(n, v)| n == ":protocol" && v == "webtransport");
            log(|l| l.server_heads.push(head));
            if is_wt {
                let h = [header(":status", "200"), header("sec-webtransport-http3-draft", "draft02")];
                assert_eq!(us_quic_stream_send_headers(s, h.as_ptr(), 2, 0), 0);
                let session = us_quic_stream_id(s);
                log(|l| l.server_session = Some(session));
                // The server opens one stream of each kind on the new session.
                let conn = us_quic_stream_socket(s);
                us_quic_socket_make_webtransport_stream(conn, session, 0);
                us_quic_socket_make_webtransport_stream(conn, session, 1);
            }
        }
        2 => {
            let status = read_headers(s).into_iter().find(|(n, _)| n == ":status").map(|(_, v)| v);
            log(|l| l.connect_status = status);
        }
        _ => {}
    }
}

/// Server side: streams it opened get a greeting; client-opened bidi streams
/// are echoed on the same stream.
unsafe extern "C" fn on_server_stream_open(s: *mut Stream, is_client: c_int) {
    if is_client != 0 && us_quic_stream_webtransport_session(s) >= 0 {
        let uni = us_quic_stream_id(s) & 2 != 0;
        write_all(s, if uni { b"server-uni" } else { b"server-bidi" });
        us_quic_stream_shutdown(s);
    }
}

unsafe extern "C" fn on_stream_data(s: *mut Stream, data: *const c_char, len: c_uint, fin: c_int) {
    let server = is_server_stream(s);
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len as usize).to_vec();
    let key = (server, us_quic_stream_id(s));
    let is_wt = us_quic_stream_webtransport_session(s) >= 0;
    if !is_wt {
        return;
    }
    let done = log(|l| {
        let entry = l.wt_data.entry(key).or_insert((us_quic_stream_webtransport_session(s), Vec::new(), false));
        entry.1.extend_from_slice(&bytes);
        entry.2 |= fin != 0;
        (entry.2, entry.1.clone())
    });
    let peer_bidi = us_quic_stream_id(s) & 2 == 0;
    if server && done.0 && peer_bidi && us_quic_stream_id(s) & 1 == 0 {
        let mut echo = b"echo:".to_vec();
        echo.extend_from_slice(&done.1);
        write_all(s, &echo);
        us_quic_stream_shutdown(s);
    }
}

unsafe extern "C" fn on_stream_datagram(s: *mut Stream, data: *const c_char, len: c_uint) {
    let server = is_server_stream(s);
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len as usize).to_vec();
    let id = us_quic_stream_id(s);
    if server {
        let mut echo = b"echo:".to_vec();
        echo.extend_from_slice(&bytes);
        assert_eq!(us_quic_stream_send_datagram(s, echo.as_ptr().cast(), echo.len() as c_uint), 0);
        log(|l| l.server_datagrams.push((id, bytes)));
    } else {
        log(|l| l.client_datagrams.push((id, bytes)));
    }
}

unsafe extern "C" fn on_stream_close(s: *mut Stream) {
    let server = is_server_stream(s);
    let code = us_quic_stream_error_code(s);
    let id = us_quic_stream_id(s);
    log(|l| {
        l.closed.push((server, id, code < 0));
        if code >= 0 {
            l.stream_errors.push((server, id, code));
        }
    });
}

/// A client and a server with WebTransport (0 sessions: off) and this file's callbacks.
struct WtPair(BarePair);

unsafe fn wt_pair(server_sessions: c_uint, client_sessions: c_uint) -> WtPair {
    log(|l| *l = Log::default());
    WtPair(BarePair::connect_with(|ctx| {
        let server = (*ctx).role == Role::Server;
        let sessions = if server { server_sessions } else { client_sessions };
        assert_eq!(us_quic_socket_context_set_webtransport(ctx, sessions), 0);
        if server {
            log(|l| l.server_ctx = ctx as usize);
        }
        us_quic_socket_context_on_open(ctx, Some(on_open));
        us_quic_socket_context_on_close(ctx, Some(on_close));
        us_quic_socket_context_on_stream_headers(ctx, Some(on_stream_headers));
        us_quic_socket_context_on_stream_data(ctx, Some(on_stream_data));
        us_quic_socket_context_on_stream_datagram(ctx, Some(on_stream_datagram));
        us_quic_socket_context_on_stream_close(ctx, Some(on_stream_close));
        if server {
            us_quic_socket_context_on_stream_open(ctx, Some(on_server_stream_open));
        } else {
            us_quic_socket_context_on_stream_open(ctx, Some(on_stream_open));
            us_quic_socket_context_on_settings(ctx, Some(on_settings));
        }
    }))
}

impl WtPair {
    unsafe fn run(&self, done: impl FnMut() -> bool) -> bool {
        self.0.run(done)
    }
    unsafe fn client_conn(&self) -> *mut PeerContext {
        log(|l| l.client_conn) as *mut PeerContext
    }
    /// Handshake, SETTINGS, CONNECT: returns the session id.
    unsafe fn establish(&self) -> u64 {
        assert!(self.run(|| log(|l| l.client_settings == 1)), "client never saw the server's SETTINGS");
        let mut v = 0;
        assert_eq!(us_quic_socket_peer_setting(self.client_conn(), http3::SETTINGS_ENABLE_CONNECT_PROTOCOL, &mut v), 1);
        assert_eq!(v, 1);
        assert_eq!(us_quic_socket_peer_setting(self.client_conn(), http3::SETTINGS_WT_MAX_SESSIONS, &mut v), 1);
        assert_eq!(v, 8);
        assert_eq!(us_quic_socket_peer_setting(self.client_conn(), 0x1234, &mut v), 0);
        us_quic_socket_make_stream(self.client_conn());
        assert!(self.run(|| log(|l| l.connect_status.is_some())), "no answer to the CONNECT");
        assert_eq!(log(|l| l.connect_status.clone()).as_deref(), Some("200"));
        log(|l| l.server_session).unwrap()
    }
    unsafe fn free(self) {
        self.0.free()
    }
}

#[test]
fn session_with_streams_from_both_sides_and_datagrams() {
    unsafe {
        let p = wt_pair(8, 8);
        let session = p.establish();
        assert_eq!(session, 0);
        let head = log(|l| l.server_heads[0].clone());
        assert!(head.contains(&(":protocol".into(), "webtransport".into())));

        // Client-opened streams: one bidi (echoed), one uni.
        let conn = p.client_conn();
        us_quic_socket_make_webtransport_stream(conn, session, 0);
        us_quic_socket_make_webtransport_stream(conn, session, 1);
        assert!(p.run(|| log(|l| l.client_wt_opened.len() == 2)));
        for s in log(|l| l.client_wt_opened.clone()) {
            let s = s as *mut Stream;
            assert_eq!(us_quic_stream_webtransport_session(s), session as i64);
            let uni = us_quic_stream_id(s) & 2 != 0;
            write_all(s, if uni { b"client-uni" } else { b"client-bidi" });
            us_quic_stream_shutdown(s);
        }
        // HTTP datagrams on the CONNECT stream, echoed by the server.
        let connect = log(|l| l.connect_stream) as *mut Stream;
        let max = us_quic_stream_datagram_max_size(connect);
        assert!(max > 1000, "datagram room {max}");
        for i in 0..5 {
            let d = format!("dgram-{i}");
            assert_eq!(us_quic_stream_send_datagram(connect, d.as_ptr().cast(), d.len() as c_uint), 0);
        }
        let too_big = vec![0u8; max as usize + 1];
        assert_eq!(us_quic_stream_send_datagram(connect, too_big.as_ptr().cast(), too_big.len() as c_uint), -1);

        let done = || {
            log(|l| {
                let fins = l.wt_data.values().filter(|(_, _, fin)| *fin).count();
                // server: client bidi + client uni; client: echo on bidi, server bidi, server uni
                fins >= 5 && l.client_datagrams.len() == 5
            })
        };
        assert!(p.run(done), "streams: {:?}", log(|l| l.wt_data.clone()));
        log(|l| {
            let get = |server: bool, id: u64| l.wt_data.get(&(server, id)).cloned().unwrap();
            // Client bidi 4 (0 is the CONNECT); the client's uni stream id comes after
            // its control and QPACK streams.
            assert_eq!(get(true, 4), (0, b"client-bidi".to_vec(), true));
            assert_eq!(get(false, 4), (0, b"echo:client-bidi".to_vec(), true));
            let server_uni_from_client = l.wt_data.iter().find(|((srv, id), _)| *srv && id & 3 == 2).unwrap();
            assert_eq!(server_uni_from_client.1, &(0, b"client-uni".to_vec(), true));
            // Server-opened bidi (id 1) and uni (id & 3 == 3) reached the client with the session id.
            assert_eq!(get(false, 1), (0, b"server-bidi".to_vec(), true));
            let client_uni = l.wt_data.iter().find(|((srv, id), _)| !*srv && id & 3 == 3).unwrap();
            assert_eq!(client_uni.1, &(0, b"server-uni".to_vec(), true));
            let mut got: Vec<String> =
                l.client_datagrams.iter().map(|(id, d)| format!("{id}:{}", String::from_utf8_lossy(d))).collect();
            got.sort();
            let want: Vec<String> = (0..5).map(|i| format!("0:echo:dgram-{i}")).collect();
            assert_eq!(got, want);
            assert!(l.stream_errors.is_empty(), "stream errors: {:?}", l.stream_errors);
        });
        p.free();
    }
}

#[test]
fn extended_connect_is_refused_when_webtransport_is_off() {
    unsafe {
        // The server does not enable WebTransport: no ENABLE_CONNECT_PROTOCOL, and
        // a :protocol request is malformed (a stream error, the connection lives).
        let p = wt_pair(0, 8);
        assert!(p.run(|| log(|l| l.client_settings == 1)));
        let mut v = 0;
        assert_eq!(us_quic_socket_peer_setting(p.client_conn(), http3::SETTINGS_ENABLE_CONNECT_PROTOCOL, &mut v), 0);
        us_quic_socket_make_stream(p.client_conn());
        let refused = (false, 0, http3::H3_MESSAGE_ERROR as i64);
        assert!(p.run(|| log(|l| l.stream_errors.contains(&refused))));
        assert!(log(|l| l.server_heads.is_empty()));
        // The connection still works for a second stream.
        assert!(!(*p.client_conn()).core.conn.is_closed());
        p.free();
    }
}

#[test]
fn datagrams_for_unknown_streams_are_dropped_and_garbage_closes_the_connection() {
    unsafe {
        let p = wt_pair(8, 8);
        p.establish();
        let conn = p.client_conn();
        // Quarter stream id 100 (stream 400) does not exist: dropped, connection fine.
        let mut d = Vec::new();
        http3::put_varint(&mut d, 100);
        d.extend_from_slice(b"lost");
        assert_eq!(us_quic_socket_send_datagram(conn, d.as_ptr().cast(), d.len() as c_uint), 0);
        // Then a good one, which must still be echoed.
        let connect = log(|l| l.connect_stream) as *mut Stream;
        assert_eq!(us_quic_stream_send_datagram(connect, b"ok".as_ptr().cast(), 2), 0);
        assert!(p.run(|| log(|l| l.client_datagrams.len() == 1)));
        assert_eq!(log(|l| l.server_datagrams.clone()), vec![(0, b"ok".to_vec())]);
        // An empty HTTP datagram has no quarter stream id: H3_DATAGRAM_ERROR.
        assert_eq!(us_quic_socket_send_datagram(conn, b"".as_ptr().cast(), 0), 0);
        // The server closes; the client's connection ends (and is gone after on_close).
        assert!(p.run(|| log(|l| l.conn_closes.iter().any(|&(server, _)| !server))));
        assert!(log(|l| l.conn_closes.contains(&(false, http3::H3_DATAGRAM_ERROR))));
        p.free();
    }
}

#[test]
fn a_server_bidi_stream_without_the_signal_is_a_connection_error() {
    unsafe {
        // Raw bytes on a server-opened bidi stream that do not start with 0x41.
        let p = wt_pair(8, 8);
        p.establish();
        let server_conn = log(|l| l.server_conn) as *mut PeerContext;
        let sc = &mut *server_conn;
        sc.core.conn.stream_send(5, &[0x01, 0x00], false).unwrap();
        rust_quic::peer_context::mark_dirty(server_conn);
        assert!(p.run(|| log(|l| l.conn_closes.iter().any(|&(server, _)| !server))));
        assert!(log(|l| l.conn_closes.contains(&(false, http3::H3_STREAM_CREATION_ERROR))));
        p.free();
    }
}
