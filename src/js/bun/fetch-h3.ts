// fetch(url, { protocol: "http3" }) on rust-quic: one pooled QUIC connection per
// origin and TLS settings, multiplexed; bodies streamed both ways with
// backpressure; an abort resets the stream, not the connection.
import type { Pointer } from "bun:ffi";
import { pemText, type TlsInput } from "../internal/quic/tls";
import { encodeHeaders, readHeaders } from "../internal/quic/headers";
import { ref, scheduleFlush, unref } from "../internal/quic/loop";
import { writeAll } from "../internal/quic/write";
import { callbackInstaller, deliverBody, incomingBody, wakeWriter } from "../internal/quic/streams";
import { FFIType, callback, handle, quic } from "../internal/quic/native";
import { ECONNREFUSED, H3_EXCESSIVE_LOAD, H3_REQUEST_CANCELLED, H3_REQUEST_REJECTED, HEADERS_INITIAL } from "../internal/quic/constants";
import { connectTo, createClientContext, verifiesPeer, type ClientIdentity } from "../internal/quic/connect";
import { OriginalResponse, isBunFile } from "../internal/quic/response-body";

const { ptr, i32, u32 } = FFIType;
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

class ClientStream {
  resolve!: (r: Response) => void;
  reject!: (e: unknown) => void;
  response = new Promise<Response>((res, rej) => {
    this.resolve = res;
    this.reject = rej;
  });
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
  constructor(
    readonly s: Pointer,
    readonly session: Session,
  ) {}
}

class Session {
  conn: Pointer | null = null;
  ready: Promise<void>;
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
  waiters: { resolve: (s: Pointer) => void; reject: (e: unknown) => void }[] = [];
  streams = new Map<Pointer, ClientStream>();

  constructor(
    readonly client: ClientContext,
    readonly key: string,
  ) {
    this.ready = new Promise<void>((res, rej) => {
      this.markReady = res;
      this.markFailed = rej;
    });
    this.ready.catch(() => {});
  }

  handshake(ok: boolean, errno: number) {
    if (ok) return this.markReady();
    this.error =
      errno === ECONNREFUSED
        ? fetchError("Unable to connect: the server refused the QUIC connection (ICMP port unreachable)", "ConnectionRefused")
        : fetchError("The QUIC/TLS handshake failed (certificate rejected, no common ALPN, or no answer)", "HTTP3HandshakeFailed");
    this.markFailed(this.error);
  }

  openStream(): Promise<Pointer> {
    if (!this.usable || !this.conn) return Promise.reject(this.error ?? fetchError("The HTTP/3 connection is closed", "HTTP3ConnectionClosed"));
    return new Promise<Pointer>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      quic().us_quic_socket_make_stream(this.conn);
      scheduleFlush();
    });
  }

  closedByPeer() {
    this.closed = true;
    this.usable = false;
    this.error ??= fetchError("The HTTP/3 connection closed", "HTTP3ConnectionClosed");
    this.markFailed(this.error);
    for (const w of this.waiters.splice(0)) w.reject(this.error);
    this.client.forget(this);
    this.whenClosed.resolve();
  }

  /** The connection could not even be started (name resolution, no socket). */
  failed(err: Error) {
    this.error = err;
    this.usable = false;
    this.markFailed(err);
    this.client.forget(this);
  }

  /** The handshake took too long: give up on this connection. */
  timedOut() {
    this.error = fetchError(`The QUIC handshake did not complete within ${CONNECT_TIMEOUT_MS / 1000} s`, "ConnectionTimedOut");
    this.usable = false;
    this.markFailed(this.error);
    this.client.forget(this);
    if (this.conn && !this.closed) {
      quic().us_quic_socket_close(this.conn);
      scheduleFlush();
    }
  }
}

/** One client context per CA configuration (quiche verifies per context). */
class ClientContext {
  ctx: Pointer;
  private sessions = new Map<Pointer, Session>();
  private pool = new Map<string, Session>();
  private streams = new Map<Pointer, ClientStream>();
  private callbacks: ReturnType<typeof callback>[] = [];

  constructor(ca: string | undefined, identity: ClientIdentity | undefined) {
    const lib = quic();
    const ctx = createClientContext(ca, message => fetchError(message, "HTTP3Unsupported"), identity);
    this.ctx = ctx;
    const on = callbackInstaller(ctx, this.callbacks);
    on(lib.us_quic_socket_context_on_hsk_done, (c: Pointer, ok: number) => {
      const session = this.sessions.get(c);
      session?.handshake(ok !== 0, ok ? 0 : lib.us_quic_socket_errno(c));
    }, [ptr, i32]);
    on(lib.us_quic_socket_context_on_goaway, (c: Pointer) => {
      const session = this.sessions.get(c);
      if (session) {
        session.usable = false;
        this.pool.delete(session.key);
      }
    }, [ptr]);
    on(lib.us_quic_socket_context_on_close, (c: Pointer) => {
      const session = this.sessions.get(c);
      this.sessions.delete(c);
      session?.closedByPeer();
    }, [ptr]);
    on(lib.us_quic_socket_context_on_stream_open, (s: Pointer, isClient: number) => {
      if (!isClient) return;
      const session = this.sessions.get(handle(lib.us_quic_stream_socket(s))!);
      const waiter = session?.waiters.shift();
      if (!session || !waiter) return lib.us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED);
      const st = new ClientStream(s, session);
      this.streams.set(s, st);
      session.streams.set(s, st);
      waiter.resolve(s);
    }, [ptr, i32]);
    on(lib.us_quic_socket_context_on_stream_headers, (s: Pointer) => this.onHeaders(s), [ptr]);
    on(lib.us_quic_socket_context_on_stream_data, (s: Pointer, data: Pointer, len: number, fin: number) => this.onData(s, data, len, fin), [ptr, ptr, u32, i32]);
    on(lib.us_quic_socket_context_on_stream_writable, (s: Pointer) => wakeWriter(this.streams.get(s)), [ptr]);
    on(lib.us_quic_socket_context_on_stream_close, (s: Pointer) => this.onClose(s), [ptr]);
  }

  stream(s: Pointer) {
    return this.streams.get(s);
  }

  forget(session: Session) {
    if (this.pool.get(session.key) === session) this.pool.delete(session.key);
  }

  /**
   * The pooled session for this origin, or a new one (connecting). `signal`
   * stops the wait (the handshake goes on for later requests, up to the
   * connect timeout).
   */
  async session(host: string, port: number, sni: string | undefined, reject: boolean, signal: AbortSignal | null): Promise<{ session: Session; fresh: boolean }> {
    const key = `${host}:${port}|${sni ?? ""}|${reject}`;
    // Taken before looking at the pool: when the loop was idle, ref() first catches
    // up on what arrived meanwhile, so a session its server closed (CONNECTION_CLOSE,
    // GOAWAY) is gone from the pool instead of taking a request it cannot answer.
    ref();
    const pooled = this.pool.get(key);
    if (pooled && pooled.usable) {
      try {
        // It may still be in its handshake (begun by a request since aborted).
        await abortable(pooled.ready, signal);
      } finally {
        unref();
      }
      return { session: pooled, fresh: false };
    }
    const session = new Session(this, key);
    this.pool.set(key, session);
    // The connection is the session's, not this request's: it is set up (and its
    // handshake kept running, up to the connect timeout) even if the request that
    // began it is aborted, so the next request to the origin can use it.
    const timer = setTimeout(() => session.timedOut(), CONNECT_TIMEOUT_MS);
    ref();
    const settled = () => (clearTimeout(timer), unref());
    session.ready.then(settled, settled);
    connectTo(this.ctx, host, port, sni, reject, (message, cause) => fetchError(message, "ConnectionRefused", cause)).then(
      conn => {
        session.conn = conn;
        this.sessions.set(conn, session);
        scheduleFlush();
      },
      err => session.failed(err),
    );
    try {
      await abortable(session.ready, signal);
      return { session, fresh: true };
    } finally {
      unref();
    }
  }

  private onHeaders(s: Pointer) {
    const st = this.streams.get(s);
    if (!st || st.gotHead || quic().us_quic_stream_headers_kind(s) !== HEADERS_INITIAL) return;
    st.gotHead = true;
    let status = 0;
    const headers = new Headers();
    const fields = readHeaders(s);
    if (fields.length - 1 > MAX_RESPONSE_FIELDS) {
      quic().us_quic_stream_reset_with_code(s, H3_EXCESSIVE_LOAD);
      scheduleFlush();
      st.reject(fetchError(`The response has more than ${MAX_RESPONSE_FIELDS} header fields`, "ResponseHeadersTooLarge"));
      return;
    }
    for (const [name, value] of fields) {
      if (name === ":status") status = Number(value);
      else if (name.charCodeAt(0) !== 58) headers.append(name, value);
    }
    st.bodyless = status === 204 || status === 304 || st.bodyless;
    let body = st.bodyless ? null : incomingBody(s, st, () => quic().us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED));
    if (body && st.decompress) body = decoded(body, headers.get("content-encoding"));
    st.resolve(new FetchResponse(body, { status, headers }));
  }

  private onData(s: Pointer, data: Pointer, len: number, fin: number) {
    const st = this.streams.get(s);
    if (!st?.body) return;
    if (fin) st.done = true;
    deliverBody(s, st, data, len, fin !== 0);
  }

  private onClose(s: Pointer) {
    const st = this.streams.get(s);
    this.streams.delete(s);
    if (!st) return;
    st.session.streams.delete(s);
    st.closed = true;
    const code = Number(quic().us_quic_stream_error_code(s));
    const session = st.session;
    const error = () =>
      session.closed
        ? session.error!
        : code >= 0
          ? fetchError(`The HTTP/3 stream was reset (error 0x${code.toString(16)})`, "HTTP3StreamReset")
          : fetchError("The HTTP/3 stream ended without a response", "HTTP3StreamReset");
    if (!st.gotHead) {
      if (code === Number(H3_REQUEST_REJECTED)) {
        // Not processed (RFC 9114 8.1): safe to send again.
        st.reject(fetchError("The server rejected the request before processing it", "HTTP3RequestRejected"));
      } else if (session.closed) {
        st.reject(session.error);
      } else {
        // A server closing its connection resets what it never answered first:
        // wait a moment to tell that (retried once) from a reset of this request alone.
        const timer = setTimeout(() => st.reject(error()), CLOSE_GRACE_MS);
        session.gone.then(() => {
          clearTimeout(timer);
          st.reject(session.error);
        });
      }
    } else if (st.body && !st.done) st.body.error(error());
    st.writable?.();
    st.detachAbort?.();
    unref();
  }
}

const contexts = new Map<string, ClientContext>();

/** One client context per trust and identity configuration. */
function contextFor(ca: string | undefined, identity: ClientIdentity | undefined) {
  const key = identity ? `${ca ?? ""}\0${identity.cert}\0${identity.key}\0${identity.passphrase ?? ""}` : (ca ?? "");
  let c = contexts.get(key);
  if (!c) contexts.set(key, (c = new ClientContext(ca, identity)));
  return c;
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
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new TypeError("tls.cert and tls.key go together (a client certificate needs its key)");
  const identity =
    tls.cert === undefined ? undefined : { cert: pemText(tls.cert, "tls.cert"), key: pemText(tls.key, "tls.key"), passphrase: tls.passphrase };
  const client = contextFor(ca, identity);
  let attempt = 0;
  for (;;) {
    const { session } = await client.session(url.hostname, port, tls.serverName, reject, signal);
    try {
      return await exchange(client, session, ex);
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

async function exchange(client: ClientContext, session: Session, ex: Exchange) {
  const { request, url, body, signal } = ex;
  signal?.throwIfAborted();
  ref();
  let s: Pointer;
  try {
    s = await abortable(session.openStream(), signal);
  } catch (err) {
    unref();
    throw err;
  }
  const st = client.stream(s)!;
  const lib = quic();
  const onAbort = () => {
    if (st.closed) return;
    const reason = signal!.reason;
    st.reject(reason);
    st.body?.error(reason);
    st.body = undefined;
    lib.us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED);
    scheduleFlush();
  };
  // Until the stream closes: an abort while the body streams must reset it too.
  signal?.addEventListener("abort", onAbort, { once: true });
  st.detachAbort = () => signal?.removeEventListener("abort", onAbort);
  st.response.catch(() => {}); // a late rejection after we stopped waiting is not "unhandled"
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
  const block = encodeHeaders(fields);
  const endNow = body.stream === null && (body.bytes === null || body.bytes.byteLength === 0);
  if (lib.us_quic_embed_send_headers(s, block, block.byteLength, endNow ? 1 : 0) !== 0) {
    lib.us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED);
    throw fetchError("Could not send the request headers", "HTTP3StreamReset");
  }
  scheduleFlush();
  if (!endNow) {
    (async () => {
      try {
        if (body.bytes) {
          if (!(await writeAll(s, st, body.bytes))) return;
        } else {
          let sent = 0;
          for await (const chunk of body.stream as any as AsyncIterable<Uint8Array | string>) {
            const c = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
            sent += c.byteLength;
            if (body.declared !== undefined && sent > body.declared) throw lengthMismatch(sent, body.declared);
            if (!(await writeAll(s, st, c))) return;
          }
          if (body.declared !== undefined && sent !== body.declared) throw lengthMismatch(sent, body.declared);
        }
        if (!st.closed) lib.us_quic_stream_shutdown(s);
      } catch (err) {
        // A request body that fails is an aborted upload: RESET_STREAM, not FIN.
        if (!st.closed) lib.us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED);
        if ((err as any)?.code === "ERR_HTTP_CONTENT_LENGTH_MISMATCH") st.reject(err);
      }
      scheduleFlush();
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
