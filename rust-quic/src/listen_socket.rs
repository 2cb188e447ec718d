//! `us_quic_listen_socket_t`: one bound UDP socket. It routes each datagram to
//! its connection by destination connection ID, accepts new connections from
//! Initial packets, answers unknown versions with Version Negotiation, and holds
//! what the kernel refused to send. It does no I/O itself: the edge binds,
//! sends and closes through the driver. Every connection points at the socket it
//! arrived on. A client connection gets a socket of its own (one connection on
//! it, so routing needs no connection ID).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::SystemTime;

use crate::address_validation::{self, RetryPolicy, Token};
use crate::cid::{self, CidKey};
use crate::context::{Context, Role};
use crate::driver::SocketHandle;
use crate::handles::ListenSocketHandle;
use crate::peer_context::{self, PeerContext, RouteUpdate};

pub use crate::cid::CID_LEN;
/// A datagram carrying a client Initial must be at least this large (RFC 9000 14.1).
const MIN_INITIAL_DATAGRAM: usize = 1200;
/// Refused sends kept for retry, in bytes; beyond this QUIC loss recovery resends.
const MAX_BLOCKED_BYTES: usize = 4 * 1024 * 1024;

/// A send the kernel refused (EAGAIN), to retry when the socket is writable.
pub(crate) struct BlockedSend {
    pub to: SocketAddr,
    pub data: Vec<u8>,
    pub segment: usize,
}

/// What became of one received datagram.
pub(crate) enum Route {
    /// Fed to its connection (an existing one, or one it just created).
    Connection,
    /// Answered without connection state (Version Negotiation, a refused
    /// Initial): these packets go back to the sender.
    Reply { to: SocketAddr, packets: Vec<Vec<u8>> },
    /// For a socket or connection that is already closing.
    Ignored,
    /// Not for us, malformed, or refused without an answer (counted).
    Dropped,
}

pub struct ListenSocket {
    pub ctx: *mut Context,
    pub handle: SocketHandle,
    pub local: SocketAddr,
    pub stream_ext_size: usize,
    pub(crate) cids: HashMap<CidKey, *mut PeerContext>,
    /// Set on a client connection's own socket.
    pub(crate) client_conn: Option<*mut PeerContext>,
    pub closing: bool,
    /// Done: parked for the sweep; the edge closes its UDP socket.
    pub(crate) released: bool,
    pub(crate) handle_closed: bool,
    pub(crate) conn_count: usize,
    blocked: VecDeque<BlockedSend>,
    blocked_bytes: usize,
}

crate::handles::owned_by_handle!(ListenSocket, ListenSocketHandle);

/// A socket of `ctx`, not bound yet (the edge binds it, then calls `bound`).
pub(crate) fn new(ctx: *mut Context, stream_ext_size: usize) -> *mut ListenSocket {
    Box::into_raw(Box::new(ListenSocket {
        ctx,
        handle: std::ptr::null_mut(),
        local: SocketAddr::from(([0, 0, 0, 0], 0)),
        stream_ext_size,
        cids: HashMap::new(),
        client_conn: None,
        closing: false,
        released: false,
        handle_closed: false,
        conn_count: 0,
        blocked: VecDeque::new(),
        blocked_bytes: 0,
    }))
}

/// The driver bound it: it joins its context.
///
/// # Safety
/// `ls` is a live listen socket.
pub(crate) unsafe fn bound(ls: *mut ListenSocket, handle: SocketHandle, local: SocketAddr) {
    (*ls).handle = handle;
    (*ls).local = local;
    (*(*ls).ctx).listen_sockets.push(ListenSocket::handle(ls));
}

/// # Safety
/// `ls` is a live listen socket.
pub(crate) unsafe fn route_datagram(ls: *mut ListenSocket, data: &mut [u8], from: SocketAddr, to: SocketAddr) -> Route {
    let ctx = (*ls).ctx;
    (*ctx).stats.packets_received += 1;
    (*ctx).stats.bytes_received += data.len() as u64;
    let route = route(ls, data, from, to);
    if matches!(route, Route::Dropped) {
        (*ctx).stats.packets_dropped += 1;
    }
    route
}

/// The Version Negotiation answer to a datagram of an unknown version: only
/// for one that could carry a client's first flight (at least 1200 bytes), so
/// a small spoofed packet cannot draw a larger answer at its victim.
fn version_negotiation(len: usize, dcid: &[u8], scid: &[u8], from: SocketAddr) -> Route {
    if len < MIN_INITIAL_DATAGRAM {
        return Route::Dropped;
    }
    // First byte, version, two IDs of up to 255 bytes with their lengths, our versions.
    let mut out = [0u8; 1 + 4 + 2 * 256 + 16];
    let (peer_scid, peer_dcid) = (quiche::ConnectionId::from_ref(scid), quiche::ConnectionId::from_ref(dcid));
    match quiche::negotiate_version(&peer_scid, &peer_dcid, &mut out) {
        Ok(n) => Route::Reply { to: from, packets: vec![out[..n].to_vec()] },
        Err(_) => Route::Dropped,
    }
}

/// Stateless resets a server context sends per second (and twice that in a burst).
const RESETS_PER_SECOND: u32 = 100;
/// A reset's size bounds: at least 5 unpredictable bytes and the token (RFC 9000
/// 10.3), at most what a short header with one of our IDs and a small packet takes.
const MIN_RESET: usize = 21;
const MAX_RESET: usize = 1 + CID_LEN + 24 + 16;

/// The answer to a short-header packet for a connection this socket does not
/// have (a restarted server, state lost): a Stateless Reset (RFC 9000 10.3), so
/// the peer closes now instead of at its idle timeout. Always shorter than the
/// packet it answers (two endpoints cannot keep resetting each other), and
/// bounded per second (anyone can send the packets that draw it).
///
/// # Safety
/// `ctx` is a live server context.
unsafe fn stateless_reset(ctx: *mut Context, data: &[u8], from: SocketAddr) -> Route {
    let Some(dcid) = data.get(1..1 + CID_LEN) else { return Route::Dropped };
    let len = (data.len() - 1).min(MAX_RESET);
    if len < MIN_RESET || !(*ctx).resets.take(RESETS_PER_SECOND, std::time::Instant::now()) {
        return Route::Dropped;
    }
    let mut reset = vec![0u8; len];
    boring::rand::rand_bytes(&mut reset[..len - 16]).expect("BoringSSL RNG");
    // A short header's look: form bit 0, fixed bit 1, the rest unpredictable.
    reset[0] = (reset[0] & 0x3f) | 0x40;
    reset[len - 16..].copy_from_slice(&cid::reset_token(&(*ctx).reset_key, dcid));
    Route::Reply { to: from, packets: vec![reset] }
}

/// Whether a new client without a token must answer a Retry first.
///
/// # Safety
/// `ctx` is a live server context.
unsafe fn needs_retry(ctx: *mut Context) -> bool {
    match (*ctx).settings.retry {
        RetryPolicy::Never => false,
        RetryPolicy::Always => true,
        RetryPolicy::AboveRate => {
            !(*ctx).handshakes.take((*ctx).settings.limits.handshakes_per_second, std::time::Instant::now())
        }
    }
}

/// A Retry (RFC 9000 17.2.5) naming a new connection ID and carrying a token
/// sealed for `from`; smaller than the Initial that drew it, and nothing kept.
///
/// # Safety
/// `ctx` is a live server context.
unsafe fn retry(ctx: *mut Context, header: &quiche::Header<'_>, from: SocketAddr) -> Route {
    let new_cid = (*ctx).settings.cids.issue();
    let token = address_validation::seal(&(*ctx).token_key, from, &header.dcid, &new_cid, SystemTime::now());
    let mut out = [0u8; 256];
    let new_id = quiche::ConnectionId::from_ref(&new_cid);
    match quiche::retry(&header.scid, &header.dcid, &new_id, &token, header.version, &mut out) {
        Ok(n) => {
            (*ctx).stats.retries_sent += 1;
            Route::Reply { to: from, packets: vec![out[..n].to_vec()] }
        }
        Err(_) => Route::Dropped,
    }
}

/// # Safety
/// `ls` is a live listen socket.
unsafe fn route(ls: *mut ListenSocket, data: &mut [u8], from: SocketAddr, to: SocketAddr) -> Route {
    let ctx = (*ls).ctx;
    if (*ls).released {
        return Route::Ignored;
    }
    if let Some(pc) = (*ls).client_conn {
        // The client's path was created with the wildcard bind address.
        return deliver(pc, data, from, (*ls).local);
    }
    // The common case, a datagram of a known connection, parses nothing more.
    let known = cid::destination_cid(data).and_then(CidKey::new).and_then(|k| (*ls).cids.get(&k).copied());
    if let Some(pc) = known {
        return deliver(pc, data, from, to);
    }
    if (*ctx).role != Role::Server {
        return Route::Dropped;
    }
    if data.first().is_some_and(|b| b & 0x80 == 0) {
        return stateless_reset(ctx, data, from);
    }
    // Any long header of a version we do not speak, whatever its first byte's
    // version-specific bits and connection ID lengths say (RFC 9000 6.1, RFC
    // 8999 6), is answered with Version Negotiation; Version Negotiation
    // itself (version 0) never is.
    if let Some((version, dcid, scid)) = cid::long_header_invariants(data) {
        if version != 0 && !quiche::version_is_supported(version) {
            return version_negotiation(data.len(), dcid, scid, from);
        }
    }
    let Ok(header) = quiche::Header::from_slice(data, CID_LEN) else { return Route::Dropped };
    let Some(dcid) = CidKey::new(&header.dcid) else { return Route::Dropped };
    if (*ctx).shutting_down || (*ls).closing || data.len() < MIN_INITIAL_DATAGRAM || header.ty != quiche::Type::Initial
    {
        return Route::Dropped;
    }
    // Address validation (address_validation.rs): a token sealed for this
    // address names the connection's first ID; without one, maybe a Retry.
    let validated = match address_validation::open(
        &(*ctx).token_key,
        from,
        header.token.as_deref().unwrap_or(&[]),
        SystemTime::now(),
    ) {
        Token::Valid { original_dcid, retry_scid } if retry_scid == header.dcid[..] => Some(original_dcid),
        Token::Absent => None,
        Token::Valid { .. } | Token::Invalid => {
            (*ctx).stats.invalid_tokens += 1;
            None
        }
    };
    if validated.is_none() && needs_retry(ctx) {
        return retry(ctx, &header, from);
    }
    // After a Retry the client already uses the ID the Retry gave it.
    let our_cid = match &validated {
        Some(_) => header.dcid.to_vec(),
        None => (*ctx).settings.cids.issue().to_vec(),
    };
    let Some(config) = (*ctx).server_config.as_mut() else { return Route::Dropped };
    crate::context::aim_at(config, &(*ctx).settings, from);
    config.set_stateless_reset_token(Some(u128::from_be_bytes(cid::reset_token(&(*ctx).reset_key, &our_cid))));
    let original = validated.as_deref().map(quiche::ConnectionId::from_ref);
    let Ok(mut conn) = quiche::accept(&quiche::ConnectionId::from_ref(&our_cid), original.as_ref(), to, from, config)
    else {
        return Route::Dropped;
    };
    (*ctx).attach_diagnostics(&mut conn);
    // A first datagram that does not authenticate creates nothing: forged or
    // corrupted Initials must not hold connection state or draw an answer.
    // (quiche's recv drops undecryptable packets without an error: count them.)
    if conn.recv(data, quiche::RecvInfo { from, to }).is_err() || conn.stats().recv == 0 || conn.is_closed() {
        return Route::Dropped;
    }
    if !(*ctx).connection_counts.admit(&(*ctx).settings.limits, from.ip()) {
        (*ctx).stats.connections_refused += 1;
        return refuse(conn, from);
    }
    let pc = adopt(ls, conn, from, to);
    (*pc).admitted_ip = Some(from.ip());
    if validated.is_none() {
        (*pc).amplification = crate::limits::AmplificationBudget::unvalidated(data.len());
    }
    register_cid(ls, pc, CidKey::new(&our_cid).expect("CID_LEN fits"));
    if validated.is_none() {
        // The client keeps using its chosen DCID until it sees ours.
        register_cid(ls, pc, dcid);
    }
    (*ctx).stats.connections_accepted += 1;
    peer_context::mark_dirty(pc);
    Route::Connection
}

/// A new connection on `ls` (a server's accepted one, a client's own).
///
/// # Safety
/// `ls` is a live listen socket.
pub(crate) unsafe fn adopt(
    ls: *mut ListenSocket,
    conn: quiche::Connection,
    peer: SocketAddr,
    local: SocketAddr,
) -> *mut PeerContext {
    let ctx = (*ls).ctx;
    let handle = ListenSocket::handle(ls);
    let pc = peer_context::create(ctx, handle, (*ls).stream_ext_size, conn, peer, local, (*ctx).settings.conn_ext_size);
    (*ls).conn_count += 1;
    pc
}

/// A client past the connection limits: CONNECTION_REFUSED in an Initial
/// packet (RFC 9000 10.2.3), and no connection state kept.
fn refuse(mut conn: quiche::Connection, from: SocketAddr) -> Route {
    const CONNECTION_REFUSED: u64 = 0x2;
    let _ = conn.close(false, CONNECTION_REFUSED, b"server at its connection limit");
    let mut packets = Vec::new();
    let mut out = [0u8; 1500];
    while let Ok((n, _)) = conn.send(&mut out) {
        packets.push(out[..n].to_vec());
    }
    Route::Reply { to: from, packets }
}

/// # Safety
/// `pc` is a live connection.
unsafe fn deliver(pc: *mut PeerContext, data: &mut [u8], from: SocketAddr, to: SocketAddr) -> Route {
    if (*pc).finalized() {
        return Route::Ignored;
    }
    (*pc).amplification.received(data.len());
    match (*pc).core.conn.recv(data, quiche::RecvInfo { from, to }) {
        Ok(_) => {
            (*pc).peer_addr = from;
        }
        Err(quiche::Error::Done) => {}
        Err(_) => (*(*pc).core.ctx).stats.packets_dropped += 1,
    }
    peer_context::mark_dirty(pc);
    Route::Connection
}

/// # Safety
/// `ls` is a live listen socket; `pc` is a live connection.
pub(crate) unsafe fn register_cid(ls: *mut ListenSocket, pc: *mut PeerContext, cid: CidKey) {
    (*pc).cids.push(cid);
    (*ls).cids.insert(cid, pc);
}

/// # Safety
/// `ls` is a live listen socket; `pc` is a live connection.
pub(crate) unsafe fn unregister_cid(ls: *mut ListenSocket, pc: *mut PeerContext, cid: CidKey) {
    (*pc).cids.retain(|c| *c != cid);
    if (*ls).cids.get(&cid) == Some(&pc) {
        (*ls).cids.remove(&cid);
    }
}

/// The socket catches up with the IDs the connection issued and retired.
///
/// # Safety
/// `pc` is a live connection.
pub(crate) unsafe fn sync_routes(pc: *mut PeerContext) {
    let ls = ListenSocket::from_handle((*pc).socket);
    for update in std::mem::take(&mut (*pc).route_updates) {
        match update {
            RouteUpdate::Issued(cid) => register_cid(ls, pc, cid),
            RouteUpdate::Retired(cid) => unregister_cid(ls, pc, cid),
        }
    }
}

/// A connection finished: forget its IDs; a closing socket goes once unused.
///
/// # Safety
/// `pc` is a live connection.
pub(crate) unsafe fn detach(pc: *mut PeerContext) {
    let ls = ListenSocket::from_handle((*pc).socket);
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
///
/// # Safety
/// `ls` is a live listen socket.
pub unsafe fn close(ls: *mut ListenSocket) {
    (*ls).closing = true;
    if (*ls).conn_count == 0 {
        release(ls);
    }
}

/// Done with: parked for the sweep. The edge closes its UDP socket when the
/// current engine frame unwinds (so its port is free when the call returns).
///
/// # Safety
/// `ls` is a live listen socket.
unsafe fn release(ls: *mut ListenSocket) {
    if !(*ls).released {
        (*ls).released = true;
        (*(*ls).ctx).sweep.listen_sockets.push(ListenSocket::handle(ls));
    }
}

/// Queues a send the kernel refused, within the bound; beyond it the packets
/// are dropped (QUIC retransmits what is declared lost).
///
/// # Safety
/// `ls` is a live listen socket.
pub(crate) unsafe fn queue_blocked(ls: *mut ListenSocket, to: SocketAddr, data: &[u8], segment: usize) {
    if (*ls).blocked_bytes + data.len() > MAX_BLOCKED_BYTES {
        (*(*ls).ctx).stats.packets_dropped += data.len().div_ceil(segment.max(1)) as u64;
        return;
    }
    (*ls).blocked_bytes += data.len();
    (*ls).blocked.push_back(BlockedSend { to, data: data.to_vec(), segment });
}

/// # Safety
/// `ls` is a live listen socket.
pub(crate) unsafe fn is_blocked(ls: *mut ListenSocket) -> bool {
    !(*ls).blocked.is_empty()
}

/// The oldest refused send, to retry.
///
/// # Safety
/// `ls` is a live listen socket.
pub(crate) unsafe fn take_blocked(ls: *mut ListenSocket) -> Option<BlockedSend> {
    let b = (*ls).blocked.pop_front()?;
    (*ls).blocked_bytes -= b.data.len();
    Some(b)
}

/// A retried send the kernel refused again: first in line for the next retry.
///
/// # Safety
/// `ls` is a live listen socket.
pub(crate) unsafe fn requeue_blocked(ls: *mut ListenSocket, b: BlockedSend) {
    (*ls).blocked_bytes += b.data.len();
    (*ls).blocked.push_front(b);
}
