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
        // Ordered by address, so a handle can break ties in a heap.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
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

/// The typed conversions of an owning module: `$owner::handle(ptr)` and
/// `$owner::from_handle(handle)`. Invoked next to the type, so this file names none.
macro_rules! owned_by_handle {
    ($owner:ty, $handle:ty) => {
        impl $owner {
            /// How lower layers name it (handles.rs).
            pub fn handle(object: *mut $owner) -> $handle {
                <$handle>::from_address(std::ptr::NonNull::new(object.cast()).expect("a live object"))
            }

            /// The object a handle names (made by `handle`).
            pub fn from_handle(handle: $handle) -> *mut $owner {
                handle.address().as_ptr().cast()
            }
        }
    };
}

pub(crate) use owned_by_handle;

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
