//! Handles: how a lower layer names an object of a higher one without knowing
//! its type.
//!
//! The core is layered (context → stream → connection → listen socket → edge;
//! see QUIC.md, "Layers"), and each layer may use only those below it. Yet
//! lower layers must name higher objects: the context lists its connections and
//! parks closed objects for the sweep, an event says which stream it is about,
//! a stream knows its connection's identity for the application. They hold a
//! handle: the object's address, opaque to them. Only the module that owns the
//! type turns a handle back into the object (`PeerContext::from_handle`,
//! `Stream::from_handle`, `ListenSocket::from_handle`), so a layer can store and
//! pass a handle but cannot reach through it.
//!
//! A handle is the address the C ABI hands out for the object (quic.h's opaque
//! `us_quic_socket_t *` and friends), and it is `repr(transparent)` over a
//! pointer, so the callbacks in `events::Callbacks` take handles where C sees
//! pointers. It is valid while the object is: until the edge's sweep frees it.

use std::ffi::c_void;
use std::ptr::NonNull;

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub struct $name(NonNull<c_void>);

        impl $name {
            /// For the owning module's typed conversions only.
            pub(crate) fn from_address(address: NonNull<c_void>) -> $name {
                $name(address)
            }

            /// For the owning module's typed conversions only.
            pub(crate) fn address(self) -> NonNull<c_void> {
                self.0
            }
        }
    };
}

handle!(
    /// A connection (`peer_context::PeerContext`, quic.h `us_quic_socket_t`).
    ConnectionHandle
);
handle!(
    /// A stream (`stream::Stream`, quic.h `us_quic_stream_t`).
    StreamHandle
);
handle!(
    /// A bound UDP socket (`listen_socket::ListenSocket`, quic.h `us_quic_listen_socket_t`).
    ListenSocketHandle
);
