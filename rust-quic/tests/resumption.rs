//! Session resumption and 0-RTT (RFC 9001 4.6, RFC 8470): a client resumes
//! with the ticket of its last connection to the same server and sends its
//! first requests in 0-RTT; what runs in early data is the server's policy.

mod common;

use common::*;
use rust_quic::context::{EarlyData, Settings, Stats};
use rust_quic::ffi::*;
use rust_quic::peer_context::PeerContext;

fn stats_of(ctx: *mut rust_quic::context::Context) -> Stats {
    let mut st = Stats::default();
    unsafe { us_quic_socket_context_stats(ctx, &mut st) };
    st
}

/// A first connection: one request answered, then closed (its ticket kept).
unsafe fn first_connection(p: &Pair) {
    let pc = p.connect();
    let r = p.fetch_all(pc, vec![Request::get("/size/10")], 5);
    assert_eq!(r[0].status(), 200);
    us_quic_socket_close(pc);
    assert!(p.run(5, || world(|w| w.closed >= 2)), "both ends closed");
}

/// A second connection sending `reqs` at once (before its handshake could end).
unsafe fn second_connection(p: &Pair, reqs: Vec<Request>) -> (*mut PeerContext, Vec<Message>) {
    world(|w| w.server_requests.clear());
    let pc = p.connect();
    let n = reqs.len();
    p.send(pc, reqs);
    // What the application wrote leaves at the end of its loop iteration, as
    // on a real loop: before the server's first flight can arrive.
    rust_quic::edge::after_io(p.client);
    assert!(p.run(5, || world(|w| w.responses.len() >= n)), "every response arrived");
    let mut out = world(|w| std::mem::take(&mut w.responses));
    out.sort_by_key(|m| m.id);
    (pc, out)
}

unsafe fn server_heads(path: &str) -> Vec<(String, String)> {
    world(|w| w.server_requests.iter().find(|m| m.header(":path") == Some(path)).map(|m| m.head.clone()))
        .expect("the server saw the request")
}

#[test]
fn a_second_connection_resumes_and_its_get_runs_in_0rtt() {
    unsafe {
        let p = pair();
        first_connection(&p);
        assert_eq!(server_stats(&p).connections_resumed, 0);
        let (_, r) = second_connection(&p, vec![Request::get("/size/1000")]);
        assert_eq!((r[0].status(), r[0].body.len()), (200, 1000));
        let st = server_stats(&p);
        assert_eq!((st.connections_resumed, st.early_data_accepted, st.requests_in_early_data), (1, 1, 1));
        assert_eq!(st.requests_held_for_handshake, 0);
        let heads = server_heads("/size/1000");
        assert!(heads.contains(&("early-data".into(), "1".into())), "marked for the handler: {heads:?}");
        let client = stats_of(p.client);
        assert_eq!((client.connections_resumed, client.early_data_accepted), (1, 1));
        p.free();
    }
}

#[test]
fn a_post_in_0rtt_waits_for_the_handshake() {
    unsafe {
        let p = pair();
        first_connection(&p);
        let body = pattern(3000);
        let (_, r) = second_connection(&p, vec![Request::new("POST", "/echo", body.clone()), Request::get("/size/5")]);
        assert_eq!((r[0].status(), &r[0].body), (200, &body), "held, then answered in full");
        assert_eq!(r[1].status(), 200);
        let st = server_stats(&p);
        assert_eq!((st.early_data_accepted, st.requests_in_early_data, st.requests_held_for_handshake), (1, 1, 1));
        let post = server_heads("/echo");
        assert!(!post.iter().any(|(n, _)| n == "early-data"), "ran after the handshake: {post:?}");
        p.free();
    }
}

#[test]
fn a_post_held_for_the_handshake_and_reset_before_it_ends_never_reaches_the_application() {
    unsafe {
        let p = pair();
        first_connection(&p);
        world(|w| {
            w.server_requests.clear();
            w.client_streams.clear();
        });
        let pc = p.connect();
        let mut post = Request::new("POST", "/echo", pattern(3000));
        post.stall_after = Some(1000); // the body stays open
        p.send(pc, vec![post, Request::get("/size/5")]);
        let post_stream = world(|w| w.client_streams[0]) as *mut rust_quic::stream::Stream;
        // Its head and 1000 bytes leave in 0-RTT, then its RESET_STREAM, all before
        // the server's first flight can arrive.
        rust_quic::edge::after_io(p.client);
        us_quic_stream_reset(post_stream);
        rust_quic::edge::after_io(p.client);
        assert!(p.run(5, || world(|w| w.responses.len() >= 2)), "both streams ended");
        assert_eq!(server_stats(&p).requests_held_for_handshake, 1, "the POST arrived in 0-RTT and was held");
        let paths: Vec<String> =
            world(|w| w.server_requests.iter().filter_map(|m| m.header(":path").map(str::to_string)).collect());
        assert_eq!(paths, vec!["/size/5".to_string()], "the cancelled POST never reached the application");
        p.free();
    }
}

#[test]
fn early_data_all_runs_every_method_marked() {
    unsafe {
        let server = Settings { early_data: EarlyData::All, ..Settings::default() };
        let p = pair_with(server, Settings { stream_ext_size: 16, ..Settings::default() });
        first_connection(&p);
        let (_, r) = second_connection(&p, vec![Request::new("POST", "/echo", b"now".to_vec())]);
        assert_eq!(r[0].body, b"now");
        let st = server_stats(&p);
        assert_eq!((st.requests_in_early_data, st.requests_held_for_handshake), (1, 0));
        assert!(server_heads("/echo").contains(&("early-data".into(), "1".into())));
        p.free();
    }
}

#[test]
fn early_data_off_still_resumes_without_0rtt() {
    unsafe {
        let p = pair();
        assert_eq!(us_quic_socket_context_set_early_data(p.server, 0), 0);
        assert_eq!(us_quic_socket_context_set_early_data(p.server, 7), -1, "unknown mode");
        first_connection(&p);
        let (_, r) = second_connection(&p, vec![Request::get("/size/3")]);
        assert_eq!(r[0].status(), 200);
        let st = server_stats(&p);
        assert_eq!((st.connections_resumed, st.early_data_accepted, st.requests_in_early_data), (1, 0, 0));
        assert!(!server_heads("/size/3").iter().any(|(n, _)| n == "early-data"));
        p.free();
    }
}

#[test]
fn requests_in_rejected_0rtt_are_sent_again_after_the_handshake() {
    unsafe {
        let p = pair();
        first_connection(&p); // a ticket that allows 0-RTT
        assert_eq!(us_quic_socket_context_set_early_data(p.server, 0), 0);
        let (_, r) =
            second_connection(&p, vec![Request::get("/size/100"), Request::new("POST", "/echo", b"x".to_vec())]);
        assert_eq!((r[0].status(), r[0].body.len(), &r[1].body[..]), (200, 100, &b"x"[..]));
        let st = server_stats(&p);
        assert_eq!((st.connections_resumed, st.early_data_accepted, st.requests_in_early_data), (1, 0, 0));
        assert_eq!(stats_of(p.client).early_data_accepted, 0, "the client saw it rejected");
        p.free();
    }
}

#[test]
fn a_client_that_offers_no_0rtt_still_resumes() {
    unsafe {
        let client = Settings { stream_ext_size: 16, early_data: EarlyData::Off, ..Settings::default() };
        let p = pair_with(Settings::default(), client);
        first_connection(&p);
        let (_, r) = second_connection(&p, vec![Request::get("/size/3")]);
        assert_eq!(r[0].status(), 200);
        let st = server_stats(&p);
        assert_eq!((st.connections_resumed, st.early_data_accepted), (1, 0));
        p.free();
    }
}

fn key(fill: u8) -> Vec<u8> {
    (0..48u8).map(|i| i ^ fill).collect()
}

#[test]
fn ticket_keys_rotate_old_ones_still_open_dropped_ones_do_not() {
    unsafe {
        let p = pair();
        let (k1, k2, k3) = (key(1), key(2), key(3));
        assert_eq!(us_quic_socket_context_set_ticket_keys(p.server, k1.as_ptr(), 48), 0);
        assert_eq!(us_quic_socket_context_set_ticket_keys(p.server, k1.as_ptr(), 47), -1, "not a multiple of 48");
        assert_eq!(us_quic_socket_context_set_ticket_keys(p.client, k1.as_ptr(), 48), -1, "a server's");
        first_connection(&p);
        // Rotated: k2 seals from now on, k1 still opens the ticket it sealed.
        let rotated = [k2.clone(), k1.clone()].concat();
        assert_eq!(us_quic_socket_context_set_ticket_keys(p.server, rotated.as_ptr(), 96), 0);
        let (pc, _) = second_connection(&p, vec![Request::get("/size/1")]);
        assert_eq!(server_stats(&p).connections_resumed, 1, "opened with the older key");
        us_quic_socket_close(pc);
        p.run(5, || world(|w| w.closed >= 4));
        // k1 and k2 gone: the client's ticket (sealed by k2) no longer opens.
        assert_eq!(us_quic_socket_context_set_ticket_keys(p.server, k3.as_ptr(), 48), 0);
        let (_, r) = second_connection(&p, vec![Request::get("/size/2")]);
        assert_eq!(r[0].status(), 200, "a full handshake instead");
        let st = server_stats(&p);
        assert_eq!((st.connections_resumed, st.early_data_accepted), (1, 1));
        p.free();
    }
}

#[test]
fn a_restarted_server_with_the_same_keys_takes_the_ticket() {
    unsafe {
        let p = pair();
        let k = key(9);
        us_quic_socket_context_set_ticket_keys(p.server, k.as_ptr(), 48);
        first_connection(&p);
        // Another server context (another process, or a restart) with the same
        // keys and certificate, on the same address, for the same client context.
        let (tls, _) = server_tls();
        let other = Box::into_raw(
            rust_quic::context::Context::new_server(
                &tls,
                Settings::default(),
                16,
                rust_quic::testing::MemoryDriver::new(&p.net, "127.0.0.9"),
            )
            .unwrap(),
        );
        install_callbacks(other);
        us_quic_socket_context_set_ticket_keys(other, k.as_ptr(), 48);
        rust_quic::edge::listen(other, None, 4433, 0, 16, None).unwrap();
        world(|w| w.server_requests.clear());
        // The ticket is kept by server name and port: the same for the new address.
        let pc =
            match rust_quic::edge::connect(p.client, "127.0.0.9", 4433, Some("localhost"), false, std::ptr::null_mut())
                .unwrap()
            {
                rust_quic::client::Connect::Now(pc) => pc,
                rust_quic::client::Connect::Pending(_) => unreachable!(),
            };
        world(|w| w.requests.push_back(Request::get("/size/7")));
        us_quic_socket_make_stream(pc);
        rust_quic::edge::after_io(p.client);
        let ok = rust_quic::testing::run_until(
            &p.net,
            &[p.server, p.client, other],
            std::time::Duration::from_secs(5),
            || world(|w| !w.responses.is_empty()),
        );
        assert!(ok);
        let st = stats_of(other);
        assert_eq!((st.connections_resumed, st.early_data_accepted, st.requests_in_early_data), (1, 1, 1));
        rust_quic::edge::request_free(other);
        rust_quic::edge::destroy(other);
        p.free();
    }
}

unsafe fn connect_to(p: &Pair, name: Option<&str>, verify: bool) -> *mut PeerContext {
    match rust_quic::edge::connect(p.client, p.server_ip, 4433, name, verify, std::ptr::null_mut()).unwrap() {
        rust_quic::client::Connect::Now(pc) => pc,
        rust_quic::client::Connect::Pending(_) => unreachable!("IP literal"),
    }
}

unsafe fn one_request(p: &Pair, pc: *mut PeerContext) -> Message {
    world(|w| w.requests.push_back(Request::get("/size/4")));
    us_quic_socket_make_stream(pc);
    rust_quic::edge::after_io(p.client);
    assert!(p.run(5, || world(|w| !w.responses.is_empty())), "answered");
    let r = world(|w| w.responses.remove(0));
    us_quic_socket_close(pc);
    let closed = world(|w| w.closed);
    p.run(5, || world(|w| w.closed >= closed + 2));
    r
}

#[test]
fn a_verifying_client_resumes_an_ip_literal_server_and_keeps_checking_its_address() {
    unsafe {
        let p = pair();
        (*p.client).set_client_ca(Some(p.cert.clone()));
        let r = one_request(&p, connect_to(&p, None, true));
        assert_eq!(r.status(), 200);
        let r = one_request(&p, connect_to(&p, None, true));
        assert_eq!(r.status(), 200, "resumed, the certificate's IP address still matched");
        assert_eq!(stats_of(p.client).connections_resumed, 1);
        p.free();
    }
}

#[test]
fn a_session_made_without_verification_never_resumes_a_verifying_connection() {
    unsafe {
        let p = pair();
        // An unverified session with the server...
        assert_eq!(one_request(&p, connect_to(&p, Some("localhost"), false)).status(), 200);
        // ...is not offered to a connection that verifies (against roots that do not
        // hold the test certificate): it fails its handshake instead of resuming past the check.
        connect_to(&p, Some("localhost"), true);
        assert!(p.run(5, || world(|w| w.hsk_failed >= 1)), "the certificate is checked");
        assert_eq!(stats_of(p.client).connections_resumed, 0);
        p.free();
    }
}
