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
//! frame is on the stack.

use std::ffi::{c_int, c_uint, c_void};
use std::net::SocketAddr;
use std::time::Instant;

use crate::client::{self, Connect, PendingConnect, Target};
use crate::context::{self, Context};
use crate::driver::SendOutcome;
use crate::events::Event;
use crate::listen_socket::{self, ListenSocket, Route};
use crate::outbox::Outbox;
use crate::peer_context::{self, DatagramOutput, PeerContext};
use crate::stream::{self, ReadOutput, Stream};

pub unsafe fn enter(ctx: *mut Context) {
    (*ctx).depth += 1;
}

/// Leaves an engine frame; leaving the outermost one delivers the queued
/// events. Nothing is freed here: an API call's caller may still hold pointers
/// to what its callbacks closed.
pub unsafe fn leave(ctx: *mut Context) {
    if (*ctx).depth == 1 {
        dispatch(ctx);
        close_released_sockets(ctx);
    }
    (*ctx).depth -= 1;
}

/// UDP sockets of listen sockets the core is done with close when the
/// outermost frame unwinds, so a port is free again when the call that freed it
/// returns; the objects themselves go with the sweep.
unsafe fn close_released_sockets(ctx: *mut Context) {
    for &ls in &(*ctx).sweep.listen_sockets {
        close_socket(ctx, ls);
    }
}

unsafe fn close_socket(ctx: *mut Context, ls: *mut ListenSocket) {
    if !(*ls).handle_closed {
        (*ls).handle_closed = true;
        (*ctx).driver.close((*ls).handle);
    }
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
        close_released_sockets(ctx);
        free_parked(ctx);
    }
}

/// Frees every parked object (see `context::Parked`). Streams first: they
/// point at their connection. Only at depth zero, with the event queue empty.
unsafe fn free_parked(ctx: *mut Context) {
    let parked = &mut (*ctx).sweep;
    if parked.streams.is_empty() && parked.connections.is_empty() && parked.listen_sockets.is_empty() {
        return;
    }
    for s in std::mem::take(&mut parked.streams) {
        drop(Box::from_raw(s));
    }
    for pc in std::mem::take(&mut (*ctx).sweep.connections) {
        (*ctx).connections.retain(|&c| c != pc);
        drop(Box::from_raw(pc));
    }
    for ls in std::mem::take(&mut (*ctx).sweep.listen_sockets) {
        (*ctx).listen_sockets.retain(|&l| l != ls);
        drop(Box::from_raw(ls));
    }
    (*ctx).stats.connections_active = (*ctx).connections.iter().filter(|&&c| !(*c).finalized).count() as u64;
}

/// Binds a UDP socket for `ctx` (`connect_to`: a client's own socket,
/// connected to its server). Returns the errno of a failed bind.
pub unsafe fn listen(
    ctx: *mut Context,
    host: Option<&str>,
    port: u16,
    flags: i32,
    stream_ext_size: usize,
    connect_to: Option<SocketAddr>,
) -> Result<*mut ListenSocket, i32> {
    let ls = listen_socket::new(ctx, stream_ext_size);
    match (*ctx).driver.bind(ls.cast(), host, port, flags, connect_to) {
        Ok((handle, local)) => {
            listen_socket::bound(ls, handle, local);
            Ok(ls)
        }
        Err(e) => {
            drop(Box::from_raw(ls));
            Err(e)
        }
    }
}

/// Sends what the connection has to send: its packets go out in GSO batches
/// through the driver; then an application close waiting for this flush.
pub unsafe fn flush(pc: *mut PeerContext) {
    transmit(pc);
    if peer_context::apply_deferred_close(pc) {
        transmit(pc);
    }
}

unsafe fn transmit(pc: *mut PeerContext) {
    let ls = (*pc).socket;
    if (*pc).finalized || listen_socket::is_blocked(ls) {
        return;
    }
    let ctx = (*pc).ctx;
    let mut out = std::mem::take(&mut (*ctx).outbox);
    // After a local close quiche should send one CONNECTION_CLOSE and stop. When it
    // cannot (an application close while the peer still awaits handshake packets,
    // which carry no application close) it may produce packets without end; the
    // close is bounded here and the draining or idle timer ends the connection.
    let mut rounds_after_close = 4u32;
    loop {
        let more = peer_context::poll_transmits(pc, &mut out);
        let sent = send_outbox(ls, &out);
        out.clear();
        if !more || !sent {
            break;
        }
        if (*pc).conn.local_error().is_some() {
            rounds_after_close -= 1;
            if rounds_after_close == 0 {
                break;
            }
        }
    }
    (*ctx).outbox = out;
}

/// Sends every batch of `out`; false when the socket blocked (what it did
/// not take is queued for `socket_writable`).
unsafe fn send_outbox(ls: *mut ListenSocket, out: &Outbox) -> bool {
    let mut batches = out.batches().iter();
    for b in batches.by_ref() {
        if !send_to(ls, b.to, out.bytes(b), b.segment) {
            for rest in batches {
                listen_socket::queue_blocked(ls, rest.to, out.bytes(rest), rest.segment);
            }
            return false;
        }
    }
    true
}

/// One GSO batch to the driver; false when the socket is blocked (the rest
/// is queued and goes out from `resend_blocked`).
unsafe fn send_to(ls: *mut ListenSocket, to: SocketAddr, data: &[u8], segment: usize) -> bool {
    let ctx = (*ls).ctx;
    if (*ls).handle_closed {
        return true;
    }
    if listen_socket::is_blocked(ls) {
        listen_socket::queue_blocked(ls, to, data, segment);
        return false;
    }
    match (*ctx).driver.send((*ls).handle, to, data, segment) {
        SendOutcome::Sent => {
            count_sent(ctx, data.len(), segment);
            true
        }
        SendOutcome::Blocked { sent } => {
            count_sent(ctx, sent, segment);
            listen_socket::queue_blocked(ls, to, &data[sent..], segment);
            false
        }
        SendOutcome::Failed => {
            (*ctx).stats.packets_dropped += data.len().div_ceil(segment.max(1)) as u64;
            true
        }
    }
}

unsafe fn count_sent(ctx: *mut Context, bytes: usize, segment: usize) {
    (*ctx).stats.bytes_sent += bytes as u64;
    (*ctx).stats.packets_sent += bytes.div_ceil(segment.max(1)) as u64;
}

/// Retries the sends the kernel refused; true once none is left.
unsafe fn resend_blocked(ls: *mut ListenSocket) -> bool {
    let ctx = (*ls).ctx;
    while let Some(mut b) = listen_socket::take_blocked(ls) {
        if (*ls).handle_closed {
            continue;
        }
        match (*ctx).driver.send((*ls).handle, b.to, &b.data, b.segment) {
            SendOutcome::Sent => count_sent(ctx, b.data.len(), b.segment),
            SendOutcome::Blocked { sent } => {
                count_sent(ctx, sent, b.segment);
                b.data.drain(..sent);
                listen_socket::requeue_blocked(ls, b);
                return false;
            }
            SendOutcome::Failed => {}
        }
    }
    true
}

/// Sends CONNECTION_CLOSE and finalizes without waiting for the draining period.
unsafe fn close_now(pc: *mut PeerContext, app: bool, code: u64) {
    if (*pc).finalized {
        return;
    }
    let _ = (*pc).conn.close(app, code, b"");
    flush(pc);
    peer_context::finalize(pc);
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
pub unsafe fn recv_datagram(ls: *mut ListenSocket, data: &mut [u8], from: SocketAddr, to: SocketAddr) {
    let route = call((*ls).ctx, || listen_socket::route_datagram(ls, data, from, to));
    if let Route::Reply { to: peer, packets } = route {
        for p in packets {
            send_to(ls, peer, &p, p.len());
        }
    }
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
            flush(pc);
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
            close_now(pc, true, crate::http3::H3_NO_ERROR);
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
    close_released_sockets(ctx);
    free_parked(ctx);
    for ls in std::mem::take(&mut (*ctx).listen_sockets) {
        close_socket(ctx, ls);
        drop(Box::from_raw(ls));
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
        if resend_blocked(ls) {
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
