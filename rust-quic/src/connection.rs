//! The core of a connection: what it shares with its streams. The QUIC
//! connection, its phase, the stream table, the limits' guard and the
//! bookkeeping a stream's close or resume leaves for the connection.
//!
//! Streams (stream.rs) work on this, not on the whole connection
//! (peer_context.rs, which adds the HTTP/3 session, WebTransport, DATAGRAMs and
//! the stream grants on top and drives its streams): so the layers run one
//! way, connection → stream → core, and a stream's consequences for its
//! connection (a connection error, a cancelled request the limits count, work
//! for the next pass) are recorded here for the connection to act on.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use crate::context::{Context, Protocol};
use crate::handles::{ConnectionHandle, StreamHandle};
use crate::http3;
use crate::limits::{ConnectionGuard, Verdict};

/// A connection's life, in order. (0-RTT will add an early-data phase between
/// `Handshake` and `Open`: streams flowing before the handshake completes.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The handshake is under way.
    Handshake,
    /// Established, and the application told: streams open and flow.
    Open,
    /// GOAWAY sent or received (or shutdown): no new streams; it closes with
    /// H3_NO_ERROR once its last stream is done.
    GoingAway,
    /// Closed by us before it was established (shutdown during the handshake, a
    /// server identity that does not match): CONNECTION_CLOSE is on its way.
    Closing,
    /// Finalized: its streams and on_close are queued; only the sweep touches it now.
    Closed,
}

/// What a local shutdown asks of the connection, by its phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownStep {
    /// Still in its handshake: close it now, with a transport NO_ERROR (an
    /// application close needs 1-RTT packets the handshake cannot carry yet).
    CloseTransport,
    /// Open: send GOAWAY (servers) and close once the last stream is done.
    SendGoaway,
    /// Already going away or closing: nothing more.
    Nothing,
}

impl Phase {
    /// The handshake finished: open, or closing when the peer's identity did not
    /// match (`identity_ok` false). False when it was not in its handshake.
    pub fn handshake_finished(&mut self, identity_ok: bool) -> bool {
        if *self != Phase::Handshake {
            return false;
        }
        *self = if identity_ok { Phase::Open } else { Phase::Closing };
        true
    }

    /// A GOAWAY arrived: an open connection starts going away.
    pub fn goaway_received(&mut self) {
        if *self == Phase::Open {
            *self = Phase::GoingAway;
        }
    }

    /// Local shutdown (us_quic_socket_context_shutdown): what to do now.
    pub fn shut_down(&mut self) -> ShutdownStep {
        match *self {
            Phase::Handshake => {
                *self = Phase::Closing;
                ShutdownStep::CloseTransport
            }
            Phase::Open => {
                *self = Phase::GoingAway;
                ShutdownStep::SendGoaway
            }
            Phase::GoingAway | Phase::Closing | Phase::Closed => ShutdownStep::Nothing,
        }
    }

    /// The connection is over (from any phase). False when it already was.
    pub fn finalize(&mut self) -> bool {
        std::mem::replace(self, Phase::Closed) != Phase::Closed
    }

    /// Streams flow: established and not closing (or, in the handshake, with
    /// 0-RTT data being accepted).
    pub fn streams_flow(self, in_early_data: bool) -> bool {
        match self {
            Phase::Handshake => in_early_data,
            Phase::Open | Phase::GoingAway => true,
            Phase::Closing | Phase::Closed => false,
        }
    }
}

/// Hashes a QUIC stream id for the per-connection tables. SipHash's
/// flooding resistance buys nothing here: a peer can only name ids below the
/// stream limits we grant. A multiply spreads the ids (consecutive ones of a
/// type differ by 4) and the fold brings high bits down to the bucket index.
#[derive(Default)]
pub struct StreamIdHasher(u64);

impl Hasher for StreamIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, id: u64) {
        let x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A table keyed by stream id.
pub type StreamIdMap<V> = HashMap<u64, V, BuildHasherDefault<StreamIdHasher>>;

pub struct ConnectionCore {
    pub ctx: *mut Context,
    /// The connection this is the core of (events and the dirty list name it).
    pub handle: ConnectionHandle,
    pub conn: quiche::Connection,
    /// Open streams by id.
    pub streams: StreamIdMap<StreamHandle>,
    /// Where the connection is in its life.
    pub(crate) phase: Phase,
    /// Servers: this connection's deadlines and allowances (limits.rs).
    pub(crate) guard: ConnectionGuard,
    pub(crate) in_dirty: bool,
    /// The deadline the context's timer heap holds for this connection
    /// (`context::Timers`); entries that differ from it are stale.
    pub(crate) timer_at: Option<Instant>,
    /// Listed in `Timers::stale`: its deadline is recomputed before the next wait.
    pub(crate) timer_stale: bool,
    /// Request heads went to the application in this embedder iteration.
    pub(crate) awaiting_answers: bool,
    /// Streams whose reading the application resumed: their inbox may hold
    /// bytes QUIC no longer lists as readable (ids: a stream may be gone by then).
    pub(crate) resumed_reads: Vec<u64>,
    /// Streams the application is done with whose bytes QUIC may still be
    /// delivering; a graceful close waits for them.
    pub(crate) lingering: Vec<u64>,
    /// Servers: request streams whose head arrived in 0-RTT and waits for the
    /// handshake (`EarlyData::SafeMethods`: not safe to run in replayable data).
    pub(crate) held_for_handshake: Vec<u64>,
}

impl ConnectionCore {
    pub(crate) fn new(ctx: *mut Context, handle: ConnectionHandle, conn: quiche::Connection) -> ConnectionCore {
        ConnectionCore {
            ctx,
            handle,
            conn,
            streams: StreamIdMap::default(),
            phase: Phase::Handshake,
            guard: ConnectionGuard::new(),
            in_dirty: false,
            timer_at: None,
            timer_stale: false,
            awaiting_answers: false,
            resumed_reads: Vec::new(),
            lingering: Vec::new(),
            held_for_handshake: Vec::new(),
        }
    }

    /// Finalized: the application has been told (or will be, by the queue) that
    /// it is over; only the sweep touches it now.
    pub fn finalized(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Established and not over: streams and DATAGRAMs may flow.
    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::GoingAway)
    }

    /// Its streams carry HTTP/3 messages (not raw bytes).
    pub fn is_h3(&self) -> bool {
        // SAFETY: a connection's context outlives it.
        unsafe { (*self.ctx).settings.protocol == Protocol::Http3 }
    }
}

/// The connection has work for the edge's next pass (service, then flush).
///
/// # Safety
/// `core` is the core of a live connection.
pub unsafe fn mark_dirty(core: *mut ConnectionCore) {
    if !(*core).in_dirty && !(*core).finalized() {
        (*core).in_dirty = true;
        (*(*core).ctx).dirty.push((*core).handle);
    }
    (*(*core).ctx).flush_pending = true;
    // Whatever made it dirty may move its deadlines (quiche's timers move
    // with every packet): recomputed before the loop next waits.
    mark_timer_stale(core);
}

/// The connection's deadline may have moved without it being dirty (a limit's
/// timer set while the application reads a head, say): recomputed before the
/// loop next waits. Every change that can bring a deadline earlier must call
/// this or `mark_dirty`; the engine tests check it on every iteration.
///
/// # Safety
/// `core` is the core of a live connection.
pub(crate) unsafe fn mark_timer_stale(core: *mut ConnectionCore) {
    if !(*core).timer_stale && !(*core).finalized() {
        (*core).timer_stale = true;
        (*(*core).ctx).timers.stale.push((*core).handle);
    }
}

/// Closes the connection with an application error; it is serviced next pass.
///
/// # Safety
/// `core` is the core of a live connection.
pub(crate) unsafe fn connection_error(core: *mut ConnectionCore, code: u64, reason: &str) {
    let _ = (*core).conn.close(true, code, reason.as_bytes());
    mark_dirty(core);
}

/// A client cancelled one of its requests (RESET_STREAM or STOP_SENDING).
///
/// # Safety
/// `core` is the core of a live connection.
pub(crate) unsafe fn request_cancelled(core: *mut ConnectionCore) {
    if let Verdict::Close(reason) = (*core).guard.stream_cancelled(&(*(*core).ctx).settings.limits, Instant::now()) {
        close_for_load(core, reason);
    }
}

/// A limit says this client costs too much: H3_EXCESSIVE_LOAD for the connection.
///
/// # Safety
/// `core` is the core of a live connection.
pub(crate) unsafe fn close_for_load(core: *mut ConnectionCore, reason: &str) {
    let c = &(*core).conn;
    if (*core).finalized() || c.local_error().is_some() || c.is_closed() || c.is_draining() {
        return;
    }
    (*(*core).ctx).stats.connections_closed_for_load += 1;
    connection_error(core, http3::H3_EXCESSIVE_LOAD, reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn stream_ids_of_one_type_spread_over_the_buckets() {
        // hashbrown takes the bucket from the low bits and a tag from the top 7.
        let hasher = BuildHasherDefault::<StreamIdHasher>::default();
        for kind in 0..4u64 {
            let hashes: Vec<u64> = (0..64u64).map(|n| hasher.hash_one(n * 4 + kind)).collect();
            let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 63).collect();
            let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
            assert!(buckets.len() >= 32, "stream type {kind}: {} of 64 buckets", buckets.len());
            assert!(tags.len() >= 32, "stream type {kind}: {} tags", tags.len());
        }
        let mut map = StreamIdMap::default();
        map.insert(8u64, 'a');
        assert_eq!(map.get(&8), Some(&'a'));
        assert_eq!(map.get(&12), None);
    }

    const ALL: [Phase; 5] = [Phase::Handshake, Phase::Open, Phase::GoingAway, Phase::Closing, Phase::Closed];

    #[test]
    fn a_handshake_opens_or_closes_on_the_identity_and_happens_once() {
        let mut p = Phase::Handshake;
        assert!(p.handshake_finished(true));
        assert_eq!(p, Phase::Open);
        let mut p = Phase::Handshake;
        assert!(p.handshake_finished(false));
        assert_eq!(p, Phase::Closing);
        for start in &ALL[1..] {
            let mut p = *start;
            assert!(!p.handshake_finished(true), "{start:?}");
            assert_eq!(p, *start);
        }
    }

    #[test]
    fn a_goaway_moves_only_an_open_connection() {
        for start in ALL {
            let mut p = start;
            p.goaway_received();
            assert_eq!(p, if start == Phase::Open { Phase::GoingAway } else { start });
        }
    }

    #[test]
    fn shutdown_closes_a_handshake_drains_an_open_connection_and_is_idempotent() {
        let mut p = Phase::Handshake;
        assert_eq!(p.shut_down(), ShutdownStep::CloseTransport);
        assert_eq!(p, Phase::Closing);
        assert_eq!(p.shut_down(), ShutdownStep::Nothing);
        let mut p = Phase::Open;
        assert_eq!(p.shut_down(), ShutdownStep::SendGoaway);
        assert_eq!(p, Phase::GoingAway);
        assert_eq!(p.shut_down(), ShutdownStep::Nothing);
        let mut p = Phase::Closed;
        assert_eq!(p.shut_down(), ShutdownStep::Nothing);
        assert_eq!(p, Phase::Closed);
    }

    #[test]
    fn finalize_ends_every_phase_once() {
        for start in ALL {
            let mut p = start;
            assert_eq!(p.finalize(), start != Phase::Closed, "{start:?}");
            assert_eq!(p, Phase::Closed);
            assert!(!p.finalize());
        }
    }

    #[test]
    fn streams_flow_only_while_established_or_in_early_data() {
        let flows: Vec<(bool, bool)> = ALL.iter().map(|p| (p.streams_flow(false), p.streams_flow(true))).collect();
        assert_eq!(flows, [(false, true), (true, true), (true, true), (false, false), (false, false)]);
    }
}
