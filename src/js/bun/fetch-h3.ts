// fetch(url, { protocol: "http3" }) on rust-quic: one pooled QUIC connection per
// origin and TLS settings, multiplexed; bodies streamed both ways with
// backpressure; an abort resets the stream, not the connection.
import type { Pointer } from "bun:ffi";
import { pemText, type TlsInput } from "./serve-h3";
import { encodeHeaders, readHeaders } from "../internal/quic/headers";
import { ref, scheduleFlush, unref } from "../internal/quic/loop";
import { writeAll } from "../internal/quic/write";
import { callbackInstaller, deliverBody, incomingBody, wakeWriter } from "../internal/quic/streams";
import { FFIType, callback, handle, quic } from "../internal/quic/native";
import { connectTo, createClientContext, type ClientIdentity } from "../internal/quic/connect";
import { OriginalResponse } from "../internal/quic/response-body";

const { ptr, i32, u32 } = FFIType;
const HEADERS_INITIAL = 2;
const H3_REQUEST_CANCELLED = 0x10cn;
const ECONNREFUSED = 111;
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

  /** The pooled session for this origin, or a new one (connecting). */
  async session(host: string, port: number, sni: string | undefined, reject: boolean): Promise<{ session: Session; fresh: boolean }> {
    const key = `${host}:${port}|${sni ?? ""}|${reject}`;
    const pooled = this.pool.get(key);
    if (pooled && pooled.usable) return { session: pooled, fresh: false };
    const session = new Session(this, key);
    this.pool.set(key, session);
    ref(); // the handshake needs the loop running
    try {
      const conn = await connectTo(this.ctx, host, port, sni, reject, (message, cause) => fetchError(message, "ConnectionRefused", cause));
      session.conn = conn;
      this.sessions.set(conn, session);
      scheduleFlush();
      await session.ready;
      return { session, fresh: true };
    } catch (err) {
      session.usable = false;
      this.forget(session);
      throw err;
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
    for (const [name, value] of readHeaders(s)) {
      if (name === ":status") status = Number(value);
      else if (name.charCodeAt(0) !== 58) headers.append(name, value);
    }
    st.bodyless = status === 204 || status === 304 || st.bodyless;
    const body = st.bodyless ? null : incomingBody(s, st, () => quic().us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED));
    st.resolve(new OriginalResponse(body, { status, headers }));
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
    const error = () =>
      code >= 0
        ? fetchError(`The HTTP/3 stream was reset (error 0x${code.toString(16)})`, "HTTP3StreamReset")
        : st.session.closed
          ? st.session.error!
          : fetchError("The HTTP/3 stream ended without a response", "HTTP3StreamReset");
    if (!st.gotHead) st.reject(error());
    else if (st.body && !st.done) st.body.error(error());
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

async function once(request: Request, url: URL, tls: H3TlsOptions, signal: AbortSignal | null, connectPort?: number): Promise<Response> {
  const port = connectPort ?? Number(url.port || 443);
  const reject = tls.rejectUnauthorized !== false;
  const ca = tls.ca === undefined ? undefined : pemText(tls.ca, "tls.ca");
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new TypeError("tls.cert and tls.key go together (a client certificate needs its key)");
  const identity =
    tls.cert === undefined ? undefined : { cert: pemText(tls.cert, "tls.cert"), key: pemText(tls.key, "tls.key"), passphrase: tls.passphrase };
  const client = contextFor(ca, identity);
  let attempt = 0;
  for (;;) {
    const { session, fresh } = await client.session(url.hostname, port, tls.serverName, reject);
    try {
      return await exchange(client, session, request, url, signal);
    } catch (err) {
      // A pooled connection that died before answering is retried once, fresh.
      const retriable = !fresh && attempt === 0 && (err as any)?.code === "HTTP3ConnectionClosed" && !signal?.aborted;
      if (!retriable) throw err;
      attempt++;
    }
  }
}

async function exchange(client: ClientContext, session: Session, request: Request, url: URL, signal: AbortSignal | null) {
  signal?.throwIfAborted();
  ref();
  let s: Pointer;
  try {
    s = await session.openStream();
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
  const fields: [string, string][] = [
    [":method", method],
    [":scheme", "https"],
    [":authority", url.host],
    [":path", url.pathname + url.search],
  ];
  for (const [name, value] of request.headers) if (!FORBIDDEN.has(name)) fields.push([name, value]);
  if (!request.headers.has("user-agent")) fields.push(["user-agent", `Bun/${Bun.version} (rust-quic)`]);
  let bytes: Uint8Array | null = null;
  const hasBody = request.body !== null && method !== "GET" && method !== "HEAD";
  if (hasBody && !(request as any).__streaming) {
    bytes = new Uint8Array(await request.arrayBuffer());
    fields.push(["content-length", String(bytes.byteLength)]);
  }
  const block = encodeHeaders(fields);
  const endNow = !hasBody || (bytes !== null && bytes.byteLength === 0);
  if (lib.us_quic_embed_send_headers(s, block, block.byteLength, endNow ? 1 : 0) !== 0) {
    lib.us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED);
    throw fetchError("Could not send the request headers", "HTTP3StreamReset");
  }
  scheduleFlush();
  if (!endNow) {
    (async () => {
      try {
        if (bytes) {
          if (!(await writeAll(s, st, bytes))) return;
        } else {
          for await (const chunk of request.body as any as AsyncIterable<Uint8Array | string>) {
            const c = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
            if (!(await writeAll(s, st, c))) return;
          }
        }
        if (!st.closed) lib.us_quic_stream_shutdown(s);
      } catch {
        // A request body that fails is an aborted upload: RESET_STREAM, not FIN.
        if (!st.closed) lib.us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED);
      }
      scheduleFlush();
    })();
  }
  return st.response;
}

/** fetch over HTTP/3, following redirects like fetch does. */
export async function fetchH3(
  input: string | Request | URL,
  init: RequestInit & { tls?: H3TlsOptions; protocol?: string; connectPort?: number } = {},
): Promise<Response> {
  let url = new URL(input instanceof Request ? input.url : String(input));
  if (url.protocol !== "https:") {
    throw fetchError(`fetch: protocol "${init.protocol}" needs an https: URL (got ${url.protocol})`, "HTTP3RequiresHTTPS");
  }
  const streaming = init.body instanceof ReadableStream || (input instanceof Request && input.body !== null && init.body === undefined);
  let request = new Request(input as any, init as any);
  if (streaming) (request as any).__streaming = true;
  const signal = init.signal ?? (input instanceof Request ? input.signal : null);
  const mode = init.redirect ?? "follow";
  for (let hops = 0; ; hops++) {
    // An Alt-Svc alternative port applies to its origin only, not to redirects elsewhere.
    const connectPort = hops === 0 ? init.connectPort : undefined;
    const response = await once(request, url, init.tls ?? {}, signal, connectPort);
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
    request = new Request(url.href, toGet ? { method: "GET", headers: request.headers } : request);
  }
}
