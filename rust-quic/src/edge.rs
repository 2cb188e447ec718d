//! The edge between the protocol core and the application: the only place
//! that calls the application back, and the only place that frees.
//!
//! Every entry point into the engine (the driver's I/O and timer steps, the
//! C ABI's calls) runs inside an engine frame: `enter` ... `leave`. The core
//! queues events on its context (events.rs) and never calls out; leaving the
//! outermost frame drains the queue into the quic.h callbacks. A callback may
//! call the engine again: that nested frame only queues, and the outer drain
//! delivers what it queued, in order. Objects closed meanwhile are parked in the
//! sweep and freed only by `sweep_if_idle`, from the driver's own steps, when no
//! frame is on the stack.

use std::ffi::{c_int, c_uint, c_void};
use std::net::SocketAddr;
use std::time::Instant;

use crate::client::{self, Connect, PendingConnect};
use crate::context::{self, Context};
use crate::events::Event;
use crate::listen_socket::{self, ListenSocket};
use crate::peer_context::{self, DatagramOutput, PeerContext};
use crate::stream::{self, ReadOutput, Stream};
use crate::sweep::Sweep;

pub unsafe fn enter(ctx: *mut Context) {
    (*ctx).depth += 1;
}

/// Leaves an engine frame; leaving the outermost one delivers the queued
/// events. Nothing is freed here: an API call's caller may still hold pointers
/// to what its callbacks closed.
pub unsafe fn leave(ctx: *mut Context) {
    if (*ctx).depth == 1 {
        dispatch(ctx);
    }
    (*ctx).depth -= 1;
}

/// Runs `f` in an engine frame of `ctx`.
pub unsafe fn call<R>(ctx: *mut Context, f: impl FnOnce() -> R) -> R {
    enter(ctx);
    let r = f();
    leave(ctx);
    r
}

/// The sweep, for the driver's entry points (loop post, end of an I/O batch).
pub unsafe fn sweep_if_idle(ctx: *mut Context) {
    if (*ctx).depth == 0 {
        debug_assert!((*ctx).events.is_empty(), "events left undelivered");
        Sweep::run(ctx);
    }
}

/// Delivers every queued event, including those its callbacks queue. Inside a
/// callback (a nested frame) it returns at once: the running drain goes on.
unsafe fn dispatch(ctx: *mut Context) {
    if (*ctx).dispatching {
        return;
    }
    (*ctx).dispatching = true;
    while let Some(event) = (*ctx).events.pop() {
        deliver(ctx, event);
    }
    (*ctx).dispatching = false;
}

unsafe fn deliver(ctx: *mut Context, event: Event) {
    let cb = (*ctx).callbacks;
    match event {
        Event::ConnectionOpened(pc) => {
            if let Some(f) = cb.on_open {
                f(pc);
            }
        }
        Event::HandshakeDone(pc, ok) => {
            if let Some(f) = cb.on_hsk_done {
                f(pc, c_int::from(ok));
            }
        }
        Event::Settings(pc) => {
            if let Some(f) = cb.on_settings {
                f(pc);
            }
        }
        Event::Goaway(pc) => {
            if let Some(f) = cb.on_goaway {
                f(pc);
            }
        }
        Event::ConnectionClosed(pc) => {
            if let Some(f) = cb.on_close {
                f(pc);
            }
        }
        Event::StreamOpened { stream, local } => {
            if let Some(f) = cb.on_stream_open {
                f(stream, c_int::from(local));
            }
        }
        Event::StreamReadable(s) => deliver_reads(ctx, s),
        Event::StreamWritable(s) => {
            if let (false, Some(f)) = ((*s).finished, cb.on_stream_writable) {
                f(s);
            }
        }
        Event::StreamClosed(s) => {
            if let (true, Some(f)) = ((*s).announced, cb.on_stream_close) {
                f(s);
            }
            (*ctx).sweep.streams.push(s);
        }
        Event::DatagramsReadable(pc) => deliver_datagrams(ctx, pc),
    }
}

/// Pulls a readable stream until it has nothing more for the application now
/// (or the application paused or closed it in a callback).
unsafe fn deliver_reads(ctx: *mut Context, s: *mut Stream) {
    while let Some(output) = stream::poll_read(s) {
        let cb = (*ctx).callbacks;
        match output {
            ReadOutput::Headers { announce } => {
                if announce {
                    if let Some(f) = cb.on_stream_open {
                        f(s, 0);
                    }
                    // Closed in on_stream_open: it hears nothing more but its close.
                    if (*s).finished || (*(*s).conn).finalized {
                        continue;
                    }
                }
                if let Some(f) = cb.on_stream_headers {
                    f(s);
                }
            }
            ReadOutput::Data { ptr, len, fin } => {
                if let Some(f) = cb.on_stream_data {
                    f(s, ptr.cast(), len as c_uint, c_int::from(fin));
                }
            }
        }
    }
}

unsafe fn deliver_datagrams(ctx: *mut Context, pc: *mut PeerContext) {
    let mut buf = (*ctx).take_read_buffer();
    while let Some(datagram) = peer_context::poll_datagram(pc, &mut buf) {
        let cb = (*ctx).callbacks;
        match datagram {
            DatagramOutput::Connection { len } => {
                if let Some(f) = cb.on_datagram {
                    f(pc, buf.as_ptr().cast(), len as c_uint);
                }
            }
            DatagramOutput::Stream { stream, start, len } => {
                if let Some(f) = cb.on_stream_datagram {
                    f(stream, buf[start..].as_ptr().cast(), len as c_uint);
                }
            }
        }
    }
    (*ctx).give_read_buffer(buf);
}

/// us_quic_socket_context_connect: a connection now (an IP literal; its
/// Initial is sent before this returns) or a pending connect to resolve.
pub unsafe fn connect(
    ctx: *mut Context,
    host: &str,
    port: u16,
    sni: Option<&str>,
    verify: bool,
    user: *mut c_void,
) -> Result<Connect, String> {
    call(ctx, || {
        let r = client::connect(ctx, host, port, sni, verify, user);
        run_dirty(ctx);
        r
    })
}

/// Starts the connection of a pending connect whose address was set.
pub unsafe fn connect_resolved(pending: &PendingConnect) -> Result<*mut PeerContext, String> {
    let ctx = pending.ctx;
    call(ctx, || {
        let r = client::resolved(pending);
        run_dirty(ctx);
        r
    })
}

/// Feeds one received datagram to the core. `data` is decrypted in place.
pub unsafe fn recv_datagram(ls: *mut ListenSocket, data: &mut [u8], from: SocketAddr, to: SocketAddr) {
    call((*ls).ctx, || listen_socket::route_datagram(ls, data, from, to));
}

/// After a batch of datagrams: run what they made ready and send the answers.
pub unsafe fn after_io(ctx: *mut Context) {
    call(ctx, || run_dirty(ctx));
    sweep_if_idle(ctx);
}

/// Services and flushes every connection marked dirty. Between the two the
/// application hears what servicing found, so what it answers in its callbacks
/// leaves in the same packets as the ACKs. Bounded passes, so a callback that
/// keeps re-dirtying its own connection cannot spin the loop.
pub unsafe fn run_dirty(ctx: *mut Context) {
    for _ in 0..8 {
        if (*ctx).dirty.is_empty() {
            break;
        }
        let batch = std::mem::take(&mut (*ctx).dirty);
        for &pc in &batch {
            (*pc).in_dirty = false;
            if !(*pc).finalized {
                peer_context::service(pc);
            }
        }
        dispatch(ctx);
        for pc in batch {
            if (*pc).finalized {
                continue;
            }
            if (*ctx).defer_answers && (*pc).awaiting_answers {
                if !(*pc).in_deferred {
                    (*pc).in_deferred = true;
                    (*ctx).deferred.push(pc);
                }
                continue;
            }
            peer_context::flush(pc);
            peer_context::finalize_if_closed(pc);
        }
    }
    dispatch(ctx);
    if (*ctx).dirty.is_empty() {
        (*ctx).flush_pending = false;
    }
}

/// Deferred connections go back to the dirty list, to be flushed now.
unsafe fn take_deferred(ctx: *mut Context) {
    if (*ctx).defer_answers {
        return;
    }
    for pc in std::mem::take(&mut (*ctx).deferred) {
        (*pc).in_deferred = false;
        (*pc).awaiting_answers = false;
        context::mark_dirty(pc);
    }
}

/// Expires timers, services and flushes, sweeps. The driver calls it once per
/// loop iteration and when the timer from `context::next_timeout` fires.
pub unsafe fn process(ctx: *mut Context, now: Instant) {
    enter(ctx);
    take_deferred(ctx);
    for pc in (*ctx).connections.clone() {
        if !(*pc).finalized {
            peer_context::on_tick(pc, now);
        }
    }
    run_dirty(ctx);
    leave(ctx);
    sweep_if_idle(ctx);
}

/// Sends only, when something was written since the last flush. (No sweep:
/// the embedder may call this from inside its own callbacks.)
pub unsafe fn flush_if_pending(ctx: *mut Context) {
    take_deferred(ctx);
    if (*ctx).flush_pending {
        call(ctx, || run_dirty(ctx));
    }
}

/// GOAWAY everywhere, accept nothing new; connections close once drained.
pub unsafe fn shutdown(ctx: *mut Context) {
    call(ctx, || {
        (*ctx).shutting_down = true;
        for pc in (*ctx).connections.clone() {
            peer_context::begin_goaway(pc);
        }
        run_dirty(ctx);
    });
}

/// Closes everything now. The memory goes when the driver calls `destroy`
/// (immediately when no callback of this context is running).
pub unsafe fn request_free(ctx: *mut Context) {
    if (*ctx).free_requested {
        return;
    }
    call(ctx, || {
        (*ctx).free_requested = true;
        (*ctx).shutting_down = true;
        for pc in (*ctx).connections.clone() {
            peer_context::close_now(pc, true, crate::http3::H3_NO_ERROR);
        }
        for ls in (*ctx).listen_sockets.clone() {
            listen_socket::close(ls);
        }
    });
}

/// Frees a context whose free was requested. The caller guarantees no engine
/// frame of it is on the stack.
pub unsafe fn destroy(ctx: *mut Context) {
    debug_assert!((*ctx).free_requested && (*ctx).depth == 0);
    Sweep::run(ctx);
    for ls in std::mem::take(&mut (*ctx).listen_sockets) {
        listen_socket::release_now(ctx, ls);
    }
    drop(Box::from_raw(ctx));
}

/// The driver reports a socket error (ICMP port or host unreachable on a
/// client's connected socket): the connection fails now instead of waiting for
/// the handshake or idle timeout.
pub unsafe fn socket_error(ls: *mut ListenSocket, errno: i32) {
    let ctx = (*ls).ctx;
    let Some(pc) = (*ls).client_conn else { return };
    call(ctx, || peer_context::fail_with_socket_error(pc, errno));
    sweep_if_idle(ctx);
}

pub unsafe fn socket_writable(ls: *mut ListenSocket) {
    let ctx = (*ls).ctx;
    call(ctx, || {
        if listen_socket::resend_blocked(ls) {
            for pc in (*ctx).connections.clone() {
                if (*pc).socket == ls {
                    context::mark_dirty(pc);
                }
            }
            run_dirty(ctx);
        }
    });
    sweep_if_idle(ctx);
}
