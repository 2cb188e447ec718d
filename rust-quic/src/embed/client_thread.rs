//! fetch's HTTP/3 client on a thread of its own, as upstream runs its client on
//! Bun's HTTP thread: packets, crypto, loss recovery and timers never touch the
//! host's (JS) thread.
//!
//! The thread runs a loop of its own and is the only one that waits on it. The
//! host reaches the engine through a few request-level calls (connect, request,
//! write, shutdown, reset, want-read, close) that take one lock, which the thread
//! holds while it runs an iteration: so every engine object is touched by one
//! thread at a time, and a host call is as synchronous as on the host's own loop
//! (a write returns what was accepted). The host names connections and requests
//! by ids it chooses; the engine's pointers never leave this module, so a
//! request the engine has closed (and freed) is simply unknown to a later call.
//!
//! What the engine tells the host is serialized into an event buffer; the thread
//! sends a one-byte datagram to the host's wake-up port when the buffer becomes
//! non-empty (a UDP socket can be unref()ed in Bun, a pipe read cannot), and the host takes
//! the whole buffer with `us_quic_client_thread_poll`. Nothing here calls the host.
//!
//! Backpressure: a request whose undelivered body bytes pass `BUFFER_LIMIT` stops
//! reading (QUIC flow control then holds the server) until the host takes the
//! buffer; the host pauses a request itself with want-read when its own queue is full.

use std::cell::UnsafeCell;
use std::collections::{HashMap, VecDeque};
use std::ffi::{c_char, c_int, c_uint, c_ulonglong, CStr};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use usockets_sys as us;

use crate::context::Context;
use crate::ffi::*;
use crate::peer_context::PeerContext;
use crate::stream::Stream;

/// Event kinds, as the host reads them: `[u8 kind][u32 id][u32 payload length][payload]`,
/// little endian; quic_embed.h's `US_QUIC_CLIENT_EVENT_*` (the C ABI test reads events by them).
mod event {
    /// Connection id; payload `[u8 ok][i32 errno]`.
    pub const HANDSHAKE: u8 = 1;
    pub const GOAWAY: u8 = 2;
    pub const CONNECTION_CLOSED: u8 = 3;
    /// Request id; payload `[u8 headers kind][block in us_quic_embed_read_headers layout]`.
    pub const HEADERS: u8 = 4;
    /// Request id; payload `[u8 fin][bytes]`.
    pub const DATA: u8 = 5;
    pub const WRITABLE: u8 = 6;
    /// Request id; payload `[i64 error code, -1 for none]`. The request's last event.
    pub const REQUEST_CLOSED: u8 = 7;
}

/// An event's head: `[u8 kind][u32 id][u32 payload length]`.
const EVENT_HEAD: usize = 9;
/// Undelivered body bytes per request beyond which it stops reading until the host polls.
const BUFFER_LIMIT: usize = 1 << 20;
/// Event buffer capacity kept between polls; beyond it a buffer is let go once delivered.
const KEEP_CAPACITY: usize = 256 * 1024;

struct Waiting {
    id: u32,
    block: Vec<u8>,
    end_stream: bool,
}

struct Connection {
    conn: *mut PeerContext,
    /// Requests waiting for a stream, in the order their streams were asked for.
    waiting: VecDeque<Waiting>,
}

struct Request {
    /// Null while the request waits for its stream.
    stream: *mut Stream,
    connection: u32,
    paused_by_host: bool,
    paused_by_buffer: bool,
    /// Body bytes in the event buffer since the host's last poll.
    queued: usize,
}

/// The engine's objects and the event buffers, reached only with `Shared::lock` held.
struct Engine {
    loop_: *mut us::us_loop_t,
    configs: Vec<*mut Context>,
    connections: HashMap<u32, Connection>,
    requests: HashMap<u32, Request>,
    /// Requests with body bytes queued since the host's last poll.
    queued: Vec<u32>,
    events: Vec<u8>,
    /// What the host's last poll took; valid until its next poll.
    delivered: Vec<u8>,
    notified: bool,
    /// Where the buffer's last event starts, when it is DATA (not final) of this request.
    open_data: Option<(usize, u32)>,
    /// Connected to the host's wake-up port.
    wake: c_int,
}

/// The lock and what it guards. The engine sits in an `UnsafeCell`, not inside
/// the mutex, because the engine's callbacks reach it through their context's
/// ext (a pointer to it) while the thread that holds the lock is inside an engine
/// call: code here never keeps a reference to it across such a call.
struct Shared {
    lock: Mutex<()>,
    engine: UnsafeCell<Engine>,
}

// SAFETY: the engine (raw pointers to the engine's objects and loop) is touched
// only with the lock held: by the thread during an iteration, by the host during a call.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ()> {
        // A panic cannot cross the C ABI (it aborts), so a poisoned lock guards nothing half-done.
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// # Safety
    /// The caller holds the lock and keeps the reference only between engine calls.
    #[allow(clippy::mut_from_ref)]
    unsafe fn engine(&self) -> &mut Engine {
        &mut *self.engine.get()
    }
}

pub struct ClientThread {
    shared: Arc<Shared>,
    stop_write: c_int,
    thread: Option<JoinHandle<()>>,
}

/// The engine of a callback's context. Callbacks run inside a loop iteration or a
/// host call, both with the lock held.
///
/// # Safety
/// `ctx` is a live context made by `us_quic_client_thread_add_config`; the lock is
/// held by the caller's thread; the reference is dropped before the next engine call.
unsafe fn engine_of<'a>(ctx: *mut Context) -> &'a mut Engine {
    &mut **us_quic_socket_context_ext(ctx).cast::<*mut Engine>()
}

/// # Safety
/// `conn` is a live connection of a client thread's context (a u32 ext).
unsafe fn conn_id(conn: *mut PeerContext) -> u32 {
    *us_quic_socket_ext(conn).cast::<u32>()
}

/// # Safety
/// `s` is a live stream of a client thread's context (a u32 ext).
unsafe fn request_id(s: *mut Stream) -> u32 {
    *us_quic_stream_ext(s).cast::<u32>()
}

impl Engine {
    fn push(&mut self, kind: u8, id: u32, payload: &[&[u8]]) {
        self.open_data = (kind == event::DATA && payload[0] == [0]).then_some((self.events.len(), id));
        let len: usize = payload.iter().map(|p| p.len()).sum();
        self.events.push(kind);
        self.events.extend_from_slice(&id.to_le_bytes());
        self.events.extend_from_slice(&(len as u32).to_le_bytes());
        for p in payload {
            self.events.extend_from_slice(p);
        }
        if !self.notified {
            // SAFETY: one byte from a static buffer on our own non-blocking socket. A
            // datagram the host's full buffer drops is no loss: the host drains
            // everything whenever any wake-up arrives, and it has one pending.
            let sent = unsafe { libc::send(self.wake, b"!".as_ptr().cast(), 1, 0) };
            // Not sent (our own buffer full): the next event tries again.
            self.notified = sent == 1;
        }
    }

    /// Body bytes: appended to the buffer's last event when that is this request's
    /// DATA too, so a host that polls after several reads gets one chunk, not many.
    fn push_data(&mut self, id: u32, bytes: &[u8], fin: bool) {
        let Some((at, _)) = self.open_data.filter(|&(_, open)| open == id) else {
            return self.push(event::DATA, id, &[&[u8::from(fin)], bytes]);
        };
        self.events.extend_from_slice(bytes);
        let len = (self.events.len() - at - EVENT_HEAD) as u32;
        self.events[at + 5..at + EVENT_HEAD].copy_from_slice(&len.to_le_bytes());
        if fin {
            self.events[at + EVENT_HEAD] = 1;
            self.open_data = None;
        }
    }

    fn close_request(&mut self, id: u32, code: i64) {
        self.requests.remove(&id);
        self.push(event::REQUEST_CLOSED, id, &[&code.to_le_bytes()]);
    }

    /// The open stream of request `id`, and whether it should be reading.
    fn reading(&self, id: u32) -> Option<(*mut Stream, bool)> {
        let r = self.requests.get(&id)?;
        (!r.stream.is_null()).then_some((r.stream, !(r.paused_by_host || r.paused_by_buffer)))
    }
}

/// Applies request `id`'s read state to its stream.
///
/// # Safety
/// The lock is held and no reference to the engine is alive.
unsafe fn apply_want_read(engine: *mut Engine, id: u32) {
    if let Some((s, want)) = (*engine).reading(id) {
        us_quic_stream_want_read(s, c_int::from(want));
    }
}

/// on_hsk_done: the handshake's outcome, with the socket's errno (ECONNREFUSED from ICMP).
///
/// # Safety
/// `conn` is a live connection of a client thread's context, called back with the lock held.
unsafe extern "C" fn on_hsk_done(conn: *mut PeerContext, ok: c_int) {
    let errno = us_quic_socket_errno(conn);
    let engine = engine_of(us_quic_socket_context(conn));
    engine.push(event::HANDSHAKE, conn_id(conn), &[&[u8::from(ok != 0)], &errno.to_le_bytes()]);
}

/// # Safety
/// `conn` is a live connection of a client thread's context, called back with the lock held.
unsafe extern "C" fn on_goaway(conn: *mut PeerContext) {
    engine_of(us_quic_socket_context(conn)).push(event::GOAWAY, conn_id(conn), &[]);
}

/// The connection's last event; requests still waiting for a stream close first.
///
/// # Safety
/// `conn` is a live connection of a client thread's context, called back with the lock held.
unsafe extern "C" fn on_close(conn: *mut PeerContext) {
    let id = conn_id(conn);
    let engine = engine_of(us_quic_socket_context(conn));
    if let Some(c) = engine.connections.remove(&id) {
        for w in c.waiting {
            engine.close_request(w.id, -1);
        }
    }
    engine.push(event::CONNECTION_CLOSED, id, &[]);
}

/// The next waiting request takes the stream, and its head goes out.
///
/// # Safety
/// `s` is a live stream of a client thread's context, called back with the lock held.
unsafe extern "C" fn on_stream_open(s: *mut Stream, _is_client: c_int) {
    let conn = us_quic_stream_socket(s);
    let engine: *mut Engine = engine_of(us_quic_stream_context(s));
    let Some(w) = (*engine).connections.get_mut(&conn_id(conn)).and_then(|c| c.waiting.pop_front()) else {
        us_quic_stream_reset_with_code(s, crate::http3::H3_REQUEST_CANCELLED);
        return;
    };
    *us_quic_stream_ext(s).cast::<u32>() = w.id;
    if let Some(r) = (*engine).requests.get_mut(&w.id) {
        r.stream = s;
    }
    let sent =
        super::us_quic_embed_send_headers(s, w.block.as_ptr(), w.block.len() as c_uint, c_int::from(w.end_stream));
    if sent != 0 {
        us_quic_stream_reset_with_code(s, crate::http3::H3_REQUEST_CANCELLED);
    } else if !w.end_stream {
        (*engine).push(event::WRITABLE, w.id, &[]);
    }
}

/// # Safety
/// `s` is a live stream of a client thread's context, called back with the lock held.
unsafe extern "C" fn on_stream_headers(s: *mut Stream) {
    let need = super::us_quic_embed_read_headers(s, std::ptr::null_mut(), 0) as usize;
    let mut block = vec![0u8; need];
    super::us_quic_embed_read_headers(s, block.as_mut_ptr(), need as c_uint);
    let kind = us_quic_stream_headers_kind(s) as u8;
    engine_of(us_quic_stream_context(s)).push(event::HEADERS, request_id(s), &[&[kind], &block]);
}

/// # Safety
/// `s` is a live stream of a client thread's context, called back with the lock held; `data` points to `len` readable bytes.
unsafe extern "C" fn on_stream_data(s: *mut Stream, data: *const c_char, len: c_uint, fin: c_int) {
    let id = request_id(s);
    let engine: *mut Engine = engine_of(us_quic_stream_context(s));
    (*engine).push_data(id, raw_bytes(data, len), fin != 0);
    let Some(r) = (*engine).requests.get_mut(&id) else { return };
    if r.queued == 0 {
        (*engine).queued.push(id);
    }
    r.queued += len as usize;
    if r.queued > BUFFER_LIMIT && !r.paused_by_buffer && fin == 0 {
        r.paused_by_buffer = true;
        apply_want_read(engine, id);
    }
}

/// # Safety
/// `s` is a live stream of a client thread's context, called back with the lock held.
unsafe extern "C" fn on_stream_writable(s: *mut Stream) {
    engine_of(us_quic_stream_context(s)).push(event::WRITABLE, request_id(s), &[]);
}

/// # Safety
/// `s` is a live stream of a client thread's context, called back with the lock held.
unsafe extern "C" fn on_stream_close(s: *mut Stream) {
    let id = request_id(s);
    let code = us_quic_stream_error_code(s);
    let engine = engine_of(us_quic_stream_context(s));
    // A stream no request took (reset at open) has no request to close.
    if engine.requests.get(&id).is_some_and(|r| r.stream == s) {
        engine.close_request(id, code);
    }
}

/// The thread: wait for the loop (sockets, timers, the host's wake-ups) without
/// the lock, then run one iteration with it.
fn run(shared: Arc<Shared>, loop_fd: c_int, stop_read: c_int) {
    loop {
        let mut polls = [
            libc::pollfd { fd: stop_read, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: loop_fd, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: polls is a valid array of two pollfd.
        let r = unsafe { libc::poll(polls.as_mut_ptr(), 2, -1) };
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
        if polls[0].revents != 0 {
            break;
        }
        if polls[1].revents != 0 {
            let _held = shared.lock();
            // SAFETY: the loop is live while the thread runs; the lock is held.
            unsafe { us::us_loop_run_once((*shared.engine.get()).loop_, 0) };
        }
    }
    // SAFETY: the stop pipe's read end is this thread's.
    unsafe { libc::close(stop_read) };
}

/// A client thread with its loop, waking the host with a one-byte datagram to
/// 127.0.0.1:`wake_port` (a UDP socket the host's event loop already polls, and
/// can stop counting as keep-alive, which a pipe read in Bun cannot); NULL if
/// the loop, the sockets or the thread could not be made.
#[no_mangle]
pub extern "C" fn us_quic_client_thread_create(wake_port: c_uint) -> *mut ClientThread {
    let Ok(wake_port @ 1..) = u16::try_from(wake_port) else { return std::ptr::null_mut() };
    // SAFETY: a new loop, freed on every failure path below and by free otherwise.
    let loop_ = unsafe { us::us_create_loop(std::ptr::null_mut(), None, None, None, 0) };
    if loop_.is_null() {
        return std::ptr::null_mut();
    }
    let (Some(wake), Some((stop_read, stop_write))) =
        (super::bridge::wake_socket(wake_port), super::bridge::pipe_pair())
    else {
        // SAFETY: the loop made above, unused.
        unsafe { us::us_loop_free(loop_) };
        return std::ptr::null_mut();
    };
    let shared = Arc::new(Shared {
        lock: Mutex::new(()),
        engine: UnsafeCell::new(Engine {
            loop_,
            configs: Vec::new(),
            connections: HashMap::new(),
            requests: HashMap::new(),
            queued: Vec::new(),
            events: Vec::new(),
            delivered: Vec::new(),
            notified: false,
            open_data: None,
            wake,
        }),
    });
    // SAFETY: the loop made above.
    let loop_fd = unsafe { us::us_loop_fd(loop_) };
    let for_thread = Arc::clone(&shared);
    let thread =
        std::thread::Builder::new().name("quic-fetch".into()).spawn(move || run(for_thread, loop_fd, stop_read)).ok();
    if thread.is_none() {
        // SAFETY: our own fds and the loop made above, used by no thread.
        unsafe {
            for fd in [wake, stop_read, stop_write] {
                libc::close(fd);
            }
            us::us_loop_free(loop_);
        }
        return std::ptr::null_mut();
    }
    Box::into_raw(Box::new(ClientThread { shared, stop_write, thread }))
}

/// A client configuration (a TLS client context with extra trust and a client
/// certificate, both optional). Its id (0, 1, ...), or -1 when no context could
/// be made, -2 when `ca` holds no certificate, -3 when the certificate and key
/// are not usable.
///
/// # Safety
/// `t` is NULL or a live client thread; each buffer is NULL or points to its length of readable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn us_quic_client_thread_add_config(
    t: *mut ClientThread,
    ca: *const c_char,
    ca_len: c_uint,
    cert: *const c_char,
    cert_len: c_uint,
    key: *const c_char,
    key_len: c_uint,
    passphrase: *const c_char,
    passphrase_len: c_uint,
) -> c_int {
    let Some(t) = t.as_ref() else { return -1 };
    let _held = t.shared.lock();
    let engine = t.shared.engine.get();
    let ctx = us_create_quic_client_context((*engine).loop_, std::mem::size_of::<*mut Engine>() as c_uint, 4, 4);
    if ctx.is_null() {
        return -1;
    }
    let failed = if ca_len > 0 && us_quic_socket_context_set_ca(ctx, ca, ca_len) != 0 {
        Some(-2)
    } else if cert_len > 0
        && us_quic_socket_context_set_client_certificate(ctx, cert, cert_len, key, key_len, passphrase, passphrase_len)
            != 0
    {
        Some(-3)
    } else {
        None
    };
    if let Some(code) = failed {
        us_quic_socket_context_free(ctx);
        return code;
    }
    *us_quic_socket_context_ext(ctx).cast::<*mut Engine>() = engine;
    us_quic_socket_context_on_hsk_done(ctx, Some(on_hsk_done));
    us_quic_socket_context_on_goaway(ctx, Some(on_goaway));
    us_quic_socket_context_on_close(ctx, Some(on_close));
    us_quic_socket_context_on_stream_open(ctx, Some(on_stream_open));
    us_quic_socket_context_on_stream_headers(ctx, Some(on_stream_headers));
    us_quic_socket_context_on_stream_data(ctx, Some(on_stream_data));
    us_quic_socket_context_on_stream_writable(ctx, Some(on_stream_writable));
    us_quic_socket_context_on_stream_close(ctx, Some(on_stream_close));
    let configs = &mut (*engine).configs;
    configs.push(ctx);
    (configs.len() - 1) as c_int
}

/// Connects with configuration `config` to the IP literal `ip`, naming the
/// connection `id` (not 0, not in use); `server_name` (NULL: none) is sent as SNI
/// and checked when `verify`. 0; 1 when it resumes a session of an earlier
/// connection to the server (its safe requests may go before the handshake
/// ends, in 0-RTT if the ticket allows it); -1 (unknown configuration, id in
/// use, not an IP literal, no socket).
///
/// # Safety
/// `t` is NULL or a live client thread; `ip` and `server_name` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn us_quic_client_thread_connect(
    t: *mut ClientThread,
    config: c_int,
    id: c_uint,
    ip: *const c_char,
    port: c_int,
    server_name: *const c_char,
    verify: c_int,
) -> c_int {
    let Some(t) = t.as_ref() else { return -1 };
    if id == 0 || ip.is_null() || CStr::from_ptr(ip).to_str().map_or(true, |s| s.parse::<IpAddr>().is_err()) {
        return -1;
    }
    let _held = t.shared.lock();
    let engine = t.shared.engine.get();
    let configs = &(*engine).configs;
    let Some(&ctx) = usize::try_from(config).ok().and_then(|i| configs.get(i)) else { return -1 };
    if (*engine).connections.contains_key(&id) {
        return -1;
    }
    // An IP literal connects at once (1). Nothing of this connection calls back
    // before its id is in its ext: on_open, the one callback inside connect, is
    // not set; its handshake's come from the loop, which needs the lock.
    let mut conn = std::ptr::null_mut();
    let mut pending = std::ptr::null_mut();
    let r = us_quic_socket_context_connect(
        ctx,
        ip,
        port,
        server_name,
        verify,
        &mut conn,
        &mut pending,
        std::ptr::null_mut(),
    );
    if r != 1 || conn.is_null() {
        return -1;
    }
    *us_quic_socket_ext(conn).cast::<u32>() = id;
    (*engine).connections.insert(id, Connection { conn, waiting: VecDeque::new() });
    c_int::from((*conn).resuming)
}

/// Sends a request on connection `conn` as request `id` (not 0, not in use): its
/// header block (us_quic_embed_read_headers layout) goes out when the stream
/// opens, ending the stream when `end_stream`. 0, or -1 (unknown connection, id in use).
///
/// # Safety
/// `t` is NULL or a live client thread; `block` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_client_thread_request(
    t: *mut ClientThread,
    conn: c_uint,
    id: c_uint,
    block: *const u8,
    len: c_uint,
    end_stream: c_int,
) -> c_int {
    let Some(t) = t.as_ref() else { return -1 };
    let _held = t.shared.lock();
    let engine = t.shared.engine.get();
    if id == 0 || (*engine).requests.contains_key(&id) {
        return -1;
    }
    let Some(c) = (*engine).connections.get_mut(&conn) else { return -1 };
    c.waiting.push_back(Waiting { id, block: raw_bytes(block, len).to_vec(), end_stream: end_stream != 0 });
    let conn_ptr = c.conn;
    let request = Request {
        stream: std::ptr::null_mut(),
        connection: conn,
        paused_by_host: false,
        paused_by_buffer: false,
        queued: 0,
    };
    (*engine).requests.insert(id, request);
    // on_stream_open may run inside this call, when a stream is available now.
    us_quic_socket_make_stream(conn_ptr);
    0
}

/// Writes body bytes of request `id`: the bytes accepted (0 before its stream
/// opens or while flow control is full; a WRITABLE event follows), -1 when the
/// request is closed.
///
/// # Safety
/// `t` is NULL or a live client thread; `data` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_client_thread_write(
    t: *mut ClientThread,
    id: c_uint,
    data: *const c_char,
    len: c_uint,
) -> c_int {
    let Some(t) = t.as_ref() else { return -1 };
    let _held = t.shared.lock();
    let Some(r) = t.shared.engine().requests.get(&id) else { return -1 };
    if r.stream.is_null() {
        return 0;
    }
    us_quic_stream_write(r.stream, data, len)
}

/// Ends request `id`'s body (FIN; with its headers if its stream has not opened yet).
///
/// # Safety
/// `t` is NULL or a live client thread.
#[no_mangle]
pub unsafe extern "C" fn us_quic_client_thread_shutdown(t: *mut ClientThread, id: c_uint) {
    let Some(t) = t.as_ref() else { return };
    let _held = t.shared.lock();
    let engine = t.shared.engine();
    let Some(r) = engine.requests.get(&id) else { return };
    if !r.stream.is_null() {
        let s = r.stream;
        us_quic_stream_shutdown(s);
    } else if let Some(w) =
        engine.connections.get_mut(&r.connection).and_then(|c| c.waiting.iter_mut().find(|w| w.id == id))
    {
        w.end_stream = true;
    }
}

/// Resets request `id` with an HTTP/3 error code (RESET_STREAM and STOP_SENDING);
/// one still waiting for its stream is dropped. Its REQUEST_CLOSED event follows.
///
/// # Safety
/// `t` is NULL or a live client thread.
#[no_mangle]
pub unsafe extern "C" fn us_quic_client_thread_reset(t: *mut ClientThread, id: c_uint, code: c_ulonglong) {
    let Some(t) = t.as_ref() else { return };
    let _held = t.shared.lock();
    let engine = t.shared.engine();
    let Some(r) = engine.requests.get(&id) else { return };
    if !r.stream.is_null() {
        let s = r.stream;
        us_quic_stream_reset_with_code(s, code);
        return;
    }
    if let Some(c) = engine.connections.get_mut(&r.connection) {
        c.waiting.retain(|w| w.id != id);
    }
    engine.close_request(id, code as i64);
}

/// Stops (0) or resumes (1) delivering request `id`'s body: the host's own
/// backpressure (QUIC flow control then holds the server).
///
/// # Safety
/// `t` is NULL or a live client thread.
#[no_mangle]
pub unsafe extern "C" fn us_quic_client_thread_want_read(t: *mut ClientThread, id: c_uint, want: c_int) {
    let Some(t) = t.as_ref() else { return };
    let _held = t.shared.lock();
    let engine = t.shared.engine.get();
    let Some(r) = (*engine).requests.get_mut(&id) else { return };
    r.paused_by_host = want == 0;
    apply_want_read(engine, id);
}

/// Closes connection `id` (its requests close first).
///
/// # Safety
/// `t` is NULL or a live client thread.
#[no_mangle]
pub unsafe extern "C" fn us_quic_client_thread_close(t: *mut ClientThread, id: c_uint) {
    let Some(t) = t.as_ref() else { return };
    let _held = t.shared.lock();
    let Some(c) = t.shared.engine().connections.get(&id) else { return };
    let conn = c.conn;
    us_quic_socket_close(conn);
}

/// Wakes the thread to send what the host's calls queued (one per batch of
/// calls). Takes no lock.
///
/// # Safety
/// `t` is NULL or a live client thread.
#[no_mangle]
pub unsafe extern "C" fn us_quic_client_thread_flush(t: *mut ClientThread) {
    if let Some(t) = t.as_ref() {
        us::us_wakeup_loop((*t.shared.engine.get()).loop_);
    }
}

/// Takes the events queued since the last poll: their bytes (valid until the next
/// poll), their length in `*len` (0: none).
///
/// # Safety
/// `t` is NULL or a live client thread; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn us_quic_client_thread_poll(t: *mut ClientThread, len: *mut c_uint) -> *const u8 {
    let Some(t) = t.as_ref() else { return std::ptr::null() };
    let _held = t.shared.lock();
    let engine = t.shared.engine.get();
    let e = &mut *engine;
    std::mem::swap(&mut e.events, &mut e.delivered);
    e.events.clear();
    if e.events.capacity() > KEEP_CAPACITY {
        // A burst (a large body while the host was busy) leaves no lasting buffer.
        e.events = Vec::new();
    }
    e.notified = false;
    e.open_data = None;
    let queued = std::mem::take(&mut e.queued);
    let mut resumed = false;
    for &id in &queued {
        let Some(r) = (*engine).requests.get_mut(&id) else { continue };
        r.queued = 0;
        if std::mem::take(&mut r.paused_by_buffer) {
            resumed = true;
            apply_want_read(engine, id);
        }
    }
    let mut queued = queued;
    queued.clear();
    (*engine).queued = queued; // its capacity, for the next round
    if resumed {
        us::us_wakeup_loop((*engine).loop_);
    }
    if !len.is_null() {
        *len = (*engine).delivered.len() as c_uint;
    }
    (*engine).delivered.as_ptr()
}

/// Stops the thread and frees everything (connections are dropped without a
/// close). For tests and embedders that unload; a process may just exit.
///
/// # Safety
/// `t` is NULL or a live client thread; it is dangling when this returns.
#[no_mangle]
pub unsafe extern "C" fn us_quic_client_thread_free(t: *mut ClientThread) {
    if t.is_null() {
        return;
    }
    let mut t = Box::from_raw(t);
    libc::write(t.stop_write, b"!".as_ptr().cast(), 1);
    if let Some(thread) = t.thread.take() {
        let _ = thread.join();
    }
    let engine = t.shared.engine.get();
    for &ctx in &(*engine).configs {
        us_quic_socket_context_free(ctx);
    }
    // Once more so closed handles are released, then free.
    us::us_loop_run_once((*engine).loop_, 0);
    us::us_loop_free((*engine).loop_);
    libc::close((*engine).wake);
    libc::close(t.stop_write);
}
