//! Engine behaviour over the in-memory network, through the C ABI functions.

mod common;

use common::*;
use rust_quic::context::Settings;
use rust_quic::ffi::*;
use rust_quic::http3;
use rust_quic::peer_context::PeerContext;

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    boring::rand::rand_bytes(&mut v).unwrap();
    v
}

#[test]
fn handshake_then_get() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        assert!(p.run(5, || world(|w| w.hsk_ok == 1)), "handshake");
        // Server on_open and client on_open.
        assert_eq!(world(|w| w.opened), 2);
        let r = p.fetch_all(pc, vec![Request::get("/size/5")], 5);
        assert_eq!(r[0].status(), 200);
        assert_eq!(r[0].header("content-length"), Some("5"));
        assert_eq!(r[0].body, pattern(5));
        assert!(r[0].fin && r[0].error == -1);
        let mut st = std::mem::zeroed();
        us_quic_socket_context_stats(p.server, &mut st);
        assert_eq!((st.connections_accepted, st.requests), (1, 1));
        assert!(st.bytes_received > 1200 && st.packets_sent > 0);
        // The server saw the request head.
        let req = world(|w| w.server_requests.clone());
        assert_eq!(req[0].header(":method"), Some("GET"));
        assert_eq!(req[0].header(":path"), Some("/size/5"));
        p.free();
    }
}

#[test]
fn ten_megabytes_both_ways_byte_exact() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        let body = random_bytes(10 * 1024 * 1024);
        let r = p.fetch_all(pc, vec![Request::new("POST", "/echo", body.clone())], 60);
        assert_eq!(r[0].status(), 200);
        assert_eq!(r[0].body.len(), body.len());
        assert!(r[0].body == body, "echoed body differs");
        // Flow control pushed back on both writers.
        assert!(world(|w| w.short_writes) > 0);
        p.free();
    }
}

#[test]
fn hundred_concurrent_streams_on_one_connection() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        let reqs = (0..100).map(|i| Request::get(&format!("/size/{}", 1000 + i))).collect();
        let r = p.fetch_all(pc, reqs, 30);
        assert_eq!(r.len(), 100);
        let mut sizes: Vec<usize> = r.iter().map(|m| m.body.len()).collect();
        sizes.sort();
        assert_eq!(sizes, (1000..1100).collect::<Vec<_>>());
        assert!(r.iter().all(|m| m.status() == 200 && m.body == pattern(m.body.len())));
        assert_eq!(world(|w| w.closed), 0, "no connection closed");
        p.free();
    }
}

#[test]
fn paused_reader_applies_backpressure_then_resumes() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        world(|w| w.client_pause_at = Some(64 * 1024));
        p.send(pc, vec![Request::get("/size/8000000")]);
        assert!(p.run(10, || world(|w| !w.paused_streams.is_empty())));
        // While paused, the server is held by flow control: it cannot finish.
        let before = world(|w| w.short_writes);
        p.run(1, || false);
        assert!(world(|w| w.responses.is_empty()), "response must not complete while paused");
        assert!(world(|w| w.short_writes) >= before.max(1));
        world(|w| w.client_pause_at = None);
        for s in world(|w| std::mem::take(&mut w.paused_streams)) {
            us_quic_stream_want_read(s as *mut _, 1);
        }
        assert!(p.run(30, || world(|w| w.responses.len() == 1)));
        let r = world(|w| w.responses[0].clone());
        assert_eq!(r.body, pattern(8_000_000));
        assert!(world(|w| w.writable_events) > 0);
        p.free();
    }
}

/// A pause takes effect at once: no data callback until the application
/// resumes, even when bytes already read from QUIC (more DATA frames of the
/// same read) are waiting; after the resume they all come, in order.
#[test]
fn a_paused_stream_hears_nothing_until_resumed() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        // An upload in 100-byte DATA frames: one read from QUIC holds hundreds.
        world(|w| {
            w.server_pause_at = Some(1);
            w.write_chunk = Some(100);
        });
        p.send(pc, vec![Request::new("POST", "/echo", pattern(200_000))]);
        assert!(p.run(5, || world(|w| !w.paused_streams.is_empty())));
        p.run(1, || false);
        assert_eq!(world(|w| w.data_while_paused), 0, "data delivered to a paused stream");
        world(|w| {
            w.server_pause_at = None;
            w.write_chunk = None;
        });
        for s in world(|w| std::mem::take(&mut w.paused_streams)) {
            us_quic_stream_want_read(s as *mut _, 1);
        }
        assert!(p.run(10, || world(|w| w.responses.len() == 1)));
        assert_eq!(world(|w| w.responses[0].body.clone()), pattern(200_000));
        p.free();
    }
}

/// A server shut down while a client's handshake is under way closes that
/// connection at once (it has no streams to wait for) and never reports it open.
#[test]
fn shutdown_during_a_handshake_closes_it_without_reporting_it_open() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        // The client's Initial reaches the server; the server answers and waits.
        assert_eq!(rust_quic::testing::pump(&p.net, 1), 1);
        let server_conn = PeerContext::from_handle(*(*p.server).connections.first().expect("a server connection"));
        assert!(!(*server_conn).is_established());
        us_quic_socket_context_shutdown(p.server);
        // (The server's first flight may already complete the client's handshake:
        // either way the client's connection ends, promptly.)
        let t = std::time::Instant::now();
        assert!(p.run(5, || is_closed(pc) || world(|w| w.hsk_failed == 1)), "the client's connection ends");
        assert!(t.elapsed() < std::time::Duration::from_secs(2), "ended by the close, not a timeout");
        assert!(p.run(5, || (*server_conn).finalized()), "the server's connection ends");
        assert_eq!(world(|w| w.opened), 1, "only the client's own on_open (at connect)");
        p.free();
    }
}

/// The same on a client shut down before its handshake ended: it cannot send an
/// application close yet (no 1-RTT keys), so it closes with a transport
/// NO_ERROR and is over long before the idle timeout. (The server may not hear
/// it: a client Initial in a datagram under 1200 bytes is discarded, RFC 9000
/// 14.1, so that side ends at its own timeout.)
#[test]
fn a_client_shut_down_during_its_handshake_closes_promptly() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        us_quic_socket_context_shutdown(p.client);
        let t = std::time::Instant::now();
        assert!(p.run(10, || world(|w| w.hsk_failed == 1)), "the client's handshake ends");
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "took {:?}", t.elapsed());
        let _ = pc;
        p.free();
    }
}

#[test]
fn informational_and_trailers() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        let r = p.fetch_all(pc, vec![Request::get("/informational"), Request::get("/trailers")], 5);
        assert_eq!(r[0].informational, vec!["103".to_string()]);
        assert_eq!(r[0].status(), 200);
        assert_eq!(r[0].body, b"after-103");
        assert_eq!(r[1].body, b"body-then-trailers");
        assert_eq!(r[1].trailers, vec![("x-checksum".to_string(), "abc123".to_string())]);
        p.free();
    }
}

/// Each malformed request is a stream error: the stream is reset with
/// H3_MESSAGE_ERROR while a sibling request on the same connection succeeds.
#[test]
fn malformed_requests_are_stream_errors() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        let base = |m: &str, path: &str| Request::new(m, path, Vec::new());
        let mut missing_path = base("GET", "/x");
        missing_path.headers.retain(|(n, _)| n != ":path");
        let dup_method = base("GET", "/x").header(":method", "GET");
        let mut late_pseudo = base("GET", "/x");
        late_pseudo.headers.insert(1, ("x-early".into(), "1".into()));
        let cases = vec![
            missing_path,
            dup_method,
            late_pseudo,
            base("GET", "/x").header("x-bad", "a\r\nb"),
            base("GET", "/x").header("x-nul", "a\0b"),
            base("GET", "/x").header("te", "gzip"),
            base("GET", "/x").header("connection", "keep-alive"),
            Request::new("POST", "/echo", b"12345".to_vec()).header("content-length", "10"),
            Request::new("POST", "/echo", b"1234567890".to_vec()).header("content-length", "3"),
        ];
        let n = cases.len();
        let mut reqs = cases;
        reqs.push(Request::get("/size/3"));
        let r = p.fetch_all(pc, reqs, 10);
        assert_eq!(r.len(), n + 1);
        for (i, m) in r[..n].iter().enumerate() {
            assert_eq!(m.error, http3::H3_MESSAGE_ERROR as i64, "case {i}: {m:?}");
        }
        assert_eq!(r[n].status(), 200, "the sibling request must still succeed");
        assert_eq!(world(|w| w.closed), 0, "the connection must stay open");
        // And the connection keeps serving afterwards.
        let again = p.fetch_all(pc, vec![Request::get("/size/10")], 5);
        assert_eq!(again[0].body, pattern(10));
        let mut st = std::mem::zeroed();
        us_quic_socket_context_stats(p.server, &mut st);
        assert_eq!(st.stream_errors, n as u64);
        p.free();
    }
}

#[test]
fn oversized_header_block_gets_431_and_the_connection_lives() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        let huge = "h".repeat(100 * 1024);
        let r = p.fetch_all(pc, vec![Request::get("/size/1").header("x-huge", &huge), Request::get("/size/2")], 10);
        assert_eq!(r[0].status(), 431);
        assert_eq!(r[1].status(), 200);
        assert_eq!(world(|w| w.closed), 0);
        p.free();
    }
}

#[test]
fn large_but_allowed_headers_pass() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        let mut req = Request::get("/size/1").header("x-big", &"b".repeat(7000));
        for i in 0..50 {
            req = req.header(&format!("x-h{i}"), &"v".repeat(100));
        }
        let r = p.fetch_all(pc, vec![req], 10);
        assert_eq!(r[0].status(), 200);
        let seen = world(|w| w.server_requests[0].head.len());
        assert_eq!(seen, 4 + 1 + 50);
        p.free();
    }
}

#[test]
fn aborted_upload_resets_only_its_stream() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        let mut aborted = Request::new("POST", "/echo", random_bytes(200_000));
        aborted.reset_after = Some(50_000);
        let r = p.fetch_all(pc, vec![aborted, Request::get("/size/100")], 10);
        assert_eq!(r[0].error, http3::H3_REQUEST_CANCELLED as i64);
        assert_eq!(r[1].body, pattern(100));
        assert!(p.run(2, || world(|w| w.server_requests.iter().any(|m| m.error == http3::H3_REQUEST_CANCELLED as i64))));
        assert_eq!(world(|w| w.closed), 0);
        p.free();
    }
}

/// The server answers (413) before the upload ends and sends STOP_SENDING with
/// H3_NO_ERROR: the client gets the complete response and the stream ends cleanly.
#[test]
fn early_response_with_stop_sending_completes_the_client_stream() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        let r = p.fetch_all(pc, vec![Request::new("POST", "/reject", vec![1u8; 5_000_000])], 10);
        assert_eq!(r[0].status(), 413);
        assert_eq!(r[0].body, b"too large");
        assert!(r[0].fin);
        assert_eq!(r[0].error, -1, "a clean end, not a reset");
        let again = p.fetch_all(pc, vec![Request::get("/size/3")], 5);
        assert_eq!(again[0].status(), 200);
        p.free();
    }
}

#[test]
fn shutdown_sends_goaway_and_drains_in_flight() {
    let _ = env_logger::builder().is_test(true).try_init();
    unsafe {
        let p = pair();
        let pc = p.connect();
        world(|w| w.client_pause_at = Some(1));
        p.send(pc, vec![Request::get("/size/300000")]);
        assert!(p.run(5, || world(|w| !w.paused_streams.is_empty())));
        us_quic_socket_context_shutdown(p.server);
        assert!(p.run(5, || world(|w| w.goaways == 1)), "client sees GOAWAY");
        assert_eq!(us_quic_socket_streams_avail(pc), 0);
        world(|w| w.client_pause_at = None);
        for s in world(|w| std::mem::take(&mut w.paused_streams)) {
            us_quic_stream_want_read(s as *mut _, 1);
        }
        assert!(p.run(10, || world(|w| w.responses.len() == 1)), "in-flight request finishes");
        assert_eq!(world(|w| w.responses[0].body.len()), 300000);
        // Then the connection closes cleanly (H3_NO_ERROR) on both ends.
        assert!(p.run(10, || world(|w| w.closed == 2)), "connection closes after draining");
        let (mut code, mut app) = (0u64, 0);
        assert_eq!(us_quic_socket_close_error(pc, &mut code, &mut app), 1);
        assert_eq!((code, app), (http3::H3_NO_ERROR, 1));
        p.free();
    }
}

#[test]
fn idle_timeout_closes_both_ends() {
    unsafe {
        let s = Settings { idle_timeout_ms: 300, ..Settings::default() };
        let c = Settings { idle_timeout_ms: 300, stream_ext_size: 16, ..Settings::default() };
        let p = pair_with(s, c);
        p.connect();
        assert!(p.run(5, || world(|w| w.hsk_ok == 1)));
        let t = std::time::Instant::now();
        assert!(p.run(5, || world(|w| w.closed == 2)), "idle timeout");
        assert!(t.elapsed() >= std::time::Duration::from_millis(250));
        p.free();
    }
}

/// us_quic_embed_add_static_route with its fields in the embed ABI's layout.
unsafe fn add_static_route(
    ctx: *mut rust_quic::context::Context,
    path: &str,
    fields: &[(&str, &str)],
    body: &[u8],
) -> std::ffi::c_int {
    let mut block = Vec::new();
    for part in fields.iter().flat_map(|&(n, v)| [n, v]) {
        block.extend_from_slice(&(part.len() as u32).to_ne_bytes());
        block.extend_from_slice(part.as_bytes());
    }
    rust_quic::embed::us_quic_embed_add_static_route(
        ctx,
        path.as_ptr(),
        path.len() as u32,
        block.as_ptr(),
        block.len() as u32,
        body.as_ptr(),
        body.len() as u32,
    )
}

#[test]
fn static_routes_are_answered_by_the_engine_without_the_application() {
    unsafe {
        let p = pair();
        let fields = [(":status", "200"), ("content-type", "text/plain;charset=utf-8"), ("x-static", "1")];
        let add = |path: &str, body: &[u8]| add_static_route(p.server, path, &fields, body);
        assert_eq!(add("/hi", b"hello!"), 0);
        assert_eq!(add("no-slash", b""), -1);
        let pc = p.connect();
        let r = p.fetch_all(
            pc,
            vec![
                Request::get("/hi"),
                Request::get("/hi?q=1"),
                Request::new("HEAD", "/hi", Vec::new()),
                Request::new("POST", "/hi", b"x".to_vec()),
            ],
            5,
        );
        for m in &r[..2] {
            assert_eq!((m.status(), m.body.as_slice()), (200, &b"hello!"[..]));
            assert_eq!(m.header("content-length"), Some("6"));
            assert_eq!(m.header("x-static"), Some("1"));
            assert!(m.header("date").is_some_and(|d| d.ends_with(" GMT")));
        }
        assert_eq!((r[2].status(), r[2].body.len(), r[2].header("content-length")), (200, 0, Some("6")));
        // Not a GET/HEAD: the application answers (the test app: 404).
        assert_eq!(r[3].status(), 404);
        // The application saw only the POST.
        let seen: Vec<Option<String>> =
            world(|w| w.server_requests.iter().map(|m| m.header(":method").map(str::to_string)).collect());
        assert_eq!(seen, vec![Some("POST".to_string())]);
        rust_quic::embed::us_quic_embed_clear_static_routes(p.server);
        let r = p.fetch_all(pc, vec![Request::get("/hi")], 5);
        assert_eq!(r[0].status(), 404, "cleared routes go back to the application");
        p.free();
    }
}

#[test]
fn an_engine_thread_answers_static_routes_alone_and_holds_the_rest_for_its_host() {
    unsafe {
        let p = pair();
        let body = b"static";
        assert_eq!(add_static_route(p.server, "/hi", &[(":status", "200")], body), 0);
        let pc = p.connect();
        assert!(p.run(5, || world(|w| w.hsk_ok == 1)));
        // The engine thread's share: packets, timers, static answers; never a callback.
        let engine_steps = || {
            rust_quic::edge::set_engine_thread(true);
            for _ in 0..10 {
                rust_quic::testing::pump(&p.net, 100_000);
                rust_quic::edge::process(p.client, std::time::Instant::now());
                rust_quic::edge::process(p.server, std::time::Instant::now());
            }
            rust_quic::edge::set_engine_thread(false);
        };
        let host_turn = |ctx| {
            rust_quic::edge::deliver_held(ctx);
            rust_quic::edge::process(ctx, std::time::Instant::now());
        };
        // The host opens the request (its callbacks write it).
        world(|w| w.requests.push_back(Request::get("/hi")));
        us_quic_socket_make_stream(pc);
        engine_steps();
        assert!(!(*p.server).holds_for_host(), "a static route reaches no callback of the server");
        assert!((*p.client).holds_for_host(), "the response waits for the client's host");
        assert_eq!(world(|w| w.responses.len()), 0, "no callback ran on the engine thread");
        host_turn(p.client);
        assert_eq!(world(|w| (w.responses.len(), w.responses[0].body.clone())), (1, body.to_vec()));
        // A request for the application: its head waits, read and decoded, for the host.
        world(|w| w.requests.push_back(Request::new("POST", "/app", b"posted".to_vec())));
        us_quic_socket_make_stream(pc);
        engine_steps();
        assert!((*p.server).holds_for_host());
        assert_eq!(world(|w| w.server_requests.len()), 0);
        host_turn(p.server);
        assert_eq!(
            world(|w| w.server_requests.iter().map(|m| m.body.clone()).collect::<Vec<_>>()),
            vec![b"posted".to_vec()]
        );
        engine_steps();
        host_turn(p.client);
        assert_eq!(world(|w| w.responses.iter().map(|m| m.status()).collect::<Vec<_>>()), vec![200, 404]);
        assert!(!(*p.server).holds_for_host() && !(*p.client).holds_for_host());
        p.free();
    }
}

#[test]
fn answers_deferred_in_an_embedder_iteration_leave_at_the_next_flush() {
    unsafe {
        let p = pair();
        let pc = p.connect();
        assert!(p.run(5, || world(|w| w.hsk_ok == 1)));
        let steps = |n: usize| {
            for _ in 0..n {
                rust_quic::testing::pump(&p.net, 100_000);
                rust_quic::edge::process(p.client, std::time::Instant::now());
                rust_quic::edge::process(p.server, std::time::Instant::now());
            }
        };
        // Control: without deferral the answer arrives within a few steps.
        world(|w| w.requests.push_back(Request::get("/size/5")));
        us_quic_socket_make_stream(pc);
        steps(10);
        assert_eq!(world(|w| w.responses.len()), 1, "control request");
        // With deferral (as inside Bun's iteration) the server answers at once but
        // sends nothing until the embedder's flush.
        (*p.server).set_defer_answers(true);
        world(|w| w.requests.push_back(Request::get("/size/7")));
        us_quic_socket_make_stream(pc);
        steps(10);
        assert_eq!(world(|w| w.responses.len()), 1, "nothing may arrive while deferred");
        (*p.server).set_defer_answers(false);
        assert!(p.run(5, || world(|w| w.responses.len() == 2)), "the deferred answer never left");
        assert_eq!(world(|w| w.responses[1].body.clone()), pattern(7));
        p.free();
    }
}

/// The JSON-SEQ records of a qlog file.
fn qlog_records(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split('\u{1e}')
        .filter(|r| !r.trim().is_empty())
        .map(|r| serde_json::from_str(r).expect("a JSON record"))
        .collect()
}

#[test]
fn qlog_files_hold_transport_and_http3_events_for_both_sides() {
    unsafe {
        let dir = std::env::temp_dir().join(format!("rust-quic-qlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let with_qlog =
            |s: rust_quic::context::Settings| rust_quic::context::Settings { qlog_dir: Some(dir.clone()), ..s };
        let p = pair_with(
            with_qlog(Settings::default()),
            with_qlog(Settings { stream_ext_size: 16, ..Settings::default() }),
        );
        let pc = p.connect();
        let r = p.fetch_all(pc, vec![Request::get("/size/10")], 5);
        assert_eq!(r[0].status(), 200);
        p.free();
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names.iter().any(|n| n.ends_with("-server.sqlog")) && names.iter().any(|n| n.ends_with("-client.sqlog"))
        );
        for f in &files {
            let records = qlog_records(f);
            let events: Vec<&str> = records.iter().filter_map(|r| r["name"].as_str()).collect();
            assert!(events.contains(&"quic:packet_sent") && events.contains(&"quic:packet_received"), "{events:?}");
            let frames = |name: &str| -> Vec<String> {
                records.iter().filter(|r| r["name"] == name).map(|r| r["data"]["frame"].to_string()).collect()
            };
            let (parsed, created) = (frames("http3:frame_parsed"), frames("http3:frame_created"));
            assert!(parsed.iter().any(|f| f.contains("settings")) && created.iter().any(|f| f.contains("settings")));
            let request_path = |list: &[String]| list.iter().any(|f| f.contains("/size/10"));
            let status = |list: &[String]| list.iter().any(|f| f.contains(":status"));
            if f.to_string_lossy().ends_with("-server.sqlog") {
                assert!(
                    request_path(&parsed) && status(&created),
                    "the server parsed the request, created the response"
                );
            } else {
                assert!(
                    request_path(&created) && status(&parsed),
                    "the client created the request, parsed the response"
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_quic_lb_server_names_itself_in_every_connection_id_its_client_learns() {
    unsafe {
        let p = pair();
        let lb = rust_quic::cid::QuicLb::new(5, &[0x5e, 0x01, 0x02]).unwrap();
        (*p.server).set_cid_scheme(rust_quic::cid::CidScheme::QuicLb(lb.clone())).unwrap();
        assert!((*p.client).set_cid_scheme(rust_quic::cid::CidScheme::Random).is_err(), "a server's");
        let pc = p.connect();
        assert!(p.run(5, || world(|w| w.hsk_ok == 1)));
        // The handshake's ID and the spares of NEW_CONNECTION_ID: the client moves through them.
        let mut seen = std::collections::HashSet::new();
        for seq in 0..3 {
            let dcid = (*pc).core.conn.destination_id().to_vec();
            assert_eq!(lb.decode(&dcid), Some(&[0x5e, 0x01, 0x02][..]), "{dcid:02x?}");
            seen.insert(dcid);
            let fetched = p.fetch_all(pc, vec![Request::get("/size/3")], 5);
            assert_eq!(fetched[0].body, pattern(3), "served on that ID");
            // Sequence numbers count up from the handshake's 0: retiring the one in use moves to the next.
            let _ = (*pc).core.conn.retire_dcid(seq);
        }
        assert!(seen.len() >= 2, "the client used several of the server's IDs");
        p.free();
    }
}
