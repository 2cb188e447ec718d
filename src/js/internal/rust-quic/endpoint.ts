// One engine context's callbacks, installed once and routed by pointer: a
// connection's events go to the object registered for it, a stream's to the
// object its connection named when the stream opened. A callback only finds its
// object and forwards. Bun.quic (server and client), fetch and WebTransport's
// clients use it; the HTTP/3 listener keeps its own table (its request path).
import type { JSCallback, Pointer } from "bun:ffi";
import { FFIType, callbackInstaller, handle, quic } from "./binding";
import { retire, scheduleFlush } from "./loop";

const { ptr, i32, u32 } = FFIType;

/** What happens to one stream. `data`'s bytes live only during the call. */
export interface StreamEvents {
  onHeaders?(s: Pointer): void;
  onData?(s: Pointer, data: Pointer, len: number, fin: boolean): void;
  onWritable?(s: Pointer): void;
  onDatagram?(s: Pointer, data: Pointer, len: number): void;
  /** Both directions are done (or reset); the pointer dangles after this returns. */
  onClose(s: Pointer): void;
}

/** What happens to one connection. */
export interface ConnectionEvents {
  /** A server's connection was accepted (its events are registered; the application may act on it). */
  onOpen?(): void;
  onHandshake?(ok: boolean): void;
  /** The peer's HTTP/3 SETTINGS arrived. */
  onSettings?(): void;
  onGoaway?(): void;
  onDatagram?(data: Pointer, len: number): void;
  /** A stream opened (`local`: one we asked for); returns who gets its events, or nothing to drop them. */
  onStream(s: Pointer, local: boolean): StreamEvents | undefined;
  /** The connection is gone (its streams closed first); the pointer dangles after this returns. */
  onClose(): void;
}

export class Endpoint {
  private conns = new Map<Pointer, ConnectionEvents>();
  private streams = new Map<Pointer, StreamEvents>();
  private callbacks: JSCallback[] = [];
  private freed = false;

  /**
   * `accept` is a server's: the events object for a connection a client opened
   * (none refuses nothing; its events are dropped). A client attaches the
   * connections it makes (`attach`), since on_open fires inside connect.
   */
  constructor(
    readonly ctx: Pointer,
    accept?: (c: Pointer) => ConnectionEvents | undefined,
  ) {
    const on = callbackInstaller(ctx, this.callbacks);
    const conns = this.conns;
    const streams = this.streams;
    if (accept) {
      on(quic().us_quic_socket_context_on_open, (c: Pointer) => {
        const events = accept(c);
        if (!events) return;
        conns.set(c, events);
        events.onOpen?.();
      }, [ptr]);
    }
    on(quic().us_quic_socket_context_on_hsk_done, (c: Pointer, ok: number) => conns.get(c)?.onHandshake?.(ok !== 0), [ptr, i32]);
    on(quic().us_quic_socket_context_on_settings, (c: Pointer) => conns.get(c)?.onSettings?.(), [ptr]);
    on(quic().us_quic_socket_context_on_goaway, (c: Pointer) => conns.get(c)?.onGoaway?.(), [ptr]);
    on(quic().us_quic_socket_context_on_datagram, (c: Pointer, d: Pointer, len: number) => conns.get(c)?.onDatagram?.(d, len), [ptr, ptr, u32]);
    on(quic().us_quic_socket_context_on_close, (c: Pointer) => {
      const events = conns.get(c);
      conns.delete(c);
      events?.onClose();
    }, [ptr]);
    on(quic().us_quic_socket_context_on_stream_open, (s: Pointer, local: number) => {
      const events = conns.get(handle(quic().us_quic_stream_socket(s))!)?.onStream(s, local !== 0);
      if (events) streams.set(s, events);
    }, [ptr, i32]);
    on(quic().us_quic_socket_context_on_stream_headers, (s: Pointer) => streams.get(s)?.onHeaders?.(s), [ptr]);
    on(quic().us_quic_socket_context_on_stream_data, (s: Pointer, d: Pointer, len: number, fin: number) => streams.get(s)?.onData?.(s, d, len, fin !== 0), [ptr, ptr, u32, i32]);
    on(quic().us_quic_socket_context_on_stream_writable, (s: Pointer) => streams.get(s)?.onWritable?.(s), [ptr]);
    on(quic().us_quic_socket_context_on_stream_datagram, (s: Pointer, d: Pointer, len: number) => streams.get(s)?.onDatagram?.(s, d, len), [ptr, ptr, u32]);
    on(quic().us_quic_socket_context_on_stream_close, (s: Pointer) => {
      const events = streams.get(s);
      streams.delete(s);
      events?.onClose(s);
    }, [ptr]);
  }

  /** A connection this side opened: its events from now on. */
  attach(c: Pointer, events: ConnectionEvents) {
    this.conns.set(c, events);
  }

  /**
   * Frees the context: what is still open in it closes (its callbacks fire
   * now); a tick later the callbacks are released with the loop use and the
   * one ref its owner took for it (loop.ts `retire`).
   */
  free() {
    if (this.freed) return;
    this.freed = true;
    quic().us_quic_socket_context_free(this.ctx);
    scheduleFlush();
    retire(this.callbacks.splice(0));
  }
}
