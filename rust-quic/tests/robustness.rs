//! Bad input, closes from inside callbacks, loss, TLS verification and SNI.

mod common;

use common::*;
use rust_quic::client;
use rust_quic::context::{Context, Settings};
use rust_quic::edge;
use rust_quic::ffi::*;
use rust_quic::peer_context::PeerContext;
use rust_quic::testing::{self, MemoryDriver};
use rust_quic::tls::{ClientVerification, TlsOptions};
use std::time::{Duration, Instant};

fn stats(ctx: *mut Context) -> rust_quic::context::Stats {
    let mut st = rust_quic::context::Stats::default();
    unsafe { us_quic_socket_context_stats(ctx, &mut st) };
    st
}

/// Every callback closes its object (or the connection) in turn; afterwards the
/// contexts keep working and everything is released (leaks and double frees
/// are caught when this runs under valgrind/ASan, see scripts/memcheck.sh).
#[test]
fn close_from_every_callback() {
    for name in
        ["open", "hsk_done", "close", "stream_open", "stream_headers", "stream_data", "stream_writable", "stream_close"]
    {
        unsafe {
            let p = pair();
            world(|w| w.close_in = Some(name));
            let pc = p.connect();
            p.send(pc, vec![Request::get("/size/200000"), Request::new("POST", "/echo", vec![7u8; 100_000])]);
            p.run(3, || world(|w| w.responses.len() == 2 || w.closed >= 1 && w.requests.is_empty()));
            // Settle the first connection (on_close runs here), then the engine
            // still serves a fresh one.
            if !is_closed(pc) {
                us_quic_socket_close(pc);
                p.run(3, || is_closed(pc));
            }
            assert!(world(|w| w.close_log.contains(&name)), "{name}: callback never closed anything");
            world(|w| w.close_in = None);
            world(|w| {
                w.responses.clear();
                w.requests.clear();
            });
            let pc2 = p.connect();
            let r = p.fetch_all(pc2, vec![Request::get("/size/10")], 5);
            assert!(r.len() == 1 && r[0].body == pattern(10), "{name}: engine unusable after closes");
            p.free();
        }
    }
}

/// Closing inside on_open / on_hsk_done must end the connection promptly
/// (CONNECTION_CLOSE and the draining period), not at the idle timeout.
#[test]
fn close_inside_handshake_callbacks_is_prompt() {
    for name in ["open", "hsk_done"] {
        unsafe {
            let p = pair();
            world(|w| w.close_in = Some(name));
            p.connect();
            let t = std::time::Instant::now();
            assert!(p.run(5, || world(|w| w.closed >= 1)), "{name}: no close");
            assert!(t.elapsed() < std::time::Duration::from_secs(2), "{name}: close took {:?}", t.elapsed());
            p.free();
        }
    }
}

#[test]
fn context_freed_from_inside_a_callback_is_released_after_it() {
    unsafe extern "C" fn free_ctx_on_headers(s: *mut rust_quic::stream::Stream) {
        let ctx = us_quic_stream_context(s);
        edge::request_free(ctx);
        // The stream and its connection must still be readable here.
        assert!(us_quic_stream_header_count(s) > 0);
        assert!(!us_quic_stream_socket(s).is_null());
    }
    unsafe {
        let p = pair();
        us_quic_socket_context_on_stream_headers(p.server, Some(free_ctx_on_headers));
        let pc = p.connect();
        p.send(pc, vec![Request::get("/size/10")]);
        assert!(p.run(5, || (*p.server).free_requested));
        assert!(!(*p.server).in_callback());
        assert!((*p.server).connections.iter().all(|&c| (*PeerContext::from_handle(c)).finalized()));
        // The client learns the connection is gone.
        assert!(p.run(5, || world(|w| w.responses.len() == 1)));
        p.free();
    }
}

#[test]
fn garbage_truncated_and_unknown_version_datagrams() {
    unsafe {
        let p = pair();
        let server_addr = (*p.listen).local;
        let from: std::net::SocketAddr = "127.0.0.9:5555".parse().unwrap();
        let mut junk_seed = 1u32;
        let mut junk = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    junk_seed = junk_seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (junk_seed >> 16) as u8
                })
                .collect()
        };
        let mut cases: Vec<Vec<u8>> =
            vec![vec![], vec![0xc0], vec![0x40; 5], junk(1), junk(40), junk(1200), junk(1500)];
        // A long header with an unknown version, large enough to warrant an answer.
        let mut unknown_version =
            vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9];
        unknown_version.resize(1200, 0);
        cases.push(unknown_version);
        // A real client Initial, truncated at several points.
        let net2 = testing::network();
        let c2 = Box::into_raw(Context::new_client(Settings::default(), 0, MemoryDriver::new(&net2, "127.0.0.3")));
        let _ =
            rust_quic::edge::connect(c2, "127.0.0.1", 4433, Some("localhost"), false, std::ptr::null_mut()).unwrap();
        let initial = net2.borrow_mut().queue.pop_front().unwrap().data;
        for cut in [1, 5, 20, 100, 600, initial.len() - 1] {
            cases.push(initial[..cut].to_vec());
        }
        // Corrupt a byte of the protected payload (the datagram's tail may be
        // padding outside the packet, which is not authenticated).
        let mut flipped = initial.clone();
        flipped[80] ^= 0xff;
        cases.push(flipped);
        // Answered: datagrams of first-flight size whose (version-independent)
        // long header names a version other than ours, random bytes included.
        let unknown_long_header = |d: &[u8]| {
            d.len() >= 1200 && d[0] & 0x80 != 0 && {
                let version = u32::from_be_bytes(d[1..5].try_into().unwrap());
                version != 0 && !quiche::version_is_supported(version)
            }
        };
        // And short headers long enough to carry one of our IDs and a reset
        // token: no connection has that ID, so they draw a Stateless Reset.
        let short_header = |d: &[u8]| d.len() > 21 && d.len() > 1 + rust_quic::cid::CID_LEN && d[0] & 0x80 == 0;
        let expected = cases.iter().filter(|d| unknown_long_header(d)).count();
        let expected_resets = cases.iter().filter(|d| short_header(d)).count();
        assert!(expected >= 1 && expected_resets >= 1);
        for mut d in cases {
            edge::recv_datagram(p.listen, &mut d, from, server_addr);
        }
        edge::after_io(p.server);
        // Only Version Negotiation and resets went out, nothing else crashed.
        let answers: Vec<_> = p.net.borrow_mut().queue.drain(..).collect();
        let (vn, resets): (Vec<_>, Vec<_>) = answers.iter().partition(|a| a.data[0] & 0x80 != 0);
        assert_eq!(vn.len(), expected, "the unknown-version datagrams are answered");
        for answer in &vn {
            assert_eq!(answer.data[1..5], [0, 0, 0, 0], "version negotiation packet");
        }
        assert_eq!(resets.len(), expected_resets, "the short headers are answered with a reset");
        for reset in &resets {
            assert!(
                (21..1200).contains(&reset.data.len()) && reset.data[0] & 0xc0 == 0x40,
                "a reset looks like a short header"
            );
        }
        let st = stats(p.server);
        assert!(st.packets_dropped >= 10, "{st:?}");
        assert!((*p.server).connections.is_empty(), "garbage must not create connections");
        // And real clients still get served.
        let pc = p.connect();
        let r = p.fetch_all(pc, vec![Request::get("/size/1")], 5);
        assert_eq!(r[0].status(), 200);
        edge::request_free(c2);
        edge::destroy(c2);
        p.free();
    }
}

#[test]
fn one_megabyte_echo_survives_ten_percent_loss() {
    unsafe {
        let p = pair();
        let mut n = 0u32;
        p.net.borrow_mut().filter = Some(Box::new(move |_d| {
            n += 1;
            n % 10 != 3
        }));
        let pc = p.connect();
        let body: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let r = p.fetch_all(pc, vec![Request::new("POST", "/echo", body.clone())], 60);
        assert!(r[0].body == body);
        assert!(p.net.borrow().dropped > 10);
        p.free();
    }
}

unsafe fn verified_client(p: &Pair, ca: Option<Vec<u8>>, host: &str, sni: Option<&str>) -> *mut Context {
    let client = Box::into_raw(Context::new_client(
        Settings { stream_ext_size: 16, ..Settings::default() },
        0,
        MemoryDriver::new(&p.net, "127.0.0.4"),
    ));
    install_callbacks(client);
    (*client).set_client_ca(ca);
    match rust_quic::edge::connect(client, host, 4433, sni, true, std::ptr::null_mut()).unwrap() {
        client::Connect::Now(_) => {}
        client::Connect::Pending(_) => unreachable!(),
    }
    client
}

unsafe fn run3(p: &Pair, c: *mut Context, done: impl FnMut() -> bool) -> bool {
    testing::run_until(&p.net, &[p.server, p.client, c], std::time::Duration::from_secs(5), done)
}

#[test]
fn certificate_verification() {
    unsafe {
        // Unknown issuer: refused.
        let p = pair();
        let c = verified_client(&p, None, "127.0.0.1", Some("localhost"));
        assert!(run3(&p, c, || world(|w| w.hsk_failed == 1)), "untrusted certificate must fail");
        assert_eq!(world(|w| w.hsk_ok), 0);
        edge::request_free(c);
        edge::destroy(c);
        // Trusted CA, matching DNS name: accepted.
        let c = verified_client(&p, Some(p.cert.clone()), "127.0.0.1", Some("localhost"));
        assert!(run3(&p, c, || world(|w| w.hsk_ok == 1)), "trusted certificate");
        edge::request_free(c);
        edge::destroy(c);
        // Trusted CA, wrong name: refused.
        let c = verified_client(&p, Some(p.cert.clone()), "127.0.0.1", Some("other.example"));
        assert!(run3(&p, c, || world(|w| w.hsk_failed == 2)), "name mismatch must fail");
        edge::request_free(c);
        edge::destroy(c);
        // IP literal: checked against the IP SAN (the certificate lists 127.0.0.1).
        let c = verified_client(&p, Some(p.cert.clone()), "127.0.0.1", None);
        assert!(run3(&p, c, || world(|w| w.hsk_ok == 2)), "IP SAN must match");
        edge::request_free(c);
        edge::destroy(c);
        p.free();
    }
}

/// requestCert + rejectUnauthorized: only a client whose certificate chains to
/// the configured CA is served; without rejectUnauthorized any client is.
#[test]
fn client_certificates_are_checked_when_required() {
    unsafe {
        let (trusted_cert, trusted_key) = testing::self_signed(&["client.test"]);
        let (other_cert, other_key) = testing::self_signed(&["other.test"]);
        let identity = |cert: &Vec<u8>, key: &Vec<u8>| TlsOptions {
            cert_pem: cert.clone(),
            key_pem: key.clone(),
            ..Default::default()
        };
        let cases = [
            (ClientVerification::Require, None, false),
            (ClientVerification::Require, Some(identity(&other_cert, &other_key)), false),
            (ClientVerification::Require, Some(identity(&trusted_cert, &trusted_key)), true),
            (ClientVerification::Request, None, true),
            (ClientVerification::Request, Some(identity(&other_cert, &other_key)), true),
            (ClientVerification::None, Some(identity(&other_cert, &other_key)), true),
        ];
        for (verification, client_identity, served) in cases {
            let p = pair();
            (*p.server).set_client_verification(verification, Some(trusted_cert.clone())).unwrap();
            (*p.client).set_client_identity(client_identity.as_ref()).unwrap();
            let pc = p.connect();
            p.send(pc, vec![Request::get("/size/10")]);
            let settled = p.run(5, || world(|w| !w.responses.is_empty() || w.closed_conns.contains(&(pc as usize))));
            assert!(settled, "{verification:?}: neither served nor closed");
            let got = world(|w| w.responses.iter().any(|m| m.status() == 200));
            assert_eq!(got, served, "{verification:?} with a client certificate: {}", client_identity.is_some());
            p.free();
        }
    }
}

/// A response whose FIN is written while the client's ACK of all its bytes is
/// in flight still ends. quiche 0.30 deems the sending side complete once the
/// data is acknowledged and forgets the stream with a zero-length FIN unsent
/// (cloudflare/quiche#2525): the FIN must not travel alone.
#[test]
fn a_fin_written_before_the_body_is_acknowledged_still_arrives() {
    unsafe {
        let p = pair();
        // Once the server has written the body, hold what the client sends (its
        // ACKs of the body) until the FIN is written.
        let held: std::rc::Rc<std::cell::RefCell<Vec<testing::Datagram>>> = Default::default();
        let into = held.clone();
        let server_addr: std::net::SocketAddr = "127.0.0.1:4433".parse().unwrap();
        p.net.borrow_mut().filter = Some(Box::new(move |d| {
            if d.to == server_addr && world(|w| !w.unended.is_empty()) {
                into.borrow_mut().push(testing::Datagram { from: d.from, to: d.to, data: d.data.clone() });
                return false;
            }
            true
        }));
        let pc = p.connect();
        p.send(pc, vec![Request::get("/unended/3000")]);
        assert!(p.run(5, || world(|w| !w.unended.is_empty())));
        p.run(1, || false);
        assert!(!held.borrow().is_empty(), "the client acknowledged nothing");
        let server_stream = world(|w| w.unended[0]) as *mut rust_quic::stream::Stream;
        us_quic_stream_shutdown(server_stream);
        // The ACKs reach the server before it sends again.
        p.net.borrow_mut().filter = None;
        // Newest first: its ACK ranges cover the whole body at once.
        let acks: Vec<testing::Datagram> = held.borrow_mut().drain(..).rev().collect();
        p.net.borrow_mut().queue.extend(acks);
        assert!(p.run(5, || world(|w| !w.responses.is_empty())), "the FIN never reached the client");
        let r = world(|w| w.responses.remove(0));
        assert_eq!((r.status(), r.body.len(), r.error), (200, 3000, -1));
        p.free();
    }
}

#[test]
fn sni_selects_the_certificate() {
    unsafe {
        let p = pair();
        let (cert, key) = testing::self_signed(&["api.example.test"]);
        let sni = TlsOptions { cert_pem: cert.clone(), key_pem: key, ..Default::default() };
        (*p.server).add_server_name("*.example.test", &sni).unwrap();
        // Verifying with only the SNI certificate trusted proves which one was served.
        let c = verified_client(&p, Some(cert), "127.0.0.1", Some("api.example.test"));
        assert!(run3(&p, c, || world(|w| w.hsk_ok + w.hsk_failed == 1)));
        assert_eq!(world(|w| w.hsk_ok), 1, "SNI certificate served");
        edge::request_free(c);
        edge::destroy(c);
        p.free();
    }
}

#[test]
fn dead_port_fails_the_handshake_at_once() {
    unsafe {
        let p = pair();
        let pc = match rust_quic::edge::connect(p.client, "127.0.0.1", 9, None, false, std::ptr::null_mut()).unwrap() {
            client::Connect::Now(pc) => pc,
            client::Connect::Pending(_) => unreachable!(),
        };
        assert_eq!(us_quic_socket_errno(pc), 0);
        let t = std::time::Instant::now();
        assert!(p.run(5, || world(|w| w.hsk_failed == 1)));
        assert!(t.elapsed() < std::time::Duration::from_millis(500), "no waiting for a timeout");
        // (pc is freed by now: the errno was read inside on_hsk_done.)
        assert_eq!(world(|w| w.hsk_errno), libc::ECONNREFUSED);
        assert_eq!(world(|w| w.closed), 1);
        p.free();
    }
}

/// A NAT rebinding mid-transfer: the client's datagrams suddenly come from
/// another address; the server validates the new path and carries on.
#[test]
fn nat_rebinding_keeps_the_connection() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        let r = p.fetch_all(pc, vec![Request::get("/size/1000")], 5);
        assert_eq!(r[0].status(), 200);
        let client_addr = (*pc).local_addr;
        let client_real: std::net::SocketAddr = format!("127.0.0.2:{}", client_addr.port()).parse().unwrap();
        let rebound: std::net::SocketAddr = "127.0.0.2:61000".parse().unwrap();
        p.net.borrow_mut().aliases.insert(rebound, client_real);
        p.net.borrow_mut().filter = Some(Box::new(move |d| {
            if d.from == client_real {
                d.from = rebound;
            }
            true
        }));
        let r = p.fetch_all(pc, vec![Request::new("POST", "/echo", vec![5u8; 300_000])], 10);
        assert_eq!(r[0].body.len(), 300_000);
        let server_conn = PeerContext::from_handle((&(*p.server).connections)[0]);
        assert_eq!((*server_conn).peer_addr, rebound, "server follows the new path");
        assert_eq!(world(|w| w.closed), 0);
        p.free();
    }
}

/// A lost packet lets later streams overtake stream 0; the retransmitted stream 0
/// is a new stream, not late data for a finished one.
#[test]
fn streams_arriving_out_of_order_after_a_loss_are_served() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        assert!(p.run(5, || world(|w| w.hsk_ok == 1)));
        let client_addr = (*pc).local_addr.port();
        let dropped = std::rc::Rc::new(std::cell::Cell::new(false));
        let d = dropped.clone();
        p.net.borrow_mut().filter = Some(Box::new(move |dg| {
            if dg.from.port() == client_addr && !d.get() {
                d.set(true);
                return false; // lose the first request packet
            }
            true
        }));
        let reqs = (0..10).map(|i| Request::new("POST", "/echo", vec![i as u8; 3000])).collect();
        let r = p.fetch_all(pc, reqs, 10);
        assert!(dropped.get());
        assert_eq!(r.len(), 10);
        for (i, m) in r.iter().enumerate() {
            assert_eq!(m.status(), 200);
            assert!(m.body == vec![i as u8; 3000], "request {i}");
        }
        p.free();
    }
}

#[test]
fn make_stream_waits_for_stream_credit() {
    unsafe {
        let server = Settings { max_streams_bidi: 4, ..Settings::default() };
        let p = pair_with(server, Settings { stream_ext_size: 16, ..Settings::default() });
        let pc = p.connect();
        assert!(p.run(5, || world(|w| w.hsk_ok == 1)));
        assert_eq!(us_quic_socket_streams_avail(pc), 4);
        let reqs = (0..20).map(|i| Request::get(&format!("/size/{}", i + 1))).collect();
        let r = p.fetch_all(pc, reqs, 20);
        assert_eq!(r.len(), 20);
        assert!(r.iter().all(|m| m.status() == 200));
        p.free();
    }
}

#[test]
fn a_lost_first_flight_is_probed_within_a_third_of_a_second() {
    unsafe {
        let p = pair();
        // Everything the server sends is lost: its first flight never arrives.
        p.net.borrow_mut().filter = Some(Box::new(|d| d.from.port() != 4433));
        let began = Instant::now();
        let _pc = p.connect();
        assert!(testing::pump(&p.net, 100) > 0, "the client's Initial reached the server");
        assert!(p.net.borrow().dropped > 0, "the server's answer was lost");
        // Neither side has an RTT sample: the first probe timeout comes from the initial RTT.
        // At 100 ms it is about 325 ms; RFC 9002's default 333 ms would make it about a second.
        for (side, ctx) in [("server", p.server), ("client", p.client)] {
            let probe = edge::next_timeout(ctx).expect("a probe timer is armed");
            assert!(probe - began < Duration::from_millis(500), "{side}'s first probe in {:?}", probe - began);
        }
        p.free();
    }
}

/// Downloads 1 MB from `p` and returns the largest datagram the server sent.
unsafe fn largest_server_datagram_in_a_download(p: &Pair) -> usize {
    let largest = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let seen = largest.clone();
    let carried = p.net.borrow().filter.is_some();
    let mut path = p.net.borrow_mut().filter.take();
    p.net.borrow_mut().filter = Some(Box::new(move |d| {
        if d.from.port() == 4433 {
            seen.set(seen.get().max(d.data.len()));
        }
        path.as_mut().is_none_or(|f| f(d))
    }));
    let pc = p.connect();
    let r = p.fetch_all(pc, vec![Request::get("/size/1000000")], 30);
    assert_eq!((r[0].status(), r[0].body.len()), (200, 1_000_000), "the download completes (path filter: {carried})");
    largest.get()
}

#[test]
fn loopback_carries_large_packets() {
    unsafe {
        // Loopback's MTU is 64 KiB: no probing, packets up to quiche's 16,383-byte cap.
        let p = pair();
        let largest = largest_server_datagram_in_a_download(&p);
        assert!(largest > 8_000, "largest datagram on loopback: {largest}");
        p.free();
    }
}

#[test]
fn another_path_is_probed_and_never_black_holed() {
    unsafe {
        // Not loopback: packets grow by probing, up to 1,452 bytes on a path that carries them.
        let p = pair_on(
            Settings::default(),
            Settings { stream_ext_size: 16, ..Settings::default() },
            "192.0.2.1",
            "192.0.2.2",
        );
        let largest = largest_server_datagram_in_a_download(&p);
        assert_eq!(largest, 1452, "largest datagram on a clean path");
        p.free();
        // A tunnel that carries at most 1,400 bytes: the probe for 1,452 is lost, the search
        // settles below, and the download completes (a fixed 1,452 would lose every full packet).
        let p = pair_on(
            Settings::default(),
            Settings { stream_ext_size: 16, ..Settings::default() },
            "192.0.2.1",
            "192.0.2.2",
        );
        p.net.borrow_mut().filter = Some(Box::new(|d| d.data.len() <= 1400));
        let largest = largest_server_datagram_in_a_download(&p);
        assert!(largest > 1400, "a probe above the path's limit was tried");
        assert!(p.net.borrow().dropped < 200, "only probes were lost: {}", p.net.borrow().dropped);
        p.free();
    }
}

#[test]
fn every_long_header_of_an_unknown_version_gets_version_negotiation() {
    unsafe {
        let p = pair();
        let server_addr = (*p.listen).local;
        let from: std::net::SocketAddr = "127.0.0.9:5556".parse().unwrap();
        let datagram = |first: u8, version: u32, dcid: &[u8], scid: &[u8], len: usize| {
            let mut d = vec![first];
            d.extend(version.to_be_bytes());
            d.push(dcid.len() as u8);
            d.extend(dcid);
            d.push(scid.len() as u8);
            d.extend(scid);
            d.resize(len, 0x5a);
            d
        };
        let dcid_long = [0xd1; 40]; // longer than version 1 allows: other versions may
        let mut sent = 0;
        for first in 0x80..=0xffu8 {
            // Every version-specific pattern of the first byte, greased and real
            // unknown versions (QUIC v2 among them), connection IDs of any length.
            for (version, dcid, scid) in [
                (0x1a2a_3a4au32, &[0xd0u8; 8][..], &[0xc0u8; 8][..]),
                (0x6b33_43cf, &[0xd2; 20][..], &[][..]),
                (0xff00_001d, &dcid_long[..], &[0xc3; 255][..]),
            ] {
                let mut d = datagram(first, version, dcid, scid, 1200.max(dcid.len() + scid.len() + 7));
                edge::recv_datagram(p.listen, &mut d, from, server_addr);
                edge::after_io(p.server);
                let answers: Vec<_> = p.net.borrow_mut().queue.drain(..).collect();
                assert_eq!(answers.len(), 1, "first byte {first:#04x}, version {version:#x}: one answer");
                let vn = &answers[0].data;
                assert_eq!(answers[0].to, from);
                assert_eq!(vn[0] & 0x80, 0x80, "a long header");
                assert_eq!(vn[1..5], [0, 0, 0, 0], "version 0: Version Negotiation");
                // Its destination is the client's source ID and the other way round.
                let (v, vn_dcid, vn_scid) =
                    (u32::from_be_bytes(vn[1..5].try_into().unwrap()), &vn[6..6 + vn[5] as usize], {
                        let at = 6 + vn[5] as usize;
                        &vn[at + 1..at + 1 + vn[at] as usize]
                    });
                assert_eq!((v, vn_dcid, vn_scid), (0, scid, dcid));
                let versions_at = 7 + scid.len() + dcid.len();
                let versions: Vec<u32> =
                    vn[versions_at..].chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect();
                assert!(versions.contains(&1), "offers QUIC v1: {versions:x?}");
                assert!(vn.len() < 1200, "never larger than what drew it");
                sent += 1;
            }
        }
        assert_eq!(sent, 128 * 3);
        // Not answered: too small to be a first flight (an amplification
        // vector otherwise) and Version Negotiation itself. (A short header is
        // no version's: it draws a Stateless Reset, tested below.)
        for mut d in [datagram(0xc0, 0x1a2a_3a4a, &[1; 8], &[2; 8], 1199), datagram(0x80, 0, &[1; 8], &[2; 8], 1200)] {
            edge::recv_datagram(p.listen, &mut d, from, server_addr);
        }
        edge::after_io(p.server);
        assert!(p.net.borrow().queue.is_empty(), "no answer to those");
        assert!((*p.server).connections.is_empty());
        // And real clients are still served.
        let pc = p.connect();
        let r = p.fetch_all(pc, vec![Request::get("/size/1")], 5);
        assert_eq!(r[0].status(), 200);
        p.free();
    }
}

#[test]
fn a_key_log_that_cannot_be_opened_leaves_connections_working() {
    unsafe {
        // A key log path in a directory that does not exist: said once on
        // stderr, and the connection works as without one.
        let bad = Settings { keylog_path: Some("/nonexistent-rust-quic-dir/keys.log".into()), ..Settings::default() };
        let p = pair_with(bad.clone(), bad);
        let pc = p.connect();
        let r = p.fetch_all(pc, vec![Request::get("/size/10")], 5);
        assert_eq!(r[0].status(), 200);
        assert!(!std::path::Path::new("/nonexistent-rust-quic-dir").exists());
        p.free();
        // A good one gets both ends' secrets, with the same client random.
        let path = std::env::temp_dir().join(format!("rust-quic-keys-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let good = Settings { keylog_path: Some(path.clone()), ..Settings::default() };
        let p = pair_with(good.clone(), good);
        let pc = p.connect();
        let r = p.fetch_all(pc, vec![Request::get("/size/10")], 5);
        assert_eq!(r[0].status(), 200);
        p.free();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
        let secret = |label: &str| lines.iter().filter(|f| f[0] == label).map(|f| (f[1], f[2])).collect::<Vec<_>>();
        for label in [
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
            "SERVER_TRAFFIC_SECRET_0",
        ] {
            let both = secret(label);
            assert_eq!(both.len(), 2, "{label}: one line from each end");
            assert_eq!(both[0], both[1], "{label}: client and server agree");
        }
    }
}

/// A server that lost its state (a crash and restart on the same port) answers
/// its old connections' packets with a Stateless Reset (RFC 9000 10.3): with the
/// reset key of the server before it, the client recognizes the token and closes
/// at once; with another key it does not (and waits for its idle timeout).
#[test]
fn a_restarted_server_resets_the_connections_it_lost() {
    unsafe {
        for same_key in [true, false] {
            let server_settings = Settings { reset_key: Some([7; 32]), ..Settings::default() };
            let client_settings = Settings { stream_ext_size: 16, ..Settings::default() };
            let mut p = pair_with(server_settings, client_settings);
            let pc = p.connect();
            let r = p.fetch_all(pc, vec![Request::get("/size/1")], 5);
            assert_eq!(r[0].status(), 200);
            // The server is gone without a word: whatever it said while closing is lost.
            edge::request_free(p.server);
            edge::destroy(p.server);
            p.net.borrow_mut().queue.clear();
            let key = if same_key { [7; 32] } else { [8; 32] };
            let (tls, _) = server_tls();
            let restarted = Settings { reset_key: Some(key), ..Settings::default() };
            p.server = Box::into_raw(
                Context::new_server(&tls, restarted, 16, MemoryDriver::new(&p.net, "127.0.0.1")).unwrap(),
            );
            install_callbacks(p.server);
            p.listen = edge::listen(p.server, None, 4433, 0, 16, None).unwrap();
            // The client's next request reaches a server without its connection.
            p.send(pc, vec![Request::get("/size/1")]);
            let closed = p.run(2, || is_closed(pc));
            assert_eq!(closed, same_key, "reset key shared: {same_key}");
            p.free();
        }
    }
}

/// Anyone can send the short-header packets that draw a Stateless Reset, with any
/// source address: each reset is smaller than its trigger (no amplification, no
/// reset loop between two servers), none answers a packet too small to hide a
/// token, and a flood draws a bounded number.
#[test]
fn stateless_resets_are_smaller_than_their_trigger_and_bounded() {
    unsafe {
        let p = pair();
        let server_addr = (*p.listen).local;
        let from: std::net::SocketAddr = "127.0.0.9:5555".parse().unwrap();
        for mut d in [vec![0x40; 21], vec![0x40; 10]] {
            edge::recv_datagram(p.listen, &mut d, from, server_addr);
        }
        edge::after_io(p.server);
        assert!(p.net.borrow().queue.is_empty(), "too small to answer");
        for i in 0..1000u32 {
            let mut d = vec![0x40; 60];
            d[1..5].copy_from_slice(&i.to_be_bytes());
            edge::recv_datagram(p.listen, &mut d, from, server_addr);
        }
        edge::after_io(p.server);
        let resets: Vec<_> = p.net.borrow_mut().queue.drain(..).collect();
        assert!((100..=200).contains(&resets.len()), "a flood of 1000 drew {} resets", resets.len());
        assert!(resets.iter().all(|r| (21..60).contains(&r.data.len())));
        // Tokens are per connection ID.
        let token = |r: &testing::Datagram| r.data[r.data.len() - 16..].to_vec();
        assert_ne!(token(&resets[0]), token(&resets[1]));
        p.free();
    }
}
