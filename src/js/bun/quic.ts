// Bun.quic: raw QUIC sockets on rust-quic, in the style of Bun.listen / Bun.connect.
// A server when `server: true`, else a client connection.
import type { Pointer } from "bun:ffi";
import { toArrayBuffer } from "bun:ffi";
import { isIP } from "node:net";
import { clientIdentity, pemText, serverContext, verifiesPeer, type TlsInput } from "../internal/rust-quic/tls";
import { ref, scheduleFlush, unref } from "../internal/rust-quic/loop";
import { handle, quic } from "../internal/rust-quic/binding";
import { EARLY_DATA_ALL, EARLY_DATA_OFF, ECONNREFUSED, SOCKET_INFO_FIELDS } from "../internal/rust-quic/constants";
import { bytesOf, cString } from "../internal/rust-quic/bytes";
import { Endpoint, type ConnectionEvents, type StreamEvents } from "../internal/rust-quic/endpoint";
import { clientEndpoint, dial } from "../internal/rust-quic/client-pool";

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
  /**
   * A server's certificate (`cert`, `key`), or a client's own for servers that ask for one.
   * `requestCert` (server): ask clients for a certificate, checked against `ca` unless
   * `rejectUnauthorized` is false. `rejectUnauthorized`, `serverName` (client): the server's check.
   */
  tls?: { cert?: TlsInput; key?: TlsInput; ca?: TlsInput; passphrase?: string; rejectUnauthorized?: boolean; serverName?: string; requestCert?: boolean };
  alpn?: string | string[];
  idleTimeout?: number;
  maxStreams?: number;
  datagrams?: boolean;
  /** Client: a session ticket from an earlier connection's `getSession()` to resume (maybe of another process). */
  session?: ArrayBufferView;
  /** Server: accept 0-RTT (early data) from resuming clients; anything it carries can be replayed. */
  earlyData?: boolean;
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
  if (o.tls?.requestCert !== undefined && typeof o.tls.requestCert !== "boolean") throw new TypeError("tls.requestCert must be a boolean");
  if (!isServer && o.tls?.requestCert !== undefined) throw new TypeError("tls.requestCert is for a QUIC server");
  if (o.session !== undefined) {
    if (isServer) throw new TypeError("session is for a QUIC client");
    if (!ArrayBuffer.isView(o.session) || o.session.byteLength === 0) throw new TypeError("session must be a Buffer (from getSession())");
  }
  if (o.earlyData !== undefined) {
    if (!isServer) throw new TypeError("earlyData is for a QUIC server (Bun.quic clients resume without sending 0-RTT)");
    if (typeof o.earlyData !== "boolean") throw new TypeError("earlyData must be a boolean");
  }
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
  private info = new BigUint64Array(SOCKET_INFO_FIELDS);

  constructor(
    public ptr: Pointer | null,
    readonly isServer: boolean,
    readonly endpoint: QuicSide,
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

  /** Client: the latest session ticket the server sent (after the handshake), for `session` on a later connection. */
  getSession(): Buffer | undefined {
    if (!this.ptr || this.isServer) return undefined;
    const len = quic().us_quic_socket_session(this.ptr, null, 0);
    if (len <= 0) return undefined;
    const out = Buffer.alloc(len);
    quic().us_quic_socket_session(this.ptr, out, len);
    return out;
  }

  get stats() {
    if (this.ptr) quic().us_quic_socket_info(this.ptr, this.info);
    const i = this.info;
    return {
      streamCount: this.streams.size,
      isConnected: this.readyState === "open",
      has0RTT: i[9] === 1n,
      resumed: i[8] === 1n,
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
      if (bidi) quic().us_quic_socket_make_stream(this.ptr);
      else quic().us_quic_socket_make_uni_stream(this.ptr);
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

/** The engine context's settings for these options (server and client alike). */
function configure(ctx: Pointer, options: QuicOptions) {
  const wire = alpnWire(options.alpn);
  quic().us_quic_socket_context_set_raw_alpn(ctx, wire, wire.byteLength);
  quic().us_quic_socket_context_set_datagrams(ctx, options.datagrams ? 1 : 0);
  const max = options.maxStreams ?? 100;
  quic().us_quic_socket_context_set_max_streams(ctx, max, max);
  quic().us_quic_socket_context_set_idle_timeout(ctx, Math.round(options.idleTimeout ?? 30_000));
  if (options.server) quic().us_quic_socket_context_set_early_data(ctx, options.earlyData ? EARLY_DATA_ALL : EARLY_DATA_OFF);
}

/** The ALPN protocol list in TLS wire form (length-prefixed names). */
function alpnWire(alpn: string | string[] | undefined): Buffer {
  const names = Array.isArray(alpn) ? alpn : [alpn ?? "bun-quic"];
  return Buffer.concat(names.map(p => Buffer.concat([Buffer.from([Buffer.byteLength(p)]), Buffer.from(p)])));
}

/** What a server and a client share: the application's handlers for their connections and streams. */
abstract class QuicSide {
  protected conns = new Map<Pointer, QuicConnection>();
  closedEndpoint = false;
  abstract serverName: string;

  constructor(protected options: QuicOptions) {}

  /** The engine's events for `conn`, as the application's callbacks. */
  protected eventsFor(conn: QuicConnection): ConnectionEvents {
    return {
      onHandshake: ok => this.onHandshake(conn, ok),
      onDatagram: (data, len) => this.options.datagram?.(conn, copy(data, len)),
      onStream: (s, local) => this.streamOpened(conn, s, local),
      onClose: () => this.onClose(conn),
    };
  }

  protected abstract onHandshake(conn: QuicConnection, ok: boolean): void;

  private streamOpened(conn: QuicConnection, s: Pointer, local: boolean): StreamEvents {
    const handlers = this.options.stream;
    const stream = new QuicStream(s, Number(quic().us_quic_stream_id(s)), conn);
    conn.streams.set(s, stream);
    if (local) conn.waiters.shift()?.(stream);
    handlers?.open?.(stream);
    return {
      onData: (_s, data, len, fin) => {
        if (len > 0) {
          const chunk = copy(data, len);
          handlers?.data?.(stream, chunk);
          this.options.message?.(conn, chunk);
        }
        if (fin) handlers?.end?.(stream);
      },
      onWritable: () => handlers?.drain?.(stream),
      onClose: () => {
        conn.streams.delete(s);
        stream.closed = true;
        const code = Number(quic().us_quic_stream_error_code(s));
        handlers?.close?.(stream, code >= 0 ? code : undefined);
      },
    };
  }

  private onClose(conn: QuicConnection) {
    if (conn.ptr) this.conns.delete(conn.ptr);
    conn.readyState = "closed";
    conn.ptr = null;
    this.options.close?.(conn);
    this.connectionGone();
  }

  protected connectionGone() {}
}

export class QuicServer extends QuicSide {
  readonly isServer = true;
  readonly port: number;
  readonly hostname: string;
  readyState: ReadyState = "open";
  serverName = "";
  private listen: Pointer | null;
  private endpoint: Endpoint;

  constructor(options: QuicOptions) {
    super(options);
    const tls = options.tls!;
    const ctx = serverContext({
      certificates: [tls],
      idleTimeoutSeconds: 30,
      certificateError: "tls: ",
      requestCert: tls.requestCert,
      ca: tls.ca,
      rejectUnauthorized: tls.rejectUnauthorized,
    });
    configure(ctx, options);
    this.endpoint = new Endpoint(ctx, c => {
      const conn = new QuicConnection(c, true, this);
      this.conns.set(c, conn);
      return { ...this.eventsFor(conn), onOpen: () => this.options.connection?.(conn) };
    });
    ref();
    this.hostname = options.hostname ?? "0.0.0.0";
    this.listen = handle(quic().us_quic_socket_context_listen(ctx, cString(this.hostname), options.port ?? 0, 0, 0));
    if (!this.listen) {
      this.closedEndpoint = true;
      this.endpoint.free();
      throw quicError(`Failed to listen for QUIC at ${this.hostname}:${options.port ?? 0}`, "EADDRINUSE");
    }
    this.port = quic().us_quic_listen_socket_port(this.listen);
    queueMicrotask(() => options.open?.(this));
  }

  get connections() {
    return [...this.conns.values()];
  }

  protected onHandshake() {}

  close() {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.closedEndpoint = true;
    this.endpoint.free();
  }

  stop() {
    this.close();
  }
}

export class QuicClient extends QuicSide {
  connection: QuicConnection;
  serverName: string;

  constructor(options: QuicOptions) {
    super(options);
    const ca = options.tls?.ca === undefined ? undefined : pemText(options.tls.ca, "tls.ca");
    const identity = clientIdentity(options.tls ?? {});
    const settings = `bun.quic\0${alpnWire(options.alpn).toString("latin1")}\0${options.datagrams ? 1 : 0}\0${options.maxStreams ?? 100}\0${options.idleTimeout ?? 30_000}`;
    const endpoint = clientEndpoint({ ca, identity, key: settings, configure: ctx => configure(ctx, options), fail: message => quicError(message, "ERR_QUIC") });
    const host = options.hostname!.replace(/^\[|\]$/g, "");
    this.serverName = options.tls?.serverName ?? (isIP(host) ? "" : host);
    this.connection = new QuicConnection(null, false, this);
    ref(); // until the connection is gone
    const to = { host, port: options.port!, serverName: options.tls?.serverName, verify: verifiesPeer(options.tls?.rejectUnauthorized) };
    if (options.session) {
      // Offered by the connection dialled next to this server name (or address) and port.
      const t = options.session;
      const ticket = new Uint8Array(t.buffer, t.byteOffset, t.byteLength);
      quic().us_quic_socket_context_add_session(endpoint.ctx, cString(to.serverName ?? host), to.port, to.verify ? 1 : 0, ticket, ticket.byteLength);
    }
    dial(endpoint, to, this.eventsFor(this.connection), message => quicError(message, "ECONNREFUSED")).then(
      c => {
        this.connection.ptr = c;
        this.conns.set(c, this.connection);
      },
      err => this.fail(err),
    );
  }

  private fail(err: Error) {
    this.options.error?.(this.connection, err);
    this.connection.readyState = "closed";
    this.connectionGone();
  }

  protected onHandshake(conn: QuicConnection, ok: boolean) {
    if (ok) {
      conn.readyState = "open";
      this.options.open?.(conn);
      return;
    }
    const errno = conn.ptr ? quic().us_quic_socket_errno(conn.ptr) : 0;
    const err =
      errno === ECONNREFUSED
        ? quicError(`connection refused by ${this.options.hostname}:${this.options.port} (no QUIC server on that UDP port)`, "ECONNREFUSED")
        : quicError("QUIC handshake failed (certificate rejected, no common ALPN, or no answer before the handshake timeout)", "ERR_QUIC_HANDSHAKE_FAILED");
    this.options.error?.(conn, err);
  }

  protected connectionGone() {
    if (this.closedEndpoint) return;
    this.closedEndpoint = true;
    unref();
  }
}

/** Bun.quic(options): a server (`server: true`) or a client connection. */
export function quicSocket(options: QuicOptions): QuicServer | QuicConnection {
  const o = validate(options);
  if (o.server) return new QuicServer(o);
  return new QuicClient(o).connection;
}
