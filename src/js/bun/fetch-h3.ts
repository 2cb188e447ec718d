// fetch(url, { protocol: "http3" }) on rust-quic: one pooled QUIC connection per
// origin and TLS settings, multiplexed; bodies streamed both ways with
// backpressure; an abort resets the stream, not the connection. The QUIC work
// runs on the engine's client thread (client-thread.ts); this file is fetch's
// semantics on top of its request-level calls and events.
import { isIP } from "node:net";
import { clientIdentity, pemText, verifiesPeer, type ClientIdentity, type TlsInput } from "../internal/rust-quic/tls";
import { encodeHeaders } from "../internal/rust-quic/headers";
import { writeAllWith } from "../internal/rust-quic/write";
import { bodyStream, enqueueBody, wakeWriter } from "../internal/rust-quic/streams";
import { ECONNREFUSED, H3_EXCESSIVE_LOAD, H3_REQUEST_CANCELLED, H3_REQUEST_REJECTED, HEADERS_INITIAL } from "../internal/rust-quic/constants";
import { ConnectionPool, poolKey, trustKey, type Destination } from "../internal/rust-quic/client-pool";
import { resolveHost } from "../internal/rust-quic/connect";
import { cString } from "../internal/rust-quic/bytes";
import {
  addClientConfig,
  closeConnection,
  connectClient,
  endRequest,
  readRequest,
  refClient as ref,
  resetRequest,
  clientThreadRunning,
  startClientThread,
  startRequest,
  unrefClient as unref,
  writeRequest,
  type ThreadConnectionEvents,
  type ThreadRequestEvents,
} from "../internal/rust-quic/client-thread";
import { OriginalResponse, isBunFile } from "../internal/rust-quic/response-body";

/** Response fields beyond which a response is refused (Bun's limit for every protocol). */
const MAX_RESPONSE_FIELDS = 1000;
/** A QUIC handshake that takes longer fails the request (and closes the attempt). */
const CONNECT_TIMEOUT_MS = 10_000;
/** How long a stream reset before any response waits to learn whether its connection is going away. */
const CLOSE_GRACE_MS = 100;
/** Content codings fetch decodes (and can compress request bodies with), as DecompressionStream names them. */
const CODINGS: Record<string, "gzip" | "deflate" | "brotli" | "zstd"> = { gzip: "gzip", "x-gzip": "gzip", deflate: "deflate", br: "brotli", zstd: "zstd" };
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const FORBIDDEN = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"]);

export interface H3TlsOptions {
  rejectUnauthorized?: boolean;
  ca?: TlsInput;
  serverName?: string;
  /** A client certificate (with `key`) for servers that ask for one. */
  cert?: TlsInput;
  key?: TlsInput;
  passphrase?: string;
}

/** A fetch failure, as a TypeError with a `code` (like Bun's fetch errors). */
function fetchError(message: string, code: string, cause?: unknown): TypeError {
  const err = new TypeError(message, cause === undefined ? undefined : { cause }) as TypeError & { code: string };
  err.code = code;
  return err;
}

/**
 * A fetch result. Bun's Response made from a stream gives blob() no type;
 * Bun's own fetch results take it from content-type, so these do too.
 */
class FetchResponse extends OriginalResponse {}
const baseBlob = OriginalResponse.prototype.blob;
const baseClone = OriginalResponse.prototype.clone;
Object.assign(FetchResponse.prototype, {
  async blob(this: Response) {
    const blob = await baseBlob.call(this);
    const type = this.headers.get("content-type");
    return blob.type || !type ? blob : new Blob([blob], { type });
  },
  clone(this: Response) {
    return Object.setPrototypeOf(baseClone.call(this), FetchResponse.prototype);
  },
});
Object.defineProperty(FetchResponse, "name", { value: "Response" });

/** One request: its response head and body as the client thread reports them. */
class ClientStream implements ThreadRequestEvents {
  resolve!: (r: Response) => void;
  reject!: (e: unknown) => void;
  response = new Promise<Response>((res, rej) => {
    this.resolve = res;
    this.reject = rej;
  });
  /** The request's id on the client thread (0 until it starts). */
  id = 0;
  body?: ReadableStreamDefaultController<Uint8Array>;
  gotHead = false;
  done = false;
  closed = false;
  paused = false;
  bodyless = false;
  /** Decode the response's content-encoding (fetch's `decompress`, default true). */
  decompress = true;
  writable?: () => void;
  /** Removes the request's abort listener; called when the stream closes. */
  detachAbort?: () => void;
  constructor(readonly session: Session) {}

  private pause = () => readRequest(this.id, false);

  onHeaders(kind: number, fields: [string, string][]) {
    if (this.gotHead || kind !== HEADERS_INITIAL) return;
    this.gotHead = true;
    let status = 0;
    const headers = new Headers();
    if (fields.length - 1 > MAX_RESPONSE_FIELDS) {
      resetRequest(this.id, H3_EXCESSIVE_LOAD);
      this.reject(fetchError(`The response has more than ${MAX_RESPONSE_FIELDS} header fields`, "ResponseHeadersTooLarge"));
      return;
    }
    for (const [name, value] of fields) {
      if (name === ":status") status = Number(value);
      else if (name.charCodeAt(0) !== 58) headers.append(name, value);
    }
    this.bodyless = status === 204 || status === 304 || this.bodyless;
    const id = this.id;
    let body = this.bodyless
      ? null
      : bodyStream(this, { resume: () => readRequest(id, true), cancel: () => resetRequest(id, H3_REQUEST_CANCELLED) });
    if (body && this.decompress) body = decoded(body, headers.get("content-encoding"));
    this.resolve(new FetchResponse(body, { status, headers }));
  }

  onData(bytes: Uint8Array, fin: boolean) {
    if (!this.body) return;
    if (fin) this.done = true;
    enqueueBody(this, bytes.byteLength > 0 ? bytes : null, fin, this.pause);
  }

  onWritable() {
    wakeWriter(this);
  }

  onClose(code: number) {
    this.closed = true;
    const session = this.session;
    const error = () =>
      session.closed
        ? session.error!
        : code >= 0
          ? fetchError(`The HTTP/3 stream was reset (error 0x${code.toString(16)})`, "HTTP3StreamReset")
          : fetchError("The HTTP/3 stream ended without a response", "HTTP3StreamReset");
    if (!this.gotHead) {
      if (code === Number(H3_REQUEST_REJECTED)) {
        // Not processed (RFC 9114 8.1): safe to send again.
        this.reject(fetchError("The server rejected the request before processing it", "HTTP3RequestRejected"));
      } else if (session.closed) {
        this.reject(session.error);
      } else {
        // A server closing its connection resets what it never answered first:
        // wait a moment to tell that (retried once) from a reset of this request alone.
        const timer = setTimeout(() => this.reject(error()), CLOSE_GRACE_MS);
        session.gone.then(() => {
          clearTimeout(timer);
          this.reject(session.error);
        });
      }
    } else if (this.body && !this.done) this.body.error(error());
    this.writable?.();
    this.detachAbort?.();
    unref();
  }
}
/** A pooled connection to one origin: requests are streams on it. */
class Session implements ThreadConnectionEvents {
  /** The connection's id on the client thread (0 until it starts). */
  conn = 0;
  ready: Promise<void>;
  /** Settles when a safe request may start: at `ready`, or once a connection
   * that resumes a session has started (its requests go in 0-RTT). */
  startable: Promise<void>;
  private markStartable!: () => void;
  private markReady!: () => void;
  private markFailed!: (e: unknown) => void;
  usable = true;
  closed = false;
  error?: Error;
  /** Resolves when the connection has closed. */
  private whenClosed = Promise.withResolvers<void>();
  get gone(): Promise<void> {
    return this.whenClosed.promise;
  }

  constructor(readonly key: string) {
    this.ready = new Promise<void>((res, rej) => {
      this.markReady = res;
      this.markFailed = rej;
    });
    this.ready.catch(() => {});
    const early = new Promise<void>(res => (this.markStartable = res));
    this.startable = Promise.race([this.ready, early]);
    this.startable.catch(() => {});
  }

  /** The connection started on the client thread. */
  started(conn: number, resuming: boolean) {
    this.conn = conn;
    if (resuming) this.markStartable();
  }

  onHandshake(ok: boolean, errno: number) {
    if (ok) return this.markReady();
    this.error =
      errno === ECONNREFUSED
        ? fetchError("Unable to connect: the server refused the QUIC connection (ICMP port unreachable)", "ConnectionRefused")
        : fetchError("The QUIC/TLS handshake failed (certificate rejected, no common ALPN, or no answer)", "HTTP3HandshakeFailed");
    this.markFailed(this.error);
  }

  onGoaway() {
    this.takesNoMore();
  }

  /** No new request starts here (GOAWAY, or the engine knows the connection is over before its close event). */
  takesNoMore() {
    this.usable = false;
    sessions.forget(this.key, this);
  }

  onClose() {
    this.closed = true;
    this.usable = false;
    this.error ??= fetchError("The HTTP/3 connection closed", "HTTP3ConnectionClosed");
    this.markFailed(this.error);
    sessions.forget(this.key, this);
    this.whenClosed.resolve();
  }

  /** Why no new request can start here. */
  get closedError(): Error {
    return this.error ?? fetchError("The HTTP/3 connection is closed", "HTTP3ConnectionClosed");
  }

  /** The connection could not even be started (name resolution, no socket). */
  failed(err: Error) {
    this.error = err;
    this.usable = false;
    this.markFailed(err);
    sessions.forget(this.key, this);
  }

  /** The handshake took too long: give up on this connection. */
  timedOut() {
    this.error = fetchError(`The QUIC handshake did not complete within ${CONNECT_TIMEOUT_MS / 1000} s`, "ConnectionTimedOut");
    this.usable = false;
    this.markFailed(this.error);
    sessions.forget(this.key, this);
    if (this.conn && !this.closed) closeConnection(this.conn);
  }
}

/** fetch's connections, by origin, TLS settings and client configuration. */
const sessions = new ConnectionPool<Session>();

/** Client configurations on the client thread, by trust and identity. */
const configs = new Map<string, number>();

/** The client thread's configuration for a trust and identity (made on first use). */
function configFor(ca: string | undefined, identity: ClientIdentity | undefined): number {
  const key = trustKey(ca, identity);
  let id = configs.get(key);
  if (id === undefined) {
    const made = addClientConfig(ca, identity);
    if (made instanceof TypeError) throw made;
    if (made instanceof Error) throw fetchError(made.message, "HTTP3Unsupported");
    configs.set(key, (id = made));
  }
  return id;
}

/** Starts the session's connection (a name is resolved first). */
async function dial(config: number, to: Destination, session: Session): Promise<void> {
  const bare = to.host.replace(/^\[|\]$/g, "");
  const address = await resolveHost(bare, (message, cause) => fetchError(message, "ConnectionRefused", cause));
  // A name is the TLS server name (SNI, checked against the certificate); an IP literal is not.
  const serverName = to.serverName || (isIP(bare) ? null : bare);
  const started = connectClient(config, cString(address), to.port, serverName ? cString(serverName) : null, to.verify, session);
  if (started.id === 0) throw fetchError(`Unable to connect to ${to.host}:${to.port} over QUIC`, "ConnectionRefused");
  session.started(started.id, started.resuming);
}

/**
 * The pooled session for this origin, or a new one (connecting). `signal`
 * stops the wait (the handshake goes on for later requests, up to the connect
 * timeout).
 */
async function sessionFor(config: number, to: Destination, signal: AbortSignal | null, early: boolean): Promise<Session> {
  const key = poolKey(to, String(config));
  // Taken before looking at the pool: when the client thread's events were not
  // being read, ref() first takes what arrived meanwhile, so a session its server
  // closed (CONNECTION_CLOSE, GOAWAY) is gone from the pool instead of taking a
  // request it cannot answer.
  ref();
  const pooled = sessions.get(key);
  if (pooled && pooled.usable) {
    try {
      // It may still be in its handshake (begun by a request since aborted).
      await abortable(early ? pooled.startable : pooled.ready, signal);
    } finally {
      unref();
    }
    return pooled;
  }
  const session = new Session(key);
  sessions.add(key, session);
  // The connection is the session's, not this request's: it is set up (and its
  // handshake kept running, up to the connect timeout) even if the request that
  // began it is aborted, so the next request to the origin can use it.
  const timer = setTimeout(() => session.timedOut(), CONNECT_TIMEOUT_MS);
  ref();
  const settled = () => (clearTimeout(timer), unref());
  session.ready.then(settled, settled);
  dial(config, to, session).then(
    () => {},
    err => session.failed(err),
  );
  try {
    await abortable(early ? session.startable : session.ready, signal);
    return session;
  } finally {
    unref();
  }
}

/** A request body as it will be sent: bytes (sent again on a retry) or a stream (sent once). */
interface Outgoing {
  bytes: Uint8Array | null;
  stream: ReadableStream<Uint8Array | string> | null;
  /** A streamed body's declared content-length: the bytes must match it. */
  declared?: number;
  /** The content-encoding the body was compressed with (fetch's `compress`). */
  encoding?: string;
}

/** fetch's `compress`: true is gzip; otherwise a coding name, or none. */
function compressionOf(option: unknown): string | undefined {
  if (option === true) return "gzip";
  return typeof option === "string" && option in CODINGS && option !== "x-gzip" ? option : undefined;
}

/** No request body (never written to: shared). */
const NO_BODY: Outgoing = Object.freeze({ bytes: null, stream: null });

async function outgoingBody(request: Request, streaming: boolean, compress: string | undefined): Promise<Outgoing> {
  const method = request.method;
  if (request.body === null || method === "GET" || method === "HEAD") return NO_BODY;
  if (streaming) {
    const declared = request.headers.get("content-length");
    if (compress) return { bytes: null, stream: request.body.pipeThrough(new CompressionStream(CODINGS[compress])), encoding: compress };
    return { bytes: null, stream: request.body, declared: declared === null ? undefined : Number(declared) };
  }
  let bytes = new Uint8Array(await request.arrayBuffer());
  if (compress) bytes = new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(new CompressionStream(CODINGS[compress]))).arrayBuffer());
  return { bytes, stream: null, encoding: compress };
}

function lengthMismatch(sent: number, declared: number) {
  const err = new Error(`Request body of ${sent} bytes does not match the Content-Length of ${declared}`) as Error & { code: string };
  err.code = "ERR_HTTP_CONTENT_LENGTH_MISMATCH";
  return err;
}

/** `promise`, or the signal's reason as soon as it aborts. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | null): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      v => (signal.removeEventListener("abort", onAbort), resolve(v)),
      e => (signal.removeEventListener("abort", onAbort), reject(e)),
    );
  });
}

/** The response body with its content-encoding removed (codings applied in reverse order). */
function decoded(body: ReadableStream<Uint8Array>, encoding: string | null): ReadableStream<Uint8Array> {
  if (!encoding) return body;
  const codings = encoding.split(",").map(c => c.trim().toLowerCase()).filter(c => c && c !== "identity");
  if (codings.length === 0 || !codings.every(c => c in CODINGS)) return body;
  let out = body;
  for (const coding of codings.reverse()) out = out.pipeThrough(new DecompressionStream(CODINGS[coding]) as any);
  return out;
}

interface Exchange {
  request: Request;
  /** The request's fields, read before its body (Bun derives a body's content-type on first access). */
  headers: Headers;
  url: URL;
  body: Outgoing;
  signal: AbortSignal | null;
  decompress: boolean;
}

async function once(ex: Exchange, tls: H3TlsOptions, connectPort?: number): Promise<Response> {
  const { url, signal } = ex;
  const port = connectPort ?? Number(url.port || 443);
  const reject = verifiesPeer(tls.rejectUnauthorized);
  const ca = tls.ca === undefined ? undefined : pemText(tls.ca, "tls.ca");
  const identity = clientIdentity(tls);
  if (!clientThreadRunning()) await startClientThread();
  const config = configFor(ca, identity);
  const to: Destination = { host: url.hostname, port, serverName: tls.serverName, verify: reject };
  let attempt = 0;
  for (;;) {
    const session = await sessionFor(config, to, signal, canGoEarly(ex));
    try {
      return await exchange(session, ex);
    } catch (err) {
      // A request its connection closed (or the server rejected) before any
      // answer is sent once more on a fresh connection, if its body can be sent again.
      const code = (err as any)?.code;
      const retriable = attempt === 0 && (code === "HTTP3ConnectionClosed" || code === "HTTP3RequestRejected") && !signal?.aborted && !ex.body.stream;
      if (!retriable) throw err;
      attempt++;
    }
  }
}

/** Safe to replay (RFC 8470): may go in 0-RTT on a resumed connection, before its handshake ends. */
function canGoEarly(ex: Exchange): boolean {
  const m = ex.request.method;
  return (m === "GET" || m === "HEAD" || m === "OPTIONS") && !ex.body.bytes && !ex.body.stream;
}

async function exchange(session: Session, ex: Exchange) {
  const { request, url, body, signal } = ex;
  signal?.throwIfAborted();
  if (!session.usable || !session.conn) throw session.closedError;
  const st = new ClientStream(session);
  const method = request.method;
  st.bodyless = method === "HEAD";
  st.decompress = ex.decompress;
  const fields: [string, string][] = [
    [":method", method],
    [":scheme", "https"],
    [":authority", url.host],
    [":path", url.pathname + url.search],
  ];
  const buffered = body.bytes !== null;
  for (const [name, value] of ex.headers) {
    if (FORBIDDEN.has(name) || (name === "content-length" && (buffered || body.encoding))) continue;
    if (name === "content-encoding" && body.encoding) continue;
    fields.push([name, value]);
  }
  // Bun's fetch defaults, the same for every protocol.
  if (!ex.headers.has("user-agent")) fields.push(["user-agent", navigator.userAgent]);
  if (!ex.headers.has("accept")) fields.push(["accept", "*/*"]);
  if (ex.decompress && !ex.headers.has("accept-encoding")) fields.push(["accept-encoding", "gzip, deflate, br, zstd"]);
  if (body.encoding) fields.push(["content-encoding", body.encoding]);
  if (buffered) fields.push(["content-length", String(body.bytes!.byteLength)]);
  const endNow = body.stream === null && (body.bytes === null || body.bytes.byteLength === 0);
  ref();
  const id = startRequest(session.conn, encodeHeaders(fields), endNow, st);
  if (id === 0) {
    unref();
    session.takesNoMore(); // so the retry opens a new connection
    throw session.closedError;
  }
  st.id = id;
  const onAbort = () => {
    if (st.closed) return;
    const reason = signal!.reason;
    st.reject(reason);
    st.body?.error(reason);
    st.body = undefined;
    resetRequest(id, H3_REQUEST_CANCELLED);
  };
  // Until the stream closes: an abort while the body streams must reset it too.
  signal?.addEventListener("abort", onAbort, { once: true });
  st.detachAbort = () => signal?.removeEventListener("abort", onAbort);
  st.response.catch(() => {}); // a late rejection after we stopped waiting is not "unhandled"
  if (!endNow) {
    const write = (bytes: Uint8Array) => writeRequest(id, bytes);
    (async () => {
      try {
        if (body.bytes) {
          if (!(await writeAllWith(st, body.bytes, write))) return;
        } else {
          let sent = 0;
          for await (const chunk of body.stream as any as AsyncIterable<Uint8Array | string>) {
            const c = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
            sent += c.byteLength;
            if (body.declared !== undefined && sent > body.declared) throw lengthMismatch(sent, body.declared);
            if (!(await writeAllWith(st, c, write))) return;
          }
          if (body.declared !== undefined && sent !== body.declared) throw lengthMismatch(sent, body.declared);
        }
        if (!st.closed) endRequest(id);
      } catch (err) {
        // A request body that fails is an aborted upload: RESET_STREAM, not FIN.
        if (!st.closed) resetRequest(id, H3_REQUEST_CANCELLED);
        if ((err as any)?.code === "ERR_HTTP_CONTENT_LENGTH_MISMATCH") st.reject(err);
      }
    })();
  }
  return st.response;
}

/** fetch over HTTP/3, following redirects like fetch does. */
export async function fetchH3(
  input: string | Request | URL,
  init: RequestInit & { tls?: H3TlsOptions; protocol?: string; connectPort?: number; decompress?: boolean; compress?: unknown } = {},
): Promise<Response> {
  let url = new URL(input instanceof Request ? input.url : String(input));
  if (url.protocol !== "https:") {
    throw fetchError(`fetch: protocol "${init.protocol}" needs an https: URL (got ${url.protocol})`, "HTTP3RequiresHTTPS");
  }
  const streaming = init.body instanceof ReadableStream || (input instanceof Request && input.body !== null && init.body === undefined);
  let request = new Request(input as any, init as any);
  const signal = init.signal ?? (input instanceof Request ? input.signal : null);
  const mode = init.redirect ?? "follow";
  const decompress = init.decompress !== false;
  const compress = compressionOf(init.compress);
  let headers = new Headers(request.headers);
  // Bun's fetch sends an empty Blob body without its type as content-type.
  if (init.body instanceof Blob && init.body.size === 0 && !isBunFile(init.body) && !new Headers(init.headers as any).has("content-type")) {
    headers.delete("content-type");
  }
  let body = request.body === null ? NO_BODY : await outgoingBody(request, streaming, compress);
  for (let hops = 0; ; hops++) {
    // An Alt-Svc alternative port applies to its origin only, not to redirects elsewhere.
    const connectPort = hops === 0 ? init.connectPort : undefined;
    const response = await once({ request, headers, url, body, signal, decompress }, init.tls ?? {}, connectPort);
    if (!REDIRECTS.has(response.status) || mode === "manual" || !response.headers.has("location")) {
      if (hops > 0) Object.defineProperty(response, "redirected", { value: true });
      Object.defineProperty(response, "url", { value: url.href });
      return response;
    }
    await response.body?.cancel().catch(() => {});
    if (mode === "error") throw fetchError(`fetch: redirect to ${response.headers.get("location")} with redirect: "error"`, "UnexpectedRedirect");
    if (hops >= 20) throw fetchError("fetch: too many redirects", "TooManyRedirects");
    url = new URL(response.headers.get("location")!, url);
    if (url.protocol !== "https:") throw fetchError(`fetch: redirect to a non-https URL over HTTP/3 (${url.href})`, "HTTP3RequiresHTTPS");
    const toGet = response.status === 303 || ((response.status === 301 || response.status === 302) && request.method === "POST");
    if (toGet) {
      headers.delete("content-type");
      headers.delete("content-length");
      request = new Request(url.href, { method: "GET", headers });
      body = NO_BODY;
    } else {
      if (body.stream) throw fetchError("fetch: cannot follow a redirect with a streamed request body", "UnexpectedRedirect");
      request = new Request(url.href, { method: request.method, headers });
    }
  }
}
