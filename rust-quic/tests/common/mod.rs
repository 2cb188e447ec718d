//! A small HTTP/3 application on the C ABI, for engine tests over the in-memory
//! network. Server routes: `/echo` (body back), `/size/N` (N bytes), `/trailers`,
//! `/informational`. The client sends queued requests as streams are granted.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_uint};
use std::time::Duration;

use rust_quic::context::{Context, Settings};
use rust_quic::ffi::*;
use rust_quic::peer_context::PeerContext;
use rust_quic::stream::{QuicHeader, Stream};
use rust_quic::testing::{self, MemoryDriver, SharedNetwork};
use rust_quic::tls::TlsOptions;
use rust_quic::{client, listen_socket};

#[derive(Default, Debug, Clone)]
pub struct Message {
    pub id: u64,
    pub head: Vec<(String, String)>,
    pub informational: Vec<String>,
    pub trailers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub fin: bool,
    pub closed: bool,
    pub error: i64,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    pub fn status(&self) -> u16 {
        self.header(":status").and_then(|s| s.parse().ok()).unwrap_or(0)
    }
}

pub struct Request {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send this many body bytes, then reset the stream (an aborted upload).
    pub reset_after: Option<usize>,
    /// Send this many body bytes, then nothing more (a stalled upload).
    pub stall_after: Option<usize>,
}

impl Request {
    pub fn get(path: &str) -> Request {
        Request::new("GET", path, Vec::new())
    }
    pub fn new(method: &str, path: &str, body: Vec<u8>) -> Request {
        Request {
            headers: vec![
                (":method".into(), method.into()),
                (":scheme".into(), "https".into()),
                (":authority".into(), "localhost".into()),
                (":path".into(), path.into()),
            ],
            body,
            reset_after: None,
            stall_after: None,
        }
    }
    pub fn header(mut self, n: &str, v: &str) -> Request {
        self.headers.push((n.into(), v.into()));
        self
    }
}

/// Per-stream state, owned through the first word of the stream's ext.
pub struct StreamApp {
    pub msg: Message,
    out: Vec<u8>,
    out_off: usize,
    out_fin: bool,
    out_trailers: bool,
    reset_after: Option<usize>,
    reset_armed: bool,
    stall_after: Option<usize>,
    pub is_client: bool,
}

#[derive(Default)]
pub struct World {
    pub requests: VecDeque<Request>,
    pub responses: Vec<Message>,
    pub server_requests: Vec<Message>,
    pub opened: u32,
    pub closed: u32,
    pub hsk_ok: u32,
    pub hsk_failed: u32,
    pub goaways: u32,
    pub short_writes: u32,
    pub writable_events: u32,
    /// Client streams stop reading after this many body bytes, until resumed.
    pub client_pause_at: Option<usize>,
    /// Server streams likewise (request bodies).
    pub server_pause_at: Option<usize>,
    /// Body writes (both sides) take at most this many bytes each: one small
    /// DATA frame per write.
    pub write_chunk: Option<usize>,
    pub paused_streams: Vec<usize>,
    /// Data callbacks a client stream got while it was paused (must stay 0).
    pub data_while_paused: u32,
    /// Close-from-callback experiments: the callback name that closes.
    pub close_in: Option<&'static str>,
    pub close_log: Vec<&'static str>,
    /// Connections whose on_close ran: their pointers die at the next sweep.
    pub closed_conns: Vec<usize>,
    /// us_quic_socket_errno of the last failed handshake (read inside the callback).
    pub hsk_errno: i32,
    /// Server streams of /unended/N: body written, FIN left to the test.
    pub unended: Vec<usize>,
    /// The close error code of each connection that ended (read in on_close).
    pub close_codes: Vec<u64>,
    /// Every client stream opened, in order (addresses), for tests that act on one.
    pub client_streams: Vec<usize>,
}

thread_local! {
    pub static WORLD: RefCell<World> = RefCell::new(World::default());
}

pub fn world<R>(f: impl FnOnce(&mut World) -> R) -> R {
    WORLD.with(|w| f(&mut w.borrow_mut()))
}

pub fn is_closed(pc: *mut PeerContext) -> bool {
    world(|w| w.closed_conns.contains(&(pc as usize)))
}

pub fn reset_world() {
    world(|w| *w = World::default());
}

unsafe fn app(s: *mut Stream) -> *mut StreamApp {
    *(us_quic_stream_ext(s) as *mut *mut StreamApp)
}

unsafe fn is_server(s: *mut Stream) -> bool {
    (*us_quic_stream_context(s)).role == rust_quic::context::Role::Server
}

unsafe fn closing_here(name: &'static str) -> bool {
    let hit = world(|w| w.close_in == Some(name));
    if hit {
        world(|w| w.close_log.push(name));
    }
    hit
}

pub unsafe extern "C" fn on_open(s: *mut PeerContext) {
    world(|w| w.opened += 1);
    if closing_here("open") {
        us_quic_socket_close(s);
    }
}

pub unsafe extern "C" fn on_hsk_done(s: *mut PeerContext, ok: c_int) {
    let errno = us_quic_socket_errno(s);
    world(|w| {
        if ok != 0 {
            w.hsk_ok += 1
        } else {
            w.hsk_failed += 1;
            w.hsk_errno = errno;
        }
    });
    if ok != 0 && closing_here("hsk_done") {
        us_quic_socket_close(s);
    }
}

pub unsafe extern "C" fn on_goaway(_s: *mut PeerContext) {
    world(|w| w.goaways += 1);
}

pub unsafe extern "C" fn on_close(s: *mut PeerContext) {
    let (mut code, mut app) = (0u64, 0);
    us_quic_socket_close_error(s, &mut code, &mut app);
    world(|w| {
        w.closed += 1;
        w.closed_conns.push(s as usize);
        w.close_codes.push(code);
    });
    if closing_here("close") {
        us_quic_socket_close(s); // closing again from on_close must be harmless
    }
}

pub unsafe extern "C" fn on_stream_open(s: *mut Stream, is_client: c_int) {
    let state = Box::into_raw(Box::new(StreamApp {
        msg: Message { id: us_quic_stream_id(s), error: -1, ..Default::default() },
        out: Vec::new(),
        out_off: 0,
        out_fin: false,
        out_trailers: false,
        reset_after: None,
        reset_armed: false,
        stall_after: None,
        is_client: is_client != 0,
    }));
    *(us_quic_stream_ext(s) as *mut *mut StreamApp) = state;
    if closing_here("stream_open") {
        us_quic_stream_close(s);
        return;
    }
    if is_client != 0 {
        world(|w| w.client_streams.push(s as usize));
        let req = world(|w| w.requests.pop_front());
        if let Some(req) = req {
            let hdrs: Vec<QuicHeader> = req.headers.iter().map(|(n, v)| header(n, v)).collect();
            let end = req.body.is_empty() && req.reset_after.is_none();
            assert_eq!(us_quic_stream_send_headers(s, hdrs.as_ptr(), hdrs.len() as c_uint, end as c_int), 0);
            (*state).out = req.body;
            (*state).out_fin = true;
            (*state).reset_after = req.reset_after;
            (*state).stall_after = req.stall_after;
            if !end {
                pump_out(s);
            }
        }
    }
}

pub fn header(n: &str, v: &str) -> QuicHeader {
    QuicHeader {
        name: n.as_ptr().cast(),
        name_len: n.len() as c_uint,
        value: v.as_ptr().cast(),
        value_len: v.len() as c_uint,
        qpack_index: -1,
    }
}

pub unsafe fn read_headers(s: *mut Stream) -> Vec<(String, String)> {
    (0..us_quic_stream_header_count(s))
        .map(|i| {
            let h = &*us_quic_stream_header(s, i);
            let n = std::slice::from_raw_parts(h.name.cast::<u8>(), h.name_len as usize);
            let v = std::slice::from_raw_parts(h.value.cast::<u8>(), h.value_len as usize);
            (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned())
        })
        .collect()
}

pub unsafe extern "C" fn on_stream_headers(s: *mut Stream) {
    let st = app(s);
    let headers = read_headers(s);
    match us_quic_stream_headers_kind(s) {
        1 => (*st).msg.informational.push(headers[0].1.clone()),
        3 => (*st).msg.trailers = headers,
        _ => (*st).msg.head = headers,
    }
    if closing_here("stream_headers") {
        us_quic_stream_close(s);
        return;
    }
    if is_server(s) && us_quic_stream_headers_kind(s) == 2 {
        let path = (*st).msg.header(":path").unwrap_or("").to_string();
        if let Some(n) = path.strip_prefix("/size/") {
            respond(s, 200, pattern(n.parse().unwrap_or(0)), false);
        } else if path == "/informational" {
            assert_eq!(us_quic_stream_send_informational(s, c"103".as_ptr()), 0);
            respond(s, 200, b"after-103".to_vec(), false);
        } else if path == "/trailers" {
            respond(s, 200, b"body-then-trailers".to_vec(), true);
        } else if let Some(n) = path.strip_prefix("/unended/") {
            let body = pattern(n.parse().unwrap_or(0));
            let len = body.len().to_string();
            let hdrs = [header(":status", "200"), header("content-length", &len)];
            assert_eq!(us_quic_stream_send_headers(s, hdrs.as_ptr(), hdrs.len() as c_uint, 0), 0);
            (*st).out = body;
            pump_out(s);
            world(|w| w.unended.push(s as usize));
        } else if path == "/reject" {
            // Answer before the upload is done and stop reading it (413-style).
            us_quic_stream_shutdown_read(s);
            respond(s, 413, b"too large".to_vec(), false);
        }
    }
}

/// Paths answered at the request head; everything else but /echo gets 404 at FIN.
const ROUTED: [&str; 5] = ["/size/", "/informational", "/trailers", "/reject", "/unended/"];

/// Body bytes the engine has taken from this stream's application so far.
pub unsafe fn bytes_accepted(s: *mut Stream) -> usize {
    (*app(s)).out_off
}

pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

unsafe fn respond(s: *mut Stream, status: u16, body: Vec<u8>, trailers: bool) {
    let st = app(s);
    let status = status.to_string();
    let len = body.len().to_string();
    let hdrs = [header(":status", &status), header("content-length", &len), header("server", "rust-quic-test")];
    let end = body.is_empty() && !trailers;
    assert_eq!(us_quic_stream_send_headers(s, hdrs.as_ptr(), hdrs.len() as c_uint, end as c_int), 0);
    (*st).out = body;
    (*st).out_fin = true;
    (*st).out_trailers = trailers;
    if !end {
        pump_out(s);
    }
}

/// Writes as much of the pending body as flow control takes; finishes with
/// FIN (or trailers) when all is written.
unsafe fn pump_out(s: *mut Stream) {
    let st = app(s);
    loop {
        let limit = (*st).reset_after.or((*st).stall_after).unwrap_or(usize::MAX).min((*st).out.len());
        if (*st).out_off >= limit {
            if (*st).stall_after.is_some() {
                return;
            }
            break;
        }
        let out = &(*st).out;
        let chunk_max = world(|w| w.write_chunk).unwrap_or(usize::MAX);
        let chunk = &out[(*st).out_off..limit.min((*st).out_off.saturating_add(chunk_max))];
        let n = us_quic_stream_write(s, chunk.as_ptr().cast::<c_char>(), chunk.len() as c_uint);
        if n < 0 {
            return;
        }
        (*st).out_off += n as usize;
        if (n as usize) < chunk.len() {
            world(|w| w.short_writes += 1);
            us_quic_stream_want_write(s, 1);
            return;
        }
    }
    if (*st).reset_after.is_some() {
        // Reset at the next writable event, after a flush: what was written went out (a reset in
        // the same turn discards the unsent bytes, the HEADERS with them when the window held all).
        if !(*st).reset_armed {
            (*st).reset_armed = true;
            us_quic_stream_want_write(s, 1);
            return;
        }
        us_quic_stream_reset(s);
        return;
    }
    if (*st).out_fin {
        (*st).out_fin = false;
        if (*st).out_trailers {
            let t = [header("x-checksum", "abc123")];
            assert_eq!(us_quic_stream_send_headers(s, t.as_ptr(), 1, 1), 0);
        } else {
            us_quic_stream_shutdown(s);
        }
    }
}

pub unsafe extern "C" fn on_stream_data(s: *mut Stream, data: *const c_char, len: c_uint, fin: c_int) {
    let st = app(s);
    if world(|w| w.paused_streams.contains(&(s as usize))) {
        world(|w| w.data_while_paused += 1);
    }
    if len > 0 {
        (*st).msg.body.extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), len as usize));
    }
    if closing_here("stream_data") {
        us_quic_stream_close(s);
        return;
    }
    {
        let pause = world(|w| if is_server(s) { w.server_pause_at } else { w.client_pause_at });
        if pause.is_some_and(|p| (*st).msg.body.len() >= p) && fin == 0 {
            us_quic_stream_want_read(s, 0);
            world(|w| w.paused_streams.push(s as usize));
        }
    }
    if fin != 0 {
        (*st).msg.fin = true;
        if is_server(s) {
            match (*st).msg.header(":path") {
                Some("/echo") => {
                    let body = (*st).msg.body.clone();
                    respond(s, 200, body, false);
                }
                Some(p) if ROUTED.iter().any(|r| p.starts_with(r)) => {}
                _ => respond(s, 404, b"not found".to_vec(), false),
            }
        }
    }
}

pub unsafe extern "C" fn on_stream_writable(s: *mut Stream) {
    world(|w| w.writable_events += 1);
    if closing_here("stream_writable") {
        us_quic_stream_close(s);
        return;
    }
    pump_out(s);
}

pub unsafe extern "C" fn on_stream_close(s: *mut Stream) {
    let st = Box::from_raw(app(s));
    *(us_quic_stream_ext(s) as *mut *mut StreamApp) = std::ptr::null_mut();
    let mut msg = st.msg;
    msg.closed = true;
    msg.error = us_quic_stream_error_code(s);
    if closing_here("stream_close") {
        us_quic_stream_close(s); // already closing: must be a no-op
        us_quic_stream_reset(s);
    }
    world(|w| if st.is_client { w.responses.push(msg) } else { w.server_requests.push(msg) });
}

pub unsafe fn install_callbacks(ctx: *mut Context) {
    us_quic_socket_context_on_open(ctx, Some(on_open));
    us_quic_socket_context_on_hsk_done(ctx, Some(on_hsk_done));
    us_quic_socket_context_on_goaway(ctx, Some(on_goaway));
    us_quic_socket_context_on_close(ctx, Some(on_close));
    us_quic_socket_context_on_stream_open(ctx, Some(on_stream_open));
    us_quic_socket_context_on_stream_headers(ctx, Some(on_stream_headers));
    us_quic_socket_context_on_stream_data(ctx, Some(on_stream_data));
    us_quic_socket_context_on_stream_writable(ctx, Some(on_stream_writable));
    us_quic_socket_context_on_stream_close(ctx, Some(on_stream_close));
}

pub struct Pair {
    pub net: SharedNetwork,
    pub server: *mut Context,
    pub client: *mut Context,
    pub listen: *mut listen_socket::ListenSocket,
    pub cert: Vec<u8>,
    pub server_ip: &'static str,
}

pub fn server_tls() -> (TlsOptions, Vec<u8>) {
    let (cert, key) = testing::self_signed(&["localhost", "127.0.0.1"]);
    (TlsOptions { cert_pem: cert.clone(), key_pem: key, ..Default::default() }, cert)
}

pub unsafe fn pair_with(server_settings: Settings, client_settings: Settings) -> Pair {
    pair_on(server_settings, client_settings, "127.0.0.1", "127.0.0.2")
}

/// A pair whose ends have these addresses (loopback or not changes how packets are sized).
pub unsafe fn pair_on(
    server_settings: Settings,
    client_settings: Settings,
    server_ip: &'static str,
    client_ip: &str,
) -> Pair {
    reset_world();
    let net = testing::network();
    let (tls, cert) = server_tls();
    let server =
        Box::into_raw(Context::new_server(&tls, server_settings, 16, MemoryDriver::new(&net, server_ip)).unwrap());
    let client = Box::into_raw(Context::new_client(client_settings, 16, MemoryDriver::new(&net, client_ip)));
    install_callbacks(server);
    install_callbacks(client);
    let listen = rust_quic::edge::listen(server, None, 4433, 0, 16, None).unwrap();
    Pair { net, server, client, listen, cert, server_ip }
}

pub unsafe fn pair() -> Pair {
    let client = Settings { stream_ext_size: 16, ..Settings::default() };
    pair_with(Settings::default(), client)
}

impl Pair {
    pub unsafe fn connect(&self) -> *mut PeerContext {
        match rust_quic::edge::connect(
            self.client,
            self.server_ip,
            4433,
            Some("localhost"),
            false,
            std::ptr::null_mut(),
        )
        .unwrap()
        {
            client::Connect::Now(pc) => pc,
            client::Connect::Pending(_) => unreachable!("IP literal"),
        }
    }

    pub unsafe fn run(&self, secs: u64, done: impl FnMut() -> bool) -> bool {
        testing::run_until(&self.net, &[self.server, self.client], Duration::from_secs(secs), done)
    }

    /// Queues requests and asks for a stream for each.
    pub unsafe fn send(&self, pc: *mut PeerContext, reqs: Vec<Request>) {
        let n = reqs.len();
        world(|w| w.requests.extend(reqs));
        for _ in 0..n {
            us_quic_socket_make_stream(pc);
        }
    }

    pub unsafe fn fetch_all(&self, pc: *mut PeerContext, reqs: Vec<Request>, secs: u64) -> Vec<Message> {
        let n = reqs.len();
        self.send(pc, reqs);
        if !self.run(secs, || world(|w| w.responses.len() >= n)) {
            let got: Vec<(u64, u16, i64, usize)> =
                world(|w| w.responses.iter().map(|m| (m.id, m.status(), m.error, m.body.len())).collect());
            let pending = world(|w| w.requests.len());
            panic!(
                "{} of {n} responses arrived (id, status, error, body): {got:?}; {pending} requests never got a stream",
                got.len()
            );
        }
        let mut out = world(|w| std::mem::take(&mut w.responses));
        out.sort_by_key(|m| m.id);
        out
    }

    pub unsafe fn free(self) {
        rust_quic::edge::request_free(self.client);
        rust_quic::edge::request_free(self.server);
        rust_quic::edge::destroy(self.client);
        rust_quic::edge::destroy(self.server);
    }
}

/// Two default contexts on a fresh in-memory network, set up by the test's
/// `configure` (called for the server, then the client), the client connecting once.
pub struct BarePair {
    pub net: SharedNetwork,
    pub server: *mut Context,
    pub client: *mut Context,
}

impl BarePair {
    pub unsafe fn connect_with(configure: impl Fn(*mut Context)) -> BarePair {
        let net = testing::network();
        let (cert, key) = testing::self_signed(&["localhost"]);
        let tls = TlsOptions { cert_pem: cert, key_pem: key, ..Default::default() };
        let server = Box::into_raw(
            Context::new_server(&tls, Settings::default(), 0, MemoryDriver::new(&net, "127.0.0.1")).unwrap(),
        );
        let client = Box::into_raw(Context::new_client(Settings::default(), 0, MemoryDriver::new(&net, "127.0.0.2")));
        configure(server);
        configure(client);
        rust_quic::edge::listen(server, None, 4433, 0, 0, None).unwrap();
        match rust_quic::edge::connect(client, "127.0.0.1", 4433, Some("localhost"), false, std::ptr::null_mut())
            .unwrap()
        {
            client::Connect::Now(_) => {}
            client::Connect::Pending(_) => unreachable!("IP literal"),
        }
        BarePair { net, server, client }
    }

    pub unsafe fn run(&self, done: impl FnMut() -> bool) -> bool {
        testing::run_until(&self.net, &[self.server, self.client], Duration::from_secs(10), done)
    }

    pub unsafe fn free(self) {
        for ctx in [self.client, self.server] {
            rust_quic::edge::request_free(ctx);
            rust_quic::edge::destroy(ctx);
        }
    }
}

/// The next client bidirectional stream after one request on stream 0.
pub const NEXT_REQUEST: u64 = 4;

/// A connected pair with one request answered (SETTINGS exchanged, control streams up).
pub unsafe fn established() -> (Pair, *mut PeerContext) {
    let p = pair();
    let pc = p.connect();
    let r = p.fetch_all(pc, vec![Request::get("/size/10")], 5);
    assert_eq!(r[0].status(), 200);
    (p, pc)
}

/// Writes `bytes` on stream `id` of the client's QUIC connection as they are.
pub unsafe fn inject(p: &Pair, pc: *mut PeerContext, id: u64, bytes: &[u8]) {
    (*pc).core.conn.stream_send(id, bytes, false).expect("stream_send");
    rust_quic::peer_context::mark_dirty(pc);
    // A few rounds: the client sends, the server reads and answers.
    let mut rounds = 0;
    p.run(2, || {
        rounds += 1;
        rounds > 4 && p.net.borrow().queue.is_empty()
    });
}

/// Runs until the connection ends and returns its close code.
pub unsafe fn close_code(p: &Pair) -> Option<u64> {
    p.run(5, || world(|w| !w.close_codes.is_empty()));
    world(|w| w.close_codes.first().copied())
}

/// The server context's counters.
pub unsafe fn server_stats(p: &Pair) -> rust_quic::context::Stats {
    let mut st = rust_quic::context::Stats::default();
    us_quic_socket_context_stats(p.server, &mut st);
    st
}
