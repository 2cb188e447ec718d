//! Raw QUIC (the engine under Bun.quic): byte streams without HTTP/3,
//! unidirectional streams from either side, QUIC DATAGRAM, custom ALPN.

mod common;

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_uint};

use common::BarePair;
use rust_quic::context::Context;
use rust_quic::ffi::*;
use rust_quic::peer_context::PeerContext;
use rust_quic::stream::Stream;

#[derive(Default)]
struct Log {
    hsk_ok: u32,
    hsk_failed: u32,
    /// (stream id, bytes, fin) seen by the client.
    client_data: Vec<(u64, Vec<u8>, bool)>,
    /// Unidirectional streams the server received, with their bytes.
    server_uni: Vec<(u64, Vec<u8>)>,
    client_datagrams: Vec<Vec<u8>>,
    server_datagrams: Vec<Vec<u8>>,
    client_conn: usize,
    server_conn: usize,
    opened_client_streams: Vec<usize>,
    /// The echo server's unsent bytes per stream, and whether the peer finished.
    echo_pending: std::collections::HashMap<usize, (Vec<u8>, bool)>,
}

thread_local! {
    static LOG: RefCell<Log> = RefCell::new(Log::default());
}

fn log<R>(f: impl FnOnce(&mut Log) -> R) -> R {
    LOG.with(|l| f(&mut l.borrow_mut()))
}

unsafe fn is_server(ctx: *mut Context) -> bool {
    (*ctx).role == rust_quic::context::Role::Server
}

unsafe extern "C" fn on_open(s: *mut PeerContext) {
    let server = is_server(us_quic_socket_context(s));
    log(|l| if server { l.server_conn = s as usize } else { l.client_conn = s as usize });
}

unsafe extern "C" fn on_hsk(_s: *mut PeerContext, ok: c_int) {
    log(|l| if ok != 0 { l.hsk_ok += 1 } else { l.hsk_failed += 1 });
}

unsafe extern "C" fn on_stream_open(s: *mut Stream, is_client: c_int) {
    if is_client != 0 && !is_server(us_quic_stream_context(s)) {
        log(|l| l.opened_client_streams.push(s as usize));
    }
}

unsafe extern "C" fn on_data(s: *mut Stream, data: *const c_char, len: c_uint, fin: c_int) {
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len as usize).to_vec();
    let id = us_quic_stream_id(s);
    if is_server(us_quic_stream_context(s)) {
        if id & 2 != 0 {
            log(|l| match l.server_uni.iter_mut().find(|(i, _)| *i == id) {
                Some((_, b)) => b.extend_from_slice(&bytes),
                None => l.server_uni.push((id, bytes.clone())),
            });
            return;
        }
        // Echo server: every byte back on the same stream (under flow control), FIN for FIN.
        log(|l| {
            let e = l.echo_pending.entry(s as usize).or_default();
            e.0.extend_from_slice(&bytes);
            e.1 |= fin != 0;
        });
        echo_flush(s);
    } else {
        log(|l| l.client_data.push((id, bytes, fin != 0)));
    }
}

unsafe fn echo_flush(s: *mut Stream) {
    let (pending, fin) = log(|l| l.echo_pending.get(&(s as usize)).cloned().unwrap_or_default());
    let mut off = 0;
    while off < pending.len() {
        let n = us_quic_stream_write(s, pending[off..].as_ptr().cast(), (pending.len() - off) as c_uint);
        if n <= 0 {
            break;
        }
        off += n as usize;
    }
    log(|l| {
        if let Some(e) = l.echo_pending.get_mut(&(s as usize)) {
            e.0.drain(..off);
        }
    });
    if off == pending.len() && fin {
        log(|l| l.echo_pending.remove(&(s as usize)));
        us_quic_stream_shutdown(s);
    } else if off < pending.len() {
        us_quic_stream_want_write(s, 1);
    }
}

unsafe extern "C" fn on_writable(s: *mut Stream) {
    if is_server(us_quic_stream_context(s)) {
        echo_flush(s);
    }
}

unsafe extern "C" fn on_datagram(s: *mut PeerContext, data: *const c_char, len: c_uint) {
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len as usize).to_vec();
    if is_server(us_quic_socket_context(s)) {
        // Echo datagrams too.
        assert_eq!(us_quic_socket_send_datagram(s, bytes.as_ptr().cast(), len), 0);
        log(|l| l.server_datagrams.push(bytes));
    } else {
        log(|l| l.client_datagrams.push(bytes));
    }
}

unsafe fn install(ctx: *mut Context) {
    us_quic_socket_context_on_open(ctx, Some(on_open));
    us_quic_socket_context_on_hsk_done(ctx, Some(on_hsk));
    us_quic_socket_context_on_stream_open(ctx, Some(on_stream_open));
    us_quic_socket_context_on_stream_data(ctx, Some(on_data));
    us_quic_socket_context_on_stream_writable(ctx, Some(on_writable));
    us_quic_socket_context_on_datagram(ctx, Some(on_datagram));
}

unsafe fn raw_pair(server_alpn: &'static [u8], client_alpn: &'static [u8]) -> BarePair {
    log(|l| *l = Log::default());
    BarePair::connect_with(|ctx| {
        let alpn = if is_server(ctx) { server_alpn } else { client_alpn };
        assert_eq!(us_quic_socket_context_set_raw_alpn(ctx, alpn.as_ptr(), alpn.len() as c_uint), 0);
        assert_eq!(us_quic_socket_context_set_datagrams(ctx, 1), 0);
        assert_eq!(us_quic_socket_context_set_max_streams(ctx, 100, 100), 0);
        install(ctx);
    })
}

#[test]
fn raw_bidirectional_streams_echo_bytes() {
    unsafe {
        let p = raw_pair(b"\x08bun-quic", b"\x08bun-quic");
        assert!(p.run(|| log(|l| l.hsk_ok == 1)));
        let conn = log(|l| l.client_conn) as *mut PeerContext;
        for _ in 0..3 {
            us_quic_socket_make_stream(conn);
        }
        assert!(p.run(|| log(|l| l.opened_client_streams.len() == 3)));
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        for (i, &s) in log(|l| l.opened_client_streams.clone()).iter().enumerate() {
            let s = s as *mut Stream;
            let part = &payload[..50_000 * (i + 1)];
            let mut off = 0;
            while off < part.len() {
                let n = us_quic_stream_write(s, part[off..].as_ptr().cast(), (part.len() - off) as c_uint);
                assert!(n >= 0);
                off += n as usize;
                if off < part.len() {
                    p.run(|| true);
                }
            }
            us_quic_stream_shutdown(s);
        }
        assert!(p.run(|| log(|l| l.client_data.iter().filter(|(_, _, fin)| *fin).count() == 3)));
        for (i, id) in [0u64, 4, 8].iter().enumerate() {
            let got: Vec<u8> =
                log(|l| l.client_data.iter().filter(|(s, _, _)| s == id).flat_map(|(_, b, _)| b.clone()).collect());
            assert!(got == payload[..50_000 * (i + 1)], "stream {id} echoed {} bytes", got.len());
        }
        p.free();
    }
}

#[test]
fn raw_unidirectional_streams() {
    unsafe {
        let p = raw_pair(b"\x08bun-quic", b"\x08bun-quic");
        assert!(p.run(|| log(|l| l.hsk_ok == 1)));
        let conn = log(|l| l.client_conn) as *mut PeerContext;
        us_quic_socket_make_uni_stream(conn);
        assert!(p.run(|| log(|l| l.opened_client_streams.len() == 1)));
        let s = log(|l| l.opened_client_streams[0]) as *mut Stream;
        assert_eq!(us_quic_stream_id(s) & 2, 2, "a unidirectional stream id");
        assert_eq!(us_quic_stream_write(s, b"one-way".as_ptr().cast(), 7), 7);
        us_quic_stream_shutdown(s);
        assert!(p.run(|| log(|l| l.server_uni.first().is_some_and(|(_, b)| b == b"one-way"))));
        p.free();
    }
}

#[test]
fn datagrams_both_ways_and_oversize_is_refused() {
    unsafe {
        let p = raw_pair(b"\x08bun-quic", b"\x08bun-quic");
        assert!(p.run(|| log(|l| l.hsk_ok == 1)));
        let conn = log(|l| l.client_conn) as *mut PeerContext;
        let max = us_quic_socket_datagram_max_size(conn);
        assert!(max > 1000, "datagram room {max}");
        for i in 0..20u8 {
            assert_eq!(us_quic_socket_send_datagram(conn, [i; 100].as_ptr().cast(), 100), 0);
        }
        let too_big = vec![0u8; max as usize + 1];
        assert_eq!(us_quic_socket_send_datagram(conn, too_big.as_ptr().cast(), too_big.len() as c_uint), -1);
        assert!(p.run(|| log(|l| l.client_datagrams.len() == 20)));
        assert_eq!(log(|l| l.server_datagrams.len()), 20);
        assert!(log(|l| l.client_datagrams.iter().all(|d| d.len() == 100)));
        p.free();
    }
}

#[test]
fn alpn_mismatch_fails_the_handshake() {
    unsafe {
        let p = raw_pair(b"\x08bun-quic", b"\x05other");
        assert!(p.run(|| log(|l| l.hsk_failed == 1)));
        assert_eq!(log(|l| l.hsk_ok), 0);
        p.free();
    }
}
