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

pub struct ConnectionCore {
    pub ctx: *mut Context,
    /// The connection this is the core of (events and the dirty list name it).
    pub handle: ConnectionHandle,
    pub conn: quiche::Connection,
    /// Open streams by id.
    pub streams: HashMap<u64, StreamHandle>,
    /// Where the connection is in its life.
    pub(crate) phase: Phase,
    /// Servers: this connection's deadlines and allowances (limits.rs).
    pub(crate) guard: ConnectionGuard,
    pub(crate) in_dirty: bool,
    /// Request heads went to the application in this embedder iteration.
    pub(crate) awaiting_answers: bool,
    /// Streams whose reading the application resumed: their inbox may hold
    /// bytes QUIC no longer lists as readable (ids: a stream may be gone by then).
    pub(crate) resumed_reads: Vec<u64>,
    /// Streams the application is done with whose bytes QUIC may still be
    /// delivering; a graceful close waits for them.
    pub(crate) lingering: Vec<u64>,
}

impl ConnectionCore {
    pub(crate) fn new(ctx: *mut Context, handle: ConnectionHandle, conn: quiche::Connection) -> ConnectionCore {
        ConnectionCore {
            ctx,
            handle,
            conn,
            streams: HashMap::new(),
            phase: Phase::Handshake,
            guard: ConnectionGuard::new(),
            in_dirty: false,
            awaiting_answers: false,
            resumed_reads: Vec::new(),
            lingering: Vec::new(),
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
pub unsafe fn mark_dirty(core: *mut ConnectionCore) {
    if !(*core).in_dirty && !(*core).finalized() {
        (*core).in_dirty = true;
        (*(*core).ctx).dirty.push((*core).handle);
    }
    (*(*core).ctx).flush_pending = true;
}

/// Closes the connection with an application error; it is serviced next pass.
pub(crate) unsafe fn connection_error(core: *mut ConnectionCore, code: u64, reason: &str) {
    let _ = (*core).conn.close(true, code, reason.as_bytes());
    mark_dirty(core);
}

/// A client cancelled one of its requests (RESET_STREAM or STOP_SENDING).
pub(crate) unsafe fn request_cancelled(core: *mut ConnectionCore) {
    if let Verdict::Close(reason) = (*core).guard.stream_cancelled(&(*(*core).ctx).settings.limits, Instant::now()) {
        close_for_load(core, reason);
    }
}

/// A limit says this client costs too much: H3_EXCESSIVE_LOAD for the connection.
pub(crate) unsafe fn close_for_load(core: *mut ConnectionCore, reason: &str) {
    let c = &(*core).conn;
    if (*core).finalized() || c.local_error().is_some() || c.is_closed() || c.is_draining() {
        return;
    }
    (*(*core).ctx).stats.connections_closed_for_load += 1;
    connection_error(core, http3::H3_EXCESSIVE_LOAD, reason);
}
