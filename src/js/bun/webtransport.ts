// globalThis.WebTransport (W3C WebTransport API) over rust-quic: a QUIC
// connection per session (shared with allowPooling), an extended CONNECT with
// :protocol webtransport, then streams and datagrams through the shared session code.
import type { Pointer } from "bun:ffi";
import { createHash } from "node:crypto";
import { clientIdentity, pemText, verifiesPeer, type ClientIdentity, type TlsInput } from "../internal/rust-quic/tls";
import { encodeHeaders, readHeaders } from "../internal/rust-quic/headers";
import { ref, scheduleFlush, unref } from "../internal/rust-quic/loop";
import { quic } from "../internal/rust-quic/binding";
import { ClientEndpoint, ConnectionPool, clientEndpoint, dial, poolKey, type Destination } from "../internal/rust-quic/client-pool";
import type { ConnectionEvents, StreamEvents } from "../internal/rust-quic/endpoint";
import {
  ECONNREFUSED,
  H3_REQUEST_CANCELLED,
  HEADERS_INITIAL,
  HEADERS_WEBTRANSPORT,
  SETTINGS_ENABLE_CONNECT_PROTOCOL,
  SETTINGS_ENABLE_WEBTRANSPORT,
  SETTINGS_H3_DATAGRAM,
  SETTINGS_WT_MAX_SESSIONS,
} from "../internal/rust-quic/constants";
import { WTRouter } from "../internal/rust-quic/wt-router";
import { WTSession, type CloseInfo } from "../internal/rust-quic/wt-session";
import type { WebTransportStreamLike } from "../internal/rust-quic/wt-stream";
import { WebTransportError } from "../internal/rust-quic/wt-wire";


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
  /** Bun extension, as in fetch: trust (`ca`, `rejectUnauthorized`, `serverName`) and a client certificate (`cert`, `key`, `passphrase`) for servers that ask for one. */
  tls?: { rejectUnauthorized?: boolean; ca?: TlsInput; serverName?: string; cert?: TlsInput; key?: TlsInput; passphrase?: string };
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

/** WebTransport's client sessions and streams, by pointer (one router for every client endpoint). */
const router = new WTRouter();
/** Connections shared by allowPooling sessions. */
const pool = new ConnectionPool<Connection>();

const sessionError = (message: string) => new WebTransportError(message, { source: "session" });

/** A QUIC connection carrying one session, or several with allowPooling. */
class Connection implements ConnectionEvents {
  conn: Pointer | null = null;
  handshakeDone = false;
  settingsSeen = false;
  closing = false;
  attempts: Attempt[] = [];
  constructor(
    readonly poolKey: string | null,
    readonly hashes: Uint8Array[] | null,
  ) {}

  async start(endpoint: ClientEndpoint, to: Destination) {
    ref(); // a connection keeps the process alive; unref at on_close
    try {
      this.conn = await dial(endpoint, to, this, sessionError);
    } catch (err) {
      unref();
      pool.forget(this.poolKey, this);
      for (const a of this.attempts) a.session.fail(err as Error);
    }
  }

  /** Another session on this (pooled) connection. */
  join(a: Attempt) {
    this.attempts.push(a);
    this.maybeConnect();
  }

  onHandshake(ok: boolean) {
    if (!ok) {
      const refused = quic().us_quic_socket_errno(this.conn) === ECONNREFUSED;
      return this.fail(refused ? "the server refused the QUIC connection" : "the QUIC/TLS handshake failed (certificate rejected or no answer)");
    }
    if (this.hashes) {
      const der = new Uint8Array(Math.max(0, quic().us_quic_socket_peer_certificate(this.conn, null, 0)));
      quic().us_quic_socket_peer_certificate(this.conn, der, der.byteLength);
      const digest = createHash("sha256").update(der).digest();
      if (!this.hashes.some(h => Buffer.from(h).equals(digest))) return this.fail("the server's certificate matches none of serverCertificateHashes");
    }
    this.handshakeDone = true;
    this.maybeConnect();
  }

  onSettings() {
    this.settingsSeen = true;
    this.maybeConnect();
  }

  onClose() {
    router.connectionClosed(this.conn!);
    pool.forget(this.poolKey, this);
    for (const a of this.attempts) a.session.fail(sessionError("the WebTransport connection closed"));
    unref();
  }

  /** Every stream's events: the router's streams and the CONNECT streams share them. */
  private readonly streamEvents: StreamEvents = {
    onHeaders: s => this.streamHeaders(s),
    onData: (s, data, len, fin) => router.data(s, data, len, fin ? 1 : 0),
    onWritable: s => router.writable(s),
    onDatagram: (s, data, len) => router.datagram(s, data, len),
    onClose: s => this.streamClosed(s),
  };

  onStream(s: Pointer, local: boolean): StreamEvents {
    // A server's stream waits for its WebTransport header (onHeaders).
    if (local && !router.opened(s)) {
      const a = this.attempts.find(x => x.requested && !x.connect);
      if (!a) quic().us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED);
      else {
        a.connect = s;
        this.sendConnect(a, s);
      }
    }
    return this.streamEvents;
  }

  private streamHeaders(s: Pointer) {
    const kind = quic().us_quic_stream_headers_kind(s);
    if (kind === HEADERS_WEBTRANSPORT) return router.peerStream(s);
    if (kind !== HEADERS_INITIAL) return;
    const a = this.attempts.find(x => x.connect === s);
    if (!a) return;
    const status = Number(readHeaders(s).find(([n]) => n === ":status")?.[1] ?? 0);
    if (status < 200 || status > 299) {
      a.session.fail(sessionError(`the server refused the WebTransport session (status ${status})`));
      quic().us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED);
      return;
    }
    a.session.attach(this.conn!, s);
  }

  private streamClosed(s: Pointer) {
    router.closed(s);
    const a = this.attempts.find(x => x.connect === s);
    if (!a) return;
    a.session.fail(sessionError("the WebTransport session's stream was reset before the server answered"));
    this.finishAttempt(a);
  }

  /** A session is over: the connection closes with its last session. */
  private finishAttempt(a: Attempt) {
    this.attempts = this.attempts.filter(x => x !== a);
    if (this.attempts.length > 0 || !this.conn) return;
    this.closing = true;
    pool.forget(this.poolKey, this);
    quic().us_quic_socket_close(this.conn);
    scheduleFlush();
  }

  private fail(message: string) {
    for (const a of this.attempts) a.session.fail(sessionError(message));
    this.attempts = [];
    this.closing = true;
    pool.forget(this.poolKey, this);
    if (this.conn) quic().us_quic_socket_close(this.conn);
    scheduleFlush();
  }

  /** After the handshake and the server's SETTINGS: an extended CONNECT per waiting session. */
  private maybeConnect() {
    if (!this.handshakeDone || !this.settingsSeen || !this.conn) return;
    const conn = this.conn;
    const setting = (id: bigint) => {
      const v = new BigUint64Array(1);
      return quic().us_quic_socket_peer_setting(conn, id, v) === 1 ? v[0] : 0n;
    };
    const wt = setting(SETTINGS_ENABLE_WEBTRANSPORT) === 1n || setting(SETTINGS_WT_MAX_SESSIONS) > 0n;
    if (setting(SETTINGS_ENABLE_CONNECT_PROTOCOL) !== 1n || setting(SETTINGS_H3_DATAGRAM) !== 1n || !wt) {
      return this.fail("the server does not support WebTransport over HTTP/3 (no WebTransport SETTINGS)");
    }
    for (const a of this.attempts) {
      if (a.requested) continue;
      a.requested = true;
      quic().us_quic_socket_make_stream(conn);
    }
    scheduleFlush();
  }

  private sendConnect(a: Attempt, s: Pointer) {
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
      a.session.fail(sessionError("could not send the CONNECT request"));
      quic().us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED);
    }
    scheduleFlush();
  }
}

/** A new session: on a pooled connection (allowPooling) or a connection of its own. */
function startSession(a: Attempt, ca: string | undefined, identity: ClientIdentity | undefined, to: Destination, hashes: Uint8Array[] | null, pooling: boolean) {
  const endpoint = clientEndpoint({ ca, identity, key: "webtransport", configure: ctx => quic().us_quic_socket_context_set_webtransport(ctx, 16), fail: sessionError });
  const key = pooling ? poolKey(to, `${endpoint.key}|${(hashes ?? []).map(h => Buffer.from(h).toString("hex")).join(",")}`) : null;
  const pooled = key ? pool.get(key) : undefined;
  if (pooled && !pooled.closing) return pooled.join(a);
  const conn = new Connection(key, hashes);
  conn.attempts.push(a);
  if (key) pool.add(key, conn);
  void conn.start(endpoint, to);
}

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
    const identity = clientIdentity(tls);
    this.#session = new WTSession(router);
    const to: Destination = { host: parsed.hostname, port: Number(parsed.port || 443), serverName: tls.serverName, verify: !hashes && verifiesPeer(tls.rejectUnauthorized) };
    startSession(new Attempt(this.#session, parsed), ca, identity, to, hashes, options.allowPooling === true);
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
