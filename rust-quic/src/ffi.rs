//! The C ABI of `packages/bun-usockets/src/quic.h`. Every exported function
//! lives here and only converts arguments and calls into the core; null
//! pointers are refused rather than dereferenced. Each export's `# Safety`
//! names what its pointers must be (see the crate's `# Safety` for *live*).

use std::ffi::{c_char, c_int, c_longlong, c_uint, c_ulonglong, c_void, CStr};
use std::net::{IpAddr, SocketAddr};

use usockets_sys as us;

use crate::address_validation::RetryPolicy;
use crate::cid::{CidScheme, QuicLb};
use crate::client::{Connect, PendingConnect};
use crate::context::{Context, EarlyData, Settings, Stats};
use crate::edge;
use crate::events;
use crate::http3::{self, FieldRef};
use crate::limits::Limits;
use crate::listen_socket::{self, ListenSocket};
use crate::peer_context::{self, PeerContext};
use crate::stream::{self, QuicHeader, Stream};
use crate::tls::{ClientVerification, TlsOptions};
use crate::usockets_driver::{self, UsocketsDriver};

/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn cstr<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        CStr::from_ptr(p).to_str().ok()
    }
}

/// # Safety
/// `list` is NULL or points to `count` pointers, each NULL or a NUL-terminated string.
unsafe fn pem_list(list: *mut *const c_char, count: c_uint) -> Option<Vec<u8>> {
    if list.is_null() || count == 0 {
        return None;
    }
    let mut out = Vec::new();
    for i in 0..count as usize {
        let p = *list.add(i);
        if !p.is_null() {
            out.extend_from_slice(CStr::from_ptr(p).to_bytes());
            out.push(b'\n');
        }
    }
    Some(out)
}

/// # Safety
/// `file` is NULL or a NUL-terminated string.
unsafe fn file_or(list: Option<Vec<u8>>, file: *const c_char) -> Result<Option<Vec<u8>>, String> {
    if list.is_some() {
        return Ok(list);
    }
    match cstr(file) {
        Some(path) if !path.is_empty() => std::fs::read(path).map(Some).map_err(|e| format!("{path}: {e}")),
        _ => Ok(None),
    }
}

/// TLS material from usockets options: in-memory PEM wins over file names.
///
/// # Safety
/// The pointers in `o` are NULL or as usockets declares them: NUL-terminated
/// strings, and arrays of `*_count` such strings.
pub unsafe fn tls_options(o: &us::us_bun_socket_context_options_t) -> Result<TlsOptions, String> {
    let cert =
        file_or(pem_list(o.cert, o.cert_count), o.cert_file_name)?.ok_or("no certificate (cert or cert_file_name)")?;
    let key = file_or(pem_list(o.key, o.key_count), o.key_file_name)?.ok_or("no private key (key or key_file_name)")?;
    let ca = file_or(pem_list(o.ca, o.ca_count), o.ca_file_name)?;
    let passphrase = cstr(o.passphrase).map(|p| p.as_bytes().to_vec());
    let client_verification = ClientVerification::from_flags(o.request_cert != 0, o.reject_unauthorized != 0);
    Ok(TlsOptions { cert_pem: cert, key_pem: key, passphrase, ca_pem: ca, client_verification })
}

fn report(what: &str, err: &str) {
    // The C ABI has no error channel beyond NULL; say why once on stderr.
    eprintln!("rust-quic: {what}: {err}");
}

/// The C ABI's status: 0, or -1 after saying why on stderr.
fn status(what: &str, result: Result<(), String>) -> c_int {
    match result {
        Ok(()) => 0,
        Err(e) => {
            report(what, &e);
            -1
        }
    }
}

#[no_mangle]
pub extern "C" fn us_quic_global_init() {}

/// # Safety
/// `loop_` is NULL or a live usockets loop.
#[no_mangle]
pub unsafe extern "C" fn us_create_quic_socket_context(
    loop_: *mut us::us_loop_t,
    options: us::us_bun_socket_context_options_t,
    ext_size: c_uint,
    idle_timeout_s: c_uint,
) -> *mut Context {
    if loop_.is_null() {
        return std::ptr::null_mut();
    }
    let tls = match tls_options(&options) {
        Ok(t) => t,
        Err(e) => {
            report("server TLS options", &e);
            return std::ptr::null_mut();
        }
    };
    let settings = Settings {
        idle_timeout_ms: if idle_timeout_s == 0 { 30_000 } else { u64::from(idle_timeout_s) * 1000 },
        ..Settings::default()
    };
    match Context::new_server(&tls, settings, ext_size as usize, Box::new(UsocketsDriver::new(loop_))) {
        Ok(ctx) => {
            let ctx = Box::into_raw(ctx);
            usockets_driver::register(loop_, ctx);
            ctx
        }
        Err(e) => {
            report("server context", &e);
            std::ptr::null_mut()
        }
    }
}

/// # Safety
/// `loop_` is NULL or a live usockets loop.
#[no_mangle]
pub unsafe extern "C" fn us_create_quic_client_context(
    loop_: *mut us::us_loop_t,
    ext_size: c_uint,
    conn_ext_size: c_uint,
    stream_ext_size: c_uint,
) -> *mut Context {
    if loop_.is_null() {
        return std::ptr::null_mut();
    }
    let settings = Settings {
        conn_ext_size: conn_ext_size as usize,
        stream_ext_size: stream_ext_size as usize,
        ..Settings::default()
    };
    let ctx = Box::into_raw(Context::new_client(settings, ext_size as usize, Box::new(UsocketsDriver::new(loop_))));
    usockets_driver::register(loop_, ctx);
    ctx
}

/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_shutdown(ctx: *mut Context) {
    if !ctx.is_null() {
        edge::shutdown(ctx);
    }
}

/// # Safety
/// `ctx` is NULL or a live context. The caller uses it no more: it is freed
/// now, or at the end of the loop iteration when a frame of it is running.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_free(ctx: *mut Context) {
    if ctx.is_null() {
        return;
    }
    edge::request_free(ctx);
    usockets_driver::free_or_defer(ctx);
}

/// # Safety
/// `ctx` is NULL or a live context; `hostname` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_add_server_name(
    ctx: *mut Context,
    hostname: *const c_char,
    options: us::us_bun_socket_context_options_t,
) -> c_int {
    let (Some(ctx), Some(host)) = (ctx.as_mut(), cstr(hostname)) else { return -1 };
    let result = tls_options(&options).and_then(|tls| ctx.add_server_name(host, &tls));
    status("add_server_name", result)
}

/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_ext(ctx: *mut Context) -> *mut c_void {
    ctx.as_ref().map_or(std::ptr::null_mut(), Context::ext_ptr)
}

/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_loop(ctx: *mut Context) -> *mut us::us_loop_t {
    ctx.as_ref().map_or(std::ptr::null_mut(), |c| c.loop_ptr().cast())
}

/// # Safety
/// `ctx` is NULL or a live context; `host` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_listen(
    ctx: *mut Context,
    host: *const c_char,
    port: c_int,
    flags: c_int,
    stream_ext_size: c_uint,
) -> *mut ListenSocket {
    if ctx.is_null() || !(0..=65535).contains(&port) || (*ctx).server_config.is_none() || (*ctx).free_requested {
        return std::ptr::null_mut();
    }
    let host = cstr(host).filter(|h| !h.is_empty());
    match edge::listen(ctx, host, port as u16, flags, stream_ext_size as usize, None) {
        Ok(ls) => ls,
        Err(e) => {
            // A port in use is the ordinary failure, which the caller words (Bun: "Is port N in
            // use?") and may retry on another port; anything else is said here.
            if e != libc::EADDRINUSE {
                report("listen", &std::io::Error::from_raw_os_error(e).to_string());
            }
            std::ptr::null_mut()
        }
    }
}

/// # Safety
/// `ls` is NULL or a live listen socket, not closed before; the caller uses it
/// no more (it is freed by the sweep once its last connection is gone).
#[no_mangle]
pub unsafe extern "C" fn us_quic_listen_socket_close(ls: *mut ListenSocket) {
    if !ls.is_null() {
        listen_socket::close(ls);
    }
}

/// # Safety
/// `ls` is NULL or a live listen socket.
#[no_mangle]
pub unsafe extern "C" fn us_quic_listen_socket_port(ls: *mut ListenSocket) -> c_int {
    ls.as_ref().map_or(-1, |l| c_int::from(l.local.port()))
}

/// # Safety
/// `buf` is NULL or points to `cap` writable bytes.
unsafe fn write_ip(ip: IpAddr, buf: *mut c_char, cap: usize) -> c_int {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets().to_vec(),
        },
    };
    if buf.is_null() || cap < bytes.len() {
        return -1;
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
    bytes.len() as c_int
}

/// # Safety
/// `ls` is NULL or a live listen socket; `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_listen_socket_local_address(
    ls: *mut ListenSocket,
    buf: *mut c_char,
    len: c_int,
) -> c_int {
    match ls.as_ref() {
        Some(l) => write_ip(l.local.ip(), buf, len.max(0) as usize),
        None => -1,
    }
}

/// # Safety
/// `ctx` is NULL or a live context; `host` is NULL or a NUL-terminated string; `sni` is NULL or a NUL-terminated string; `out_qs` and `out_pending` are NULL or writable (`user` is only passed back).
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_connect(
    ctx: *mut Context,
    host: *const c_char,
    port: c_int,
    sni: *const c_char,
    reject_unauthorized: c_int,
    out_qs: *mut *mut PeerContext,
    out_pending: *mut *mut PendingConnect,
    user: *mut c_void,
) -> c_int {
    if !out_qs.is_null() {
        *out_qs = std::ptr::null_mut();
    }
    if !out_pending.is_null() {
        *out_pending = std::ptr::null_mut();
    }
    let Some(host) = cstr(host) else { return -1 };
    if ctx.is_null() || !(1..=65535).contains(&port) || (*ctx).free_requested {
        return -1;
    }
    let sni = cstr(sni).filter(|s| !s.is_empty());
    match edge::connect(ctx, host, port as u16, sni, reject_unauthorized != 0, user) {
        Ok(Connect::Now(pc)) => {
            if !out_qs.is_null() {
                *out_qs = pc;
            }
            1
        }
        Ok(Connect::Pending(p)) => {
            if out_pending.is_null() {
                return -1;
            }
            *out_pending = Box::into_raw(p);
            0
        }
        Err(e) => {
            report("connect", &e);
            -1
        }
    }
}

/// # Safety
/// `pc` is NULL or a pending connect that is neither resolved nor cancelled.
#[no_mangle]
pub unsafe extern "C" fn us_quic_pending_connect_user(pc: *mut PendingConnect) -> *mut c_void {
    pc.as_ref().map_or(std::ptr::null_mut(), |p| p.user)
}

/// Our loop has no resolver object to hand out; see us_quic_pending_connect_host.
#[no_mangle]
pub extern "C" fn us_quic_pending_connect_addrinfo(_pc: *mut PendingConnect) -> *mut c_void {
    std::ptr::null_mut()
}

/// # Safety
/// `pc` is NULL or a pending connect that is neither resolved nor cancelled;
/// it is freed here (dangling when this returns), and its context is live.
#[no_mangle]
pub unsafe extern "C" fn us_quic_pending_connect_resolved(pc: *mut PendingConnect) -> *mut PeerContext {
    if pc.is_null() {
        return std::ptr::null_mut();
    }
    let pending = Box::from_raw(pc);
    match edge::connect_resolved(&pending) {
        Ok(c) => c,
        Err(e) => {
            report("pending connect", &e);
            std::ptr::null_mut()
        }
    }
}

/// # Safety
/// `pc` is NULL or a pending connect that is neither resolved nor cancelled;
/// it is freed here (dangling when this returns).
#[no_mangle]
pub unsafe extern "C" fn us_quic_pending_connect_cancel(pc: *mut PendingConnect) {
    if !pc.is_null() {
        drop(Box::from_raw(pc));
    }
}

/// # Safety
/// `pc` is NULL or a pending connect that is neither resolved nor cancelled.
#[no_mangle]
pub unsafe extern "C" fn us_quic_pending_connect_host(pc: *mut PendingConnect) -> *const c_char {
    pc.as_ref().map_or(std::ptr::null(), |p| p.host.as_ptr())
}

/// # Safety
/// `pc` is NULL or a pending connect that is neither resolved nor cancelled; `ip` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn us_quic_pending_connect_set_address(pc: *mut PendingConnect, ip: *const c_char) -> c_int {
    let (Some(p), Some(ip)) = (pc.as_mut(), cstr(ip)) else { return -1 };
    match ip.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(addr) => {
            p.address = Some(addr);
            0
        }
        Err(_) => -1,
    }
}

/// # Safety
/// `s` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_make_stream(s: *mut PeerContext) {
    if !s.is_null() && !(*s).finalized() {
        edge::call((*s).core.ctx, || peer_context::request_stream(s, false));
    }
}

/// # Safety
/// `s` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_streams_avail(s: *mut PeerContext) -> c_uint {
    s.as_ref().map_or(0, |pc| peer_context::streams_available(pc).min(u64::from(c_uint::MAX)) as c_uint)
}

/// Copies `text` into `buf` as a NUL-terminated string, cut to fit; its
/// length, or -1 when there is no room at all.
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
pub(crate) unsafe fn write_text(text: &str, buf: *mut c_char, len: usize) -> c_int {
    if buf.is_null() || len == 0 {
        return -1;
    }
    let n = text.len().min(len - 1);
    std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
    *buf.add(n) = 0;
    n as c_int
}

/// # Safety
/// `s` is NULL or a live connection; `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_status(s: *mut PeerContext, buf: *mut c_char, len: c_uint) -> c_int {
    match s.as_ref() {
        Some(pc) => write_text(&peer_context::status_line(pc), buf, len as usize),
        None => -1,
    }
}

// quic.h's callback types: the objects as C sees them.
pub type ConnCb = unsafe extern "C" fn(*mut PeerContext);
pub type ConnOkCb = unsafe extern "C" fn(*mut PeerContext, c_int);
pub type StreamOpenCb = unsafe extern "C" fn(*mut Stream, c_int);
pub type StreamCb = unsafe extern "C" fn(*mut Stream);
pub type StreamDataCb = unsafe extern "C" fn(*mut Stream, *const c_char, c_uint, c_int);
pub type DatagramCb = unsafe extern "C" fn(*mut PeerContext, *const c_char, c_uint);
pub type StreamDatagramCb = unsafe extern "C" fn(*mut Stream, *const c_char, c_uint);

macro_rules! callback_setter {
    ($name:ident, $field:ident, $ty:ty, $core_ty:ty) => {
        /// # Safety
        /// `ctx` is NULL or a live context; `cb`, when set, is safe to call
        /// with the arguments quic.h documents for it, until it is replaced.
        #[no_mangle]
        pub unsafe extern "C" fn $name(ctx: *mut Context, cb: Option<$ty>) {
            if let Some(ctx) = ctx.as_mut() {
                // SAFETY: the core's callback type differs only in taking handles
                // where this one takes object pointers, and a handle is
                // `repr(transparent)` over the object's (never null) address
                // (handles.rs): the same ABI, called with the same values.
                ctx.callbacks.$field = std::mem::transmute::<Option<$ty>, Option<$core_ty>>(cb);
            }
        }
    };
}

callback_setter!(us_quic_socket_context_on_open, on_open, ConnCb, events::ConnCb);
callback_setter!(us_quic_socket_context_on_hsk_done, on_hsk_done, ConnOkCb, events::ConnOkCb);
callback_setter!(us_quic_socket_context_on_goaway, on_goaway, ConnCb, events::ConnCb);
callback_setter!(us_quic_socket_context_on_close, on_close, ConnCb, events::ConnCb);
callback_setter!(us_quic_socket_context_on_stream_open, on_stream_open, StreamOpenCb, events::StreamOpenCb);
callback_setter!(us_quic_socket_context_on_stream_headers, on_stream_headers, StreamCb, events::StreamCb);
callback_setter!(us_quic_socket_context_on_stream_data, on_stream_data, StreamDataCb, events::StreamDataCb);
callback_setter!(us_quic_socket_context_on_stream_writable, on_stream_writable, StreamCb, events::StreamCb);
callback_setter!(us_quic_socket_context_on_stream_close, on_stream_close, StreamCb, events::StreamCb);
callback_setter!(us_quic_socket_context_on_datagram, on_datagram, DatagramCb, events::DatagramCb);
callback_setter!(us_quic_socket_context_on_settings, on_settings, ConnCb, events::ConnCb);
callback_setter!(
    us_quic_socket_context_on_stream_datagram,
    on_stream_datagram,
    StreamDatagramCb,
    events::StreamDatagramCb
);

/// Runs a stream operation inside an engine frame, so that anything it closes
/// is swept only after the caller's callback (if any) has returned.
/// `len` bytes at `p` (a C byte pointer of any char type); empty for NULL or 0.
/// Callers check "NULL with a length" themselves where that is an error.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes.
pub(crate) unsafe fn raw_bytes<'a, T>(p: *const T, len: c_uint) -> &'a [u8] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(p.cast::<u8>(), len as usize)
    }
}

/// TLS material from PEM buffers (certificate chain, key, optional passphrase).
///
/// # Safety
/// `cert` is NULL or points to `cert_len` readable bytes; `key` is NULL or points to `key_len` readable bytes; `passphrase` is NULL or points to `passphrase_len` readable bytes.
pub(crate) unsafe fn tls_from_buffers(
    cert: *const c_char,
    cert_len: c_uint,
    key: *const c_char,
    key_len: c_uint,
    passphrase: *const c_char,
    passphrase_len: c_uint,
) -> TlsOptions {
    TlsOptions {
        cert_pem: raw_bytes(cert, cert_len).to_vec(),
        key_pem: raw_bytes(key, key_len).to_vec(),
        passphrase: (!passphrase.is_null() && passphrase_len > 0)
            .then(|| raw_bytes(passphrase, passphrase_len).to_vec()),
        ..TlsOptions::default()
    }
}

/// # Safety
/// `s` is NULL or a live stream.
pub(crate) unsafe fn with_stream<R>(s: *mut Stream, default: R, f: impl FnOnce(*mut Stream) -> R) -> R {
    if s.is_null() {
        return default;
    }
    edge::call((*(*s).conn).ctx, || f(s))
}

/// # Safety
/// `s` is NULL or a live stream; `data` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_write(s: *mut Stream, data: *const c_char, len: c_uint) -> c_int {
    if data.is_null() && len > 0 {
        return -1;
    }
    with_stream(s, -1, |s| stream::write(s, raw_bytes(data, len)) as c_int)
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_want_read(s: *mut Stream, want: c_int) {
    with_stream(s, (), |s| stream::set_want_read(s, want != 0))
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_want_write(s: *mut Stream, want: c_int) {
    with_stream(s, (), |s| stream::set_want_write(s, want != 0))
}

/// # Safety
/// `headers` is NULL or points to `count` headers whose name and value pointers are readable for their lengths.
unsafe fn fields_from<'a>(headers: *const QuicHeader, count: c_uint) -> Option<Vec<FieldRef<'a>>> {
    if headers.is_null() && count > 0 {
        return None;
    }
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let h = &*headers.add(i);
        if (h.name.is_null() && h.name_len > 0) || (h.value.is_null() && h.value_len > 0) {
            return None;
        }
        out.push(FieldRef { name: raw_bytes(h.name, h.name_len), value: raw_bytes(h.value, h.value_len) });
    }
    Some(out)
}

/// # Safety
/// `s` is NULL or a live stream; `headers` is NULL or points to `count` headers whose name and value pointers are readable for their lengths.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_send_headers(
    s: *mut Stream,
    headers: *const QuicHeader,
    count: c_uint,
    end_stream: c_int,
) -> c_int {
    let Some(fields) = fields_from(headers, count) else { return -1 };
    with_stream(s, -1, |s| match stream::send_headers(s, &fields, end_stream != 0) {
        Ok(()) => 0,
        Err(_) => -1,
    })
}

/// # Safety
/// `s` is NULL or a live stream; `status3` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_send_informational(s: *mut Stream, status3: *const c_char) -> c_int {
    if status3.is_null() {
        return -1;
    }
    let status = CStr::from_ptr(status3).to_bytes();
    with_stream(s, -1, |s| match stream::send_informational(s, status) {
        Ok(()) => 0,
        Err(_) => -1,
    })
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_shutdown(s: *mut Stream) {
    with_stream(s, (), |s| stream::shutdown(s))
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_flush(s: *mut Stream) {
    with_stream(s, (), |s| {
        let pc = peer_context::of_stream(&*s);
        if !(*pc).finalized() {
            edge::flush(pc);
        }
    })
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_shutdown_read(s: *mut Stream) {
    with_stream(s, (), |s| stream::shutdown_read(s))
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_close(s: *mut Stream) {
    with_stream(s, (), |s| stream::close(s))
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_reset(s: *mut Stream) {
    with_stream(s, (), |s| stream::reset(s, http3::H3_REQUEST_CANCELLED))
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_reset_with_code(s: *mut Stream, code: c_ulonglong) {
    with_stream(s, (), |s| stream::reset(s, code))
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_has_unacked(s: *mut Stream) -> c_int {
    s.as_ref().map_or(0, |s| c_int::from(stream::has_unsent(s)))
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_ext(s: *mut Stream) -> *mut c_void {
    s.as_ref().map_or(std::ptr::null_mut(), |s| s.ext.ptr())
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_socket(s: *mut Stream) -> *mut PeerContext {
    s.as_ref().map_or(std::ptr::null_mut(), peer_context::of_stream)
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_context(s: *mut Stream) -> *mut Context {
    s.as_ref().map_or(std::ptr::null_mut(), |s| (*s.conn).ctx)
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_header_count(s: *mut Stream) -> c_uint {
    s.as_ref().map_or(0, |s| stream::headers(s).len() as c_uint)
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_header(s: *mut Stream, i: c_uint) -> *const QuicHeader {
    s.as_ref().and_then(|s| stream::headers(s).get(i as usize)).map_or(std::ptr::null(), |h| h as *const QuicHeader)
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_headers_kind(s: *mut Stream) -> c_int {
    s.as_ref().map_or(0, |s| s.headers_kind as c_int)
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_error_code(s: *mut Stream) -> i64 {
    s.as_ref().and_then(|s| s.error_code).map_or(-1, |c| c as i64)
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_id(s: *mut Stream) -> c_ulonglong {
    s.as_ref().map_or(u64::MAX, |s| s.id)
}

/// # Safety
/// `loop_` is NULL or a live usockets loop.
#[no_mangle]
pub unsafe extern "C" fn us_quic_loop_process(loop_: *mut us::us_loop_t) {
    if !loop_.is_null() {
        usockets_driver::process_loop(loop_);
    }
}

/// # Safety
/// `loop_` is NULL or a live usockets loop.
#[no_mangle]
pub unsafe extern "C" fn us_quic_loop_flush_if_pending(loop_: *mut us::us_loop_t) {
    if !loop_.is_null() {
        usockets_driver::flush_loop(loop_);
    }
}

/// # Safety
/// `s` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_ext(s: *mut PeerContext) -> *mut c_void {
    s.as_ref().map_or(std::ptr::null_mut(), |pc| pc.ext.ptr())
}

/// # Safety
/// `s` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context(s: *mut PeerContext) -> *mut Context {
    s.as_ref().map_or(std::ptr::null_mut(), |pc| pc.core.ctx)
}

/// # Safety
/// `s` is NULL or a live connection; `len`, `port` and `is_ipv6` are NULL or
/// writable; `buf` is NULL or points to `*len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_remote_address(
    s: *mut PeerContext,
    buf: *mut c_char,
    len: *mut c_int,
    port: *mut c_int,
    is_ipv6: *mut c_int,
) {
    let Some(pc) = s.as_ref() else { return };
    let addr: SocketAddr = pc.peer_addr;
    let cap = if len.is_null() { 0 } else { (*len).max(0) as usize };
    let n = write_ip(addr.ip(), buf, cap);
    if !len.is_null() {
        *len = n.max(0);
    }
    if !port.is_null() {
        *port = c_int::from(addr.port());
    }
    if !is_ipv6.is_null() {
        *is_ipv6 = c_int::from(n == 16);
    }
}

/// # Safety
/// `s` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_close(s: *mut PeerContext) {
    if s.is_null() || (*s).finalized() {
        return;
    }
    edge::call((*s).core.ctx, || peer_context::close_from_app(s, http3::H3_NO_ERROR, b""));
}

/// # Safety
/// `s` is NULL or a live connection; `reason` is NULL or points to `reason_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_close_with_error(
    s: *mut PeerContext,
    code: c_ulonglong,
    reason: *const c_char,
    reason_len: c_uint,
) {
    if s.is_null() || (*s).finalized() {
        return;
    }
    let reason = raw_bytes(reason, reason_len);
    edge::call((*s).core.ctx, || peer_context::close_from_app(s, code, reason));
}

/// # Safety
/// `s` is NULL or a live connection; `code` is NULL or writable; `is_app` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_close_error(
    s: *mut PeerContext,
    code: *mut c_ulonglong,
    is_app: *mut c_int,
) -> c_int {
    let Some(pc) = s.as_ref() else { return 0 };
    match peer_context::close_error(pc) {
        Some((c, app)) => {
            if !code.is_null() {
                *code = c;
            }
            if !is_app.is_null() {
                *is_app = c_int::from(app);
            }
            1
        }
        None => 0,
    }
}

/// # Safety
/// `s` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_make_uni_stream(s: *mut PeerContext) {
    if !s.is_null() && !(*s).finalized() {
        edge::call((*s).core.ctx, || peer_context::request_stream(s, true));
    }
}

/// ALPN in wire format: each protocol prefixed by its length byte.
fn parse_alpn_wire(mut wire: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while let Some((&n, rest)) = wire.split_first() {
        if n == 0 || rest.len() < n as usize {
            return None;
        }
        out.push(rest[..n as usize].to_vec());
        wire = &rest[n as usize..];
    }
    (!out.is_empty()).then_some(out)
}

/// # Safety
/// `ctx` is NULL or a live context; `wire` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_raw_alpn(ctx: *mut Context, wire: *const u8, len: c_uint) -> c_int {
    let (Some(ctx), false) = (ctx.as_mut(), wire.is_null()) else { return -1 };
    let Some(alpn) = parse_alpn_wire(raw_bytes(wire, len)) else { return -1 };
    status("set_raw_alpn", ctx.set_raw_protocol(alpn))
}

/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_datagrams(ctx: *mut Context, enabled: c_int) -> c_int {
    let Some(c) = ctx.as_mut() else { return -1 };
    status("set_datagrams", c.set_datagrams(enabled != 0))
}

/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_max_streams(ctx: *mut Context, bidi: c_uint, uni: c_uint) -> c_int {
    let Some(c) = ctx.as_mut() else { return -1 };
    status("set_max_streams", c.set_max_streams(u64::from(bidi), u64::from(uni)))
}

/// # Safety
/// `s` is NULL or a live connection; `data` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_send_datagram(s: *mut PeerContext, data: *const c_char, len: c_uint) -> c_int {
    if s.is_null() || (data.is_null() && len > 0) {
        return -2;
    }
    let bytes = raw_bytes(data, len);
    datagram_result(edge::call((*s).core.ctx, || peer_context::send_datagram(s, bytes)))
}

fn datagram_result(r: Result<(), peer_context::DatagramError>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(peer_context::DatagramError::TooLarge) => -1,
        Err(peer_context::DatagramError::Unavailable) => -2,
        Err(peer_context::DatagramError::QueueFull) => -3,
    }
}

/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_webtransport(ctx: *mut Context, sessions: c_uint) -> c_int {
    let Some(ctx) = ctx.as_mut() else { return -1 };
    status("set_webtransport", ctx.set_webtransport(u64::from(sessions)))
}

/// # Safety
/// `s` is NULL or a live connection; `value` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_peer_setting(
    s: *mut PeerContext,
    id: c_ulonglong,
    value: *mut c_ulonglong,
) -> c_int {
    let Some(pc) = s.as_ref() else { return -1 };
    match peer_context::peer_setting(pc, id) {
        None => -1,
        Some(None) => 0,
        Some(Some(v)) => {
            if let Some(out) = value.as_mut() {
                *out = v;
            }
            1
        }
    }
}

/// # Safety
/// `s` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_make_webtransport_stream(
    s: *mut PeerContext,
    session: c_ulonglong,
    uni: c_int,
) {
    if !s.is_null() && !(*s).finalized() && peer_context::is_h3(&*s) {
        edge::call((*s).core.ctx, || peer_context::request_webtransport_stream(s, session, uni != 0));
    }
}

/// # Safety
/// `s` is NULL or a live connection; `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_peer_certificate(s: *mut PeerContext, buf: *mut u8, len: c_uint) -> c_int {
    let Some(der) = s.as_ref().and_then(|pc| pc.core.conn.peer_cert()) else { return -1 };
    if !buf.is_null() && der.len() <= len as usize {
        std::ptr::copy_nonoverlapping(der.as_ptr(), buf, der.len());
    }
    der.len() as c_int
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_webtransport_session(s: *mut Stream) -> c_longlong {
    s.as_ref().and_then(|s| s.wt_session).map_or(-1, |id| id as c_longlong)
}

/// # Safety
/// `s` is NULL or a live stream; `data` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_send_datagram(s: *mut Stream, data: *const c_char, len: c_uint) -> c_int {
    if s.is_null() || (data.is_null() && len > 0) {
        return -2;
    }
    with_stream(s, -2, |s| datagram_result(peer_context::send_stream_datagram(s, raw_bytes(data, len))))
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_datagram_max_size(s: *mut Stream) -> c_int {
    s.as_ref().and_then(peer_context::stream_datagram_max_size).map_or(-1, |n| n as c_int)
}

/// # Safety
/// `s` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_datagram_max_size(s: *mut PeerContext) -> c_int {
    s.as_ref().and_then(|pc| pc.core.conn.dgram_max_writable_len()).map_or(-1, |n| n as c_int)
}

/// # Safety
/// `s` is NULL or a live stream.
#[no_mangle]
pub unsafe extern "C" fn us_quic_stream_stop_sending(s: *mut Stream, code: c_ulonglong) {
    with_stream(s, (), |s| stream::stop_sending(s, code))
}

/// `us_quic_socket_context_set_congestion_control`: "cubic", "reno" or "bbr2"
/// for new connections. 0 or -1.
///
/// # Safety
/// `ctx` is NULL or a live context; `name` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_congestion_control(
    ctx: *mut Context,
    name: *const c_char,
    len: c_uint,
) -> c_int {
    let cc = std::str::from_utf8(raw_bytes(name, len)).ok().and_then(crate::context::CongestionControl::from_name);
    match (ctx.as_mut(), cc) {
        (Some(c), Some(cc)) => match c.set_congestion_control(cc) {
            Ok(()) => 0,
            Err(_) => -1,
        },
        _ => -1,
    }
}

/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_idle_timeout(ctx: *mut Context, ms: c_uint) -> c_int {
    match ctx.as_mut().map(|c| c.set_idle_timeout(u64::from(ms.max(1)))) {
        Some(Ok(())) => 0,
        _ => -1,
    }
}

/// The key stateless reset tokens are derived from (32 bytes; servers).
///
/// # Safety
/// `ctx` is NULL or a live context; `key` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_reset_key(ctx: *mut Context, key: *const u8, len: c_uint) -> c_int {
    let Some(ctx) = ctx.as_mut() else { return -1 };
    let Ok(key) = <[u8; 32]>::try_from(raw_bytes(key, len)) else { return -1 };
    ctx.set_reset_key(key).map_or(-1, |()| 0)
}

/// `us_quic_socket_context_set_early_data`: 0, or -1 (NULL, unknown mode).
///
/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_early_data(ctx: *mut Context, mode: c_int) -> c_int {
    let Some(ctx) = ctx.as_mut() else { return -1 };
    let mode = match mode {
        0 => EarlyData::Off,
        1 => EarlyData::SafeMethods,
        2 => EarlyData::All,
        _ => return -1,
    };
    ctx.set_early_data(mode).map_or(-1, |()| 0)
}

/// `us_quic_socket_context_set_ticket_keys`: 0, or -1 (NULL, not a server, bad length).
///
/// # Safety
/// `ctx` is NULL or a live context; `keys` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_ticket_keys(
    ctx: *mut Context,
    keys: *const u8,
    len: c_uint,
) -> c_int {
    let Some(ctx) = ctx.as_mut() else { return -1 };
    ctx.set_ticket_keys(raw_bytes(keys, len)).map_or(-1, |()| 0)
}

/// `us_quic_socket_context_set_qlog_dir`: 0, or -1 (NULL context).
///
/// # Safety
/// `ctx` is NULL or a live context; `dir` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_qlog_dir(ctx: *mut Context, dir: *const c_char) -> c_int {
    let Some(ctx) = ctx.as_mut() else { return -1 };
    ctx.set_qlog_dir(cstr(dir).map(std::path::PathBuf::from));
    0
}

/// `us_quic_socket_context_add_session`: 0, or -1 (NULL, not a client, empty ticket, bad name).
///
/// # Safety
/// `ctx` is NULL or a live context; `server_name` is NULL or a NUL-terminated
/// string; `ticket` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_add_session(
    ctx: *mut Context,
    server_name: *const c_char,
    port: c_int,
    verify: c_int,
    ticket: *const u8,
    len: c_uint,
) -> c_int {
    let (Some(ctx), Some(name), Ok(port)) = (ctx.as_mut(), cstr(server_name), u16::try_from(port)) else { return -1 };
    ctx.add_session(name, port, verify != 0, raw_bytes(ticket, len)).map_or(-1, |()| 0)
}

/// `us_quic_socket_session`: the ticket's length (copied when it fits), or -1.
///
/// # Safety
/// `s` is NULL or a live connection; `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_session(s: *mut PeerContext, buf: *mut u8, len: c_uint) -> c_int {
    let Some(pc) = s.as_ref() else { return -1 };
    let ticket = pc.core.conn.session().unwrap_or(&[]);
    if !buf.is_null() && ticket.len() <= len as usize {
        std::ptr::copy_nonoverlapping(ticket.as_ptr(), buf, ticket.len());
    }
    ticket.len() as c_int
}

/// `us_quic_socket_context_set_retry`: 0, or -1 (NULL, not a server, unknown mode).
///
/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_retry(ctx: *mut Context, mode: c_int) -> c_int {
    let Some(ctx) = ctx.as_mut() else { return -1 };
    let policy = match mode {
        0 => RetryPolicy::Never,
        1 => RetryPolicy::Always,
        2 => RetryPolicy::AboveRate,
        _ => return -1,
    };
    ctx.set_retry(policy).map_or(-1, |()| 0)
}

/// `us_quic_socket_context_set_quic_lb`: 0, or -1 (NULL, not a server, a codepoint
/// above 6, a server ID too long). A server ID of length 0 goes back to random IDs.
///
/// # Safety
/// `ctx` is NULL or a live context; `server_id` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_quic_lb(
    ctx: *mut Context,
    config_id: c_uint,
    server_id: *const u8,
    len: c_uint,
) -> c_int {
    let Some(ctx) = ctx.as_mut() else { return -1 };
    let scheme = match (len, u8::try_from(config_id)) {
        (0, _) => Ok(CidScheme::Random),
        (_, Ok(config_id)) => QuicLb::new(config_id, raw_bytes(server_id, len)).map(CidScheme::QuicLb),
        (_, Err(_)) => return -1,
    };
    scheme.and_then(|scheme| ctx.set_cid_scheme(scheme)).map_or(-1, |()| 0)
}

/// `us_quic_socket_context_set_token_key`: 0, or -1 (NULL, not a server, not 32 bytes).
///
/// # Safety
/// `ctx` is NULL or a live context; `key` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_token_key(ctx: *mut Context, key: *const u8, len: c_uint) -> c_int {
    let Some(ctx) = ctx.as_mut() else { return -1 };
    let Ok(key) = <[u8; 32]>::try_from(raw_bytes(key, len)) else { return -1 };
    ctx.set_token_key(key).map_or(-1, |()| 0)
}

/// `us_quic_socket_context_get_limits`: the context's limits into `out`.
///
/// # Safety
/// `ctx` is NULL or a live context; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_get_limits(ctx: *mut Context, out: *mut Limits) -> c_int {
    match (ctx.as_ref(), out.as_mut()) {
        (Some(c), Some(out)) => {
            *out = c.settings.limits;
            0
        }
        _ => -1,
    }
}

/// `us_quic_socket_context_set_limits`: servers only; applies to streams and
/// connections from now on. 0 or -1.
///
/// # Safety
/// `ctx` is NULL or a live context; `limits` is NULL or readable.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_limits(ctx: *mut Context, limits: *const Limits) -> c_int {
    match (ctx.as_mut(), limits.as_ref()) {
        (Some(c), Some(limits)) if c.role == crate::context::Role::Server => {
            c.settings.limits = *limits;
            0
        }
        _ => -1,
    }
}

/// `struct us_quic_socket_info_t`.
#[repr(C)]
#[derive(Default)]
pub struct SocketInfo {
    pub rtt_us: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_lost: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub streams: u64,
    pub established: u64,
    pub resumed: u64,
    pub early_data: u64,
}

/// # Safety
/// `s` is NULL or a live connection; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_info(s: *mut PeerContext, out: *mut SocketInfo) -> c_int {
    let (Some(pc), false) = (s.as_ref(), out.is_null()) else { return -1 };
    let st = pc.core.conn.stats();
    let rtt = pc.core.conn.path_stats().next().map_or(0, |p| p.rtt.as_micros() as u64);
    *out = SocketInfo {
        rtt_us: rtt,
        packets_sent: st.sent as u64,
        packets_received: st.recv as u64,
        packets_lost: st.lost as u64,
        bytes_sent: st.sent_bytes,
        bytes_received: st.recv_bytes,
        streams: pc.core.streams.len() as u64,
        established: u64::from(pc.is_established()),
        resumed: u64::from(pc.core.conn.is_resumed()),
        early_data: u64::from(pc.core.conn.is_in_early_data() || crate::peer_context::early_data_accepted(pc)),
    };
    0
}

/// Copies a byte string into buf (NUL-terminated); its length, or -1.
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
unsafe fn copy_out(bytes: &[u8], buf: *mut c_char, len: c_uint) -> c_int {
    if buf.is_null() || bytes.len() >= len as usize {
        return -1;
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
    *buf.add(bytes.len()) = 0;
    bytes.len() as c_int
}

/// # Safety
/// `s` is NULL or a live connection; `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_alpn(s: *mut PeerContext, buf: *mut c_char, len: c_uint) -> c_int {
    s.as_ref().map_or(-1, |pc| copy_out(pc.core.conn.application_proto(), buf, len))
}

/// # Safety
/// `s` is NULL or a live connection; `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_server_name(s: *mut PeerContext, buf: *mut c_char, len: c_uint) -> c_int {
    s.as_ref().map_or(-1, |pc| copy_out(pc.core.conn.server_name().unwrap_or("").as_bytes(), buf, len))
}

/// # Safety
/// `s` is NULL or a live connection.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_errno(s: *mut PeerContext) -> c_int {
    s.as_ref().and_then(|pc| pc.socket_error).unwrap_or(0)
}

/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_conn_ext_size(ctx: *mut Context, size: c_uint) {
    if let Some(ctx) = ctx.as_mut() {
        ctx.settings.conn_ext_size = size as usize;
    }
}

/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_max_header_size(ctx: *mut Context, size: c_uint) {
    if let Some(ctx) = ctx.as_mut() {
        ctx.settings.max_header_size = u64::from(size.max(1024));
    }
}

/// Server contexts: ask clients for a certificate (`request_cert`) and, with
/// `reject_unauthorized`, refuse the handshake unless it chains to `ca` (PEM;
/// len 0 = the system roots). Applies to new connections. 0 or -1.
///
/// # Safety
/// `ctx` is NULL or a live context; `ca` is NULL or points to `ca_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_client_verification(
    ctx: *mut Context,
    ca: *const c_char,
    ca_len: c_uint,
    request_cert: c_int,
    reject_unauthorized: c_int,
) -> c_int {
    let Some(ctx) = ctx.as_mut() else { return -1 };
    let ca = (ca_len > 0 && !ca.is_null()).then(|| raw_bytes(ca, ca_len).to_vec());
    let verification = ClientVerification::from_flags(request_cert != 0, reject_unauthorized != 0);
    status("set_client_verification", ctx.set_client_verification(verification, ca))
}

/// Client contexts: the certificate (PEM chain) and key shown to servers that
/// ask for one; cert_len 0 removes it. 0 or -1 (a bad or mismatched key).
///
/// # Safety
/// `ctx` is NULL or a live context; `cert` is NULL or points to `cert_len` readable bytes; `key` is NULL or points to `key_len` readable bytes; `passphrase` is NULL or points to `passphrase_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_client_certificate(
    ctx: *mut Context,
    cert: *const c_char,
    cert_len: c_uint,
    key: *const c_char,
    key_len: c_uint,
    passphrase: *const c_char,
    passphrase_len: c_uint,
) -> c_int {
    let Some(ctx) = ctx.as_mut() else { return -1 };
    if cert_len == 0 || cert.is_null() {
        return ctx.set_client_identity(None).map_or(-1, |()| 0);
    }
    let options = tls_from_buffers(cert, cert_len, key, key_len, passphrase, passphrase_len);
    status("set_client_certificate", ctx.set_client_identity(Some(&options)))
}

/// # Safety
/// `ctx` is NULL or a live context; `pem` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_set_ca(ctx: *mut Context, pem: *const c_char, len: c_uint) -> c_int {
    let Some(ctx) = ctx.as_mut() else { return -1 };
    if len == 0 || pem.is_null() {
        ctx.set_client_ca(None);
        return 0;
    }
    let bytes = raw_bytes(pem, len).to_vec();
    if boring::x509::X509::stack_from_pem(&bytes).map_or(true, |v| v.is_empty()) {
        report("set_ca", "no certificate in the PEM");
        return -1;
    }
    ctx.set_client_ca(Some(bytes));
    0
}

/// # Safety
/// `ctx` is NULL or a live context; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn us_quic_socket_context_stats(ctx: *mut Context, out: *mut Stats) {
    if let (Some(ctx), false) = (ctx.as_ref(), out.is_null()) {
        let mut stats = ctx.stats;
        stats.connections_active =
            ctx.connections.iter().filter(|&&c| !(*PeerContext::from_handle(c)).finalized()).count() as u64;
        *out = stats;
    }
}
