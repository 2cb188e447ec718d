//! `us_quic_listen_socket_t`: one bound UDP socket. It routes each datagram to
//! its connection by destination connection ID, accepts new connections from
//! Initial packets, answers unknown versions with Version Negotiation, and queues
//! what the kernel refused to send. Every connection points at the socket it
//! arrived on. A client connection gets a socket of its own (one connection on
//! it, so routing needs no connection ID).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use crate::context::{self, Context, Role};
use crate::driver::{SendOutcome, SocketHandle};
use crate::peer_context::{self, PeerContext};

/// Length of the connection IDs this engine issues.
pub const CID_LEN: usize = 16;
/// A datagram carrying a client Initial must be at least this large (RFC 9000 14.1).
const MIN_INITIAL_DATAGRAM: usize = 1200;
/// Refused sends kept for retry, in bytes; beyond this QUIC loss recovery resends.
const MAX_BLOCKED_BYTES: usize = 4 * 1024 * 1024;

struct BlockedSend {
    to: SocketAddr,
    data: Vec<u8>,
    segment: usize,
}

pub struct ListenSocket {
    pub ctx: *mut Context,
    pub handle: SocketHandle,
    pub local: SocketAddr,
    pub stream_ext_size: usize,
    pub(crate) cids: HashMap<Vec<u8>, *mut PeerContext>,
    /// Set on a client connection's own socket.
    pub(crate) client_conn: Option<*mut PeerContext>,
    pub closing: bool,
    handle_closed: bool,
    pub(crate) conn_count: usize,
    blocked: VecDeque<BlockedSend>,
    blocked_bytes: usize,
}

/// Binds a socket for `ctx`. Returns the errno of a failed bind.
pub unsafe fn listen(
    ctx: *mut Context,
    host: Option<&str>,
    port: u16,
    flags: i32,
    stream_ext_size: usize,
    connect_to: Option<SocketAddr>,
) -> Result<*mut ListenSocket, i32> {
    let ls = Box::into_raw(Box::new(ListenSocket {
        ctx,
        handle: std::ptr::null_mut(),
        local: SocketAddr::from(([0, 0, 0, 0], 0)),
        stream_ext_size,
        cids: HashMap::new(),
        client_conn: None,
        closing: false,
        handle_closed: false,
        conn_count: 0,
        blocked: VecDeque::new(),
        blocked_bytes: 0,
    }));
    match (*ctx).driver.bind(ls, host, port, flags, connect_to) {
        Ok((handle, local)) => {
            (*ls).handle = handle;
            (*ls).local = local;
            (*ctx).listen_sockets.push(ls);
            Ok(ls)
        }
        Err(e) => {
            drop(Box::from_raw(ls));
            Err(e)
        }
    }
}

pub(crate) fn random_cid() -> [u8; CID_LEN] {
    let mut cid = [0u8; CID_LEN];
    boring::rand::rand_bytes(&mut cid).expect("BoringSSL RNG");
    cid
}

pub(crate) unsafe fn route_datagram(ls: *mut ListenSocket, data: &mut [u8], from: SocketAddr, to: SocketAddr) {
    let ctx = (*ls).ctx;
    (*ctx).stats.packets_received += 1;
    (*ctx).stats.bytes_received += data.len() as u64;
    if (*ls).handle_closed {
        return;
    }
    if let Some(pc) = (*ls).client_conn {
        // The client's path was created with the wildcard bind address.
        let _ = to;
        deliver(pc, data, from, (*ls).local);
        return;
    }
    let (dcid, scid, ty, version) = match quiche::Header::from_slice(data, CID_LEN) {
        Ok(h) => (h.dcid.to_vec(), h.scid.to_vec(), h.ty, h.version),
        Err(_) => {
            (*ctx).stats.packets_dropped += 1;
            return;
        }
    };
    if let Some(&pc) = (*ls).cids.get(&dcid) {
        deliver(pc, data, from, to);
        return;
    }
    if (*ctx).role != Role::Server || ty != quiche::Type::Initial && ty != quiche::Type::VersionNegotiation {
        (*ctx).stats.packets_dropped += 1;
        return;
    }
    if !quiche::version_is_supported(version) {
        // Only answer datagrams that could carry an Initial, so we cannot be
        // used to amplify small spoofed packets.
        if data.len() >= MIN_INITIAL_DATAGRAM && ty != quiche::Type::VersionNegotiation {
            let mut out = [0u8; 256];
            let scid = quiche::ConnectionId::from_ref(&scid);
            let dcid = quiche::ConnectionId::from_ref(&dcid);
            if let Ok(n) = quiche::negotiate_version(&scid, &dcid, &mut out) {
                send(ls, from, &out[..n], n);
            }
        } else {
            (*ctx).stats.packets_dropped += 1;
        }
        return;
    }
    if (*ctx).shutting_down || (*ls).closing || data.len() < MIN_INITIAL_DATAGRAM || ty != quiche::Type::Initial {
        (*ctx).stats.packets_dropped += 1;
        return;
    }
    let our_cid = random_cid();
    let Some(config) = (*ctx).server_config.as_mut() else { return };
    let mut conn = match quiche::accept(&quiche::ConnectionId::from_ref(&our_cid), None, to, from, config) {
        Ok(c) => c,
        Err(_) => {
            (*ctx).stats.packets_dropped += 1;
            return;
        }
    };
    // A first datagram that does not authenticate creates nothing: forged or
    // corrupted Initials must not hold connection state or draw an answer.
    // (quiche's recv drops undecryptable packets without an error: count them.)
    if conn.recv(data, quiche::RecvInfo { from, to }).is_err() || conn.stats().recv == 0 || conn.is_closed() {
        (*ctx).stats.packets_dropped += 1;
        return;
    }
    if !(*ctx).connection_counts.admit(&(*ctx).settings.limits, from.ip()) {
        (*ctx).stats.connections_refused += 1;
        refuse(ls, conn, from);
        return;
    }
    let pc = peer_context::create(ctx, ls, conn, from, to, (*ctx).settings.conn_ext_size);
    (*pc).admitted_ip = Some(from.ip());
    register_cid(ls, pc, our_cid.to_vec());
    // The client keeps using its chosen DCID until it sees ours.
    register_cid(ls, pc, dcid);
    (*ctx).stats.connections_accepted += 1;
    context::mark_dirty(pc);
}

/// A client past the connection limits: CONNECTION_REFUSED in an Initial
/// packet (RFC 9000 10.2.3), and no connection state kept.
unsafe fn refuse(ls: *mut ListenSocket, mut conn: quiche::Connection, from: SocketAddr) {
    const CONNECTION_REFUSED: u64 = 0x2;
    let _ = conn.close(false, CONNECTION_REFUSED, b"server at its connection limit");
    let mut out = [0u8; 1500];
    while let Ok((n, _)) = conn.send(&mut out) {
        send(ls, from, &out[..n], n);
    }
}

unsafe fn deliver(pc: *mut PeerContext, data: &mut [u8], from: SocketAddr, to: SocketAddr) {
    if (*pc).finalized {
        return;
    }
    match (*pc).conn.recv(data, quiche::RecvInfo { from, to }) {
        Ok(_) => {
            (*pc).peer_addr = from;
        }
        Err(quiche::Error::Done) => {}
        Err(_) => (*(*pc).ctx).stats.packets_dropped += 1,
    }
    context::mark_dirty(pc);
}

pub(crate) unsafe fn register_cid(ls: *mut ListenSocket, pc: *mut PeerContext, cid: Vec<u8>) {
    (*pc).cids.push(cid.clone());
    (*ls).cids.insert(cid, pc);
}

pub(crate) unsafe fn unregister_cid(ls: *mut ListenSocket, pc: *mut PeerContext, cid: &[u8]) {
    (*pc).cids.retain(|c| c.as_slice() != cid);
    if (*ls).cids.get(cid) == Some(&pc) {
        (*ls).cids.remove(cid);
    }
}

/// A connection finished: forget its IDs; a closing socket goes once unused.
pub(crate) unsafe fn detach(ls: *mut ListenSocket, pc: *mut PeerContext) {
    for cid in &(*pc).cids {
        if (*ls).cids.get(cid) == Some(&pc) {
            (*ls).cids.remove(cid);
        }
    }
    if (*ls).client_conn == Some(pc) {
        (*ls).client_conn = None;
        (*ls).closing = true;
    }
    (*ls).conn_count -= 1;
    if (*ls).closing && (*ls).conn_count == 0 {
        release(ls);
    }
}

/// Stop accepting; the UDP socket closes once its last connection is gone.
pub unsafe fn close(ls: *mut ListenSocket) {
    if (*ls).closing && (*ls).handle_closed {
        return;
    }
    (*ls).closing = true;
    if (*ls).conn_count == 0 {
        release(ls);
    }
}

unsafe fn close_handle(ls: *mut ListenSocket) {
    if !(*ls).handle_closed {
        (*ls).handle_closed = true;
        (*(*ls).ctx).driver.close((*ls).handle);
    }
}

unsafe fn release(ls: *mut ListenSocket) {
    if (*ls).handle_closed {
        return;
    }
    close_handle(ls);
    (*(*ls).ctx).sweep.listen_sockets.push(ls);
}

/// For context destruction: close and free a socket that is not in the sweep.
pub(crate) unsafe fn release_now(_ctx: *mut Context, ls: *mut ListenSocket) {
    close_handle(ls);
    drop(Box::from_raw(ls));
}

/// Sends a batch of equal-sized datagrams; false when the socket is blocked
/// (the rest is queued and goes out from `resend_blocked`).
pub(crate) unsafe fn send(ls: *mut ListenSocket, to: SocketAddr, data: &[u8], segment: usize) -> bool {
    let ctx = (*ls).ctx;
    if (*ls).handle_closed {
        return true;
    }
    if !(*ls).blocked.is_empty() {
        queue_blocked(ls, to, data, segment);
        return false;
    }
    match (*ctx).driver.send((*ls).handle, to, data, segment) {
        SendOutcome::Sent => {
            count_sent(ctx, data.len(), segment);
            true
        }
        SendOutcome::Blocked { sent } => {
            count_sent(ctx, sent, segment);
            queue_blocked(ls, to, &data[sent..], segment);
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

unsafe fn queue_blocked(ls: *mut ListenSocket, to: SocketAddr, data: &[u8], segment: usize) {
    if (*ls).blocked_bytes + data.len() > MAX_BLOCKED_BYTES {
        // Dropping is safe: QUIC retransmits what is declared lost.
        (*(*ls).ctx).stats.packets_dropped += data.len().div_ceil(segment.max(1)) as u64;
        return;
    }
    (*ls).blocked_bytes += data.len();
    (*ls).blocked.push_back(BlockedSend { to, data: data.to_vec(), segment });
}

pub(crate) unsafe fn is_blocked(ls: *mut ListenSocket) -> bool {
    !(*ls).blocked.is_empty()
}

/// Retries queued sends; true once the queue is empty.
pub(crate) unsafe fn resend_blocked(ls: *mut ListenSocket) -> bool {
    let ctx = (*ls).ctx;
    while let Some(b) = (*ls).blocked.pop_front() {
        (*ls).blocked_bytes -= b.data.len();
        if (*ls).handle_closed {
            continue;
        }
        match (*ctx).driver.send((*ls).handle, b.to, &b.data, b.segment) {
            SendOutcome::Sent => count_sent(ctx, b.data.len(), b.segment),
            SendOutcome::Blocked { sent } => {
                count_sent(ctx, sent, b.segment);
                let rest = b.data[sent..].to_vec();
                (*ls).blocked_bytes += rest.len();
                (*ls).blocked.push_front(BlockedSend { to: b.to, data: rest, segment: b.segment });
                return false;
            }
            SendOutcome::Failed => {}
        }
    }
    true
}
