// The HTTP/3 side of Bun.serve({ h3: true }): a rust-quic server context on the
// same port number as the TCP listener, calling the same handlers. The request the
// handlers get is h3-request.ts's; answers are written by h3-response.ts.
import type { Pointer } from "bun:ffi";
import { FFIType, callback, callbackInstaller, handle, quic } from "../internal/rust-quic/binding";
import { CONTEXT_STATS_FIELDS, H3_REQUEST_CANCELLED, HEADERS_INITIAL, HEADERS_WEBTRANSPORT, LISTEN_REUSE_PORT } from "../internal/rust-quic/constants";
import { encodeHeaders, readHeaders } from "../internal/rust-quic/headers";
import { ref, releaseLoop, retire, scheduleFlush, unref } from "../internal/rust-quic/loop";
import type { RouteMatch, Router, RouteTarget } from "./router";
import { etagMatches, serveFile, staticEtag } from "./file-route";
import { errorPage } from "./error-page";
import { deliverBody, incomingBody, wakeWriter } from "../internal/rust-quic/streams";
import { applyH3Limits, type H3Limits } from "./h3-limits";
import { serverContext, type TlsInput } from "../internal/rust-quic/tls";
import { applyEarlyData, applyRetry, applyTicketKeys, type H3EarlyData } from "./handshake-options";
import { applyLoadBalancer } from "./connection-ids";
import { cString } from "../internal/rust-quic/bytes";
import { WTRouter } from "../internal/rust-quic/wt-router";
import { WTSession } from "../internal/rust-quic/wt-session";
import type { WebTransportStreamLike } from "../internal/rust-quic/wt-stream";
import { bodyInfo, responseOf } from "../internal/rust-quic/response-body";
import { H3Request, H3RouteRequest, StreamState } from "./h3-request";
import { headFields, respond } from "./h3-response";

const { ptr, i32, u32 } = FFIType;
/** The extended CONNECT upgrade tokens of WebTransport over HTTP/3 (drafts up to 12, and later). */
const WEBTRANSPORT_TOKENS = new Set(["webtransport", "webtransport-h3"]);
const CONTINUE = Buffer.from("100\0");
/** A valid :authority (RFC 3986 host[:port], no userinfo); another one leaves request.url as the bare :path, as upstream. */
const VALID_AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::\d*)?$/;

/** Bun.serve's `webtransport` option: like `websocket`, for WebTransport sessions. */
export interface WebTransportHandlers {
  open?: (session: WTSession) => void | Promise<void>;
  datagram?: (session: WTSession, data: Uint8Array) => void;
  stream?: (session: WTSession, stream: WebTransportStreamLike) => void;
  close?: (session: WTSession, code: number, reason: string) => void;
  /** Sessions per connection (announced in SETTINGS). @default 16 */
  maxSessions?: number;
}

/** A static route's answer, made once. */
interface PreparedStatic {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
}

/** HTML imports among the routes: Bun's own server bundles them; HTTP/3 requests for them are proxied there. */
export interface HtmlRoutes {
  /** Whether a path not matched by the routes is one of the bundles' assets. */
  serves(pathname: string): boolean;
  proxy(request: Request): Promise<Response>;
  /** Stops the bundling server behind the routes; called when the listener closes or reloads. */
  stop(): void;
}

export interface H3Handlers {
  fetch?: (req: Request, server: any) => Response | Promise<Response>;
  html?: HtmlRoutes;
  webtransport?: WebTransportHandlers;
  routes?: Router;
  error?: (err: Error) => Response | Promise<Response> | void;
  maxRequestBodySize?: number;
  development?: boolean;
}

export interface TlsEntry {
  cert?: TlsInput;
  key?: TlsInput;
  passphrase?: string;
  serverName?: string;
  /** With requestCert: the CAs a client certificate must chain to (else the system roots). */
  ca?: TlsInput;
  /** Ask clients for a certificate. */
  requestCert?: boolean;
  /** With requestCert (default true): refuse clients whose certificate does not verify. */
  rejectUnauthorized?: boolean;
  /** Session-ticket keys, 48 bytes each, the first sealing (the default entry's only). */
  ticketKeys?: ArrayBufferView | ArrayBuffer;
}

export interface H3Options {
  hostname?: string;
  port: number;
  reusePort?: boolean;
  /** The first entry is the default certificate; the others are served by SNI (`serverName`). */
  tls: TlsEntry | TlsEntry[];
  idleTimeout?: number;
  h3Limits?: H3Limits;
  h3EarlyData?: H3EarlyData;
  h3ValidateAddress?: boolean;
  h3LoadBalancer?: import("./connection-ids").H3LoadBalancer;
}

export type QuicStats = import("bun").QuicServerStats;


/** An IPv6 address in its usual text form (zeros compressed). */
function ipv6Text(b: Uint8Array): string {
  const groups = Array.from({ length: 8 }, (_, i) => ((b[2 * i] << 8) | b[2 * i + 1]).toString(16));
  const text = groups.join(":");
  const runs = text.match(/(^|:)0(:0)+(:|$)/g);
  if (!runs) return text;
  const longest = runs.reduce((a, r) => (r.length > a.length ? r : a));
  return text.replace(longest, "::");
}

export class H3Listener {
  readonly port: number;
  private ctx: Pointer | null;
  private listen: Pointer | null;
  private streams = new Map<Pointer, StreamState>();
  private callbacks: ReturnType<typeof callback>[] = [];
  private stopped = false;
  private wt = new WTRouter();
  private routeGeneration = 0;

  constructor(
    options: H3Options,
    private handlers: H3Handlers,
    private server: () => any,
  ) {
    const entries = Array.isArray(options.tls) ? options.tls : [options.tls];
    const main = entries[0] ?? {};
    this.ctx = serverContext({
      certificates: entries,
      idleTimeoutSeconds: Math.ceil((options.idleTimeout ?? 30) || 30),
      requestCert: main.requestCert,
      ca: main.ca,
      rejectUnauthorized: main.rejectUnauthorized,
      certificateError: "tls: cannot use the certificate for HTTP/3: ",
    });
    try {
      applyH3Limits(this.ctx, options.h3Limits);
      applyEarlyData(this.ctx, options.h3EarlyData);
      applyRetry(this.ctx, options.h3ValidateAddress);
      applyLoadBalancer(this.ctx, options.h3LoadBalancer);
      if (main.ticketKeys !== undefined) applyTicketKeys(this.ctx, main.ticketKeys, "tls.ticketKeys");
    } catch (err) {
      quic().us_quic_socket_context_free(this.ctx);
      releaseLoop();
      throw err;
    }
    this.install();
    this.registerStaticRoutes();
    ref(); // a server keeps the process alive until free() (which unrefs)
    if (handlers.webtransport) {
      const max = handlers.webtransport.maxSessions ?? 16;
      quic().us_quic_socket_context_set_webtransport(this.ctx, max);
    }
    // No hostname: every address, IPv4 and IPv6 (a dual-stack "::" socket), as Bun's server binds.
    const host = options.hostname ? cString(options.hostname) : null;
    this.listen = handle(quic().us_quic_socket_context_listen(this.ctx, host, options.port, options.reusePort ? LISTEN_REUSE_PORT : 0, 0));
    if (!this.listen) {
      this.free();
      const err = new Error(`Failed to start server. Is port ${options.port} in use?`) as Error & { code: string; syscall: string };
      err.code = "EADDRINUSE";
      err.syscall = "listen";
      throw err;
    }
    this.port = quic().us_quic_listen_socket_port(this.listen);
    const ip = new Uint8Array(16);
    const n = quic().us_quic_listen_socket_local_address(this.listen, ip, ip.byteLength);
    this.address = n === 4 ? { address: ip.subarray(0, 4).join("."), family: "IPv4", port: this.port } : { address: ipv6Text(ip), family: "IPv6", port: this.port };
  }

  /** The bound address, as server.address reports it. */
  readonly address: { address: string; family: "IPv4" | "IPv6"; port: number };
  private held = true;
  private whenFreed = Promise.withResolvers<void>();

  /** Requests being answered (server.pendingRequests). */
  get pendingRequests() {
    let n = 0;
    for (const st of this.streams.values()) if (st.request && !st.responded) n++;
    return n;
  }

  /** server.ref()/unref(): whether the listener keeps the process alive. */
  setRef(keep: boolean) {
    if (!this.ctx || keep === this.held) return;
    this.held = keep;
    if (keep) ref();
    else unref();
  }

  /** Resolves once the listener is gone (after stop(), when its last request is done). */
  get closed(): Promise<void> {
    return this.whenFreed.promise;
  }

  private install() {
    const on = callbackInstaller(this.ctx!, this.callbacks);
    const wt = this.wt;
    if (this.handlers.webtransport) {
      // Only WebTransport needs it: streams the server opens for a session.
      on(quic().us_quic_socket_context_on_stream_open, (s: Pointer, local: number) => void (local && wt.opened(s)), [ptr, i32]);
    }
    on(quic().us_quic_socket_context_on_stream_headers, (s: Pointer) => this.onHeaders(s), [ptr]);
    on(quic().us_quic_socket_context_on_stream_data, (s: Pointer, data: Pointer, len: number, fin: number) => {
      if (!wt.data(s, data, len, fin)) this.onData(s, data, len, fin);
    }, [ptr, ptr, u32, i32]);
    on(quic().us_quic_socket_context_on_stream_writable, (s: Pointer) => wt.writable(s) || wakeWriter(this.streams.get(s)), [ptr]);
    on(quic().us_quic_socket_context_on_stream_close, (s: Pointer) => {
      if (wt.closed(s)) this.streams.delete(s);
      this.onClose(s);
      // A graceful stop frees the context after the last stream, whatever kind it was.
      if (this.stopped && this.streams.size === 0) setTimeout(() => this.free(), 0);
    }, [ptr]);
    if (this.handlers.webtransport) {
      on(quic().us_quic_socket_context_on_stream_datagram, (s: Pointer, data: Pointer, len: number) => wt.datagram(s, data, len), [ptr, ptr, u32]);
      on(quic().us_quic_socket_context_on_close, (conn: Pointer) => wt.connectionClosed(conn), [ptr]);
    }
  }

  /**
   * Static Response routes are answered by the engine (GET/HEAD), like Bun's own
   * server answers them without JS. Until the bodies are read (a tick), the JS
   * router serves them the same way.
   */
  private async registerStaticRoutes() {
    const routes = this.handlers.routes?.staticResponses() ?? [];
    const generation = ++this.routeGeneration;
    const prepared: [Buffer, Uint8Array, Uint8Array][] = [];
    for (const [path, response] of routes) {
      const { status, headers, body } = await this.prepareStatic(response);
      prepared.push([Buffer.from(path), encodeHeaders(headFields(status, new Headers(headers), [], false)), body]);
    }
    if (!this.ctx || generation !== this.routeGeneration) return;
    quic().us_quic_embed_clear_static_routes(this.ctx);
    for (const [path, block, body] of prepared) {
      quic().us_quic_embed_add_static_route(this.ctx, path, path.byteLength, block, block.byteLength, body, body.byteLength);
    }
  }

  /**
   * server.upgradeWebTransport(req, { data, headers }): accepts the extended
   * CONNECT behind `req` as a WebTransport session (200, then the session's
   * streams and datagrams go to the webtransport handlers). False when `req`
   * is not a WebTransport CONNECT over HTTP/3, was answered already, or the
   * connection has maxSessions sessions.
   */
  upgradeWebTransport(req: Request, options: { data?: unknown; headers?: ConstructorParameters<typeof Headers>[0] } = {}): boolean {
    const entry = H3Request.entryOf(req, this);
    const handlers = this.handlers.webtransport;
    if (!entry || !handlers) return false;
    const { s, st } = entry;
    if (st.responded || st.closed || !WEBTRANSPORT_TOKENS.has(st.protocol ?? "")) return false;
    const conn = handle(quic().us_quic_stream_socket(s))!;
    if (this.wt.sessionsOn(conn) >= (handlers.maxSessions ?? 16)) return false;
    const extra: [string, string][] = st.draft02 ? [["sec-webtransport-http3-draft", "draft02"]] : [];
    const block = encodeHeaders(headFields(200, new Headers(options.headers), extra));
    if (quic().us_quic_embed_send_headers(s, block, block.byteLength, 0) !== 0) return false;
    st.responded = st.upgraded = true;
    const session = new WTSession(this.wt);
    session.data = options.data;
    session.hooks = {
      datagram: handlers.datagram && (d => handlers.datagram!(session, d)),
      stream: handlers.stream && (x => handlers.stream!(session, x)),
      close: (code, reason) => handlers.close?.(session, code, reason),
    };
    session.attach(conn, s);
    queueMicrotask(() => {
      if (!session.isClosed) handlers.open?.(session);
    });
    scheduleFlush();
    return true;
  }

  private onHeaders(s: Pointer) {
    const kind = quic().us_quic_stream_headers_kind(s);
    if (kind === HEADERS_WEBTRANSPORT) {
      this.streams.delete(s);
      return this.wt.peerStream(s);
    }
    if (kind !== HEADERS_INITIAL) return;
    // The state is made here: a plain HTTP/3 server takes no on_stream_open
    // callback (the engine announces a request stream with its head anyway).
    let st = this.streams.get(s);
    if (!st) this.streams.set(s, (st = new StreamState()));
    let method = "GET", path = "/", authority = "";
    let host: string | undefined, expect: string | undefined, contentLength: string | undefined;
    // Field names arrive lowercase (the engine refuses others, RFC 9114 4.2).
    const fields: [string, string][] = [];
    // (Heads over h3Limits.maxHeaderFields got 431 in the engine.)
    const received = readHeaders(s);
    for (const field of received) {
      const [name, value] = field;
      if (name.charCodeAt(0) === 58 /* : */) {
        if (name === ":method") method = value;
        else if (name === ":path") path = value;
        else if (name === ":authority") authority = value;
        else if (name === ":protocol") st.protocol = value;
        continue;
      }
      fields.push(field);
      if (name === "host") host = value;
      else if (name === "expect") expect = value;
      else if (name === "content-length") contentLength = value;
      else if (name === "sec-webtransport-http3-draft02") st.draft02 = true;
    }
    authority ||= host ?? `localhost:${this.port}`;
    if (expect !== undefined) {
      // 100-continue (any casing) is answered at once, so the client sends the
      // body even on a fresh connection's first stream; anything else is 417.
      if (expect.trim().toLowerCase() !== "100-continue") {
        quic().us_quic_stream_shutdown_read(s);
        this.sendSimple(s, st, 417, "");
        return;
      }
      quic().us_quic_stream_send_informational(s, CONTINUE);
      scheduleFlush();
    }
    const max = this.handlers.maxRequestBodySize;
    const declared = Number(contentLength ?? NaN);
    if (max !== undefined && declared > max) {
      quic().us_quic_stream_shutdown_read(s);
      this.sendSimple(s, st, 413, "Payload Too Large");
      return;
    }
    // An extended CONNECT's stream carries the session (capsules), not a body.
    const hasBody = method !== "GET" && method !== "HEAD" && st.protocol === undefined;
    const body = hasBody ? incomingBody(s, st, () => quic().us_quic_stream_shutdown_read(s)) : null;
    // An invalid :authority is not trusted: request.url is then the bare :path, as upstream's.
    const valid = VALID_AUTHORITY.test(authority);
    const url = `https://${valid ? authority : `localhost:${this.port}`}${path}`;
    const query = path.indexOf("?");
    st.pathname = query < 0 ? path : path.slice(0, query);
    const route = this.handlers.routes?.match(method, st.pathname);
    const head = { method, fields, body };
    const request =
      route?.target.kind === "handler"
        ? new H3RouteRequest(url, head, s, st, this, route.params)
        : new H3Request(url, head, s, st, this);
    if (!valid) Object.defineProperty(request, "url", { value: path, enumerable: true });
    st.request = request;
    this.dispatch(s, st, request, route);
  }

  isH3Request(req: Request): boolean {
    return H3Request.entryOf(req, this) !== undefined;
  }

  /** server.requestIP for an HTTP/3 request: read from the connection while the stream is open (then kept). */
  requestIP(req: Request) {
    const entry = H3Request.entryOf(req, this);
    if (!entry) return undefined;
    if (!entry.st.remote && !entry.st.closed) entry.st.remote = this.remote(entry.s);
    return entry.st.remote ?? null;
  }

  private remote(s: Pointer) {
    const buf = new Uint8Array(64);
    const port = new Int32Array(1);
    const n = quic().us_quic_embed_remote_address(s, buf, buf.byteLength, port);
    const address = n > 0 ? Buffer.from(buf.subarray(0, n)).toString() : "";
    return { address, port: port[0], family: address.includes(":") ? ("IPv6" as const) : ("IPv4" as const) };
  }

  private onData(s: Pointer, data: Pointer, len: number, fin: number) {
    const st = this.streams.get(s);
    if (!st?.body) return;
    if (len > 0) {
      st.bodyBytes += len;
      const max = this.handlers.maxRequestBodySize;
      if (max !== undefined && st.bodyBytes > max) {
        quic().us_quic_stream_shutdown_read(s);
        st.body.error(new Error("request body exceeds maxRequestBodySize"));
        st.body = undefined;
        this.sendSimple(s, st, 413, "Payload Too Large");
        return;
      }
    }
    deliverBody(s, st, data, len, fin !== 0);
  }

  private onClose(s: Pointer) {
    const st = this.streams.get(s);
    this.streams.delete(s);
    if (!st) return;
    st.closed = true;
    if (st.body) {
      const body = st.body;
      st.body = undefined;
      try {
        body.error(new Error("HTTP/3 stream was reset by the client"));
      } catch {
        // Already closed or errored by its reader: nothing more to tell it. (An
        // exception must not leave this engine callback half done.)
      }
    }
    if (!st.responded) st.abort?.abort();
    st.writable?.();
  }

  /**
   * Runs the route or fetch handler. A handler that returns a Response (not a
   * promise) is answered synchronously, inside the engine callback: the answer
   * then leaves in the same packets as the ACK of the request.
   */
  private dispatch(s: Pointer, st: StreamState, request: Request, route: RouteMatch | undefined) {
    let result: unknown;
    try {
      result = this.invoke(st, request, route);
    } catch (err) {
      return void this.answerError(s, st, request, err);
    }
    if (result instanceof Response) return void this.answer(s, st, request, result);
    (result as Promise<unknown>).then(
      r => this.answer(s, st, request, r),
      err => this.answerError(s, st, request, err),
    );
  }

  private invoke(st: StreamState, request: Request, route: RouteMatch | undefined): Response | Promise<unknown> {
    if (!route) {
      if (this.handlers.html?.serves(st.pathname)) return this.handlers.html.proxy(request);
      return this.fallback(request);
    }
    const target: RouteTarget = route.target;
    switch (target.kind) {
      case "static":
        return this.staticAnswer(request, target.response);
      case "file":
        return serveFile(request, target.file, target.response).then(r => r ?? this.fallback(request));
      case "html":
        return this.handlers.html ? this.handlers.html.proxy(request) : this.fallback(request);
      case "handler": {
        const server = this.server();
        const r = target.handler.call(server, request as Request & { params: Record<string, string> }, server);
        return r instanceof Response ? r : Promise.resolve(r);
      }
    }
  }

  /** The fetch handler, or Bun's 404 without one. */
  private fallback(request: Request): Response | Promise<unknown> {
    if (this.handlers.fetch) {
      const server = this.server();
      const r = this.handlers.fetch.call(server, request, server);
      return r instanceof Response ? r : Promise.resolve(r);
    }
    return new Response("Not Found", { status: 404 });
  }

  private prepared = new WeakMap<Response, Promise<PreparedStatic>>();

  /**
   * A static route's head and bytes, read once: its own fields plus the
   * content-type Bun's server adds and an ETag (Bun's: xxHash64 of the body)
   * when it has none.
   */
  private prepareStatic(response: Response): Promise<PreparedStatic> {
    let p = this.prepared.get(response);
    if (!p) {
      const info = bodyInfo(response);
      p = response
        .clone()
        .arrayBuffer()
        .then(buffer => {
          const body = new Uint8Array(buffer);
          const headers = new Headers(response.headers);
          if (!headers.has("content-type") && info?.defaultType) headers.set("content-type", info.defaultType);
          if (!headers.has("etag")) headers.set("etag", staticEtag(body));
          return { status: response.status, headers: [...headers], body };
        });
      this.prepared.set(response, p);
    }
    return p;
  }

  /** A static route answered in JS (methods other than GET/HEAD, or before the engine has it). */
  private async staticAnswer(request: Request, response: Response): Promise<Response> {
    const { status, headers, body } = await this.prepareStatic(response);
    const inm = request.headers.get("if-none-match");
    if (status === 200 && inm !== null && etagMatches(inm, new Headers(headers).get("etag"))) {
      return responseOf(null, { status: 304, headers });
    }
    return responseOf(body, { status, headers });
  }

  private answer(s: Pointer, st: StreamState, request: Request, response: unknown) {
    if (st.upgraded) return;
    if (!(response instanceof Response)) return void this.answerError(s, st, request, new TypeError("the handler must return a Response"));
    if (st.closed || st.responded) return;
    return this.reply(s, st, response, request.method === "HEAD");
  }

  private async answerError(s: Pointer, st: StreamState, request: Request, err: unknown) {
    // A handler that failed because its client went away (its body read was
    // reset) has no one to answer or report to, as on Bun's own server.
    if (st.closed) return;
    const response = await this.errorResponse(err, request);
    if (st.closed || st.responded) return;
    await this.reply(s, st, response, request.method === "HEAD");
  }

  private async errorResponse(err: unknown, request: Request): Promise<Response> {
    const error = err instanceof Error ? err : new Error(String(err));
    if (this.handlers.error) {
      try {
        const r = await this.handlers.error.call(this.server(), error);
        if (r instanceof Response) return r;
      } catch {}
    }
    return errorPage(err, request, !!this.handlers.development);
  }

  /** Sends `response` on the stream (h3-response.ts), with this server's development flag. */
  private reply(s: Pointer, st: StreamState, response: Response, isHead: boolean) {
    return respond(s, st, response, isHead, !!this.handlers.development);
  }

  private sendSimple(s: Pointer, st: StreamState, status: number, text: string) {
    if (st.responded || st.closed) return;
    const headers: Record<string, string> = text ? { "content-type": "text/plain;charset=utf-8" } : {};
    this.reply(s, st, responseOf(text, { status, headers }), false);
  }

  /** us_quic_context_stats_t, kept after free() for stats() on a stopped server. */
  private lastStats = new BigUint64Array(CONTEXT_STATS_FIELDS);

  stats(): QuicStats {
    const raw = this.lastStats;
    if (this.ctx) quic().us_quic_socket_context_stats(this.ctx, raw);
    return {
      connectionsAccepted: Number(raw[0]),
      connectionsActive: Number(raw[1]),
      requests: Number(raw[2]),
      bytesReceived: Number(raw[3]),
      bytesSent: Number(raw[4]),
      packetsReceived: Number(raw[5]),
      packetsSent: Number(raw[6]),
      requestsTimedOut: Number(raw[9]),
      headersTooLarge: Number(raw[10]),
      connectionsRefused: Number(raw[11]),
      connectionsClosedForLoad: Number(raw[12]),
      connectionsClosedIdle: Number(raw[13]),
      connectionsResumed: Number(raw[14]),
      earlyDataAccepted: Number(raw[15]),
      requestsInEarlyData: Number(raw[16]),
      requestsHeldForHandshake: Number(raw[17]),
      retriesSent: Number(raw[18]),
      invalidTokens: Number(raw[19]),
    };
  }

  /** `server.quic`: counters, the UDP port, and ticket-key rotation. */
  facade() {
    return {
      stats: (): QuicStats => this.stats(),
      port: this.port,
      setTicketKeys: (keys: ArrayBufferView | ArrayBuffer) => {
        if (!this.ctx) throw new Error("the server has stopped");
        applyTicketKeys(this.ctx, keys, "ticketKeys");
      },
    };
  }

  reload(handlers: Partial<H3Handlers>) {
    this.handlers = { ...this.handlers, ...handlers } as H3Handlers;
    this.registerStaticRoutes();
  }

  /** Graceful: GOAWAY, in-flight requests finish. Forced: CONNECTION_CLOSE now. */
  stop(force = false) {
    if (this.stopped) return;
    this.stopped = true;
    if (force) {
      for (const [s, st] of this.streams) {
        if (!st.closed) quic().us_quic_stream_reset_with_code(s, H3_REQUEST_CANCELLED);
      }
      this.free();
      return;
    }
    this.wt.drainAll();
    quic().us_quic_socket_context_shutdown(this.ctx);
    quic().us_quic_listen_socket_close(this.listen);
    scheduleFlush();
    // Free once the last in-flight stream is done (see onClose).
    if (this.streams.size === 0) this.free();
  }

  private free() {
    if (!this.ctx) return;
    this.stats(); // keep the final counters readable after stop()
    const ctx = this.ctx;
    this.ctx = null;
    if (!this.held) ref(); // retire() below releases the server's ref
    quic().us_quic_socket_context_free(ctx);
    scheduleFlush();
    retire(this.callbacks.splice(0));
    this.whenFreed.resolve();
  }
}
