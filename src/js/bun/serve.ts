// Bun.serve with HTTP/3: `h3: true` (or upstream's `http3: true`) adds a rust-quic
// listener on the same port number (UDP) with the same handlers. Bun's own lsquic
// listener never starts: h3/http3 are removed before the native Bun.serve sees them.
import { H3Listener, type H3Handlers, type QuicStats } from "./serve-h3";
import { Router, withHeader } from "./router";

const nativeServe = Bun.serve;

function altSvc(port: number) {
  return `h3=":${port}"; ma=86400`;
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
  if (options === null || typeof options !== "object") throw new TypeError("Bun.serve expects an options object");
  const h3 = options.h3 ?? options.http3;
  if (h3 !== undefined && typeof h3 !== "boolean") throw new TypeError("h3 must be a boolean");
  if (options.http1 !== undefined && typeof options.http1 !== "boolean") throw new TypeError("http1 must be a boolean");
  if (options.http1 === false && !h3) throw new TypeError("http1: false needs h3: true (there would be no protocol left)");
  if (!h3) return false;
  const tls = Array.isArray(options.tls) ? options.tls[0] : options.tls;
  if (!tls || typeof tls !== "object") throw new TypeError("tls is required for h3 (HTTP/3 always uses TLS)");
  if (options.unix) {
    console.warn("Bun.serve: h3 is ignored for unix sockets");
    return false;
  }
  if (options.fetch !== undefined && typeof options.fetch !== "function") throw new TypeError("fetch must be a function");
  if (typeof options.fetch !== "function" && !options.routes) throw new TypeError("h3 needs a fetch handler or routes");
  validateWebTransport(options.webtransport);
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

export function serve(options: any): any {
  if (!validate(options)) {
    if (options?.webtransport !== undefined) throw new TypeError("webtransport needs h3: true (WebTransport runs over HTTP/3)");
    if (options && (options.h3 !== undefined || options.http3 !== undefined)) {
      const { h3: _h3, http3: _http3, ...rest } = options;
      return nativeServe.call(Bun, rest);
    }
    return nativeServe.call(Bun, options);
  }
  const { h3: _h3, http3: _http3, http1, webtransport, ...rest } = options;
  const tls = rest.tls;
  const handlers: H3Handlers = {
    fetch: rest.fetch,
    webtransport,
    routes: rest.routes ? new Router(rest.routes) : undefined,
    error: rest.error,
    maxRequestBodySize: rest.maxRequestBodySize,
    development: rest.development,
  };
  let proxy: any;
  let listener: H3Listener;
  if (http1 === false) {
    listener = new H3Listener({ hostname: rest.hostname, port: rest.port ?? 3000, reusePort: rest.reusePort, tls, idleTimeout: rest.idleTimeout }, handlers, () => proxy);
    proxy = h3OnlyServer(listener, rest);
    return proxy;
  }
  let port = 0;
  const tcpOptions = (p: () => number) => ({
    ...rest,
    ...(rest.fetch ? { fetch: withAltSvc(rest.fetch, p) } : {}),
    ...(rest.routes ? { routes: withHeader(rest.routes, "alt-svc", () => altSvc(p())) } : {}),
  });
  const native = nativeServe.call(Bun, tcpOptions(() => port));
  try {
    listener = new H3Listener({ hostname: rest.hostname, port: native.port ?? 0, reusePort: rest.reusePort, tls, idleTimeout: rest.idleTimeout }, handlers, () => proxy);
  } catch (err) {
    native.stop(true);
    throw err;
  }
  port = listener.port;
  // Static route Responses were copied before the port was known: copy them again.
  if (rest.routes && Object.values(rest.routes).some(v => v instanceof Response || (v && typeof v === "object"))) {
    native.reload(tcpOptions(() => port));
  }
  proxy = new Proxy(native, {
    get(target, prop) {
      if (prop === "stop") return (force?: boolean) => (listener.stop(!!force), target.stop(force));
      if (prop === "reload") return (next: any) => reload(target, listener, next, () => port);
      if (prop === "quic") return { stats: (): QuicStats => listener.stats(), port: listener.port };
      if (prop === "requestIP") return (req: Request) => listener.requestIP(req) ?? target.requestIP(req);
      if (prop === "upgrade") return (req: Request, o?: any) => (listener.isH3Request(req) ? false : target.upgrade(req, o));
      if (prop === "upgradeWebTransport") return (req: Request, o?: any) => listener.upgradeWebTransport(req, o);
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return proxy;
}

function reload(target: any, listener: H3Listener, next: any, port: () => number) {
  const { h3: _h3, http3: _http3, http1: _http1, webtransport, ...rest } = next ?? {};
  validateWebTransport(webtransport);
  listener.reload({
    fetch: rest.fetch,
    ...(webtransport ? { webtransport } : {}),
    routes: rest.routes ? new Router(rest.routes) : undefined,
    error: rest.error,
    maxRequestBodySize: rest.maxRequestBodySize,
    development: rest.development,
  });
  return target.reload({
    ...rest,
    ...(rest.fetch ? { fetch: withAltSvc(rest.fetch, port) } : {}),
    ...(rest.routes ? { routes: withHeader(rest.routes, "alt-svc", () => altSvc(port())) } : {}),
  });
}

/** Bun.serve({ h3: true, http1: false }): no TCP listener at all. */
function h3OnlyServer(listener: H3Listener, options: any) {
  const hostname = options.hostname ?? "0.0.0.0";
  const urlHost = hostname === "0.0.0.0" || hostname === "::" ? "localhost" : hostname;
  return {
    port: listener.port,
    hostname,
    url: new URL(`https://${urlHost}:${listener.port}/`),
    development: !!options.development,
    protocol: "https",
    get pendingRequests() {
      return 0;
    },
    quic: { stats: (): QuicStats => listener.stats(), port: listener.port },
    stop: (force?: boolean) => listener.stop(!!force),
    reload: (next: any) => listener.reload(next ?? {}),
    requestIP: (req: Request) => listener.requestIP(req) ?? null,
    upgrade: () => false,
    upgradeWebTransport: (req: Request, o?: any) => listener.upgradeWebTransport(req, o),
    ref() {},
    unref() {},
  };
}
