// An HTTP/3 request as the handlers see it, and the per-stream state behind it.
import type { Pointer } from "bun:ffi";

export class StreamState {
  request?: Request;
  body?: ReadableStreamDefaultController<Uint8Array>;
  bodyBytes = 0;
  paused = false;
  closed = false;
  responded = false;
  /** req.signal's controller, made on first use (most handlers never read it). */
  abort?: AbortController;
  pathname = "/";
  writable?: () => void;
  remote?: { address: string; port: number; family: "IPv4" | "IPv6" };
  /** Extended CONNECT (RFC 9220): the :protocol asked for. */
  protocol?: string;
  /** The client offered WebTransport draft-02 (answered with sec-webtransport-http3-draft). */
  draft02 = false;
  upgraded = false;
}

/**
 * An HTTP/3 request: a Request whose `signal` follows its stream (made on first read: most
 * handlers never read it), and which knows its stream and listener without a per-request map
 * entry (server.requestIP, upgrades).
 */
export class H3Request extends Request {
  #stream: Pointer;
  #state: StreamState;
  #owner: object;

  constructor(url: string, init: RequestInit, stream: Pointer, state: StreamState, owner: object) {
    super(url, init);
    this.#stream = stream;
    this.#state = state;
    this.#owner = owner;
  }

  // @ts-expect-error lib.dom declares `signal` a property; Request.prototype defines it as a getter.
  override get signal(): AbortSignal {
    const st = this.#state;
    if (!st.abort) {
      st.abort = new AbortController();
      if (st.closed && !st.responded) st.abort.abort();
    }
    return st.abort.signal;
  }

  /** The stream behind `req` when it is one of `owner`'s requests. */
  static entryOf(req: Request, owner: object): { s: Pointer; st: StreamState } | undefined {
    return #owner in req && req.#owner === owner ? { s: req.#stream, st: req.#state } : undefined;
  }
}

/**
 * A route handler's request, as Bun's BunRequest: `params`, and `cookies` (a Bun.CookieMap of the
 * Cookie header, made on first read) whose changes go out as Set-Cookie with the response.
 */
export class H3RouteRequest extends H3Request {
  #params: Record<string, string>;
  #cookies?: Bun.CookieMap;

  constructor(url: string, init: RequestInit, stream: Pointer, state: StreamState, owner: object, params: Record<string, string>) {
    super(url, init, stream, state, owner);
    this.#params = params;
  }

  get params(): Record<string, string> {
    return this.#params;
  }

  get cookies(): Bun.CookieMap {
    return (this.#cookies ??= new Bun.CookieMap(this.headers.get("cookie") ?? ""));
  }

  get [Symbol.toStringTag]() {
    return "BunRequest";
  }

  /** The Set-Cookie values the handler's cookie changes make (none when it never read cookies). */
  static setCookiesOf(req: Request): string[] {
    return req instanceof H3RouteRequest && req.#cookies ? req.#cookies.toSetCookieHeaders() : [];
  }
}

// `req.constructor === Request`, as for upstream's requests (only getPrototypeOf tells them apart).
for (const kind of [H3Request, H3RouteRequest]) {
  Object.defineProperty(kind.prototype, "constructor", { value: Request, writable: true, configurable: true });
}
