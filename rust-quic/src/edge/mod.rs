//! The edge between the protocol core and the world: the only place that
//! calls the application back, the only place that talks to the driver (bind,
//! send, close), and the only place that frees.
//!
//! Every entry point into the engine (the driver's I/O and timer steps, the
//! C ABI's calls) runs inside an engine frame: `enter` ... `leave`. The core
//! queues events on its context (events.rs) and never calls out; leaving the
//! outermost frame drains the queue into the quic.h callbacks. A callback may
//! call the engine again: that nested frame only queues, and the outer drain
//! delivers what it queued, in order. Objects closed meanwhile are parked in the
//! sweep and freed only by `sweep_if_idle`, from the driver's own steps, when no
//! frame is on the stack. `dispatch.rs`: events into callbacks; `io.rs`: the driver.

mod dispatch;
mod io;

use std::cmp::Reverse;
use std::ffi::c_void;
use std::net::SocketAddr;
use std::time::Instant;

use crate::client::{self, Connect, PendingConnect, Target};
use crate::connection;
use crate::context::{Context, TimerEntry};
use crate::handles::ConnectionHandle;
use crate::listen_socket::{self, ListenSocket, Route};
use crate::peer_context::{self, PeerContext};
use crate::stream::{self, Stream};

use dispatch::dispatch;
pub use dispatch::set_engine_thread;
use io::{close_released_sockets, close_socket, resend_blocked, send_to, send_waiting, write_out};
pub use io::{flush, listen};

/// # Safety
/// `ctx` is a live context.
pub unsafe fn enter(ctx: *mut Context) {
    (*ctx).depth += 1;
}

/// Leaves an engine frame; leaving the outermost one delivers the queued
/// events. Nothing is freed here: an API call's caller may still hold pointers
/// to what its callbacks closed.
///
/// # Safety
/// `ctx` is a live context.
pub unsafe fn leave(ctx: *mut Context) {
    if (*ctx).depth == 1 {
        dispatch(ctx);
        detach_finished(ctx);
        close_released_sockets(ctx);
    }
    (*ctx).depth -= 1;
}

/// Runs `f` in an engine frame of `ctx`.
///
/// # Safety
/// `ctx` is a live context.
pub unsafe fn call<R>(ctx: *mut Context, f: impl FnOnce() -> R) -> R {
    enter(ctx);
    let r = f();
    leave(ctx);
    r
}

/// The sweep, for the driver's entry points (loop post, end of an I/O batch).
///
/// # Safety
/// `ctx` is a live context. When no frame is on the stack, objects closed
/// before the call are dangling after it: the caller holds none of them.
pub unsafe fn sweep_if_idle(ctx: *mut Context) {
    // Held events name objects the host has yet to hear of (or hear closed).
    if (*ctx).depth == 0 && (*ctx).held.is_empty() {
        debug_assert!((*ctx).events.is_empty(), "events left undelivered");
        close_released_sockets(ctx);
        free_parked(ctx);
    }
}

/// On the host's thread: delivers what the context's engine thread held for it
/// (see dispatch.rs), in an engine frame.
///
/// # Safety
/// `ctx` is a live context; no engine thread runs it meanwhile.
pub unsafe fn deliver_held(ctx: *mut Context) {
    if (*ctx).held.is_empty() {
        return;
    }
    enter(ctx);
    dispatch::deliver_held(ctx);
    leave(ctx);
}

/// Sockets let go of the connections that finished (a socket closing with its
/// last connection is released, so its port is free when this frame returns).
///
/// # Safety
/// `ctx` is a live context.
unsafe fn detach_finished(ctx: *mut Context) {
    for pc in std::mem::take(&mut (*ctx).finished) {
        listen_socket::detach(PeerContext::from_handle(pc));
    }
}

/// Frees every parked object (see `context::Parked`). Streams first: they
/// point at their connection. Only at depth zero, with the event queue empty.
///
/// # Safety
/// `ctx` is a live context with no engine frame on the stack (depth zero):
/// every parked object is dangling when this returns.
unsafe fn free_parked(ctx: *mut Context) {
    // Frames leave nothing to detach; a finalize outside any frame may.
    detach_finished(ctx);
    close_released_sockets(ctx);
    let parked = &mut (*ctx).sweep;
    if parked.streams.is_empty() && parked.connections.is_empty() && parked.listen_sockets.is_empty() {
        return;
    }
    for s in parked.streams.drain(..) {
        let mut stream = Box::from_raw(Stream::from_handle(s));
        stream::recycle_headers(&mut stream, &mut (*ctx).spare_fields);
    }
    if !(*ctx).sweep.connections.is_empty() {
        // Every parked connection is finalized, and every finalized one is
        // parked: one pass over each list, however many go (no O(n²) churn).
        let finalized = |c: &ConnectionHandle| (*PeerContext::from_handle(*c)).finalized();
        (*ctx).connections.retain(|c| !finalized(c));
        (*ctx).timers.heap.retain(|Reverse(e)| !finalized(&e.conn));
        (*ctx).timers.stale.retain(|c| !finalized(c));
        for pc in (*ctx).sweep.connections.drain(..) {
            drop(Box::from_raw(PeerContext::from_handle(pc)));
        }
        (*ctx).stats.connections_active = (*ctx).connections.len() as u64;
    }
    for ls in std::mem::take(&mut (*ctx).sweep.listen_sockets) {
        (*ctx).listen_sockets.retain(|&l| l != ls);
        drop(Box::from_raw(ListenSocket::from_handle(ls)));
    }
}

/// Sends CONNECTION_CLOSE and finalizes without waiting for the draining period.
///
/// # Safety
/// `pc` is a live connection.
unsafe fn close_now(pc: *mut PeerContext, app: bool, code: u64) {
    if (*pc).finalized() {
        return;
    }
    let _ = (*pc).core.conn.close(app, code, b"");
    flush(pc);
    peer_context::finalize(pc);
}

/// us_quic_socket_context_connect: a connection now (an IP literal; its
/// Initial is sent before this returns) or a pending connect to resolve.
///
/// # Safety
/// `ctx` is a live context.
pub unsafe fn connect(
    ctx: *mut Context,
    host: &str,
    port: u16,
    sni: Option<&str>,
    verify: bool,
    user: *mut c_void,
) -> Result<Connect, String> {
    call(ctx, || {
        let r = match client::target(ctx, host, port, sni, verify, user) {
            Ok(Target::Address(peer, name)) => start_client(ctx, peer, &name, verify, user).map(Connect::Now),
            Ok(Target::Resolve(pending)) => Ok(Connect::Pending(pending)),
            Err(e) => Err(e),
        };
        run_dirty(ctx);
        r
    })
}

/// A client connection on a socket of its own.
///
/// # Safety
/// `ctx` is a live context.
unsafe fn start_client(
    ctx: *mut Context,
    peer: SocketAddr,
    name: &str,
    verify: bool,
    user: *mut c_void,
) -> Result<*mut PeerContext, String> {
    let bind = if peer.is_ipv4() { "0.0.0.0" } else { "::" };
    let ls = listen(ctx, Some(bind), 0, 0, (*ctx).settings.stream_ext_size, Some(peer))
        .map_err(|e| format!("bind failed: {}", std::io::Error::from_raw_os_error(e)))?;
    client::start(ctx, ls, peer, name, verify, user)
}

/// Starts the connection of a pending connect whose address was set.
///
/// # Safety
/// `pending.ctx` is a live context.
pub unsafe fn connect_resolved(pending: &PendingConnect) -> Result<*mut PeerContext, String> {
    let ctx = pending.ctx;
    call(ctx, || {
        let r = client::resolved_target(pending)
            .and_then(|(peer, name)| start_client(ctx, peer, &name, pending.verify, pending.user));
        run_dirty(ctx);
        r
    })
}

/// Feeds one received datagram to the core. `data` is decrypted in place.
///
/// # Safety
/// `ls` is a live listen socket.
pub unsafe fn recv_datagram(ls: *mut ListenSocket, data: &mut [u8], from: SocketAddr, to: SocketAddr) {
    let route = call((*ls).ctx, || listen_socket::route_datagram(ls, data, from, to));
    if let Route::Reply { to: peer, packets } = route {
        for p in packets {
            send_to(ls, peer, &p, p.len());
        }
    }
}

/// After a batch of datagrams: run what they made ready and send the answers.
/// The context's connections, live or parked (a copy: callbacks may add and close).
///
/// # Safety
/// `ctx` is a live context.
unsafe fn connections(ctx: *mut Context) -> Vec<*mut PeerContext> {
    (*ctx).connections.iter().map(|&h| PeerContext::from_handle(h)).collect()
}

/// # Safety
/// `ctx` is a live context.
unsafe fn listen_sockets(ctx: *mut Context) -> Vec<*mut ListenSocket> {
    (*ctx).listen_sockets.iter().map(|&h| ListenSocket::from_handle(h)).collect()
}

/// The earliest deadline of any of the context's connections (the driver arms its timer for it).
///
/// # Safety
/// `ctx` is a live context.
pub unsafe fn next_timeout(ctx: *mut Context) -> Option<Instant> {
    refresh_timers(ctx);
    let next = earliest_timer(ctx);
    #[cfg(feature = "testing")]
    {
        // The heap may run early (a deadline that moved later), never late:
        // a deadline that moved earlier unnoticed is a missed mark_timer_stale.
        let exact = (*ctx)
            .connections
            .iter()
            .filter_map(|&pc| peer_context::next_deadline(&*PeerContext::from_handle(pc)))
            .min();
        assert!(exact.is_none_or(|e| next.is_some_and(|n| n <= e)), "a deadline moved earlier unnoticed");
    }
    next
}

/// Recomputes the deadlines of the connections marked stale, pushing an entry
/// for each that moved. The heap is rebuilt from its live entries when stale
/// ones outnumber them, so it stays within a small multiple of the connections.
///
/// # Safety
/// `ctx` is a live context.
unsafe fn refresh_timers(ctx: *mut Context) {
    let timers = &mut (*ctx).timers;
    for handle in timers.stale.drain(..) {
        let pc = PeerContext::from_handle(handle);
        (*pc).core.timer_stale = false;
        let at = peer_context::next_deadline(&*pc);
        if at != (*pc).core.timer_at {
            (*pc).core.timer_at = at;
            if let Some(at) = at {
                timers.heap.push(Reverse(TimerEntry { at, conn: handle }));
            }
        }
    }
    if timers.heap.len() > 2 * (*ctx).connections.len() + 64 {
        timers.heap.retain(|Reverse(e)| is_live(e));
    }
}

/// An entry is live while its connection still waits for exactly that deadline.
///
/// # Safety
/// The entry's connection is not freed (the sweep purges entries first).
unsafe fn is_live(e: &TimerEntry) -> bool {
    (*PeerContext::from_handle(e.conn)).core.timer_at == Some(e.at)
}

/// The earliest live deadline, dropping stale entries from the top.
///
/// # Safety
/// `ctx` is a live context.
unsafe fn earliest_timer(ctx: *mut Context) -> Option<Instant> {
    let heap = &mut (*ctx).timers.heap;
    while let Some(Reverse(top)) = heap.peek() {
        if is_live(top) {
            return Some(top.at);
        }
        heap.pop();
    }
    None
}

/// # Safety
/// `ctx` is a live context.
pub unsafe fn after_io(ctx: *mut Context) {
    call(ctx, || run_dirty(ctx));
    sweep_if_idle(ctx);
}

/// Services and flushes every connection marked dirty. Between the two the
/// application hears what servicing found, so what it answers in its callbacks
/// leaves in the same packets as the ACKs. Bounded passes, so a callback that
/// keeps re-dirtying its own connection cannot spin the loop.
///
/// # Safety
/// `ctx` is a live context.
pub unsafe fn run_dirty(ctx: *mut Context) {
    for _ in 0..8 {
        if (*ctx).dirty.is_empty() {
            break;
        }
        // The pass takes the dirty list; the two lists swap, so neither is reallocated.
        let mut batch = std::mem::take(&mut (*ctx).servicing);
        std::mem::swap(&mut batch, &mut (*ctx).dirty);
        for pc in batch.iter().map(|&h| PeerContext::from_handle(h)) {
            (*pc).core.in_dirty = false;
            if !(*pc).finalized() {
                peer_context::service(pc);
                listen_socket::sync_routes(pc);
            }
        }
        dispatch(ctx);
        for pc in batch.drain(..).map(PeerContext::from_handle) {
            if (*pc).finalized() {
                continue;
            }
            if (*ctx).defer_answers && (*pc).core.awaiting_answers {
                if !(*pc).in_deferred {
                    (*pc).in_deferred = true;
                    (*ctx).deferred.push(PeerContext::handle(pc));
                }
                continue;
            }
            write_out(pc);
            peer_context::finalize_if_closed(pc);
        }
        (*ctx).servicing = batch;
        send_waiting(ctx);
    }
    dispatch(ctx);
    if (*ctx).dirty.is_empty() {
        (*ctx).flush_pending = false;
    }
}

/// Deferred connections go back to the dirty list, to be flushed now.
///
/// # Safety
/// `ctx` is a live context.
unsafe fn take_deferred(ctx: *mut Context) {
    if (*ctx).defer_answers {
        return;
    }
    for pc in std::mem::take(&mut (*ctx).deferred).into_iter().map(PeerContext::from_handle) {
        (*pc).in_deferred = false;
        (*pc).core.awaiting_answers = false;
        peer_context::mark_dirty(pc);
    }
}

/// Expires timers, services and flushes, sweeps. The driver calls it once per
/// loop iteration and when the timer from `next_timeout` fires.
///
/// # Safety
/// `ctx` is a live context.
pub unsafe fn process(ctx: *mut Context, now: Instant) {
    enter(ctx);
    take_deferred(ctx);
    // Only the connections whose deadline came (the heap's top), not all of them.
    refresh_timers(ctx);
    while let Some(&Reverse(top)) = (*ctx).timers.heap.peek() {
        if top.at > now {
            break;
        }
        (*ctx).timers.heap.pop();
        if !is_live(&top) {
            continue;
        }
        let pc = PeerContext::from_handle(top.conn);
        (*pc).core.timer_at = None;
        connection::mark_timer_stale(&mut (*pc).core);
        if !(*pc).finalized() {
            peer_context::on_tick(pc, now);
        }
    }
    run_dirty(ctx);
    leave(ctx);
    sweep_if_idle(ctx);
}

/// Sends only, when something was written since the last flush. (No sweep:
/// the embedder may call this from inside its own callbacks.)
///
/// # Safety
/// `ctx` is a live context.
pub unsafe fn flush_if_pending(ctx: *mut Context) {
    take_deferred(ctx);
    if (*ctx).flush_pending {
        call(ctx, || run_dirty(ctx));
    }
}

/// GOAWAY everywhere, accept nothing new; connections close once drained.
///
/// # Safety
/// `ctx` is a live context.
pub unsafe fn shutdown(ctx: *mut Context) {
    call(ctx, || {
        (*ctx).shutting_down = true;
        for pc in connections(ctx) {
            peer_context::begin_goaway(pc);
        }
        run_dirty(ctx);
    });
}

/// Closes everything now. The memory goes when the driver calls `destroy`
/// (immediately when no callback of this context is running).
///
/// # Safety
/// `ctx` is a live context.
pub unsafe fn request_free(ctx: *mut Context) {
    if (*ctx).free_requested {
        return;
    }
    // What the application has yet to hear of comes before the closes.
    deliver_held(ctx);
    call(ctx, || {
        (*ctx).free_requested = true;
        (*ctx).shutting_down = true;
        for pc in connections(ctx) {
            close_now(pc, true, crate::http3::H3_NO_ERROR);
        }
        for ls in listen_sockets(ctx) {
            listen_socket::close(ls);
        }
    });
}

/// Frees a context whose free was requested. The caller guarantees no engine
/// frame of it is on the stack.
///
/// # Safety
/// `ctx` is a live context whose free was requested, with no engine frame on
/// the stack; it and everything it owns are dangling when this returns.
pub unsafe fn destroy(ctx: *mut Context) {
    debug_assert!((*ctx).free_requested && (*ctx).depth == 0);
    close_released_sockets(ctx);
    free_parked(ctx);
    for ls in std::mem::take(&mut (*ctx).listen_sockets).into_iter().map(ListenSocket::from_handle) {
        close_socket(ctx, ls);
        drop(Box::from_raw(ls));
    }
    drop(Box::from_raw(ctx));
}

/// The driver reports a socket error (ICMP port or host unreachable on a
/// client's connected socket): the connection fails now instead of waiting for
/// the handshake or idle timeout.
///
/// # Safety
/// `ls` is a live listen socket.
pub unsafe fn socket_error(ls: *mut ListenSocket, errno: i32) {
    let ctx = (*ls).ctx;
    let Some(pc) = (*ls).client_conn else { return };
    call(ctx, || peer_context::fail_with_socket_error(pc, errno));
    sweep_if_idle(ctx);
}

/// # Safety
/// `ls` is a live listen socket.
pub unsafe fn socket_writable(ls: *mut ListenSocket) {
    let ctx = (*ls).ctx;
    call(ctx, || {
        if resend_blocked(ls) {
            for pc in connections(ctx) {
                if ListenSocket::from_handle((*pc).socket) == ls {
                    peer_context::mark_dirty(pc);
                }
            }
            run_dirty(ctx);
        }
    });
    sweep_if_idle(ctx);
}
