//! The server's limits (limits.rs, quic.h `us_quic_limits_t`): each deadline,
//! rate and count exceeded on purpose, with the outcome the header promises and
//! its counter; and the same traffic under the limit left alone.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rust_quic::context::{Context, Settings};
use rust_quic::ffi::*;
use rust_quic::http3;
use rust_quic::limits::Limits;
use rust_quic::peer_context::PeerContext;
use rust_quic::stream::Stream;

unsafe fn set_limits(ctx: *mut Context, change: impl FnOnce(&mut Limits)) {
    let mut limits = Limits::default();
    assert_eq!(us_quic_socket_context_get_limits(ctx, &mut limits), 0);
    change(&mut limits);
    assert_eq!(us_quic_socket_context_set_limits(ctx, &limits), 0);
}

/// The server side of the only connection, and its open request streams.
unsafe fn server_streams(p: &Pair) -> Vec<*mut Stream> {
    let pc: *mut PeerContext = PeerContext::from_handle((&(*p.server).connections)[0]);
    (*pc).core.streams.iter().filter(|(&id, _)| id & 0x2 == 0).map(|(_, &s)| Stream::from_handle(s)).collect()
}

unsafe fn wait(p: &Pair, d: Duration) {
    let until = Instant::now() + d;
    p.run(5, || Instant::now() >= until);
}

/// A POST whose body stops after `sent` of its 1000 bytes.
fn stalled_upload(sent: usize) -> Request {
    let mut r = Request::new("POST", "/echo", vec![7u8; 1000]).header("content-length", "1000");
    r.stall_after = Some(sent);
    r
}

#[test]
fn a_request_head_trickled_past_its_deadline_gets_408_and_the_connection_lives() {
    unsafe {
        let (p, pc) = established();
        set_limits(p.server, |l| l.request_head_timeout_ms = 300);
        let before = server_stats(&p);
        // A HEADERS frame declaring 40 bytes, of which 3 arrive (on stream 8: the
        // client's engine keeps 4 for its next request).
        inject(&p, pc, NEXT_REQUEST + 4, &[0x01, 40, 0x00, 0x00, 0xd1]);
        assert_eq!(server_stats(&p).requests_timed_out, before.requests_timed_out, "not before its deadline");
        let started = Instant::now();
        assert!(p.run(3, || server_stats(&p).requests_timed_out == before.requests_timed_out + 1));
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(server_stats(&p).stream_errors, before.stream_errors + 1);
        // A request whose head arrives in time is served on the same connection.
        assert!(world(|w| w.close_codes.is_empty()));
        let r = p.fetch_all(pc, vec![Request::get("/size/7")], 5);
        assert_eq!((r[0].status(), r[0].body.len()), (200, 7));
        // Its deadline, passing later, changes nothing.
        wait(&p, Duration::from_millis(400));
        assert_eq!(server_stats(&p).requests_timed_out, before.requests_timed_out + 1);
        p.free();
    }
}

#[test]
fn a_stalled_request_body_gets_408_and_the_connection_lives() {
    unsafe {
        let (p, pc) = established();
        set_limits(p.server, |l| l.request_body_timeout_ms = 300);
        let started = Instant::now();
        let r = p.fetch_all(pc, vec![stalled_upload(100)], 5);
        assert_eq!(r[0].status(), 408);
        assert!(started.elapsed() >= Duration::from_millis(250), "not before the body timeout");
        assert_eq!(server_stats(&p).requests_timed_out, 1);
        // A body that keeps coming is not cut, and the connection serves on.
        let r = p.fetch_all(pc, vec![Request::new("POST", "/echo", pattern(300_000))], 5);
        assert_eq!((r[0].status(), r[0].body.len()), (200, 300_000));
        assert!(world(|w| w.close_codes.is_empty()));
        p.free();
    }
}

#[test]
fn a_stalled_body_is_not_cut_once_the_response_has_begun() {
    unsafe {
        let (p, pc) = established();
        set_limits(p.server, |l| l.request_body_timeout_ms = 300);
        // /size/N answers at the head, while the upload is still coming.
        let mut r = Request::new("POST", "/size/5", vec![7u8; 1000]);
        r.stall_after = Some(100);
        p.send(pc, vec![r]);
        assert!(p.run(5, || world(|w| w.responses.len() == 1 || !server_streams(&p).is_empty())));
        wait(&p, Duration::from_millis(700));
        assert_eq!(server_stats(&p).requests_timed_out, 0);
        p.free();
    }
}

#[test]
fn time_the_application_holds_a_body_paused_does_not_count() {
    unsafe {
        let (p, pc) = established();
        set_limits(p.server, |l| l.request_body_timeout_ms = 300);
        p.send(pc, vec![stalled_upload(100)]);
        assert!(p.run(5, || server_streams(&p).len() == 1 && server_stats(&p).requests == 2));
        let s = server_streams(&p)[0];
        us_quic_stream_want_read(s, 0);
        wait(&p, Duration::from_millis(700));
        assert_eq!(server_stats(&p).requests_timed_out, 0, "paused by the application");
        // Resumed: the client's stall counts from now.
        let resumed = Instant::now();
        us_quic_stream_want_read(s, 1);
        assert!(p.run(5, || world(|w| !w.responses.is_empty())));
        assert!(resumed.elapsed() >= Duration::from_millis(250));
        assert_eq!(world(|w| w.responses[0].status()), 408);
        assert_eq!(server_stats(&p).requests_timed_out, 1);
        p.free();
    }
}

#[test]
fn a_connection_whose_requests_keep_stalling_is_closed_for_load() {
    unsafe {
        let (p, pc) = established();
        set_limits(p.server, |l| {
            l.request_head_timeout_ms = 200;
            l.stalled_requests_per_connection = 2;
        });
        inject(&p, pc, NEXT_REQUEST + 4, &[0x01, 40, 0x00, 0x00, 0xd1]);
        inject(&p, pc, NEXT_REQUEST + 8, &[0x01, 40, 0x00, 0x00, 0xd1]);
        assert_eq!(close_code(&p), Some(http3::H3_EXCESSIVE_LOAD));
        let st = server_stats(&p);
        assert_eq!((st.requests_timed_out, st.connections_closed_for_load), (2, 1));
        p.free();
    }
}

/// `n` requests that each send HEADERS and then RESET_STREAM.
fn cancelled_requests(n: usize) -> Vec<Request> {
    (0..n)
        .map(|_| {
            let mut r = Request::new("POST", "/echo", vec![1u8; 10]);
            r.reset_after = Some(0);
            r
        })
        .collect()
}

#[test]
fn a_rapid_reset_flood_closes_the_connection_and_the_server_serves_on() {
    unsafe {
        let (p, pc) = established();
        // The default allowance (200 a second, bursts of 400) is not reached by 100.
        p.send(pc, cancelled_requests(100));
        assert!(p.run(5, || world(|w| w.responses.len() >= 100)));
        assert!(world(|w| w.close_codes.is_empty()));
        world(|w| w.responses.clear());
        assert_eq!(p.fetch_all(pc, vec![Request::get("/size/3")], 5)[0].status(), 200);
        // 20,000 are.
        p.send(pc, cancelled_requests(20_000));
        assert_eq!(close_code(&p), Some(http3::H3_EXCESSIVE_LOAD));
        assert_eq!(server_stats(&p).connections_closed_for_load, 1);
        // Only that connection: a new one is served.
        let fresh = p.connect();
        world(|w| w.requests.clear());
        assert_eq!(p.fetch_all(fresh, vec![Request::get("/size/3")], 5)[0].status(), 200);
        p.free();
    }
}

#[test]
fn streams_opened_past_the_rate_close_the_connection() {
    unsafe {
        let (p, pc) = established();
        set_limits(p.server, |l| l.stream_opens_per_second = 5);
        // The first request used one of the ten allowed at once.
        p.send(pc, (0..30).map(|_| Request::get("/size/1")).collect());
        assert_eq!(close_code(&p), Some(http3::H3_EXCESSIVE_LOAD));
        assert_eq!(server_stats(&p).connections_closed_for_load, 1);
        p.free();
    }
}

#[test]
fn a_request_with_too_many_fields_gets_431() {
    unsafe {
        let (p, pc) = established();
        let with_fields =
            |total: usize| (0..total - 4).fold(Request::get("/size/2"), |r, i| r.header(&format!("x-f{i}"), "v"));
        let r = p.fetch_all(pc, vec![with_fields(200), with_fields(201)], 5);
        assert_eq!((r[0].status(), r[1].status()), (200, 431));
        assert_eq!(server_stats(&p).headers_too_large, 1);
        assert!(world(|w| w.close_codes.is_empty()));
        p.free();
    }
}

#[test]
fn connections_past_the_per_address_and_total_limits_are_refused() {
    for per_address in [true, false] {
        unsafe {
            let p = pair();
            set_limits(p.server, |l| {
                if per_address {
                    l.connections_per_address = 1;
                } else {
                    l.max_connections = 1;
                }
            });
            let first = p.connect();
            assert!(p.run(5, || world(|w| w.hsk_ok == 1)));
            p.connect();
            assert!(p.run(5, || world(|w| w.hsk_failed == 1)), "refused (per address: {per_address})");
            // Each Initial datagram of the attempt is refused (a ClientHello may take two).
            assert!(server_stats(&p).connections_refused >= 1);
            // The first one is untouched, and once it ends its place is free.
            assert_eq!(p.fetch_all(first, vec![Request::get("/size/4")], 5)[0].status(), 200);
            us_quic_socket_close(first);
            assert!(p.run(5, || (*p.server).connections.is_empty()));
            let third = p.connect();
            assert_eq!(p.fetch_all(third, vec![Request::get("/size/4")], 5)[0].status(), 200);
            p.free();
        }
    }
}

#[test]
fn a_connection_that_only_pings_is_closed_after_its_idle_time() {
    unsafe {
        let server = Settings { idle_timeout_ms: 600, ..Settings::default() };
        let client = Settings { stream_ext_size: 16, ..Settings::default() };
        let p = pair_with(server, client);
        let pc = p.connect();
        assert_eq!(p.fetch_all(pc, vec![Request::get("/size/1")], 5)[0].status(), 200);
        let started = Instant::now();
        // A PING every 100 ms keeps QUIC's idle timer fresh on both sides.
        let mut next_ping = Instant::now();
        let closed = p.run(5, || {
            if Instant::now() >= next_ping && !is_closed(pc) {
                (*pc).core.conn.send_ack_eliciting().unwrap();
                rust_quic::peer_context::mark_dirty(pc);
                next_ping += Duration::from_millis(100);
            }
            world(|w| w.closed >= 2)
        });
        assert!(closed, "still open after {:?}", started.elapsed());
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert_eq!(world(|w| (w.goaways, w.close_codes.clone())), (1, vec![http3::H3_NO_ERROR; 2]));
        assert_eq!(server_stats(&p).connections_closed_idle, 1);
        p.free();
    }
}

#[test]
fn a_client_that_never_reads_costs_the_server_one_flow_control_window() {
    unsafe {
        let (p, pc) = established();
        world(|w| w.client_pause_at = Some(64 * 1024));
        p.send(pc, vec![Request::get("/size/50000000")]);
        assert!(p.run(5, || world(|w| !w.paused_streams.is_empty())));
        wait(&p, Duration::from_millis(500));
        let s = server_streams(&p)[0];
        let accepted = bytes_accepted(s);
        wait(&p, Duration::from_millis(500));
        // The client's window (2 MiB) plus what it read: no more is taken, and
        // the rest of the 50 MB body stays with the application.
        assert_eq!(bytes_accepted(s), accepted, "the engine keeps taking bytes nobody reads");
        assert!(accepted <= 64 * 1024 + 2 * 1024 * 1024 + 64 * 1024, "{accepted} bytes accepted");
        assert!(world(|w| w.short_writes > 0), "the application was told to wait");
        p.free();
    }
}
