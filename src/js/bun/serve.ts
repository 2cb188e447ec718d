// Bun.serve with HTTP/3: `h3: true` (or upstream's `http3: true`) adds a rust-quic
// listener on the same port number (UDP) with the same handlers. Bun's own lsquic
// listener never starts: h3/http3 are removed before the native Bun.serve sees them.
// The server object has what upstream's has, with the same values, whether or
// not a TCP listener exists (`http1: false`).
import { H3Listener, type H3Handlers, type HtmlRoutes } from "./serve-h3";
import { Router, withHeader, type RouteValue } from "./router";

import { nativeServe } from "./native-serve";
import { validateH3Limits } from "./h3-limits";
import { earlyDataMode, retryMode, ticketKeyBytes } from "./handshake-options";
import { loadBalancerConfig } from "./connection-ids";

/** Options of the HTTP/3 side only (`webtransport` too, with its own message). */
const H3_ONLY_OPTIONS = ["h3Limits", "h3EarlyData", "h3ValidateAddress", "h3LoadBalancer"] as const;

function altSvc(port: number) {
  return `h3=":${port}"; ma=86400`;
}

/** An option error as Bun's own: a TypeError with code ERR_INVALID_ARG_TYPE, in upstream's words. */
function optionError(message: string): TypeError {
  const err = new TypeError(message) as TypeError & { code: string };
  err.code = "ERR_INVALID_ARG_TYPE";
  return err;
}

/** Adds Alt-Svc to every HTTP/1.1 response of the fetch handler. */
function withAltSvc(fetch: Function, port: () => number) {
  return async function (this: any, req: Request, server: any) {
    const res: Response = await fetch.call(this, req, server);
    if (!(res instanceof Response)) return res;
    try {
      res.headers.set("alt-svc", altSvc(port()));
      return res;
    } catch {
      const copy = new Response(res.body, res);
      copy.headers.set("alt-svc", altSvc(port()));
      return copy;
    }
  };
}

function validate(options: any) {
  if (options === null || typeof options !== "object") return false;
  // Bun reads these as booleans (any truthy value enables).
  const h3 = !!(options.h3 ?? options.http3);
  if (options.http1 !== undefined && !options.http1 && !h3) throw optionError("Cannot disable http1 without enabling http2 or http3");
  if (!h3) return false;
  if (options.unix) {
    console.warn("warn: http3: true with a unix socket — HTTP/3 listener skipped");
    return false;
  }
  const tls = Array.isArray(options.tls) ? options.tls[0] : options.tls;
  if (!tls || typeof tls !== "object") throw optionError("HTTP/3 requires 'tls' to be set");
  // Without a handler, Bun's own Bun.serve throws its own message.
  if (typeof options.fetch !== "function" && !options.routes) return false;
  validateWebTransport(options.webtransport);
  validateH3Limits(options.h3Limits);
  earlyDataMode(options.h3EarlyData);
  retryMode(options.h3ValidateAddress);
  loadBalancerConfig(options.h3LoadBalancer);
  if (tls.ticketKeys !== undefined) ticketKeyBytes(tls.ticketKeys, "tls.ticketKeys");
  return true;
}

function validateWebTransport(wt: any) {
  if (wt === undefined) return;
  if (wt === null || typeof wt !== "object") throw new TypeError("webtransport must be an object of handlers");
  for (const name of ["open", "datagram", "stream", "close"]) {
    if (wt[name] !== undefined && typeof wt[name] !== "function") throw new TypeError(`webtransport.${name} must be a function`);
  }
  const max = wt.maxSessions;
  if (max !== undefined && (!Number.isInteger(max) || max < 1 || max > 0xffff)) {
    throw new TypeError("webtransport.maxSessions must be an integer from 1 to 65535");
  }
}

/** Bun's default: development mode unless NODE_ENV is production. */
function developmentOf(options: any): boolean {
  const dev = options.development;
  if (dev === undefined) return process.env.NODE_ENV !== "production";
  return typeof dev === "object" ? dev !== null : !!dev;
}

/**
 * HTML imports: Bun's own bundler serves them. Over HTTP/3 a request for one
 * (or for an asset its pages reference) is proxied to a loopback-only native
 * server that holds just those routes.
 */
function htmlRoutes(router: Router, development: boolean): HtmlRoutes | undefined {
  const routes = router.htmlRoutes();
  if (Object.keys(routes).length === 0) return undefined;
  const inner = nativeServe.call(Bun, {
    hostname: "127.0.0.1",
    port: 0,
    development,
    routes: routes as any,
    fetch: () => new Response("Not Found", { status: 404 }),
  });
  const assets = new Set<string>();
  const origin = `http://127.0.0.1:${inner.port}`;
  return {
    serves: pathname => assets.has(pathname) || pathname.startsWith("/_bun/"),
    async proxy(request: Request) {
      const url = new URL(request.url, "https://localhost");
      const res = await fetch(origin + url.pathname + url.search, {
        method: request.method,
        headers: request.headers,
        body: request.body,
        redirect: "manual",
        decompress: false,
      } as RequestInit);
      const headers = new Headers(res.headers);
      for (const hop of ["connection", "keep-alive", "transfer-encoding"]) headers.delete(hop);
      if (!(res.headers.get("content-type") ?? "").startsWith("text/html")) {
        return new Response(res.body, { status: res.status, headers });
      }
      const page = await res.text();
      for (const m of page.matchAll(/\b(?:src|href)="(\/[^"?#]*)/g)) assets.add(m[1]);
      return new Response(page, { status: res.status, headers });
    },
    stop: () => void inner.stop(true),
  };
}

function handlersOf(options: any, previous?: H3Handlers): H3Handlers {
  const routes = options.routes ? new Router(options.routes) : undefined;
  previous?.html?.stop();
  return {
    fetch: options.fetch,
    ...(options.webtransport ? { webtransport: options.webtransport } : previous?.webtransport ? { webtransport: previous.webtransport } : {}),
    routes,
    html: routes ? htmlRoutes(routes, developmentOf(options)) : undefined,
    error: options.error,
    maxRequestBodySize: options.maxRequestBodySize,
    development: developmentOf(options),
  };
}

/** How many TCP ports `port: 0` tries before giving up on finding one free on UDP too. */
const PORT_ATTEMPTS = 16;

export function serve(options: any): any {
  if (!validate(options)) {
    if (options?.webtransport !== undefined) throw new TypeError("webtransport needs h3: true (WebTransport runs over HTTP/3)");
    const h3Only = H3_ONLY_OPTIONS.find(name => options?.[name] !== undefined);
    if (h3Only) throw new TypeError(`${h3Only} needs h3: true`);
    if (options && (options.h3 !== undefined || options.http3 !== undefined)) {
      const { h3: _h3, http3: _http3, ...rest } = options;
      return nativeServe.call(Bun, rest);
    }
    return nativeServe.call(Bun, options);
  }
  const { h3: _h3, http3: _http3, http1: http1Option, webtransport: _wt, h3Limits, h3EarlyData, h3ValidateAddress, h3LoadBalancer, ...rest } = options;
  const http1 = http1Option === undefined || !!http1Option;
  const tls = rest.tls;
  let handlers = handlersOf(options);
  let proxy: any;
  let listener: H3Listener;
  const listenOptions = (port: number) => ({ hostname: rest.hostname, port, reusePort: rest.reusePort, tls, idleTimeout: rest.idleTimeout, h3Limits, h3EarlyData, h3ValidateAddress, h3LoadBalancer });
  if (!http1) {
    try {
      listener = new H3Listener(listenOptions(rest.port ?? 3000), handlers, () => proxy);
    } catch (err) {
      handlers.html?.stop();
      throw err;
    }
    listener.closed.then(() => handlers.html?.stop());
    proxy = h3OnlyServer(listener, options, next => (handlers = handlersOf(next, handlers)));
    return proxy;
  }
  let port = 0;
  const tcpOptions = (o: any, p: () => number) => ({
    ...o,
    ...(o.fetch ? { fetch: withAltSvc(o.fetch, p) } : {}),
    ...(o.routes ? { routes: withHeader(o.routes as Record<string, RouteValue>, "alt-svc", () => altSvc(p())) } : {}),
  });
  // HTTP/3 takes the TCP listener's port number on UDP, as upstream does. With port 0 the kernel
  // picked a TCP port that some UDP socket (a QUIC client's, say) may hold: pick another.
  const anyPort = Number(rest.port) === 0;
  let native: any;
  for (let attempt = 1; ; attempt++) {
    native = nativeServe.call(Bun, tcpOptions(rest, () => port));
    try {
      listener = new H3Listener(listenOptions(native.port ?? 0), handlers, () => proxy);
      break;
    } catch (err) {
      native.stop(true);
      if (anyPort && (err as { code?: string }).code === "EADDRINUSE" && attempt < PORT_ATTEMPTS) continue;
      handlers.html?.stop();
      throw err;
    }
  }
  listener.closed.then(() => handlers.html?.stop());
  port = listener.port;
  // Static route Responses were copied before the port was known: copy them again.
  if (rest.routes) native.reload(tcpOptions(rest, () => port));
  const stop = (force?: boolean) => {
    listener.stop(!!force);
    return Promise.all([target.stop(force), listener.closed]).then(() => undefined);
  };
  const target = native;
  const overrides: Record<PropertyKey, unknown> = {
    stop,
    reload: (next: any) => {
      const { h3: _a, http3: _b, http1: _c, webtransport, h3Limits: _limits, h3EarlyData: _early, h3ValidateAddress: _validate, ...nextRest } = next ?? {};
      validateWebTransport(webtransport);
      handlers = handlersOf(next ?? {}, handlers);
      listener.reload(handlers);
      return target.reload(tcpOptions(nextRest, () => port));
    },
    quic: listener.facade(),
    requestIP: (req: Request) => listener.requestIP(req) ?? target.requestIP(req),
    upgrade: (req: Request, o?: any) => (listener.isH3Request(req) ? false : target.upgrade(req, o)),
    timeout: (req: Request, seconds: number) => (listener.isH3Request(req) ? undefined : target.timeout(req, seconds)),
    upgradeWebTransport: (req: Request, o?: any) => listener.upgradeWebTransport(req, o),
    ref: () => (listener.setRef(true), target.ref()),
    unref: () => (listener.setRef(false), target.unref()),
    [Symbol.dispose]: () => void stop(true),
    [Symbol.asyncDispose]: () => stop(true),
  };
  proxy = new Proxy(native, {
    get(t, prop) {
      if (prop === "pendingRequests") return t.pendingRequests + listener.pendingRequests;
      if (Object.prototype.hasOwnProperty.call(overrides, prop)) return overrides[prop];
      const value = Reflect.get(t, prop, t);
      return typeof value === "function" ? value.bind(t) : value;
    },
  });
  return proxy;
}

/**
 * Bun.serve({ h3: true, http1: false }): no TCP listener at all, and a server
 * object with upstream's shape and values (hostname "localhost" and a dual-stack
 * "::" address when no hostname is given).
 */
function h3OnlyServer(listener: H3Listener, options: any, rebuild: (next: any) => H3Handlers) {
  const hostname: string = options.hostname ?? "localhost";
  let development = developmentOf(options);
  let stopping: Promise<void> | undefined;
  const stop = (force?: boolean) => {
    listener.stop(!!force);
    return (stopping ??= listener.closed);
  };
  let fetchHandler = options.fetch;
  const server = {
    get port() {
      return listener.port;
    },
    hostname,
    get url() {
      return new URL(`https://${hostname.includes(":") ? `[${hostname}]` : hostname}:${listener.port}/`);
    },
    get address() {
      return { ...listener.address };
    },
    get development() {
      return development;
    },
    id: options.id ?? "",
    protocol: "https",
    get pendingRequests() {
      return listener.pendingRequests;
    },
    pendingWebSockets: 0,
    quic: listener.facade(),
    /** Calls the handler directly, as server.fetch does natively. */
    fetch(req: Request | string) {
      const request = typeof req === "string" ? new Request(req) : req;
      if (typeof fetchHandler !== "function") return Promise.resolve(new Response("Not Found", { status: 404 }));
      return Promise.resolve(fetchHandler.call(server, request, server));
    },
    stop,
    reload(next: any) {
      const { webtransport } = next ?? {};
      validateWebTransport(webtransport);
      const handlers = rebuild(next ?? {});
      fetchHandler = handlers.fetch;
      development = handlers.development ?? development;
      listener.reload(handlers);
      return server;
    },
    requestIP: (req: Request) => listener.requestIP(req) ?? null,
    timeout(_req: Request, _seconds: number) {},
    upgrade: () => false,
    upgradeWebTransport: (req: Request, o?: any) => listener.upgradeWebTransport(req, o),
    publish: () => 0,
    subscriberCount: () => 0,
    closeIdleConnections() {},
    ref: () => listener.setRef(true),
    unref: () => listener.setRef(false),
    [Symbol.dispose]: () => void stop(true),
    [Symbol.asyncDispose]: () => stop(true),
  };
  return server;
}
