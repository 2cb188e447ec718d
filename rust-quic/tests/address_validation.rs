//! Address validation (RFC 9000 8.1): Retry by option and under a flood of new
//! connections, and the 3x amplification limit toward an address that never
//! answers (a spoofed Initial's victim).

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::*;
use rust_quic::address_validation::RetryPolicy;
use rust_quic::ffi::*;
use rust_quic::limits::Limits;

#[test]
fn retry_always_validates_every_client_and_the_connection_works() {
    unsafe {
        let p = pair();
        assert_eq!(us_quic_socket_context_set_retry(p.server, 1), 0);
        assert_eq!(us_quic_socket_context_set_retry(p.server, 9), -1, "unknown mode");
        assert_eq!(us_quic_socket_context_set_retry(p.client, 1), -1, "a server's");
        let pc = p.connect();
        let r = p.fetch_all(pc, vec![Request::get("/size/2000")], 5);
        assert_eq!((r[0].status(), r[0].body.len()), (200, 2000));
        let st = server_stats(&p);
        assert_eq!((st.retries_sent, st.connections_accepted, st.invalid_tokens), (1, 1, 0));
        p.free();
    }
}

#[test]
fn a_flood_of_new_connections_is_asked_to_retry_and_still_served() {
    unsafe {
        let p = pair();
        let limits = Limits { handshakes_per_second: 1, ..Limits::default() };
        (*p.server).settings.limits = limits;
        // A burst of 2 goes through as it is; the rest answer a Retry first.
        let conns: Vec<_> = (0..5).map(|_| p.connect()).collect();
        for &pc in &conns {
            p.send(pc, vec![Request::get("/size/10")]);
        }
        assert!(p.run(10, || world(|w| w.responses.len() >= 5)), "every connection answered");
        let st = server_stats(&p);
        assert_eq!(st.connections_accepted, 5);
        assert_eq!(st.retries_sent, 3, "past the burst");
        p.free();
    }
}

#[test]
fn retry_never_even_under_load() {
    unsafe {
        let p = pair();
        (*p.server).settings.limits = Limits { handshakes_per_second: 1, ..Limits::default() };
        assert!((*p.server).set_retry(RetryPolicy::Never).is_ok());
        let conns: Vec<_> = (0..4).map(|_| p.connect()).collect();
        for &pc in &conns {
            p.send(pc, vec![Request::get("/size/1")]);
        }
        assert!(p.run(10, || world(|w| w.responses.len() >= 4)));
        assert_eq!(server_stats(&p).retries_sent, 0);
        p.free();
    }
}

/// Bytes the server sent to, and received from, the client's address while
/// everything the client sends after its first datagram is lost (as for the
/// victim of a spoofed Initial, which never answers).
unsafe fn toward_a_silent_address(retry: bool) -> (u64, u64) {
    let p = pair();
    if retry {
        us_quic_socket_context_set_retry(p.server, 1);
    }
    let (to_client, from_client) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(0u64)));
    let (out, inn, first) = (to_client.clone(), from_client.clone(), Rc::new(Cell::new(true)));
    let server_ip: std::net::IpAddr = p.server_ip.parse().unwrap();
    p.net.borrow_mut().filter = Some(Box::new(move |d| {
        if d.from.ip() == server_ip {
            out.set(out.get() + d.data.len() as u64);
            return true;
        }
        if first.replace(false) {
            inn.set(inn.get() + d.data.len() as u64);
            return true;
        }
        false
    }));
    p.connect();
    // Long enough for every probe the server's loss recovery sends.
    p.run(3, || false);
    let bytes = (to_client.get(), from_client.get());
    p.free();
    bytes
}

#[test]
fn an_address_that_never_answers_gets_at_most_three_times_what_it_sent() {
    unsafe {
        let (sent, received) = toward_a_silent_address(false);
        assert!(received >= 1200, "one Initial reached the server: {received}");
        assert!(sent > 0, "the server answered");
        assert!(sent <= 3 * received, "{sent} bytes sent for {received} received");
        // With Retry the answer is one small packet, smaller than what drew it.
        let (sent, received) = toward_a_silent_address(true);
        assert!(sent > 0 && sent < received, "a Retry of {sent} bytes for {received}");
    }
}
