//! `us_quic_socket_t`: one QUIC connection. Created once per connection and
//! reused for every packet of it: the quiche connection, the peer and local
//! addresses, the socket it belongs to, the HTTP/3 session (control and QPACK
//! streams, peer settings, GOAWAY) and the table of open streams.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::cid::{self, CidKey};
pub use crate::connection::Phase;
use crate::connection::{self, ConnectionCore, ShutdownStep, StreamIdMap};
use crate::context::{Context, Role};
use crate::events::Event;
use crate::ext::Ext;
use crate::handles::{ConnectionHandle, ListenSocketHandle};
use crate::http3::{self, FrameEvent, FrameReader, PeerSettings, VarintAccumulator};
use crate::limits::Verdict;
use crate::outbox::Outbox;
use crate::stream::{self, Stream};

/// A peer unidirectional stream being read (control, QPACK, or ignored).
#[derive(Default)]
struct UniReader {
    ty: Option<u64>,
    varint: VarintAccumulator,
    reader: FrameReader,
    frame_buf: Vec<u8>,
    frame_ty: u64,
    settings_seen: bool,
}

#[derive(Default)]
pub struct H3Session {
    /// Bytes for our unidirectional streams that QUIC has not accepted yet.
    uni_out: Vec<(u64, Vec<u8>)>,
    local_control: Option<u64>,
    peer_control: Option<u64>,
    peer_encoder: Option<u64>,
    peer_decoder: Option<u64>,
    pub peer_settings: Option<PeerSettings>,
    uni: StreamIdMap<UniReader>,
    pub goaway_sent: Option<u64>,
    pub goaway_received: Option<u64>,
    /// Servers: the push ID of the client's last GOAWAY (each may only stay or shrink).
    pub client_goaway: Option<u64>,
}

/// NO_ERROR, the transport error code of a clean close (RFC 9000 20.1).
const TRANSPORT_NO_ERROR: u64 = 0x0;

/// A change to the connection IDs that route to a connection, for its socket
/// to apply (the connection issues and retires them; the socket routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteUpdate {
    Issued(CidKey),
    Retired(CidKey),
}

pub struct PeerContext {
    /// What it shares with its streams: the QUIC connection, phase, stream table, guard.
    pub core: ConnectionCore,
    /// The socket its datagrams arrive on (the listen socket layer routes to it).
    pub socket: ListenSocketHandle,
    /// Ext size of the streams its peer opens (the socket's).
    pub(crate) stream_ext_size: usize,
    pub h3: H3Session,
    pub peer_addr: SocketAddr,
    pub local_addr: SocketAddr,
    pub ext: Ext,
    /// The connection IDs the socket routes to it.
    pub(crate) cids: Vec<CidKey>,
    /// IDs issued and retired since the socket last caught up (`listen_socket::sync_routes`).
    pub(crate) route_updates: Vec<RouteUpdate>,
    pub(crate) in_deferred: bool,
    /// Servers: the client address counted against the connection limits.
    pub(crate) admitted_ip: Option<IpAddr>,
    pub(crate) open_fired: bool,
    pub(crate) hsk_reported: bool,
    pub(crate) pending_stream_requests: u32,
    next_bidi: u64,
    next_uni: u64,
    max_peer_bidi: Option<u64>,
    max_peer_uni: Option<u64>,
    pub(crate) pending_uni_requests: u32,
    /// A DatagramsReadable event is queued and not yet pulled.
    datagrams_queued: bool,
    /// WebTransport streams asked for: (session id, unidirectional), in order.
    pending_webtransport: std::collections::VecDeque<(u64, bool)>,
    pub(crate) verify_ip: Option<IpAddr>,
    /// Server side of a graceful close: when to give up waiting for the client
    /// to close first.
    pub(crate) close_at: Option<Instant>,
    /// The socket error that ended the connection (ECONNREFUSED from ICMP, ...).
    pub socket_error: Option<i32>,
    /// An application close, applied after the next send so that a handshake
    /// message still pending (the client's Finished, when closing inside
    /// on_hsk_done) goes out first: quiche sends nothing at all for an
    /// application close issued before that.
    deferred_close: Option<(u64, Vec<u8>)>,
    /// Clients: the server (name, port) its session tickets are kept for, and
    /// whether the first one has been (later ones replace it at the end).
    pub(crate) ticket_server: Option<crate::context::SessionKey>,
    ticket_stored: bool,
    /// Clients: started with a ticket, offering 0-RTT (sent if the ticket allows it).
    pub resuming: bool,
    /// Clients: the first send started a handshake with 0-RTT (noted once).
    early_data_started: bool,
    /// Servers: RFC 9000 8.1's limit until the client's address is validated.
    pub(crate) amplification: crate::limits::AmplificationBudget,
}

crate::handles::owned_by_handle!(PeerContext, ConnectionHandle);

impl PeerContext {
    /// Finalized: the application has been told (or will be, by the queue) that
    /// it is over; only the sweep touches it now.
    pub fn finalized(&self) -> bool {
        self.core.finalized()
    }

    /// Established and not over: streams and DATAGRAMs may flow.
    pub fn is_established(&self) -> bool {
        self.core.is_established()
    }
}

/// # Safety
/// `ctx` is a live context.
pub(crate) unsafe fn create(
    ctx: *mut Context,
    socket: ListenSocketHandle,
    stream_ext_size: usize,
    conn: quiche::Connection,
    peer: SocketAddr,
    local: SocketAddr,
    ext_size: usize,
) -> *mut PeerContext {
    let is_server = conn.is_server();
    // The core names its connection by handle: known once it is allocated.
    let placeholder = ConnectionHandle::from_address(std::ptr::NonNull::dangling());
    let pc = Box::into_raw(Box::new(PeerContext {
        core: ConnectionCore::new(ctx, placeholder, conn),
        socket,
        stream_ext_size,
        h3: H3Session::default(),
        peer_addr: peer,
        local_addr: local,
        ext: Ext::new(ext_size),
        cids: Vec::new(),
        route_updates: Vec::new(),
        in_deferred: false,
        admitted_ip: None,
        open_fired: false,
        hsk_reported: false,
        pending_stream_requests: 0,
        next_bidi: if is_server { 1 } else { 0 },
        next_uni: if is_server { 3 } else { 2 },
        max_peer_bidi: None,
        max_peer_uni: None,
        pending_uni_requests: 0,
        datagrams_queued: false,
        pending_webtransport: Default::default(),
        verify_ip: None,
        close_at: None,
        socket_error: None,
        deferred_close: None,
        ticket_server: None,
        ticket_stored: false,
        resuming: false,
        early_data_started: false,
        amplification: crate::limits::AmplificationBudget::default(),
    }));
    (*pc).core.handle = PeerContext::handle(pc);
    if is_server && is_h3(&*pc) {
        (*pc).core.guard.request_closed(Duration::from_millis((*ctx).settings.idle_timeout_ms), Instant::now());
    }
    (*ctx).connections.push(PeerContext::handle(pc));
    (*ctx).stats.connections_active += 1;
    pc
}

/// The connection stream `s` belongs to.
pub fn of_stream(s: &Stream) -> *mut PeerContext {
    // SAFETY: a stream's connection outlives it.
    PeerContext::from_handle(unsafe { (*s.conn).handle })
}

/// Its open stream `id`.
///
/// # Safety
/// `pc` is a live connection.
unsafe fn stream_at(pc: *mut PeerContext, id: u64) -> Option<*mut Stream> {
    (*pc).core.streams.get(&id).map(|&h| Stream::from_handle(h))
}

/// Its open streams (a copy: what is done to them may close them).
///
/// # Safety
/// `pc` is a live connection.
unsafe fn open_streams(pc: *mut PeerContext) -> Vec<*mut Stream> {
    (*pc).core.streams.values().map(|&h| Stream::from_handle(h)).collect()
}

/// The connection has work for the edge's next pass (service, then flush).
///
/// # Safety
/// `pc` is a live connection.
pub unsafe fn mark_dirty(pc: *mut PeerContext) {
    connection::mark_dirty(&mut (*pc).core);
}

/// Its earliest deadline: quiche's timers, a graceful close's grace period,
/// the limits' deadlines.
pub fn next_deadline(pc: &PeerContext) -> Option<Instant> {
    if pc.finalized() {
        return None;
    }
    [pc.core.conn.timeout_instant(), pc.close_at, pc.core.guard.next_deadline()].into_iter().flatten().min()
}

pub fn is_h3(pc: &PeerContext) -> bool {
    pc.core.is_h3()
}

fn is_uni(id: u64) -> bool {
    id & 0x2 != 0
}

fn initiated_locally(pc: &PeerContext, id: u64) -> bool {
    (id & 0x1 == 1) == pc.core.conn.is_server()
}

/// Handshake progress, stream reads, writable notifications, stream grants.
///
/// # Safety
/// `pc` is a live connection.
pub(crate) unsafe fn service(pc: *mut PeerContext) {
    let ctx = (*pc).core.ctx;
    let mut just_established = false;
    if (*pc).core.phase == Phase::Handshake && (*pc).core.conn.is_in_early_data() {
        match (*ctx).role {
            // 0-RTT accepted: the connection serves (in 0.5-RTT) before its handshake ends.
            Role::Server => open_for_requests(pc),
            // Resuming with 0-RTT: SETTINGS and requests go out before the handshake ends.
            Role::Client => open_control_streams(pc),
        }
    }
    if (*pc).core.phase == Phase::Handshake && (*pc).core.conn.is_established() {
        just_established = true;
        (*pc).core.phase.handshake_finished(check_ip_identity(pc));
        (*pc).amplification.validated();
        if (*pc).core.phase == Phase::Closing {
            return;
        }
        count_resumption(pc);
        match (*ctx).role {
            Role::Server => open_for_requests(pc),
            Role::Client => {
                open_control_streams(pc);
                (*pc).hsk_reported = true;
                (*ctx).events.push(Event::HandshakeDone(PeerContext::handle(pc), true));
            }
        }
        // Requests that arrived in 0-RTT and were not safe to run in it run now.
        for id in std::mem::take(&mut (*pc).core.held_for_handshake) {
            if let Some(s) = stream_at(pc, id) {
                stream::release_held_head(s);
            }
        }
        if (*ctx).shutting_down && (*ctx).role == Role::Server {
            begin_goaway(pc);
        }
    }
    if (*ctx).role == Role::Client && !(*pc).ticket_stored {
        keep_ticket(pc);
    }
    if !(*pc).core.phase.streams_flow((*pc).core.conn.is_in_early_data()) {
        return;
    }
    refresh_connection_ids(pc);
    if (*pc).core.lingering.len() > 64 {
        all_streams_retired(pc); // prunes what QUIC has collected
    }
    flush_uni_out(pc);
    for id in std::mem::take(&mut (*pc).core.resumed_reads) {
        if let Some(s) = stream_at(pc, id) {
            stream::queue_read(s);
        }
    }
    for id in (*pc).core.conn.readable() {
        handle_readable(pc, id);
    }
    for id in (*pc).core.conn.writable() {
        if let Some(s) = stream_at(pc, id) {
            stream::on_writable(s);
        }
    }
    // (Collected first: a stopped stream's callback may close others. Usually
    // none is blocked, and an empty Vec allocates nothing.)
    let blocked: Vec<*mut Stream> = (*pc)
        .core
        .streams
        .values()
        .map(|&h| Stream::from_handle(h))
        .filter(|&s| stream::is_send_blocked(&*s))
        .collect();
    for s in blocked {
        stream::check_stopped(s);
    }
    if just_established {
        // Streams asked for before the handshake are granted once the
        // application has heard of it (and maybe closed the connection): next pass.
        mark_dirty(pc);
    } else {
        grant_streams(pc);
    }
    if !(*pc).datagrams_queued && (*pc).core.conn.dgram_recv_queue_len() > 0 {
        (*pc).datagrams_queued = true;
        (*ctx).events.push(Event::DatagramsReadable(PeerContext::handle(pc)));
    }
    if (*pc).core.phase == Phase::GoingAway
        && (*pc).close_at.is_none()
        && (*pc).core.streams.is_empty()
        && all_streams_retired(pc)
    {
        finish_graceful_close(pc);
    }
}

/// Servers: the connection takes requests (its handshake ended, or its 0-RTT
/// was accepted): control streams out, the application told. Once.
///
/// # Safety
/// `pc` is a live server connection.
unsafe fn open_for_requests(pc: *mut PeerContext) {
    if (*pc).open_fired {
        return;
    }
    open_control_streams(pc);
    (*pc).open_fired = true;
    (*(*pc).core.ctx).events.push(Event::ConnectionOpened(PeerContext::handle(pc)));
}

/// The handshake ended: count a resumed session and accepted 0-RTT.
///
/// # Safety
/// `pc` is a live connection.
unsafe fn count_resumption(pc: *mut PeerContext) {
    let stats = &mut (*(*pc).core.ctx).stats;
    if (*pc).core.conn.is_resumed() {
        stats.connections_resumed += 1;
    }
    if early_data_accepted(&*pc) {
        stats.early_data_accepted += 1;
    }
}

/// The handshake ended with the 0-RTT accepted.
pub fn early_data_accepted(pc: &PeerContext) -> bool {
    /// BoringSSL's `ssl_early_data_accepted`.
    const EARLY_DATA_ACCEPTED: u32 = 2;
    pc.core.conn.early_data_reason() == EARLY_DATA_ACCEPTED
}

/// After a send: a resuming client's first one started its handshake, and
/// with it 0-RTT. Serviced again at once, its streams are granted and its
/// requests leave in 0-RTT packets, a round trip before the handshake ends.
///
/// # Safety
/// `pc` is a live connection.
pub(crate) unsafe fn note_early_data(pc: *mut PeerContext) {
    if (*pc).early_data_started || (*pc).core.phase != Phase::Handshake || (*pc).core.conn.is_server() {
        return;
    }
    if (*pc).core.conn.is_in_early_data() {
        (*pc).early_data_started = true;
        mark_dirty(pc);
    }
}

/// Clients: keeps the connection's latest session ticket for the next
/// connection to the same server (`Context::sessions`).
///
/// # Safety
/// `pc` is a live client connection.
unsafe fn keep_ticket(pc: *mut PeerContext) {
    let (Some(server), Some(ticket)) = ((*pc).ticket_server.as_ref(), (*pc).core.conn.session()) else { return };
    (*(*pc).core.ctx).sessions.store(server.clone(), ticket);
    (*pc).ticket_stored = true;
}

/// After GOAWAY, with every stream done: the client closes at once (its app
/// has read everything); the server lets the client close first, so the GOAWAY
/// and the last bytes are not cut off, and closes itself after a grace period.
///
/// # Safety
/// `pc` is a live connection.
unsafe fn finish_graceful_close(pc: *mut PeerContext) {
    if !(*pc).core.conn.is_server() {
        let _ = (*pc).core.conn.close(true, http3::H3_NO_ERROR, b"");
        return;
    }
    let srtt = (*pc).core.conn.path_stats().next().map_or(Duration::from_millis(100), |p| p.rtt);
    (*pc).close_at = Some(Instant::now() + (srtt * 4).max(Duration::from_millis(250)));
    connection::mark_timer_stale(&mut (*pc).core);
}

/// Keeps the peer supplied with spare connection IDs (so it can migrate or
/// survive a NAT rebinding with a fresh one) and forgets the ones it retired.
///
/// # Safety
/// `pc` is a live connection.
unsafe fn refresh_connection_ids(pc: *mut PeerContext) {
    while let Some(old) = (*pc).core.conn.retired_scid_next() {
        if let Some(old) = CidKey::new(&old) {
            (*pc).route_updates.push(RouteUpdate::Retired(old));
        }
    }
    while (*pc).core.conn.scids_left() > 0 {
        let ctx = (*pc).core.ctx;
        let cid = (*ctx).settings.cids.issue();
        let token = cid::reset_token(&(*ctx).reset_key, &cid);
        if (*pc).core.conn.new_scid(&quiche::ConnectionId::from_ref(&cid), u128::from_be_bytes(token), false).is_err() {
            break;
        }
        (*pc).route_updates.push(RouteUpdate::Issued(CidKey::new(&cid).expect("CID_LEN fits")));
    }
}

/// True once QUIC has collected every stream we finished with (all their data,
/// FIN included, acknowledged).
///
/// # Safety
/// `pc` is a live connection.
unsafe fn all_streams_retired(pc: *mut PeerContext) -> bool {
    let conn = &mut (*pc).core.conn;
    (*pc).core.lingering.retain(|&id| !matches!(conn.stream_capacity(id), Err(quiche::Error::InvalidStreamState(_))));
    (*pc).core.lingering.is_empty()
}

/// For an IP-literal target with verification on, the certificate must list
/// that IP (quiche's host check covers DNS names only).
///
/// # Safety
/// `pc` is a live connection.
unsafe fn check_ip_identity(pc: *mut PeerContext) -> bool {
    let Some(ip) = (*pc).verify_ip else { return true };
    let ok = (*pc).core.conn.peer_cert().is_some_and(|der| crate::tls::leaf_matches_ip(der, ip));
    if !ok {
        // TLS alert bad_certificate (42) as a crypto error.
        let _ = (*pc).core.conn.close(false, 0x100 + 42, b"certificate does not match the IP address");
    }
    ok
}

/// # Safety
/// `pc` is a live connection.
unsafe fn handle_readable(pc: *mut PeerContext, id: u64) {
    let ctx = (*pc).core.ctx;
    if let Some(s) = stream_at(pc, id) {
        stream::queue_read(s);
        return;
    }
    let h3 = is_h3(&*pc);
    if is_uni(id) && h3 && !(*pc).core.lingering.contains(&id) {
        uni_readable(pc, id);
        return;
    }
    // Late data for a stream we already finished with. (Not "an id below the
    // highest seen": streams can arrive out of order when a packet is lost, and
    // a retransmitted lower stream is new, not old.)
    if initiated_locally(&*pc, id) || (*pc).core.lingering.contains(&id) {
        let _ = (*pc).core.conn.stream_shutdown(id, quiche::Shutdown::Read, 0);
        return;
    }
    let highest = if is_uni(id) { &mut (*pc).max_peer_uni } else { &mut (*pc).max_peer_bidi };
    *highest = Some(highest.map_or(id, |m| m.max(id)));
    if h3 && (*ctx).role == Role::Client && (*ctx).settings.webtransport_sessions == 0 {
        connection_error(pc, http3::H3_STREAM_CREATION_ERROR, "server-initiated bidirectional stream");
        return;
    }
    if h3 && (*pc).h3.goaway_sent.is_some_and(|g| id >= g) {
        let _ = (*pc).core.conn.stream_shutdown(id, quiche::Shutdown::Read, http3::H3_REQUEST_REJECTED);
        let _ = (*pc).core.conn.stream_shutdown(id, quiche::Shutdown::Write, http3::H3_REQUEST_REJECTED);
        return;
    }
    if h3 && (*ctx).role == Role::Server && !is_uni(id) {
        if let Verdict::Close(reason) = (*pc).core.guard.stream_opened(&(*ctx).settings.limits, id, Instant::now()) {
            close_for_load(pc, reason);
            return;
        }
    }
    let ext_size = (*pc).stream_ext_size.max((*ctx).settings.stream_ext_size);
    let s = stream::create(&mut (*pc).core, id, ext_size, false);
    // An HTTP/3 server announces a request stream with its head (see announce_late).
    if !(h3 && (*ctx).role == Role::Server) {
        stream::announce(s, false);
    }
    stream::queue_read(s);
}

/// Timers due at `now`: quiche's (loss recovery, idle), the limits', a
/// graceful close's grace period.
///
/// # Safety
/// `pc` is a live connection.
pub(crate) unsafe fn on_tick(pc: *mut PeerContext, now: Instant) {
    if (*pc).core.conn.timeout_instant().is_some_and(|t| t <= now) {
        (*pc).core.conn.on_timeout();
        mark_dirty(pc);
    }
    enforce_limits(pc, now);
    if (*pc).close_at.is_some_and(|t| t <= now) {
        (*pc).close_at = None;
        let _ = (*pc).core.conn.close(true, http3::H3_NO_ERROR, b"");
        mark_dirty(pc);
    }
}

/// A client's socket reported `errno` (ICMP unreachable): the connection is over now.
///
/// # Safety
/// `pc` is a live connection.
pub(crate) unsafe fn fail_with_socket_error(pc: *mut PeerContext, errno: i32) {
    if (*pc).finalized() {
        return;
    }
    (*pc).socket_error = Some(errno);
    let _ = (*pc).core.conn.close(false, 0, b"");
    finalize(pc);
}

/// Servers: the limits' deadlines that are due (limits.rs).
///
/// # Safety
/// `pc` is a live connection.
unsafe fn enforce_limits(pc: *mut PeerContext, now: Instant) {
    expire_request_heads(pc, now);
    check_request_bodies(pc, now);
    if matches!((*pc).core.phase, Phase::Handshake | Phase::Open) && (*pc).core.guard.quiet_too_long(now) {
        (*(*pc).core.ctx).stats.connections_closed_idle += 1;
        begin_goaway(pc);
    }
}

/// Request streams still without a complete head at their deadline get 408.
/// Entries whose head arrived (or whose stream is gone) are dropped as they
/// reach the front, so the queue stays as short as the heads still awaited.
///
/// # Safety
/// `pc` is a live connection.
unsafe fn expire_request_heads(pc: *mut PeerContext, now: Instant) {
    while let Some(&(at, id)) = (*pc).core.guard.head_deadlines.front() {
        if (*pc).finalized() {
            break;
        }
        let awaited = stream_at(pc, id).filter(|&s| stream::awaits_head(&*s));
        match awaited {
            None => {
                (*pc).core.guard.head_deadlines.pop_front();
            }
            Some(_) if at > now => break,
            Some(s) => {
                (*pc).core.guard.head_deadlines.pop_front();
                if stream::request_timed_out(s) {
                    request_stalled(pc);
                }
            }
        }
    }
}

/// Request bodies being read that made no progress for the body timeout get
/// 408 (or a reset, once answered); the next check is set for the earliest
/// deadline left.
///
/// # Safety
/// `pc` is a live connection.
unsafe fn check_request_bodies(pc: *mut PeerContext, now: Instant) {
    if (*pc).finalized() || (*pc).core.guard.body_check_at.is_none_or(|t| t > now) {
        return;
    }
    let timeout = Duration::from_millis(u64::from((*(*pc).core.ctx).settings.limits.request_body_timeout_ms));
    let mut next: Option<Instant> = None;
    let mut stalled = Vec::new();
    for s in open_streams(pc) {
        let Some(since) = stream::body_awaited_since(&*s) else { continue };
        if since + timeout <= now {
            stalled.push(s);
        } else {
            next = Some(next.map_or(since + timeout, |t| t.min(since + timeout)));
        }
    }
    (*pc).core.guard.body_check_at = next;
    for s in stalled {
        if (*pc).finalized() {
            return;
        }
        if stream::request_timed_out(s) {
            request_stalled(pc);
        }
    }
}

/// A request of this connection hit a deadline: counted, and past the limit
/// the connection goes.
///
/// # Safety
/// `pc` is a live connection.
unsafe fn request_stalled(pc: *mut PeerContext) {
    mark_dirty(pc);
    if let Verdict::Close(reason) = (*pc).core.guard.request_stalled(&(*(*pc).core.ctx).settings.limits) {
        close_for_load(pc, reason);
    }
}

/// # Safety
/// `pc` is a live connection.
unsafe fn close_for_load(pc: *mut PeerContext, reason: &str) {
    connection::close_for_load(&mut (*pc).core, reason);
}

/// # Safety
/// `pc` is a live connection.
pub(crate) unsafe fn connection_error(pc: *mut PeerContext, code: u64, reason: &str) {
    connection::connection_error(&mut (*pc).core, code, reason);
}

/// # Safety
/// `pc` is a live connection.
unsafe fn open_control_streams(pc: *mut PeerContext) {
    if !is_h3(&*pc) || (*pc).h3.local_control.is_some() {
        return; // raw QUIC, or opened already (in 0-RTT)
    }
    let ctx = (*pc).core.ctx;
    let mut control = Vec::with_capacity(64);
    http3::put_varint(&mut control, http3::STREAM_TYPE_CONTROL);
    let payload = http3::settings_payload(&(*ctx).local_h3_settings());
    let pairs = || http3::parse_settings(&payload).map(|s| s.all).unwrap_or_default();
    crate::qlog::settings(&mut (*pc).core.conn, (*pc).next_uni, pairs, false);
    http3::put_frame_header(&mut control, http3::FRAME_SETTINGS, payload.len() as u64);
    control.extend_from_slice(&payload);
    let control_id = (*pc).next_uni;
    (*pc).h3.local_control = Some(control_id);
    (*pc).h3.uni_out.push((control_id, control));
    (*pc).h3.uni_out.push((control_id + 4, vec![http3::STREAM_TYPE_QPACK_ENCODER as u8]));
    (*pc).h3.uni_out.push((control_id + 8, vec![http3::STREAM_TYPE_QPACK_DECODER as u8]));
    (*pc).next_uni += 12;
    flush_uni_out(pc);
}

/// # Safety
/// `pc` is a live connection.
unsafe fn flush_uni_out(pc: *mut PeerContext) {
    if (*pc).h3.uni_out.is_empty() {
        return;
    }
    let conn = &mut (*pc).core.conn;
    for (id, buf) in (*pc).h3.uni_out.iter_mut() {
        while !buf.is_empty() {
            match conn.stream_send(*id, buf, false) {
                Ok(n) if n > 0 => {
                    buf.drain(..n);
                }
                _ => break,
            }
        }
    }
    (*pc).h3.uni_out.retain(|(_, b)| !b.is_empty());
}

fn is_critical(h3: &H3Session, id: u64) -> bool {
    h3.peer_control == Some(id) || h3.peer_encoder == Some(id) || h3.peer_decoder == Some(id)
}

/// # Safety
/// `pc` is a live connection.
unsafe fn uni_readable(pc: *mut PeerContext, id: u64) {
    let ctx = (*pc).core.ctx;
    let mut buf = (*ctx).take_read_buffer();
    loop {
        match (*pc).core.conn.stream_recv(id, &mut buf) {
            Ok((n, fin)) => {
                if let Err(code) = feed_uni(pc, id, &buf[..n], fin) {
                    connection_error(pc, code, "HTTP/3 control stream error");
                    break;
                }
                if fin || (*pc).finalized() || (*pc).core.streams.contains_key(&id) {
                    // (In the last case it became a WebTransport stream, which reads the rest.)
                    break;
                }
            }
            Err(quiche::Error::StreamReset(_)) => {
                if is_critical(&(*pc).h3, id) {
                    connection_error(pc, http3::H3_CLOSED_CRITICAL_STREAM, "critical stream reset");
                }
                break;
            }
            Err(_) => break,
        }
    }
    (*ctx).give_read_buffer(buf);
}

/// # Safety
/// `pc` is a live connection.
unsafe fn feed_uni(pc: *mut PeerContext, id: u64, data: &[u8], fin: bool) -> Result<(), u64> {
    let mut u = (*pc).h3.uni.remove(&id).unwrap_or_default();
    let result = feed_uni_inner(pc, id, &mut u, data, fin);
    if result.is_ok() && !fin && !(*pc).core.streams.contains_key(&id) {
        (*pc).h3.uni.insert(id, u);
    }
    result
}

/// # Safety
/// `pc` is a live connection.
unsafe fn feed_uni_inner(pc: *mut PeerContext, id: u64, u: &mut UniReader, data: &[u8], fin: bool) -> Result<(), u64> {
    let is_server = (*pc).core.conn.is_server();
    let mut input = data;
    if u.ty.is_none() {
        let Some(ty) = u.varint.feed(&mut input) else { return Ok(()) };
        u.ty = Some(ty);
        let h3 = &mut (*pc).h3;
        match ty {
            http3::STREAM_TYPE_CONTROL if h3.peer_control.is_some() => return Err(http3::H3_STREAM_CREATION_ERROR),
            http3::STREAM_TYPE_CONTROL => h3.peer_control = Some(id),
            http3::STREAM_TYPE_QPACK_ENCODER if h3.peer_encoder.is_some() => {
                return Err(http3::H3_STREAM_CREATION_ERROR)
            }
            http3::STREAM_TYPE_QPACK_ENCODER => h3.peer_encoder = Some(id),
            http3::STREAM_TYPE_QPACK_DECODER if h3.peer_decoder.is_some() => {
                return Err(http3::H3_STREAM_CREATION_ERROR)
            }
            http3::STREAM_TYPE_QPACK_DECODER => h3.peer_decoder = Some(id),
            // We never send MAX_PUSH_ID, so no push stream is allowed.
            http3::STREAM_TYPE_PUSH if is_server => return Err(http3::H3_STREAM_CREATION_ERROR),
            http3::STREAM_TYPE_PUSH => return Err(http3::H3_ID_ERROR),
            http3::STREAM_TYPE_WEBTRANSPORT if (*(*pc).core.ctx).settings.webtransport_sessions > 0 => {}
            _ => {
                // Unknown or reserved stream type: refuse its data (RFC 9114 6.2).
                let _ = (*pc).core.conn.stream_shutdown(id, quiche::Shutdown::Read, http3::H3_STREAM_CREATION_ERROR);
            }
        }
    }
    let ty = u.ty.unwrap_or(u64::MAX);
    if ty == http3::STREAM_TYPE_WEBTRANSPORT && (*(*pc).core.ctx).settings.webtransport_sessions > 0 {
        if let Some(session) = u.varint.feed(&mut input) {
            let ext_size = (*pc).stream_ext_size.max((*(*pc).core.ctx).settings.stream_ext_size);
            let s = stream::create(&mut (*pc).core, id, ext_size, false);
            stream::adopt_webtransport(s, session, input, fin);
        }
        return Ok(());
    }
    if ty == http3::STREAM_TYPE_CONTROL {
        while let Some(ev) = u.reader.next(&mut input) {
            control_frame_event(pc, u, ev)?;
            if (*pc).finalized() {
                return Ok(());
            }
        }
    }
    // QPACK streams: with a zero-capacity table there is nothing to apply. The
    // only instruction a peer's encoder may send is "Set Dynamic Table Capacity 0"
    // (0x20): a larger capacity, or any insertion, is beyond the maximum we
    // advertised (0), a connection error (RFC 9204 4.3.1, 3.2.3).
    if ty == http3::STREAM_TYPE_QPACK_ENCODER && input.iter().any(|&b| b != 0x20) {
        return Err(http3::QPACK_ENCODER_STREAM_ERROR);
    }
    if fin
        && matches!(
            ty,
            http3::STREAM_TYPE_CONTROL | http3::STREAM_TYPE_QPACK_ENCODER | http3::STREAM_TYPE_QPACK_DECODER
        )
    {
        return Err(http3::H3_CLOSED_CRITICAL_STREAM);
    }
    Ok(())
}

fn is_control_frame_we_read(ty: u64) -> bool {
    matches!(ty, http3::FRAME_SETTINGS | http3::FRAME_GOAWAY | http3::FRAME_MAX_PUSH_ID | http3::FRAME_CANCEL_PUSH)
}

/// # Safety
/// `pc` is a live connection.
unsafe fn control_frame_event(pc: *mut PeerContext, u: &mut UniReader, ev: FrameEvent<'_>) -> Result<(), u64> {
    match ev {
        FrameEvent::Start { ty, len } => {
            if !u.settings_seen && ty != http3::FRAME_SETTINGS {
                return Err(http3::H3_MISSING_SETTINGS);
            }
            if ty == http3::FRAME_SETTINGS && u.settings_seen
                || matches!(ty, http3::FRAME_DATA | http3::FRAME_HEADERS | http3::FRAME_PUSH_PROMISE)
                || http3::is_reserved_http2_frame(ty)
            {
                return Err(http3::H3_FRAME_UNEXPECTED);
            }
            if is_control_frame_we_read(ty) && len > http3::MAX_CONTROL_FRAME {
                return Err(http3::H3_EXCESSIVE_LOAD);
            }
            u.frame_ty = ty;
            u.frame_buf.clear();
        }
        FrameEvent::Chunk { ty, data } => {
            if is_control_frame_we_read(ty) {
                u.frame_buf.extend_from_slice(data);
            }
        }
        FrameEvent::End { ty } => match ty {
            http3::FRAME_SETTINGS => {
                let settings = http3::parse_settings(&u.frame_buf)?;
                let control = (*pc).h3.peer_control.unwrap_or_default();
                crate::qlog::settings(&mut (*pc).core.conn, control, || settings.all.clone(), true);
                (*pc).h3.peer_settings = Some(settings);
                u.settings_seen = true;
                (*(*pc).core.ctx).events.push(Event::Settings(PeerContext::handle(pc)));
            }
            http3::FRAME_GOAWAY => {
                let (gid, n) = http3::get_varint(&u.frame_buf).ok_or(http3::H3_FRAME_ERROR)?;
                if n != u.frame_buf.len() {
                    return Err(http3::H3_FRAME_ERROR);
                }
                on_goaway_frame(pc, gid)?;
            }
            http3::FRAME_MAX_PUSH_ID if !(*pc).core.conn.is_server() => return Err(http3::H3_FRAME_UNEXPECTED),
            http3::FRAME_CANCEL_PUSH => {
                let (_push, n) = http3::get_varint(&u.frame_buf).ok_or(http3::H3_FRAME_ERROR)?;
                if n != u.frame_buf.len() {
                    return Err(http3::H3_FRAME_ERROR);
                }
                // No push was ever promised (we send no MAX_PUSH_ID and push
                // nothing), so any push ID is beyond what is allowed (RFC 9114 7.2.3).
                return Err(http3::H3_ID_ERROR);
            }
            _ => {}
        },
    }
    Ok(())
}

/// # Safety
/// `pc` is a live connection.
unsafe fn on_goaway_frame(pc: *mut PeerContext, gid: u64) -> Result<(), u64> {
    let ctx = (*pc).core.ctx;
    if (*pc).core.conn.is_server() {
        // A client's GOAWAY carries a push ID (we have no pushes); it may only
        // stay or shrink (RFC 9114 5.2).
        if (*pc).h3.client_goaway.is_some_and(|prev| gid > prev) {
            return Err(http3::H3_ID_ERROR);
        }
        (*pc).h3.client_goaway = Some(gid);
        return Ok(());
    }
    if !gid.is_multiple_of(4) || (*pc).h3.goaway_received.is_some_and(|prev| gid > prev) {
        return Err(http3::H3_ID_ERROR);
    }
    let first = (*pc).h3.goaway_received.is_none();
    (*pc).h3.goaway_received = Some(gid);
    (*pc).core.phase.goaway_received();
    // Requests at or above the id were not processed: fail them so they can be retried.
    let rejected: Vec<*mut Stream> = open_streams(pc).into_iter().filter(|&s| (*s).id >= gid).collect();
    for s in rejected {
        stream::fail(s, http3::H3_REQUEST_REJECTED);
    }
    if first {
        (*ctx).events.push(Event::Goaway(PeerContext::handle(pc)));
    }
    Ok(())
}

/// Server shutdown: GOAWAY naming the first request we will not process.
///
/// # Safety
/// `pc` is a live connection.
pub(crate) unsafe fn begin_goaway(pc: *mut PeerContext) {
    match (*pc).core.phase.shut_down() {
        ShutdownStep::CloseTransport => {
            // A transport close (NO_ERROR): quiche sends an application close only
            // in 1-RTT packets, which a handshake that has not finished cannot carry,
            // so the peer would wait for its idle timeout instead.
            let _ = (*pc).core.conn.close(false, TRANSPORT_NO_ERROR, b"");
        }
        ShutdownStep::SendGoaway => {
            if is_h3(&*pc) && (*pc).core.conn.is_server() {
                send_goaway(pc);
            }
        }
        ShutdownStep::Nothing => return,
    }
    mark_dirty(pc);
}

/// A server's GOAWAY naming the first request stream it will not process.
///
/// # Safety
/// `pc` is a live connection.
unsafe fn send_goaway(pc: *mut PeerContext) {
    let gid = (*pc).max_peer_bidi.map_or(0, |m| m + 4);
    (*pc).h3.goaway_sent = Some(gid);
    if let Some(control) = (*pc).h3.local_control {
        let mut frame = Vec::with_capacity(16);
        let mut payload = Vec::with_capacity(8);
        http3::put_varint(&mut payload, gid);
        http3::put_frame_header(&mut frame, http3::FRAME_GOAWAY, payload.len() as u64);
        frame.extend_from_slice(&payload);
        (*pc).h3.uni_out.push((control, frame));
    }
}

/// us_quic_socket_make_stream (bidi) / make_uni_stream: ask for one more
/// locally opened stream; on_stream_open fires once MAX_STREAMS allows it.
///
/// # Safety
/// `pc` is a live connection.
pub unsafe fn request_stream(pc: *mut PeerContext, unidirectional: bool) {
    if unidirectional {
        (*pc).pending_uni_requests += 1;
    } else {
        (*pc).pending_stream_requests += 1;
    }
    grant_streams(pc);
}

/// A WebTransport stream for `session` (a CONNECT stream id); on_stream_open
/// fires when stream credit allows, with us_quic_stream_webtransport_session
/// naming the session.
///
/// # Safety
/// `pc` is a live connection.
pub unsafe fn request_webtransport_stream(pc: *mut PeerContext, session: u64, unidirectional: bool) {
    (*pc).pending_webtransport.push_back((session, unidirectional));
    grant_streams(pc);
}

fn webtransport_streams_available(pc: &PeerContext, uni: bool) -> bool {
    let credit = if uni { pc.core.conn.peer_streams_left_uni() } else { pc.core.conn.peer_streams_left_bidi() };
    !streams_available_base(pc) && credit > 0
}

/// # Safety
/// `pc` is a live connection.
unsafe fn grant_streams(pc: *mut PeerContext) {
    let ctx = (*pc).core.ctx;
    loop {
        let mut webtransport = None;
        let uni = if (*pc).pending_stream_requests > 0 && streams_available(&*pc) > 0 {
            (*pc).pending_stream_requests -= 1;
            false
        } else if (*pc).pending_uni_requests > 0 && uni_streams_available(&*pc) > 0 {
            (*pc).pending_uni_requests -= 1;
            true
        } else if let Some(&(session, uni)) = (*pc).pending_webtransport.front() {
            if !webtransport_streams_available(&*pc, uni) {
                return;
            }
            (*pc).pending_webtransport.pop_front();
            webtransport = Some(session);
            uni
        } else {
            return;
        };
        let next = if uni { &mut (*pc).next_uni } else { &mut (*pc).next_bidi };
        let id = *next;
        *next += 4;
        // Creating the stream in quiche now makes it count against MAX_STREAMS.
        let _ = (*pc).core.conn.stream_priority(id, 127, true);
        let ext_size = (*ctx).settings.stream_ext_size;
        let s = stream::create(&mut (*pc).core, id, ext_size, true);
        if let Some(session) = webtransport {
            stream::open_webtransport(s, session);
        }
        stream::announce(s, true);
        if (*pc).finalized() {
            return;
        }
    }
}

/// Locally opened unidirectional streams available now (raw QUIC only: HTTP/3
/// owns its unidirectional streams).
pub fn uni_streams_available(pc: &PeerContext) -> u64 {
    if is_h3(pc) || streams_available_base(pc) {
        return 0;
    }
    pc.core.conn.peer_streams_left_uni()
}

fn streams_available_base(pc: &PeerContext) -> bool {
    // Open, or still in a handshake whose 0-RTT carries streams: a resuming
    // client's streams open even before its first packet (quiche keeps their
    // bytes until 0-RTT or, if the ticket allows none, 1-RTT keys can carry them),
    // so a request made right after connect is never a round trip late.
    let early = pc.core.conn.is_in_early_data() || pc.resuming;
    let open = pc.core.phase == Phase::Open || (pc.core.phase == Phase::Handshake && early);
    !open || pc.deferred_close.is_some() || pc.core.conn.is_closed() || pc.core.conn.is_draining()
}

/// CONNECTION_CLOSE with an application error, as the application asked:
/// applied at the connection's next flush (see `deferred_close`).
///
/// # Safety
/// `pc` is a live connection.
pub unsafe fn close_from_app(pc: *mut PeerContext, code: u64, reason: &[u8]) {
    if (*pc).finalized() {
        return;
    }
    (*pc).deferred_close.get_or_insert((code, reason.to_vec()));
    mark_dirty(pc);
}

/// A received DATAGRAM, as `poll_datagram` read it into the caller's buffer.
pub(crate) enum DatagramOutput {
    /// Raw QUIC: `buf[..len]` is the connection's (on_datagram).
    Connection { len: usize },
    /// HTTP/3: an HTTP datagram (RFC 9297), `buf[start..start + len]`, for the
    /// request stream its quarter stream id names (on_stream_datagram).
    Stream { stream: *mut Stream, start: usize, len: usize },
}

/// The next received DATAGRAM frame (RFC 9221), or None when none is left. On
/// HTTP/3 connections one for a stream that is gone (or not yet here) is
/// dropped (RFC 9297 2.1), and one without a quarter stream id closes the
/// connection.
///
/// # Safety
/// `pc` is a live connection.
pub(crate) unsafe fn poll_datagram(pc: *mut PeerContext, buf: &mut [u8]) -> Option<DatagramOutput> {
    (*pc).datagrams_queued = false;
    while !(*pc).finalized() {
        let len = (*pc).core.conn.dgram_recv(buf).ok()?;
        if !is_h3(&*pc) {
            return Some(DatagramOutput::Connection { len });
        }
        let Some((quarter, used)) = http3::get_varint(&buf[..len]) else {
            connection_error(pc, http3::H3_DATAGRAM_ERROR, "HTTP datagram without a quarter stream id");
            return None;
        };
        if let Some(stream) = quarter.checked_mul(4).and_then(|id| stream_at(pc, id)) {
            return Some(DatagramOutput::Stream { stream, start: used, len: len - used });
        }
    }
    None
}

/// An HTTP datagram (RFC 9297) tied to request stream `s`.
///
/// # Safety
/// `s` is a live stream.
pub unsafe fn send_stream_datagram(s: *mut Stream, data: &[u8]) -> Result<(), DatagramError> {
    if (*s).finished || !(*(*s).conn).is_h3() || (*s).id & 0x2 != 0 {
        return Err(DatagramError::Unavailable);
    }
    let mut framed = Vec::with_capacity(data.len() + 8);
    http3::put_varint(&mut framed, (*s).id / 4);
    framed.extend_from_slice(data);
    send_datagram(of_stream(&*s), &framed)
}

/// Largest HTTP datagram payload for stream `s` now, if datagrams are available.
pub fn stream_datagram_max_size(s: &Stream) -> Option<usize> {
    // SAFETY: a stream's connection outlives it.
    let max = unsafe { (*s.conn).conn.dgram_max_writable_len()? };
    max.checked_sub(http3::varint_len(s.id / 4))
}

/// A peer SETTINGS value: None when the peer's SETTINGS have not arrived yet,
/// Some(None) when it did not send that setting.
pub fn peer_setting(pc: &PeerContext, id: u64) -> Option<Option<u64>> {
    let settings = pc.h3.peer_settings.as_ref()?;
    Some(settings.all.iter().find(|&&(k, _)| k == id).map(|&(_, v)| v))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramError {
    /// DATAGRAM was not negotiated (disabled here or by the peer), or the connection is not open.
    Unavailable,
    /// Larger than the peer and the path allow (see datagram_max_size).
    TooLarge,
    /// The send queue is full; retry after some are sent.
    QueueFull,
}

/// # Safety
/// `pc` is a live connection.
pub unsafe fn send_datagram(pc: *mut PeerContext, data: &[u8]) -> Result<(), DatagramError> {
    if !(*pc).is_established() {
        return Err(DatagramError::Unavailable);
    }
    match (*pc).core.conn.dgram_max_writable_len() {
        None => return Err(DatagramError::Unavailable),
        Some(max) if data.len() > max => return Err(DatagramError::TooLarge),
        _ => {}
    }
    match (*pc).core.conn.dgram_send(data) {
        Ok(()) => {
            mark_dirty(pc);
            Ok(())
        }
        Err(quiche::Error::BufferTooShort) => Err(DatagramError::TooLarge),
        Err(quiche::Error::Done) => Err(DatagramError::QueueFull),
        Err(_) => Err(DatagramError::Unavailable),
    }
}

pub fn streams_available(pc: &PeerContext) -> u64 {
    if streams_available_base(pc) || pc.h3.goaway_received.is_some() {
        return 0;
    }
    pc.core.conn.peer_streams_left_bidi()
}

/// Writes this connection's next packets into `out`, batched for GSO (see
/// outbox.rs). True when `out` filled up with more to send.
///
/// # Safety
/// `pc` is a live connection.
pub(crate) unsafe fn poll_transmits(pc: *mut PeerContext, out: &mut Outbox) -> bool {
    flush_uni_out(pc);
    let mss = (*pc).core.conn.max_send_udp_payload_size();
    loop {
        let Some(room) = out.room(mss) else { return true };
        match (*pc).core.conn.send(room) {
            // Past the amplification budget: not sent (quiche retransmits it later).
            Ok((n, _)) if !(*pc).amplification.send(n) => {}
            Ok((n, info)) => out.commit(info.to, n),
            Err(_) => return false,
        }
    }
}

/// Applies an application close that waited for the first flush after it
/// (see `deferred_close`). True when there was one: its CONNECTION_CLOSE is to send.
///
/// # Safety
/// `pc` is a live connection.
pub(crate) unsafe fn apply_deferred_close(pc: *mut PeerContext) -> bool {
    let Some((code, reason)) = (*pc).deferred_close.take() else { return false };
    let _ = (*pc).core.conn.close(true, code, &reason);
    true
}

/// # Safety
/// `pc` is a live connection.
pub(crate) unsafe fn finalize_if_closed(pc: *mut PeerContext) {
    // A connection the peer closed is over for the application at once: the
    // draining period (RFC 9000 10.2.2) only absorbs stray packets, and an
    // application told late would put new requests on a dead connection.
    let closed_by_peer = (*pc).core.conn.is_draining() && (*pc).core.conn.peer_error().is_some();
    if !(*pc).finalized() && ((*pc).core.conn.is_closed() || closed_by_peer) {
        finalize(pc);
    }
}

/// Close every stream, report the end of the connection, park it for the sweep.
///
/// # Safety
/// `pc` is a live connection, not yet finalized. It stays allocated (parked)
/// until the sweep; after this the application may not be handed it again.
pub(crate) unsafe fn finalize(pc: *mut PeerContext) {
    if !(*pc).core.phase.finalize() {
        return;
    }
    let ctx = (*pc).core.ctx;
    if let Some(ip) = (*pc).admitted_ip.take() {
        (*ctx).connection_counts.release(ip);
    }
    if (*ctx).role == Role::Client {
        // The latest ticket (a server may send more after the first).
        keep_ticket(pc);
    }
    // QUIC's own concurrency limit: quiche closed the connection because the
    // peer opened more streams than MAX_STREAMS allowed.
    const STREAM_LIMIT_ERROR: u64 = 0x4;
    if (*pc).core.conn.local_error().is_some_and(|e| !e.is_app && e.error_code == STREAM_LIMIT_ERROR) {
        (*ctx).stats.connections_closed_for_load += 1;
    }
    let code = close_error(&*pc).map(|(c, _)| c);
    for s in open_streams(pc) {
        stream::abandon(s, code.unwrap_or(http3::H3_REQUEST_CANCELLED));
    }
    if (*ctx).role == Role::Client && !(*pc).hsk_reported {
        (*pc).hsk_reported = true;
        (*ctx).events.push(Event::HandshakeDone(PeerContext::handle(pc), false));
    }
    if (*pc).open_fired {
        (*ctx).events.push(Event::ConnectionClosed(PeerContext::handle(pc)));
    }
    (*ctx).finished.push(PeerContext::handle(pc));
    (*ctx).sweep.connections.push(PeerContext::handle(pc));
}

/// The error of the CONNECTION_CLOSE either side sent: (code, is_app).
pub fn close_error(pc: &PeerContext) -> Option<(u64, bool)> {
    pc.core
        .conn
        .peer_error()
        .or(pc.core.conn.local_error())
        .map(|e| (e.error_code, e.is_app))
        .or_else(|| pc.core.conn.is_timed_out().then_some((0, false)))
}

pub fn status_line(pc: &PeerContext) -> String {
    let st = pc.core.conn.stats();
    let path = pc.core.conn.path_stats().next();
    let state = if pc.finalized() {
        "closed"
    } else if pc.core.conn.is_draining() {
        "draining"
    } else if pc.core.conn.is_established() {
        "established"
    } else {
        "handshake"
    };
    let (rtt, cwnd) = path.map_or((0.0, 0), |p| (p.rtt.as_secs_f64() * 1000.0, p.cwnd));
    format!(
        "state={state} peer={} streams={} rtt_ms={rtt:.3} cwnd={cwnd} sent={} recv={} lost={} bytes_sent={} bytes_recv={}",
        pc.peer_addr,
        pc.core.streams.len(),
        st.sent,
        st.recv,
        st.lost,
        st.sent_bytes,
        st.recv_bytes
    )
}
