//! The seam between the protocol core and I/O.
//!
//! The core never touches a socket, and never calls the driver: the edge asks
//! the driver to bind, to send a batch of equal-sized datagrams (a GSO batch
//! from the core's outbox) and to close; the driver feeds received datagrams
//! back through `edge::recv_datagram`. The usockets loop is one
//! driver (`usockets_driver`), the in-memory network of the tests is another.

use std::ffi::c_void;
use std::net::SocketAddr;

use crate::outbox::Batch;

/// The driver's handle for one bound UDP socket.
pub type SocketHandle = *mut c_void;

/// `bind`'s flag for a port shared with other sockets (SO_REUSEPORT), as libusockets.h's
/// LIBUS_LISTEN_REUSE_PORT (usockets_driver.rs checks they agree).
pub const LISTEN_REUSE_PORT: i32 = 4;

/// Whose datagrams a bound socket carries: the listen socket the driver hands
/// them back with (`edge::recv_datagram`). Opaque here, so the seam names no
/// core type.
pub type SocketOwner = *mut c_void;

pub enum SendOutcome {
    Sent,
    /// The socket buffer is full after `sent` bytes; the driver calls
    /// `context::socket_writable` when more can go.
    Blocked {
        sent: usize,
    },
    Failed,
}

/// How far a send of several batches got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchesSent {
    /// Batches done with: sent, or dropped after an error that was not a full buffer.
    pub done: usize,
    /// When `done` falls short, the buffer is full (the driver calls
    /// `context::socket_writable` when more can go) after this many bytes of the next batch.
    pub next_sent: usize,
}

pub trait Driver {
    /// Binds a UDP socket whose datagrams go to `owner` (a `ListenSocket`).
    /// With `connect_to` (a client's socket) the socket is connected to that peer,
    /// so ICMP errors come back through `context::socket_error`.
    fn bind(
        &mut self,
        owner: SocketOwner,
        host: Option<&str>,
        port: u16,
        flags: i32,
        connect_to: Option<SocketAddr>,
    ) -> Result<(SocketHandle, SocketAddr), i32>;

    /// Sends `data` as datagrams of `segment_size` bytes (the last may be shorter).
    fn send(&mut self, socket: SocketHandle, to: SocketAddr, data: &[u8], segment_size: usize) -> SendOutcome;

    /// Sends the `batches` of `bytes` (GSO batches to any destinations, as an
    /// outbox holds them), in as few system calls as the driver can.
    fn send_batches(&mut self, socket: SocketHandle, bytes: &[u8], batches: &[Batch]) -> BatchesSent {
        for (done, b) in batches.iter().enumerate() {
            let data = &bytes[b.start..b.start + b.len];
            if let SendOutcome::Blocked { sent } = self.send(socket, b.to, data, b.segment) {
                return BatchesSent { done, next_sent: sent };
            }
        }
        BatchesSent { done: batches.len(), next_sent: 0 }
    }

    fn close(&mut self, socket: SocketHandle);

    /// A socket in a reuse-port group (several processes on one port): from now
    /// on the group sends each short-header datagram to the socket whose index
    /// in the group is the payload's byte at `offset` (the first byte of a
    /// QUIC-LB server ID), and the rest (long headers: new connections) by the
    /// kernel's hash, so a connection whose client moves stays with its process.
    /// Drivers without such groups accept it and do nothing.
    fn steer_by_server_id(&mut self, _socket: SocketHandle, _offset: u32) -> Result<(), i32> {
        Ok(())
    }

    /// The loop this driver runs on, for the C ABI (null for the test network).
    fn loop_ptr(&self) -> *mut c_void {
        std::ptr::null_mut()
    }
}
