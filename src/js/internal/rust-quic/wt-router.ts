// WebTransport's router: which session and stream an engine callback is
// about, by pointer and by (connection, session id). It opens streams for
// sessions in the order the engine grants them, keeps streams that name a
// session not yet known (a reordered packet) and counts sessions per connection.
import type { Pointer } from "bun:ffi";
import { toArrayBuffer } from "bun:ffi";
import { scheduleFlush } from "./loop";
import { handle, quic } from "./binding";
import { deliverBody, wakeWriter } from "./streams";
import { WT_BUFFERED_STREAM_REJECTED, WT_SESSION_GONE, WebTransportError } from "./wt-wire";
import { WTStream } from "./wt-stream";
import type { SessionRouter, WTSession } from "./wt-session";

/** Streams of a session not known (yet) kept per connection before refusing more. */
const MAX_BUFFERED_STREAMS = 32;
/** Stream opens waiting for credit per session. */
const MAX_PENDING_OPENS = 256;


interface PendingOpen {
  session: WTSession;
  resolve: (st: WTStream) => void;
  reject: (err: unknown) => void;
  cancelled: boolean;
}


/**
 * What one engine context (a server or the WebTransport client) routes to its
 * sessions. Its engine callbacks ask here first; each method returns true when
 * the stream is a WebTransport one (or a session's CONNECT stream).
 */
export class WTRouter implements SessionRouter {
  private sessions = new Map<Pointer, WTSession>();
  private byId = new Map<string, WTSession>();
  private streams = new Map<Pointer, WTStream>();
  /** The engine grants WebTransport streams of a connection in request order. */
  private opens = new Map<Pointer, PendingOpen[]>();
  /** Streams that named a session not known yet (a reordered packet). */
  private orphans = new Map<Pointer, WTStream[]>();
  /** Open sessions per connection (for a server's maxSessions). */
  private perConnection = new Map<Pointer, number>();

  private static key(conn: Pointer, id: number) {
    return `${conn}:${id}`;
  }

  sessionsOn(conn: Pointer): number {
    return this.perConnection.get(conn) ?? 0;
  }

  add(session: WTSession) {
    this.sessions.set(session.connect, session);
    this.byId.set(WTRouter.key(session.conn, session.id), session);
    this.perConnection.set(session.conn, this.sessionsOn(session.conn) + 1);
    const waiting = this.orphans.get(session.conn);
    if (waiting) {
      const mine = waiting.filter(st => st.sessionId === session.id);
      this.orphans.set(session.conn, waiting.filter(st => st.sessionId !== session.id));
      for (const st of mine) session.incoming(st);
    }
  }

  sessionEnded(session: WTSession) {
    if (this.byId.delete(WTRouter.key(session.conn, session.id))) {
      const left = this.sessionsOn(session.conn) - 1;
      if (left > 0) this.perConnection.set(session.conn, left);
      else this.perConnection.delete(session.conn);
    }
    for (const p of this.opens.get(session.conn) ?? []) {
      if (p.session === session && !p.cancelled) {
        p.cancelled = true;
        p.reject(new WebTransportError("the WebTransport session is closed", { source: "session" }));
      }
    }
  }

  open(session: WTSession, uni: boolean): Promise<WTStream> {
    if (session.isClosed) return Promise.reject(new DOMException("the WebTransport session is closed", "InvalidStateError"));
    const queue = this.opens.get(session.conn) ?? [];
    this.opens.set(session.conn, queue);
    if (queue.filter(p => p.session === session && !p.cancelled).length >= MAX_PENDING_OPENS) {
      return Promise.reject(new WebTransportError(`more than ${MAX_PENDING_OPENS} streams waiting for the peer's stream credit`, { source: "session" }));
    }
    return new Promise<WTStream>((resolve, reject) => {
      queue.push({ session, resolve, reject, cancelled: false });
      quic().us_quic_socket_make_webtransport_stream(session.conn, BigInt(session.id), uni ? 1 : 0);
      scheduleFlush();
    });
  }

  /** on_stream_open of a locally opened stream. */
  opened(s: Pointer): boolean {
    const sessionId = Number(quic().us_quic_stream_webtransport_session(s));
    if (sessionId < 0) return false;
    const conn = handle(quic().us_quic_stream_socket(s))!;
    const pending = this.opens.get(conn)?.shift();
    const st = new WTStream(s, sessionId, true);
    this.streams.set(s, st);
    if (!pending || pending.cancelled) {
      quic().us_quic_stream_reset_with_code(s, WT_SESSION_GONE);
      return true;
    }
    st.session = pending.session;
    pending.session.streams.add(st);
    pending.resolve(st);
    return true;
  }

  /** on_stream_headers with US_QUIC_HEADERS_WEBTRANSPORT: a peer's stream. */
  peerStream(s: Pointer) {
    const sessionId = Number(quic().us_quic_stream_webtransport_session(s));
    const conn = handle(quic().us_quic_stream_socket(s))!;
    const st = new WTStream(s, sessionId, false);
    this.streams.set(s, st);
    const session = this.byId.get(WTRouter.key(conn, sessionId));
    if (session) return session.incoming(st);
    const waiting = this.orphans.get(conn) ?? [];
    if (waiting.length >= MAX_BUFFERED_STREAMS) {
      quic().us_quic_stream_reset_with_code(s, WT_BUFFERED_STREAM_REJECTED);
      return;
    }
    waiting.push(st);
    this.orphans.set(conn, waiting);
  }

  drainAll() {
    for (const session of this.sessions.values()) session.drain();
  }

  data(s: Pointer, data: Pointer, len: number, fin: number): boolean {
    const session = this.sessions.get(s);
    if (session) {
      const bytes = len > 0 ? new Uint8Array(toArrayBuffer(data, 0, len).slice(0)) : new Uint8Array(0);
      session.connectData(bytes, fin !== 0);
      return true;
    }
    const st = this.streams.get(s);
    if (!st) return false;
    deliverBody(s, st, data, len, fin !== 0);
    return true;
  }

  writable(s: Pointer): boolean {
    const st = this.streams.get(s);
    if (!st) return this.sessions.has(s);
    wakeWriter(st);
    return true;
  }

  datagram(s: Pointer, data: Pointer, len: number) {
    this.sessions.get(s)?.datagram(new Uint8Array(toArrayBuffer(data, 0, len).slice(0)));
  }

  closed(s: Pointer): boolean {
    const session = this.sessions.get(s);
    if (session) {
      this.sessions.delete(s);
      session.connectClosed(BigInt(quic().us_quic_stream_error_code(s)));
      return true;
    }
    const st = this.streams.get(s);
    if (!st) return false;
    this.streams.delete(s);
    st.closed = true;
    st.session?.streams.delete(st);
    const code = BigInt(quic().us_quic_stream_error_code(s));
    if (st.body) {
      if (code >= 0n) st.body.error(st.failure(code));
      else st.body.close();
      st.body = undefined;
    }
    st.writable?.();
    return true;
  }

  /** on_close of a connection: what was waiting on it fails. */
  connectionClosed(conn: Pointer) {
    for (const p of this.opens.get(conn) ?? []) {
      if (!p.cancelled) p.reject(new WebTransportError("the connection closed", { source: "session" }));
    }
    this.opens.delete(conn);
    for (const st of this.orphans.get(conn) ?? []) this.streams.delete(st.s);
    this.orphans.delete(conn);
    this.perConnection.delete(conn);
  }
}
