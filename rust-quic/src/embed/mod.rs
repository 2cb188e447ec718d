//! Embedding the engine in another runtime (Bun), through `bun:ffi`; the ABI of
//! `packages/bun-usockets/src/quic_embed.h`.
//!
//! - `bridge`: the engine's loop beside the host's event loop (an engine thread
//!   that runs it and never calls the host, and a baton the host takes to
//!   deliver the callbacks on its own thread);
//! - `abi`: FFI-shaped helpers (PEM contexts, serialized header blocks, a whole
//!   response in one call);
//! - `client_thread`: fetch's client on a thread of its own (request-level
//!   calls under one lock, events through a pipe-woken buffer);
//! - `static_route`: Bun.serve's static `routes`, answered by the engine.
//!
//! The core knows none of this. It offers embedders three seams: one
//! request-head hook (`context::RequestHeadHook`, asked before the application
//! hears of a request; static routes are one), one hold-the-flush flag
//! (`Context::defer_answers`, on for the length of a host iteration), and one
//! hold-the-callbacks mode (`edge::set_engine_thread`, with `edge::deliver_held`
//! on the host's thread).

mod abi;
mod bridge;
mod client_thread;
pub mod static_route;

pub use abi::*;
pub use bridge::*;
pub use client_thread::*;
