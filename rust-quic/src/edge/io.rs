//! The edge's side of the driver: binding, sending a connection's outbox as
//! GSO batches, retrying what the kernel refused, closing released sockets.

use std::net::SocketAddr;

use crate::connection;
use crate::context::Context;
use crate::driver::{BatchesSent, SendOutcome, LISTEN_REUSE_PORT};
use crate::listen_socket::{self, ListenSocket};
use crate::outbox::Outbox;
use crate::peer_context::{self, PeerContext};

/// UDP sockets of listen sockets the core is done with close when the
/// outermost frame unwinds, so a port is free again when the call that freed it
/// returns; the objects themselves go with the sweep.
///
/// # Safety
/// `ctx` is a live context.
pub(super) unsafe fn close_released_sockets(ctx: *mut Context) {
    for &ls in &(*ctx).sweep.listen_sockets {
        close_socket(ctx, ListenSocket::from_handle(ls));
    }
}

/// # Safety
/// `ctx` is a live context; `ls` is a live listen socket.
pub(super) unsafe fn close_socket(ctx: *mut Context, ls: *mut ListenSocket) {
    if (*ctx).outbox_socket == Some(ListenSocket::handle(ls)) {
        // Its last packets leave before it closes.
        send_waiting(ctx);
        (*ctx).outbox_socket = None;
    }
    if !(*ls).handle_closed {
        (*ls).handle_closed = true;
        (*ctx).driver.close((*ls).handle);
    }
}

/// Binds a UDP socket for `ctx` (`connect_to`: a client's own socket,
/// connected to its server). Returns the errno of a failed bind.
///
/// # Safety
/// `ctx` is a live context.
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
            // Several processes on one port, each issuing QUIC-LB IDs: each
            // connection's packets keep reaching its process when its client moves.
            let shared = flags & LISTEN_REUSE_PORT != 0 && connect_to.is_none();
            if shared && matches!((*ctx).settings.cids, crate::cid::CidScheme::QuicLb(_)) {
                if let Err(e) = (*ctx).driver.steer_by_server_id(handle, crate::cid::QUIC_LB_SERVER_ID_OFFSET) {
                    (*ctx).driver.close(handle);
                    drop(Box::from_raw(ls));
                    return Err(e);
                }
            }
            Ok(ls)
        }
        Err(e) => {
            drop(Box::from_raw(ls));
            Err(e)
        }
    }
}

/// Sends what the connection has to send now (with whatever waits in the outbox).
///
/// # Safety
/// `pc` is a live connection.
pub unsafe fn flush(pc: *mut PeerContext) {
    write_out(pc);
    send_waiting((*pc).core.ctx);
}

/// Writes what the connection has to send into the context's outbox, then an
/// application close waiting for this flush. The packets wait there with
/// those of every connection written out since, on the same socket, and go
/// out together from `send_waiting` (one `sendmmsg` of GSO batches), which
/// the edge calls at the end of each pass.
///
/// # Safety
/// `pc` is a live connection.
pub(super) unsafe fn write_out(pc: *mut PeerContext) {
    transmit(pc);
    if peer_context::apply_deferred_close(pc) {
        transmit(pc);
    }
    peer_context::note_early_data(pc);
}

/// # Safety
/// `pc` is a live connection.
unsafe fn transmit(pc: *mut PeerContext) {
    let ls = ListenSocket::from_handle((*pc).socket);
    if (*pc).finalized() || listen_socket::is_blocked(ls) {
        return;
    }
    let ctx = (*pc).core.ctx;
    // Sending moves quiche's timers (loss detection, the draining period).
    connection::mark_timer_stale(&mut (*pc).core);
    if (*ctx).outbox_socket != Some((*pc).socket) {
        // The outbox holds one socket's packets at a time.
        send_waiting(ctx);
        (*ctx).outbox_socket = Some((*pc).socket);
    }
    // After a local close quiche should send one CONNECTION_CLOSE and stop. When it
    // cannot (an application close while the peer still awaits handshake packets,
    // which carry no application close) it may produce packets without end; the
    // close is bounded here and the draining or idle timer ends the connection.
    let mut rounds_after_close = 4u32;
    loop {
        let mut out = std::mem::take(&mut (*ctx).outbox);
        let full = peer_context::poll_transmits(pc, &mut out);
        (*ctx).outbox = out;
        // A full outbox goes out now, and the connection goes on writing.
        if !full || !send_waiting(ctx) {
            break;
        }
        if (*pc).core.conn.local_error().is_some() {
            rounds_after_close -= 1;
            if rounds_after_close == 0 {
                break;
            }
        }
    }
}

/// Sends the packets waiting in the context's outbox; false when the socket
/// blocked (what it did not take is queued for `socket_writable`).
///
/// # Safety
/// `ctx` is a live context; the outbox's socket, if it holds packets, is live.
pub(super) unsafe fn send_waiting(ctx: *mut Context) -> bool {
    let Some(socket) = (*ctx).outbox_socket else { return true };
    if (*ctx).outbox.batches().is_empty() {
        return true;
    }
    let mut out = std::mem::take(&mut (*ctx).outbox);
    let sent = send_outbox(ListenSocket::from_handle(socket), &out);
    out.clear();
    (*ctx).outbox = out;
    sent
}

/// Sends every batch of `out` in one driver call; false when the socket
/// blocked (what it did not take is queued for `socket_writable`).
///
/// # Safety
/// `ls` is a live listen socket.
unsafe fn send_outbox(ls: *mut ListenSocket, out: &Outbox) -> bool {
    let ctx = (*ls).ctx;
    let batches = out.batches();
    if (*ls).handle_closed {
        return true;
    }
    // Behind packets the kernel refused, nothing goes out first: all is queued.
    let r = if listen_socket::is_blocked(ls) {
        BatchesSent { done: 0, next_sent: 0 }
    } else {
        (*ctx).driver.send_batches((*ls).handle, out.buffer(), batches)
    };
    for b in &batches[..r.done] {
        count_sent(ctx, b.len, b.segment);
    }
    let Some(next) = batches.get(r.done) else { return true };
    count_sent(ctx, r.next_sent, next.segment);
    listen_socket::queue_blocked(ls, next.to, &out.bytes(next)[r.next_sent..], next.segment);
    for rest in &batches[r.done + 1..] {
        listen_socket::queue_blocked(ls, rest.to, out.bytes(rest), rest.segment);
    }
    false
}

/// One GSO batch to the driver; false when the socket is blocked (the rest
/// is queued and goes out from `resend_blocked`).
///
/// # Safety
/// `ls` is a live listen socket.
pub(super) unsafe fn send_to(ls: *mut ListenSocket, to: SocketAddr, data: &[u8], segment: usize) -> bool {
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

/// # Safety
/// `ctx` is a live context.
unsafe fn count_sent(ctx: *mut Context, bytes: usize, segment: usize) {
    (*ctx).stats.bytes_sent += bytes as u64;
    (*ctx).stats.packets_sent += bytes.div_ceil(segment.max(1)) as u64;
}

/// Retries the sends the kernel refused; true once none is left.
///
/// # Safety
/// `ls` is a live listen socket.
pub(super) unsafe fn resend_blocked(ls: *mut ListenSocket) -> bool {
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
