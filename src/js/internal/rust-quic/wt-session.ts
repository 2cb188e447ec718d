// A WebTransport session over HTTP/3, shared by the server (Bun.serve's
// webtransport handlers) and the client (globalThis.WebTransport): the W3C
// shapes (Web Streams, datagram readable/writable, ready/closed/draining) and
// the capsule protocol on the CONNECT stream (wire format, codes and errors:
// wt-wire.ts). Its streams come from the router (wt-router.ts), which it
// reaches through SessionRouter.
import type { Pointer } from "bun:ffi";
import { scheduleFlush } from "./loop";
import { quic } from "./binding";
import { bytesOf } from "./bytes";
import { CAPSULE_CLOSE_SESSION, CAPSULE_DRAIN_SESSION, CapsuleParser, type Capsule, H3_MESSAGE_ERROR, WebTransportError, encodeCloseCapsule } from "./wt-wire";
import type { WTStream, WebTransportStreamLike } from "./wt-stream";

/** Incoming datagrams kept for a reader that is behind; older ones are dropped (W3C). */
const DATAGRAM_QUEUE = 1024;

/** What a session asks of the router that links it to its connection's streams. */
export interface SessionRouter {
  add(session: WTSession): void;
  open(session: WTSession, uni: boolean): Promise<WTStream>;
  sessionEnded(session: WTSession): void;
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
    readonly router: SessionRouter,
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
    const capsule = encodeCloseCapsule(code, reason);
    this.closeSent = true;
    quic().us_quic_stream_write(this.connect, capsule, capsule.byteLength);
    quic().us_quic_stream_shutdown(this.connect);
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
