//! The event drain: queued events become quic.h callbacks, in order; readable
//! streams and DATAGRAMs are pulled while their callbacks run.
//!
//! On an embedder's engine thread (embed/bridge.rs), which must never call the
//! application, the drain delivers only what reaches no callback, lets the
//! engine answer request heads it can (static routes), and holds the rest, in
//! order, for the host's thread (`deliver_held`).

use std::cell::Cell;
use std::ffi::{c_int, c_uint};

use crate::context::Context;
use crate::events::Event;
use crate::peer_context::{self, DatagramOutput, PeerContext};
use crate::stream::{self, ReadOutput, Stream};

thread_local! {
    static ENGINE_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Makes the calling thread an embedder's engine thread (or not): events that
/// would call the application wait for `deliver_held`. (Tests play both roles
/// on one thread.)
pub fn set_engine_thread(on: bool) {
    ENGINE_THREAD.with(|t| t.set(on));
}

/// Delivers every queued event, including those its callbacks queue. Inside a
/// callback (a nested frame) it returns at once: the running drain goes on.
///
/// # Safety
/// `ctx` is a live context.
pub(super) unsafe fn dispatch(ctx: *mut Context) {
    if (*ctx).dispatching {
        return;
    }
    (*ctx).dispatching = true;
    if ENGINE_THREAD.with(Cell::get) {
        hold_for_host(ctx);
    } else {
        while let Some(event) = (*ctx).events.pop() {
            deliver(ctx, event);
        }
    }
    (*ctx).dispatching = false;
}

/// The host's turn: what its engine thread held, then what that queued.
///
/// # Safety
/// `ctx` is a live context, in an engine frame on the host's thread.
pub(super) unsafe fn deliver_held(ctx: *mut Context) {
    if (*ctx).dispatching {
        return;
    }
    (*ctx).dispatching = true;
    while let Some(event) = (*ctx).held.pop() {
        deliver(ctx, event);
    }
    while let Some(event) = (*ctx).events.pop() {
        deliver(ctx, event);
    }
    (*ctx).dispatching = false;
}

/// # Safety
/// `ctx` is a live context, on an engine thread.
unsafe fn hold_for_host(ctx: *mut Context) {
    while let Some(event) = (*ctx).events.pop() {
        match event {
            // Held heads come back as a StreamReadable, which is held then.
            Event::StreamReadable(s) if stream::head_readable_for_host(Stream::from_handle(s)) => {
                stream::read_head_for_host(Stream::from_handle(s));
            }
            event if reaches_application(ctx, event) => (*ctx).held.push(event),
            event => deliver(ctx, event),
        }
    }
}

/// Whether delivering `event` may call the application (when it cannot, it
/// is delivered on any thread: a close of a stream the engine answered alone).
///
/// # Safety
/// `ctx` is a live context; the event's objects are live.
unsafe fn reaches_application(ctx: *mut Context, event: Event) -> bool {
    let cb = (*ctx).callbacks;
    match event {
        Event::ConnectionOpened(_) => cb.on_open.is_some(),
        Event::HandshakeDone(..) => cb.on_hsk_done.is_some(),
        Event::Settings(_) => cb.on_settings.is_some(),
        Event::Goaway(_) => cb.on_goaway.is_some(),
        Event::ConnectionClosed(_) => cb.on_close.is_some(),
        Event::StreamOpened { .. } => cb.on_stream_open.is_some(),
        Event::StreamReadable(s) => !(*Stream::from_handle(s)).finished,
        Event::StreamWritable(s) => {
            let s = &*Stream::from_handle(s);
            s.announced && !s.finished && cb.on_stream_writable.is_some()
        }
        Event::StreamClosed(s) => (*Stream::from_handle(s)).announced && cb.on_stream_close.is_some(),
        Event::DatagramsReadable(_) => true,
    }
}

/// # Safety
/// `ctx` is a live context.
unsafe fn deliver(ctx: *mut Context, event: Event) {
    let cb = (*ctx).callbacks;
    match event {
        Event::ConnectionOpened(pc) => {
            if let Some(f) = cb.on_open {
                f(pc);
            }
        }
        Event::HandshakeDone(pc, ok) => {
            if let Some(f) = cb.on_hsk_done {
                f(pc, c_int::from(ok));
            }
        }
        Event::Settings(pc) => {
            if let Some(f) = cb.on_settings {
                f(pc);
            }
        }
        Event::Goaway(pc) => {
            if let Some(f) = cb.on_goaway {
                f(pc);
            }
        }
        Event::ConnectionClosed(pc) => {
            if let Some(f) = cb.on_close {
                f(pc);
            }
        }
        Event::StreamOpened { stream, local } => {
            if let Some(f) = cb.on_stream_open {
                f(stream, c_int::from(local));
            }
        }
        Event::StreamReadable(s) => deliver_reads(ctx, Stream::from_handle(s)),
        Event::StreamWritable(s) => {
            if let (false, Some(f)) = ((*Stream::from_handle(s)).finished, cb.on_stream_writable) {
                f(s);
            }
        }
        Event::StreamClosed(s) => {
            if let (true, Some(f)) = ((*Stream::from_handle(s)).announced, cb.on_stream_close) {
                f(s);
            }
            (*ctx).sweep.streams.push(s);
        }
        Event::DatagramsReadable(pc) => deliver_datagrams(ctx, PeerContext::from_handle(pc)),
    }
}

/// Pulls a readable stream until it has nothing more for the application now
/// (or the application paused or closed it in a callback).
///
/// # Safety
/// `ctx` is a live context; `s` is a live stream.
unsafe fn deliver_reads(ctx: *mut Context, s: *mut Stream) {
    while let Some(output) = stream::poll_read(s) {
        let cb = (*ctx).callbacks;
        match output {
            ReadOutput::Headers { announce } => {
                if announce {
                    if let Some(f) = cb.on_stream_open {
                        f(Stream::handle(s), 0);
                    }
                    // Closed in on_stream_open: it hears nothing more but its close.
                    if (*s).finished || (*(*s).conn).finalized() {
                        continue;
                    }
                }
                if let Some(f) = cb.on_stream_headers {
                    f(Stream::handle(s));
                }
            }
            ReadOutput::Data { ptr, len, fin } => {
                if let Some(f) = cb.on_stream_data {
                    f(Stream::handle(s), ptr.cast(), len as c_uint, c_int::from(fin));
                }
            }
        }
    }
}

/// # Safety
/// `ctx` is a live context; `pc` is a live connection.
unsafe fn deliver_datagrams(ctx: *mut Context, pc: *mut PeerContext) {
    let mut buf = (*ctx).take_read_buffer();
    while let Some(datagram) = peer_context::poll_datagram(pc, &mut buf) {
        let cb = (*ctx).callbacks;
        match datagram {
            DatagramOutput::Connection { len } => {
                if let Some(f) = cb.on_datagram {
                    f(PeerContext::handle(pc), buf.as_ptr().cast(), len as c_uint);
                }
            }
            DatagramOutput::Stream { stream, start, len } => {
                if let Some(f) = cb.on_stream_datagram {
                    f(Stream::handle(stream), buf[start..].as_ptr().cast(), len as c_uint);
                }
            }
        }
    }
    (*ctx).give_read_buffer(buf);
}
