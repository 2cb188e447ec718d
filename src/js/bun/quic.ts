// Bun.quic: raw QUIC sockets on rust-quic, in the style of Bun.listen / Bun.connect.
// A server when `server: true`, else a client connection.
import type { Pointer } from "bun:ffi";
import { toArrayBuffer } from "bun:ffi";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { pemText, type TlsInput } from "../internal/quic/tls";
import { acquireLoop, ref, releaseLoop, retire, scheduleFlush } from "../internal/quic/loop";
import { FFIType, callback, handle, quic } from "../internal/quic/native";
import { ECONNREFUSED } from "../internal/quic/constants";
import { bytesOf } from "../internal/quic/bytes";
import { callbackInstaller } from "../internal/quic/streams";
import { verifiesPeer } from "../internal/quic/connect";

const { ptr, i32, u32 } = FFIType;

export interface QuicStreamHandlers {
  open?(stream: QuicStream): void;
  data?(stream: QuicStream, chunk: Buffer): void;
  end?(stream: QuicStream): void;
  drain?(stream: QuicStream): void;
  close?(stream: QuicStream, errorCode?: number): void;
}

export interface QuicOptions {
  hostname?: string;
  port?: number;
  server?: boolean;
  tls?: { cert?: TlsInput; key?: TlsInput; ca?: TlsInput; passphrase?: string; rejectUnauthorized?: boolean; serverName?: string };
  alpn?: string | string[];
  idleTimeout?: number;
  maxStreams?: number;
  datagrams?: boolean;
  open?(socket: QuicServer | QuicConnection): void;
  connection?(conn: QuicConnection): void;
  message?(conn: QuicConnection, data: Buffer): void;
  close?(conn: QuicConnection): void;
  error?(conn: QuicConnection, err: Error): void;
  datagram?(conn: QuicConnection, data: Buffer): void;
  stream?: QuicStreamHandlers;
}

function quicError(message: string, code: string): Error & { code: string } {
  const err = new Error(message) as Error & { code: string };
  err.code = code;
  return err;
}

function copy(data: Pointer, len: number): Buffer {
  return Buffer.from(toArrayBuffer(data, 0, len).slice(0));
}

function validate(o: any): QuicOptions {
  if (o === null || typeof o !== "object") throw new TypeError("Bun.quic expects an options object");
  const isServer = o.server ?? false;
  if (typeof isServer !== "boolean") throw new TypeError("server must be a boolean");
  if (o.hostname !== undefined && typeof o.hostname !== "string") throw new TypeError("hostname must be a string");
  const port = o.port;
  if (isServer ? port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535) : !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(isServer ? "port must be an integer from 0 to 65535" : "port must be an integer from 1 to 65535");
  }
  if (!isServer && !o.hostname) throw new TypeError("hostname is required to connect");
  const alpn = o.alpn ?? "bun-quic";
  for (const p of Array.isArray(alpn) ? alpn : [alpn]) {
    if (typeof p !== "string" || p.length === 0 || Buffer.byteLength(p) > 255) throw new TypeError("alpn must be a string (1-255 bytes) or an array of them");
  }
  if (o.idleTimeout !== undefined && !(typeof o.idleTimeout === "number" && o.idleTimeout > 0)) throw new TypeError("idleTimeout must be a positive number of milliseconds");
  if (o.maxStreams !== undefined && !(Number.isInteger(o.maxStreams) && o.maxStreams > 0)) throw new TypeError("maxStreams must be a positive integer");
  if (o.datagrams !== undefined && typeof o.datagrams !== "boolean") throw new TypeError("datagrams must be a boolean");
  for (const name of ["open", "connection", "message", "close", "error", "datagram"]) {
    if (o[name] !== undefined && typeof o[name] !== "function") throw new TypeError(`${name} must be a function`);
  }
  for (const name of ["open", "data", "end", "drain", "close"]) {
    if (o.stream?.[name] !== undefined && typeof o.stream[name] !== "function") throw new TypeError(`stream.${name} must be a function`);
  }
  if (isServer && (!o.tls || o.tls.cert === undefined || o.tls.key === undefined)) throw new TypeError("tls.cert and tls.key are required for a QUIC server");
  return o;
}

export class QuicStream {
  /** A slot for the application, like Bun.listen's socket.data. */
  data: unknown;
  closed = false;
  constructor(
    readonly ptr: Pointer,
    readonly id: number,
    readonly connection: QuicConnection,
  ) {}

  get bidirectional() {
    return (this.id & 2) === 0;
  }

  /** Bytes accepted now (fewer under flow control: `drain` follows). */
  write(data: string | ArrayBufferView | ArrayBuffer): number {
    if (this.closed) return -1;
    const bytes = bytesOf(data, "data");
    const n = quic().us_quic_stream_write(this.ptr, bytes, bytes.byteLength);
    scheduleFlush();
    return n;
  }

  end() {
    if (this.closed) return;
    quic().us_quic_stream_shutdown(this.ptr);
    scheduleFlush();
  }

  reset(code = 0) {
    if (this.closed) return;
    quic().us_quic_stream_reset_with_code(this.ptr, BigInt(code));
    scheduleFlush();
  }

  stopSending(code = 0) {
    if (this.closed) return;
    quic().us_quic_stream_stop_sending(this.ptr, BigInt(code));
    scheduleFlush();
  }
}

type ReadyState = "connecting" | "open" | "closing" | "closed";

export class QuicConnection {
  readyState: ReadyState;
  data: unknown;
  readonly streams = new Map<Pointer, QuicStream>();
  waiters: ((s: QuicStream) => void)[] = [];
  private defaultStream?: QuicStream;
  private defaultPending: Uint8Array[] = [];
  private defaultRequested = false;
  private info = new BigUint64Array(9);

  constructor(
    public ptr: Pointer | null,
    readonly isServer: boolean,
    readonly endpoint: Endpoint,
  ) {
    this.readyState = isServer ? "open" : "connecting";
  }

  get streamCount() {
    return this.streams.size;
  }

  private text(fn: "us_quic_socket_alpn" | "us_quic_socket_server_name") {
    if (!this.ptr) return "";
    const buf = new Uint8Array(256);
    const n = quic()[fn](this.ptr, buf, buf.byteLength);
    return n > 0 ? Buffer.from(buf.subarray(0, n)).toString() : "";
  }

  get alpn() {
    return this.text("us_quic_socket_alpn");
  }

  get serverName() {
    return this.text("us_quic_socket_server_name") || this.endpoint.serverName;
  }

  get remoteAddress() {
    if (!this.ptr) return "";
    const buf = new Uint8Array(16);
    const len = new Int32Array([16]);
    const port = new Int32Array(1);
    const v6 = new Int32Array(1);
    quic().us_quic_socket_remote_address(this.ptr, buf, len, port, v6);
    return len[0] === 4 ? [...buf.subarray(0, 4)].join(".") : len[0] === 16 ? Buffer.from(buf).toString("hex").replace(/(.{4})(?!$)/g, "$1:") : "";
  }

  get stats() {
    if (this.ptr) quic().us_quic_socket_info(this.ptr, this.info);
    const i = this.info;
    return {
      streamCount: this.streams.size,
      isConnected: this.readyState === "open",
      has0RTT: i[8] === 1n,
      bytesSent: Number(i[4]),
      bytesReceived: Number(i[5]),
      rtt: Number(i[0]) / 1000,
      packetsLost: Number(i[3]),
    };
  }

  /** A new stream; resolves when the peer's stream limit allows it. */
  createStream(options: { bidirectional?: boolean } = {}): Promise<QuicStream> {
    if (options === null || typeof options !== "object") throw new TypeError("createStream options must be an object");
    const bidi = options.bidirectional ?? true;
    if (typeof bidi !== "boolean") throw new TypeError("bidirectional must be a boolean");
    if (this.readyState !== "open" || !this.ptr) return Promise.reject(quicError("the connection is not open", "ERR_QUIC_NOT_OPEN"));
    return new Promise<QuicStream>(resolve => {
      this.waiters.push(resolve);
      const lib = quic();
      if (bidi) lib.us_quic_socket_make_stream(this.ptr);
      else lib.us_quic_socket_make_uni_stream(this.ptr);
      scheduleFlush();
    });
  }

  /** Writes to the connection's default stream (opened on first use). */
  write(data: string | ArrayBufferView | ArrayBuffer): number {
    const bytes = bytesOf(data, "data");
    if (this.defaultStream) return this.defaultStream.write(bytes);
    this.defaultPending.push(bytes.slice());
    if (!this.defaultRequested) {
      this.defaultRequested = true;
      this.createStream().then(s => {
        this.defaultStream = s;
        for (const chunk of this.defaultPending.splice(0)) s.write(chunk);
      }, () => {});
    }
    return bytes.byteLength;
  }

  /** true when queued; false when the send queue is full (try again later). */
  sendDatagram(data: string | ArrayBufferView | ArrayBuffer): boolean {
    const bytes = bytesOf(data, "data");
    if (!this.ptr || this.readyState !== "open") throw quicError("the connection is not open", "ERR_QUIC_NOT_OPEN");
    const r = quic().us_quic_socket_send_datagram(this.ptr, bytes, bytes.byteLength);
    if (r === -1) {
      const max = quic().us_quic_socket_datagram_max_size(this.ptr);
      throw new RangeError(`datagram of ${bytes.byteLength} bytes is larger than the ${max} bytes that fit`);
    }
    if (r === -2) throw quicError("datagrams are not enabled on this connection (datagrams: true on both sides)", "ERR_QUIC_DATAGRAMS_DISABLED");
    scheduleFlush();
    return r === 0;
  }

  close(errorCode = 0, reason = "") {
    if (!this.ptr || this.readyState === "closed" || this.readyState === "closing") return;
    this.readyState = "closing";
    const text = Buffer.from(reason);
    quic().us_quic_socket_close_with_error(this.ptr, BigInt(errorCode), text, text.byteLength);
    scheduleFlush();
  }
}

/** The context side shared by a server and a client: callbacks and object maps. */
abstract class Endpoint {
  ctx: Pointer;
  protected conns = new Map<Pointer, QuicConnection>();
  protected streamObjs = new Map<Pointer, QuicStream>();
  private callbacks: ReturnType<typeof callback>[] = [];
  closedEndpoint = false;
  abstract serverName: string;

  constructor(protected options: QuicOptions, ctx: Pointer) {
    this.ctx = ctx;
    const lib = quic();
    const alpn = Array.isArray(options.alpn) ? options.alpn : [options.alpn ?? "bun-quic"];
    const wire = Buffer.concat(alpn.map(p => Buffer.concat([Buffer.from([Buffer.byteLength(p)]), Buffer.from(p)])));
    lib.us_quic_socket_context_set_raw_alpn(ctx, wire, wire.byteLength);
    lib.us_quic_socket_context_set_datagrams(ctx, options.datagrams ? 1 : 0);
    const max = options.maxStreams ?? 100;
    lib.us_quic_socket_context_set_max_streams(ctx, max, max);
    lib.us_quic_socket_context_set_idle_timeout(ctx, Math.round(options.idleTimeout ?? 30_000));
    const on = callbackInstaller(ctx, this.callbacks);
    on(lib.us_quic_socket_context_on_open, (c: Pointer) => this.onOpen(c), [ptr]);
    on(lib.us_quic_socket_context_on_hsk_done, (c: Pointer, ok: number) => this.onHandshake(c, ok !== 0), [ptr, i32]);
    on(lib.us_quic_socket_context_on_close, (c: Pointer) => this.onClose(c), [ptr]);
    on(lib.us_quic_socket_context_on_datagram, (c: Pointer, data: Pointer, len: number) => {
      const conn = this.conns.get(c);
      if (conn) this.options.datagram?.(conn, copy(data, len));
    }, [ptr, ptr, u32]);
    on(lib.us_quic_socket_context_on_stream_open, (s: Pointer, isClient: number) => this.onStreamOpen(s, isClient !== 0), [ptr, i32]);
    on(lib.us_quic_socket_context_on_stream_data, (s: Pointer, data: Pointer, len: number, fin: number) => {
      const stream = this.streamObjs.get(s);
      if (!stream) return;
      if (len > 0) {
        const chunk = copy(data, len);
        this.options.stream?.data?.(stream, chunk);
        this.options.message?.(stream.connection, chunk);
      }
      if (fin) this.options.stream?.end?.(stream);
    }, [ptr, ptr, u32, i32]);
    on(lib.us_quic_socket_context_on_stream_writable, (s: Pointer) => {
      const stream = this.streamObjs.get(s);
      if (stream) this.options.stream?.drain?.(stream);
    }, [ptr]);
    on(lib.us_quic_socket_context_on_stream_close, (s: Pointer) => {
      const stream = this.streamObjs.get(s);
      if (!stream) return;
      this.streamObjs.delete(s);
      stream.connection.streams.delete(s);
      stream.closed = true;
      const code = Number(lib.us_quic_stream_error_code(s));
      this.options.stream?.close?.(stream, code >= 0 ? code : undefined);
    }, [ptr]);
  }

  protected abstract onOpen(c: Pointer): void;
  protected abstract onHandshake(c: Pointer, ok: boolean): void;

  private onStreamOpen(s: Pointer, locallyOpened: boolean) {
    const lib = quic();
    const conn = this.conns.get(handle(lib.us_quic_stream_socket(s))!);
    if (!conn) return;
    const stream = new QuicStream(s, Number(lib.us_quic_stream_id(s)), conn);
    this.streamObjs.set(s, stream);
    conn.streams.set(s, stream);
    if (locallyOpened) conn.waiters.shift()?.(stream);
    this.options.stream?.open?.(stream);
  }

  protected onClose(c: Pointer) {
    const conn = this.conns.get(c);
    this.conns.delete(c);
    if (!conn) return;
    conn.readyState = "closed";
    conn.ptr = null;
    this.options.close?.(conn);
    this.connectionGone();
  }

  protected connectionGone() {}

  protected freeContext() {
    if (this.closedEndpoint) return;
    this.closedEndpoint = true;
    quic().us_quic_socket_context_free(this.ctx);
    scheduleFlush();
    retire(this.callbacks.splice(0));
  }
}

export class QuicServer extends Endpoint {
  readonly isServer = true;
  readonly port: number;
  readonly hostname: string;
  readyState: ReadyState = "open";
  serverName = "";
  private listen: Pointer | null;

  constructor(options: QuicOptions) {
    const lib = quic();
    const cert = Buffer.from(pemText(options.tls!.cert, "tls.cert"), "latin1");
    const key = Buffer.from(pemText(options.tls!.key, "tls.key"), "latin1");
    const pass = options.tls!.passphrase ? Buffer.from(options.tls!.passphrase) : null;
    const err = new Uint8Array(512);
    const loop = acquireLoop();
    const ctx = handle(lib.us_quic_embed_server_context(loop, cert, cert.byteLength, key, key.byteLength, pass, pass?.byteLength ?? 0, 30, err, err.byteLength));
    if (!ctx) {
      releaseLoop();
      throw new TypeError(`tls: ${Buffer.from(err).toString("utf8").replace(/\0.*$/s, "")}`);
    }
    super(options, ctx);
    ref();
    this.hostname = options.hostname ?? "0.0.0.0";
    this.listen = handle(lib.us_quic_socket_context_listen(ctx, Buffer.from(this.hostname + "\0"), options.port ?? 0, 0, 0));
    if (!this.listen) {
      this.freeContext();
      throw quicError(`Failed to listen for QUIC at ${this.hostname}:${options.port ?? 0}`, "EADDRINUSE");
    }
    this.port = lib.us_quic_listen_socket_port(this.listen);
    queueMicrotask(() => options.open?.(this));
  }

  get connections() {
    return [...this.conns.values()];
  }

  protected onOpen(c: Pointer) {
    const conn = new QuicConnection(c, true, this);
    this.conns.set(c, conn);
    this.options.connection?.(conn);
  }

  protected onHandshake() {}

  close() {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.freeContext();
  }

  stop() {
    this.close();
  }
}

export class QuicClient extends Endpoint {
  connection: QuicConnection;
  serverName: string;

  constructor(options: QuicOptions) {
    const lib = quic();
    const loop = acquireLoop();
    const ctx = handle(lib.us_create_quic_client_context(loop, 0, 8, 8))!;
    super(options, ctx);
    ref();
    this.serverName = options.tls?.serverName ?? (isIP(options.hostname!) ? "" : options.hostname!);
    if (options.tls?.ca !== undefined) {
      const pem = Buffer.from(pemText(options.tls.ca, "tls.ca"), "latin1");
      if (lib.us_quic_socket_context_set_ca(ctx, pem, pem.byteLength) !== 0) {
        this.freeContext();
        throw new TypeError("tls.ca contains no certificate");
      }
    }
    this.connection = new QuicConnection(null, false, this);
    this.connect(options).catch(err => this.fail(err));
  }

  private async connect(options: QuicOptions) {
    const lib = quic();
    const host = options.hostname!.replace(/^\[|\]$/g, "");
    const address = isIP(host) ? host : (await lookup(host)).address;
    const out = new BigUint64Array(1);
    const pending = new BigUint64Array(1);
    const sni = options.tls?.serverName ?? (isIP(host) ? undefined : host);
    const reject = verifiesPeer(options.tls?.rejectUnauthorized) ? 1 : 0;
    const r = lib.us_quic_socket_context_connect(this.ctx, Buffer.from(address + "\0"), options.port!, sni ? Buffer.from(sni + "\0") : null, reject, out, pending, null);
    const c = r === 1 ? handle(Number(out[0])) : null;
    if (!c) throw quicError(`cannot connect to ${host}:${options.port}`, "ECONNREFUSED");
    // (on_open already fired inside connect, before the pointer was known.)
    this.connection.ptr = c;
    this.conns.set(c, this.connection);
    scheduleFlush();
  }

  private fail(err: Error) {
    this.options.error?.(this.connection, err);
    this.connection.readyState = "closed";
    this.freeContext();
  }

  protected onOpen() {}

  protected onHandshake(c: Pointer, ok: boolean) {
    const conn = this.conns.get(c);
    if (!conn) return;
    if (ok) {
      conn.readyState = "open";
      this.options.open?.(conn);
      return;
    }
    const errno = quic().us_quic_socket_errno(c);
    const err =
      errno === ECONNREFUSED
        ? quicError(`connection refused by ${this.options.hostname}:${this.options.port} (no QUIC server on that UDP port)`, "ECONNREFUSED")
        : quicError("QUIC handshake failed (certificate rejected, no common ALPN, or no answer before the handshake timeout)", "ERR_QUIC_HANDSHAKE_FAILED");
    this.options.error?.(conn, err);
  }

  protected connectionGone() {
    this.freeContext();
  }
}

/** Bun.quic(options): a server (`server: true`) or a client connection. */
export function quicSocket(options: QuicOptions): QuicServer | QuicConnection {
  const o = validate(options);
  if (o.server) return new QuicServer(o);
  return new QuicClient(o).connection;
}
