// globalThis.WebTransport (W3C WebTransport API) over rust-quic: a QUIC
// connection per session (shared with allowPooling), an extended CONNECT with
// :protocol webtransport, then streams and datagrams through the shared session code.
import type { Pointer } from "bun:ffi";
import { createHash } from "node:crypto";
import { pemText, type TlsInput } from "../internal/quic/tls";
import { encodeHeaders, readHeaders } from "../internal/quic/headers";
import { ref, scheduleFlush, unref } from "../internal/quic/loop";
import { callbackInstaller } from "../internal/quic/streams";
import { connectTo, createClientContext, verifiesPeer } from "../internal/quic/connect";
import { FFIType, callback, handle, quic } from "../internal/quic/native";
import {
  ECONNREFUSED,
  H3_REQUEST_CANCELLED,
  HEADERS_INITIAL,
  HEADERS_WEBTRANSPORT,
  SETTINGS_ENABLE_CONNECT_PROTOCOL,
  SETTINGS_ENABLE_WEBTRANSPORT,
  SETTINGS_H3_DATAGRAM,
  SETTINGS_WT_MAX_SESSIONS,
} from "../internal/quic/constants";
import { WTRouter, WTSession, type CloseInfo, type WebTransportStreamLike } from "../internal/quic/webtransport";
import { WebTransportError } from "../internal/quic/wt-wire";

const { ptr, i32, u32 } = FFIType;

export interface WebTransportHash {
  algorithm: string;
  value: ArrayBuffer | ArrayBufferView;
}

export interface WebTransportOptions {
  allowPooling?: boolean;
  requireUnreliable?: boolean;
  congestionControl?: "default" | "throughput" | "low-latency";
  /** Trust the server's certificate by its SHA-256 hash instead of a CA (W3C). */
  serverCertificateHashes?: WebTransportHash[];
  /** Bun extension, as in fetch: verification and extra CAs. */
  tls?: { rejectUnauthorized?: boolean; ca?: TlsInput; serverName?: string };
}

/** One session's progress: its CONNECT stream on a (maybe shared) connection. */
class Attempt {
  connect: Pointer | null = null;
  requested = false;
  constructor(
    readonly session: WTSession,
    readonly url: URL,
  ) {}
}

/** A QUIC connection carrying one session, or several with allowPooling. */
class Connection {
  conn: Pointer | null = null;
  handshakeDone = false;
  settingsSeen = false;
  closing = false;
  attempts: Attempt[] = [];
  constructor(
    readonly poolKey: string | null,
    readonly hashes: Uint8Array[] | null,
  ) {}
}

class ClientContext {
  ctx: Pointer;
  router = new WTRouter();
  private conns = new Map<Pointer, Connection>();
  private pool = new Map<string, Connection>();
  private callbacks: ReturnType<typeof callback>[] = [];

  constructor(ca: string | undefined) {
    const lib = quic();
    const ctx = createClientContext(ca, message => new WebTransportError(message, { source: "session" }));
    this.ctx = ctx;
    lib.us_quic_socket_context_set_webtransport(ctx, 16);
    const router = this.router;
    const on = callbackInstaller(ctx, this.callbacks);
    on(lib.us_quic_socket_context_on_hsk_done, (c: Pointer, ok: number) => this.onHandshake(c, ok !== 0), [ptr, i32]);
    on(lib.us_quic_socket_context_on_settings, (c: Pointer) => {
      const conn = this.conns.get(c);
      if (conn) {
        conn.settingsSeen = true;
        this.maybeConnect(conn);
      }
    }, [ptr]);
    on(lib.us_quic_socket_context_on_close, (c: Pointer) => {
      const conn = this.conns.get(c);
      this.conns.delete(c);
      router.connectionClosed(c);
      if (!conn) return;
      this.forget(conn);
      for (const a of conn.attempts) a.session.fail(new WebTransportError("the WebTransport connection closed", { source: "session" }));
      unref();
    }, [ptr]);
    on(lib.us_quic_socket_context_on_stream_open, (s: Pointer, local: number) => {
      // A server's stream waits for its WebTransport header (on_stream_headers).
      if (!local || router.opened(s)) return;
      const conn = this.conns.get(handle(lib.us_quic_stream_socket(s))!);
      const a = conn?.attempts.find(x => x.requested && !x.connect);
      if (!a) return lib.us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED);
      a.connect = s;
      this.sendConnect(conn!, a, s);
    }, [ptr, i32]);
    on(lib.us_quic_socket_context_on_stream_headers, (s: Pointer) => this.onHeaders(s), [ptr]);
    on(lib.us_quic_socket_context_on_stream_data, (s: Pointer, d: Pointer, len: number, fin: number) => router.data(s, d, len, fin), [ptr, ptr, u32, i32]);
    on(lib.us_quic_socket_context_on_stream_writable, (s: Pointer) => router.writable(s), [ptr]);
    on(lib.us_quic_socket_context_on_stream_datagram, (s: Pointer, d: Pointer, len: number) => router.datagram(s, d, len), [ptr, ptr, u32]);
    on(lib.us_quic_socket_context_on_stream_close, (s: Pointer) => {
      router.closed(s);
      const conn = this.conns.get(handle(lib.us_quic_stream_socket(s))!);
      const a = conn?.attempts.find(x => x.connect === s);
      if (!conn || !a) return;
      a.session.fail(new WebTransportError("the WebTransport session's stream was reset before the server answered", { source: "session" }));
      this.finishAttempt(conn, a);
    }, [ptr]);
  }

  /** A session is over: its connection closes with its last session. */
  private finishAttempt(conn: Connection, a: Attempt) {
    conn.attempts = conn.attempts.filter(x => x !== a);
    if (conn.attempts.length > 0 || !conn.conn) return;
    conn.closing = true;
    this.forget(conn);
    quic().us_quic_socket_close(conn.conn);
    scheduleFlush();
  }

  private forget(conn: Connection) {
    if (conn.poolKey && this.pool.get(conn.poolKey) === conn) this.pool.delete(conn.poolKey);
  }

  async start(a: Attempt, host: string, port: number, serverName: string | undefined, verify: boolean, hashes: Uint8Array[] | null, pooling: boolean) {
    const key = pooling ? `${host}:${port}|${serverName ?? ""}|${verify}|${(hashes ?? []).map(h => Buffer.from(h).toString("hex")).join(",")}` : null;
    const pooled = key ? this.pool.get(key) : undefined;
    if (pooled && !pooled.closing) {
      pooled.attempts.push(a);
      return this.maybeConnect(pooled);
    }
    const conn = new Connection(key, hashes);
    conn.attempts.push(a);
    if (key) this.pool.set(key, conn);
    ref(); // a connection keeps the process alive; unref at on_close
    try {
      conn.conn = await connectTo(this.ctx, host, port, serverName, verify, message => new WebTransportError(message, { source: "session" }));
    } catch (err) {
      unref();
      this.forget(conn);
      for (const x of conn.attempts) x.session.fail(err as Error);
      return;
    }
    this.conns.set(conn.conn, conn);
    scheduleFlush();
  }

  private failConnection(conn: Connection, message: string) {
    for (const a of conn.attempts) a.session.fail(new WebTransportError(message, { source: "session" }));
    conn.attempts = [];
    conn.closing = true;
    this.forget(conn);
    if (conn.conn) quic().us_quic_socket_close(conn.conn);
    scheduleFlush();
  }

  private onHandshake(c: Pointer, ok: boolean) {
    const conn = this.conns.get(c);
    if (!conn) return;
    if (!ok) {
      const refused = quic().us_quic_socket_errno(c) === ECONNREFUSED;
      return this.failConnection(conn, refused ? "the server refused the QUIC connection" : "the QUIC/TLS handshake failed (certificate rejected or no answer)");
    }
    if (conn.hashes) {
      const lib = quic();
      const der = new Uint8Array(Math.max(0, lib.us_quic_socket_peer_certificate(c, null, 0)));
      lib.us_quic_socket_peer_certificate(c, der, der.byteLength);
      const digest = createHash("sha256").update(der).digest();
      if (!conn.hashes.some(h => Buffer.from(h).equals(digest))) return this.failConnection(conn, "the server's certificate matches none of serverCertificateHashes");
    }
    conn.handshakeDone = true;
    this.maybeConnect(conn);
  }

  /** After the handshake and the server's SETTINGS: an extended CONNECT per waiting session. */
  private maybeConnect(conn: Connection) {
    if (!conn.handshakeDone || !conn.settingsSeen || !conn.conn) return;
    const lib = quic();
    const setting = (id: bigint) => {
      const v = new BigUint64Array(1);
      return lib.us_quic_socket_peer_setting(conn.conn, id, v) === 1 ? v[0] : 0n;
    };
    const wt = setting(SETTINGS_ENABLE_WEBTRANSPORT) === 1n || setting(SETTINGS_WT_MAX_SESSIONS) > 0n;
    if (setting(SETTINGS_ENABLE_CONNECT_PROTOCOL) !== 1n || setting(SETTINGS_H3_DATAGRAM) !== 1n || !wt) {
      return this.failConnection(conn, "the server does not support WebTransport over HTTP/3 (no WebTransport SETTINGS)");
    }
    for (const a of conn.attempts) {
      if (a.requested) continue;
      a.requested = true;
      lib.us_quic_socket_make_stream(conn.conn);
    }
    scheduleFlush();
  }

  private sendConnect(conn: Connection, a: Attempt, s: Pointer) {
    const fields: [string, string][] = [
      [":method", "CONNECT"],
      [":protocol", "webtransport"],
      [":scheme", "https"],
      [":authority", a.url.host],
      [":path", a.url.pathname + a.url.search],
      ["sec-webtransport-http3-draft02", "1"],
      ["user-agent", `Bun/${Bun.version} (rust-quic)`],
    ];
    const block = encodeHeaders(fields);
    if (quic().us_quic_embed_send_headers(s, block, block.byteLength, 0) !== 0) {
      a.session.fail(new WebTransportError("could not send the CONNECT request", { source: "session" }));
      quic().us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED);
    }
    scheduleFlush();
  }

  private onHeaders(s: Pointer) {
    const lib = quic();
    const kind = lib.us_quic_stream_headers_kind(s);
    if (kind === HEADERS_WEBTRANSPORT) return this.router.peerStream(s);
    if (kind !== HEADERS_INITIAL) return;
    const c = handle(lib.us_quic_stream_socket(s))!;
    const a = this.conns.get(c)?.attempts.find(x => x.connect === s);
    if (!a) return;
    const status = Number(readHeaders(s).find(([n]) => n === ":status")?.[1] ?? 0);
    if (status < 200 || status > 299) {
      a.session.fail(new WebTransportError(`the server refused the WebTransport session (status ${status})`, { source: "session" }));
      lib.us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED);
      return;
    }
    a.session.attach(c, s);
  }
}

const contexts = new Map<string, ClientContext>();

function hashesFrom(list: WebTransportHash[] | undefined): Uint8Array[] | null {
  if (list === undefined) return null;
  if (!Array.isArray(list)) throw new TypeError("serverCertificateHashes must be an array");
  return list.map((h, i) => {
    if (h?.algorithm !== "sha-256") throw new TypeError(`serverCertificateHashes[${i}].algorithm must be "sha-256"`);
    const v = h.value;
    if (v instanceof ArrayBuffer) return new Uint8Array(v);
    if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    throw new TypeError(`serverCertificateHashes[${i}].value must be an ArrayBuffer or ArrayBufferView`);
  });
}

export class WebTransport {
  readonly #session: WTSession;
  readonly reliability = "supports-unreliable";
  readonly congestionControl: string;
  readonly protocol = "";

  constructor(url: string | URL, options: WebTransportOptions = {}) {
    let parsed: URL;
    try {
      parsed = new URL(String(url));
    } catch {
      throw new DOMException(`WebTransport: invalid URL ${String(url)}`, "SyntaxError");
    }
    if (parsed.protocol !== "https:") throw new DOMException(`WebTransport needs an https: URL (got ${parsed.protocol})`, "SyntaxError");
    if (parsed.hash) throw new DOMException("WebTransport URLs cannot have a fragment", "SyntaxError");
    if (options === null || typeof options !== "object") throw new TypeError("WebTransport options must be an object");
    const hashes = hashesFrom(options.serverCertificateHashes);
    const tls = options.tls ?? {};
    if (typeof tls !== "object") throw new TypeError("tls must be an object");
    this.congestionControl = options.congestionControl ?? "default";
    const ca = tls.ca === undefined ? undefined : pemText(tls.ca, "tls.ca");
    let client = contexts.get(ca ?? "");
    if (!client) contexts.set(ca ?? "", (client = new ClientContext(ca)));
    this.#session = new WTSession(client.router);
    const verify = !hashes && verifiesPeer(tls.rejectUnauthorized);
    const attempt = new Attempt(this.#session, parsed);
    void client.start(attempt, parsed.hostname, Number(parsed.port || 443), tls.serverName, verify, hashes, options.allowPooling === true);
  }

  get ready(): Promise<void> {
    return this.#session.ready;
  }
  get closed(): Promise<CloseInfo> {
    return this.#session.closed;
  }
  get draining(): Promise<void> {
    return this.#session.draining;
  }
  get datagrams() {
    return this.#session.datagrams;
  }
  get incomingBidirectionalStreams(): ReadableStream<WebTransportStreamLike> {
    return this.#session.incomingBidirectionalStreams;
  }
  get incomingUnidirectionalStreams(): ReadableStream<ReadableStream<Uint8Array>> {
    return this.#session.incomingUnidirectionalStreams;
  }
  createBidirectionalStream(): Promise<WebTransportStreamLike> {
    return this.#session.createBidirectionalStream();
  }
  createUnidirectionalStream(): Promise<WritableStream<Uint8Array>> {
    return this.#session.createUnidirectionalStream();
  }
  close(info?: Partial<CloseInfo>) {
    this.#session.close(info);
  }
  async getStats() {
    return { datagrams: { droppedIncoming: 0, expiredOutgoing: 0, lostOutgoing: 0 } };
  }
  static readonly supportsReliableOnly = false;
}

export { WebTransportError };
