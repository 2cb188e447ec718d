//! rust-quic: QUIC and HTTP/3 for Bun on quiche (BoringSSL), behind the C ABI of
//! upstream Bun's `quic.h` (see `packages/bun-usockets/src/quic.h`).
//!
//! Layers, inside out:
//! - the protocol core, which does no I/O and never calls out, each layer using
//!   only those below it (no import cycle; `tests/layering.rs` checks it):
//!   [`client`] (outbound connects) over [`listen_socket`] (one bound UDP
//!   socket, routing by connection ID) over [`peer_context`] (one connection:
//!   the HTTP/3 session, WebTransport, DATAGRAMs) over [`stream`] over
//!   [`connection`] (what a connection shares with its streams) over
//!   [`context`] (one per server or client: configuration, counters, queues);
//!   under them [`handles`] (how a lower layer names a higher object),
//!   [`events`], [`http3`] (framing and message rules), [`limits`] (per-client
//!   policy), [`tls`], [`outbox`] (the packets a pass writes, sent together),
//!   [`cid`] (connection IDs and the key routing uses);
//! - the [`edge`]: the engine's entry points, run in engine frames; the only
//!   code that calls the application back (draining the events), talks to the
//!   driver and frees;
//! - the [`driver`] seam, with two implementations: the usockets C loop
//!   ([`usockets_driver`]) and an in-memory network (`testing`, behind the
//!   `testing` feature: for the engine tests and fuzz targets only);
//! - the C ABI ([`ffi`]), and [`embed`]: the bridge that runs the loop inside
//!   another event loop (Bun's) with FFI-friendly helpers.
//!
//! Everything runs on the thread of the loop that owns the context.
//!
//! # Safety
//! Every `unsafe fn` states its contract under `# Safety` (`tests/layering.rs`
//! fails on one that does not). The contracts use one word, *live*: an object
//! (context, listen socket, connection, stream, pending connect, usockets loop)
//! is live when this engine or usockets created it and has not freed it, and
//! it is used on the thread that runs its loop. A closed connection or stream
//! stays allocated, parked, until the sweep after its close callback has
//! returned (see [`edge`]), so the application may use it inside that
//! callback, as quic.h promises. Callbacks may re-enter the engine through the
//! C ABI; nothing is freed while an engine frame is on the stack.

pub mod address_validation;
pub mod cid;
pub mod client;
pub mod connection;
pub mod context;
pub mod driver;
pub mod edge;
pub mod embed;
pub mod events;
pub mod ext;
pub mod ffi;
pub mod handles;
pub mod http3;
pub mod keylog;
pub mod limits;
pub mod listen_socket;
pub mod outbox;
pub mod peer_context;
pub mod qlog;
pub mod stream;
pub mod stream_state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;
pub mod usockets_driver;
