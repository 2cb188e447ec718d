//! ABI helpers shaped for FFI callers that cannot pass C structs by value or
//! walk arrays of structs cheaply (server context from PEM buffers, header
//! blocks serialized into one buffer each way, a whole response in one call),
//! and the static routes' registration.

use std::any::Any;
use std::ffi::{c_char, c_int, c_uint};

use crate::context::{Context, Settings};
use crate::ffi::{raw_bytes, tls_from_buffers, with_stream, write_text};
use crate::stream::{self, Stream};
use crate::usockets_driver::{self, UsocketsDriver};
use usockets_sys as us;

use super::static_route::{StaticResponse, StaticRoutes};

/// A server context from PEM buffers (cert chain, key, optional passphrase).
/// On failure returns NULL and writes the reason (NUL-terminated) into err.
///
/// # Safety
/// `loop_` is NULL or a live usockets loop; `cert` is NULL or points to `cert_len` readable bytes; `key` is NULL or points to `key_len` readable bytes; `passphrase` is NULL or points to `passphrase_len` readable bytes; `err` is NULL or points to `err_len` writable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn us_quic_embed_server_context(
    loop_: *mut us::us_loop_t,
    cert: *const c_char,
    cert_len: c_uint,
    key: *const c_char,
    key_len: c_uint,
    passphrase: *const c_char,
    passphrase_len: c_uint,
    idle_timeout_s: c_uint,
    err: *mut c_char,
    err_len: c_uint,
) -> *mut Context {
    let tls = tls_from_buffers(cert, cert_len, key, key_len, passphrase, passphrase_len);
    let settings = Settings {
        idle_timeout_ms: if idle_timeout_s == 0 { 30_000 } else { u64::from(idle_timeout_s) * 1000 },
        ..Settings::default()
    };
    match Context::new_server(&tls, settings, 0, Box::new(UsocketsDriver::new(loop_))) {
        Ok(ctx) => {
            let ctx = Box::into_raw(ctx);
            usockets_driver::register(loop_, ctx);
            ctx
        }
        Err(msg) => {
            write_text(&msg, err, err_len as usize);
            std::ptr::null_mut()
        }
    }
}

/// Another certificate for `hostname` (exact or `*.` wildcard), from PEM buffers.
/// 0 on success; -1 with the reason in err.
///
/// # Safety
/// `ctx` is NULL or a live context; `hostname` is NULL or a NUL-terminated string; `cert` is NULL or points to `cert_len` readable bytes; `key` is NULL or points to `key_len` readable bytes; `passphrase` is NULL or points to `passphrase_len` readable bytes; `err` is NULL or points to `err_len` writable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn us_quic_embed_add_server_name(
    ctx: *mut Context,
    hostname: *const c_char,
    cert: *const c_char,
    cert_len: c_uint,
    key: *const c_char,
    key_len: c_uint,
    passphrase: *const c_char,
    passphrase_len: c_uint,
    err: *mut c_char,
    err_len: c_uint,
) -> c_int {
    let (Some(ctx), false) = (ctx.as_mut(), hostname.is_null()) else { return -1 };
    let Ok(host) = std::ffi::CStr::from_ptr(hostname).to_str() else { return -1 };
    let tls = tls_from_buffers(cert, cert_len, key, key_len, passphrase, passphrase_len);
    match ctx.add_server_name(host, &tls) {
        Ok(()) => 0,
        Err(msg) => {
            write_text(&msg, err, err_len as usize);
            -1
        }
    }
}

/// Serializes the stream's current header block as repeated
/// `[u32 name length][name][u32 value length][value]` (native endian) into buf.
/// Returns the bytes needed: when larger than cap nothing was written; call again.
///
/// # Safety
/// `s` is NULL or a live stream; `buf` is NULL or points to `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_embed_read_headers(s: *mut Stream, buf: *mut u8, cap: c_uint) -> c_uint {
    let Some(s) = s.as_ref() else { return 0 };
    let fields = stream::headers(s);
    let need: usize = fields.iter().map(|h| 8 + h.name_len as usize + h.value_len as usize).sum();
    if need > cap as usize || buf.is_null() {
        return need as c_uint;
    }
    let mut off = 0usize;
    for h in fields {
        for (p, n) in [(h.name, h.name_len), (h.value, h.value_len)] {
            buf.add(off).cast::<u32>().write_unaligned(n);
            off += 4;
            std::ptr::copy_nonoverlapping(p.cast::<u8>(), buf.add(off), n as usize);
            off += n as usize;
        }
    }
    need as c_uint
}

/// Sends a header block given in the `us_quic_embed_read_headers` layout.
/// 0 on success, -1 when refused (stream state, malformed buffer).
///
/// # Safety
/// `s` is NULL or a live stream; `buf` is NULL or points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_embed_send_headers(
    s: *mut Stream,
    buf: *const u8,
    len: c_uint,
    end_stream: c_int,
) -> c_int {
    if s.is_null() || (buf.is_null() && len > 0) {
        return -1;
    }
    let Some(fields) = parse_field_block(raw_bytes(buf, len)) else { return -1 };
    with_stream(s, -1, |s| stream::send_headers(s, &fields, end_stream != 0).map_or(-1, |()| 0))
}

/// The connection's remote address as text ("ip" and port), for requestIP.
///
/// # Safety
/// `s` is NULL or a live stream; `buf` is NULL or points to `cap` writable bytes; `port` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn us_quic_embed_remote_address(
    s: *mut Stream,
    buf: *mut c_char,
    cap: c_uint,
    port: *mut c_int,
) -> c_int {
    let Some(s) = s.as_ref() else { return -1 };
    let addr = (*crate::peer_context::of_stream(s)).peer_addr;
    if !port.is_null() {
        *port = c_int::from(addr.port());
    }
    let text = addr.ip().to_canonical().to_string();
    if buf.is_null() || cap as usize <= text.len() {
        return -1;
    }
    std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
    *buf.add(text.len()) = 0;
    text.len() as c_int
}

/// A header block in the embed format: repeated [u32 name len][name][u32 value len][value].
fn parse_field_block(data: &[u8]) -> Option<Vec<crate::http3::FieldRef<'_>>> {
    let mut fields = Vec::new();
    let mut off = 0usize;
    let next = |off: &mut usize| -> Option<&[u8]> {
        let n = u32::from_ne_bytes(data.get(*off..*off + 4)?.try_into().ok()?) as usize;
        let v = data.get(*off + 4..*off + 4 + n)?;
        *off += 4 + n;
        Some(v)
    };
    while off < data.len() {
        let name = next(&mut off)?;
        let value = next(&mut off)?;
        fields.push(crate::http3::FieldRef { name, value });
    }
    Some(fields)
}

/// Registers a static response (Bun.serve's `routes: { path: Response }`): a GET
/// or HEAD of `path` is answered by the engine. `block` holds the response fields
/// (":status" first, no date/content-length: the engine adds them). 0 or -1.
///
/// # Safety
/// `ctx` is NULL or a live context; `path` is NULL or points to `path_len` readable bytes; `block` is NULL or points to `block_len` readable bytes; `body` is NULL or points to `body_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_embed_add_static_route(
    ctx: *mut Context,
    path: *const u8,
    path_len: c_uint,
    block: *const u8,
    block_len: c_uint,
    body: *const u8,
    body_len: c_uint,
) -> c_int {
    let Some(ctx) = ctx.as_mut() else { return -1 };
    let path = raw_bytes(path, path_len);
    let Some(fields) = parse_field_block(raw_bytes(block, block_len)) else { return -1 };
    if !path.starts_with(b"/") || fields.first().is_none_or(|f| f.name != b":status") {
        return -1;
    }
    let fields = fields.iter().map(|f| (f.name.to_vec(), f.value.to_vec())).collect();
    let response = StaticResponse { fields, body: raw_bytes(body, body_len).to_vec() };
    static_routes(ctx).insert(path.to_vec(), response);
    0
}

/// The context's static routes, installed as its request-head hook on first use.
fn static_routes(ctx: &mut Context) -> &mut StaticRoutes {
    let installed = ctx.request_head_hook.as_deref().is_some_and(|h| (h as &dyn Any).is::<StaticRoutes>());
    if !installed {
        ctx.request_head_hook = Some(Box::new(StaticRoutes::default()));
    }
    let hook = ctx.request_head_hook.as_deref_mut().expect("installed above");
    (hook as &mut dyn Any)
        .downcast_mut::<StaticRoutes>()
        .expect("the request-head hook of a context is its static routes")
}

/// Forgets every static route (before registering a reloaded set).
///
/// # Safety
/// `ctx` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn us_quic_embed_clear_static_routes(ctx: *mut Context) {
    if let Some(ctx) = ctx.as_mut() {
        // No hook at all when there are no routes: request heads skip it.
        ctx.request_head_hook = None;
    }
}

/// Headers, a small body and FIN in one call (a Response whose bytes are known):
/// one crossing instead of send_headers + write + shutdown. 0 or -1.
///
/// # Safety
/// `s` is NULL or a live stream; `block` is NULL or points to `block_len` readable bytes; `body` is NULL or points to `body_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn us_quic_embed_respond(
    s: *mut Stream,
    block: *const u8,
    block_len: c_uint,
    body: *const u8,
    body_len: c_uint,
) -> c_int {
    if s.is_null() || (block.is_null() && block_len > 0) || (body.is_null() && body_len > 0) {
        return -1;
    }
    let Some(fields) = parse_field_block(raw_bytes(block, block_len)) else { return -1 };
    let body = raw_bytes(body, body_len);
    with_stream(s, -1, |s| stream::respond_whole(s, &fields, body).map_or(-1, |()| 0))
}
