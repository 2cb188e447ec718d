//! Deferred cleanup. Anything closed while an engine frame is on the stack (that
//! is, possibly from inside one of the object's own callbacks) is parked here and
//! freed only when the context's depth returns to zero: after the callbacks
//! return, in `us_quic_loop_process` or at the end of the I/O batch.

use crate::context::Context;
use crate::listen_socket::ListenSocket;
use crate::peer_context::PeerContext;
use crate::stream::Stream;

#[derive(Default)]
pub struct Sweep {
    pub streams: Vec<*mut Stream>,
    pub connections: Vec<*mut PeerContext>,
    pub listen_sockets: Vec<*mut ListenSocket>,
}

impl Sweep {
    /// Frees every parked object. Streams first: they point at their connection.
    ///
    /// # Safety
    /// No engine frame of `ctx` may be on the stack (depth zero).
    pub unsafe fn run(ctx: *mut Context) {
        let sweep = &mut (*ctx).sweep;
        if sweep.streams.is_empty() && sweep.connections.is_empty() && sweep.listen_sockets.is_empty() {
            return;
        }
        for s in std::mem::take(&mut sweep.streams) {
            drop(Box::from_raw(s));
        }
        let conns = std::mem::take(&mut (*ctx).sweep.connections);
        for pc in conns {
            (*ctx).connections.retain(|&c| c != pc);
            drop(Box::from_raw(pc));
        }
        for ls in std::mem::take(&mut (*ctx).sweep.listen_sockets) {
            (*ctx).listen_sockets.retain(|&l| l != ls);
            drop(Box::from_raw(ls));
        }
        (*ctx).stats.connections_active = (*ctx).connections.iter().filter(|&&c| !(*c).finalized).count() as u64;
    }
}
