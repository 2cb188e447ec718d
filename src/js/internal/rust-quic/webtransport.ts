// WebTransport over HTTP/3 sessions, shared by the server (Bun.serve's
// webtransport handlers) and the client (globalThis.WebTransport). The engine
// links streams to sessions and carries HTTP datagrams; this module turns them
// into the W3C shapes (Web Streams, datagram readable/writable, ready/closed/
// draining) and speaks the capsule protocol on the CONNECT stream (its wire
// format, codes and errors are wt-wire.ts's).
import type { Pointer } from "bun:ffi";
import { toArrayBuffer } from "bun:ffi";
import { scheduleFlush } from "./loop";
import { handle, quic } from "./binding";
import { deliverBody, incomingBody, wakeWriter, type IncomingState } from "./streams";
import { writeAll } from "./write";
import { bytesOf } from "./bytes";
import {
  CAPSULE_CLOSE_SESSION,
  CAPSULE_DRAIN_SESSION,
  CapsuleParser,
  type Capsule,
  H3_MESSAGE_ERROR,
  WT_BUFFERED_STREAM_REJECTED,
  WT_SESSION_GONE,
  WebTransportError,
  appToHttp3,
  encodeCloseCapsule,
  http3ToApp,
} from "./wt-wire";

/** Incoming datagrams kept for a reader that is behind; older ones are dropped (W3C). */
const DATAGRAM_QUEUE = 1024;
/** Streams of a session not known (yet) kept per connection before refusing more. */
const MAX_BUFFERED_STREAMS = 32;
/** Stream opens waiting for credit per session. */
const MAX_PENDING_OPENS = 256;

/** One engine stream of a session: Web Streams over it. */
export class WTStream implements IncomingState {
  body?: ReadableStreamDefaultController<Uint8Array>;
  paused = false;
  closed = false;
  writable?: () => void;
  readable?: ReadableStream<Uint8Array>;
  writableStream?: WritableStream<Uint8Array>;
  session?: WTSession;
  readonly id: number;
  readonly unidirectional: boolean;

  constructor(
    readonly s: Pointer,
    readonly sessionId: number,
    readonly local: boolean,
  ) {
    const lib = quic();
    this.id = Number(lib.us_quic_stream_id(s));
    this.unidirectional = (this.id & 2) !== 0;
    if (!this.unidirectional || !local) {
      this.readable = incomingBody(s, this, () => lib.us_quic_stream_stop_sending(s, appToHttp3(0)));
    }
    if (!this.unidirectional || local) {
      this.writableStream = new WritableStream<Uint8Array>(
        {
          write: async chunk => {
            if (!(await writeAll(s, this, bytesOf(chunk, "chunk")))) throw this.failure();
          },
          close: () => {
            if (!this.closed) lib.us_quic_stream_shutdown(s);
            scheduleFlush();
          },
          abort: reason => {
            if (!this.closed) lib.us_quic_stream_reset_with_code(s, appToHttp3((reason as any)?.streamErrorCode ?? 0));
            scheduleFlush();
          },
        },
        { highWaterMark: 1 },
      );
    }
  }

  failure(code?: bigint) {
    const app = code === undefined || code < 0n ? null : http3ToApp(code);
    if (this.session?.isClosed) return new WebTransportError("the WebTransport session is closed", { source: "session" });
    return new WebTransportError(code !== undefined && code >= 0n ? `stream reset (code ${app ?? "0x" + code.toString(16)})` : "stream closed", {
      source: "stream",
      streamErrorCode: app,
    });
  }

  /** What applications get: W3C bidirectional stream or receive/send stream. */
  get api(): WebTransportStreamLike {
    return { id: this.id, type: this.unidirectional ? "unidirectional" : "bidirectional", readable: this.readable, writable: this.writableStream };
  }

  /** Session over: RESET and STOP_SENDING with WT_SESSION_GONE. */
  abandon() {
    if (this.closed) return;
    quic().us_quic_stream_reset_with_code(this.s, WT_SESSION_GONE);
  }
}

export interface WebTransportStreamLike {
  id: number;
  type: "bidirectional" | "unidirectional";
  readable?: ReadableStream<Uint8Array>;
  writable?: WritableStream<Uint8Array>;
}

export interface SessionHooks {
  datagram?: (data: Uint8Array) => void;
  stream?: (stream: WebTransportStreamLike) => void;
  close?: (code: number, reason: string, error?: Error) => void;
}

export interface CloseInfo {
  closeCode: number;
  reason: string;
}

interface PendingOpen {
  session: WTSession;
  resolve: (st: WTStream) => void;
  reject: (err: unknown) => void;
  cancelled: boolean;
}

/**
 * A WebTransport session on CONNECT stream `connect` of connection `conn`.
 * Either side: the server creates it when it accepts the CONNECT, the client
 * when the 2xx arrives.
 */
export class WTSession {
  /** The CONNECT stream's id; the connection and stream are set by attach(). */
  id = -1;
  conn!: Pointer;
  connect!: Pointer;
  readonly ready: Promise<void>;
  readonly closed: Promise<CloseInfo>;
  readonly draining: Promise<void>;
  readonly datagrams: {
    readable: ReadableStream<Uint8Array>;
    writable: WritableStream<Uint8Array>;
    readonly maxDatagramSize: number;
    incomingHighWaterMark: number;
    outgoingHighWaterMark: number;
  };
  readonly incomingBidirectionalStreams: ReadableStream<WebTransportStreamLike>;
  readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  isClosed = false;
  /** A slot for the application (server.upgradeWebTransport's `data`). */
  data: unknown;
  streams = new Set<WTStream>();
  private resolveReady!: () => void;
  private rejectReady!: (e: unknown) => void;
  private resolveClosed!: (c: CloseInfo) => void;
  private rejectClosed!: (e: unknown) => void;
  private resolveDraining!: () => void;
  private capsules = new CapsuleParser();
  private datagramQueue: Uint8Array[] = [];
  private datagramReader?: ReadableStreamDefaultController<Uint8Array>;
  /** A read is waiting on an empty queue: the next datagram goes straight to it. */
  private datagramWanted = false;
  private bidiIncoming?: ReadableStreamDefaultController<WebTransportStreamLike>;
  private uniIncoming?: ReadableStreamDefaultController<ReadableStream<Uint8Array>>;
  private closeSent = false;

  constructor(
    readonly router: WTRouter,
    public hooks: SessionHooks = {},
  ) {
    this.ready = new Promise((res, rej) => ((this.resolveReady = res), (this.rejectReady = rej)));
    this.closed = new Promise((res, rej) => ((this.resolveClosed = res), (this.rejectClosed = rej)));
    this.draining = new Promise(res => (this.resolveDraining = res));
    this.ready.catch(() => {});
    this.closed.catch(() => {});
    const session = this;
    const readable = new ReadableStream<Uint8Array>(
      {
        start: c => void (this.datagramReader = c),
        pull: c => {
          const next = this.datagramQueue.shift();
          if (next) c.enqueue(next);
          else this.datagramWanted = true;
        },
      },
      { highWaterMark: 0 },
    );
    const writable = new WritableStream<Uint8Array>({
      write: async chunk => {
        if (!this.connect) await this.ready;
        this.sendDatagram(chunk);
      },
    });
    this.datagrams = {
      readable,
      writable,
      get maxDatagramSize() {
        return session.maxDatagramSize();
      },
      incomingHighWaterMark: DATAGRAM_QUEUE,
      outgoingHighWaterMark: DATAGRAM_QUEUE,
    };
    this.incomingBidirectionalStreams = new ReadableStream({ start: c => void (this.bidiIncoming = c) });
    this.incomingUnidirectionalStreams = new ReadableStream({ start: c => void (this.uniIncoming = c) });
  }

  /** The session's CONNECT stream (accepted by the server, or 2xx at the client). */
  attach(conn: Pointer, connect: Pointer) {
    this.conn = conn;
    this.connect = connect;
    this.id = Number(quic().us_quic_stream_id(connect));
    this.router.add(this);
    this.resolveReady();
  }

  /** The session could not be established (handshake, refusal, certificate). */
  fail(err: Error) {
    this.finish(undefined, err);
  }

  maxDatagramSize(): number {
    return this.connect ? Math.max(0, quic().us_quic_stream_datagram_max_size(this.connect)) : 0;
  }

  /** Queues an HTTP datagram: true when queued, false when the queue is full. */
  sendDatagram(data: unknown): boolean {
    if (this.isClosed || !this.connect) throw new DOMException(`the WebTransport session is ${this.isClosed ? "closed" : "not ready"}`, "InvalidStateError");
    const bytes = bytesOf(data, "datagram");
    const r = quic().us_quic_stream_send_datagram(this.connect, bytes, bytes.byteLength);
    if (r === -1) throw new RangeError(`datagram of ${bytes.byteLength} bytes is larger than maxDatagramSize (${this.maxDatagramSize()})`);
    if (r === -2) throw new DOMException("datagrams are not available on this session", "InvalidStateError");
    scheduleFlush();
    return r === 0;
  }

  async createBidirectionalStream(): Promise<WebTransportStreamLike> {
    await this.ready;
    return (await this.router.open(this, false)).api;
  }

  async createUnidirectionalStream(): Promise<WritableStream<Uint8Array>> {
    await this.ready;
    return (await this.router.open(this, true)).writableStream!;
  }

  /** WT_CLOSE_SESSION with the code and reason, then FIN on the CONNECT stream. */
  close(info: Partial<CloseInfo> = {}) {
    if (this.isClosed) return;
    if (!this.connect) return this.finish({ closeCode: info.closeCode ?? 0, reason: String(info.reason ?? "") });
    const code = info.closeCode ?? 0;
    if (!Number.isInteger(code) || code < 0 || code > 0xffffffff) throw new RangeError("closeCode must be a 32-bit unsigned integer");
    const reason = String(info.reason ?? "");
    const lib = quic();
    const capsule = encodeCloseCapsule(code, reason);
    this.closeSent = true;
    lib.us_quic_stream_write(this.connect, capsule, capsule.byteLength);
    lib.us_quic_stream_shutdown(this.connect);
    this.finish({ closeCode: code, reason });
    scheduleFlush();
  }

  /** WT_DRAIN_SESSION: asks the peer to wind the session down (server shutdown). */
  drain() {
    if (this.isClosed || this.closeSent) return;
    const capsule = new Uint8Array([0x80, 0x00, 0x78, 0xae, 0x00]);
    quic().us_quic_stream_write(this.connect, capsule, capsule.byteLength);
    scheduleFlush();
  }

  // ---- from the router (engine callbacks) ----

  connectData(bytes: Uint8Array, fin: boolean) {
    let capsules: Capsule[];
    try {
      capsules = this.capsules.push(bytes);
    } catch (err) {
      quic().us_quic_stream_reset_with_code(this.connect, H3_MESSAGE_ERROR);
      this.finish(undefined, err as Error);
      return;
    }
    for (const c of capsules) {
      if (c.type === CAPSULE_CLOSE_SESSION && c.value.length >= 4) {
        const code = new DataView(c.value.buffer, c.value.byteOffset).getUint32(0);
        const reason = new TextDecoder().decode(c.value.subarray(4));
        if (!this.closeSent) {
          this.closeSent = true;
          quic().us_quic_stream_shutdown(this.connect);
          scheduleFlush();
        }
        this.finish({ closeCode: code, reason });
      } else if (c.type === CAPSULE_DRAIN_SESSION) {
        this.resolveDraining();
      }
    }
    if (fin && !this.isClosed) {
      // A clean FIN without WT_CLOSE_SESSION means code 0, empty reason.
      if (!this.closeSent) {
        this.closeSent = true;
        quic().us_quic_stream_shutdown(this.connect);
        scheduleFlush();
      }
      this.finish({ closeCode: 0, reason: "" });
    }
  }

  /** The CONNECT stream is gone: a reset or the connection closing. */
  connectClosed(errorCode: bigint) {
    if (this.isClosed) return;
    const error =
      errorCode >= 0n
        ? new WebTransportError(`the WebTransport session was reset (error 0x${errorCode.toString(16)})`, { source: "session" })
        : new WebTransportError("the WebTransport session's connection closed", { source: "session" });
    this.finish(undefined, error);
  }

  datagram(bytes: Uint8Array) {
    if (this.isClosed) return;
    if (this.hooks.datagram) return this.hooks.datagram(bytes);
    if (this.datagramWanted) {
      this.datagramWanted = false;
      this.datagramReader!.enqueue(bytes);
    } else {
      this.datagramQueue.push(bytes);
      if (this.datagramQueue.length > DATAGRAM_QUEUE) this.datagramQueue.shift();
    }
  }

  incoming(st: WTStream) {
    st.session = this;
    this.streams.add(st);
    if (this.isClosed) return st.abandon();
    if (this.hooks.stream) return this.hooks.stream(st.api);
    if (st.unidirectional) this.uniIncoming?.enqueue(st.readable!);
    else this.bidiIncoming?.enqueue(st.api);
  }

  private finish(info?: CloseInfo, error?: Error) {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const st of this.streams) st.abandon();
    this.router.sessionEnded(this);
    for (const c of [this.bidiIncoming, this.uniIncoming, this.datagramReader] as ReadableStreamDefaultController<any>[]) {
      try {
        if (error) c.error(error);
        else c.close();
      } catch {}
    }
    this.rejectReady(error ?? new WebTransportError("the WebTransport session closed before it was ready", { source: "session" }));
    if (info) this.resolveClosed(info);
    else this.rejectClosed(error);
    this.hooks.close?.(info?.closeCode ?? 0, info?.reason ?? "", error);
    scheduleFlush();
  }
}

/**
 * What one engine context (a server or the WebTransport client) routes to its
 * sessions. Its engine callbacks ask here first; each method returns true when
 * the stream is a WebTransport one (or a session's CONNECT stream).
 */
export class WTRouter {
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
    const lib = quic();
    const sessionId = Number(lib.us_quic_stream_webtransport_session(s));
    if (sessionId < 0) return false;
    const conn = handle(lib.us_quic_stream_socket(s))!;
    const pending = this.opens.get(conn)?.shift();
    const st = new WTStream(s, sessionId, true);
    this.streams.set(s, st);
    if (!pending || pending.cancelled) {
      lib.us_quic_stream_reset_with_code(s, WT_SESSION_GONE);
      return true;
    }
    st.session = pending.session;
    pending.session.streams.add(st);
    pending.resolve(st);
    return true;
  }

  /** on_stream_headers with US_QUIC_HEADERS_WEBTRANSPORT: a peer's stream. */
  peerStream(s: Pointer) {
    const lib = quic();
    const sessionId = Number(lib.us_quic_stream_webtransport_session(s));
    const conn = handle(lib.us_quic_stream_socket(s))!;
    const st = new WTStream(s, sessionId, false);
    this.streams.set(s, st);
    const session = this.byId.get(WTRouter.key(conn, sessionId));
    if (session) return session.incoming(st);
    const waiting = this.orphans.get(conn) ?? [];
    if (waiting.length >= MAX_BUFFERED_STREAMS) {
      lib.us_quic_stream_reset_with_code(s, WT_BUFFERED_STREAM_REJECTED);
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
