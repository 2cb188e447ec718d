//! What the protocol core reports to the application, in the order it happened.
//!
//! The core never calls the application: where something happens that the
//! application must hear of, it pushes an [`Event`] onto its context's queue and
//! goes on. The edge (`edge/dispatch.rs`) pops the queue and turns each event into the
//! quic.h callback the application registered ([`Callbacks`]). Bytes are not
//! copied into events: a readable stream or a connection with DATAGRAMs waiting
//! is one event, and the edge pulls what it carries (`stream::poll_read`,
//! `peer_context::poll_datagram`) while it calls back, so a stream paused in the
//! middle of a read stops taking bytes from QUIC, and flow control holds.

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_uint};

use crate::handles::{ConnectionHandle, StreamHandle};

// The callbacks take handles where quic.h's take `us_quic_socket_t *` and
// `us_quic_stream_t *`: the same pointers (handles.rs), so the core below the
// C ABI never names the objects' types.
pub type ConnCb = unsafe extern "C" fn(ConnectionHandle);
pub type ConnOkCb = unsafe extern "C" fn(ConnectionHandle, c_int);
pub type StreamOpenCb = unsafe extern "C" fn(StreamHandle, c_int);
pub type StreamCb = unsafe extern "C" fn(StreamHandle);
pub type StreamDataCb = unsafe extern "C" fn(StreamHandle, *const c_char, c_uint, c_int);
pub type DatagramCb = unsafe extern "C" fn(ConnectionHandle, *const c_char, c_uint);
pub type StreamDatagramCb = unsafe extern "C" fn(StreamHandle, *const c_char, c_uint);

/// The application's callbacks (quic.h `us_quic_socket_context_on_*`). Only the
/// edge calls them.
#[derive(Default, Clone, Copy)]
pub struct Callbacks {
    pub on_open: Option<ConnCb>,
    pub on_hsk_done: Option<ConnOkCb>,
    pub on_goaway: Option<ConnCb>,
    pub on_close: Option<ConnCb>,
    pub on_stream_open: Option<StreamOpenCb>,
    pub on_stream_headers: Option<StreamCb>,
    pub on_stream_data: Option<StreamDataCb>,
    pub on_stream_writable: Option<StreamCb>,
    pub on_stream_close: Option<StreamCb>,
    pub on_datagram: Option<DatagramCb>,
    /// HTTP/3 only: the peer's SETTINGS arrived.
    pub on_settings: Option<ConnCb>,
    /// HTTP/3 only: an HTTP datagram (RFC 9297) for a request stream.
    pub on_stream_datagram: Option<StreamDatagramCb>,
}

/// One thing the application hears of. Objects named here stay allocated until
/// the queue is empty: the sweep frees only between edge frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A server connection finished its handshake; a client connection was created.
    ConnectionOpened(ConnectionHandle),
    /// Clients: the handshake succeeded (true), or the connection ended before it did.
    HandshakeDone(ConnectionHandle, bool),
    /// HTTP/3: the peer's SETTINGS arrived.
    Settings(ConnectionHandle),
    /// HTTP/3 clients: the server's first GOAWAY.
    Goaway(ConnectionHandle),
    /// The connection is over; its streams' closes came first.
    ConnectionClosed(ConnectionHandle),
    /// A stream the application is told of; `local` when this side opened it.
    /// Every announced stream gets a `StreamClosed` later.
    StreamOpened { stream: StreamHandle, local: bool },
    /// A stream has bytes, a header block or its end to read (pulled by the edge).
    StreamReadable(StreamHandle),
    /// A stream that was blocked can take more bytes.
    StreamWritable(StreamHandle),
    /// The stream is done; after this the application never sees it again.
    StreamClosed(StreamHandle),
    /// DATAGRAM frames are waiting (pulled by the edge).
    DatagramsReadable(ConnectionHandle),
}

#[derive(Default)]
pub struct EventQueue {
    queue: VecDeque<Event>,
}

impl EventQueue {
    pub fn push(&mut self, event: Event) {
        self.queue.push_back(event);
    }

    pub fn pop(&mut self) -> Option<Event> {
        self.queue.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}
